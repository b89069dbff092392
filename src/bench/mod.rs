//! `clientlog bench`: every performance figure of issue 7 measured in one run on this machine,
//! each beside the limit it is compared with (measured in the same run), as one table on stdout
//! and a JSON file (`--json PATH`).
//!
//! * A figure group is one function in [`FIGURES`]: it gets the shared [`Bench`] (sizes, scratch
//!   directory, optional services, lazily built data sets) and returns its [`Figure`] rows.
//!   Adding a row is adding one function there.
//! * Every value and limit is a [`Stats`]: one warm-up run that is thrown away, then the median
//!   of `runs` runs with their min and max ([`measure`]); a figure held to a ratio to its limit
//!   alternates its runs with the limit's ([`measure_paired`]).
//! * A missed target never fails the command; an error does (after the table and the JSON are
//!   written, with the error in the failed group's row).
//!
//! The measuring code lives here and nowhere else: [`figures`] (decoding, the embedded and Kafka
//! logs, projection, simulation), [`http`] (the API on a real loopback socket: lookups, lists,
//! appends, append → visible) and [`load`] (the built-in HTTP load generator).

mod figures;
mod http;
mod load;

use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use futures::future::BoxFuture;
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A reduced set (smaller sizes, fewer runs) that finishes in under 2 minutes.
    #[arg(long, conflicts_with = "smoke")]
    quick: bool,
    /// Tiny sizes, to check that every figure runs (the test suite uses it); seconds.
    #[arg(long)]
    smoke: bool,
    /// Where to write the results as JSON.
    #[arg(long, value_name = "PATH", default_value = "bench-results.json")]
    json: PathBuf,
    /// A Kafka-compatible broker for the Kafka append figure (skipped without one).
    #[arg(long, value_name = "HOST:PORT", env = "CLIENTLOG_TEST_KAFKA")]
    kafka: Option<String>,
    /// A PostgreSQL server for the projection figure (a scratch database is created on it
    /// and dropped afterwards; skipped without one).
    #[arg(long, value_name = "URL", env = "CLIENTLOG_TEST_DATABASE_URL")]
    database_url: Option<String>,
    /// Only the figure groups whose name contains this (see `--list`).
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
    /// Print the figure groups and exit.
    #[arg(long)]
    list: bool,
    /// Measured runs per figure (after one warm-up run); default 5, 3 with --quick.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    runs: Option<u32>,
}

/// How big each measurement is.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    pub mode: &'static str,
    pub runs: usize,
    /// CPU-seconds of decoding (and folding, evaluating) per run.
    pub cpu_secs: f64,
    /// Batches of 1 000 events per embedded append run.
    pub append_batches: usize,
    /// Events each of the 64 concurrent clients appends per run.
    pub concurrent_per_client: usize,
    /// Events the single writer appends per run.
    pub single_writer_events: usize,
    /// Batches of 1 000 records per Kafka run.
    pub kafka_batches: usize,
    /// Demo customers and months of the projection's log.
    pub projection_customers: u32,
    pub projection_months: u32,
    /// Demo customers and months of the rebuild's log (its own, ending before `AS_OF`), and
    /// the runs of that figure.
    pub rebuild_customers: u32,
    pub rebuild_months: u32,
    pub rebuild_runs: usize,
    /// Demo customers (one month of history each) of the rebuild whose memory is measured.
    pub memory_customers: u32,
    /// Customers in the store the simulation reads.
    pub simulate_customers: u64,
    /// Demo customers and months served by the API.
    pub http_customers: u32,
    pub http_months: u32,
    /// Seconds of load per HTTP run.
    pub http_secs: f64,
    /// Seconds of steady appends per append → visible run.
    pub visible_secs: f64,
}

impl Sizes {
    fn full() -> Self {
        Self {
            mode: "full",
            runs: 5,
            cpu_secs: 1.0,
            append_batches: 40,
            concurrent_per_client: 40,
            single_writer_events: 400,
            kafka_batches: 20,
            projection_customers: 4_000,
            projection_months: 24,
            // Over 5 M events (5.08 M): 20 000 customers over 19⅓ years. (Ten years of 40 000
            // would be as many events, but building the live version beside which the rebuild
            // runs would take twice as long, past the full run's 20 minutes.)
            rebuild_customers: 20_000,
            rebuild_months: 232,
            rebuild_runs: 3,
            memory_customers: 150_000,
            simulate_customers: 1_000_000,
            http_customers: 100_000,
            http_months: 12,
            http_secs: 5.0,
            visible_secs: 10.0,
        }
    }

    fn quick() -> Self {
        Self {
            mode: "quick",
            runs: 3,
            cpu_secs: 0.3,
            append_batches: 10,
            concurrent_per_client: 10,
            single_writer_events: 100,
            kafka_batches: 5,
            projection_customers: 500,
            projection_months: 12,
            rebuild_customers: 500,
            rebuild_months: 12,
            rebuild_runs: 3,
            memory_customers: 20_000,
            simulate_customers: 100_000,
            http_customers: 2_000,
            http_months: 6,
            http_secs: 2.0,
            visible_secs: 3.0,
        }
    }

    fn smoke() -> Self {
        Self {
            mode: "smoke",
            runs: 3,
            cpu_secs: 0.02,
            append_batches: 1,
            concurrent_per_client: 2,
            single_writer_events: 10,
            kafka_batches: 1,
            projection_customers: 30,
            projection_months: 3,
            rebuild_customers: 30,
            rebuild_months: 3,
            rebuild_runs: 3,
            memory_customers: 50,
            simulate_customers: 500,
            http_customers: 50,
            http_months: 3,
            http_secs: 0.2,
            visible_secs: 0.3,
        }
    }
}

/// What every figure group shares.
pub struct Bench {
    pub sizes: Sizes,
    pub kafka: Option<String>,
    pub database_url: Option<String>,
    /// Scratch files of this run (logs, stores), removed at the end.
    pub dir: tempfile::TempDir,
    /// The demo log and its SQLite projection, built once on first use.
    projected: Option<figures::Projected>,
    /// The API over a demo book, started once on first use.
    server: Option<http::Server>,
}

impl Bench {
    /// A fresh path in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("{name}-{}", uuid::Uuid::new_v4().simple()))
    }
}

/// The median, min and max of the measured runs (the warm-up run is not among them).
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: Vec<f64>,
}

impl Stats {
    pub fn of(mut runs: Vec<f64>) -> Self {
        runs.sort_by(f64::total_cmp);
        let n = runs.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => runs[n / 2],
            _ => (runs[n / 2 - 1] + runs[n / 2]) / 2.0,
        };
        Self {
            median,
            min: runs.first().copied().unwrap_or(f64::NAN),
            max: runs.last().copied().unwrap_or(f64::NAN),
            runs,
        }
    }
}

/// Runs `run` once as a warm-up, then `runs` times, and keeps the measured values.
pub async fn measure<F, Fut>(runs: usize, mut run: F) -> anyhow::Result<Stats>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<f64>>,
{
    run().await.context("in the warm-up run")?;
    let mut values = Vec::with_capacity(runs);
    for i in 0..runs {
        values.push(run().await.with_context(|| format!("in run {}", i + 1))?);
    }
    Ok(Stats::of(values))
}

/// Measures a figure and its limit in alternation: a warm-up run of each, then `runs` pairs,
/// the value first in even pairs and the limit first in odd ones. The machine's speed drifts by
/// a fifth within minutes; runs of the two taken seconds apart see the same machine, so their
/// ratio holds still where two blocks of runs a minute apart did not.
pub async fn measure_paired<V, VFut, L, LFut>(
    runs: usize,
    mut value: V,
    mut limit: L,
) -> anyhow::Result<(Stats, Stats)>
where
    V: FnMut() -> VFut,
    VFut: Future<Output = anyhow::Result<f64>>,
    L: FnMut() -> LFut,
    LFut: Future<Output = anyhow::Result<f64>>,
{
    value().await.context("in the warm-up run")?;
    limit().await.context("in the limit's warm-up run")?;
    let (mut values, mut limits) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        let in_run = || format!("in run {}", i + 1);
        let in_limit_run = || format!("in the limit's run {}", i + 1);
        if i % 2 == 0 {
            values.push(value().await.with_context(in_run)?);
            limits.push(limit().await.with_context(in_limit_run)?);
        } else {
            limits.push(limit().await.with_context(in_limit_run)?);
            values.push(value().await.with_context(in_run)?);
        }
    }
    Ok((Stats::of(values), Stats::of(limits)))
}

/// What a figure is held to. Every bound that is set must hold for `pass`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Target {
    /// As the issue states it.
    pub text: String,
    /// The value's median is at least this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_least: Option<f64>,
    /// The value's median is below this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// value / limit (medians) is at least this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_at_least: Option<f64>,
    /// The p99 latency's median is below this, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_below_ms: Option<f64>,
}

impl Target {
    pub fn text(text: &str) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    /// Of `value` and `limit`: `events/s`, `req/s`, `ms`, `s`.
    pub unit: &'static str,
    pub value: Option<Stats>,
    /// For request figures: the 99th-percentile latency of each run, milliseconds.
    pub p99_ms: Option<Stats>,
    /// What the limit is (`serde_json::Value parse of the same bytes`, …); `None`: no limit.
    pub limit_name: Option<String>,
    pub limit: Option<Stats>,
    pub limit_p99_ms: Option<Stats>,
    /// value / limit, medians.
    pub ratio: Option<f64>,
    pub target: Target,
    /// `None` when there is nothing to judge (skipped, failed, or a report-only row).
    pub pass: Option<bool>,
    /// Why the row has no value: `skipped: no broker`, or the error.
    pub skipped: Option<String>,
    pub error: Option<String>,
    /// What else was seen (sizes, events per commit, …).
    pub note: Option<String>,
}

impl Figure {
    pub fn new(name: impl Into<String>, unit: &'static str, target: Target) -> Self {
        Self {
            name: name.into(),
            unit,
            value: None,
            p99_ms: None,
            limit_name: None,
            limit: None,
            limit_p99_ms: None,
            ratio: None,
            target,
            pass: None,
            skipped: None,
            error: None,
            note: None,
        }
    }

    pub fn value(mut self, value: Stats) -> Self {
        self.value = Some(value);
        self
    }

    pub fn p99(mut self, p99_ms: Stats) -> Self {
        self.p99_ms = Some(p99_ms);
        self
    }

    pub fn limit(mut self, name: impl Into<String>, limit: Stats) -> Self {
        self.limit_name = Some(name.into());
        self.limit = Some(limit);
        self
    }

    pub fn limit_p99(mut self, p99_ms: Stats) -> Self {
        self.limit_p99_ms = Some(p99_ms);
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    pub fn skipped(mut self, why: impl Into<String>) -> Self {
        self.skipped = Some(why.into());
        self
    }

    /// Fills `ratio` and `pass` from the measured values.
    fn judge(&mut self) {
        let value = self.value.as_ref().map(|s| s.median);
        self.ratio = match (value, &self.limit) {
            (Some(v), Some(l)) if l.median > 0.0 => Some(v / l.median),
            _ => None,
        };
        let Some(value) = value else {
            self.pass = None;
            return;
        };
        let t = &self.target;
        let mut checks = Vec::new();
        if let Some(min) = t.at_least {
            checks.push(value >= min);
        }
        if let Some(max) = t.below {
            checks.push(value < max);
        }
        if let Some(min) = t.ratio_at_least {
            checks.push(self.ratio.is_some_and(|r| r >= min));
        }
        if let Some(max) = t.p99_below_ms {
            checks.push(self.p99_ms.as_ref().is_some_and(|p| p.median < max));
        }
        self.pass = (!checks.is_empty()).then(|| checks.iter().all(|&c| c));
    }
}

/// A group of figures: one function, measured in one go (they may share a set-up).
pub type FigureFn = for<'a> fn(&'a mut Bench) -> BoxFuture<'a, anyhow::Result<Vec<Figure>>>;

/// Every figure group, in the order they run; the names are what `--only` matches. A group
/// that fails is one row named after the group, with the error.
pub const FIGURES: &[(&str, FigureFn)] = &[
    ("decode", figures::decode),
    ("embedded-append", figures::embedded_append),
    ("embedded-concurrent", figures::embedded_concurrent),
    ("kafka-append", figures::kafka_append),
    ("projection", figures::projection),
    ("simulate", figures::simulate),
    ("rebuild", figures::rebuild),
    ("memory", figures::rebuild_memory),
    ("http", http::requests),
    ("append-visible", http::append_visible),
];

pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.list {
        for (name, _) in FIGURES {
            println!("{name}");
        }
        return Ok(());
    }
    let mut sizes = if args.smoke {
        Sizes::smoke()
    } else if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if let Some(runs) = args.runs {
        sizes.runs = runs as usize;
    }
    let mut bench = Bench {
        sizes,
        kafka: args.kafka.filter(|k| !k.trim().is_empty()),
        database_url: args.database_url.filter(|u| !u.trim().is_empty()),
        dir: tempfile::Builder::new()
            .prefix("clientlog-bench-")
            .tempdir()
            .context("while creating the scratch directory")?,
        projected: None,
        server: None,
    };
    let started = Instant::now();
    let started_at = time::OffsetDateTime::now_utc();
    eprintln!(
        "bench: {} run, {} measured runs per figure after a warm-up, scratch files in {}",
        bench.sizes.mode,
        bench.sizes.runs,
        bench.dir.path().display()
    );
    let mut rows = Vec::new();
    let mut failed = 0;
    for (name, figure) in FIGURES {
        if args.only.as_ref().is_some_and(|only| !name.contains(only)) {
            continue;
        }
        let group_started = Instant::now();
        eprintln!("bench: {name}…");
        match figure(&mut bench).await {
            Ok(figures) => rows.extend(figures),
            Err(err) => {
                failed += 1;
                eprintln!("bench: {name} failed: {err:#}");
                let mut row = Figure::new(*name, "", Target::default());
                row.error = Some(format!("{err:#}"));
                rows.push(row);
            }
        }
        eprintln!(
            "bench: {name} done in {:.1} s",
            group_started.elapsed().as_secs_f64()
        );
    }
    for row in &mut rows {
        row.judge();
    }
    if let Some(projected) = bench.projected.take() {
        projected.close().await;
    }
    if let Some(server) = bench.server.take() {
        if let Err(err) = server.stop().await {
            failed += 1;
            eprintln!("bench: stopping the API failed: {err:#}");
        }
    }
    let elapsed = started.elapsed();
    print!("{}", table(&rows));
    println!(
        "\n{} run of {} on {}, {} cores; {:.0} s; median of {} runs after a warm-up (min–max in brackets)",
        bench.sizes.mode,
        started_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        hostname(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        elapsed.as_secs_f64(),
        bench.sizes.runs,
    );
    let json = serde_json::json!({
        "started_at": started_at.format(&time::format_description::well_known::Rfc3339).ok(),
        "seconds": elapsed.as_secs_f64(),
        "machine": {
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "memory_bytes": memory_bytes(),
            "hostname": hostname(),
        },
        "sizes": bench.sizes,
        "figures": rows,
    });
    std::fs::write(&args.json, serde_json::to_vec_pretty(&json)?)
        .with_context(|| format!("while writing {}", args.json.display()))?;
    eprintln!("bench: results in {}", args.json.display());
    if failed > 0 {
        anyhow::bail!("{failed} figure group(s) failed; see their rows");
    }
    Ok(())
}

/// The rows as a Markdown table.
fn table(rows: &[Figure]) -> String {
    let mut out = String::from(
        "| figure | value | limit | ratio | target | pass |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for f in rows {
        let value = match (&f.value, &f.skipped, &f.error) {
            (_, _, Some(err)) => format!("error: {err}"),
            (_, Some(why), _) => why.clone(),
            (Some(v), _, _) => with_p99(v, f.unit, f.p99_ms.as_ref()),
            (None, None, None) => "—".into(),
        };
        let limit = match (&f.limit_name, &f.limit) {
            (Some(name), Some(l)) => {
                format!("{name}: {}", with_p99(l, f.unit, f.limit_p99_ms.as_ref()))
            }
            (Some(name), None) => name.clone(),
            _ => "—".into(),
        };
        let ratio = f
            .ratio
            .map_or("—".into(), |r| format!("{:.0} %", r * 100.0));
        let pass = match f.pass {
            Some(true) => "pass",
            Some(false) => "FAIL",
            None => "—",
        };
        let mut name = f.name.clone();
        if let Some(note) = &f.note {
            name = format!("{name} ({note})");
        }
        out.push_str(&format!(
            "| {name} | {value} | {limit} | {ratio} | {} | {pass} |\n",
            if f.target.text.is_empty() {
                "—"
            } else {
                &f.target.text
            }
        ));
    }
    out
}

fn with_p99(s: &Stats, unit: &str, p99: Option<&Stats>) -> String {
    let mut text = format!(
        "{} {unit} [{}–{}]",
        number(s.median),
        number(s.min),
        number(s.max)
    );
    if let Some(p) = p99 {
        text.push_str(&format!(
            ", p99 {} ms [{}–{}]",
            number(p.median),
            number(p.min),
            number(p.max)
        ));
    }
    text
}

/// A number to read at a glance: `412 k`, `1.25 M`, `3.4`, `0.123`.
fn number(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        "—".into()
    } else if a >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0} k", x / 1e3)
    } else if a >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_runs() {
        let s = Stats::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stats::of(vec![4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }

    #[test]
    fn a_figure_passes_only_when_every_bound_holds() {
        let target = Target {
            text: "≥ 10/s, ≥ 50 % of limit".into(),
            at_least: Some(10.0),
            ratio_at_least: Some(0.5),
            ..Target::default()
        };
        let mut f = Figure::new("x", "events/s", target.clone())
            .value(Stats::of(vec![12.0; 3]))
            .limit("bare", Stats::of(vec![20.0; 3]));
        f.judge();
        assert_eq!((f.ratio, f.pass), (Some(0.6), Some(true)));
        let mut f = Figure::new("x", "events/s", target)
            .value(Stats::of(vec![12.0; 3]))
            .limit("bare", Stats::of(vec![30.0; 3]));
        f.judge();
        assert_eq!(f.pass, Some(false));
        let mut skipped = Figure::new("k", "events/s", Target::text("≥ 80 %")).skipped("no");
        skipped.judge();
        assert_eq!(skipped.pass, None);
    }

    #[tokio::test]
    async fn paired_runs_alternate_and_leave_the_warm_ups_out() {
        // Each run returns its place in the sequence of all runs, value's and limit's alike.
        let order = std::sync::Mutex::new(Vec::new());
        let run = |who: char| {
            let order = &order;
            async move {
                let mut order = order.lock().unwrap();
                order.push(who);
                Ok(order.len() as f64)
            }
        };
        let (value, limit) = measure_paired(4, || run('v'), || run('l')).await.unwrap();
        assert_eq!(
            order.into_inner().unwrap().iter().collect::<String>(),
            "vlvllvvllv"
        );
        assert_eq!(value.runs, [3.0, 6.0, 7.0, 10.0]);
        assert_eq!(limit.runs, [4.0, 5.0, 8.0, 9.0]);
    }
}
