//! Event-log throughput, each figure beside its physical limit measured in the same run:
//!
//! * `embedded_append/log_batch_1000` vs `embedded_append/bare_sqlite_1000`: the log's batch
//!   append vs a bare sqlx insert of the same rows in one transaction (same file settings).
//! * `embedded_group_commit/64_concurrent_single` vs `…/one_writer_sequential_single`: 64
//!   clients each appending single events in a closed loop vs one client doing the same.
//! * `embedded_read/log_10000` vs `…/bare_scan_10000`: the read stream (decoding every event)
//!   vs a bare `SELECT` of the same rows.
//! * `kafka_append/log_batch_1000` vs `…/bare_producer_1000` and `kafka_read/log_10000` vs
//!   `…/bare_consumer_10000`, when `CLIENTLOG_TEST_KAFKA` names a broker.
//!
//! Run: `cargo bench -p clientlog-eventlog` (add `CLIENTLOG_TEST_KAFKA=host:port` for Kafka).

use std::time::{Duration, Instant};

use clientlog_eventlog::test_support::{purchase, purchase_json_with_id, unique_name, KAFKA};
use clientlog_eventlog::{
    AppendEvent, EventLog, KafkaConfig, KafkaLog, SqliteConfig, SqliteLog, StartOffsets,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};
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

/// The limit: the same rows inserted with one prepared statement each, in one transaction.
async fn bare_insert(conn: &mut sqlx::SqliteConnection, events: &[AppendEvent]) {
    let mut tx = conn.begin().await.expect("begin");
    for event in events {
        sqlx::query(
            "INSERT INTO bare (event_id, subject, recorded_at, payload) VALUES (?, ?, ?, ?)",
        )
        .bind(event.id().as_uuid().as_bytes().to_vec())
        .bind(event.subject().as_str())
        .bind(0_i64)
        .bind(event.bytes())
        .execute(&mut *tx)
        .await
        .expect("insert");
    }
    tx.commit().await.expect("commit");
}

/// The same rows with 1 000-row multi-row `INSERT`s in one transaction: the fastest bare sqlx
/// path, with none of the log's work (no duplicate lookup, no group queue).
async fn bare_insert_multirow(conn: &mut sqlx::SqliteConnection, events: &[AppendEvent]) {
    let mut tx = conn.begin().await.expect("begin");
    let values = vec!["(?,?,?,?)"; events.len()].join(",");
    let sql = format!("INSERT INTO bare (event_id, subject, recorded_at, payload) VALUES {values}");
    let mut query = sqlx::query(&sql);
    for event in events {
        query = query
            .bind(event.id().as_uuid().as_bytes().to_vec())
            .bind(event.subject().as_str())
            .bind(0_i64)
            .bind(event.bytes());
    }
    query.execute(&mut *tx).await.expect("insert");
    tx.commit().await.expect("commit");
}

fn embedded_append(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = rt
        .block_on(SqliteLog::open(SqliteConfig::new(
            dir.path().join("log.db"),
        )))
        .expect("open log");
    let mut bare = rt.block_on(bare_connection(&dir.path().join("bare.db")));
    rt.block_on(
        sqlx::query(
            "CREATE TABLE bare (position INTEGER PRIMARY KEY, event_id BLOB NOT NULL UNIQUE, \
             subject TEXT NOT NULL, recorded_at INTEGER NOT NULL, payload BLOB NOT NULL) STRICT",
        )
        .execute(&mut bare),
    )
    .expect("bare table");

    let mut group = c.benchmark_group("embedded_append");
    group.throughput(Throughput::Elements(1000));
    group.sample_size(20);
    group.bench_function("log_batch_1000", |b| {
        b.iter_custom(|iters| {
            let batches: Vec<_> = (0..iters).map(|_| batch(1000)).collect();
            rt.block_on(async {
                let started = Instant::now();
                for events in &batches {
                    log.append(events).await.expect("append");
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("bare_sqlite_1000", |b| {
        b.iter_custom(|iters| {
            let batches: Vec<_> = (0..iters).map(|_| batch(1000)).collect();
            rt.block_on(async {
                let started = Instant::now();
                for events in &batches {
                    bare_insert(&mut bare, events).await;
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("bare_sqlite_multirow_1000", |b| {
        b.iter_custom(|iters| {
            let batches: Vec<_> = (0..iters).map(|_| batch(1000)).collect();
            rt.block_on(async {
                let started = Instant::now();
                for events in &batches {
                    bare_insert_multirow(&mut bare, events).await;
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

fn embedded_group_commit(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = rt
        .block_on(SqliteLog::open(SqliteConfig::new(
            dir.path().join("log.db"),
        )))
        .expect("open log");
    let mut group = c.benchmark_group("embedded_group_commit");
    group.throughput(Throughput::Elements(64));
    group.sample_size(20);
    // 64 clients in a closed loop: each appends one event, waits for its answer, appends the
    // next; while one commit group is being written, the next one queues up.
    group.bench_function("64_concurrent_single", |b| {
        b.iter_custom(|iters| {
            let rounds: Vec<Vec<_>> = (0..iters).map(|_| batch(64)).collect();
            let mut per_client: Vec<Vec<AppendEvent>> = vec![Vec::new(); 64];
            for round in rounds {
                for (client, event) in round.into_iter().enumerate() {
                    per_client[client].push(event);
                }
            }
            rt.block_on(async {
                let started = Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                for events in per_client {
                    let log = log.clone();
                    tasks.spawn(async move {
                        for event in events {
                            log.append(&[event]).await.expect("append");
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
                started.elapsed()
            })
        })
    });
    let appended = rt
        .block_on(log.high_water_marks())
        .expect("hwm")
        .get(&0)
        .copied()
        .unwrap_or(1)
        - 1;
    if log.commit_count() > 0 {
        eprintln!(
            "embedded_group_commit: {appended} events in {} commits ({:.1} events per commit)",
            log.commit_count(),
            appended as f64 / log.commit_count() as f64
        );
    }
    group.bench_function("one_writer_sequential_single", |b| {
        b.iter_custom(|iters| {
            let rounds: Vec<Vec<_>> = (0..iters).map(|_| batch(64)).collect();
            rt.block_on(async {
                let started = Instant::now();
                for round in rounds {
                    for event in round {
                        log.append(&[event]).await.expect("append");
                    }
                }
                started.elapsed()
            })
        })
    });
    group.finish();
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
    let config = KafkaConfig {
        partitions: 12,
        reader_group_id: unique_name("clientlog-bench-reader"),
        ..KafkaConfig::new(&brokers).with_topic(unique_name("clientlog-bench"))
    };
    let log = rt
        .block_on(KafkaLog::connect(config.clone()))
        .expect("connect");
    let bare: FutureProducer = config.producer_config().create().expect("bare producer");

    let mut group = c.benchmark_group("kafka_append");
    group.throughput(Throughput::Elements(1000));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("log_batch_1000", |b| {
        b.iter_custom(|iters| {
            let batches: Vec<_> = (0..iters).map(|_| batch(1000)).collect();
            rt.block_on(async {
                let started = Instant::now();
                for events in &batches {
                    log.append(events).await.expect("append");
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("bare_producer_1000", |b| {
        b.iter_custom(|iters| {
            let batches: Vec<_> = (0..iters).map(|_| batch(1000)).collect();
            rt.block_on(async {
                let started = Instant::now();
                for events in &batches {
                    let deliveries: Vec<_> = events
                        .iter()
                        .map(|event| {
                            let record = FutureRecord::to(&config.topic)
                                .key(event.subject().as_str())
                                .payload(event.bytes())
                                .headers(OwnedHeaders::new().insert(Header {
                                    key: "content-type",
                                    value: Some("application/cloudevents+json"),
                                }));
                            bare.send_result(record)
                                .map_err(|(e, _)| e)
                                .expect("enqueue")
                        })
                        .collect();
                    for delivery in deliveries {
                        delivery
                            .await
                            .expect("delivered")
                            .map_err(|(e, _)| e)
                            .expect("ack");
                    }
                }
                started.elapsed()
            })
        })
    });
    group.finish();

    // Reading: a topic of exactly N events.
    let read_config = KafkaConfig {
        reader_group_id: unique_name("clientlog-bench-reader"),
        ..config
            .clone()
            .with_topic(unique_name("clientlog-bench-read"))
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

criterion_group!(
    benches,
    embedded_append,
    embedded_group_commit,
    embedded_read,
    kafka
);
criterion_main!(benches);
