//! The pure part of a batch: records in log order, what the store holds about their customers,
//! the policies and an explicit `as_of` in; every row the batch writes out. No I/O and no clock,
//! so a test can run it with fixed times and a replay gives the same rows.
//!
//! Each applied event is evaluated on its own, so a transition names the event that caused it
//! whatever the batch boundaries were: two runs over the same log at the same `as_of` write
//! the same transitions even if one of them was killed and restarted in between.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use foldhash::{HashMap as FastMap, HashSet as FastSet, HashSetExt};

use clientlog_domain::calendar::{self, day_of};
use clientlog_domain::state::STATE_FORMAT;
use clientlog_domain::{evaluate, marks, CustomerCard, CustomerId, CustomerState, Policies};
use clientlog_eventlog::{BadRecord, StoredEvent};
use clientlog_readstore::{
    chain_hash, AuditRow, BatchWrite, Cause, ChainHead, CustomerRow, FactorValue, HeldEvent,
    KnownHead, Lineage, ListKeys, LoadedCustomer, StateRow, Summary, TransitionRow,
};

/// One item of the log as the projector sees it. An event is held by value: a batch's records
/// travel in vectors, and a box for each cost an allocation on the reading thread and a free
/// on the folding one.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Event(StoredEvent),
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
    /// The batch's look-ups missed a head it needed: a defect, reported rather than a chain
    /// restarted at 1.
    #[error(
        "customer {0}: an event was to be added to the audit copy before the chain head was read"
    )]
    HeadUnread(String),
}

/// The three values transitions are about, in the order of `Working::marks`.
const MARKS: [&str; 3] = ["grade", "stage", "risk_band"];

/// A customer being worked on in this batch.
struct Working {
    id: CustomerId,
    state: CustomerState,
    /// The grade, stage and risk band of the last verdict: as stored, or computed here (a
    /// verdict's own names, not copied for every event).
    marks: Option<[Cow<'static, str>; 3]>,
    evaluated_at: Option<i64>,
    head: KnownHead,
    position: Option<(i32, i64)>,
    /// What the store's row holds, as loaded (the write need not read it again).
    stored_keys: Option<ListKeys>,
    /// Evaluated here (at `evaluated_at`): its rows are to be written, with the verdict
    /// evaluated once more in full.
    evaluated: bool,
    state_changed: bool,
}

impl Working {
    /// `unlisted_head`: the head of a customer the store's look-ups did not list
    /// ([`Known::unlisted_head`]).
    fn new(
        id: CustomerId,
        loaded: Option<LoadedCustomer>,
        unlisted_head: KnownHead,
    ) -> Result<Self, FoldError> {
        let loaded = loaded.unwrap_or(LoadedCustomer {
            state: None,
            summary: None,
            head: unlisted_head,
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
                Some([
                    Cow::Owned(keys.grade.clone()),
                    Cow::Owned(keys.stage.clone()),
                    Cow::Owned(keys.risk_band.clone()),
                ]),
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
            evaluated: false,
            state_changed: false,
        })
    }

    /// Evaluates the state's marks and records a transition for each one that changed.
    fn evaluate(&mut self, eval: &Evaluation<'_>, cause: Cause, out: &mut Vec<TransitionRow>) {
        let marks = marks(&self.state, eval.policies, eval.as_of);
        let now = [
            marks.grade.as_str(),
            marks.stage.as_str(),
            marks.risk_band.as_str(),
        ];
        let before = self.marks.take();
        for (i, dimension) in MARKS.into_iter().enumerate() {
            let from = before.as_ref().map(|marks| marks[i].as_ref());
            if from != Some(now[i]) {
                out.push(TransitionRow {
                    customer_id: self.id.as_str().to_string(),
                    dimension,
                    from_value: from.map(str::to_string),
                    to_value: now[i].to_string(),
                    cause,
                    at: eval.as_of,
                });
            }
        }
        self.marks = Some(now.map(Cow::Borrowed));
        self.evaluated_at = Some(eval.as_of);
        self.evaluated = true;
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
    /// What the store holds of the batch's customers, with the chain heads of those the batch
    /// may add to the audit copy of. For a customer the carry holds, only the chain head
    /// counts: it is read where it was not yet, or where another version may have added to the
    /// customer's audit copy since the carry read it.
    pub loaded: HashMap<String, LoadedCustomer>,
    /// The chain head of a customer `loaded` does not list: `Read(None)` for a fold that
    /// starts from nothing stored, `Unread` where the store was asked only for the heads the
    /// batch may need.
    pub unlisted_head: KnownHead,
    /// Customers with an open dead letter: all their events in this batch are held (the id).
    pub blocked: HashMap<String, i64>,
    /// The dead-letter id of each bad record of this batch, by position.
    pub dead_letters: HashMap<(i32, i64), i64>,
    /// Those of this batch's events that the audit copy holds.
    pub audited: Audited,
}

/// The events of a batch that the audit copy holds. It is shared by all versions: an event
/// there at this very position was applied by another version first (this one is catching up,
/// or the batch's own audit copy committed before a failure) and is folded without a new audit
/// row; at another position it is a second copy and changes nothing.
#[derive(Debug, Clone)]
pub enum Audited {
    /// Event ids with the position they were applied from: for a log that may hold an event
    /// twice, at two positions (Kafka).
    Ids(HashMap<[u8; 16], (i32, i64)>),
    /// Positions: for a log that refuses a second copy of an event id, where the event at an
    /// audited position is the one the audit copy holds.
    Positions(Positions),
}

impl Default for Audited {
    fn default() -> Self {
        Audited::Positions(Positions::default())
    }
}

/// A set of log positions: per partition, sorted runs of consecutive offsets (first, last). A
/// rebuild asks about batches the audit copy holds whole, one run each.
#[derive(Debug, Clone, Default)]
pub struct Positions(Vec<(i32, Vec<(i64, i64)>)>);

impl Positions {
    pub fn contains(&self, (partition, offset): (i32, i64)) -> bool {
        self.covers(partition, offset, offset)
    }

    /// Whether it holds every offset from `first` to `last` of `partition`.
    pub fn covers(&self, partition: i32, first: i64, last: i64) -> bool {
        let Some((_, runs)) = self.0.iter().find(|(p, _)| *p == partition) else {
            return false;
        };
        let after = runs.partition_point(|&(start, _)| start <= first);
        after > 0 && runs[after - 1].1 >= last
    }
}

impl FromIterator<(i32, i64, i64)> for Positions {
    /// From runs `(partition, first, last)`.
    fn from_iter<I: IntoIterator<Item = (i32, i64, i64)>>(runs: I) -> Self {
        let mut by_partition: Vec<(i32, Vec<(i64, i64)>)> = Vec::new();
        for (partition, first, last) in runs {
            match by_partition.iter_mut().find(|(p, _)| *p == partition) {
                Some((_, runs)) => runs.push((first, last)),
                None => by_partition.push((partition, vec![(first, last)])),
            }
        }
        for (_, runs) in &mut by_partition {
            runs.sort_unstable();
        }
        Positions(by_partition)
    }
}

impl Audited {
    /// Whether folding `record` may add a row to the audit copy: an event it does not hold.
    pub fn may_add(&self, record: &Record) -> bool {
        match record {
            Record::Event(stored) => {
                matches!(self.check(event_id(stored), record.position()), Check::New)
            }
            Record::Bad(_) => false,
        }
    }

    /// Whether it holds every position of `ranges` (per partition, first and last offset), so
    /// that no record there may add to the audit copy. Always `false` for event ids.
    pub fn covers(&self, ranges: &BTreeMap<i32, (i64, i64)>) -> bool {
        let Audited::Positions(positions) = self else {
            return false;
        };
        ranges
            .iter()
            .all(|(&partition, &(first, last))| positions.covers(partition, first, last))
    }

    /// What the audit copy says of the event `event_id` at `position`.
    fn check(&self, event_id: [u8; 16], position: (i32, i64)) -> Check {
        match self {
            Audited::Ids(ids) => match ids.get(&event_id) {
                Some(&at) if at != position => Check::Repeat,
                Some(_) => Check::Audited,
                None => Check::New,
            },
            Audited::Positions(positions) if positions.contains(position) => Check::Audited,
            Audited::Positions(_) => Check::New,
        }
    }
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
    /// By shard of the customer id (`shard_of`), so that shards fold apart.
    /// Boxed: a map of small entries is quicker to probe and to grow, and its free slots hold
    /// no room for states (held in the maps, a rebuild over a million customers peaked at
    /// 1.25 GiB instead of 0.89).
    working: [FastMap<CustomerId, Box<Working>>; SHARDS],
    out: BatchWrite,
}

impl Carry {
    /// Customers held.
    pub fn customers(&self) -> usize {
        self.working.iter().map(FastMap::len).sum()
    }

    /// Whether `customer` is held (its stored rows are older than its state here).
    pub fn holds(&self, customer: &str) -> bool {
        self.working[shard_of(customer)].contains_key(customer)
    }

    /// Whether `customer` is held with its chain head read (when it was met, or since).
    pub fn head_read(&self, customer: &str) -> bool {
        self.working[shard_of(customer)]
            .get(customer)
            .is_some_and(|w| matches!(w.head, KnownHead::Read(_)))
    }

    /// Rows other than customers' waiting to be written.
    pub fn pending_rows(&self) -> usize {
        self.out.transitions.len() + self.out.events.len() + self.out.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.customers() == 0 && self.out.checkpoints.is_empty() && self.pending_rows() == 0
    }

    /// Events applied so far.
    pub fn applied(&self) -> u64 {
        self.out.applied
    }

    /// Events held behind a dead letter so far.
    pub fn held_events(&self) -> usize {
        self.out.held.len()
    }

    /// Whether the carry holds audit rows or held events: those are written at once, as later
    /// batches' duplicate checks read them from the store.
    pub fn must_write(&self) -> bool {
        !self.out.events.is_empty() || !self.out.held.is_empty()
    }

    /// Finishes `customers` (those of them held here): their rows join the rows to write, and
    /// a later record of theirs would start from the store again. A batch written at once
    /// finishes each customer after its records in the batch ([`fold_by_customer`]).
    pub fn finish_customers(&mut self, customers: &[&str], eval: &Evaluation<'_>) {
        for &customer in customers {
            if let Some(w) = self.working[shard_of(customer)].remove(customer) {
                finish(*w, eval, &mut self.out);
            }
        }
    }

    /// The rows complete so far (audit copy, transitions, held events, finished customers),
    /// taken out so that they can be written while later records are folded.
    pub fn take_rows(&mut self) -> BatchWrite {
        let out = &mut self.out;
        let mut rows = BatchWrite {
            customers: std::mem::take(&mut out.customers),
            states: std::mem::take(&mut out.states),
            events: std::mem::take(&mut out.events),
            transitions: std::mem::take(&mut out.transitions),
            held: std::mem::take(&mut out.held),
            stored_keys: std::mem::take(&mut out.stored_keys),
            ..BatchWrite::default()
        };
        transitions_by_customer(&mut rows);
        rows
    }

    /// The audit rows folded so far, taken out to be written while the customers stay held.
    pub fn take_audit_rows(&mut self) -> BatchWrite {
        BatchWrite {
            events: std::mem::take(&mut self.out.events),
            ..BatchWrite::default()
        }
    }

    /// Every row to write, customers in id order.
    pub fn finish(self, eval: &Evaluation<'_>) -> BatchWrite {
        self.finish_in_parts(eval, usize::MAX, |_| true)
    }

    /// [`Carry::finish`], handing rows to `emit` in parts of `chunk` rows while the rest are
    /// finished (until `emit` says no more): the transitions first, then the customers in id
    /// order. Returns what is left, with the checkpoints. A build writes what it holds at its
    /// end this way, so that the writer need not wait for every customer's verdict.
    pub fn finish_in_parts(
        mut self,
        eval: &Evaluation<'_>,
        chunk: usize,
        mut emit: impl FnMut(BatchWrite) -> bool,
    ) -> BatchWrite {
        transitions_by_customer(&mut self.out);
        let mut transitions = std::mem::take(&mut self.out.transitions).into_iter();
        while transitions.len() > chunk {
            let part = BatchWrite {
                transitions: transitions.by_ref().take(chunk).collect(),
                ..BatchWrite::default()
            };
            if !emit(part) {
                return BatchWrite::default();
            }
        }
        self.out.transitions = transitions.collect();
        let mut customers: Vec<Box<Working>> = std::mem::take(&mut self.working)
            .into_iter()
            .flat_map(FastMap::into_values)
            .collect();
        customers.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        for (i, w) in customers.into_iter().enumerate() {
            finish(*w, eval, &mut self.out);
            if (i + 1) % chunk == 0 && !emit(self.take_rows()) {
                return BatchWrite::default();
            }
        }
        self.out
    }
}

/// Puts `rows`' transitions in customer id order, each customer's in the order they happened:
/// the order of the index a customer's timeline is read by, so that writing them appends to
/// it instead of inserting all over it (a build holds transitions of many batches in log
/// order).
fn transitions_by_customer(rows: &mut BatchWrite) {
    rows.transitions
        .sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
}

/// Customers are split in this many shards by id; a build that holds customers across batches
/// folds each shard on a thread of its own ([`fold_into_sharded`]).
const SHARDS: usize = 2;

/// The shard of `customer`: FNV-1a of the id, the same in every run (unlike `RandomState`),
/// so that a build writes its rows in the same order every time.
fn shard_of(customer: &str) -> usize {
    let hash = customer.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % SHARDS as u64) as usize
}

/// What the checks by event id, which span customers, say about one event of a batch.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// Another copy of an event applied already (Kafka may deliver an event twice, or hold two
    /// copies of it): it changes nothing.
    Repeat,
    /// In the audit copy at this very position: folded without a new audit row.
    Audited,
    New,
}

/// What the checks by event id say of a record: `None` for a bad record; a repeat of an event
/// the audit copy holds elsewhere or `seen` earlier in the batch; audited; or new.
fn check_record(record: &Record, audited: &Audited, seen: &mut FastSet<[u8; 16]>) -> Option<Check> {
    let Record::Event(stored) = record else {
        return None;
    };
    let event_id = event_id(stored);
    match audited.check(event_id, record.position()) {
        Check::Repeat => Some(Check::Repeat),
        _ if !seen.insert(event_id) => Some(Check::Repeat),
        found => Some(found),
    }
}

fn event_id(stored: &StoredEvent) -> [u8; 16] {
    *stored.event.id.as_uuid().as_bytes()
}

/// The customers of one shard while a batch is folded: what the store loaded for them, those
/// held behind a dead letter, their working states, and where their rows go.
struct Shard<'a> {
    working: &'a mut FastMap<CustomerId, Box<Working>>,
    loaded: &'a mut HashMap<String, LoadedCustomer>,
    unlisted_head: KnownHead,
    blocked: &'a mut HashMap<String, i64>,
    dead_letters: &'a HashMap<(i32, i64), i64>,
    out: &'a mut BatchWrite,
}

impl Shard<'_> {
    /// Folds one record. `check` is what the checks by id said of an event.
    fn fold(
        &mut self,
        record: &Record,
        check: Option<Check>,
        eval: &Evaluation<'_>,
        checkpoint: bool,
    ) -> Result<(), FoldError> {
        let (partition, offset) = record.position();
        if checkpoint {
            raise_checkpoint(self.out, Some((partition, offset)));
        }
        let stored = match record {
            Record::Bad(bad) => {
                if let (Some(customer), Some(&id)) =
                    (&bad.key, self.dead_letters.get(&(partition, offset)))
                {
                    self.blocked.entry(customer.clone()).or_insert(id);
                }
                return Ok(());
            }
            Record::Event(stored) => stored,
        };
        let audited = match check {
            Some(Check::Repeat) | None => return Ok(()),
            Some(Check::Audited) => true,
            Some(Check::New) => false,
        };
        let customer = stored.event.subject.as_str();
        if let Some(&dead_letter_id) = self.blocked.get(customer) {
            self.out.held.push(HeldEvent {
                log_partition: partition,
                log_offset: offset,
                customer_id: customer.to_string(),
                dead_letter_id,
                recorded_at: nanos(stored.recorded_at),
                bytes: stored.bytes.clone(),
            });
            return Ok(());
        }
        let w = match self.working.get_mut(customer) {
            Some(w) => w,
            None => {
                let w = Box::new(Working::new(
                    stored.event.subject.clone(),
                    self.loaded.remove(customer),
                    self.unlisted_head,
                )?);
                self.working.entry(w.id.clone()).or_insert(w)
            }
        };
        let out = &mut *self.out;
        w.catch_up_in_time(eval, &mut out.transitions);
        w.state.apply(&stored.event);
        w.state_changed = true;
        out.applied += 1;
        w.position = Some((partition, offset));
        let event_id = event_id(stored);
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
            return Ok(());
        }
        // A held customer's head, read for this batch (see `Known::loaded`); a customer first
        // met here took its entry when its working state was made.
        if let Some(LoadedCustomer {
            head: fresh @ KnownHead::Read(_),
            ..
        }) = self.loaded.remove(customer)
        {
            w.head = fresh;
        }
        let KnownHead::Read(head) = w.head else {
            return Err(FoldError::HeadUnread(customer.to_string()));
        };
        let seq = head.map_or(1, |h| h.seq + 1);
        let hash = chain_hash(head.as_ref().map(|h| &h.hash), &stored.bytes);
        w.head = KnownHead::Read(Some(ChainHead { seq, hash }));
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
        Ok(())
    }
}

/// Moves the checkpoint of `position`'s partition up to it (never back).
fn raise_checkpoint(out: &mut BatchWrite, position: Option<(i32, i64)>) {
    if let Some((partition, offset)) = position {
        let entry = out.checkpoints.entry(partition).or_insert(offset);
        *entry = (*entry).max(offset);
    }
}

/// Folds `records` (in log order) into `carry`: customers it holds are folded on from their
/// state there, others from what `known` loaded. A second copy of an event within `records`
/// changes nothing.
pub fn fold_into(
    records: &[Record],
    known: &mut Known,
    eval: &Evaluation<'_>,
    checkpoint: bool,
    carry: &mut Carry,
) -> Result<(), FoldError> {
    let mut seen: FastSet<[u8; 16]> = FastSet::with_capacity(records.len());
    for record in records {
        let check = check_record(record, &known.audited, &mut seen);
        let shard = record.customer().map_or(0, shard_of);
        let mut folding = Shard {
            working: &mut carry.working[shard],
            loaded: &mut known.loaded,
            unlisted_head: known.unlisted_head,
            blocked: &mut known.blocked,
            dead_letters: &known.dead_letters,
            out: &mut carry.out,
        };
        folding.fold(record, check, eval, checkpoint)?;
    }
    Ok(())
}

/// Folds all of a batch's `records` into `carry` as [`fold_into`] does, but customer by
/// customer in id order, finishing each customer after its records and handing the rows done
/// so far to `emit` every `chunk` records or so (until `emit` says no more): a batch written
/// at once reaches the writer evenly, where in log order most customers finish in the batch's
/// last records and their rows would all be written after the fold. The checks by event id,
/// which span customers, run first in log order; a customer's events stay in log order, so only
/// the order across customers differs from [`fold_into`].
///
/// With `hold`, customers stay folded in `carry` (their rows, transitions and checkpoints are
/// written when the carry is finished) and only the audit rows are handed to `emit`.
pub fn fold_by_customer(
    records: Vec<Record>,
    known: Known,
    eval: &Evaluation<'_>,
    carry: &mut Carry,
    hold: bool,
    chunk: usize,
    mut emit: impl FnMut(BatchWrite) -> bool,
) -> Result<(), FoldError> {
    let take = |carry: &mut Carry| {
        if hold {
            carry.take_audit_rows()
        } else {
            carry.take_rows()
        }
    };
    let mut seen: FastSet<[u8; 16]> = FastSet::with_capacity(records.len());
    let checks: Vec<Option<Check>> = records
        .iter()
        .map(|record| check_record(record, &known.audited, &mut seen))
        .collect();
    let mut by_customer: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        by_customer.entry(record.customer()).or_default().push(i);
    }
    let mut groups: Vec<(Option<String>, Vec<usize>)> = by_customer
        .into_iter()
        .map(|(customer, indexes)| (customer.map(str::to_string), indexes))
        .collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    // Each record is dropped once folded, here rather than by the writer.
    let mut records: Vec<Option<Record>> = records.into_iter().map(Some).collect();
    let Known {
        mut loaded,
        unlisted_head,
        mut blocked,
        dead_letters,
        ..
    } = known;
    let mut pending = 0;
    for (customer, indexes) in groups {
        let mut shard = Shard {
            working: &mut carry.working[customer.as_deref().map_or(0, shard_of)],
            loaded: &mut loaded,
            unlisted_head,
            blocked: &mut blocked,
            dead_letters: &dead_letters,
            out: &mut carry.out,
        };
        for &i in &indexes {
            if let Some(record) = records[i].take() {
                shard.fold(&record, checks[i], eval, true)?;
            }
        }
        if let Some(customer) = customer.as_deref().filter(|_| !hold) {
            carry.finish_customers(&[customer], eval);
        }
        pending += indexes.len();
        if pending >= chunk {
            pending = 0;
            if !emit(take(carry)) {
                return Ok(());
            }
        }
    }
    if pending > 0 {
        emit(take(carry));
    }
    Ok(())
}

/// Folds all of a batch's `records` into `carry` as [`fold_into`] does, each shard of customers
/// on a thread of its own: a customer's events stay in log order, and the checks by event id,
/// which span customers, run first on this thread. Rows of the two shards are appended one
/// shard after the other, so only the order across customers differs from [`fold_into`].
/// Takes the records to drop them here, on the fold's thread, once both shards are done.
pub fn fold_into_sharded(
    records: Vec<Record>,
    known: Known,
    eval: &Evaluation<'_>,
    checkpoint: bool,
    carry: &mut Carry,
) -> Result<(), FoldError> {
    let mut seen: FastSet<[u8; 16]> = FastSet::with_capacity(records.len());
    // About half the records each, with room for an uneven split without growing.
    let room = records.len() / SHARDS + records.len() / 16;
    // A shard folds its records where the batch holds them: moving each into a list of its
    // shard copied it once more, and freed it on the shard's thread.
    let mut by_shard: [Vec<(&Record, Option<Check>)>; SHARDS] =
        std::array::from_fn(|_| Vec::with_capacity(room));
    // The checkpoints move here, once per run of a partition's records, rather than at each
    // record on its shard's thread.
    let mut last: Option<(i32, i64)> = None;
    for record in &records {
        let check = check_record(record, &known.audited, &mut seen);
        let position = record.position();
        last = match last {
            Some((partition, offset)) if partition == position.0 => {
                Some((partition, offset.max(position.1)))
            }
            run => {
                if checkpoint {
                    raise_checkpoint(&mut carry.out, run);
                }
                Some(position)
            }
        };
        by_shard[record.customer().map_or(0, shard_of)].push((record, check));
    }
    if checkpoint {
        raise_checkpoint(&mut carry.out, last);
    }
    let mut loaded: [HashMap<String, LoadedCustomer>; SHARDS] = Default::default();
    for (customer, row) in known.loaded {
        loaded[shard_of(&customer)].insert(customer, row);
    }
    let mut blocked: [HashMap<String, i64>; SHARDS] = Default::default();
    for (customer, id) in known.blocked {
        blocked[shard_of(&customer)].insert(customer, id);
    }
    let mut other_out = BatchWrite::default();
    let ([working_0, working_1], [loaded_0, loaded_1], [blocked_0, blocked_1]) =
        (&mut carry.working, &mut loaded, &mut blocked);
    let [first_records, second_records] = by_shard;
    let first = (
        Shard {
            working: working_0,
            loaded: loaded_0,
            unlisted_head: known.unlisted_head,
            blocked: blocked_0,
            dead_letters: &known.dead_letters,
            out: &mut carry.out,
        },
        first_records,
    );
    let second = (
        Shard {
            working: working_1,
            loaded: loaded_1,
            unlisted_head: known.unlisted_head,
            blocked: blocked_1,
            dead_letters: &known.dead_letters,
            out: &mut other_out,
        },
        second_records,
    );
    let fold_shard = |(mut shard, records): (Shard<'_>, Vec<(&Record, Option<Check>)>)| {
        for (record, check) in records {
            shard.fold(record, check, eval, false)?;
        }
        Ok::<_, FoldError>(())
    };
    std::thread::scope(|scope| {
        let other = scope.spawn(|| fold_shard(second));
        let mine = fold_shard(first);
        let other = other
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        mine.and(other)
    })?;
    let out = &mut carry.out;
    out.events.append(&mut other_out.events);
    out.transitions.append(&mut other_out.transitions);
    out.held.append(&mut other_out.held);
    out.applied += other_out.applied;
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
            head: KnownHead::Unread,
        });
        stored.state = Some((format, bytes));
        let mut w = Working::new(id, Some(stored), KnownHead::Unread)?;
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
    let Some(evaluated_at) = w.evaluated_at.filter(|_| w.evaluated) else {
        return;
    };
    // The state is as it was at the last evaluation: this is the verdict of its marks.
    let verdict = evaluate(&w.state, eval.policies, evaluated_at);
    let (log_partition, log_offset) = w.position.unwrap_or((0, 0));
    let customer_id = w.id.as_str().to_string();
    if let Some(keys) = w.stored_keys {
        out.stored_keys.insert(customer_id.clone(), keys);
    }
    if w.state_changed {
        out.states.push(StateRow {
            customer_id: customer_id.clone(),
            format: i64::from(STATE_FORMAT),
            state: w.state.encode(),
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_answer_by_their_runs() {
        let positions: Positions = [(0, 5, 9), (0, 1, 2), (3, 4, 4)].into_iter().collect();
        for (position, held) in [
            ((0, 0), false),
            ((0, 1), true),
            ((0, 2), true),
            ((0, 3), false),
            ((0, 5), true),
            ((0, 9), true),
            ((0, 10), false),
            ((3, 4), true),
            ((3, 5), false),
            ((1, 5), false),
        ] {
            assert_eq!(positions.contains(position), held, "{position:?}");
        }
        assert!(!Positions::default().contains((0, 1)));
    }

    #[test]
    fn the_audit_copy_covers_ranges_held_whole() {
        let audited = Audited::Positions([(0, 5, 9), (0, 1, 2), (3, 4, 4)].into_iter().collect());
        for (ranges, covered) in [
            (vec![(0, (5, 9))], true),
            (vec![(0, (6, 8)), (3, (4, 4))], true),
            (vec![(0, (1, 2))], true),
            (vec![(0, (2, 5))], false),
            (vec![(0, (5, 10))], false),
            (vec![(0, (4, 9))], false),
            (vec![(0, (5, 9)), (3, (4, 5))], false),
            (vec![(1, (5, 5))], false),
            (vec![], true),
        ] {
            let ranges: BTreeMap<i32, (i64, i64)> = ranges.into_iter().collect();
            assert_eq!(audited.covers(&ranges), covered, "{ranges:?}");
        }
        let by_id = Audited::Ids(HashMap::new());
        assert!(!by_id.covers(&BTreeMap::from([(0, (1, 1))])));
    }
}
