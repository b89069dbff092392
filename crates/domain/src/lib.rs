//! clientlog's domain: the event catalogue (CloudEvents JSON, strictly decoded), the policies
//! (grading, lifecycle, churn risk) loaded from TOML, and the pure fold that turns a customer's
//! events into a grade, a lifecycle stage and a churn risk, each with its reasons.
//!
//! Nothing here does I/O or reads a clock: every verdict is a function of the events, the
//! policies and an explicit `as_of`, so a replay gives the same answer bit for bit.

pub mod calendar;
pub mod card;
pub mod churn_eval;
pub mod event;
pub mod grading;
pub mod policy;
pub mod schema;
pub mod simulate;
pub mod state;
pub mod upcast;
pub mod values;
pub mod verdict;

pub use card::CustomerCard;
pub use event::{DecodeError, Event, EventData, EventId, EventType};
pub use policy::Policies;
pub use state::CustomerState;
pub use values::{CustomerId, Money};
pub use verdict::{evaluate, marks, Grade, Marks, RiskBand, Stage, Verdict};
