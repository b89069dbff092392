//! The rows of the read models, as plain data. The projector fills them from the domain's
//! verdicts and cards; this crate only stores and loads them.

use std::collections::{BTreeMap, HashMap};

/// The code version of the projection: bump it when the way rows are derived changes, so rows
/// written by older code can be told apart (and rebuilt).
pub const CODE_VERSION: i64 = 1;

/// What produced a row: the policies in force and the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    pub code_version: i64,
    pub state_format: i64,
    pub grading_version: String,
    pub lifecycle_version: String,
    pub churn_version: String,
}

/// A row of `projection_versions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionVersion {
    pub version: i64,
    /// `live`, `candidate` or `retired`.
    pub status: String,
    pub lineage: Lineage,
    pub created_at: i64,
    pub promoted_at: Option<i64>,
    pub retired_at: Option<i64>,
    pub build: BuildProgress,
}

/// How far the build of a version (a rebuild from the start of the log) has come.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildProgress {
    /// Log records folded so far.
    pub done: i64,
    /// Log records to fold: those in the log when the build started.
    pub total: Option<i64>,
    pub started_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Why the build stopped, if it failed.
    pub error: Option<String>,
}

impl BuildProgress {
    /// Records per second so far.
    pub fn rate(&self) -> Option<f64> {
        let elapsed = self.updated_at? - self.started_at?;
        (elapsed > 0).then(|| self.done as f64 / elapsed as f64)
    }

    /// Seconds left at the rate so far.
    pub fn eta_seconds(&self) -> Option<f64> {
        if self.finished_at.is_some() {
            return Some(0.0);
        }
        let left = (self.total? - self.done).max(0);
        self.rate()
            .filter(|r| *r > 0.0)
            .map(|rate| left as f64 / rate)
    }
}

/// The text of a policy a version was built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    /// `grading`, `lifecycle` or `churn`.
    pub kind: String,
    pub version: String,
    pub source: String,
}

/// One grade factor as stored: the measured value and the 0–100 sub-score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FactorValue {
    pub raw: Option<f64>,
    pub score: f64,
}

/// The names of the factor columns, in the order of [`CustomerRow::factors`].
pub const FACTOR_COLUMNS: [&str; 5] = [
    "monthly_sales",
    "sales_growth",
    "channel_coverage",
    "loyalty",
    "development_prospects",
];

/// A row of `customers`: the card flattened for lists, the card JSON, and the lineage.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRow {
    pub customer_id: String,
    pub name: Option<String>,
    pub owner: Option<String>,
    pub segment: Option<String>,
    pub region: Option<String>,
    pub channel: Option<String>,
    pub grade: String,
    pub score: f64,
    pub stage: String,
    /// ISO date.
    pub stage_since: String,
    pub stage_rule: String,
    pub risk: f64,
    pub risk_band: String,
    pub open_complaints: i64,
    pub active_contracts: i64,
    pub last_purchase_on: Option<String>,
    pub last_interaction_on: Option<String>,
    pub last_activity_on: Option<String>,
    pub currency: Option<String>,
    pub sales_3m_minor: i64,
    pub sales_12m_minor: i64,
    /// In [`FACTOR_COLUMNS`] order.
    pub factors: [FactorValue; 5],
    /// The whole card as JSON.
    pub card: String,
    pub code_version: i64,
    pub grading_version: String,
    pub lifecycle_version: String,
    pub churn_version: String,
    /// The last log position folded into this row.
    pub log_partition: i32,
    pub log_offset: i64,
    /// Events folded into the state.
    pub events: i64,
    /// The as_of of the verdict, Unix seconds.
    pub evaluated_at: i64,
    /// What the grade was computed from (`GradeInputs`, postcard), for what-if simulation.
    pub grade_inputs: Vec<u8>,
}

/// A customer's folded state as stored (`customers.state_format`, `customers.state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRow {
    pub customer_id: String,
    pub format: i64,
    pub state: Vec<u8>,
}

/// A row of `customer_events`: the audit copy of one applied event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub customer_id: String,
    pub seq: i64,
    pub event_id: [u8; 16],
    pub log_partition: i32,
    pub log_offset: i64,
    pub event_type: String,
    pub occurred_at: i64,
    pub recorded_at: i64,
    pub bytes: Vec<u8>,
    pub hash: [u8; 32],
}

/// The end of a customer's hash chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: [u8; 32],
}

/// What a batch knows of a customer's chain head. It is read only where the batch may add to
/// the customer's audit copy: a rebuild behind the audit frontier adds nothing, and reading
/// the head of every customer it meets would cost a look-up in the audit copy each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownHead {
    Unread,
    /// The last row of the customer's audit copy, if it has one.
    Read(Option<ChainHead>),
}

/// What caused a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// An event, at this position.
    Event {
        event_id: [u8; 16],
        log_partition: i32,
        log_offset: i64,
    },
    /// Time passed: a re-evaluation of the stored state at a later as_of.
    Reevaluation,
}

/// A row of `transitions` (without its surrogate id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRow {
    pub customer_id: String,
    /// `grade`, `stage` or `risk_band`.
    pub dimension: &'static str,
    pub from_value: Option<String>,
    pub to_value: String,
    pub cause: Cause,
    /// The as_of of the verdict that changed, Unix seconds.
    pub at: i64,
}

/// What a batch needs to know about a customer already in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedCustomer {
    /// `(format, bytes)` of the stored state.
    pub state: Option<(i64, Vec<u8>)>,
    /// The stored verdict's grade, stage and risk band, and its as_of.
    pub summary: Option<Summary>,
    pub head: KnownHead,
}

/// What a batch needs of a stored customers row: the values its list indexes cover (grade,
/// stage and risk band are also what transitions are about), the as_of of its verdict and the
/// log position it reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub keys: ListKeys,
    pub evaluated_at: i64,
    pub log_partition: i32,
    pub log_offset: i64,
}

/// A stored customers row's values of the columns the list indexes cover. A write that knows
/// them assigns only those the new row changes (SQLite rewrites every index whose columns an
/// update assigns).
#[derive(Debug, Clone, PartialEq)]
pub struct ListKeys {
    pub owner: Option<String>,
    pub segment: Option<String>,
    pub region: Option<String>,
    pub grade: String,
    pub score: f64,
    pub grade_inputs: Option<Vec<u8>>,
    pub stage: String,
    pub last_activity_on: Option<String>,
    pub risk_band: String,
    pub risk: f64,
}

/// A record the projector could not decode, to be dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter {
    pub log_partition: i32,
    pub log_offset: i64,
    pub customer_id: Option<String>,
    pub reason: String,
    pub bytes: Vec<u8>,
}

/// A row of `dead_letters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub version: i64,
    pub log_partition: i32,
    pub log_offset: i64,
    pub customer_id: Option<String>,
    pub reason: String,
    pub bytes: Vec<u8>,
    /// `open`, `retried` or `skipped`.
    pub status: String,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
    /// Events of the customer held behind it.
    pub held: i64,
}

/// A row of `dead_letter_actions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterAction {
    pub dead_letter_id: i64,
    /// `created`, `retry` or `skip`.
    pub action: String,
    pub outcome: String,
    pub released: i64,
    pub at: i64,
}

/// An event held behind an open dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldEvent {
    pub log_partition: i32,
    pub log_offset: i64,
    pub customer_id: String,
    pub dead_letter_id: i64,
    pub recorded_at: i64,
    pub bytes: Vec<u8>,
}

/// Everything one batch writes, in one transaction.
#[derive(Debug, Default, Clone)]
pub struct BatchWrite {
    pub customers: Vec<CustomerRow>,
    pub states: Vec<StateRow>,
    pub events: Vec<AuditRow>,
    pub transitions: Vec<TransitionRow>,
    pub held: Vec<HeldEvent>,
    /// Per partition, the last offset this batch accounts for.
    pub checkpoints: BTreeMap<i32, i64>,
    /// Events folded into states: those in `events`, and those another version had already
    /// put in the audit copy (not written again).
    pub applied: u64,
    /// The list keys the store holds for customers of `customers`, as the batch loaded them;
    /// the write reads those of the others itself.
    pub stored_keys: HashMap<String, ListKeys>,
}

impl BatchWrite {
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
            && self.states.is_empty()
            && self.events.is_empty()
            && self.transitions.is_empty()
            && self.held.is_empty()
            && self.checkpoints.is_empty()
    }
}

/// Every row of one version and the shared audit tables, in a stable order and without the
/// surrogate ids and wall-clock times that legitimately differ between two runs over the same
/// log — what "the read models are equal" means.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub customers: Vec<CustomerRow>,
    pub states: Vec<StateRow>,
    pub events: Vec<AuditRow>,
    pub transitions: Vec<TransitionRow>,
    pub checkpoints: BTreeMap<i32, i64>,
    /// `(partition, offset, customer, reason, status)`.
    pub dead_letters: Vec<(i32, i64, Option<String>, String, String)>,
    /// `(partition, offset, customer)`.
    pub held: Vec<(i32, i64, String)>,
}
