//! clientlog's event log: every fact about a customer is appended once and never changed.
//!
//! One contract, [`EventLog`], with two backends that a shared test suite holds to the same
//! behaviour:
//!
//! * [`SqliteLog`] — the embedded default. One SQLite file in WAL mode with
//!   `synchronous=FULL`, one partition (`0`), offsets `1, 2, 3…`. A single writer task coalesces
//!   concurrent appends into one transaction (group commit); every caller gets its answer only
//!   after that transaction's `COMMIT` returned. The event id is `UNIQUE` in the database, so a
//!   repeated id is answered with [`AppendOutcome::Duplicate`] and the position of the original.
//! * [`KafkaLog`] — the scaled deployment. One topic, record key = customer id (so one
//!   customer's events share a partition and keep their append order), value = the producer's
//!   exact CloudEvents JSON (structured mode). Offsets are Kafka's native offsets: per partition,
//!   increasing, starting wherever the topic starts (`0` for a new topic).
//!
//! # Positions
//!
//! A [`Position`] is `(partition, offset)`. Offsets are strictly increasing within a partition in
//! append order; nothing may assume where they start or that they are contiguous. A reader
//! starts at an explicit offset per partition (a projector passes `checkpoint + 1`), and a
//! partition it does not name is read from its beginning. [`EventLog::high_water_marks`]
//! returns, per partition, the offset the *next* appended event will get, so
//! `high_water_mark - next_offset_to_read` is the lag.
//!
//! # Duplicates
//!
//! The embedded log refuses a repeated id at append time. Kafka cannot: a topic has no unique
//! index, and a client that retries after a lost acknowledgement, or two producers that import
//! the same file, put the same event into the topic twice. The Kafka backend therefore:
//!
//! * answers [`AppendOutcome::Duplicate`] for an id repeated *within one batch* (the later copy
//!   is not sent), exactly like the embedded log;
//! * appends an id repeated across batches, and reports it truthfully: the reader yields every
//!   copy, each with its own position and the same `event.id` ([`EventLog::dedupes_on_append`]
//!   says which behaviour a log has);
//! * leaves the effect idempotent downstream: the projector records applied event ids in the
//!   same transaction as its read-model writes and skips an id it has already applied, so the
//!   read model is the same as after the embedded log's refusal. The idempotent producer
//!   (`enable.idempotence=true`) already removes the duplicates that librdkafka's own retries
//!   would otherwise create.
//!
//! # Performance notes
//!
//! * Embedded: appends are bound by what one commit writes. Time-ordered ids (UUIDv7, as the
//!   CloudEvents examples use) keep the unique id index append-only; random v4 ids make every
//!   row dirty its own index page, several times the WAL traffic per event. Batches and group
//!   commit amortise the fsync; the writer sends a whole commit group to SQLite as one
//!   duplicate lookup and one multi-row insert per 1 000 events.
//! * Reading costs mostly the domain decoder (`Event::decode` of every event).
//!
//! # Bad records
//!
//! Anything in the log that is not a valid event — garbage bytes, JSON that is not an event, an
//! unknown event type, written by any producer — comes out of the reader as
//! [`ReadError::BadRecord`] with its position, its raw bytes and the decoder's reason. The stream
//! goes on after it; nothing is dropped and nothing panics.

mod any;
mod cloudevents;
mod error;
pub mod kafka;
mod model;
pub mod sqlite;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::collections::BTreeMap;
use std::future::Future;

use futures::stream::BoxStream;

pub use any::AnyLog;
pub use error::{BadRecord, LogError, ReadError};
pub use kafka::{KafkaConfig, KafkaLog};
pub use model::{AppendEvent, AppendOutcome, Position, StoredEvent, WireMode};
pub use sqlite::{SqliteConfig, SqliteLog};

/// The events of a log, in order per partition, waiting for new ones at the end. The stream
/// never ends by itself; errors are items and the stream goes on after them. Dropping it stops
/// reading.
pub type EventStream = BoxStream<'static, Result<StoredEvent, ReadError>>;

/// Where to start reading: the first offset to read, per partition. A partition that is not in
/// the map is read from its beginning.
pub type StartOffsets = BTreeMap<i32, i64>;

/// The next offset to read per partition, kept current by the reader's owner: a reader that
/// shares partitions with other processes (a Kafka consumer group) starts each partition it is
/// assigned, at every rebalance, from here.
pub type SharedStartOffsets = std::sync::Arc<std::sync::Mutex<StartOffsets>>;

/// The append-only event log.
pub trait EventLog: Send + Sync {
    /// Appends `batch` in order and returns one outcome per event, in the same order, once every
    /// event is durable. An event whose id is already in the log (or earlier in the same batch)
    /// is answered with [`AppendOutcome::Duplicate`] and the original's position, if the
    /// backend can know it (see [`EventLog::dedupes_on_append`]).
    ///
    /// On `Err`, some events of the batch may be durable and others not; appending the same
    /// batch again is safe.
    fn append(
        &self,
        batch: &[AppendEvent],
    ) -> impl Future<Output = Result<Vec<AppendOutcome>, LogError>> + Send;

    /// Reads from `from` (see [`StartOffsets`]) as a stream that waits for new events.
    fn read(
        &self,
        from: &StartOffsets,
    ) -> impl Future<Output = Result<EventStream, LogError>> + Send;

    /// Reads the partitions this process gets when it shares them with other readers of the
    /// same group (Kafka: a consumer group, rebalanced as members come and go), each from its
    /// entry in `positions` at the moment it is assigned. A log without groups reads every
    /// partition, like [`EventLog::read`].
    fn read_shared(
        &self,
        positions: SharedStartOffsets,
    ) -> impl Future<Output = Result<EventStream, LogError>> + Send {
        async move {
            let from = positions.lock().unwrap_or_else(|e| e.into_inner()).clone();
            self.read(&from).await
        }
    }

    /// `true` if [`EventLog::read_shared`] splits the partitions among the readers of a group,
    /// so that a partition one reader has read from may move to another (Kafka); `false` if
    /// every reader reads every partition.
    fn shares_partitions(&self) -> bool {
        false
    }

    /// Publishes a record no reader could decode where the log's own tooling finds it (Kafka:
    /// the topic `<topic>.dead-letters`, with the source position and the reason in headers).
    /// The embedded log has no such place: the read store's dead letters are the only copy.
    fn publish_dead_letter(
        &self,
        bad: &BadRecord,
    ) -> impl Future<Output = Result<(), LogError>> + Send {
        let _ = bad;
        async { Ok(()) }
    }

    /// Per partition, the offset the next appended event will get.
    fn high_water_marks(&self)
        -> impl Future<Output = Result<BTreeMap<i32, i64>, LogError>> + Send;

    /// `true` if an id already in the log is refused at append time (answered with
    /// [`AppendOutcome::Duplicate`]) whichever batch or process appended it first; `false` if
    /// only repeats within one batch are, and readers see (and report) every other copy.
    fn dedupes_on_append(&self) -> bool;
}
