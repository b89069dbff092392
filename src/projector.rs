//! `clientlog projector`: runs the projector worker against the embedded log or Kafka, into
//! the embedded read store or PostgreSQL, until SIGTERM/SIGINT (the batch in progress is
//! committed first) or, with `--until-caught-up`, until it reflects the log as it was at start.

use std::time::Duration;

use anyhow::Context;
use clientlog_projector::{Clock, ProjectorConfig};
use tokio_util::sync::CancellationToken;

use crate::store_args::{parse_time, seconds, LogArgs, StoreArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    log: LogArgs,
    /// Most records per batch (one transaction).
    #[arg(long, default_value_t = clientlog_projector::DEFAULT_BATCH_SIZE as u32,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    batch_size: u32,
    /// Longest a batch waits for more records once it took every record ready, milliseconds
    /// (0: none; batches still grow with the load, to what arrived during the previous one).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    batch_wait_ms: u64,
    /// Re-evaluate every customer this often, seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    reevaluate_every: u64,
    /// Evaluate as of this time instead of the clock (reproducible runs): RFC 3339,
    /// YYYY-MM-DD or Unix seconds.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    as_of: Option<i64>,
    /// Stop once the read models reflect the log as it was at start.
    #[arg(long)]
    until_caught_up: bool,
    /// Customers kept folded in memory across batches while catching up with the end of the
    /// embedded log as it was at start, each written once (at most 5 s later); 0 writes every
    /// batch.
    #[arg(long, value_name = "N", default_value_t = clientlog_projector::DEFAULT_HOLD_CUSTOMERS)]
    hold: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let projector = args.store.projector().await?;
    let log = args.log.open(&args.store).await?;
    let config = ProjectorConfig {
        batch_size: args.batch_size as usize,
        batch_wait: Duration::from_millis(args.batch_wait_ms),
        reevaluate_every: seconds(args.reevaluate_every),
        clock: args.as_of.map_or(Clock::System, Clock::Fixed),
        until_caught_up: args.until_caught_up,
        progress: None,
        hold_customers: args.hold,
    };
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(crate::signals::cancel_on_signal(shutdown.clone()));
    let result = projector.run(&log, &config, shutdown.clone()).await;
    shutdown.cancel();
    signals
        .await
        .context("while stopping the signal handler")??;
    let stats = result.context("while projecting the log")?;
    projector.store().close().await;
    log.close().await;
    println!(
        "projector: {} records in {} batches: {} applied, {} duplicates, {} held, {} dead letters",
        stats.records,
        stats.batches,
        stats.applied,
        stats.duplicates,
        stats.held,
        stats.dead_letters
    );
    Ok(())
}
