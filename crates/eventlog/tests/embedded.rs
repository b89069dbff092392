//! The contract suite against the embedded SQLite log, plus what only the embedded log
//! promises (group commit, append-only file).

mod contract;

use std::time::Duration;

use clientlog_eventlog::test_support::{purchase, sqlite_insert_raw};
use clientlog_eventlog::{EventLog, Position, SqliteConfig, SqliteLog};
use contract::Harness;
use futures::StreamExt;

struct Embedded {
    // Held so the directory lives as long as the log.
    dir: tempfile::TempDir,
    log: Option<SqliteLog>,
}

impl Embedded {
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("events.db")
    }
}

fn config(path: std::path::PathBuf) -> SqliteConfig {
    SqliteConfig {
        poll_interval: Duration::from_millis(50),
        ..SqliteConfig::new(path)
    }
}

impl Harness for Embedded {
    type Log = SqliteLog;

    async fn start(_test: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = SqliteLog::open(config(dir.path().join("events.db")))
            .await
            .expect("open the log");
        Some(Self {
            dir,
            log: Some(log),
        })
    }

    fn log(&self) -> &SqliteLog {
        self.log.as_ref().expect("the log is open")
    }

    async fn inject_raw(&self, bytes: &[u8]) -> Position {
        let offset = sqlite_insert_raw(&self.path(), bytes)
            .await
            .expect("insert raw bytes");
        Position::new(0, offset)
    }

    async fn restart(&mut self) {
        if let Some(log) = self.log.take() {
            log.close().await;
        }
        self.log = Some(
            SqliteLog::open(config(self.path()))
                .await
                .expect("reopen the log"),
        );
    }
}

contract_tests!(
    Embedded;
    keeps_exact_bytes_and_positions,
    keeps_per_customer_order,
    is_idempotent,
    survives_concurrent_appenders,
    appends_large_batches,
    reports_bad_records,
    reads_from_positions_and_waits,
    is_durable_across_restart,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_start_at_one_in_partition_zero() {
    let harness = Embedded::start("offsets_start_at_one")
        .await
        .expect("embedded");
    let log = harness.log();
    assert_eq!(log.high_water_marks().await.unwrap()[&0], 1);
    let outcomes = log
        .append(&[purchase("C", 1), purchase("C", 2)])
        .await
        .unwrap();
    let positions: Vec<_> = outcomes.iter().map(|o| o.position()).collect();
    assert_eq!(positions, vec![Position::new(0, 1), Position::new(0, 2)]);
    assert_eq!(log.high_water_marks().await.unwrap()[&0], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_coalesces_concurrent_appends() {
    let harness = Embedded::start("group_commit").await.expect("embedded");
    let log = harness.log().clone();
    let before = log.commit_count();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let log = log.clone();
        tasks.spawn(async move { log.append(&[purchase(&format!("G-{i}"), 0)]).await });
    }
    let mut answered = 0;
    while let Some(result) = tasks.join_next().await {
        let outcomes = result.unwrap().unwrap();
        assert!(!outcomes[0].is_duplicate());
        answered += 1;
    }
    assert_eq!(answered, 64);
    let commits = log.commit_count() - before;
    assert!(
        commits < 64,
        "64 concurrent appends took {commits} transactions; group commit should coalesce them"
    );
    assert_eq!(log.high_water_marks().await.unwrap()[&0], 65);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_is_append_only() {
    let harness = Embedded::start("append_only").await.expect("embedded");
    harness.log().append(&[purchase("C", 1)]).await.unwrap();
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(harness.path())
        .connect()
        .await
        .unwrap();
    for sql in ["UPDATE events SET payload = x'00'", "DELETE FROM events"] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_sees_appends_from_another_process() {
    // A second handle on the same file stands in for another process: its commits do not
    // notify this handle's readers, so they must be found by polling.
    let harness = Embedded::start("cross_process").await.expect("embedded");
    let other = SqliteLog::open(config(harness.path())).await.unwrap();
    let mut stream = harness.log().read(&Default::default()).await.unwrap();
    let sent = purchase("C", 1);
    other.append(std::slice::from_ref(&sent)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("polling finds the event")
        .unwrap()
        .unwrap();
    assert_eq!(got.event.id, sent.id());
    other.close().await;
}
