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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_decoded_on_two_threads_and_read_ahead_keep_log_order() {
    // Over two full pages (4 096 records each, decoded half and half on two threads, read one
    // after another on one thread while the stream takes them), with bad records at either end
    // of a page and at the split of one: every position once, in order, the bad ones with their
    // row's subject. Then the run of pages has ended at the log's end, and a record appended
    // later comes by the next one; a stream dropped while its pages are read lets their thread
    // end (the test's runtime waits for it).
    let harness = Embedded::start("pages").await.expect("embedded");
    let log = harness.log();
    let bad_at = [1_i64, 2_048, 2_049, 4_096, 4_097, 9_000];
    let mut appended = Vec::new();
    let mut pending = Vec::new();
    for position in 1..=9_000_i64 {
        if bad_at.contains(&position) {
            log.append(&std::mem::take(&mut pending))
                .await
                .expect("append");
            let offset = sqlite_insert_raw(&harness.path(), b"{\"not\":\"an event\"}")
                .await
                .expect("insert a bad record");
            assert_eq!(offset, position);
        } else {
            let event = purchase("CUST-PAGES", position as u64);
            appended.push((position, event.id()));
            pending.push(event);
        }
    }
    log.append(&pending).await.expect("append");
    let mut stream = log.read(&Default::default()).await.expect("read");
    let mut good = Vec::new();
    for position in 1..=9_000_i64 {
        let item = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("the records arrive")
            .expect("the stream goes on");
        match item {
            Ok(event) => {
                assert_eq!(event.position, Position::new(0, position));
                good.push((position, event.event.id));
            }
            Err(clientlog_eventlog::ReadError::BadRecord(bad)) => {
                assert_eq!(bad.position, Position::new(0, position));
                assert!(bad_at.contains(&position), "{position} is not bad");
                assert_eq!(bad.key.as_deref(), Some("raw"));
            }
            Err(other) => panic!("unexpected read error at {position}: {other}"),
        }
    }
    assert_eq!(good, appended);

    let later = purchase("CUST-PAGES", 9_001);
    log.append(std::slice::from_ref(&later))
        .await
        .expect("append");
    let item = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("the later record arrives")
        .expect("the stream goes on")
        .expect("a valid event");
    assert_eq!(item.position, Position::new(0, 9_001));
    assert_eq!(item.event.id, later.id());

    let mut dropped = log.read(&Default::default()).await.expect("read");
    dropped.next().await.expect("a first record").ok();
    drop(dropped);
}
