//! Measures generation speed without the CLI:
//! `cargo run --release -p clientlog-demo --example demo_speed -- 100000 24 1 /tmp/demo.ndjson`
//! (customers, months, seed, output file, optional generator thread cap).

use std::io::{BufWriter, Write};
use std::time::Instant;

use clientlog_demo::{write_ndjson, Config, Generator};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let customers = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let months = args.next().map_or(Ok(24), |s| s.parse())?;
    let seed = args.next().map_or(Ok(1), |s| s.parse())?;
    let path = args
        .next()
        .unwrap_or_else(|| "/tmp/demo.ndjson".to_string());
    let threads: Option<usize> = args.next().map(|s| s.parse()).transpose()?;
    let started = Instant::now();
    let generator = Generator::new(Config {
        customers,
        months,
        seed,
        start: Config::DEFAULT_START,
    })?;
    let generator = match threads {
        Some(n) => generator.with_threads(n),
        None => generator,
    };
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let events = write_ndjson(generator, &mut out)?;
    out.flush()?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{events} events in {secs:.2}s ({:.0} events/s) -> {path}",
        events as f64 / secs
    );
    Ok(())
}
