//! The contract suite against Kafka (a broker at `CLIENTLOG_TEST_KAFKA`, e.g. tansu), one
//! random topic per test, plus what only the Kafka log does: binary-mode CloudEvents from
//! foreign producers and bounded failure against a dead broker.

mod contract;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clientlog_eventlog::test_support::{
    self, kafka_test_config, produce_raw, purchase, raw_producer, unique_name,
};
use clientlog_eventlog::{
    AppendOutcome, EventLog, KafkaConfig, KafkaLog, LogError, Position, StartOffsets, WireMode,
};
use contract::Harness;
use futures::StreamExt;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureProducer;

/// Cases that check high-water marks exactly. tansu 0.6.0's in-memory engine (the CI broker)
/// answers ListOffsets(latest) with the last *batch's* base offset + 1 (tansu-storage
/// `dynostore.rs`, `list_offsets`), which is wrong for multi-record batches; Apache Kafka and
/// tansu's PostgreSQL engine are per record. These cases therefore produce one record per
/// batch, which is correct everywhere. (The same engine serves a fetch from the first batch
/// starting at or after the requested offset; the reader makes up for that itself, see
/// `starts_in_the_middle_of_a_batch`.)
const SINGLE_RECORD_BATCHES: &[&str] = &[
    "keeps_exact_bytes_and_positions",
    "reads_from_positions_and_waits",
];

struct Kafka {
    log: KafkaLog,
    raw: FutureProducer,
}

impl Harness for Kafka {
    type Log = KafkaLog;

    async fn start(test: &str) -> Option<Self> {
        let brokers = test_support::service(test, test_support::KAFKA)?;
        let mut config = kafka_test_config(&brokers);
        if SINGLE_RECORD_BATCHES.contains(&test) {
            config
                .client_options
                .push(("batch.num.messages".to_string(), "1".to_string()));
        }
        let log = KafkaLog::connect(config)
            .await
            .expect("connect to the test broker");
        Some(Self {
            log,
            raw: raw_producer(&brokers),
        })
    }

    fn log(&self) -> &KafkaLog {
        &self.log
    }

    async fn inject_raw(&self, bytes: &[u8]) -> Position {
        produce_raw(
            &self.raw,
            &self.log.config().topic,
            bytes,
            OwnedHeaders::new(),
        )
        .await
    }

    async fn restart(&mut self) {
        panic!(
            "the shared test broker cannot restart; kafka_restart.rs runs this case on a tansu \
             of its own"
        );
    }
}

contract_tests!(
    Kafka;
    keeps_exact_bytes_and_positions,
    keeps_per_customer_order,
    is_idempotent,
    survives_concurrent_appenders,
    appends_large_batches,
    reports_bad_records,
    reads_from_positions_and_waits,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_binary_mode_cloudevents() {
    let Some(harness) = Kafka::start("reads_binary_mode_cloudevents").await else {
        return;
    };
    let id = uuid::Uuid::new_v4();
    let data = br#"{"order_id":"SO-9","amount":{"minor":900,"currency":"EUR"}}"#;
    let headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", &id.to_string()),
        ("ce_source", "/foreign/erp"),
        ("ce_type", "purchase.recorded"),
        ("ce_subject", "CUST-BIN"),
        ("ce_time", "2026-03-14T09:30:00Z"),
        ("content-type", "application/json"),
    ]
    .into_iter()
    .fold(OwnedHeaders::new(), |h, (key, value)| {
        h.insert(Header {
            key,
            value: Some(value),
        })
    });
    let topic = harness.log.config().topic.clone();
    let position = produce_raw(&harness.raw, &topic, data, headers).await;
    // A structured record beside it, to show both modes in one stream.
    let structured = purchase("CUST-BIN", 1);
    harness
        .log
        .append(std::slice::from_ref(&structured))
        .await
        .unwrap();

    let mut stream = harness.log.read(&StartOffsets::new()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let item = tokio::time::timeout(contract::READ_TIMEOUT, stream.next())
            .await
            .expect("events arrive")
            .expect("stream continues")
            .expect("valid event");
        seen.push(item);
    }
    let binary = seen
        .iter()
        .find(|e| e.mode == WireMode::Binary)
        .expect("the binary-mode record");
    assert_eq!(binary.position, position);
    assert_eq!(*binary.event.id.as_uuid(), id);
    assert_eq!(binary.event.subject.as_str(), "CUST-BIN");
    let rebuilt = String::from_utf8(binary.bytes.clone()).unwrap();
    assert!(
        rebuilt.ends_with(r#""data":{"order_id":"SO-9","amount":{"minor":900,"currency":"EUR"}}}"#)
    );
    assert!(seen
        .iter()
        .any(|e| e.mode == WireMode::Structured && e.event.id == structured.id()));
}

/// A reader started in the middle of a multi-record batch reads on from exactly there, alone
/// or in a group. tansu 0.6.0's in-memory engine serves such a fetch from the next batch (see
/// `SINGLE_RECORD_BATCHES`); the reader notices and reads the start's batch again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_in_the_middle_of_a_batch() {
    let test = "starts_in_the_middle_of_a_batch";
    let Some(brokers) = test_support::service(test, test_support::KAFKA) else {
        return;
    };
    // A long linger puts the events in one produce request, one batch per partition.
    let config = KafkaConfig {
        linger: Duration::from_millis(200),
        ..kafka_test_config(&brokers)
    };
    let log = KafkaLog::connect(config.clone()).await.expect("connect");
    let events: Vec<_> = (0..20).map(|n| purchase("CUST-MID", n)).collect();
    let positions: Vec<Position> = log
        .append(&events)
        .await
        .expect("append")
        .into_iter()
        .map(|outcome| match outcome {
            AppendOutcome::Appended(position) => position,
            other => panic!("a new event was answered with {other:?}"),
        })
        .collect();
    let partition = positions[0].partition;
    for start in [1, 7, 19] {
        let from = StartOffsets::from([(partition, positions[start].offset)]);
        // A group of its own for each start.
        let member = KafkaLog::connect(KafkaConfig {
            reader_group_id: unique_name("mid-batch"),
            ..config.clone()
        })
        .await
        .expect("connect");
        let shared = Arc::new(Mutex::new(from.clone()));
        for (reader, stream) in [
            ("alone", log.read(&from).await.expect("read")),
            (
                "in a group",
                member.read_shared(shared).await.expect("read"),
            ),
        ] {
            let read = stream
                .take(events.len() - start)
                .map(|item| item.expect("a valid event").position)
                .collect::<Vec<_>>();
            let got = tokio::time::timeout(contract::READ_TIMEOUT, read)
                .await
                .unwrap_or_else(|_| panic!("{reader} from event {start}: too few events"));
            assert_eq!(got, positions[start..], "{reader}, from event {start}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_an_existing_topic_as_it_is() {
    let Some(brokers) =
        test_support::service("uses_an_existing_topic_as_it_is", test_support::KAFKA)
    else {
        return;
    };
    let config = kafka_test_config(&brokers);
    let first = KafkaLog::connect(config.clone()).await.unwrap();
    assert_eq!(first.partition_count().await.unwrap(), 3);
    let second = KafkaLog::connect(KafkaConfig {
        partitions: 12,
        ..config
    })
    .await
    .unwrap();
    assert_eq!(second.partition_count().await.unwrap(), 3);
    assert_eq!(second.high_water_marks().await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_broker_is_a_typed_error_in_bounded_time() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = KafkaConfig {
        request_timeout: Duration::from_secs(2),
        message_timeout: Duration::from_secs(2),
        ..KafkaConfig::new(format!("127.0.0.1:{port}")).with_topic(unique_name("dead"))
    };
    let started = Instant::now();
    let result = KafkaLog::connect(config).await;
    let took = started.elapsed();
    match result {
        Err(LogError::Unavailable { .. }) => {}
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("connected to a dead broker"),
    }
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
