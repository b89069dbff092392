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
//! * Versions: a projector works for the live version (and follows a promotion to the next
//!   one, with the policies stored with it) or builds a candidate beside it ([`rebuild`]).
//!   The audit copy is shared: whichever version applies an event first writes its audit row,
//!   and a version catching up folds events already audited at the same position without
//!   writing them again.

pub mod analysis;
mod dead_letters;
pub mod fold;
pub mod rebuild;
pub mod replay;
pub mod verify;
mod worker;

pub use dead_letters::{resolve_dead_letter, Resolution, Resolve};
pub use fold::Record;
pub use worker::{
    documents_of, lineage_of, policies_of, Attached, BatchOutcome, Clock, Projector,
    ProjectorConfig, ReevaluateStats, RunStats, DEFAULT_BATCH_SIZE, DEFAULT_HOLD_CUSTOMERS,
    LIVE_HOLD_AGE,
};

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
    /// The version this projector writes stopped being live (a promotion); it re-attaches.
    #[error("projection version {version} is no longer live")]
    NotLive { version: i64 },
    /// A build holding customers in memory found the version's checkpoint moved by another
    /// writer: what it holds was folded from rows that are no longer current. (The live
    /// projector cannot: it holds in one transaction, under the store's lock.)
    #[error(
        "another writer moved projection version {version}'s checkpoint while this projector \
         held customers in memory; nothing it held was written: run it again"
    )]
    HeldConflict { version: i64 },
    #[error("projection version {version} was dropped")]
    VersionDropped { version: i64 },
    #[error(
        "the policies of projection version {version} are not stored and differ from the \
         ones given ({detail}); start with the policies it was built with, or rebuild"
    )]
    UnknownPolicies { version: i64, detail: String },
    #[error("stored policy of projection version {version} does not load: {source}")]
    StoredPolicy {
        version: i64,
        #[source]
        source: clientlog_domain::policy::PolicyError,
    },
    #[error(transparent)]
    Promote(#[from] clientlog_readstore::PromoteError),
    #[error("the build of projection version {version} was interrupted; it stays a candidate")]
    Interrupted { version: i64 },
    #[error(
        "projection version {version} did not catch up with the live version in {attempts} \
         attempts (appends keep moving it on); it stays a candidate: promote it with \
         `clientlog versions promote {version}`"
    )]
    NeverCaughtUp { version: i64, attempts: usize },
}
