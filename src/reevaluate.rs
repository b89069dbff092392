//! `clientlog reevaluate --as-of T`: re-evaluates every customer of the live projection
//! version from its stored state at business time T and records the transitions time caused
//! (declining → churned, contracts expiring), with a progress bar on a terminal. Safe beside a
//! running projector: each page is one transaction under the store's write lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::store_args::{parse_time, StoreArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// The business time to evaluate at: RFC 3339, YYYY-MM-DD or Unix seconds (default: now).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    as_of: Option<i64>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let projector = args.store.projector().await?;
    let as_of = args
        .as_of
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    let total = projector
        .store()
        .customer_count(projector.version())
        .await?;
    let bar = crate::rebuild::progress_bar("customers");
    bar.set_length(total.max(0) as u64);
    let done = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let (bar, done) = (bar.clone(), done.clone());
        async move {
            loop {
                bar.set_position(done.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let stats = projector.reevaluate_counting(as_of, &done).await;
    ticker.abort();
    bar.finish_and_clear();
    let stats = stats.context("while re-evaluating customers")?;
    projector.store().close().await;
    println!(
        "reevaluate: {} customers at {as_of}, {} transitions",
        stats.customers, stats.transitions
    );
    Ok(())
}
