//! The pure part of a batch: records in log order, what the store holds about their customers,
//! the policies and an explicit `as_of` in; every row the batch writes out. No I/O and no clock,
//! so a test can run it with fixed times and a replay gives the same rows.
//!
//! Each applied event is evaluated on its own, so a transition names the event that caused it
//! whatever the batch boundaries were: two runs over the same log at the same `as_of` write
//! the same transitions even if one of them was killed and restarted in between.

use std::collections::{HashMap, HashSet};

use clientlog_domain::calendar::{self, day_of};
use clientlog_domain::state::STATE_FORMAT;
use clientlog_domain::{evaluate, CustomerCard, CustomerId, CustomerState, Policies, Verdict};
use clientlog_eventlog::{BadRecord, StoredEvent};
use clientlog_readstore::{
    chain_hash, AuditRow, BatchWrite, Cause, ChainHead, CustomerRow, FactorValue, HeldEvent,
    Lineage, ListKeys, LoadedCustomer, StateRow, Summary, TransitionRow,
};

/// One item of the log as the projector sees it.
#[derive(Debug, Clone)]
pub enum Record {
    Event(Box<StoredEvent>),
    Bad(Box<BadRecord>),
}

impl Record {
    pub fn position(&self) -> (i32, i64) {
        let p = match self {
            Record::Event(e) => e.position,
            Record::Bad(b) => b.position,
        };
        (p.partition, p.offset)
    }

    /// The customer the record belongs to, if known.
    pub fn customer(&self) -> Option<&str> {
        match self {
            Record::Event(e) => Some(e.event.subject.as_str()),
            Record::Bad(b) => b.key.as_deref(),
        }
    }
}

/// What a verdict is evaluated with.
pub struct Evaluation<'a> {
    pub policies: &'a Policies,
    pub lineage: &'a Lineage,
    /// Business time of the verdicts, Unix seconds.
    pub as_of: i64,
}

/// A stored state that this build cannot use.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    #[error(
        "customer {customer}: stored state has format {found}, this build writes {STATE_FORMAT}; \
         rebuild the projection"
    )]
    StateFormat { customer: String, found: i64 },
    #[error("customer {customer}: {source}")]
    State {
        customer: String,
        #[source]
        source: clientlog_domain::state::StateDecodeError,
    },
    #[error("customer id {0:?} in the store is not valid")]
    CustomerId(String),
}

/// The three values transitions are about.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marks {
    grade: &'static str,
    stage: &'static str,
    risk_band: &'static str,
}

impl Marks {
    fn of(verdict: &Verdict) -> Self {
        Self {
            grade: verdict.grade.as_str(),
            stage: verdict.stage.as_str(),
            risk_band: verdict.risk_band.as_str(),
        }
    }
}

/// A customer being worked on in this batch.
struct Working {
    id: CustomerId,
    state: CustomerState,
    /// The marks of the last verdict (stored or computed here), as strings.
    marks: Option<(String, String, String)>,
    evaluated_at: Option<i64>,
    head: Option<ChainHead>,
    position: Option<(i32, i64)>,
    /// What the store's row holds, as loaded (the write need not read it again).
    stored_keys: Option<ListKeys>,
    verdict: Option<Verdict>,
    state_changed: bool,
    head_changed: bool,
}

impl Working {
    fn new(id: CustomerId, loaded: Option<LoadedCustomer>) -> Result<Self, FoldError> {
        let loaded = loaded.unwrap_or(LoadedCustomer {
            state: None,
            summary: None,
            head: None,
        });
        let state = match loaded.state {
            None => CustomerState::default(),
            Some((format, bytes)) if format == i64::from(STATE_FORMAT) => {
                CustomerState::decode(&bytes).map_err(|source| FoldError::State {
                    customer: id.as_str().to_string(),
                    source,
                })?
            }
            Some((found, _)) => {
                return Err(FoldError::StateFormat {
                    customer: id.as_str().to_string(),
                    found,
                })
            }
        };
        let (marks, evaluated_at, position, stored_keys) = match loaded.summary {
            Some(Summary {
                keys,
                evaluated_at,
                log_partition,
                log_offset,
            }) => (
                Some((
                    keys.grade.clone(),
                    keys.stage.clone(),
                    keys.risk_band.clone(),
                )),
                Some(evaluated_at),
                Some((log_partition, log_offset)),
                Some(keys),
            ),
            None => (None, None, None, None),
        };
        Ok(Self {
            id,
            state,
            marks,
            evaluated_at,
            head: loaded.head,
            position,
            stored_keys,
            verdict: None,
            state_changed: false,
            head_changed: false,
        })
    }

    /// Evaluates the state, records a transition for each mark that changed, keeps the verdict.
    fn evaluate(&mut self, eval: &Evaluation<'_>, cause: Cause, out: &mut Vec<TransitionRow>) {
        let verdict = evaluate(&self.state, eval.policies, eval.as_of);
        let now = Marks::of(&verdict);
        let before = self.marks.take();
        let pairs = [
            ("grade", before.as_ref().map(|m| m.0.as_str()), now.grade),
            ("stage", before.as_ref().map(|m| m.1.as_str()), now.stage),
            (
                "risk_band",
                before.as_ref().map(|m| m.2.as_str()),
                now.risk_band,
            ),
        ];
        for (dimension, from, to) in pairs {
            if from != Some(to) {
                out.push(TransitionRow {
                    customer_id: self.id.as_str().to_string(),
                    dimension,
                    from_value: from.map(str::to_string),
                    to_value: to.to_string(),
                    cause,
                    at: eval.as_of,
                });
            }
        }
        self.marks = Some((
            now.grade.to_string(),
            now.stage.to_string(),
            now.risk_band.to_string(),
        ));
        self.evaluated_at = Some(eval.as_of);
        self.verdict = Some(verdict);
    }

    /// Time has passed since the last verdict (stored, or computed by an earlier batch a build
    /// held): re-evaluate before anything else changes.
    fn catch_up_in_time(&mut self, eval: &Evaluation<'_>, out: &mut Vec<TransitionRow>) {
        if self.marks.is_some() && self.evaluated_at.map(day_of) != Some(day_of(eval.as_of)) {
            self.evaluate(eval, Cause::Reevaluation, out);
        }
    }
}

/// What the store says about a batch, gathered in its transaction.
pub struct Known {
    pub loaded: HashMap<String, LoadedCustomer>,
    /// Customers with an open dead letter: all their events in this batch are held (the id).
    pub blocked: HashMap<String, i64>,
    /// The dead-letter id of each bad record of this batch, by position.
    pub dead_letters: HashMap<(i32, i64), i64>,
    /// Event ids in the audit copy, with the position they were applied from: those of this
    /// batch's events that it holds.
    /// The audit copy is shared by all versions: an event there at this very position was
    /// applied by another version first (this one is catching up) and is folded without a new
    /// audit row; at another position it is a second copy and changes nothing.
    pub audited: HashMap<[u8; 16], (i32, i64)>,
}

/// Folds `records` (in log order) into the rows to write. `checkpoint` says whether the
/// batch's positions advance the checkpoints (not when releasing held events).
pub fn fold(
    records: &[Record],
    known: Known,
    eval: &Evaluation<'_>,
    checkpoint: bool,
) -> Result<BatchWrite, FoldError> {
    let mut carry = Carry::default();
    let mut known = known;
    fold_into(records, &mut known, eval, checkpoint, &mut carry)?;
    Ok(carry.finish(eval))
}

/// Customers folded by one or more batches whose rows are not written yet, with the rows those
/// batches produced (transitions, audit copy, held events) and the positions they reached.
/// A version being built carries it over many batches and writes each customer once, where
/// writing every batch would rewrite a customer's rows once per batch it appears in.
#[derive(Default)]
pub struct Carry {
    working: HashMap<String, Working>,
    out: BatchWrite,
}

impl Carry {
    /// Customers held.
    pub fn customers(&self) -> usize {
        self.working.len()
    }

    /// Whether `customer` is held (its stored rows are older than its state here).
    pub fn holds(&self, customer: &str) -> bool {
        self.working.contains_key(customer)
    }

    /// Rows other than customers' waiting to be written.
    pub fn pending_rows(&self) -> usize {
        self.out.transitions.len() + self.out.events.len() + self.out.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.working.is_empty() && self.out.checkpoints.is_empty() && self.pending_rows() == 0
    }

    /// Events applied so far.
    pub fn applied(&self) -> u64 {
        self.out.applied
    }

    /// Events held behind a dead letter so far.
    pub fn held_events(&self) -> usize {
        self.out.held.len()
    }

    /// Whether the folded batches wrote to the audit copy or held events: those rows are
    /// written at once, as later batches' duplicate checks read them from the store.
    pub fn must_write(&self) -> bool {
        !self.out.events.is_empty() || !self.out.held.is_empty()
    }

    /// The rows that are complete as soon as their event is folded (audit copy, transitions,
    /// held events), taken out so that they can be written while later records are folded.
    pub fn take_rows(&mut self) -> BatchWrite {
        BatchWrite {
            events: std::mem::take(&mut self.out.events),
            transitions: std::mem::take(&mut self.out.transitions),
            held: std::mem::take(&mut self.out.held),
            ..BatchWrite::default()
        }
    }

    /// Every row to write, customers in id order.
    pub fn finish(self, eval: &Evaluation<'_>) -> BatchWrite {
        let mut out = self.out;
        let mut customers: Vec<Working> = self.working.into_values().collect();
        customers.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        for w in customers {
            finish(w, eval, &mut out);
        }
        out
    }
}

/// Folds `records` (in log order) into `carry`: customers it holds are folded on from their
/// state there, others from what `known` loaded.
pub fn fold_into(
    records: &[Record],
    known: &mut Known,
    eval: &Evaluation<'_>,
    checkpoint: bool,
    carry: &mut Carry,
) -> Result<(), FoldError> {
    let Carry { working, out } = carry;
    let mut seen: HashSet<[u8; 16]> = HashSet::with_capacity(records.len());
    for record in records {
        let (partition, offset) = record.position();
        if checkpoint {
            let entry = out.checkpoints.entry(partition).or_insert(offset);
            *entry = (*entry).max(offset);
        }
        let stored = match record {
            Record::Bad(bad) => {
                if let (Some(customer), Some(&id)) =
                    (&bad.key, known.dead_letters.get(&(partition, offset)))
                {
                    known.blocked.entry(customer.clone()).or_insert(id);
                }
                continue;
            }
            Record::Event(stored) => stored,
        };
        let event_id = *stored.event.id.as_uuid().as_bytes();
        // Kafka may deliver an event twice (or hold two copies of it): applied once.
        let audited = match known.audited.get(&event_id) {
            Some(&at) if at != (partition, offset) => continue,
            Some(_) => true,
            None => false,
        };
        if !seen.insert(event_id) {
            continue;
        }
        let customer = stored.event.subject.as_str();
        if let Some(&dead_letter_id) = known.blocked.get(customer) {
            out.held.push(HeldEvent {
                log_partition: partition,
                log_offset: offset,
                customer_id: customer.to_string(),
                dead_letter_id,
                recorded_at: nanos(stored.recorded_at),
                bytes: stored.bytes.clone(),
            });
            continue;
        }
        let w = match working.get_mut(customer) {
            Some(w) => w,
            None => {
                let w = Working::new(stored.event.subject.clone(), known.loaded.remove(customer))?;
                working.entry(customer.to_string()).or_insert(w)
            }
        };
        w.catch_up_in_time(eval, &mut out.transitions);
        w.state.apply(&stored.event);
        w.state_changed = true;
        out.applied += 1;
        w.position = Some((partition, offset));
        w.evaluate(
            eval,
            Cause::Event {
                event_id,
                log_partition: partition,
                log_offset: offset,
            },
            &mut out.transitions,
        );
        if audited {
            continue;
        }
        known.audited.insert(event_id, (partition, offset));
        let seq = w.head.map_or(1, |h| h.seq + 1);
        let hash = chain_hash(w.head.as_ref().map(|h| &h.hash), &stored.bytes);
        w.head = Some(ChainHead { seq, hash });
        w.head_changed = true;
        out.events.push(AuditRow {
            customer_id: customer.to_string(),
            seq,
            event_id,
            log_partition: partition,
            log_offset: offset,
            event_type: stored.event.event_type().as_str().to_string(),
            occurred_at: stored.event.time.unix_timestamp(),
            recorded_at: nanos(stored.recorded_at),
            bytes: stored.bytes.clone(),
            hash,
        });
    }
    Ok(())
}

/// Re-evaluates stored states at `eval.as_of` (a re-evaluation pass): rows and transitions of
/// the customers whose verdict changed day, cause `reevaluation`.
pub fn reevaluate(
    states: Vec<(String, i64, Vec<u8>)>,
    mut loaded: HashMap<String, LoadedCustomer>,
    eval: &Evaluation<'_>,
) -> Result<BatchWrite, FoldError> {
    let mut out = BatchWrite::default();
    for (customer, format, bytes) in states {
        let id =
            CustomerId::parse(&customer).map_err(|_| FoldError::CustomerId(customer.clone()))?;
        let mut stored = loaded.remove(&customer).unwrap_or(LoadedCustomer {
            state: None,
            summary: None,
            head: None,
        });
        stored.state = Some((format, bytes));
        let mut w = Working::new(id, Some(stored))?;
        if w.evaluated_at == Some(eval.as_of) {
            continue;
        }
        w.evaluate(eval, Cause::Reevaluation, &mut out.transitions);
        finish(w, eval, &mut out);
    }
    Ok(out)
}

/// The rows of one customer touched by a batch.
fn finish(w: Working, eval: &Evaluation<'_>, out: &mut BatchWrite) {
    let Some(verdict) = w.verdict else { return };
    let (log_partition, log_offset) = w.position.unwrap_or((0, 0));
    let customer_id = w.id.as_str().to_string();
    if let Some(keys) = w.stored_keys {
        out.stored_keys.insert(customer_id.clone(), keys);
    }
    if w.head_changed {
        if let Some(head) = w.head {
            out.heads.push((customer_id.clone(), head));
        }
    }
    if w.state_changed {
        out.states.push(StateRow {
            customer_id: customer_id.clone(),
            format: i64::from(STATE_FORMAT),
            state: w.state.encode(),
        });
    }
    // A build that held the customer over several batches evaluated it at an earlier as_of.
    let evaluated_at = w.evaluated_at.unwrap_or(eval.as_of);
    let card = CustomerCard::new(w.id, &w.state, verdict);
    out.customers.push(customer_row(
        customer_id,
        &card,
        eval,
        (log_partition, log_offset),
        evaluated_at,
    ));
}

fn customer_row(
    customer_id: String,
    card: &CustomerCard,
    eval: &Evaluation<'_>,
    (log_partition, log_offset): (i32, i64),
    evaluated_at: i64,
) -> CustomerRow {
    let v = &card.verdict;
    let factor = |i: usize| FactorValue {
        raw: v.factors[i].raw,
        score: v.factors[i].sub_score,
    };
    CustomerRow {
        customer_id,
        name: card.name.clone(),
        owner: card.owner.clone(),
        segment: card.segment.clone(),
        region: card.region.clone(),
        channel: card.channel.clone(),
        grade: v.grade.as_str().to_string(),
        score: v.score,
        stage: v.stage.as_str().to_string(),
        stage_since: calendar::iso_date(v.stage_since),
        stage_rule: v.stage_rule.id().to_string(),
        risk: v.risk,
        risk_band: v.risk_band.as_str().to_string(),
        open_complaints: card.open_complaints.len() as i64,
        active_contracts: card.active_contracts.len() as i64,
        last_purchase_on: card.last_purchase_on.map(calendar::iso_date),
        last_interaction_on: card.last_interaction_on.map(calendar::iso_date),
        last_activity_on: card.last_activity_on.map(calendar::iso_date),
        currency: card.currency.map(|c| c.as_str().to_string()),
        sales_3m_minor: clamp(card.sales_3_months_minor),
        sales_12m_minor: clamp(card.sales_12_months_minor),
        factors: [factor(0), factor(1), factor(2), factor(3), factor(4)],
        // Serializing plain data to a string cannot fail.
        card: serde_json::to_string(card).unwrap_or_default(),
        code_version: eval.lineage.code_version,
        grading_version: eval.lineage.grading_version.clone(),
        lifecycle_version: eval.lineage.lifecycle_version.clone(),
        churn_version: eval.lineage.churn_version.clone(),
        log_partition,
        log_offset,
        events: clamp(card.events),
        evaluated_at,
        grade_inputs: v.grade_inputs.encode(),
    }
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn nanos(time: time::OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}
