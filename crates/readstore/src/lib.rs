//! clientlog's read store: the read models a projector writes and the API reads, and the
//! checkpoints that make the projector's effect exactly-once — in one SQLite file (the embedded
//! default, `DIR/readstore.db`) or in PostgreSQL (`--database-url postgres://…`), through sqlx
//! without compile-time macros. The schema lives in `projections/migrations/{sqlite,postgres}/`
//! with comments on why each index and constraint exists.
//!
//! # One code path, two databases
//!
//! Both schemas have the same tables and columns; every statement is built with
//! [`sqlx::QueryBuilder`] (which writes `?` or `$n` placeholders for its database) inside a
//! macro that expands the same body once per backend. Rows are written with multi-row
//! statements, so a batch of thousands of events costs a handful of round trips.
//!
//! # Exactly-once
//!
//! A projector does all of a batch's reads and writes in one [`StoreTx`] and writes the
//! checkpoint in it. The transaction also serializes writers of one store: SQLite takes the
//! write lock at `BEGIN IMMEDIATE`, PostgreSQL takes one transaction-scoped advisory lock for the
//! whole store. So a `dead-letters retry` run beside a live projector, a re-evaluation pass, a
//! rebuild's candidate version or a second projector never interleaves with a batch.
//!
//! One part of a batch commits on its own: on PostgreSQL the audit copy (`customer_events`,
//! one row per event and most of a batch's work) streams over a second connection, so that
//! two server processes work on a batch at once, and commits just before the batch's own
//! transaction. The audit copy is a fact about the log, not a version's read model: each event
//! is in it once (its id is unique), and `audit_frontier`, written with its rows, says how far
//! it goes. A batch that fails between the two commits leaves events in the audit copy ahead
//! of every checkpoint; the next batch finds them by position and folds them without copying
//! them again, as a rebuild does with events the live version copied.
//!
//! SQLite runs in WAL mode with `synchronous=NORMAL`: a power loss may drop the last committed
//! batches, but always together with their checkpoint, so the projector reads those events
//! again. The log is the source of truth; the read store only has to be consistent, not
//! durable to the last transaction.
//!
//! # Versions: a column, not tables per version
//!
//! Every policy-dependent table (`customers`, `transitions`, `checkpoints`,
//! `held_events`, `dead_letters`) has a `version` column leading its primary key, naming a row
//! of `projection_versions`. A rebuild writes version N+1 into the same tables beside the live
//! version N, and promotion is one `UPDATE` of `projection_versions` — atomic for readers, no
//! DDL, no table renames, and the API's queries only gain `WHERE version = ?`, which every
//! index leads with. (Per-version tables would make dropping a version a cheap `DROP TABLE`, but
//! need DDL at run time, dynamic table names in every query and one migration per version; a
//! `DELETE … WHERE version = ?` is the price of the simpler design.) The audit copy
//! (`customer_events`, whose last row per customer is that customer's chain head) is a fact
//! about the log, identical under any policy, so it is shared by all versions and written by
//! whichever version applies an event first. Each version keeps the exact policy texts it was
//! built with (`policy_documents`) and its build progress (`projection_versions.build_*`).

mod error;
mod model;
mod store;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use error::StoreError;
pub use model::*;
pub use store::{chain_hash, GradePages, GradeRow, PromoteError, ReadStore, StoreConfig, StoreTx};
