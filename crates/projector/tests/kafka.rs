//! The projector on Kafka (tansu in CI, `CLIENTLOG_TEST_KAFKA`): duplicates that Kafka keeps
//! change nothing, a restart seeks to checkpoint + 1 per partition, and the read models equal
//! those built from the embedded log with the same events (up to log positions and recorded_at,
//! which are each log's own); a record that is not an event is dead-lettered in the read store
//! and published to the dead-letter topic, before the commit (at least once).

use std::time::Duration;

use clientlog_demo::{Config, Generator, YearMonth};
use clientlog_domain::Policies;
use clientlog_eventlog::test_support::{service, unique_name, KAFKA};
use clientlog_eventlog::{AppendEvent, EventLog, KafkaConfig, KafkaLog, SqliteLog};
use clientlog_projector::{Clock, Projector, ProjectorConfig, RunStats};
use clientlog_readstore::test_support::{Backend, TestStore};
use clientlog_readstore::{Cause, Snapshot};
use tokio_util::sync::CancellationToken;

const AS_OF: i64 = 1_767_225_600;

async fn run<L: EventLog>(projector: &Projector, log: &L) -> RunStats {
    let config = ProjectorConfig {
        batch_size: 700,
        batch_wait: Duration::from_millis(50),
        reevaluate_every: None,
        clock: Clock::Fixed(AS_OF),
        until_caught_up: true,
        progress: None,
        hold_customers: 0,
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        projector.run(log, &config, CancellationToken::new()),
    )
    .await
    .expect("caught up within two minutes")
    .expect("run")
}

/// The snapshot without what differs between two logs: positions and recorded_at.
fn without_positions(mut s: Snapshot) -> Snapshot {
    for c in &mut s.customers {
        c.log_partition = 0;
        c.log_offset = 0;
    }
    for e in &mut s.events {
        e.log_partition = 0;
        e.log_offset = 0;
        e.recorded_at = 0;
    }
    for t in &mut s.transitions {
        if let Cause::Event {
            log_partition,
            log_offset,
            ..
        } = &mut t.cause
        {
            *log_partition = 0;
            *log_offset = 0;
        }
    }
    s.checkpoints.clear();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_duplicates_change_nothing_and_restarts_seek_to_the_checkpoint() {
    let test = "kafka_duplicates_change_nothing_and_restarts_seek_to_the_checkpoint";
    let Some(brokers) = service(test, KAFKA) else {
        return;
    };
    let kafka = KafkaLog::connect(KafkaConfig {
        partitions: 3,
        ..KafkaConfig::new(brokers).with_topic(unique_name("projector"))
    })
    .await
    .expect("connect");
    let Some(a) = TestStore::new(test, Backend::Sqlite).await else {
        return;
    };
    let Some(b) = TestStore::new(test, Backend::Sqlite).await else {
        return;
    };
    let embedded = SqliteLog::open_path(b.dir().join("events.db"))
        .await
        .expect("embedded log");

    let mut generator = Generator::new(Config {
        customers: 40,
        months: 6,
        seed: 21,
        start: YearMonth::new(2025, 7).expect("month"),
    })
    .expect("generator");
    let mut months: Vec<Vec<AppendEvent>> = Vec::new();
    while let Some(batch) = generator.next_batch() {
        months.push(batch.iter().map(AppendEvent::from_event).collect());
    }
    let (first, second) = months.split_at(months.len() / 2);

    // Kafka refuses a repeat only within one batch; the embedded log refuses every repeat.
    // What Kafka holds beyond the embedded log are copies the projector must skip.
    let stored = |outcomes: Vec<clientlog_eventlog::AppendOutcome>| {
        outcomes.iter().filter(|o| !o.is_duplicate()).count() as u64
    };
    let (mut in_kafka, mut in_embedded) = (0u64, 0u64);
    for month in first {
        in_kafka += stored(kafka.append(month).await.expect("append"));
        in_embedded += stored(embedded.append(month).await.expect("append"));
        // The same events again in another batch: Kafka keeps the copies.
        let again: Vec<AppendEvent> = month.iter().step_by(5).cloned().collect();
        in_kafka += stored(kafka.append(&again).await.expect("append again"));
    }
    let duplicates = in_kafka - in_embedded;
    assert!(duplicates > 20, "too few copies: {duplicates}");
    let store_a = a.open().await.expect("store");
    let store_b = b.open().await.expect("store");
    let on_kafka = Projector::new(store_a.clone(), Policies::defaults())
        .await
        .expect("projector");
    let on_embedded = Projector::new(store_b.clone(), Policies::defaults())
        .await
        .expect("projector");
    let stats = run(&on_kafka, &kafka).await;
    assert_eq!(stats.duplicates, duplicates);
    run(&on_embedded, &embedded).await;
    let checkpoints = store_a.checkpoints(on_kafka.version()).await.expect("cp");
    assert!(
        checkpoints.len() > 1,
        "events on several partitions: {checkpoints:?}"
    );

    // More events, then a restart: it reads only what is past the checkpoints.
    let (mut more, mut new) = (0u64, 0u64);
    for month in second {
        more += stored(kafka.append(month).await.expect("append"));
        new += stored(embedded.append(month).await.expect("append"));
    }
    let restarted = Projector::new(store_a.clone(), Policies::defaults())
        .await
        .expect("projector");
    let stats = run(&restarted, &kafka).await;
    assert_eq!(
        stats.records, more,
        "a restart re-reads nothing before its checkpoints"
    );
    assert_eq!(stats.applied, new);
    run(&on_embedded, &embedded).await;

    let sa = store_a
        .snapshot(on_kafka.version())
        .await
        .expect("snapshot");
    let sb = store_b
        .snapshot(on_embedded.version())
        .await
        .expect("snapshot");
    assert_eq!(sa.events.len(), sb.events.len());
    assert_eq!(without_positions(sa), without_positions(sb));
    assert!(store_a.verify_chains().await.expect("verify").is_empty());

    embedded.close().await;
    store_a.close().await;
    store_b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_bad_records_go_to_the_dead_letter_topic() {
    let test = "kafka_bad_records_go_to_the_dead_letter_topic";
    let Some(brokers) = service(test, KAFKA) else {
        return;
    };
    let Some(a) = TestStore::new(test, Backend::Sqlite).await else {
        return;
    };
    let garbage = b"\xff this is not an event".to_vec();
    let kafka = poisoned_topic(&brokers, 2, &garbage).await;

    let store = a.open().await.expect("store");
    let projector = Projector::new(store.clone(), Policies::defaults())
        .await
        .expect("projector");
    let stats = run(&projector, &kafka).await;
    assert_eq!((stats.applied, stats.dead_letters), (1, 1));
    let letters = store.dead_letters(projector.version()).await.expect("list");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].customer_id.as_deref(), Some("CUST-BAD"));

    let published = dead_letter_topic(&brokers, &kafka, 1).await;
    assert_eq!(published[0].bytes, garbage);
    assert_eq!(published[0].key.as_deref(), Some("CUST-BAD"));
    store.close().await;
    a.cleanup().await;
}

/// Produces `payload` under `key` to `kafka`'s topic as it is, bypassing the log's checks.
/// A new topic of `partitions` holding one good event (CUST-OK) and then `garbage` (CUST-BAD).
async fn poisoned_topic(brokers: &str, partitions: i32, garbage: &[u8]) -> KafkaLog {
    let kafka = KafkaLog::connect(KafkaConfig {
        partitions,
        ..KafkaConfig::new(brokers).with_topic(unique_name("poison"))
    })
    .await
    .expect("connect");
    kafka
        .append(&[clientlog_eventlog::test_support::purchase("CUST-OK", 1)])
        .await
        .expect("append");
    produce_raw(&kafka, "CUST-BAD", garbage).await;
    kafka
}

async fn produce_raw(kafka: &KafkaLog, key: &str, payload: &[u8]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = kafka.config().producer_config().create().expect("producer");
    producer
        .send(
            FutureRecord::to(&kafka.config().topic)
                .key(key)
                .payload(payload),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
}

/// The first `n` records of the dead-letter topic of `kafka`, read from its start.
async fn dead_letter_topic(
    brokers: &str,
    kafka: &KafkaLog,
    n: usize,
) -> Vec<clientlog_eventlog::BadRecord> {
    use futures::StreamExt as _;
    let dead = KafkaLog::connect(KafkaConfig {
        partitions: 1,
        ..KafkaConfig::new(brokers.to_string()).with_topic(kafka.config().dead_letter_topic())
    })
    .await
    .expect("connect to the dead-letter topic");
    let mut stream = dead.read(&Default::default()).await.expect("read");
    let mut found = Vec::new();
    while found.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Err(clientlog_eventlog::ReadError::BadRecord(bad)))) => found.push(*bad),
            Ok(other) => panic!("expected a dead letter, got {other:?}"),
            Err(_) => panic!("{} of {n} dead letters within 30 s", found.len()),
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_dead_letters_are_published_before_the_commit() {
    use sqlx::{Connection, PgConnection};

    let test = "kafka_dead_letters_are_published_before_the_commit";
    let Some(brokers) = service(test, KAFKA) else {
        return;
    };
    let Some(a) = TestStore::new(test, Backend::Postgres).await else {
        return;
    };
    let garbage = b"\xff not an event either".to_vec();
    let kafka = poisoned_topic(&brokers, 1, &garbage).await;

    let store = a.open().await.expect("store");
    let projector = Projector::new(store.clone(), Policies::defaults())
        .await
        .expect("projector");
    // The batch's commit fails, as a crash between publishing and committing would leave it: a
    // deferred trigger refuses the checkpoint at commit time.
    let url = a.url.clone().expect("a PostgreSQL store has a URL");
    let mut admin = PgConnection::connect(&url).await.expect("connect");
    for statement in [
        "CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'commit refused by the test'; END $$",
        "CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT OR UPDATE ON checkpoints \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit()",
    ] {
        sqlx::query(statement)
            .execute(&mut admin)
            .await
            .expect(statement);
    }
    let config = ProjectorConfig {
        batch_wait: Duration::from_millis(50),
        reevaluate_every: None,
        clock: Clock::Fixed(AS_OF),
        until_caught_up: true,
        ..ProjectorConfig::default()
    };
    let failed = tokio::time::timeout(
        Duration::from_secs(120),
        projector.run(&kafka, &config, CancellationToken::new()),
    )
    .await
    .expect("the run ends");
    let err = failed.expect_err("the commit was refused");
    assert!(
        format!("{err:?}").contains("commit refused by the test"),
        "failed for another reason: {err:?}"
    );
    let version = projector.version();
    assert!(
        store.dead_letters(version).await.expect("list").is_empty(),
        "the refused commit wrote nothing"
    );
    let published = dead_letter_topic(&brokers, &kafka, 1).await;
    assert_eq!(published[0].bytes, garbage, "published before the commit");

    sqlx::query("DROP TRIGGER refuse_commit ON checkpoints")
        .execute(&mut admin)
        .await
        .expect("drop the trigger");
    admin.close().await.expect("close");
    let stats = run(&projector, &kafka).await;
    assert_eq!((stats.applied, stats.dead_letters), (1, 1));
    let letters = store.dead_letters(version).await.expect("list");
    assert_eq!(letters.len(), 1, "the read store holds it once");
    // At least once: the retry published it again.
    let published = dead_letter_topic(&brokers, &kafka, 2).await;
    assert!(published.iter().all(|bad| bad.bytes == garbage));
    assert!(published
        .iter()
        .all(|bad| bad.key.as_deref() == Some("CUST-BAD")));
    store.close().await;
    a.cleanup().await;
}
