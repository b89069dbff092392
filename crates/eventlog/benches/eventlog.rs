//! Event-log read throughput, each beside its limit measured in the same run:
//!
//! * `embedded_read/log_10000` vs `…/bare_scan_10000`: the read stream (decoding every event)
//!   vs a bare `SELECT` of the same rows.
//! * `kafka_read/log_10000` vs `…/bare_consumer_10000`, when `CLIENTLOG_TEST_KAFKA` names a
//!   broker.
//!
//! The append figures (batches, concurrent single events, Kafka vs a bare producer) are
//! measured by `clientlog bench` (`src/bench/figures.rs`).
//!
//! Run: `cargo bench -p clientlog-eventlog` (add `CLIENTLOG_TEST_KAFKA=host:port` for Kafka).

use std::time::Duration;

use clientlog_eventlog::test_support::{purchase, purchase_json_with_id, unique_name, KAFKA};
use clientlog_eventlog::{
    AppendEvent, EventLog, KafkaConfig, KafkaLog, SqliteConfig, SqliteLog, StartOffsets,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::ConnectOptions;
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `n` events of 500 customers. Ids are UUIDv7 (time-ordered), as clientlog's producers and
/// the CloudEvents examples use; set `CLIENTLOG_BENCH_RANDOM_IDS=1` for random v4 ids, which
/// scatter inserts over the unique index (each row then dirties its own index page).
fn batch(n: usize) -> Vec<AppendEvent> {
    let random = std::env::var("CLIENTLOG_BENCH_RANDOM_IDS").is_ok_and(|v| v == "1");
    (0..n)
        .map(|i| {
            let customer = format!("CUST-{:04}", i % 500);
            if random {
                return purchase(&customer, i as u64);
            }
            let json = purchase_json_with_id(uuid::Uuid::now_v7(), &customer, i as u64);
            AppendEvent::from_bytes(json.into_bytes()).expect("valid fixture")
        })
        .collect()
}

async fn bare_connection(path: &std::path::Path) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        // The same cache and mmap settings as the log's writer.
        .pragma("cache_size", "-65536")
        .pragma("mmap_size", (256_u64 << 20).to_string())
        .connect()
        .await
        .expect("bare connection")
}

fn embedded_read(c: &mut Criterion) {
    const N: usize = 10_000;
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("log.db");
    let log = rt
        .block_on(SqliteLog::open(SqliteConfig::new(&path)))
        .expect("open log");
    rt.block_on(log.append(&batch(N))).expect("fill");
    let mut bare = rt.block_on(bare_connection(&path));

    let mut group = c.benchmark_group("embedded_read");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(20);
    group.bench_function(BenchmarkId::new("log", N), |b| {
        b.iter(|| {
            rt.block_on(async {
                let stream = log.read(&StartOffsets::new()).await.expect("read");
                let items: Vec<_> = stream.take(N).collect().await;
                assert!(items.iter().all(Result::is_ok));
            })
        })
    });
    group.bench_function(BenchmarkId::new("bare_scan", N), |b| {
        b.iter(|| {
            rt.block_on(async {
                let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT position, recorded_at, payload FROM events ORDER BY position",
                )
                .fetch_all(&mut bare)
                .await
                .expect("scan");
                assert_eq!(rows.len(), N);
            })
        })
    });
    group.bench_function(BenchmarkId::new("bare_scan_and_decode", N), |b| {
        b.iter(|| {
            rt.block_on(async {
                let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT position, recorded_at, payload FROM events ORDER BY position",
                )
                .fetch_all(&mut bare)
                .await
                .expect("scan");
                let decoded = rows
                    .iter()
                    .filter(|(_, _, payload)| clientlog_domain::Event::decode(payload).is_ok())
                    .count();
                assert_eq!(decoded, N);
            })
        })
    });
    group.finish();
}

fn kafka(c: &mut Criterion) {
    const N: usize = 10_000;
    let Ok(brokers) = std::env::var(KAFKA) else {
        eprintln!("skipped: kafka benchmarks need {KAFKA}");
        return;
    };
    let rt = runtime();
    // A topic of exactly N events.
    let read_config = KafkaConfig {
        partitions: 12,
        reader_group_id: unique_name("clientlog-bench-reader"),
        ..KafkaConfig::new(&brokers).with_topic(unique_name("clientlog-bench-read"))
    };
    let read_log = rt
        .block_on(KafkaLog::connect(read_config.clone()))
        .expect("connect");
    rt.block_on(read_log.append(&batch(N))).expect("fill");
    let partitions = rt.block_on(read_log.partition_count()).expect("partitions");

    let mut group = c.benchmark_group("kafka_read");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function(BenchmarkId::new("log", N), |b| {
        b.iter(|| {
            rt.block_on(async {
                let stream = read_log.read(&StartOffsets::new()).await.expect("read");
                let items: Vec<_> = stream.take(N).collect().await;
                assert!(items.iter().all(Result::is_ok));
            })
        })
    });
    group.bench_function(BenchmarkId::new("bare_consumer", N), |b| {
        b.iter(|| {
            rt.block_on(async {
                let consumer: StreamConsumer =
                    read_config.consumer_config().create().expect("consumer");
                let mut assignment = TopicPartitionList::new();
                for p in 0..partitions {
                    assignment
                        .add_partition_offset(&read_config.topic, p, Offset::Beginning)
                        .expect("assignment");
                }
                consumer.assign(&assignment).expect("assign");
                let mut bytes = 0usize;
                for _ in 0..N {
                    let message = consumer.recv().await.expect("message");
                    bytes += rdkafka::Message::payload(&message).map_or(0, <[u8]>::len);
                }
                assert!(bytes > 0);
            })
        })
    });
    group.finish();
}

criterion_group!(benches, embedded_read, kafka);
criterion_main!(benches);
