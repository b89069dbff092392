//! `clientlog serve`: the embedded default in one process — the event log (`DIR/events.db`, or
//! Kafka with `--kafka`), a projector into the read store (`DIR/readstore.db`, or PostgreSQL)
//! and the HTTP API. `--demo` loads generated customers through the real append path on first
//! start and prints `curl` lines to try.
//!
//! Shutdown (SIGINT/SIGTERM): the API stops accepting and finishes in-flight requests, the
//! projector commits its batch in progress, then the log and the store are closed.

use std::time::{Duration, Instant};

use anyhow::Context;
use clientlog_demo::{Config, Generator, YearMonth};
use clientlog_eventlog::{AnyLog, AppendEvent, EventLog};
use clientlog_projector::{Clock, ProjectorConfig};
use tokio_util::sync::CancellationToken;

use crate::api::HttpArgs;
use crate::store_args::{seconds, LogArgs, StoreArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    http: HttpArgs,
    /// On first start (empty log), load generated demo customers and print what to try.
    #[arg(long)]
    demo: bool,
    /// Demo customers to generate.
    #[arg(long, value_name = "N", default_value_t = 500, requires = "demo")]
    demo_customers: u32,
    /// Months of demo history, ending this month.
    #[arg(long, value_name = "M", default_value_t = 24, requires = "demo")]
    demo_months: u32,
    /// Demo random seed.
    #[arg(long, value_name = "S", default_value_t = 1, requires = "demo")]
    demo_seed: u64,
    /// Re-evaluate every customer this often, seconds (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    reevaluate_every: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let auth = args.http.auth(&args.store)?;
    let projector = args.store.projector().await?;
    let log = args.log.open(&args.store).await?;

    let demo_customer = if args.demo {
        load_demo(&log, &args).await?
    } else {
        None
    };

    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(crate::signals::cancel_on_signal(shutdown.clone()));
    let projecting = {
        let projector = projector.clone();
        let log = log.clone();
        let config = ProjectorConfig {
            reevaluate_every: seconds(args.reevaluate_every),
            clock: Clock::System,
            ..ProjectorConfig::default()
        };
        let stop = shutdown.child_token();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let result = projector.run(&log, &config, stop).await;
            // A failed projector stops the whole process rather than serving stale data
            // forever.
            shutdown.cancel();
            result
        })
    };
    let config = args.http.config(&args.store, log.clone(), auth.clone())?;
    let (address, serve) = args
        .http
        .start(config, shutdown.clone().cancelled_owned())
        .await?;
    println!("clientlog: API listening on http://{address}");
    // The API answers while the demo's hints wait for the projector to catch up.
    let tries = async {
        if let Some(customer) = demo_customer {
            let address = address.to_string();
            tokio::select! {
                () = print_tries(&address, &customer, &projector, &log, &auth) => {}
                () = shutdown.cancelled() => {}
            }
        }
    };
    let (served, ()) = tokio::join!(serve, tries);
    shutdown.cancel();
    let projected = projecting.await.context("while stopping the projector")?;
    signals
        .await
        .context("while stopping the signal handler")??;
    projector.store().close().await;
    log.close().await;
    served.context("while serving the API")?;
    let stats = projected.context("while projecting the log")?;
    eprintln!(
        "clientlog: stopped; projector applied {} events in {} batches",
        stats.applied, stats.batches
    );
    Ok(())
}

/// Appends demo customers if the log is empty; returns a customer id to show.
async fn load_demo(log: &AnyLog, args: &Args) -> anyhow::Result<Option<String>> {
    let marks = log
        .high_water_marks()
        .await
        .context("while reading the log's end")?;
    let empty = match log {
        AnyLog::Embedded(_) => marks
            .values()
            .all(|&m| m <= clientlog_eventlog::sqlite::FIRST_OFFSET),
        AnyLog::Kafka(_) => marks.values().all(|&m| m == 0),
    };
    let months = args.demo_months.clamp(1, Config::MAX_MONTHS);
    let now = time::OffsetDateTime::now_utc();
    let index =
        i64::from(now.year()) * 12 + i64::from(u8::from(now.month()) - 1) - i64::from(months - 1);
    let start = YearMonth::new(
        index.div_euclid(12) as i32,
        (index.rem_euclid(12) + 1) as u8,
    )
    .context("while choosing the demo's first month")?;
    let mut generator = Generator::new(Config {
        customers: args.demo_customers,
        months,
        seed: args.demo_seed,
        start,
    })
    .context("while setting up the demo generator")?;
    let mut first_customer = None;
    if !empty {
        eprintln!("clientlog: the log is not empty; --demo loads nothing");
        // The same seed gives the same ids: show the first generated customer.
        if let Some(batch) = generator.next_batch() {
            first_customer = batch.first().map(|e| e.subject.as_str().to_string());
        }
        return Ok(first_customer);
    }
    let started = Instant::now();
    let mut appended = 0u64;
    eprintln!(
        "clientlog: loading {} demo customers, {months} months from {start}…",
        args.demo_customers
    );
    while let Some(batch) = generator.next_batch() {
        if first_customer.is_none() {
            first_customer = batch.first().map(|e| e.subject.as_str().to_string());
        }
        // The real append path: the canonical bytes, validated by the same decoder the API
        // and `clientlog append` use.
        let events = batch
            .iter()
            .map(|e| AppendEvent::from_bytes(e.encode()))
            .collect::<Result<Vec<_>, _>>()
            .context("the demo generator produced an invalid event")?;
        for chunk in events.chunks(5_000) {
            let outcomes = log
                .append(chunk)
                .await
                .context("while appending demo events")?;
            appended += outcomes.iter().filter(|o| !o.is_duplicate()).count() as u64;
        }
    }
    eprintln!(
        "clientlog: appended {appended} demo events in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(first_customer)
}

/// Waits (bounded) for the projector to catch up, then prints commands that work as printed.
async fn print_tries(
    address: &str,
    customer: &str,
    projector: &clientlog_projector::Projector,
    log: &AnyLog,
    auth: &clientlog_api::Auth,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let marks = log.high_water_marks().await.unwrap_or_default();
    loop {
        let checkpoints = projector
            .store()
            .checkpoints(projector.version())
            .await
            .unwrap_or_default();
        let caught_up = marks
            .iter()
            .all(|(p, hwm)| checkpoints.get(p).is_some_and(|c| c + 1 >= *hwm));
        if caught_up || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let owner = projector
        .store()
        .customer(projector.version(), customer)
        .await
        .ok()
        .flatten()
        .and_then(|row| row.owner);
    let auth_flag = if auth.is_open() {
        ""
    } else {
        " -H \"Authorization: Bearer $CLIENTLOG_TOKEN\""
    };
    let base = format!("http://{address}");
    println!("\nTry:");
    println!("  curl -s{auth_flag} '{base}/v1/customers?sort=risk&limit=5'");
    println!("  curl -s{auth_flag} '{base}/v1/customers/{customer}'");
    println!("  curl -s{auth_flag} '{base}/v1/customers/{customer}/timeline'");
    println!("  curl -s{auth_flag} '{base}/v1/customers/{customer}/history?limit=3&verify=true'");
    if let Some(owner) = owner {
        println!("  curl -s{auth_flag} '{base}/v1/reps/{owner}/portfolio'");
    }
    println!("  curl -s{auth_flag} '{base}/v1/stats'");
    println!("  curl -s{auth_flag} '{base}/openapi.json'");
    println!();
}
