//! The figures that need no HTTP: decoding, the embedded and Kafka logs, live projection and
//! what-if simulation, each beside the limit it is compared with.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clientlog_demo::{Config, Generator, YearMonth};
use clientlog_domain::{evaluate, CustomerState, Event, Policies};
use clientlog_eventlog::{AppendEvent, EventLog, KafkaConfig, KafkaLog, SqliteConfig, SqliteLog};
use clientlog_projector::{Clock, Projector, ProjectorConfig};
use clientlog_readstore::{chain_hash, AuditRow, BatchWrite, ReadStore, StoreConfig};
use futures::future::BoxFuture;
use futures::StreamExt as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;

use super::{measure, measure_paired, Bench, Figure, Stats, Target};

/// The business time every projection evaluates at (2026-01-01), so runs are comparable.
pub const AS_OF: i64 = 1_767_225_600;

/// A demo history: `customers` over `months` from January 2024, in generation order.
pub fn demo_events(customers: u32, months: u32, seed: u64) -> anyhow::Result<Vec<Event>> {
    let mut generator = Generator::new(Config {
        customers,
        months,
        seed,
        start: YearMonth::new(2024, 1)?,
    })
    .context("while setting up the demo generator")?;
    let mut events = Vec::new();
    while let Some(batch) = generator.next_batch() {
        events.extend(batch);
    }
    Ok(events)
}

/// A purchase event with a fresh time-ordered (v7) id, as producers send them.
pub fn purchase_json(customer: &str, n: u64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"/bench","type":"purchase.recorded","subject":"{customer}","time":"2026-03-14T09:30:00Z","data":{{"order_id":"SO-{n}","amount":{{"minor":{minor},"currency":"EUR"}},"units":1}}}}"#,
        id = uuid::Uuid::now_v7(),
        minor = 100 + n % 100_000
    )
}

/// `n` fresh purchase events of 500 customers.
fn purchases(n: usize) -> anyhow::Result<Vec<AppendEvent>> {
    (0..n)
        .map(|i| {
            let json = purchase_json(&format!("CUST-{:06}", i % 500 + 1), i as u64);
            AppendEvent::from_bytes(json.into_bytes()).context("a bench event does not decode")
        })
        .collect()
}

/// `batches` batches of 1 000 fresh purchase events each.
fn purchase_batches(batches: usize) -> anyhow::Result<Vec<Vec<AppendEvent>>> {
    (0..batches).map(|_| purchases(1000)).collect()
}

/// Events per second of `batches` fresh batches of 1 000 appended to `log`, one after another.
async fn timed_appends(log: &impl EventLog, batches: usize) -> anyhow::Result<f64> {
    let batches = purchase_batches(batches)?;
    let started = Instant::now();
    for events in &batches {
        log.append(events).await?;
    }
    Ok((batches.len() * 1000) as f64 / started.elapsed().as_secs_f64())
}

/// Nanoseconds this thread has run on a CPU (Linux), so that a rate holds for one core even
/// while other processes compete for it.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Items per CPU-second of `work` (which handles `items` per call), called until `secs` of this
/// thread's CPU time have passed (wall time where there is no per-thread clock).
fn per_cpu_second(secs: f64, items: usize, mut work: impl FnMut()) -> f64 {
    let cpu = || thread_cpu_ns().map(|ns| ns as f64 / 1e9);
    let wall = Instant::now();
    let clock = move || cpu().unwrap_or_else(|| wall.elapsed().as_secs_f64());
    let start = clock();
    let mut calls = 0usize;
    loop {
        work();
        calls += 1;
        let spent = clock() - start;
        if spent >= secs {
            return (calls * items) as f64 / spent;
        }
    }
}

/// A synchronous CPU measurement on this worker thread, without stalling the runtime's other
/// tasks.
async fn cpu_measure(runs: usize, mut run: impl FnMut() -> f64) -> anyhow::Result<super::Stats> {
    measure(runs, || {
        let rate = tokio::task::block_in_place(&mut run);
        async move { Ok(rate) }
    })
    .await
}

/// decode + validate vs `serde_json::Value` of the same bytes; fold and evaluate (no limit).
pub fn decode(b: &mut Bench) -> BoxFuture<'_, anyhow::Result<Vec<Figure>>> {
    Box::pin(async move {
        let secs = b.sizes.cpu_secs;
        let runs = b.sizes.runs;
        let events = demo_events(200, 24, 7)?;
        let wire: Vec<Vec<u8>> = events.iter().map(Event::encode).collect();
        let average = wire.iter().map(Vec::len).sum::<usize>() / wire.len().max(1);
        for bytes in &wire {
            Event::decode(bytes).context("a demo event does not decode")?;
        }
        let decode = cpu_measure(runs, || {
            per_cpu_second(secs, wire.len(), || {
                for bytes in &wire {
                    let _ = black_box(Event::decode(black_box(bytes)));
                }
            })
        })
        .await?;
        let value = cpu_measure(runs, || {
            per_cpu_second(secs, wire.len(), || {
                for bytes in &wire {
                    let _ = black_box(serde_json::from_slice::<serde_json::Value>(black_box(
                        bytes,
                    )));
                }
            })
        })
        .await?;

        // Each customer's history in log order, folded from an empty state.
        let mut histories: HashMap<&str, Vec<&Event>> = HashMap::new();
        for e in &events {
            histories.entry(e.subject.as_str()).or_default().push(e);
        }
        let histories: Vec<Vec<&Event>> = histories.into_values().collect();
        let fold = cpu_measure(runs, || {
            per_cpu_second(secs, events.len(), || {
                for history in &histories {
                    let mut state = CustomerState::default();
                    for e in history {
                        state.apply(black_box(e));
                    }
                    black_box(state);
                }
            })
        })
        .await?;
        let policies = Policies::defaults();
        let states: Vec<CustomerState> = histories
            .iter()
            .map(|h| {
                let mut state = CustomerState::default();
                h.iter().for_each(|e| state.apply(e));
                state
            })
            .collect();
        let evaluated = cpu_measure(runs, || {
            per_cpu_second(secs, states.len(), || {
                for s in &states {
                    black_box(evaluate(black_box(s), &policies, AS_OF));
                }
            })
        })
        .await?;
        Ok(vec![
            Figure::new(
                "decode + validate (per CPU-second)",
                "events/s",
                Target {
                    at_least: Some(400_000.0),
                    ..Target::text("≥ 400 k/s/core")
                },
            )
            .value(decode)
            .limit("serde_json::Value of the same bytes", value)
            .note(format!(
                "{} demo events, {average} B on average",
                wire.len()
            )),
            Figure::new(
                "fold (apply, per CPU-second)",
                "events/s",
                Target {
                    at_least: Some(5_000_000.0),
                    ..Target::text("≥ 5 M/s")
                },
            )
            .value(fold),
            Figure::new(
                "evaluate (per CPU-second)",
                "customers/s",
                Target {
                    at_least: Some(1_000_000.0),
                    ..Target::text("≥ 1 M/s")
                },
            )
            .value(evaluated),
        ])
    })
}

/// A bare connection to `path` with the log writer's file settings.
async fn bare_sqlite(path: &Path) -> anyhow::Result<sqlx::SqliteConnection> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .pragma("cache_size", "-65536")
        .pragma("mmap_size", (256_u64 << 20).to_string())
        .connect()
        .await
        .context("while opening the bare SQLite file")?;
    sqlx::query(
        "CREATE TABLE bare (position INTEGER PRIMARY KEY, event_id BLOB NOT NULL UNIQUE, \
         subject TEXT NOT NULL, recorded_at INTEGER NOT NULL, payload BLOB NOT NULL) STRICT",
    )
    .execute(&mut conn)
    .await
    .context("while creating the bare table")?;
    Ok(conn)
}

/// The limit of an embedded append: the same rows as one multi-row `INSERT` in one
/// transaction, with none of the log's work (no duplicate lookup, no group queue).
async fn bare_insert(
    conn: &mut sqlx::SqliteConnection,
    events: &[AppendEvent],
) -> anyhow::Result<()> {
    let mut tx = conn.begin().await?;
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
    query.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Reads the first `n` records of `log` from its start, each checked to be a valid event;
/// records per second.
async fn read_rate(log: &impl EventLog, n: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut stream = log.read(&Default::default()).await?;
    let mut read = 0;
    while read < n {
        match stream.next().await {
            Some(record) => {
                anyhow::ensure!(record.is_ok(), "record {read} is not a valid event");
                read += 1;
            }
            None => anyhow::bail!("the log ended after {read} of {n} records"),
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The limits of an embedded read: every row's position, time and bytes scanned in order on a
/// bare read-only connection, without (`decode == false`) and with decoding each payload (page
/// by page on two threads, as the reader does).
fn bare_scan_rate(path: &Path, n: usize, decode: bool) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "mmap_size", 256_u64 << 20)?;
    let started = Instant::now();
    let mut statement =
        conn.prepare("SELECT position, recorded_at, payload FROM events ORDER BY position")?;
    let mut rows = statement.query([])?;
    let mut read = 0;
    let mut page = Vec::with_capacity(SCAN_PAGE);
    while let Some(row) = rows.next()? {
        page.push((row.get(0)?, row.get(1)?, row.get(2)?));
        if page.len() == SCAN_PAGE {
            read += scanned(&mut page, decode)?;
        }
    }
    read += scanned(&mut page, decode)?;
    anyhow::ensure!(read == n, "scanned {read} of {n} rows");
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Rows per page of [`bare_scan_rate`], as the embedded log's reader takes them.
const SCAN_PAGE: usize = 4096;

/// A page of scanned rows (position, `recorded_at`, payload) done with: decoded (if `decode`)
/// half on a thread of its own and half here, as the embedded log's reader does, and the
/// events dropped here, as a reader's consumer does. Returns how many rows it held.
fn scanned(page: &mut Vec<(i64, i64, Vec<u8>)>, decode: bool) -> anyhow::Result<usize> {
    let rows = std::mem::take(page);
    if decode {
        let decode = |rows: &[(i64, i64, Vec<u8>)]| -> anyhow::Result<Vec<Event>> {
            rows.iter()
                .map(|(position, _, payload)| {
                    Event::decode(payload)
                        .map_err(|_| anyhow::anyhow!("row {position} does not decode"))
                })
                .collect()
        };
        let (first, second) = rows.split_at(rows.len() / 2);
        let events = std::thread::scope(|scope| {
            let second = scope.spawn(|| decode(second));
            let first = decode(first);
            let second = second
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            first.and_then(|first| Ok((first, second?)))
        })?;
        drop(black_box(events));
    }
    Ok(black_box(rows).len())
}

/// Batches of 1 000 into the embedded log vs a bare SQLite insert of the same rows.
pub fn embedded_append(b: &mut Bench) -> BoxFuture<'_, anyhow::Result<Vec<Figure>>> {
    Box::pin(async move {
        let batches = b.sizes.append_batches;
        let log = SqliteLog::open(SqliteConfig::new(b.path("append.db")))
            .await
            .context("while opening the log")?;
        let bare = tokio::sync::Mutex::new(bare_sqlite(&b.path("bare.db")).await?);
        let (value, limit) = measure_paired(
            b.sizes.runs,
            || timed_appends(&log, batches),
            || {
                let bare = &bare;
                async move {
                    let batches = purchase_batches(batches)?;
                    let mut bare = bare.lock().await;
                    let started = Instant::now();
                    for events in &batches {
                        bare_insert(&mut bare, events).await?;
                    }
                    Ok((batches.len() * 1000) as f64 / started.elapsed().as_secs_f64())
                }
            },
        )
        .await?;
        // What the runs appended, read back.
        let n = (b.sizes.runs + 1) * batches * 1000;
        let path = log.path().to_path_buf();
        let scan = |decode: bool| {
            let path = path.clone();
            async move { tokio::task::spawn_blocking(move || bare_scan_rate(&path, n, decode)).await? }
        };
        let (read, bare_scan_decode) =
            measure_paired(b.sizes.runs, || read_rate(&log, n), || scan(true)).await?;
        let bare_scan = measure(b.sizes.runs, || scan(false)).await?;
        log.close().await;
        bare.into_inner().close().await?;
        let read_figure = Figure::new(
            "read, embedded, from the start",
            "events/s",
            Target {
                ratio_at_least: Some(0.8),
                ..Target::text("≥ 80 % of limit")
            },
        )
        .value(read)
        .limit(
            "bare SQLite scan of the same rows, decoding each page's payloads on two threads",
            bare_scan_decode,
        )
        .note(format!(
            "{n} events; the reader must decode and validate each one (a bad record comes out \
             as a typed error), so the limit does too; the scan alone: {} events/s",
            super::number(bare_scan.median)
        ));
        Ok(vec![
            Figure::new(
                "append, embedded, batches of 1 000",
                "events/s",
                Target {
                    at_least: Some(200_000.0),
                    ratio_at_least: Some(0.5),
                    ..Target::text("≥ 200 k/s, ≥ 50 % of limit")
                },
            )
            .value(value)
            .limit("bare SQLite multi-row insert, one txn per 1 000", limit)
            .note(format!("{batches} batches per run")),
            read_figure,
        ])
    })
}

/// 64 clients appending single events in a closed loop vs one client doing the same.
pub fn embedded_concurrent(b: &mut Bench) -> BoxFuture<'_, anyhow::Result<Vec<Figure>>> {
    Box::pin(async move {
        let per_client = b.sizes.concurrent_per_client;
        let single = b.sizes.single_writer_events;
        let log = SqliteLog::open(SqliteConfig::new(b.path("concurrent.db")))
            .await
            .context("while opening the log")?;
        let commits_before = log.commit_count();
        let mut appended = 0usize;
        let value = measure(b.sizes.runs, || {
            let log = log.clone();
            appended += 64 * per_client;
            async move {
                let mut tasks = tokio::task::JoinSet::new();
                let clients: Vec<Vec<AppendEvent>> = (0..64)
                    .map(|_| purchases(per_client))
                    .collect::<anyhow::Result<_>>()?;
                let started = Instant::now();
                for events in clients {
                    let log = log.clone();
                    tasks.spawn(async move {
                        for event in events {
                            log.append(&[event]).await?;
                        }
                        Ok::<_, clientlog_eventlog::LogError>(())
                    });
                }
                while let Some(done) = tasks.join_next().await {
                    done??;
                }
                Ok((64 * per_client) as f64 / started.elapsed().as_secs_f64())
            }
        })
        .await?;
        let commits = log.commit_count() - commits_before;
        let limit = measure(b.sizes.runs, || {
            let log = &log;
            async move {
                let events = purchases(single)?;
                let started = Instant::now();
                for event in events {
                    log.append(&[event]).await?;
                }
                Ok(single as f64 / started.elapsed().as_secs_f64())
            }
        })
        .await?;
        log.close().await;
        Ok(vec![Figure::new(
            "append, embedded, 64 concurrent single events",
            "events/s",
            Target {
                at_least: Some(20_000.0),
                ..Target::text("≥ 20 k/s")
            },
        )
        .value(value)
        .limit("one writer, single events", limit)
        .note(format!(
            "{:.1} events per commit",
            appended as f64 / commits.max(1) as f64
        ))])
    })
}

/// Kafka append of batches of 1 000 vs a bare rdkafka producer of the same records.
pub fn kafka_append(b: &mut Bench) -> BoxFuture<'_, anyhow::Result<Vec<Figure>>> {
    Box::pin(async move {
        let figure = Figure::new(
            "append, Kafka, batches of 1 000",
            "events/s",
            Target {
                ratio_at_least: Some(0.8),
                ..Target::text("≥ 80 % of limit")
            },
        );
        let read_figure = Figure::new(
            "read, Kafka, from the start",
            "events/s",
            Target {
                ratio_at_least: Some(0.8),
                ..Target::text("≥ 80 % of limit")
            },
        );
        let Some(brokers) = b.kafka.clone() else {
            let why = "skipped: no broker (--kafka / CLIENTLOG_TEST_KAFKA)";
            return Ok(vec![figure.skipped(why), read_figure.skipped(why)]);
        };
        let batches = b.sizes.kafka_batches;
        let config = KafkaConfig {
            partitions: 12,
            reader_group_id: format!("clientlog-bench-{}", uuid::Uuid::new_v4().simple()),
            ..KafkaConfig::new(&brokers)
                .with_topic(format!("clientlog-bench-{}", uuid::Uuid::new_v4().simple()))
        };
        let log = KafkaLog::connect(config.clone())
            .await
            .with_context(|| format!("while connecting to Kafka at {brokers}"))?;
        let bare: FutureProducer = config
            .producer_config()
            .create()
            .context("while creating the bare producer")?;
        let (value, limit) = measure_paired(
            b.sizes.runs,
            || timed_appends(&log, batches),
            || {
                let (bare, topic) = (&bare, &config.topic);
                async move {
                    let batches = purchase_batches(batches)?;
                    let started = Instant::now();
                    for events in &batches {
                        let mut deliveries = Vec::with_capacity(events.len());
                        for event in events {
                            let record = FutureRecord::to(topic)
                                .key(event.subject().as_str())
                                .payload(event.bytes())
                                .headers(OwnedHeaders::new().insert(Header {
                                    key: "content-type",
                                    value: Some("application/cloudevents+json"),
                                }));
                            deliveries.push(bare.send_result(record).map_err(|(e, _)| e)?);
                        }
                        for delivery in deliveries {
                            delivery
                                .await
                                .context("delivery cancelled")?
                                .map_err(|(e, _)| e)?;
                        }
                    }
                    Ok((batches.len() * 1000) as f64 / started.elapsed().as_secs_f64())
                }
            },
        )
        .await?;
        // What the runs of both producers appended, read back.
        let n = 2 * (b.sizes.runs + 1) * batches * 1000;
        let (read, bare_read) = measure_paired(
            b.sizes.runs,
            || read_rate(&log, n),
            || bare_consume_rate(&config, n),
        )
        .await?;
        Ok(vec![
            figure
                .value(value)
                .limit("bare rdkafka producer, same records", limit)
                .note(format!("{batches} batches per run, 12 partitions")),
            read_figure
                .value(read)
                .limit("bare rdkafka consumer, same records", bare_read)
                .note(format!(
                    "{n} records over 12 partitions, each decoded and validated by the reader"
                )),
        ])
    })
}

/// The limit of a Kafka read: a bare rdkafka consumer assigned every partition of the topic
/// from the beginning, copying each record's value.
async fn bare_consume_rate(config: &KafkaConfig, n: usize) -> anyhow::Result<f64> {
    let consumer: StreamConsumer = config
        .consumer_config()
        .create()
        .context("while creating the bare consumer")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..12 {
        assignment.add_partition_offset(&config.topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let started = Instant::now();
    for _ in 0..n {
        let message = consumer.recv().await?;
        black_box(message.payload().map(<[u8]>::to_vec));
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The demo log every projection reads, and the wire bytes of its events.
pub struct Projected {
    pub log: SqliteLog,
    pub bytes: Vec<Vec<u8>>,
    /// A SQLite read store with the whole log projected (kept from the last projection run).
    pub store: Option<PathBuf>,
}

impl Projected {
    pub async fn close(self) {
        self.log.close().await;
    }
}

/// Appends `events` to `log` through the validating append path; returns the appended bytes.
pub async fn append_all(log: &SqliteLog, events: &[Event]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut bytes = Vec::with_capacity(events.len());
    for chunk in events.chunks(5_000) {
        let batch: Vec<AppendEvent> = chunk.iter().map(AppendEvent::from_event).collect();
        for (outcome, event) in log.append(&batch).await?.iter().zip(&batch) {
            if !outcome.is_duplicate() {
                bytes.push(event.bytes().to_vec());
            }
        }
    }
    Ok(bytes)
}

/// The projection's demo log, built on first use.
async fn projected(b: &mut Bench) -> anyhow::Result<&mut Projected> {
    if b.projected.is_none() {
        let events = demo_events(b.sizes.projection_customers, b.sizes.projection_months, 42)?;
        let log = SqliteLog::open_path(b.path("projection-log.db")).await?;
        let bytes = append_all(&log, &events).await?;
        b.projected = Some(Projected {
            log,
            bytes,
            store: None,
        });
    }
    b.projected.as_mut().context("projected log")
}

/// The audit copy of the events with the wire `bytes` (at offsets 1, 2, … of partition 0), as
/// the projector writes it: by customer in log order, each row chained to the one before.
fn audit_rows(bytes: &[Vec<u8>]) -> anyhow::Result<Vec<AuditRow>> {
    let mut heads: HashMap<String, (i64, [u8; 32])> = HashMap::new();
    bytes
        .iter()
        .zip(1..)
        .map(|(bytes, offset)| {
            let event = Event::decode(bytes).context("a projected event does not decode")?;
            let customer = event.subject.as_str().to_string();
            let head = heads.get(&customer);
            let seq = head.map_or(1, |h| h.0 + 1);
            let hash = chain_hash(head.map(|h| &h.1), bytes);
            heads.insert(customer.clone(), (seq, hash));
            Ok(AuditRow {
                customer_id: customer,
                seq,
                event_id: *event.id.as_uuid().as_bytes(),
                log_partition: 0,
                log_offset: offset,
                event_type: event.event_type().as_str().to_string(),
                occurred_at: event.time.unix_timestamp(),
                recorded_at: offset,
                bytes: bytes.clone(),
                hash,
            })
        })
        .collect()
}

/// The part of a live projection's write that no design can leave out: `rows` written into the
/// audit copy of a new read store at `config` alone, in transactions of `batch` rows, through
/// the store's own write path (prepared single-row inserts on SQLite; on PostgreSQL a binary
/// `COPY` on the audit copy's own connection). Rows per second.
async fn bare_audit_copy(
    config: &StoreConfig,
    rows: &[AuditRow],
    batch: usize,
) -> anyhow::Result<f64> {
    let store = ReadStore::open(config).await?;
    let batches: Vec<BatchWrite> = rows
        .chunks(batch)
        .map(|chunk| BatchWrite {
            events: chunk.to_vec(),
            ..BatchWrite::default()
        })
        .collect();
    let started = Instant::now();
    for write in &batches {
        let mut tx = store.begin().await?;
        tx.write(1, write, 0).await?;
        tx.commit().await?;
    }
    let elapsed = started.elapsed();
    store.close().await;
    Ok(rows.len() as f64 / elapsed.as_secs_f64())
}

/// What [`project`] applied, and how long the projecting took: from the projector attached
/// to a new store (its schema created) until it was caught up.
pub struct ProjectionRun {
    pub applied: u64,
    pub elapsed: Duration,
}

impl ProjectionRun {
    /// Events per second, once it is checked that all `n` events were applied.
    fn rate(&self, n: usize) -> anyhow::Result<f64> {
        let applied = self.applied;
        anyhow::ensure!(applied as usize == n, "applied {applied} of {n} events");
        Ok(n as f64 / self.elapsed.as_secs_f64())
    }
}

/// Projects the whole of `log` into a new read store at `config`, from scratch.
pub async fn project(log: &SqliteLog, config: &StoreConfig) -> anyhow::Result<ProjectionRun> {
    let store = ReadStore::open(config).await?;
    let projector = Projector::new(store.clone(), Policies::defaults()).await?;
    let started = Instant::now();
    let stats = projector
        .run(
            log,
            &ProjectorConfig {
                batch_wait: Duration::from_millis(100),
                reevaluate_every: None,
                clock: Clock::Fixed(AS_OF),
                until_caught_up: true,
                ..ProjectorConfig::default()
            },
            CancellationToken::new(),
        )
        .await?;
    let elapsed = started.elapsed();
    store.close().await;
    Ok(ProjectionRun {
        applied: stats.applied,
        elapsed,
    })
}

/// A scratch PostgreSQL database on the server of `admin`, dropped by [`drop_database`].
async fn create_database(admin: &str) -> anyhow::Result<(String, String)> {
    let name = format!("clientlog_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .context("while connecting to PostgreSQL")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .with_context(|| format!("while creating the database {name}"))?;
    conn.close().await?;
    // `admin` with its database replaced by `name`.
    let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    let url = if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    };
    Ok((name, url))
}

async fn drop_database(admin: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Live projection from the log to a committed read model, into SQLite and PostgreSQL, vs a
/// bare decode-and-fold of the same bytes in memory.
pub fn projection(b: &mut Bench) -> BoxFuture<'_, anyhow::Result<Vec<Figure>>> {
    Box::pin(async move {
        let runs = b.sizes.runs;
        let database_url = b.database_url.clone();
        let scratch = b.dir.path().to_path_buf();
        let projected = projected(b).await?;
        let n = projected.bytes.len();
        let bytes = &projected.bytes;
        let bare = cpu_measure(runs, || {
            let started = Instant::now();
            let mut states: HashMap<String, CustomerState> = HashMap::new();
            for b in bytes {
                if let Ok(event) = Event::decode(b) {
                    states
                        .entry(event.subject.as_str().to_string())
                        .or_default()
                        .apply(&event);
                }
            }
            black_box(states);
            n as f64 / started.elapsed().as_secs_f64()
        })
        .await?;
        let limit_name = "bare decode + fold in memory";
        let target = || Target {
            at_least: Some(100_000.0),
            ..Target::text("≥ 100 k/s")
        };
        let batch = ProjectorConfig::default().batch_size;
        let audit = audit_rows(bytes)?;
        // What the database alone needs to store the audit copy, in the projector's batches.
        let note = |bare_audit: &Stats| {
            format!(
                "{n} events, batches of up to {batch}; the audit copy alone, inserted bare in \
                 the same batches: {} rows/s",
                super::number(bare_audit.median)
            )
        };

        let bare_audit_sqlite = measure(runs, || {
            let path = scratch.join(format!("audit-{}.db", uuid::Uuid::new_v4().simple()));
            let audit = &audit;
            async move { bare_audit_copy(&StoreConfig::Sqlite { path }, audit, batch).await }
        })
        .await?;
        let mut last = None;
        let sqlite = measure(runs, || {
            let path = scratch.join(format!("projection-{}.db", uuid::Uuid::new_v4().simple()));
            last = Some(path.clone());
            let log = &projected.log;
            async move {
                let run = project(log, &StoreConfig::Sqlite { path }).await?;
                run.rate(n)
            }
        })
        .await?;
        projected.store = last;
        let mut figures = vec![
            Figure::new("live projection into SQLite", "events/s", target())
                .value(sqlite)
                .limit(limit_name, bare.clone())
                .note(note(&bare_audit_sqlite)),
        ];

        let postgres = Figure::new("live projection into PostgreSQL", "events/s", target());
        figures.push(match database_url {
            None => postgres
                .skipped("skipped: no PostgreSQL (--database-url / CLIENTLOG_TEST_DATABASE_URL)"),
            Some(admin) => {
                let log = &projected.log;
                let bare_audit = measure(runs, || {
                    let (admin, audit) = (admin.clone(), &audit);
                    async move {
                        let (name, url) = create_database(&admin).await?;
                        let result =
                            bare_audit_copy(&StoreConfig::Postgres { url }, audit, batch).await;
                        drop_database(&admin, &name).await?;
                        result
                    }
                })
                .await?;
                let value = measure(runs, || {
                    let admin = admin.clone();
                    async move {
                        let (name, url) = create_database(&admin).await?;
                        let result = project(log, &StoreConfig::Postgres { url }).await;
                        drop_database(&admin, &name).await?;
                        result?.rate(n)
                    }
                })
                .await?;
                postgres
                    .value(value)
                    .limit(limit_name, bare)
                    .note(note(&bare_audit))
            }
        });
        Ok(figures)
    })
}

/// A demo log of its own, ending before `AS_OF`, with a live SQLite version of it: the ground a
/// rebuild runs on.
struct RebuildGround {
    data: PathBuf,
    log: SqliteLog,
    events: usize,
    customers: i64,
    /// Events per second of the live projector building the live version from scratch.
    projected_rate: f64,
}

/// Appends `customers` × `months` of demo history to a new log in a fresh `--data` directory
/// (month by month, so that the history is never all in memory) and projects it.
async fn rebuild_ground(
    b: &Bench,
    name: &str,
    customers: u32,
    months: u32,
) -> anyhow::Result<RebuildGround> {
    let data = b.path(name);
    std::fs::create_dir_all(&data)?;
    let log = SqliteLog::open_path(data.join("events.db")).await?;
    let first = 2026 * 12 - i64::from(months);
    let mut generator = Generator::new(Config {
        customers,
        months,
        seed: 7,
        start: YearMonth::new(
            first.div_euclid(12) as i32,
            (first.rem_euclid(12) + 1) as u8,
        )?,
    })
    .context("while setting up the rebuild's demo generator")?;
    let mut events = 0;
    while let Some(batch) = generator.next_batch() {
        events += append_all(&log, &batch).await?.len();
    }
    let store = StoreConfig::Sqlite {
        path: data.join("readstore.db"),
    };
    let projected_rate = project(&log, &store).await?.rate(events)?;
    let opened = ReadStore::open(&store).await?;
    let live = opened.live_version().await?.context("a live version")?;
    let customers = opened.customer_count(live.version).await?;
    opened.close().await;
    Ok(RebuildGround {
        data,
        log,
        events,
        customers,
        projected_rate,
    })
}

/// CPU time used so far, seconds (user + system, every thread): this process's own, and that
/// of the children it has waited for. From `/proc/self/stat`, whose times are in `USER_HZ`
/// ticks, 100 a second in Linux's user ABI; none where there is no such file.
fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: the 14th to
    // 17th of the line (utime, stime, cutime, cstime) are the 12th to 15th here.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    let own = ticks(11)? + ticks(12)?;
    let children = ticks(13)? + ticks(14)?;
    Some((own / 100.0, children / 100.0))
}

/// Values kept from every run, the warm-up's first: those of the measured runs.
fn measured_runs(runs: &std::sync::Mutex<Vec<f64>>) -> Stats {
    let mut runs = runs.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if !runs.is_empty() {
        runs.remove(0);
    }
    Stats::of(runs)
}

/// Timed runs of `clientlog rebuild` over one ground, and the peak RSS and CPU time of each.
struct Rebuilds<'a> {
    ground: &'a RebuildGround,
    /// The peak RSS of every run so far, MiB, the warm-up's first.
    peaks: std::sync::Mutex<Vec<f64>>,
    /// The CPU seconds of every run so far (all its threads), the warm-up's first.
    cpu: std::sync::Mutex<Vec<f64>>,
}

impl<'a> Rebuilds<'a> {
    fn new(ground: &'a RebuildGround) -> Self {
        Self {
            ground,
            peaks: std::sync::Mutex::new(Vec::new()),
            cpu: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// `clientlog rebuild` of the whole log in a child process, beside the live version and
    /// promoted: events/s. Its peak RSS and CPU time are kept.
    async fn run(&self) -> anyhow::Result<f64> {
        let (data, n) = (&self.ground.data, self.ground.events);
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        let mut command = std::process::Command::new(std::env::current_exe()?);
        command
            .args(["rebuild", "--as-of", &AS_OF.to_string(), "--top", "0"])
            .arg("--data")
            .arg(data)
            .env("RUST_LOG", "warn");
        let out = tokio::task::spawn_blocking(move || command.output()).await??;
        let elapsed = started.elapsed();
        if let (Some((_, before)), Some((_, after))) = (cpu_before, cpu_seconds()) {
            self.cpu
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(after - before);
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success(),
            "clientlog rebuild failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let records: usize =
            field_before(&stdout, " records (").context("the rebuild's record count")?;
        anyhow::ensure!(records == n, "rebuilt {records} of {n} records");
        let mib: f64 = field_before(&stdout, " MiB").context("the rebuild's peak RSS")?;
        self.peaks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(mib);
        // Keep one retired version at most, so every run builds beside the same store.
        let store = ReadStore::open(&StoreConfig::Sqlite {
            path: data.join("readstore.db"),
        })
        .await?;
        for version in store.versions().await? {
            if version.status == "retired" {
                store.drop_version(version.version).await?;
            }
        }
        store.close().await;
        // A rebuild leaves gigabytes of dirty pages; the next run, a rebuild or the read it
        // alternates with, starts once the kernel has written them.
        let synced =
            tokio::task::spawn_blocking(|| std::process::Command::new("sync").status()).await??;
        anyhow::ensure!(synced.success(), "sync failed: {synced}");
        Ok(n as f64 / elapsed.as_secs_f64())
    }

    /// The peak RSS of the measured runs (not the warm-up's), MiB.
    fn peaks(&self) -> Stats {
        measured_runs(&self.peaks)
    }
}

/// What a rebuild holds in memory, for the notes of the RSS rows.
fn held_note() -> String {
    format!(
        "a rebuild holds up to {} customers' folded states in memory between writes, and one \
         batch of {} records",
        clientlog_projector::rebuild::DEFAULT_HOLD_CUSTOMERS,
        clientlog_projector::rebuild::DEFAULT_BATCH_SIZE
    )
}

/// A full rebuild of a long demo history beside its live version — a new version built from
/// the start of the log and promoted, by `clientlog rebuild` in a child process — vs a bare
/// read and decode of the same log; and the peak RSS of the rebuild process.
pub fn rebuild(b: &mut Bench) -> BoxFuture<'_, anyhow::Result<Vec<Figure>>> {
    Box::pin(async move {
        let runs = b.sizes.rebuild_runs;
        let ground = rebuild_ground(
            b,
            "rebuild",
            b.sizes.rebuild_customers,
            b.sizes.rebuild_months,
        )
        .await?;
        let n = ground.events;
        let rebuilds = Rebuilds::new(&ground);
        // The CPU seconds of every bare read so far, the warm-up's first.
        let read_cpu = std::sync::Mutex::new(Vec::new());
        let read = || async {
            let before = cpu_seconds();
            let rate = read_rate(&ground.log, n).await?;
            if let (Some((before, _)), Some((after, _))) = (before, cpu_seconds()) {
                read_cpu
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(after - before);
            }
            Ok(rate)
        };
        let (rate, limit) = measure_paired(runs, || rebuilds.run(), read).await?;
        let per_event =
            |cpu: &std::sync::Mutex<Vec<f64>>| measured_runs(cpu).median * 1e6 / n as f64;
        let (rebuild_us, read_us) = (per_event(&rebuilds.cpu), per_event(&read_cpu));
        // Without `/proc` there are no CPU times, and no medians of them.
        let cpu_note = if rebuild_us.is_finite() && read_us.is_finite() {
            format!(
                "; CPU per event, all threads (medians): rebuild {rebuild_us:.2} µs, bare read \
                 + decode {read_us:.2} µs"
            )
        } else {
            String::new()
        };
        let peak_mib = rebuilds.peaks();
        ground.log.close().await;
        let customers = ground.customers;
        Ok(vec![
            Figure::new(
                "full rebuild, new version promoted",
                "events/s",
                Target {
                    at_least: Some(300_000.0),
                    ratio_at_least: Some(0.5),
                    ..Target::text("≥ 300 k/s, ≥ 50 % of limit")
                },
            )
            .value(rate)
            .limit("bare read + decode of the same log", limit)
            .note(format!(
                "{n} events, {customers} customers, a live version beside it, itself projected \
                 from scratch by the live projector at {} events/s (one run){cpu_note}",
                super::number(ground.projected_rate)
            )),
            Figure::new(
                "peak RSS of the rebuild process",
                "MiB",
                Target::text("report"),
            )
            .value(peak_mib)
            .note(format!("{customers} customers; {}", held_note())),
        ])
    })
}

/// The peak RSS of a rebuild over many customers with a short history each (one month of demo
/// events, 150 000 customers in the full run, half as many again as a rebuild holds): the
/// memory of a book larger than the hold, which the long history of [`rebuild`] does not show.
pub fn rebuild_memory(b: &mut Bench) -> BoxFuture<'_, anyhow::Result<Vec<Figure>>> {
    Box::pin(async move {
        let ground = rebuild_ground(b, "memory", b.sizes.memory_customers, 1).await?;
        let rebuilds = Rebuilds::new(&ground);
        let rate = measure(b.sizes.rebuild_runs, || rebuilds.run()).await?;
        let peak_mib = rebuilds.peaks();
        ground.log.close().await;
        let (customers, events) = (ground.customers, ground.events);
        Ok(vec![Figure::new(
            format!("peak RSS of a rebuild over {customers} customers"),
            "MiB",
            Target::text("report"),
        )
        .value(peak_mib)
        .note(format!(
            "{events} events (one month of history each), rebuilt at {} events/s beside a live \
             version; {}",
            super::number(rate.median),
            held_note()
        ))])
    })
}

/// The number printed just before `marker` in `text` (the last word before it).
fn field_before<T: std::str::FromStr>(text: &str, marker: &str) -> Option<T> {
    let before = &text[..text.find(marker)?];
    before.split_whitespace().last()?.parse().ok()
}

/// Re-grades every stored customer under new weights, from the stored grade inputs.
pub fn simulate(b: &mut Bench) -> BoxFuture<'_, anyhow::Result<Vec<Figure>>> {
    Box::pin(async move {
        let runs = b.sizes.runs;
        let want = b.sizes.simulate_customers;
        let path = b.path("simulate.db");
        let projected = projected(b).await?;
        let base = match &projected.store {
            Some(path) => path.clone(),
            None => {
                let path = path.with_extension("base.db");
                project(&projected.log, &StoreConfig::Sqlite { path: path.clone() }).await?;
                projected.store = Some(path.clone());
                path
            }
        };
        let projected_customers = inflate(&base, &path, want).await?;
        let store = ReadStore::open(&StoreConfig::Sqlite { path }).await?;
        let version = store
            .live_version()
            .await?
            .context("the simulation store has no live version")?
            .version;
        let mut policy = Policies::defaults().grading.policy;
        policy.weights = clientlog_domain::policy::Weights {
            monthly_sales: 40,
            sales_growth: 25,
            channel_coverage: 15,
            loyalty: 10,
            development_prospects: 10,
        };
        let simulated = std::sync::atomic::AtomicU64::new(0);
        let value = measure(runs, || {
            let (store, policy, simulated) = (&store, &policy, &simulated);
            async move {
                let started = Instant::now();
                let outcome =
                    clientlog_projector::analysis::simulate_store(store, version, policy, 20)
                        .await?;
                let elapsed = started.elapsed().as_secs_f64();
                simulated.store(
                    outcome.report.customers as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                Ok(elapsed)
            }
        })
        .await?;
        store.close().await;
        let customers = simulated.into_inner();
        let want = want.max(projected_customers);
        anyhow::ensure!(
            customers == want,
            "simulated {customers} customers, expected {want}"
        );
        Ok(vec![Figure::new(
            format!("simulate new weights, {want} customers"),
            "s",
            Target {
                below: Some(1.0),
                ..Target::text("< 1 s")
            },
        )
        .value(value)
        .note(format!(
            "SQLite; grade inputs of {projected_customers} projected customers repeated"
        ))])
    })
}

/// Copies the projected store at `base` to `path` and repeats its customers' rows (with new
/// ids) until there are `want`; returns how many customers were projected. The copies keep
/// every column the simulation reads; their card JSON is left empty and the list indexes are
/// dropped to keep the set-up short (the simulation reads only its covering index).
async fn inflate(base: &Path, path: &Path, want: u64) -> anyhow::Result<u64> {
    let mut source = SqliteConnectOptions::new()
        .filename(base)
        .connect()
        .await
        .context("while opening the projected store")?;
    sqlx::query("VACUUM INTO ?")
        .bind(path.to_string_lossy().as_ref())
        .execute(&mut source)
        .await
        .context("while copying the projected store")?;
    source.close().await?;
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // The copying statement takes seconds; sqlx would print its whole text as a warning.
        .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1))
        .connect()
        .await?;
    let projected: i64 = sqlx::query_scalar("SELECT count(*) FROM customers")
        .fetch_one(&mut conn)
        .await?;
    anyhow::ensure!(projected > 0, "no customers were projected");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'customers' \
         AND name LIKE 'customers_%' AND name != 'customers_grade_inputs'",
    )
    .fetch_all(&mut conn)
    .await?;
    for index in indexes {
        sqlx::query(&format!("DROP INDEX {index}"))
            .execute(&mut conn)
            .await?;
    }
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('customers')")
            .fetch_all(&mut conn)
            .await?;
    let selected: Vec<String> = columns
        .iter()
        .map(|c| match c.as_str() {
            "customer_id" => "customer_id || '-' || copies.n".to_string(),
            "card" => "'{}'".to_string(),
            other => format!("customers.{other}"),
        })
        .collect();
    let copies = (want as i64 - projected).max(0) / projected;
    let rest = (want as i64 - projected).max(0) % projected;
    let insert = |n_copies: i64, limit: Option<i64>| {
        format!(
            "WITH RECURSIVE copies(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM copies WHERE n < {n_copies}) \
             INSERT INTO customers ({}) SELECT {} FROM (SELECT * FROM customers ORDER BY customer_id {}) AS customers, copies",
            columns.join(", "),
            selected.join(", "),
            limit.map_or(String::new(), |l| format!("LIMIT {l}")),
        )
    };
    let mut tx = conn.begin().await?;
    if copies > 0 {
        sqlx::query(&insert(copies, None)).execute(&mut *tx).await?;
    }
    if rest > 0 {
        // One more copy of the first `rest` customers, numbered after the others.
        let sql = insert(1, Some(rest)).replace(
            "customer_id || '-' || copies.n",
            &format!("customer_id || '-' || (copies.n + {copies})"),
        );
        sqlx::query(&sql).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    conn.close().await?;
    Ok(projected as u64)
}
