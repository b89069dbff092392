//! clientlog's projector: folds the event log into the read models of `clientlog-readstore`
//! with exactly-once effect.
//!
//! * [`Projector::run`] reads every partition from its checkpoint + 1 (the checkpoint in the
//!   read store is the only source of truth; Kafka's committed offsets are not used), batches
//!   records (bounded in count and in time), loads the batch's customers' states, folds and
//!   evaluates in memory ([`fold`], pure, `as_of` an explicit parameter) and writes the card
//!   rows, states, audit copy with its hash chain, transitions, dead letters, held events and
//!   the checkpoints in **one transaction**. A crash at any moment leaves either the whole batch
//!   or none of it, and the next start reads exactly what is missing.
//! * Duplicates: an event id already in the audit copy (or earlier in the batch) is skipped,
//!   so an event delivered twice by Kafka changes nothing.
//! * Poison isolation: a record that is not a valid event is dead-lettered with its position,
//!   reason, bytes and customer (when the log knows it); that customer's later events are held,
//!   not applied, until [`resolve_dead_letter`] retries or skips it. Other customers go on.
//! * Time moves without events: [`Projector::reevaluate`] re-evaluates every stored state at a
//!   new `as_of` (on an interval in the worker, on demand from `clientlog reevaluate`) and
//!   records the transitions it causes.
//! * Shutdown: when the token passed to [`Projector::run`] fires, the batch in progress is
//!   committed and the loop returns.

pub mod analysis;
mod dead_letters;
pub mod fold;
pub mod replay;
pub mod verify;
mod worker;

pub use dead_letters::{resolve_dead_letter, Resolution, Resolve};
pub use fold::Record;
pub use worker::{BatchOutcome, Clock, Projector, ProjectorConfig, ReevaluateStats, RunStats};

/// Why the projector stopped or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Store(#[from] clientlog_readstore::StoreError),
    #[error(transparent)]
    Log(#[from] clientlog_eventlog::LogError),
    #[error(transparent)]
    Fold(#[from] fold::FoldError),
    #[error("a projector task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("the log reader stopped")]
    ReaderStopped,
    #[error("dead letter {id} is already resolved ({status})")]
    AlreadyResolved { id: i64, status: String },
}
