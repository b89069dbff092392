//! `clientlog rebuild [--grading F] [--lifecycle F] [--churn F] [--as-of T] [--no-promote]`:
//! builds a new projection version from the start of the log beside the live one, with a
//! progress bar, promotes it once it has caught up (live projectors follow it), and compares
//! its grades with the previous live version's. Policies not given are the live version's.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clientlog_domain::policy::{self, Policies};
use clientlog_projector::rebuild::{run_rebuild, RebuildOptions};
use clientlog_projector::{Clock, Projector};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::store_args::{parse_time, LogArgs, StoreArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    log: LogArgs,
    /// A grading policy (grading.toml) for the new version.
    #[arg(long, value_name = "FILE")]
    grading: Option<PathBuf>,
    /// A lifecycle policy (lifecycle.toml) for the new version.
    #[arg(long, value_name = "FILE")]
    lifecycle: Option<PathBuf>,
    /// A churn policy (churn.toml) for the new version.
    #[arg(long, value_name = "FILE")]
    churn: Option<PathBuf>,
    /// Evaluate every verdict at this business time (default: the wall clock at each batch).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    as_of: Option<i64>,
    /// Keep the new version as a candidate (`clientlog versions promote V` promotes it later).
    #[arg(long)]
    no_promote: bool,
    /// Most records read per batch.
    #[arg(long, value_name = "N", default_value_t = clientlog_projector::rebuild::DEFAULT_BATCH_SIZE)]
    batch: usize,
    /// Customers folded in memory before their rows are written (each once, with the
    /// checkpoint); more is faster and takes more memory. 0 writes every batch.
    #[arg(long, value_name = "N", default_value_t = clientlog_projector::rebuild::DEFAULT_HOLD_CUSTOMERS)]
    hold: usize,
    /// Customers whose score moved most to list in the comparison.
    #[arg(long, value_name = "N", default_value_t = 20)]
    top: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let store = args.store.open_store().await?;
    let log = args.log.open(&args.store).await?;
    let policies = new_policies(&args, &store).await?;
    let projector = Projector::candidate(store.clone(), policies)
        .await
        .context("while creating the new projection version")?;
    let version = projector.version();
    eprintln!("rebuild: building version {version} from the start of the log");

    let bar = progress_bar("records");
    let shown = bar.clone();
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(crate::signals::cancel_on_signal(shutdown.clone()));
    let options = RebuildOptions {
        promote: !args.no_promote,
        clock: args.as_of.map_or(Clock::System, Clock::Fixed),
        batch_size: args.batch,
        hold_customers: args.hold,
        top_movers: args.top,
    };
    let outcome = run_rebuild(&projector, &log, &options, shutdown.clone(), move |p| {
        if let Some(total) = p.total {
            shown.set_length(total.max(0) as u64);
        }
        shown.set_position(p.done.max(0) as u64);
    })
    .await;
    shutdown.cancel();
    signals
        .await
        .context("while stopping the signal handler")??;
    bar.finish_and_clear();
    store.close().await;
    log.close().await;
    let outcome = outcome.with_context(|| format!("while building version {version}"))?;

    let rate = outcome.stats.records as f64 / outcome.elapsed.as_secs_f64().max(1e-9);
    println!(
        "version {version}: {} records ({} applied, {} duplicates, {} held, {} dead letters) in \
         {:.1} s, {rate:.0} records/s; peak RSS {}",
        outcome.stats.records,
        outcome.stats.applied,
        outcome.stats.duplicates,
        outcome.stats.held,
        outcome.stats.dead_letters,
        outcome.elapsed.as_secs_f64(),
        peak_rss().unwrap_or_else(|| "unknown".into()),
    );
    match (outcome.promoted, outcome.previous) {
        (true, Some(previous)) => println!("promoted: version {version} is live (was {previous})"),
        (true, None) => println!("promoted: version {version} is live"),
        (false, _) => println!(
            "version {version} is a candidate: `clientlog versions promote {version}` makes it live"
        ),
    }
    if let Some(comparison) = &outcome.comparison {
        println!(
            "\nversion {} against version {}: {} customers in both, {} only in {}, {} only in {}",
            comparison.from,
            comparison.to,
            comparison.report.customers,
            comparison.only_in_from,
            comparison.from,
            comparison.only_in_to,
            comparison.to
        );
        crate::simulate::print_grade_report(&comparison.report);
    }
    Ok(())
}

/// The live version's policies (or, on a store without one, `--policies` or the defaults),
/// with each policy given on the command line in its place.
async fn new_policies(
    args: &Args,
    store: &clientlog_readstore::ReadStore,
) -> anyhow::Result<Policies> {
    let given = args.store.load_policies()?;
    let mut policies = match store.live_version().await? {
        Some(live) => clientlog_projector::policies_of(store, &live, &given)
            .await
            .context("while reading the live version's policies")?,
        None => given,
    };
    if let Some(path) = &args.grading {
        policies.grading = policy::load(path).context("while loading the grading policy")?;
    }
    if let Some(path) = &args.lifecycle {
        policies.lifecycle = policy::load(path).context("while loading the lifecycle policy")?;
    }
    if let Some(path) = &args.churn {
        policies.churn = policy::load(path).context("while loading the churn policy")?;
    }
    Ok(policies)
}

/// A bar of `{pos}/{len} UNIT` with rate and ETA on a terminal; hidden in a pipe.
pub fn progress_bar(unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}");
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr()).with_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The process's peak resident set size (`VmHWM`), as the kernel reports it.
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.0} MiB", kib as f64 / 1024.0))
}
