//! `clientlog reevaluate --as-of T`: re-evaluates every customer of the live projection
//! version from its stored state at business time T and records the transitions time caused
//! (declining → churned, contracts expiring). Safe beside a running projector: each page is
//! one transaction under the version's write lock.

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
    let stats = projector
        .reevaluate(as_of)
        .await
        .context("while re-evaluating customers")?;
    projector.store().close().await;
    println!(
        "reevaluate: {} customers at {as_of}, {} transitions",
        stats.customers, stats.transitions
    );
    Ok(())
}
