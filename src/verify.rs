//! `clientlog verify`: checks the live read models and the audit copy against the event log
//! (see [`clientlog_projector::verify`]) and prints every difference by customer and field;
//! exits non-zero if there is any.

use anyhow::Context;

use crate::store_args::{LogArgs, StoreArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    log: LogArgs,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let policies = args.store.load_policies()?;
    let store = args.store.open_store().await?;
    if let Some(live) = store.live_version().await? {
        let l = &live.lineage;
        anyhow::ensure!(
            l.grading_version == policies.grading.version
                && l.lifecycle_version == policies.lifecycle.version
                && l.churn_version == policies.churn.version,
            "the live version was built with other policies (grading {}, lifecycle {}, churn {}); \
             pass them with --policies",
            l.grading_version,
            l.lifecycle_version,
            l.churn_version
        );
    }
    let log = args.log.open(&args.store).await?;
    let report = clientlog_projector::verify::verify(&store, &log, &policies)
        .await
        .context("while verifying the read store against the log")?;
    store.close().await;
    log.close().await;
    for d in &report.differences {
        println!("{}\t{}\t{}", d.customer, d.field, d.detail);
    }
    let customers: std::collections::BTreeSet<&str> = report
        .differences
        .iter()
        .map(|d| d.customer.as_str())
        .collect();
    eprintln!(
        "verify: {} log records, {} customers, {} audit rows: {} differences in {} customers",
        report.log_records,
        report.customers,
        report.audit_rows,
        report.differences.len(),
        customers.len()
    );
    if !report.differences.is_empty() {
        anyhow::bail!(
            "{} differences between the read store and the log",
            report.differences.len()
        );
    }
    println!("verify: ok");
    Ok(())
}
