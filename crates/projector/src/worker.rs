//! The worker loop: read from checkpoint + 1, batch, fold, write rows and checkpoint in one
//! transaction; re-evaluate on an interval; follow a promotion to the next live version; stop
//! cleanly when the shutdown token fires.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use clientlog_domain::Policies;
use clientlog_eventlog::{
    AnyLog, BadRecord, EventLog, ReadError, SharedStartOffsets, StartOffsets, StoredEvent, WireMode,
};
use clientlog_readstore::{
    BatchWrite, KnownHead, Lineage, NewDeadLetter, PolicyDocument, ProjectionVersion, ReadStore,
    CODE_VERSION,
};
use foldhash::HashSet as FastSet;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::fold::{self, Audited, Carry, Evaluation, Known, Record};
use crate::ProjectorError;

/// Where verdicts get their `as_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock at each batch (production).
    System,
    /// A fixed time, Unix seconds: reproducible runs and tests.
    Fixed(i64),
}

impl Clock {
    pub fn now(self) -> i64 {
        match self {
            Clock::System => now_unix(),
            Clock::Fixed(t) => t,
        }
    }
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Most records a live projector puts in one batch (one transaction). A batch takes the records
/// that are ready, so this bound only matters while the projector is behind: there, each batch
/// rewrites the rows of every customer it touches once, and bigger batches rewrite fewer of
/// them (the README's bench section has the figures). A batch's rows are written as its
/// customers complete, so its memory is mostly its records.
pub const DEFAULT_BATCH_SIZE: usize = 100_000;

/// Customers a projector holds in memory between writes unless told otherwise (see
/// [`ProjectorConfig::hold_customers`]).
pub const DEFAULT_HOLD_CUSTOMERS: usize = 100_000;

/// Longest the live version holds folded customers before writing them while it catches up.
pub const LIVE_HOLD_AGE: Duration = Duration::from_secs(5);

/// How a projector batches and re-evaluates.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Most records per batch (one transaction).
    pub batch_size: usize,
    /// Longest a batch waits for more records once it has taken every record already read.
    /// Zero (the default) sends what is ready at once: a batch then grows by itself with the
    /// load, to what arrived while the previous one was written, and an event is visible
    /// about one batch's time after it was appended.
    pub batch_wait: Duration,
    /// Re-evaluate every customer this often (time moves without events); `None`: never.
    pub reevaluate_every: Option<Duration>,
    pub clock: Clock,
    /// Stop once every partition's checkpoint reached the high-water mark seen at start.
    pub until_caught_up: bool,
    /// Counts the records of every folded batch (a rebuild's progress).
    pub progress: Option<Arc<AtomicU64>>,
    /// Up to how many customers are kept folded in memory across batches, each written once
    /// with the checkpoint, where writing every batch rewrites a customer's rows in every batch
    /// it appears in. A build (a candidate version run `until_caught_up`) holds until it holds
    /// that many, reaches its target, or a batch has dead letters. The live version holds only
    /// while it catches up with the log's end as it was at start, and at most
    /// [`LIVE_HOLD_AGE`], so that its readers see the rows of a catch-up as it goes; and only on
    /// a log whose partitions are not shared with other readers (a Kafka group's partition may
    /// move to another member), in one transaction kept open (see `Held::tx`). A build writes
    /// each batch's audit copy at once. Zero: every batch is written.
    pub hold_customers: usize,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            batch_wait: Duration::ZERO,
            reevaluate_every: Some(Duration::from_secs(3600)),
            clock: Clock::System,
            until_caught_up: false,
            progress: None,
            hold_customers: DEFAULT_HOLD_CUSTOMERS,
        }
    }
}

/// Counts of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunStats {
    pub batches: u64,
    pub records: u64,
    pub applied: u64,
    pub duplicates: u64,
    pub held: u64,
    pub dead_letters: u64,
}

/// Counts of a re-evaluation pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReevaluateStats {
    pub customers: u64,
    pub transitions: u64,
}

/// The projection version a projector writes, with the policies it is built with.
#[derive(Debug)]
pub struct Attached {
    pub version: i64,
    pub policies: Policies,
    pub lineage: Lineage,
}

/// A projector of one read store: of its live version (following promotions) or of one
/// candidate version being built beside it.
#[derive(Clone)]
pub struct Projector {
    store: ReadStore,
    follows_live: bool,
    attached: Arc<RwLock<Arc<Attached>>>,
}

/// The size past which a batch's commit restarts the SQLite read store's WAL (see
/// `ReadStore::bound_wal`): four times the 64 MiB a restarted WAL is cut back to.
const WAL_LIMIT_BYTES: u64 = 256 << 20;

/// Rows other than customers' (transitions, held events) a build holds in memory at most
/// before it writes what it holds.
const HELD_ROWS: usize = 500_000;

/// What a projector holds in memory between batches.
#[derive(Default)]
struct Held {
    /// Up to how many customers (`ProjectorConfig::hold_customers`; 0: every batch is written).
    limit: usize,
    carry: Carry,
    /// The version's checkpoints when `carry` started: its customers were loaded as of these.
    base: BTreeMap<i32, i64>,
    /// When `carry` started holding (the live version writes it after [`LIVE_HOLD_AGE`]).
    since: Option<Instant>,
    /// The live version's transaction, kept open while it holds (at most [`LIVE_HOLD_AGE`]):
    /// the batches' audit copy streams on into it, on PostgreSQL into one `COPY`, and is
    /// committed once with the rows and checkpoint, where committing it every batch made the
    /// projector wait for the audit copy after each. Other writers wait for the store's lock
    /// meanwhile; a build, which may hold for minutes, commits every batch instead.
    tx: Option<clientlog_readstore::StoreTx>,
}

/// Records a batch written at once folds before it hands the rows they completed to the writer.
const STREAMED_RECORDS: usize = 2_000;

/// Rows (transitions, or customers finished) per part when a carry is written.
const FINISHED_ROWS: usize = 5_000;

/// Customers whose re-evaluation goes in one transaction.
const REEVALUATE_PAGE: i64 = 2_000;

/// The lineage rows written under `policies` by this build carry.
pub fn lineage_of(policies: &Policies) -> Lineage {
    Lineage {
        code_version: CODE_VERSION,
        state_format: i64::from(clientlog_domain::state::STATE_FORMAT),
        grading_version: policies.grading.version.clone(),
        lifecycle_version: policies.lifecycle.version.clone(),
        churn_version: policies.churn.version.clone(),
    }
}

/// The policy texts stored with a version built under `policies`.
pub fn documents_of(policies: &Policies) -> Vec<PolicyDocument> {
    let document = |kind: &str, version: &str, source: &str| PolicyDocument {
        kind: kind.to_string(),
        version: version.to_string(),
        source: source.to_string(),
    };
    vec![
        document(
            "grading",
            &policies.grading.version,
            &policies.grading.source,
        ),
        document(
            "lifecycle",
            &policies.lifecycle.version,
            &policies.lifecycle.source,
        ),
        document("churn", &policies.churn.version, &policies.churn.source),
    ]
}

/// The policies `version` was built with, from the texts stored with it; `given` serves a
/// version created before texts were stored if it names the same policy versions.
pub async fn policies_of(
    store: &ReadStore,
    version: &ProjectionVersion,
    given: &Policies,
) -> Result<Policies, ProjectorError> {
    let documents = store.policy_documents(&version.lineage).await?;
    let source = |kind: &str| {
        documents
            .iter()
            .find(|d| d.kind == kind)
            .map(|d| d.source.as_str())
    };
    if let (Some(grading), Some(lifecycle), Some(churn)) =
        (source("grading"), source("lifecycle"), source("churn"))
    {
        return Policies::from_sources(grading, lifecycle, churn).map_err(|source| {
            ProjectorError::StoredPolicy {
                version: version.version,
                source,
            }
        });
    }
    let wanted = &version.lineage;
    if given.grading.version == wanted.grading_version
        && given.lifecycle.version == wanted.lifecycle_version
        && given.churn.version == wanted.churn_version
    {
        return Ok(given.clone());
    }
    Err(ProjectorError::UnknownPolicies {
        version: version.version,
        detail: format!(
            "built with grading {}, lifecycle {}, churn {}",
            wanted.grading_version, wanted.lifecycle_version, wanted.churn_version
        ),
    })
}

impl Projector {
    /// Attaches to the store's live version, creating version 1 under `policies` on a fresh
    /// store. An existing live version is projected with the policies it was built with; if
    /// `policies` differ, they are not used (a warning says so: `clientlog rebuild` builds a
    /// version under them).
    pub async fn new(store: ReadStore, policies: Policies) -> Result<Self, ProjectorError> {
        let attached = attach_live(&store, &policies).await?;
        Ok(Self {
            store,
            follows_live: true,
            attached: Arc::new(RwLock::new(Arc::new(attached))),
        })
    }

    /// Creates a candidate version under `policies` beside the live one, to be built from the
    /// start of the log (see [`crate::rebuild`]).
    pub async fn candidate(store: ReadStore, policies: Policies) -> Result<Self, ProjectorError> {
        let lineage = lineage_of(&policies);
        let created = store
            .create_candidate(&lineage, &documents_of(&policies))
            .await?;
        Ok(Self {
            store,
            follows_live: false,
            attached: Arc::new(RwLock::new(Arc::new(Attached {
                version: created.version,
                policies,
                lineage,
            }))),
        })
    }

    /// The version written now, with its policies.
    pub fn attached(&self) -> Arc<Attached> {
        self.attached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn version(&self) -> i64 {
        self.attached().version
    }

    pub fn store(&self) -> &ReadStore {
        &self.store
    }

    /// Re-attaches to whatever version is live now.
    async fn follow_promotion(&self, from: i64) -> Result<(), ProjectorError> {
        let current = self.attached();
        let now = attach_live(&self.store, &current.policies).await?;
        tracing::info!(
            from,
            to = now.version,
            grading = %now.lineage.grading_version,
            "another projection version was promoted; projecting into it"
        );
        *self.attached.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(now);
        Ok(())
    }

    /// Starts a transaction for the attached version, failing if it is no longer the version
    /// this projector should write (promoted away, or dropped).
    pub(crate) async fn begin(
        &self,
        attached: &Attached,
    ) -> Result<clientlog_readstore::StoreTx, ProjectorError> {
        let mut tx = self.store.begin().await?;
        let status = tx.version_status(attached.version).await?;
        let version = attached.version;
        match status.as_deref() {
            None => Err(ProjectorError::VersionDropped { version }),
            Some(status) if self.follows_live && status != "live" => {
                Err(ProjectorError::NotLive { version })
            }
            Some(_) => Ok(tx),
        }
    }

    /// Projects `log` until `shutdown` fires (or, with `until_caught_up`, until the read
    /// models reflect the log as it was at start). A batch in progress is finished and
    /// committed before returning. A live projector follows a promotion: it re-attaches to the
    /// new live version and reads on from that version's checkpoints.
    pub async fn run<L: EventLog>(
        &self,
        log: &L,
        config: &ProjectorConfig,
        shutdown: CancellationToken,
    ) -> Result<RunStats, ProjectorError> {
        let mut stats = RunStats::default();
        loop {
            match self.run_attached(log, config, &shutdown, &mut stats).await {
                Err(ProjectorError::NotLive { version }) if self.follows_live => {
                    self.follow_promotion(version).await?;
                }
                done => return done.map(|()| stats),
            }
        }
    }

    async fn run_attached<L: EventLog>(
        &self,
        log: &L,
        config: &ProjectorConfig,
        shutdown: &CancellationToken,
        stats: &mut RunStats,
    ) -> Result<(), ProjectorError> {
        let version = self.version();
        let check_duplicates = !log.dedupes_on_append();
        let mut checkpoints = self.store.checkpoints(version).await?;
        let from: StartOffsets = checkpoints.iter().map(|(&p, &o)| (p, o + 1)).collect();
        // The live version holds customers across batches only while it catches up with the
        // log's end at start.
        let live_hold = self.follows_live && !log.shares_partitions() && config.hold_customers > 0;
        let end_at_start = if config.until_caught_up || live_hold {
            Some(Target {
                marks: log.high_water_marks().await?,
                empty: first_offset(log),
            })
        } else {
            None
        };
        let target = end_at_start.as_ref().filter(|_| config.until_caught_up);
        tracing::info!(version, ?from, "projector starting");
        if target.is_some_and(|t| caught_up(t, &checkpoints)) {
            return Ok(());
        }
        // A live projector shares the partitions with the other projectors of its group (a
        // Kafka consumer group; the embedded log has one partition and no groups), starting
        // each assigned partition from the version's checkpoint + 1, kept current below. A
        // candidate reads every partition itself.
        let positions: SharedStartOffsets = Arc::new(Mutex::new(from.clone()));
        let stream = if self.follows_live {
            log.read_shared(positions.clone()).await?
        } else {
            log.read(&from).await?
        };

        // The reader decodes on its own task while the previous batch is written, up to about
        // one batch ahead.
        let batch_size = config.batch_size.max(1);
        let (chunks, mut incoming) = mpsc::channel::<Vec<Record>>(batch_size / CHUNK + 1);
        let reader_stop = shutdown.child_token();
        let reader = tokio::spawn(read_chunks(stream, chunks, reader_stop.clone()));
        // Records received but not yet in a batch (kept outside the select so none is lost
        // when another branch wins).
        let mut carry: Vec<Record> = Vec::new();

        let mut held = Held {
            limit: if live_hold || (!self.follows_live && config.until_caught_up) {
                config.hold_customers
            } else {
                0
            },
            ..Held::default()
        };
        // How far this run has read, to know which batch reaches the target.
        let mut read_to = checkpoints.clone();

        let mut reevaluate = config.reevaluate_every.map(|every| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        let result = loop {
            let alive = tokio::select! {
                biased;
                () = shutdown.cancelled() => break Ok(()),
                Some(_) = async {
                    match reevaluate.as_mut() {
                        Some(interval) => Some(interval.tick().await),
                        None => None,
                    }
                }, if reevaluate.is_some() => {
                    // The pass starts from the stored states: held customers go there first.
                    if let Err(err) = self.write_held(&mut held, config.clock.now()).await {
                        break Err(err);
                    }
                    match self.reevaluate(config.clock.now()).await {
                        Ok(done) => tracing::info!(customers = done.customers,
                            transitions = done.transitions, "re-evaluation pass done"),
                        Err(err) => break Err(err),
                    }
                    continue;
                }
                alive = fill_batch(&mut incoming, &mut carry, batch_size, config.batch_wait,
                    Reached::new(target, &read_to)) => alive,
            };
            if !alive {
                break Err(ProjectorError::ReaderStopped);
            }
            let batch: Vec<Record> = if carry.len() <= batch_size {
                std::mem::take(&mut carry)
            } else {
                carry.drain(..batch_size).collect()
            };
            for record in &batch {
                let (partition, offset) = record.position();
                let entry = read_to.entry(partition).or_insert(offset);
                *entry = (*entry).max(offset);
            }
            // Past the target nothing held may wait; the live version also writes what it holds
            // once it has read up to the log's end at start, or has held it long enough. (Later
            // bursts are written batch by batch: under a steady load more records are always
            // waiting, and holding would only delay what readers see.)
            let behind = end_at_start
                .as_ref()
                .is_some_and(|end| !caught_up(end, &read_to));
            let held_long = held.since.is_some_and(|t| t.elapsed() >= LIVE_HOLD_AGE);
            let last = target.is_some_and(|t| caught_up(t, &read_to))
                || (self.follows_live && (!behind || held_long));
            let started = Instant::now();
            let done = match self
                .project_held(
                    batch,
                    config.clock.now(),
                    check_duplicates,
                    &mut held,
                    last,
                    self.follows_live.then_some(log),
                )
                .await
            {
                Ok(done) => done,
                Err(err) => break Err(err),
            };
            tracing::debug!(
                records = done.records,
                applied = done.applied,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "batch committed"
            );
            stats.batches += 1;
            stats.records += done.records;
            stats.applied += done.applied;
            stats.duplicates += done.duplicates;
            stats.held += done.held;
            stats.dead_letters += done.dead_letters;
            positions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(done.checkpoints_after.iter().map(|(&p, &o)| (p, o + 1)));
            if let Some(progress) = &config.progress {
                progress.fetch_add(done.records, Ordering::Relaxed);
            }
            if let Some(target) = target {
                checkpoints.extend(done.checkpoints_after.iter().map(|(&p, &o)| (p, o)));
                if caught_up(target, &checkpoints) {
                    break Ok(());
                }
            }
        };
        // A projector told to stop writes what it holds; after an error it holds nothing that
        // the stored checkpoints do not bring back.
        let result = match result {
            Ok(()) => self.write_held(&mut held, config.clock.now()).await,
            err => err,
        };
        reader_stop.cancel();
        drop(incoming);
        if let Err(err) = reader.await {
            tracing::warn!(error = %err, "the log reader task failed");
        }
        result
    }

    /// Writes the customers `held` holds, if any, with their checkpoints.
    async fn write_held(&self, held: &mut Held, as_of: i64) -> Result<(), ProjectorError> {
        if held.carry.is_empty() {
            return Ok(());
        }
        self.project_held(Vec::new(), as_of, false, held, true, None::<&AnyLog>)
            .await
            .map(|_| ())
    }

    /// Projects one batch in one transaction: rows, audit copy, transitions, dead letters,
    /// held events and checkpoints. `as_of` is the business time of the verdicts.
    pub async fn project_batch(
        &self,
        records: Vec<Record>,
        as_of: i64,
        check_duplicates: bool,
    ) -> Result<BatchOutcome, ProjectorError> {
        self.project_held(
            records,
            as_of,
            check_duplicates,
            &mut Held::default(),
            true,
            None::<&AnyLog>,
        )
        .await
    }

    /// Folds one batch into what `held` holds and, in the batch's transaction, writes all of
    /// it with the checkpoints when it holds `held.limit` customers or more, when `last`, or when
    /// the batch needs writing at once; otherwise the transaction writes nothing. The batch's
    /// new dead letters are published to `dead_letter_log` before the commit.
    async fn project_held<L: EventLog>(
        &self,
        mut records: Vec<Record>,
        as_of: i64,
        check_duplicates: bool,
        held: &mut Held,
        last: bool,
        dead_letter_log: Option<&L>,
    ) -> Result<BatchOutcome, ProjectorError> {
        let attached = self.attached();
        let version = attached.version;
        let now = now_unix();
        let started = Instant::now();
        let carried_over = held.tx.is_none() && !held.carry.is_empty();
        let mut tx = match held.tx.take() {
            Some(tx) => tx,
            None => self.begin(&attached).await?,
        };
        let reflected = tx.checkpoints_of(version).await?;
        if held.carry.is_empty() {
            held.base = reflected.clone();
        } else if reflected != held.base {
            return Err(ProjectorError::HeldConflict { version });
        }
        // The audit copy can only hold these events if the log may repeat them (Kafka), at
        // any position: each id is looked up; or if another version has been this far already,
        // at their own positions: the positions are read.
        let frontier = tx.audit_frontier().await?;
        // One pass over the records (read a batch ago, their memory is no longer in the cache):
        // records this version already reflects (another projector of it got there first, or
        // Kafka delivered them again) change nothing and are dropped; of the others, the
        // customers to load (not held) and the positions behind the audit frontier are noted.
        let read = records.len() as u64;
        let mut to_load: FastSet<String> = FastSet::default();
        let mut behind: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        let mut past_frontier = false;
        records.retain(|record| {
            let (partition, offset) = record.position();
            if reflected
                .get(&partition)
                .is_some_and(|&done| offset <= done)
            {
                return false;
            }
            if let Some(customer) = record.customer() {
                if !held.carry.holds(customer) && !to_load.contains(customer) {
                    to_load.insert(customer.to_string());
                }
            }
            if frontier.get(&partition).is_some_and(|&f| offset <= f) {
                let range = behind.entry(partition).or_insert((offset, offset));
                *range = (range.0.min(offset), range.1.max(offset));
            } else {
                past_frontier = true;
            }
            true
        });
        let already = read - records.len() as u64;
        let mut customers: Vec<String> = to_load.into_iter().collect();
        customers.sort_unstable();
        let customers: Vec<&str> = customers.iter().map(String::as_str).collect();
        // Open dead letters before this batch's: those hold a customer from its first record.
        let blocked = tx.open_dead_letters_of(version, &customers).await?;
        let DeadLettered {
            ids: dead_letters,
            new: new_dead_letters,
        } = dead_letter_batch(&mut tx, version, &mut records, now).await?;
        let audited = if check_duplicates {
            let ids: Vec<[u8; 16]> = records
                .iter()
                .filter_map(|r| match r {
                    Record::Event(e) => Some(*e.event.id.as_uuid().as_bytes()),
                    Record::Bad(_) => None,
                })
                .collect();
            Audited::Ids(tx.audited_event_ids(&ids).await?)
        } else if !behind.is_empty() {
            Audited::Positions(tx.audited_positions(&behind).await?.into_iter().collect())
        } else {
            Audited::default()
        };
        // Chain heads are read where this batch may add to a customer's audit copy: for a
        // customer met here first, and for a held one whose head was not read yet or, in a
        // carry folded in earlier transactions, was read then (another version may have added
        // to the audit copy since).
        let heads_of: Vec<&str> = if past_frontier || !audited.covers(&behind) {
            let mut heads: Vec<&str> = records
                .iter()
                .filter(|r| audited.may_add(r))
                .filter_map(Record::customer)
                .filter(|&c| !held.carry.holds(c) || carried_over || !held.carry.head_read(c))
                .collect();
            heads.sort_unstable();
            heads.dedup();
            heads
        } else {
            Vec::new()
        };
        let loaded = tx.load_customers(version, &customers, &heads_of).await?;
        let loaded_at = Instant::now();
        // A batch with bad records writes their dead letters with everything held, so that no
        // one resolving them reads a customer's rows while newer ones are held here.
        let hold = held.limit;
        let write_now = last || hold == 0 || !dead_letters.is_empty();
        let known = Known {
            loaded,
            unlisted_head: KnownHead::Unread,
            blocked,
            dead_letters,
            audited,
        };
        let (applied_before, held_before) = (held.carry.applied(), held.carry.held_events());
        let events = records
            .iter()
            .filter(|r| matches!(r, Record::Event(_)))
            .count() as u64;
        let bad_records = records.len() as u64 - events;
        // A batch written now is folded customer by customer and streams the rows done (audit
        // copy, transitions, and each customer's rows after its records) to this task, which
        // writes them while the fold goes on with the next customers. A batch that holds its
        // customers streams its audit rows the same way if it has any to write (past the
        // audit frontier); if not, it folds on both cores. A carry written at the end is
        // streamed too, as its customers are finished.
        let (parts, mut written_parts) = mpsc::channel::<BatchWrite>(2);
        let folding = {
            let attached = attached.clone();
            let mut carry = std::mem::take(&mut held.carry);
            tokio::task::spawn_blocking(move || {
                let eval = Evaluation {
                    policies: &attached.policies,
                    lineage: &attached.lineage,
                    as_of,
                };
                let mut streamed_held = 0;
                if write_now || past_frontier {
                    fold::fold_by_customer(
                        records,
                        known,
                        &eval,
                        &mut carry,
                        !write_now,
                        STREAMED_RECORDS,
                        |rows| {
                            streamed_held += rows.held.len();
                            // A writer that failed stops the fold; its error is the batch's.
                            parts.blocking_send(rows).is_ok()
                        },
                    )?;
                } else {
                    fold::fold_into_sharded(records, known, &eval, true, &mut carry)?;
                }
                let applied = carry.applied() - applied_before;
                let held_events = (streamed_held + carry.held_events() - held_before) as u64;
                if write_now
                    || carry.must_write()
                    || carry.customers() >= hold
                    || carry.pending_rows() >= HELD_ROWS
                {
                    // Its rows go to the writer in parts as the customers are finished.
                    let last = carry.finish_in_parts(&eval, FINISHED_ROWS, |rows| {
                        parts.blocking_send(rows).is_ok()
                    });
                    Ok::<_, ProjectorError>((None, Some(last), applied, held_events))
                } else {
                    Ok((Some(carry), None, applied, held_events))
                }
            })
        };
        let mut customers_written = 0;
        while let Some(rows) = written_parts.recv().await {
            customers_written += rows.customers.len();
            tx.write(version, &rows, now).await?;
        }
        let (carry, write, applied, held_events) = folding.await??;
        let folded_at = Instant::now();
        // Where the version is now, including partitions whose records of this batch were all
        // reflected already (a checkpoint never moves back).
        let mut checkpoints_after = reflected;
        // The read store holds every dead letter; the log's own dead-letter place (a Kafka
        // topic) gets a copy from the live version, for the log's tooling. Published before the
        // commit that moves the checkpoint past them: a crash in between publishes them again
        // on the retry (at least once), where after the commit it would lose them.
        if let Some(log) = dead_letter_log {
            for bad in &new_dead_letters {
                if let Err(err) = log.publish_dead_letter(bad).await {
                    tracing::error!(position = %bad.position, error = %err,
                        "publishing a dead letter to the log failed; the read store keeps it");
                }
            }
        }
        match &write {
            Some(write) => {
                tx.write(version, write, now).await?;
                let written_at = Instant::now();
                tx.commit().await?;
                let committed_at = Instant::now();
                if let Err(err) = self.store.bound_wal(WAL_LIMIT_BYTES).await {
                    tracing::warn!(error = %err, "bounding the read store's WAL failed");
                }
                // The fold's time includes writing the rows streamed to this task meanwhile.
                tracing::debug!(
                    load_ms = (loaded_at - started).as_millis() as u64,
                    fold_ms = (folded_at - loaded_at).as_millis() as u64,
                    write_ms = (written_at - folded_at).as_millis() as u64,
                    commit_ms = (committed_at - written_at).as_millis() as u64,
                    wal_ms = committed_at.elapsed().as_millis() as u64,
                    customers = customers_written + write.customers.len(),
                    "batch phases"
                );
                for (&partition, &offset) in &write.checkpoints {
                    let entry = checkpoints_after.entry(partition).or_insert(offset);
                    *entry = (*entry).max(offset);
                }
            }
            None if self.follows_live => held.tx = Some(tx),
            None => tx.commit().await?,
        }
        match carry {
            Some(carry) => {
                held.carry = carry;
                held.since.get_or_insert(started);
            }
            None => held.since = None,
        }
        Ok(BatchOutcome {
            records: read,
            applied,
            held: held_events,
            duplicates: events.saturating_sub(applied + held_events) + already,
            dead_letters: bad_records,
            checkpoints_after,
        })
    }

    /// Re-evaluates every customer of the attached version at `as_of` from its stored state
    /// and records the transitions (time moves without events). One transaction per page.
    pub async fn reevaluate(&self, as_of: i64) -> Result<ReevaluateStats, ProjectorError> {
        self.reevaluate_counting(as_of, &AtomicU64::new(0)).await
    }

    /// [`Projector::reevaluate`], adding the customers of each committed page to `done` (a
    /// progress bar's position).
    pub async fn reevaluate_counting(
        &self,
        as_of: i64,
        done: &AtomicU64,
    ) -> Result<ReevaluateStats, ProjectorError> {
        let attached = self.attached();
        let version = attached.version;
        let mut stats = ReevaluateStats::default();
        let mut after: Option<String> = None;
        loop {
            let mut tx = self.begin(&attached).await?;
            let page = tx
                .state_page(version, after.as_deref(), REEVALUATE_PAGE)
                .await?;
            let Some((last, ..)) = page.last() else {
                tx.commit().await?;
                break;
            };
            after = Some(last.clone());
            let ids: Vec<&str> = page.iter().map(|(id, ..)| id.as_str()).collect();
            let loaded = tx.load_customers(version, &ids, &[]).await?;
            let count = page.len() as u64;
            let attached = attached.clone();
            let write: BatchWrite = tokio::task::spawn_blocking(move || {
                let eval = Evaluation {
                    policies: &attached.policies,
                    lineage: &attached.lineage,
                    as_of,
                };
                fold::reevaluate(page, loaded, &eval)
            })
            .await??;
            stats.customers += count;
            stats.transitions += write.transitions.len() as u64;
            tx.write(version, &write, now_unix()).await?;
            tx.commit().await?;
            done.fetch_add(count, Ordering::Relaxed);
        }
        Ok(stats)
    }
}

/// The live version and its policies (creating version 1 under `given` on a fresh store).
async fn attach_live(store: &ReadStore, given: &Policies) -> Result<Attached, ProjectorError> {
    let lineage = lineage_of(given);
    let live = store
        .ensure_live_version(&lineage, &documents_of(given))
        .await?;
    let policies = policies_of(store, &live, given).await?;
    if !policies.same_versions(given) {
        tracing::warn!(
            version = live.version,
            live = ?live.lineage,
            given = ?lineage,
            "the live projection version is built with other policies; projecting with its \
             own (run `clientlog rebuild` to build and promote a version under the given ones)"
        );
    }
    if live.lineage.code_version != CODE_VERSION {
        tracing::warn!(
            version = live.version,
            code_version = live.lineage.code_version,
            running = CODE_VERSION,
            "the live projection version was built by other code; \
             rebuild to make its rows uniform"
        );
    }
    Ok(Attached {
        version: live.version,
        lineage: lineage_of(&policies),
        policies,
    })
}

/// Dead-letters the batch's bad records in `version` and returns their ids by position. A
/// record another version already resolved gets the same resolution here: a skip is skipped
/// again, and a record retried successfully is decoded and applied in its place in the batch
/// (an operator's decision is not undone by a rebuild).
async fn dead_letter_batch(
    tx: &mut clientlog_readstore::StoreTx,
    version: i64,
    records: &mut [Record],
    now: i64,
) -> Result<DeadLettered, ProjectorError> {
    let mut dead_letters = HashMap::new();
    let mut new = Vec::new();
    for record in records.iter_mut() {
        let Record::Bad(bad) = record else { continue };
        let letter = NewDeadLetter {
            log_partition: bad.position.partition,
            log_offset: bad.position.offset,
            customer_id: bad.key.clone(),
            reason: bad.reason.to_string(),
            bytes: bad.bytes.clone(),
        };
        let (id, fresh) = tx.insert_dead_letter(version, &letter, now).await?;
        let position = (bad.position.partition, bad.position.offset);
        let resolved = tx.resolved_elsewhere(version, position).await?;
        match resolved {
            Some((other, status)) if status == "skipped" => {
                if tx.dead_letter(id).await?.status == "open" {
                    tx.record_dead_letter_action(
                        id,
                        "skip",
                        &format!("skipped as in version {other}"),
                        0,
                        Some("skipped"),
                        now,
                    )
                    .await?;
                }
                continue;
            }
            Some((other, _retried)) => {
                if let Ok(event) = clientlog_domain::Event::decode(&bad.bytes) {
                    if tx.dead_letter(id).await?.status == "open" {
                        tx.record_dead_letter_action(
                            id,
                            "retry",
                            &format!("applied as in version {other}"),
                            0,
                            Some("retried"),
                            now,
                        )
                        .await?;
                    }
                    *record = Record::Event(StoredEvent {
                        position: bad.position,
                        recorded_at: time::OffsetDateTime::from_unix_timestamp(now)
                            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                        bytes: bad.bytes.clone(),
                        mode: WireMode::Structured,
                        event,
                    });
                    continue;
                }
            }
            None => {}
        }
        tracing::warn!(position = %bad.position, customer = ?bad.key, dead_letter = id,
            reason = %bad.reason, "dead-lettered a record that is not a valid event");
        dead_letters.insert(position, id);
        if fresh {
            new.push((**bad).clone());
        }
    }
    Ok(DeadLettered {
        ids: dead_letters,
        new,
    })
}

/// The dead letters of a batch: ids by position, and the records dead-lettered for the first
/// time (published to the log's dead-letter place once the batch is committed).
struct DeadLettered {
    ids: HashMap<(i32, i64), i64>,
    new: Vec<BadRecord>,
}

/// What one batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub records: u64,
    pub applied: u64,
    pub duplicates: u64,
    pub held: u64,
    pub dead_letters: u64,
    pub checkpoints_after: BTreeMap<i32, i64>,
}

/// The first offset of a partition of `log` (the embedded log starts at 1, a Kafka topic at 0).
pub(crate) fn first_offset(log: &impl EventLog) -> i64 {
    if log.dedupes_on_append() {
        clientlog_eventlog::sqlite::FIRST_OFFSET
    } else {
        0
    }
}

/// The target of an `until_caught_up` run: the high-water marks at start, and the mark of a
/// partition that never held a record (the embedded log starts at offset 1, a Kafka topic at 0;
/// a Kafka partition whose records all expired is not recognised as empty).
struct Target {
    marks: BTreeMap<i32, i64>,
    empty: i64,
}

/// Every partition that had records at start has its checkpoint at (or past) the last of them.
fn caught_up(target: &Target, checkpoints: &BTreeMap<i32, i64>) -> bool {
    target
        .marks
        .iter()
        .all(|(partition, &next)| match checkpoints.get(partition) {
            Some(&done) => done + 1 >= next,
            None => next <= target.empty,
        })
}

/// Records per chunk the reader hands over.
const CHUNK: usize = 1024;

/// Reads the log into chunks of records that are ready now (at most [`CHUNK`]), so the
/// worker can take everything that arrived while it was writing. Stops when `stop` fires or
/// the receiver is gone.
async fn read_chunks(
    mut stream: clientlog_eventlog::EventStream,
    chunks: mpsc::Sender<Vec<Record>>,
    stop: CancellationToken,
) {
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        // Wait for the first record; then take those that are ready without waiting.
        while chunk.len() < CHUNK {
            let next = if chunk.is_empty() {
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return,
                    next = stream.next() => next,
                }
            } else {
                match stream.next().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            };
            match next {
                Some(Ok(event)) => chunk.push(Record::Event(event)),
                Some(Err(ReadError::BadRecord(bad))) => chunk.push(Record::Bad(bad)),
                Some(Err(ReadError::Log(err))) => {
                    tracing::warn!(error = %err, "reading the log failed; the reader retries");
                }
                None => {
                    tracing::error!("the log stream ended");
                    return;
                }
            }
        }
        if !chunk.is_empty() && chunks.send(chunk).await.is_err() {
            return;
        }
    }
}

/// Whether the records taken so far reach an `until_caught_up` run's target: past it no record
/// is coming that the run needs, so a batch does not wait for more.
struct Reached<'a> {
    target: Option<&'a Target>,
    read_to: BTreeMap<i32, i64>,
}

impl<'a> Reached<'a> {
    fn new(target: Option<&'a Target>, read_to: &BTreeMap<i32, i64>) -> Self {
        Self {
            target,
            read_to: if target.is_some() {
                read_to.clone()
            } else {
                BTreeMap::new()
            },
        }
    }

    /// Takes in `records`, the next ones read; true once the target is reached.
    fn take(&mut self, records: &[Record]) -> bool {
        let Some(target) = self.target else {
            return false;
        };
        for record in records {
            let (partition, offset) = record.position();
            let entry = self.read_to.entry(partition).or_insert(offset);
            *entry = (*entry).max(offset);
        }
        caught_up(target, &self.read_to)
    }
}

/// Fills `carry` towards a batch: waits for a first chunk if it is empty, takes every chunk
/// already waiting, and waits at most `wait` for more while below `size`, unless what it holds
/// reaches the run's target. Returns `false` when the reader is gone and nothing is left.
/// Cancel-safe: whatever was received is in `carry`.
async fn fill_batch(
    chunks: &mut mpsc::Receiver<Vec<Record>>,
    carry: &mut Vec<Record>,
    size: usize,
    wait: Duration,
    mut reached: Reached<'_>,
) -> bool {
    if carry.is_empty() {
        match chunks.recv().await {
            Some(chunk) => carry.extend(chunk),
            None => return false,
        }
    }
    let mut done = reached.take(carry);
    let deadline = tokio::time::Instant::now() + wait;
    while carry.len() < size {
        let chunk = match chunks.try_recv() {
            Ok(chunk) => chunk,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) if done => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(deadline, chunks.recv()).await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) | Err(_) => break,
                }
            }
        };
        done = reached.take(&chunk);
        carry.extend(chunk);
    }
    true
}
