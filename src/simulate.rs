//! `clientlog simulate --grading FILE [--top N] [--format table|json]`: what-if grading of
//! every customer of the live version under another grading policy, from the stored grade
//! inputs (no replay), by [`clientlog_projector::analysis::simulate_store`] — the code the
//! API's `POST /v1/simulations` runs.

use std::path::PathBuf;

use anyhow::Context;
use clientlog_domain::policy::GradingPolicy;
use clientlog_domain::simulate::SimulationReport;
use clientlog_domain::Grade;

use crate::store_args::StoreArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// The grading policy to simulate (a whole grading.toml).
    #[arg(long, value_name = "FILE")]
    grading: PathBuf,
    /// How many customers whose score moved most to list.
    #[arg(long, value_name = "N", default_value_t = 20)]
    top: usize,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.grading)
        .with_context(|| format!("while reading {}", args.grading.display()))?;
    let file = args.grading.display().to_string();
    let policy = clientlog_domain::policy::parse::<GradingPolicy>(&file, &text)
        .with_context(|| format!("while loading the grading policy {file}"))?;
    let store = args.store.open_store().await?;
    let version = store
        .live_version()
        .await?
        .context("no customers are projected yet")?
        .version;
    let started = std::time::Instant::now();
    let outcome =
        clientlog_projector::analysis::simulate_store(&store, version, &policy.policy, args.top)
            .await
            .context("while simulating")?;
    let elapsed = started.elapsed();
    store.close().await;
    let r = &outcome.report;
    if args.format == Format::Json {
        let answer = serde_json::json!({
            "report": r, "skipped": outcome.skipped.len(), "policy_version": policy.version,
        });
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        println!("customers: {}  (grading {})", r.customers, policy.version);
        print_grade_report(r);
        if !outcome.skipped.is_empty() {
            println!("\nskipped (unreadable rows): {}", outcome.skipped.len());
        }
    }
    eprintln!(
        "simulate: {} customers in {:.3} s",
        r.customers,
        elapsed.as_secs_f64()
    );
    Ok(())
}

/// Prints grade distributions before and after, the transition matrix and the top movers.
pub fn print_grade_report(r: &SimulationReport) {
    println!("grade  before   after");
    for g in Grade::ALL {
        let i = g as usize;
        println!("{:<5} {:>7} {:>7}", g.as_str(), r.before[i], r.after[i]);
    }
    println!("\ntransitions (rows: before, columns: after)");
    println!(
        "      {}",
        Grade::ALL.map(|g| format!("{:>7}", g.as_str())).join("")
    );
    for g in Grade::ALL {
        let row = r.matrix[g as usize].map(|n| format!("{n:>7}")).join("");
        println!("{:<5} {row}", g.as_str());
    }
    println!("\ntop movers");
    for m in &r.top_movers {
        println!(
            "{:<24} {} -> {}  {:>6.2} -> {:>6.2}  ({:+.2})",
            m.customer,
            m.grade_before.as_str(),
            m.grade_after.as_str(),
            m.score_before,
            m.score_after,
            m.delta
        );
    }
}
