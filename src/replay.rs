//! `clientlog replay --customer ID [--as-of T] [--known-at T2]`: the customer's verdict as of
//! business time T using only the events recorded by T2, folded from the audit copy by
//! [`clientlog_projector::replay`] (the same function the API and `export --as-of` use), printed
//! as JSON.

use anyhow::Context;
use clientlog_projector::replay::{parse_known_at, replay_customer, ReplayAt};
use time::OffsetDateTime;

use crate::store_args::{parse_time, StoreArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// The customer id.
    #[arg(long, value_name = "ID")]
    customer: String,
    /// Business time of the verdict: RFC 3339, YYYY-MM-DD or Unix seconds (default: now).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    as_of: Option<i64>,
    /// Only events recorded (appended to the log) by then: RFC 3339 (fractions of a second
    /// count), YYYY-MM-DD or Unix seconds (default: every event).
    #[arg(long, value_name = "T2", value_parser = parse_known_at)]
    known_at: Option<i64>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let policies = args.store.load_policies()?;
    let store = args.store.open_store().await?;
    let at = ReplayAt {
        as_of: args
            .as_of
            .unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp()),
        known_at_nanos: args.known_at,
    };
    let replay = replay_customer(&store, &args.customer, &policies, at)
        .await
        .with_context(|| format!("while replaying customer {}", args.customer))?;
    store.close().await;
    if replay.events_total == 0 {
        anyhow::bail!(
            "customer {:?} has no events in the audit copy",
            args.customer
        );
    }
    println!("{}", serde_json::to_string_pretty(&replay.to_json())?);
    Ok(())
}
