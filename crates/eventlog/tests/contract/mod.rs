//! The `EventLog` contract, written once and run against every backend (see `embedded.rs`,
//! `kafka.rs`, `kafka_restart.rs`). A backend supplies a [`Harness`]; each case takes a fresh
//! one (its own file or topic) and checks one promise of the contract.

#![allow(dead_code)] // Each test binary uses a subset of the cases.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use clientlog_eventlog::test_support::{bad_records, purchase};
use clientlog_eventlog::{
    AppendEvent, AppendOutcome, EventLog, Position, ReadError, StartOffsets, StoredEvent,
};
use futures::StreamExt;
use time::OffsetDateTime;

/// How long a read may take to deliver what was appended before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// One backend under test, with a log of its own.
pub trait Harness: Sized + Send {
    type Log: EventLog + Clone + Send + Sync + 'static;

    /// A fresh log for `test`, or `None` when the backend's service is not configured (the
    /// skip is already reported).
    fn start(test: &str) -> impl Future<Output = Option<Self>> + Send;

    fn log(&self) -> &Self::Log;

    /// Writes `bytes` into the log as they are, bypassing validation, as a foreign producer
    /// could; returns where they landed.
    fn inject_raw(&self, bytes: &[u8]) -> impl Future<Output = Position> + Send;

    /// Closes and reopens the log (embedded) or restarts the broker (Kafka).
    fn restart(&mut self) -> impl Future<Output = ()> + Send;
}

/// Declares one `#[tokio::test]` per listed case for harness `$h`.
#[macro_export]
macro_rules! contract_tests {
    ($h:ty; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(harness) =
                    <$h as $crate::contract::Harness>::start(stringify!($case)).await
                {
                    $crate::contract::$case(harness).await;
                }
            }
        )+
    };
}

fn customer(i: usize) -> String {
    format!("CUST-{i:04}")
}

/// Appends and asserts every outcome is `Appended`; returns the positions.
async fn append_new<L: EventLog>(log: &L, batch: &[AppendEvent]) -> Vec<Position> {
    let outcomes = log.append(batch).await.expect("append");
    assert_eq!(outcomes.len(), batch.len(), "one outcome per event");
    outcomes
        .into_iter()
        .map(|outcome| match outcome {
            AppendOutcome::Appended(position) => position,
            AppendOutcome::Duplicate(position) => {
                panic!("a new event was answered as a duplicate of {position}")
            }
        })
        .collect()
}

/// The next `n` items from `from`, failing the test if they do not arrive in time.
async fn read_items<L: EventLog>(
    log: &L,
    from: &StartOffsets,
    n: usize,
) -> Vec<Result<StoredEvent, ReadError>> {
    let mut stream = log.read(from).await.expect("open a read stream");
    let mut items = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    while items.len() < n {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(item)) => items.push(item),
            Ok(None) => panic!("the read stream ended after {} of {n} items", items.len()),
            Err(_) => panic!(
                "only {} of {n} items arrived within {READ_TIMEOUT:?}",
                items.len()
            ),
        }
    }
    items
}

/// The next `n` events from the beginning; any error fails the test.
async fn read_events<L: EventLog>(log: &L, n: usize) -> Vec<StoredEvent> {
    read_items(log, &StartOffsets::new(), n)
        .await
        .into_iter()
        .map(|item| item.expect("a valid event"))
        .collect()
}

/// Asserts that nothing more arrives within a short while.
async fn assert_no_more<L: EventLog>(log: &L, from: &StartOffsets, skip: usize) {
    let mut stream = log.read(from).await.expect("open a read stream");
    for _ in 0..skip {
        tokio::time::timeout(READ_TIMEOUT, stream.next())
            .await
            .expect("known items arrive")
            .expect("stream continues")
            .ok();
    }
    if let Ok(Some(item)) = tokio::time::timeout(Duration::from_secs(2), stream.next()).await {
        panic!("unexpected extra item after {skip}: {item:?}");
    }
}

fn events_for(customers: usize, per_customer: usize) -> Vec<AppendEvent> {
    // Interleaved: c0 #0, c1 #0, …, c0 #1, … so batches mix customers.
    let mut events = Vec::with_capacity(customers * per_customer);
    for n in 0..per_customer {
        for c in 0..customers {
            events.push(purchase(&customer(c), n as u64));
        }
    }
    events
}

/// Exact bytes, positions, `recorded_at` and high-water marks of a simple append.
pub async fn keeps_exact_bytes_and_positions<H: Harness>(harness: H) {
    let log = harness.log();
    let before = OffsetDateTime::now_utc();
    // Unusual whitespace and key order must survive byte for byte.
    let odd = clientlog_eventlog::test_support::purchase_json("CUST-ODD", 7)
        .replacen("{", "{ \n\t", 1)
        .replace(",\"type\"", " ,  \"type\"");
    let batch = vec![
        purchase("CUST-A", 1),
        AppendEvent::from_bytes(odd.into_bytes()).expect("odd but valid JSON"),
        purchase("CUST-A", 2),
    ];
    let positions = append_new(log, &batch).await;
    let after = OffsetDateTime::now_utc();
    assert_eq!(positions[0].partition, positions[2].partition);
    assert!(positions[0].offset < positions[2].offset);

    let hwm = log.high_water_marks().await.expect("high-water marks");
    for position in &positions {
        assert!(
            hwm[&position.partition] > position.offset,
            "high-water mark {hwm:?} not past {position}"
        );
    }

    let events = read_events(log, batch.len()).await;
    let by_id: HashMap<_, _> = events.iter().map(|e| (e.event.id, e)).collect();
    for (sent, position) in batch.iter().zip(&positions) {
        let stored = by_id[&sent.id()];
        assert_eq!(stored.bytes, sent.bytes(), "bytes changed");
        assert_eq!(stored.position, *position);
        assert_eq!(stored.event.subject, *sent.subject());
        let slack = time::Duration::seconds(2);
        assert!(
            stored.recorded_at >= before - slack && stored.recorded_at <= after + slack,
            "recorded_at {} is not the accept time ({before} … {after})",
            stored.recorded_at
        );
    }
    assert_no_more(log, &StartOffsets::new(), batch.len()).await;
}

/// All events of a customer are in one partition, in append order.
pub async fn keeps_per_customer_order<H: Harness>(harness: H) {
    let log = harness.log();
    let events = events_for(6, 40);
    for batch in events.chunks(7) {
        append_new(log, batch).await;
    }
    let stored = read_events(log, events.len()).await;

    let mut seen: HashMap<String, Vec<&StoredEvent>> = HashMap::new();
    for event in &stored {
        seen.entry(event.event.subject.as_str().to_string())
            .or_default()
            .push(event);
    }
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    for event in &stored {
        if let Some(last) = last_offset.insert(event.position.partition, event.position.offset) {
            assert!(
                event.position.offset > last,
                "partition {} went from {last} to {}",
                event.position.partition,
                event.position.offset
            );
        }
    }
    for c in 0..6 {
        let name = customer(c);
        let expected: Vec<_> = events
            .iter()
            .filter(|e| e.subject().as_str() == name)
            .map(AppendEvent::id)
            .collect();
        let got = &seen[&name];
        let partitions: HashSet<i32> = got.iter().map(|e| e.position.partition).collect();
        assert_eq!(partitions.len(), 1, "{name} is spread over {partitions:?}");
        let got_ids: Vec<_> = got.iter().map(|e| e.event.id).collect();
        assert_eq!(got_ids, expected, "{name}'s events are out of order");
    }
}

/// A repeated id adds nothing to the log's effect: refused with the original's position where
/// the backend can (`dedupes_on_append`), otherwise appended and reported to readers.
pub async fn is_idempotent<H: Harness>(harness: H) {
    let log = harness.log();
    let mut batch: Vec<AppendEvent> = (0..20)
        .map(|n| purchase(&customer(n % 3), n as u64))
        .collect();
    // Two ids repeated within the batch.
    batch.push(batch[3].clone());
    batch.push(batch[17].clone());

    let first = log.append(&batch).await.expect("append");
    assert!(first[..20].iter().all(|o| !o.is_duplicate()), "{first:?}");
    assert_eq!(first[20], AppendOutcome::Duplicate(first[3].position()));
    assert_eq!(first[21], AppendOutcome::Duplicate(first[17].position()));
    let hwm = log.high_water_marks().await.expect("hwm");

    let again = log.append(&batch).await.expect("append again");
    let originals: Vec<Position> = first.iter().map(AppendOutcome::position).collect();
    if log.dedupes_on_append() {
        let expected: Vec<_> = originals
            .iter()
            .map(|p| AppendOutcome::Duplicate(*p))
            .collect();
        assert_eq!(again, expected);
        assert_eq!(log.high_water_marks().await.expect("hwm"), hwm);
        let stored = read_events(log, 20).await;
        let ids: HashSet<_> = stored.iter().map(|e| e.event.id).collect();
        assert_eq!(ids.len(), 20);
        assert_no_more(log, &StartOffsets::new(), 20).await;
    } else {
        // Kafka: the second copies are in the log at new positions, and the reader reports
        // every copy with the same id and bytes, so the projector can skip them.
        assert!(again[..20].iter().all(|o| !o.is_duplicate()));
        for (copy, original) in again.iter().zip(&originals).take(20) {
            assert_ne!(copy.position(), *original);
        }
        assert_eq!(again[20], AppendOutcome::Duplicate(again[3].position()));
        let stored = read_events(log, 40).await;
        let mut copies: HashMap<_, Vec<&StoredEvent>> = HashMap::new();
        for event in &stored {
            copies.entry(event.event.id).or_default().push(event);
        }
        assert_eq!(copies.len(), 20);
        for (id, copies) in copies {
            assert_eq!(copies.len(), 2, "{id} should be read twice");
            assert_eq!(copies[0].bytes, copies[1].bytes);
            assert_ne!(copies[0].position, copies[1].position);
        }
        assert_no_more(log, &StartOffsets::new(), 40).await;
    }
}

/// Eight tasks appending at once: nothing lost, nothing doubled, each task's order kept.
pub async fn survives_concurrent_appenders<H: Harness>(harness: H) {
    const TASKS: usize = 8;
    const BATCHES: usize = 25;
    const PER_BATCH: usize = 10;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let log = harness.log().clone();
        tasks.spawn(async move {
            let name = format!("TASK-{task}");
            let mut sent = Vec::new();
            for b in 0..BATCHES {
                let batch: Vec<_> = (0..PER_BATCH)
                    .map(|i| purchase(&name, (b * PER_BATCH + i) as u64))
                    .collect();
                let positions = append_new(&log, &batch).await;
                sent.extend(batch.iter().map(AppendEvent::id).zip(positions));
            }
            (name, sent)
        });
    }
    let mut sent_by_task = HashMap::new();
    let mut all_positions = HashSet::new();
    while let Some(result) = tasks.join_next().await {
        let (name, sent) = result.expect("appender task");
        for (_, position) in &sent {
            assert!(all_positions.insert(*position), "{position} given twice");
        }
        sent_by_task.insert(name, sent);
    }
    let total = TASKS * BATCHES * PER_BATCH;
    assert_eq!(all_positions.len(), total);

    let stored = read_events(harness.log(), total).await;
    let mut read_by_task: HashMap<String, Vec<_>> = HashMap::new();
    for event in &stored {
        read_by_task
            .entry(event.event.subject.as_str().to_string())
            .or_default()
            .push((event.event.id, event.position));
    }
    assert_eq!(read_by_task, sent_by_task);
    assert_no_more(harness.log(), &StartOffsets::new(), total).await;
}

/// One batch of 10 000 events is appended whole and read back whole.
pub async fn appends_large_batches<H: Harness>(harness: H) {
    let log = harness.log();
    let batch = events_for(100, 100);
    let positions = append_new(log, &batch).await;
    assert_eq!(positions.iter().collect::<HashSet<_>>().len(), batch.len());

    let stored = read_events(log, batch.len()).await;
    let by_id: HashMap<_, _> = stored.iter().map(|e| (e.event.id, e)).collect();
    assert_eq!(by_id.len(), batch.len());
    for (sent, position) in batch.iter().zip(&positions) {
        let stored = by_id[&sent.id()];
        assert_eq!(stored.position, *position);
        assert_eq!(stored.bytes, sent.bytes());
    }
}

/// Records that are not events come out as typed errors in place, and reading goes on.
pub async fn reports_bad_records<H: Harness>(harness: H) {
    let log = harness.log();
    let good_before = purchase("CUST-GOOD", 1);
    append_new(log, std::slice::from_ref(&good_before)).await;
    let mut injected = HashMap::new();
    for (bytes, path) in bad_records() {
        let position = harness.inject_raw(&bytes).await;
        injected.insert(position, (bytes, path));
    }
    let good_after = purchase("CUST-GOOD", 2);
    append_new(log, std::slice::from_ref(&good_after)).await;

    let items = read_items(log, &StartOffsets::new(), 2 + injected.len()).await;
    let mut good = Vec::new();
    let mut bad = HashMap::new();
    for item in items {
        match item {
            Ok(event) => good.push(event.event.id),
            Err(ReadError::BadRecord(record)) => {
                bad.insert(record.position, *record);
            }
            Err(other) => panic!("unexpected read error: {other}"),
        }
    }
    assert_eq!(good, vec![good_before.id(), good_after.id()]);
    assert_eq!(bad.len(), injected.len());
    for (position, (bytes, path)) in injected {
        let record = &bad[&position];
        assert_eq!(record.bytes, bytes, "raw bytes of {position}");
        assert_eq!(
            record.reason.path, path,
            "reason of {position}: {}",
            record.reason
        );
        assert!(!record.reason.problem.is_empty());
    }
    assert_no_more(log, &StartOffsets::new(), 5).await;
}

/// Reading starts where asked and waits for new events.
pub async fn reads_from_positions_and_waits<H: Harness>(harness: H) {
    let log = harness.log();
    let first: Vec<_> = (0..3).map(|n| purchase("CUST-W", n)).collect();
    let positions = append_new(log, &first).await;
    let partition = positions[0].partition;

    // From the second event's offset: the second and third, nothing earlier.
    let from = StartOffsets::from([(partition, positions[1].offset)]);
    let mut other_partitions = log.high_water_marks().await.expect("hwm");
    other_partitions.remove(&partition);
    let mut from_mid = from.clone();
    from_mid.extend(other_partitions);
    let got = read_items(log, &from_mid, 2).await;
    let got: Vec<_> = got
        .into_iter()
        .map(|i| i.expect("event").event.id)
        .collect();
    assert_eq!(got, vec![first[1].id(), first[2].id()]);

    // From the high-water marks: only what is appended after the reader started.
    let hwm = log.high_water_marks().await.expect("hwm");
    let mut stream = log.read(&hwm).await.expect("read");
    let waiting = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(waiting.is_err(), "a reader at the end returned {waiting:?}");
    let later: Vec<_> = (3..5).map(|n| purchase("CUST-W", n)).collect();
    let later_positions = append_new(log, &later).await;
    for (sent, position) in later.iter().zip(later_positions) {
        let event = tokio::time::timeout(READ_TIMEOUT, stream.next())
            .await
            .expect("the waiting reader wakes up")
            .expect("stream continues")
            .expect("valid event");
        assert_eq!(event.event.id, sent.id());
        assert_eq!(event.position, position);
    }
    let hwm_after = log.high_water_marks().await.expect("hwm");
    assert_eq!(hwm_after[&partition], hwm[&partition] + 2);
}

/// Acknowledged events survive closing and reopening the log (embedded) or restarting the
/// broker (Kafka), with the same positions and bytes.
pub async fn is_durable_across_restart<H: Harness>(mut harness: H) {
    let batch = events_for(4, 25);
    let positions = append_new(harness.log(), &batch).await;
    let hwm = harness.log().high_water_marks().await.expect("hwm");

    harness.restart().await;

    let log = harness.log();
    assert_eq!(
        log.high_water_marks().await.expect("hwm after restart"),
        hwm
    );
    let stored = read_events(log, batch.len()).await;
    let by_id: HashMap<_, _> = stored.iter().map(|e| (e.event.id, e)).collect();
    for (sent, position) in batch.iter().zip(&positions) {
        let stored = by_id[&sent.id()];
        assert_eq!(stored.position, *position);
        assert_eq!(stored.bytes, sent.bytes());
    }
    // The log goes on after the restart, past the old end.
    let next = append_new(log, &[purchase("CUST-0000", 999)]).await;
    assert!(next[0].offset >= hwm[&next[0].partition]);
    if log.dedupes_on_append() {
        let again = log.append(&batch[..5]).await.expect("append again");
        let expected: Vec<_> = positions[..5]
            .iter()
            .map(|p| AppendOutcome::Duplicate(*p))
            .collect();
        assert_eq!(
            again, expected,
            "ids from before the restart are still known"
        );
    }
}
