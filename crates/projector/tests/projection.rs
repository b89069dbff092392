//! The projector against a real embedded log and a real read store (SQLite, and PostgreSQL
//! when `CLIENTLOG_TEST_DATABASE_URL` is set): determinism, duplicates, poison isolation,
//! dead-letter resolution, the hash chain and re-evaluation.

#[macro_use]
mod support;

use std::path::Path;
use std::time::Duration;

use clientlog_demo::{Config, Generator, YearMonth};
use clientlog_domain::{Event, Policies};
use clientlog_eventlog::{
    AppendEvent, BadRecord, EventLog, Position, SqliteLog, StoredEvent, WireMode,
};
use clientlog_projector::{
    resolve_dead_letter, Clock, Projector, ProjectorConfig, Record, Resolution, Resolve,
};
use clientlog_readstore::test_support::{Backend, TestStore};
use clientlog_readstore::{AuditRow, BatchWrite, Cause, KnownHead, ReadStore, Snapshot};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// 2026-01-01T00:00:00Z: the as_of of every verdict in these tests.
const AS_OF: i64 = 1_767_225_600;

fn config(batch_size: usize) -> ProjectorConfig {
    ProjectorConfig {
        batch_size,
        batch_wait: Duration::from_millis(50),
        reevaluate_every: None,
        clock: Clock::Fixed(AS_OF),
        until_caught_up: true,
        progress: None,
        hold_customers: 0,
    }
}

/// An embedded log with a demo history (late events included) appended in monthly batches;
/// returns it and every event in log order.
async fn demo_log(dir: &Path, customers: u32, months: u32, seed: u64) -> (SqliteLog, Vec<Event>) {
    let log = SqliteLog::open_path(dir.join("events.db"))
        .await
        .expect("open log");
    let mut generator = Generator::new(Config {
        customers,
        months,
        seed,
        start: YearMonth::new(2024, 1).expect("month"),
    })
    .expect("generator");
    let mut all = Vec::new();
    while let Some(batch) = generator.next_batch() {
        let events: Vec<AppendEvent> = batch.iter().map(AppendEvent::from_event).collect();
        log.append(&events).await.expect("append");
        all.extend(batch);
    }
    (log, all)
}

async fn project(store: &ReadStore, log: &SqliteLog, batch_size: usize) -> Projector {
    project_at(store, log, batch_size, AS_OF).await
}

async fn project_at(
    store: &ReadStore,
    log: &SqliteLog,
    batch_size: usize,
    as_of: i64,
) -> Projector {
    let projector = Projector::new(store.clone(), Policies::defaults())
        .await
        .expect("projector");
    projector
        .run(
            log,
            &ProjectorConfig {
                clock: Clock::Fixed(as_of),
                ..config(batch_size)
            },
            CancellationToken::new(),
        )
        .await
        .expect("run");
    projector
}

async fn snapshot(projector: &Projector) -> Snapshot {
    projector
        .store()
        .snapshot(projector.version())
        .await
        .expect("snapshot")
}

/// Every record of the log, in order, as the projector sees them.
async fn all_records(log: &SqliteLog) -> Vec<Record> {
    let end = log.high_water_marks().await.expect("hwm")[&0] - 1;
    let mut stream = log.read(&Default::default()).await.expect("read");
    let mut records = Vec::new();
    while records.len() < end as usize {
        match stream.next().await.expect("stream") {
            Ok(event) => records.push(Record::Event(event)),
            Err(clientlog_eventlog::ReadError::BadRecord(bad)) => records.push(Record::Bad(bad)),
            Err(err) => panic!("read error: {err}"),
        }
    }
    records
}

both_backends!(
    batch_boundaries_do_not_change_the_read_models,
    redelivered_events_change_nothing,
    a_bad_record_holds_only_its_customer_until_skipped,
    retry_applies_the_record_and_then_the_held_events,
    the_hash_chain_verifies_and_detects_tampering,
    reevaluation_records_what_time_changed,
    an_audit_copy_ahead_of_the_checkpoints_is_folded_not_copied_again,
);

/// The determinism invariant: one big batch and many tiny ones give the same rows.
async fn batch_boundaries_do_not_change_the_read_models(test: &str, backend: Backend) {
    let Some((a, b)) = TestStore::pair(test, backend).await else {
        return;
    };
    let (log, events) = demo_log(a.dir(), 150, 14, 11).await;
    let store_a = a.open().await.expect("store a");
    let store_b = b.open().await.expect("store b");
    let big = project(&store_a, &log, 100_000).await;
    let small = project(&store_b, &log, 37).await;
    let (sa, sb) = (snapshot(&big).await, snapshot(&small).await);
    assert_eq!(
        sa.events.len(),
        log.high_water_marks().await.unwrap()[&0] as usize - 1
    );
    assert!(events.len() > 2000, "demo too small: {}", events.len());
    assert_eq!(sa.customers.len(), 150);
    assert!(!sa.transitions.is_empty());
    assert_eq!(sa, sb);
    log.close().await;
    store_a.close().await;
    store_b.close().await;
    a.cleanup().await;
    b.cleanup().await;
}

/// Kafka can deliver an event twice (or a producer append it twice): the copies change
/// nothing, whether they come in a later batch or in the same one.
async fn redelivered_events_change_nothing(test: &str, backend: Backend) {
    let Some(a) = TestStore::new(test, backend).await else {
        return;
    };
    let (log, _) = demo_log(a.dir(), 60, 8, 5).await;
    let store = a.open().await.expect("store");
    let projector = project(&store, &log, 500).await;
    let before = snapshot(&projector).await;

    let records = all_records(&log).await;
    // A later batch holding copies of already-applied events (at new positions, as a second
    // copy in a Kafka topic would be), each twice.
    let next = before.checkpoints[&0] + 1;
    let mut copies = Vec::new();
    for (i, record) in records.iter().step_by(7).enumerate() {
        if let Record::Event(event) = record {
            for k in 0..2 {
                let mut copy = event.clone();
                copy.position = Position::new(0, next + 2 * i as i64 + k);
                copies.push(Record::Event(copy));
            }
        }
    }
    let outcome = projector
        .project_batch(copies.clone(), AS_OF, true)
        .await
        .expect("batch");
    assert_eq!(outcome.applied, 0);
    assert_eq!(outcome.duplicates, copies.len() as u64);
    let after = snapshot(&projector).await;
    assert_eq!(before.customers, after.customers);
    assert_eq!(before.events, after.events);
    assert_eq!(before.transitions, after.transitions);
    assert_eq!(before.states, after.states);
    log.close().await;
    store.close().await;
    a.cleanup().await;
}

/// On PostgreSQL a batch's audit copy commits on a connection of its own just before the
/// batch's rows and checkpoint; a batch that fails between the two commits leaves audit rows
/// that no checkpoint covers. The next run folds those events without copying them again and
/// ends with exactly the rows of a clean run. (SQLite commits both at once; the state is made
/// by hand here on both stores.)
async fn an_audit_copy_ahead_of_the_checkpoints_is_folded_not_copied_again(
    test: &str,
    backend: Backend,
) {
    let Some((a, b)) = TestStore::pair(test, backend).await else {
        return;
    };
    let (log, _) = demo_log(a.dir(), 80, 10, 3).await;
    let store_a = a.open().await.expect("store a");
    let store_b = b.open().await.expect("store b");
    let clean = snapshot(&project(&store_b, &log, 100_000).await).await;

    let records = all_records(&log).await;
    let (first, rest) = records.split_at(records.len() / 2);
    let projector = Projector::new(store_a.clone(), Policies::defaults())
        .await
        .expect("projector");
    projector
        .project_batch(first.to_vec(), AS_OF, false)
        .await
        .expect("first half");
    let checkpoint = snapshot(&projector).await.checkpoints[&0];
    // The audit rows a failed batch over the next quarter of the log committed.
    let ahead_to = rest[rest.len() / 2].position().1;
    let ahead: Vec<AuditRow> = clean
        .events
        .iter()
        .filter(|e| e.log_offset > checkpoint && e.log_offset <= ahead_to)
        .cloned()
        .collect();
    assert!(ahead.len() > 100, "too few events ahead: {}", ahead.len());
    let mut tx = store_a.begin().await.expect("begin");
    let audit_only = BatchWrite {
        events: ahead,
        ..BatchWrite::default()
    };
    tx.write(projector.version(), &audit_only, 0)
        .await
        .expect("audit rows");
    tx.commit().await.expect("commit");

    projector
        .run(&log, &config(500), CancellationToken::new())
        .await
        .expect("catching up");
    assert_eq!(snapshot(&projector).await, clean);
    log.close().await;
    store_a.close().await;
    store_b.close().await;
    a.cleanup().await;
    b.cleanup().await;
}

fn event_json(id: &str, customer: &str, n: u64) -> Vec<u8> {
    clientlog_eventlog::test_support::purchase_json_with_id(id.parse().expect("uuid"), customer, n)
        .into_bytes()
}

/// What a batch knows when the store holds nothing: no rows, no chain heads, no dead letters.
fn nothing_known() -> clientlog_projector::fold::Known {
    clientlog_projector::fold::Known {
        loaded: std::collections::HashMap::new(),
        unlisted_head: KnownHead::Read(None),
        blocked: std::collections::HashMap::new(),
        dead_letters: std::collections::HashMap::new(),
        audited: clientlog_projector::fold::Audited::default(),
    }
}

fn stored(position: i64, bytes: Vec<u8>) -> Record {
    stored_in(0, position, bytes)
}

fn stored_in(partition: i32, position: i64, bytes: Vec<u8>) -> Record {
    let event = Event::decode(&bytes).expect("valid fixture");
    Record::Event(StoredEvent {
        position: Position::new(partition, position),
        bytes,
        recorded_at: time::OffsetDateTime::UNIX_EPOCH,
        mode: WireMode::Structured,
        event,
    })
}

fn bad(position: i64, customer: &str, bytes: Vec<u8>) -> Record {
    Record::Bad(Box::new(BadRecord {
        position: Position::new(0, position),
        key: Some(customer.to_string()),
        bytes,
        reason: clientlog_domain::DecodeError::new("$.type", "unknown event type"),
    }))
}

/// Customer X: purchase, BAD, purchase, purchase. Customer Y: purchases throughout.
fn poisoned_batch(bad_bytes: Vec<u8>) -> Vec<Record> {
    let mut n = 0;
    let mut id = |customer: &str| {
        n += 1;
        event_json(&format!("00000000-0000-4000-8000-{n:012}"), customer, n)
    };
    vec![
        stored(1, id("CUST-X")),
        stored(2, id("CUST-Y")),
        bad(3, "CUST-X", bad_bytes),
        stored(4, id("CUST-X")),
        stored(5, id("CUST-Y")),
        stored(6, id("CUST-X")),
        stored(7, id("CUST-Y")),
    ]
}

async fn events_of(projector: &Projector, customer: &str) -> Vec<i64> {
    snapshot(projector)
        .await
        .events
        .iter()
        .filter(|e| e.customer_id == customer)
        .map(|e| e.log_offset)
        .collect()
}

async fn a_bad_record_holds_only_its_customer_until_skipped(test: &str, backend: Backend) {
    let Some(a) = TestStore::new(test, backend).await else {
        return;
    };
    let store = a.open().await.expect("store");
    let projector = Projector::new(store.clone(), Policies::defaults())
        .await
        .expect("projector");
    let outcome = projector
        .project_batch(poisoned_batch(b"\xff not json".to_vec()), AS_OF, true)
        .await
        .expect("batch");
    assert_eq!(
        (outcome.applied, outcome.held, outcome.dead_letters),
        (4, 2, 1)
    );
    assert_eq!(events_of(&projector, "CUST-X").await, vec![1]);
    assert_eq!(events_of(&projector, "CUST-Y").await, vec![2, 5, 7]);

    // Later batches: X stays held, Y keeps moving.
    let later = vec![
        stored(
            8,
            event_json("00000000-0000-4000-8000-000000000101", "CUST-X", 8),
        ),
        stored(
            9,
            event_json("00000000-0000-4000-8000-000000000102", "CUST-Y", 9),
        ),
    ];
    projector
        .project_batch(later, AS_OF, true)
        .await
        .expect("batch");
    assert_eq!(events_of(&projector, "CUST-X").await, vec![1]);
    assert_eq!(events_of(&projector, "CUST-Y").await, vec![2, 5, 7, 9]);
    let snap = snapshot(&projector).await;
    assert_eq!(snap.checkpoints[&0], 9);
    assert_eq!(
        snap.held,
        vec![
            (0, 4, "CUST-X".to_string()),
            (0, 6, "CUST-X".to_string()),
            (0, 8, "CUST-X".to_string())
        ]
    );

    let letters = store.dead_letters(projector.version()).await.expect("list");
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!((letter.log_offset, letter.held), (3, 3));
    assert_eq!(letter.customer_id.as_deref(), Some("CUST-X"));
    assert_eq!(letter.bytes, b"\xff not json");

    // Retrying bytes that still do not decode changes nothing but the record of the action.
    let retried = resolve_dead_letter(&projector, letter.id, Resolve::Retry, AS_OF)
        .await
        .expect("retry");
    assert!(
        matches!(retried, Resolution::StillInvalid { .. }),
        "{retried:?}"
    );
    assert_eq!(events_of(&projector, "CUST-X").await, vec![1]);

    let skipped = resolve_dead_letter(&projector, letter.id, Resolve::Skip, AS_OF)
        .await
        .expect("skip");
    assert_eq!(
        skipped,
        Resolution::Released {
            applied: 3,
            released: 3
        }
    );
    assert_eq!(events_of(&projector, "CUST-X").await, vec![1, 4, 6, 8]);
    let snap = snapshot(&projector).await;
    assert!(snap.held.is_empty());
    assert_eq!(snap.dead_letters[0].4, "skipped");
    let x = store
        .customer(projector.version(), "CUST-X")
        .await
        .expect("row")
        .expect("X exists");
    assert_eq!((x.events, x.log_offset), (4, 8));
    let actions: Vec<String> = store
        .dead_letter_actions(letter.id)
        .await
        .expect("actions")
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(actions, ["created", "retry", "skip", "skip"]);
    // Resolved once: a second skip is refused.
    assert!(
        resolve_dead_letter(&projector, letter.id, Resolve::Skip, AS_OF)
            .await
            .is_err()
    );
    // Afterwards X's events are applied as they come.
    projector
        .project_batch(
            vec![stored(
                10,
                event_json("00000000-0000-4000-8000-000000000201", "CUST-X", 10),
            )],
            AS_OF,
            true,
        )
        .await
        .expect("batch");
    assert_eq!(events_of(&projector, "CUST-X").await, vec![1, 4, 6, 8, 10]);
    assert!(store.verify_chains().await.expect("verify").is_empty());
    store.close().await;
    a.cleanup().await;
}

/// A record an older build rejected (here: valid bytes dead-lettered) is applied by `retry`,
/// before the events held behind it, so the customer ends as if nothing had happened.
async fn retry_applies_the_record_and_then_the_held_events(test: &str, backend: Backend) {
    let Some((a, b)) = TestStore::pair(test, backend).await else {
        return;
    };
    let good = event_json("00000000-0000-4000-8000-000000000099", "CUST-X", 99);
    let store = a.open().await.expect("store");
    let projector = Projector::new(store.clone(), Policies::defaults())
        .await
        .expect("projector");
    projector
        .project_batch(poisoned_batch(good.clone()), AS_OF, true)
        .await
        .expect("batch");
    let id = store.dead_letters(projector.version()).await.expect("list")[0].id;
    let outcome = resolve_dead_letter(&projector, id, Resolve::Retry, AS_OF)
        .await
        .expect("retry");
    assert_eq!(
        outcome,
        Resolution::Released {
            applied: 3,
            released: 2
        }
    );
    assert_eq!(events_of(&projector, "CUST-X").await, vec![1, 3, 4, 6]);

    // The same records without the poison, projected directly, give the same customer.
    let clean: Vec<Record> = poisoned_batch(good.clone())
        .into_iter()
        .map(|r| match r {
            Record::Bad(_) => stored(3, good.clone()),
            r => r,
        })
        .collect();
    let store_b = b.open().await.expect("store b");
    let direct = Projector::new(store_b.clone(), Policies::defaults())
        .await
        .expect("projector");
    direct
        .project_batch(clean, AS_OF, true)
        .await
        .expect("batch");
    let (sa, sb) = (snapshot(&projector).await, snapshot(&direct).await);
    assert_eq!(sa.customers, sb.customers);
    assert_eq!(sa.states, sb.states);
    assert_eq!(
        sa.events.iter().map(|e| e.hash).collect::<Vec<_>>(),
        sb.events.iter().map(|e| e.hash).collect::<Vec<_>>()
    );
    store.close().await;
    store_b.close().await;
    a.cleanup().await;
    b.cleanup().await;
}

async fn the_hash_chain_verifies_and_detects_tampering(test: &str, backend: Backend) {
    let Some(a) = TestStore::new(test, backend).await else {
        return;
    };
    let (log, _) = demo_log(a.dir(), 40, 6, 3).await;
    let store = a.open().await.expect("store");
    let projector = project(&store, &log, 300).await;
    assert!(store.verify_chains().await.expect("verify").is_empty());
    let snap = snapshot(&projector).await;
    let victim = &snap.events[snap.events.len() / 2];
    // Each row's hash covers the previous hash and the exact bytes.
    let previous = snap
        .events
        .iter()
        .find(|e| e.customer_id == victim.customer_id && e.seq == victim.seq - 1)
        .map(|e| e.hash);
    assert_eq!(
        clientlog_readstore::chain_hash(previous.as_ref(), &victim.bytes),
        victim.hash
    );
    let url = match &a.config {
        clientlog_readstore::StoreConfig::Sqlite { path } => {
            format!("sqlite://{}", path.display())
        }
        clientlog_readstore::StoreConfig::Postgres { url } => url.clone(),
    };
    let tamper =
        "UPDATE customer_events SET bytes = bytes || bytes WHERE customer_id = '{c}' AND seq = {s}"
            .replace("{c}", &victim.customer_id)
            .replace("{s}", &victim.seq.to_string());
    match backend {
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("connect");
            sqlx::query(&tamper)
                .execute(&mut conn)
                .await
                .expect("tamper");
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            sqlx::query(&tamper)
                .execute(&mut conn)
                .await
                .expect("tamper");
        }
    }
    assert_eq!(
        store.verify_chains().await.expect("verify"),
        vec![(victim.customer_id.clone(), victim.seq)]
    );
    log.close().await;
    store.close().await;
    a.cleanup().await;
}

/// Time moves without events: a year later, re-evaluation records transitions caused by
/// `reevaluation`, and the rows say as of when.
async fn reevaluation_records_what_time_changed(test: &str, backend: Backend) {
    let Some(a) = TestStore::new(test, backend).await else {
        return;
    };
    let (log, _) = demo_log(a.dir(), 80, 12, 9).await;
    let store = a.open().await.expect("store");
    // The history covers 2024; evaluate at its end, then 400 days later.
    let end_of_history = 1_735_689_600;
    let projector = project_at(&store, &log, 1000, end_of_history).await;
    let before = snapshot(&projector).await;
    assert!(before
        .customers
        .iter()
        .all(|c| c.evaluated_at == end_of_history));
    let later = end_of_history + 400 * 86_400;
    let stats = projector.reevaluate(later).await.expect("reevaluate");
    assert_eq!(stats.customers, 80);
    let after = snapshot(&projector).await;
    let new: Vec<_> = after.transitions[..]
        .iter()
        .filter(|t| !before.transitions.contains(t))
        .collect();
    assert!(!new.is_empty());
    assert!(new
        .iter()
        .all(|t| t.cause == Cause::Reevaluation && t.at == later));
    // A year of silence churns everyone who had been buying.
    assert!(after.customers.iter().all(|c| c.evaluated_at == later));
    assert!(new
        .iter()
        .any(|t| t.dimension == "stage" && t.to_value == "churned"));
    assert_eq!(before.events, after.events);
    assert_eq!(before.states, after.states);
    // Idempotent at the same as_of.
    let again = projector.reevaluate(later).await.expect("reevaluate");
    assert_eq!(again.transitions, 0);
    assert_eq!(snapshot(&projector).await, after);
    log.close().await;
    store.close().await;
    a.cleanup().await;
}

/// The default policies with their lineage, which the folds' `Evaluation` borrows.
struct Defaults {
    policies: Policies,
    lineage: clientlog_readstore::Lineage,
}

impl Defaults {
    fn new() -> Self {
        let policies = Policies::defaults();
        let lineage = clientlog_projector::lineage_of(&policies);
        Self { policies, lineage }
    }

    fn at(&self, as_of: i64) -> clientlog_projector::fold::Evaluation<'_> {
        clientlog_projector::fold::Evaluation {
            policies: &self.policies,
            lineage: &self.lineage,
            as_of,
        }
    }
}

/// An event new to the audit copy is chained on from the customer's head, so the head must
/// have been read: a fold whose look-ups left it unread fails and writes nothing, rather than
/// start the customer's chain again at 1. Read (here: none stored), the chain starts at 1.
#[test]
fn an_event_new_to_the_audit_copy_needs_its_customers_chain_head() {
    use clientlog_projector::fold::{fold, FoldError, Known};

    let defaults = Defaults::new();
    let eval = defaults.at(AS_OF);
    let known = |unlisted_head| Known {
        unlisted_head,
        ..nothing_known()
    };
    let records = [stored(
        1,
        event_json("0190c6a8-0000-7000-8000-000000000001", "CUST-X", 1),
    )];
    match fold(&records, known(KnownHead::Unread), &eval, true) {
        Err(FoldError::HeadUnread(customer)) => assert_eq!(customer, "CUST-X"),
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("folded without the chain head"),
    }
    let written = fold(&records, known(KnownHead::Read(None)), &eval, true).expect("fold");
    assert_eq!(written.events.len(), 1);
    assert_eq!(written.events[0].seq, 1);
}

/// A carry finished in parts hands the writer every row that finishing it at once gives:
/// the transitions in customer order first, then the customers in id order, in parts of the
/// size asked for, and the checkpoints in what is left.
#[test]
fn a_carry_finished_in_parts_writes_what_finishing_it_at_once_writes() {
    use clientlog_projector::fold::{fold_into, Carry};
    use clientlog_readstore::BatchWrite;

    let defaults = Defaults::new();
    let eval = defaults.at(AS_OF);
    let records: Vec<Record> = (0..120_u64)
        .map(|n| {
            stored(
                n as i64 + 1,
                event_json(
                    &format!("0190c6a8-0000-7000-8000-{n:012}"),
                    &format!("CUST-{:02}", n % 24),
                    n + 1,
                ),
            )
        })
        .collect();
    let carry = || {
        let mut known = nothing_known();
        let mut carry = Carry::default();
        fold_into(&records, &mut known, &eval, true, &mut carry).expect("fold");
        carry
    };
    let whole = carry().finish(&eval);
    let mut parts: Vec<BatchWrite> = Vec::new();
    let last = carry().finish_in_parts(&eval, 7, |part| {
        parts.push(part);
        true
    });
    assert!(parts.len() > 4, "{} parts", parts.len());
    assert!(parts
        .iter()
        .all(|p| p.customers.is_empty() || p.customers.len() == 7));
    assert!(parts.iter().all(|p| p.checkpoints.is_empty()));
    assert_eq!(last.checkpoints, whole.checkpoints);
    parts.push(last);
    let customers: Vec<_> = parts.iter().flat_map(|p| p.customers.clone()).collect();
    let states: Vec<_> = parts.iter().flat_map(|p| p.states.clone()).collect();
    let transitions: Vec<_> = parts.iter().flat_map(|p| p.transitions.clone()).collect();
    assert_eq!(customers, whole.customers);
    assert_eq!(states, whole.states);
    assert_eq!(transitions, whole.transitions);
    assert_eq!(whole.customers.len(), 24);
}

/// A build that holds a customer over batches folded at different times writes the time of
/// the customer's own last verdict, not that of the batch that writes it.
#[test]
fn a_held_customer_keeps_the_time_of_its_last_verdict() {
    use clientlog_projector::fold::{fold_into, Carry};
    use std::collections::HashMap;

    let defaults = Defaults::new();
    let at = |as_of| defaults.at(as_of);
    let known = nothing_known;
    let later = AS_OF + 2 * 86_400;
    let x = stored(
        1,
        event_json("0190c6a8-0000-7000-8000-000000000001", "CUST-X", 1),
    );
    let y = stored(
        2,
        event_json("0190c6a8-0000-7000-8000-000000000002", "CUST-Y", 2),
    );
    let mut carry = Carry::default();
    fold_into(&[x], &mut known(), &at(AS_OF), true, &mut carry).expect("first batch");
    fold_into(&[y], &mut known(), &at(later), true, &mut carry).expect("second batch");
    let written = carry.finish(&at(later));
    let evaluated: HashMap<&str, i64> = written
        .customers
        .iter()
        .map(|c| (c.customer_id.as_str(), c.evaluated_at))
        .collect();
    assert_eq!(evaluated["CUST-X"], AS_OF);
    assert_eq!(evaluated["CUST-Y"], later);
    assert_eq!(written.checkpoints.get(&0), Some(&2));
}

/// Folding a batch's customers on two threads, or customer by customer with the rows streamed
/// in parts, writes what folding them in one pass writes: the same customers, states and
/// checkpoints, and each customer's transitions, audit rows and held events in the same order.
/// The batch mixes both shards and three partitions (by customer, as Kafka keys them), a
/// repeated event id, an event the audit copy holds already, a customer held from the start
/// and one held by a bad record.
#[test]
fn the_sharded_and_streamed_folds_write_what_the_sequential_fold_writes() {
    use clientlog_projector::fold::{
        fold_by_customer, fold_into, fold_into_sharded, Audited, Carry, Known,
    };
    use clientlog_readstore::BatchWrite;
    use std::collections::HashMap;

    let defaults = Defaults::new();
    let eval = defaults.at(AS_OF);
    let id = |n: u64| format!("0190c6a8-0000-7000-8000-{n:012}");
    let mut records = Vec::new();
    let mut position = 0;
    for round in 0..6_u64 {
        for customer in 0..24_u64 {
            position += 1;
            let n = round * 100 + customer;
            records.push(stored_in(
                (customer % 3) as i32,
                position,
                event_json(&id(n), &format!("CUST-{customer:02}"), n + 1),
            ));
        }
    }
    // A second copy of an event, at a later position: changes nothing.
    position += 1;
    records.push(stored(position, event_json(&id(5), "CUST-05", 6)));
    // A bad record of CUST-07 with its dead letter: its later events are held.
    position += 1;
    records.push(bad(position, "CUST-07", b"{}".to_vec()));
    let bad_position = position;
    for customer in [7_u64, 8] {
        position += 1;
        let n = 1_000 + customer;
        records.push(stored(
            position,
            event_json(&id(n), &format!("CUST-{customer:02}"), n),
        ));
    }
    let audited_position = records[30].position();
    let audited_id = match &records[30] {
        Record::Event(e) => *e.event.id.as_uuid().as_bytes(),
        Record::Bad(_) => unreachable!("an event"),
    };
    let known = || Known {
        loaded: HashMap::new(),
        unlisted_head: KnownHead::Read(None),
        blocked: HashMap::from([("CUST-11".to_string(), 1)]),
        dead_letters: HashMap::from([((0, bad_position), 2)]),
        audited: Audited::Ids(HashMap::from([(audited_id, audited_position)])),
    };

    let mut one = Carry::default();
    fold_into(&records, &mut known(), &eval, true, &mut one).expect("sequential fold");
    let mut two = Carry::default();
    fold_into_sharded(records.clone(), known(), &eval, true, &mut two).expect("sharded fold");
    let (one, two) = (one.finish(&eval), two.finish(&eval));
    // Folded customer by customer, parts of 10 records: the carry left and the parts handed out.
    let streamed_fold = |hold: bool| {
        let mut carry = Carry::default();
        let mut parts = Vec::new();
        fold_by_customer(
            records.clone(),
            known(),
            &eval,
            &mut carry,
            hold,
            10,
            |part| {
                parts.push(part);
                true
            },
        )
        .expect("streamed fold");
        (carry, parts)
    };
    let (streamed, parts) = streamed_fold(false);
    assert!(parts.len() > 5, "the rows come in parts: {}", parts.len());
    let mut three = streamed.finish(&eval);
    for mut part in parts {
        three.customers.append(&mut part.customers);
        three.states.append(&mut part.states);
        three.events.append(&mut part.events);
        three.transitions.append(&mut part.transitions);
        three.held.append(&mut part.held);
    }
    // Held: only the audit rows come out in parts, everything else when the carry is finished.
    let (holding, audit_parts) = streamed_fold(true);
    assert!(
        audit_parts.len() > 5,
        "audit rows in parts: {}",
        audit_parts.len()
    );
    assert_eq!(
        holding.customers(),
        23,
        "every customer stays held but CUST-11"
    );
    let mut four = holding.finish(&eval);
    assert!(four.events.is_empty(), "the audit rows were all handed out");
    for mut part in audit_parts {
        assert!(
            part.customers.is_empty() && part.transitions.is_empty() && part.held.is_empty(),
            "a held fold hands out audit rows only"
        );
        four.events.append(&mut part.events);
    }

    assert_eq!(one.customers.len(), 23, "CUST-11 is held throughout");
    let last_in = |partition: i32| {
        records
            .iter()
            .map(Record::position)
            .filter(|&(p, _)| p == partition)
            .map(|(_, offset)| offset)
            .max()
    };
    let expected: Vec<(i32, i64)> = (0..3)
        .filter_map(|p| last_in(p).map(|offset| (p, offset)))
        .collect();
    assert_eq!(
        one.checkpoints
            .iter()
            .map(|(&p, &o)| (p, o))
            .collect::<Vec<_>>(),
        expected,
        "each partition's checkpoint is its last record"
    );
    for other in [&two, &three, &four] {
        assert_eq!(one.customers, other.customers);
        assert_eq!(one.states, other.states);
        assert_eq!(one.checkpoints, other.checkpoints);
        assert_eq!(one.applied, other.applied);
    }
    assert_eq!(
        one.held.len(),
        6 + 1,
        "CUST-11's six events and CUST-07's last one"
    );
    // Each customer's rows in their order, customers one after the other.
    fn per_customer<T: std::fmt::Debug>(rows: &[T], customer: impl Fn(&T) -> &str) -> Vec<String> {
        let mut rows: Vec<(&str, String)> = rows
            .iter()
            .map(|r| (customer(r), format!("{r:?}")))
            .collect();
        rows.sort_by_key(|(customer, _)| *customer);
        rows.into_iter().map(|(_, row)| row).collect()
    }
    let transitions = |w: &BatchWrite| per_customer(&w.transitions, |t| &t.customer_id);
    let events = |w: &BatchWrite| per_customer(&w.events, |e| &e.customer_id);
    let held = |w: &BatchWrite| per_customer(&w.held, |h| &h.customer_id);
    for other in [&two, &three, &four] {
        assert_eq!(transitions(&one), transitions(other));
        assert_eq!(events(&one), events(other));
        assert_eq!(held(&one), held(other));
    }
    assert_eq!(
        one.events.len(),
        24 * 6 - 6 - 1 + 1,
        "all but CUST-11's, the audited one and CUST-07's held one, plus CUST-08's last"
    );
}
