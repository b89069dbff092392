//! `clientlog demo`: writes a realistic, deterministic demo history as NDJSON (one CloudEvents
//! JSON event per line) to a file or stdout, and optionally the churn ground truth as CSV.
//! The simulation itself lives in `clientlog-demo`; this module wires flags, files and progress.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clientlog_demo::{Config, Generator, YearMonth};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many customers to simulate.
    #[arg(long, default_value_t = 1000)]
    customers: u32,
    /// How many months of history.
    #[arg(long, default_value_t = 24)]
    months: u32,
    /// Random seed; the same seed gives byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First month of the history, YYYY-MM.
    #[arg(long, value_parser = parse_month, default_value = "2024-01")]
    start: YearMonth,
    /// Write the events here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the ground truth (customer_id,churned_at,reactivated_at) as CSV here.
    #[arg(long)]
    truth: Option<PathBuf>,
}

fn parse_month(s: &str) -> Result<YearMonth, String> {
    YearMonth::parse(s).map_err(|e| e.to_string())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || generate(args))
        .await
        .context("while running the demo generator")?
}

fn generate(args: Args) -> anyhow::Result<()> {
    let config = Config {
        customers: args.customers,
        months: args.months,
        seed: args.seed,
        start: args.start,
    };
    let started = Instant::now();
    let mut generator = Generator::new(config).context("while setting up the demo generator")?;

    let (sink, target): (Box<dyn Write>, String) = match &args.out {
        Some(path) => (
            Box::new(
                File::create(path).with_context(|| format!("while creating {}", path.display()))?,
            ),
            path.display().to_string(),
        ),
        None => (Box::new(io::stdout().lock()), "stdout".to_string()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);

    let progress = if io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(u64::from(args.months)), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template("{bar:30} month {pos}/{len} · {msg} · ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let mut events: u64 = 0;
    while let Some(batch) = generator.next_batch() {
        match clientlog_demo::write_ndjson(batch, &mut out) {
            Ok(n) => events += n,
            // A closed pipe (`clientlog demo | head`) ends the output quietly.
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(err) => return Err(err).context(format!("while writing events to {target}")),
        }
        progress.set_position(u64::from(generator.months_done()));
        let rate = events as f64 / started.elapsed().as_secs_f64().max(1e-9);
        progress.set_message(format!("{events} events, {rate:.0}/s"));
    }
    match out.flush() {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        result => result.with_context(|| format!("while writing events to {target}"))?,
    }
    progress.finish_and_clear();

    if let Some(path) = &args.truth {
        let file =
            File::create(path).with_context(|| format!("while creating {}", path.display()))?;
        let mut w = BufWriter::new(file);
        clientlog_demo::write_truth_csv(generator.truth(), &mut w)
            .and_then(|()| w.flush())
            .with_context(|| format!("while writing the ground truth to {}", path.display()))?;
    }

    let config = generator.config();
    let end = config.start.plus(config.months - 1);
    eprintln!(
        "demo: {events} events for {} customers, {} to {end}, seed {}, in {:.2}s → {target}",
        config.customers,
        config.start,
        config.seed,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
