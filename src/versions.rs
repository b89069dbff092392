//! `clientlog versions list | promote V | drop V | compare A B`: the projection versions of the
//! read store (live, candidates being built or waiting, retired), with each one's policies and
//! build progress; promotion (also back to a retired version), dropping a version's rows, and
//! the grade comparison of two versions.

use anyhow::Context;
use clientlog_projector::analysis::compare_versions;
use clientlog_projector::rebuild::version_json;
use clientlog_readstore::ProjectionVersion;

use crate::store_args::StoreArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Every version with its status, policies, customers and build progress.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make a version live (live projectors follow it); the live one is retired.
    Promote {
        version: i64,
        /// Promote even if it reflects less of the log than the live version (projectors
        /// catch it up; until then readers see older data).
        #[arg(long)]
        allow_behind: bool,
    },
    /// Delete every row of a version that is not live.
    Drop { version: i64 },
    /// Compare two versions' grades: transition matrix and the customers who moved most.
    Compare {
        from: i64,
        to: i64,
        #[arg(long, value_name = "N", default_value_t = 20)]
        top: usize,
    },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let store = args.store.open_store().await?;
    let result = match args.command {
        Command::List { json } => {
            let versions = store.versions().await?;
            if json {
                let list: Vec<_> = versions.iter().map(version_json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_table(&versions);
            }
            Ok(())
        }
        Command::Promote {
            version,
            allow_behind,
        } => store
            .promote(version, allow_behind)
            .await
            .map(|v| println!("version {} is live", v.version))
            .with_context(|| format!("while promoting version {version}")),
        Command::Drop { version } => store
            .drop_version(version)
            .await
            .map(|customers| println!("dropped version {version} ({customers} customer rows)"))
            .with_context(|| format!("while dropping version {version}")),
        Command::Compare { from, to, top } => {
            let comparison = compare_versions(&store, from, to, top)
                .await
                .context("while comparing versions")?;
            println!(
                "version {from} against version {to}: {} customers in both, {} only in {from}, \
                 {} only in {to}",
                comparison.report.customers, comparison.only_in_from, comparison.only_in_to
            );
            crate::simulate::print_grade_report(&comparison.report);
            Ok(())
        }
    };
    store.close().await;
    result
}

fn print_table(versions: &[ProjectionVersion]) {
    println!(
        "{:>7}  {:<9}  {:<23}  {:<23}  {:<23}  build",
        "version", "status", "grading", "lifecycle", "churn"
    );
    for v in versions {
        println!(
            "{:>7}  {:<9}  {:<23}  {:<23}  {:<23}  {}",
            v.version,
            v.status,
            v.lineage.grading_version,
            v.lineage.lifecycle_version,
            v.lineage.churn_version,
            build_summary(v)
        );
    }
}

fn build_summary(v: &ProjectionVersion) -> String {
    let b = &v.build;
    let Some(total) = b.total else {
        return "-".to_string();
    };
    let rate = b
        .rate()
        .map_or(String::new(), |r| format!(", {r:.0} records/s"));
    match (&b.error, b.finished_at) {
        (Some(error), _) => format!("failed after {}/{total}: {error}", b.done),
        (None, Some(_)) => format!("done, {} records{rate}", b.done),
        (None, None) => format!(
            "{}/{total}{rate}, eta {}",
            b.done,
            b.eta_seconds()
                .map_or("?".to_string(), |s| format!("{s:.0} s"))
        ),
    }
}
