//! Live projection throughput: a demo history in an embedded log, projected from scratch into
//! SQLite and (with `CLIENTLOG_TEST_DATABASE_URL`) PostgreSQL, beside a bare decode-and-fold of
//! the same bytes in memory. Prints events/s for each.
//!
//! `cargo bench -p clientlog-projector --bench projector` (sizes: `BENCH_CUSTOMERS`, default
//! 5000; `BENCH_MONTHS`, default 24; `BENCH_BATCH`, default 20000).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clientlog_demo::{Config, Generator, YearMonth};
use clientlog_domain::{evaluate, CustomerState, Event, Policies};
use clientlog_eventlog::{AppendEvent, EventLog, SqliteLog};
use clientlog_projector::{Clock, Projector, ProjectorConfig};
use clientlog_readstore::test_support::{Backend, TestStore};
use tokio_util::sync::CancellationToken;

const AS_OF: i64 = 1_767_225_600;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let customers = env("BENCH_CUSTOMERS", 5000) as u32;
    let months = env("BENCH_MONTHS", 24) as u32;
    let batch = env("BENCH_BATCH", 20_000) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SqliteLog::open_path(dir.path().join("events.db"))
        .await
        .expect("log");
    let mut generator = Generator::new(Config {
        customers,
        months,
        seed: 42,
        start: YearMonth::new(2024, 1).expect("month"),
    })
    .expect("generator");
    let mut bytes: Vec<Vec<u8>> = Vec::new();
    while let Some(events) = generator.next_batch() {
        let events: Vec<AppendEvent> = events.iter().map(AppendEvent::from_event).collect();
        for outcome in log
            .append(&events)
            .await
            .expect("append")
            .iter()
            .zip(&events)
        {
            if !outcome.0.is_duplicate() {
                bytes.push(outcome.1.bytes().to_vec());
            }
        }
    }
    let n = bytes.len() as f64;
    println!(
        "{} events, {customers} customers, {months} months, batch {batch}",
        bytes.len()
    );

    // Bare: decode and fold in memory, no evaluation, no store.
    let started = Instant::now();
    let mut states: HashMap<String, CustomerState> = HashMap::new();
    for b in &bytes {
        let event = Event::decode(b).expect("valid");
        states
            .entry(event.subject.as_str().to_string())
            .or_default()
            .apply(&event);
    }
    report("decode + fold (memory)", n, started.elapsed());

    // Bare plus what the projector adds in CPU: one evaluation per event.
    let policies = Policies::defaults();
    let started = Instant::now();
    let mut states: HashMap<String, CustomerState> = HashMap::new();
    for b in &bytes {
        let event = Event::decode(b).expect("valid");
        let state = states
            .entry(event.subject.as_str().to_string())
            .or_default();
        state.apply(&event);
        std::hint::black_box(evaluate(state, &policies, AS_OF));
    }
    report(
        "decode + fold + evaluate per event (memory)",
        n,
        started.elapsed(),
    );

    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(test_store) = TestStore::new("bench projector", backend).await else {
            continue;
        };
        let store = test_store.open().await.expect("store");
        let projector = Projector::new(store.clone(), Policies::defaults())
            .await
            .expect("projector");
        let config = ProjectorConfig {
            batch_size: batch,
            batch_wait: Duration::from_millis(100),
            reevaluate_every: None,
            clock: Clock::Fixed(AS_OF),
            until_caught_up: true,
            progress: None,
        };
        let started = Instant::now();
        let stats = projector
            .run(&log, &config, CancellationToken::new())
            .await
            .expect("run");
        let elapsed = started.elapsed();
        assert_eq!(stats.applied as usize, bytes.len());
        report(
            &format!(
                "live projection into {} ({} batches)",
                store.kind(),
                stats.batches
            ),
            n,
            elapsed,
        );
        store.close().await;
        test_store.cleanup().await;
    }
    log.close().await;
}

fn report(what: &str, events: f64, elapsed: Duration) {
    println!(
        "{what:<50} {:>9.0} events/s  ({:.2} s)",
        events / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
}
