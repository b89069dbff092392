//! Rebuild beside live, against a real embedded log and a real read store (SQLite, and
//! PostgreSQL when `CLIENTLOG_TEST_DATABASE_URL` is set): a new version is built under new
//! weights while the live projector runs and appends continue; it is promoted, the live
//! projector follows it, nothing is lost in the switch, and the result equals a clean build
//! under the new weights. Then the version bookkeeping: policies follow the live version,
//! the live version cannot be dropped, a retired one can.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use clientlog_demo::{Config, Generator, YearMonth};
use clientlog_domain::policy::{self, DEFAULT_GRADING, GRADING_FILE};
use clientlog_domain::{Event, Policies};
use clientlog_eventlog::{AppendEvent, EventLog, SqliteLog};
use clientlog_projector::rebuild::{run_rebuild, RebuildOptions};
use clientlog_projector::replay::{policies_live_at, replay_customer, ReplayAt};
use clientlog_projector::{Clock, Projector, ProjectorConfig};
use clientlog_readstore::test_support::{Backend, TestStore};
use clientlog_readstore::{PromoteError, ReadStore};
use tokio_util::sync::CancellationToken;

/// 2026-01-01T00:00:00Z: the as_of of every verdict in these tests.
const AS_OF: i64 = 1_767_225_600;

fn config(until_caught_up: bool) -> ProjectorConfig {
    ProjectorConfig {
        batch_size: 400,
        batch_wait: Duration::from_millis(20),
        reevaluate_every: None,
        clock: Clock::Fixed(AS_OF),
        until_caught_up,
        progress: None,
        hold_customers: 0,
    }
}

/// The shipped policies with loyalty weighed instead of monthly sales.
fn loyalty_policies() -> Policies {
    let text = DEFAULT_GRADING
        .replace("monthly_sales = 50", "monthly_sales = 20")
        .replace("loyalty = 10", "loyalty = 40");
    let mut policies = Policies::defaults();
    policies.grading = policy::parse(GRADING_FILE, &text).expect("grading");
    assert_ne!(
        policies.grading.version,
        Policies::defaults().grading.version
    );
    policies
}

fn demo_batches(customers: u32, months: u32, seed: u64) -> Vec<Vec<AppendEvent>> {
    let mut generator = Generator::new(Config {
        customers,
        months,
        seed,
        start: YearMonth::new(2024, 1).expect("month"),
    })
    .expect("generator");
    let mut batches = Vec::new();
    while let Some(batch) = generator.next_batch() {
        let batch: Vec<Event> = batch;
        // Monthly batches in smaller appends, so appends keep coming during the rebuild.
        for part in batch.chunks(200) {
            batches.push(part.iter().map(AppendEvent::from_event).collect());
        }
    }
    batches
}

/// A log in `a`'s directory holding the first half of `batches`; the other half, to append
/// later.
async fn log_with_first_half<'b>(
    a: &TestStore,
    batches: &'b [Vec<AppendEvent>],
) -> (SqliteLog, &'b [Vec<AppendEvent>]) {
    let log = SqliteLog::open_path(a.dir().join("events.db"))
        .await
        .expect("open log");
    let (first, rest) = batches.split_at(batches.len() / 2);
    for batch in first {
        log.append(batch).await.expect("append");
    }
    (log, rest)
}

/// The embedded log in `store`'s directory, holding [`demo_batches`] of these sizes.
async fn demo_log(store: &TestStore, customers: u32, months: u32, seed: u64) -> SqliteLog {
    let log = SqliteLog::open_path(store.dir().join("events.db"))
        .await
        .expect("open log");
    for batch in demo_batches(customers, months, seed) {
        log.append(&batch).await.expect("append");
    }
    log
}

/// Opens `a`'s read store and projects `log` into its live version until caught up.
async fn project_live(a: &TestStore, log: &SqliteLog) -> (ReadStore, Projector) {
    let store = a.open().await.expect("store");
    let live = Projector::new(store.clone(), Policies::defaults())
        .await
        .expect("live");
    live.run(log, &config(true), CancellationToken::new())
        .await
        .expect("live run");
    (store, live)
}

/// Asserts that `version` of `store` holds the rows `expected_version` of `expected` holds:
/// customers, states, audit copy, transitions and checkpoints.
async fn assert_same_models(
    store: &ReadStore,
    version: i64,
    expected: &ReadStore,
    expected_version: i64,
) {
    let caught_up = store.snapshot(version).await.expect("caught up");
    let expected = expected
        .snapshot(expected_version)
        .await
        .expect("reference snapshot");
    assert_eq!(caught_up.customers, expected.customers);
    assert_eq!(caught_up.states, expected.states);
    assert_eq!(caught_up.events, expected.events);
    assert_eq!(caught_up.transitions, expected.transitions);
    assert_eq!(caught_up.checkpoints, expected.checkpoints);
}

async fn wait_until_projected(store: &ReadStore, log: &SqliteLog, version: i64) {
    let last = log.high_water_marks().await.expect("hwm")[&0] - 1;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = store.checkpoints(version).await.expect("checkpoints");
        if done.get(&0).copied() == Some(last) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "version {version} stuck at {done:?}, log ends at {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

both_backends!(
    rebuild_beside_live_while_appends_continue,
    a_build_holding_customers_in_memory_writes_what_a_batch_by_batch_build_writes,
    a_held_build_whose_checkpoint_another_writer_moved_writes_nothing,
    a_build_overtaking_the_live_version_chains_on_from_the_audit_copy_as_it_is,
    a_live_version_catching_up_behind_the_audit_copy_reads_a_head_before_adding_to_its_chain,
    two_projectors_of_one_version_apply_each_event_once,
    a_live_projector_catching_up_holds_customers_and_writes_them_when_stopped,
    replay_uses_the_policies_live_then,
);

async fn rebuild_beside_live_while_appends_continue(test: &str, backend: Backend) {
    let Some((a, b)) = TestStore::pair(test, backend).await else {
        return;
    };
    let mut batches = demo_batches(200, 18, 3);
    let after_promotion = batches.pop().expect("a last batch");
    let (log, rest) = log_with_first_half(&a, &batches).await;
    let store = a.open().await.expect("store");

    // The live version keeps projecting while appends go on.
    let live = Projector::new(store.clone(), Policies::defaults())
        .await
        .expect("live projector");
    let old = live.version();
    let shutdown = CancellationToken::new();
    let live_run = tokio::spawn({
        let (live, log, shutdown) = (live.clone(), log.clone(), shutdown.clone());
        async move { live.run(&log, &config(false), shutdown).await }
    });
    // The versions are compared over the customers both hold: the live one holds the first
    // appends before the build starts (on a loaded machine the build could otherwise finish
    // before the live projector's first commit, and the comparison would be empty).
    wait_until_projected(&store, &log, old).await;
    let appender = tokio::spawn({
        let (log, rest) = (log.clone(), rest.to_vec());
        async move {
            for batch in rest {
                log.append(&batch).await.expect("append");
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
    });

    let new_policies = loyalty_policies();
    let candidate = Projector::candidate(store.clone(), new_policies.clone())
        .await
        .expect("candidate");
    let new = candidate.version();
    assert_ne!(new, old);
    let options = RebuildOptions {
        promote: true,
        clock: Clock::Fixed(AS_OF),
        batch_size: 700,
        // Fewer than the 200 customers: the build writes what it holds several times.
        hold_customers: 50,
        top_movers: 5,
    };
    let outcome = run_rebuild(&candidate, &log, &options, CancellationToken::new(), |_| {})
        .await
        .expect("rebuild");
    assert!(outcome.promoted);
    assert_eq!(outcome.previous, Some(old));
    assert!(outcome.stats.records > 0);
    // Every record was folded into the new version, though the live one audited most of them.
    assert_eq!(outcome.stats.applied, outcome.stats.records);
    assert_eq!(outcome.stats.duplicates, 0);

    // The live projector follows the promotion (at its next batch) and projects every later
    // append into the new version.
    appender.await.expect("appender");
    log.append(&after_promotion).await.expect("append");
    wait_until_projected(&store, &log, new).await;
    assert_eq!(live.version(), new);
    shutdown.cancel();
    live_run.await.expect("join").expect("live run");

    let versions = store.versions().await.expect("versions");
    let status = |v: i64| {
        versions
            .iter()
            .find(|x| x.version == v)
            .map(|x| x.status.clone())
    };
    assert_eq!(status(old).as_deref(), Some("retired"));
    assert_eq!(status(new).as_deref(), Some("live"));
    let built = versions.iter().find(|x| x.version == new).expect("new");
    assert!(built.build.finished_at.is_some() && built.build.error.is_none());
    assert!(built.build.done > 0 && built.build.total.is_some());

    // Equal to a clean build of the whole log under the new policies, row for row.
    let clean_store = b.open().await.expect("clean store");
    let clean = Projector::new(clean_store.clone(), new_policies.clone())
        .await
        .expect("clean projector");
    clean
        .run(&log, &config(true), CancellationToken::new())
        .await
        .expect("clean run");
    let built = store.snapshot(new).await.expect("snapshot");
    let expected = clean_store
        .snapshot(clean.version())
        .await
        .expect("clean snapshot");
    assert_eq!(built.customers.len(), 200);
    assert_eq!(built.customers, expected.customers);
    assert_eq!(built.states, expected.states);
    assert_eq!(built.events, expected.events);
    assert_eq!(built.transitions, expected.transitions);
    assert_eq!(built.checkpoints, expected.checkpoints);

    // The comparison: both versions hold every customer; loyalty weighed 40 moves scores.
    let comparison = outcome.comparison.expect("comparison");
    assert_eq!((comparison.from, comparison.to), (old, new));
    assert!(comparison.report.customers > 0);
    assert!(!comparison.report.top_movers.is_empty());

    // A projector started with the shipped policies projects the live version with its own.
    let attached = Projector::new(store.clone(), Policies::defaults())
        .await
        .expect("attach");
    assert_eq!(attached.version(), new);
    assert!(attached.attached().policies.same_versions(&new_policies));

    // The live version cannot be dropped; the retired one can, with all its rows.
    assert!(matches!(
        store.drop_version(new).await,
        Err(PromoteError::Live(v)) if v == new
    ));
    assert!(store.drop_version(old).await.expect("drop") > 0);
    let dropped = store.snapshot(old).await.expect("snapshot");
    assert!(dropped.customers.is_empty() && dropped.states.is_empty());
    assert!(store.version(old).await.expect("version").is_none());

    log.close().await;
    store.close().await;
    clean_store.close().await;
    a.cleanup().await;
    b.cleanup().await;
}

/// A candidate version built beside the live one, holding more customers in memory than a
/// batch touches and fewer than the book (so it writes what it holds several times) over a log with a bad record in the
/// middle (its dead letter is written at once, with everything held), ends with the same rows
/// as the live version built batch by batch.
async fn a_build_holding_customers_in_memory_writes_what_a_batch_by_batch_build_writes(
    test: &str,
    backend: Backend,
) {
    let Some(a) = TestStore::new(test, backend).await else {
        return;
    };
    let path = a.dir().join("events.db");
    let log = SqliteLog::open_path(&path).await.expect("open log");
    let batches = demo_batches(60, 12, 5);
    let half = batches.len() / 2;
    for (i, batch) in batches.iter().enumerate() {
        if i == half {
            clientlog_eventlog::test_support::sqlite_insert_raw(&path, b"{\"not\":\"an event\"}")
                .await
                .expect("bad record");
        }
        log.append(batch).await.expect("append");
    }
    let (store, live) = project_live(&a, &log).await;

    let candidate = Projector::candidate(store.clone(), Policies::defaults())
        .await
        .expect("candidate");
    // A batch of 20 records touches at most 20 customers: what is held spans batches.
    let held = ProjectorConfig {
        batch_size: 20,
        hold_customers: 45,
        ..config(true)
    };
    let stats = candidate
        .run(&log, &held, CancellationToken::new())
        .await
        .expect("held build");
    assert_eq!(stats.dead_letters, 1);

    let built = store.snapshot(candidate.version()).await.expect("built");
    let expected = store.snapshot(live.version()).await.expect("live");
    assert_eq!(built.customers.len(), 60);
    assert_eq!(built.customers, expected.customers);
    assert_eq!(built.states, expected.states);
    assert_eq!(built.transitions, expected.transitions);
    assert_eq!(built.checkpoints, expected.checkpoints);
    assert_eq!(built.dead_letters, expected.dead_letters);
    assert_eq!(built.held, expected.held);

    log.close().await;
    store.close().await;
    a.cleanup().await;
}

/// The embedded log, whose read streams pause after `first` records until `resume` is true.
struct PausingLog {
    log: SqliteLog,
    first: usize,
    resume: tokio::sync::watch::Receiver<bool>,
}

impl EventLog for PausingLog {
    async fn append(
        &self,
        batch: &[AppendEvent],
    ) -> Result<Vec<clientlog_eventlog::AppendOutcome>, clientlog_eventlog::LogError> {
        self.log.append(batch).await
    }

    async fn read(
        &self,
        from: &clientlog_eventlog::StartOffsets,
    ) -> Result<clientlog_eventlog::EventStream, clientlog_eventlog::LogError> {
        use futures::StreamExt;
        let first = self.first;
        let resume = self.resume.clone();
        let stream = self.log.read(from).await?;
        Ok(stream
            .enumerate()
            .then(move |(i, record)| {
                let mut resume = resume.clone();
                async move {
                    if i == first {
                        let _ = resume.wait_for(|go| *go).await;
                    }
                    record
                }
            })
            .boxed())
    }

    async fn high_water_marks(
        &self,
    ) -> Result<std::collections::BTreeMap<i32, i64>, clientlog_eventlog::LogError> {
        self.log.high_water_marks().await
    }

    fn dedupes_on_append(&self) -> bool {
        self.log.dedupes_on_append()
    }
}

/// A build of `candidate` holding its customers (batches of 25) over the log in `a`'s
/// directory, whose reader pauses after `first` records until `resume` is sent `true`. Returns
/// once the build has folded `folded` records or more.
async fn start_held_build(
    a: &TestStore,
    candidate: &Projector,
    first: usize,
    folded: usize,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<
        Result<clientlog_projector::RunStats, clientlog_projector::ProjectorError>,
    >,
) {
    let (resume, paused) = tokio::sync::watch::channel(false);
    let pausing = PausingLog {
        log: SqliteLog::open_path(a.dir().join("events.db"))
            .await
            .expect("open log again"),
        first,
        resume: paused,
    };
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let held = ProjectorConfig {
        batch_size: 25,
        batch_wait: Duration::ZERO,
        hold_customers: 1_000,
        progress: Some(progress.clone()),
        ..config(true)
    };
    let build = {
        let candidate = candidate.clone();
        tokio::spawn(async move {
            let result = candidate
                .run(&pausing, &held, CancellationToken::new())
                .await;
            pausing.log.close().await;
            result
        })
    };
    let started = Instant::now();
    while progress.load(std::sync::atomic::Ordering::Relaxed) < folded as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the held build folded fewer than {folded} records"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (resume, build)
}

/// A build holds customers in memory between writes, so its rows and checkpoint are written
/// together later. If another writer moves the version's checkpoint meanwhile, what the build
/// holds no longer follows on from what is stored: it fails and writes nothing, and the
/// version keeps what the other writer wrote.
async fn a_held_build_whose_checkpoint_another_writer_moved_writes_nothing(
    test: &str,
    backend: Backend,
) {
    let Some(a) = TestStore::new(test, backend).await else {
        return;
    };
    let log = demo_log(&a, 30, 6, 9).await;
    // The live version writes the audit copy, so the build's batches add none and are held.
    let (store, _live) = project_live(&a, &log).await;

    let candidate = Projector::candidate(store.clone(), Policies::defaults())
        .await
        .expect("candidate");
    let (resume, build) = start_held_build(&a, &candidate, 50, 50).await;
    assert!(
        store
            .checkpoints(candidate.version())
            .await
            .expect("checkpoints")
            .is_empty(),
        "the build holds its first batches in memory"
    );

    // Another projector of the same version writes every batch, to the end of the log.
    candidate
        .run(&log, &config(true), CancellationToken::new())
        .await
        .expect("batch-by-batch run");
    let written = store.snapshot(candidate.version()).await.expect("written");
    assert_eq!(written.customers.len(), 30);

    resume.send(true).expect("resume");
    let err = build
        .await
        .expect("build task")
        .expect_err("the held build must fail");
    assert!(
        matches!(err, clientlog_projector::ProjectorError::HeldConflict { version }
            if version == candidate.version()),
        "{err}"
    );
    let after = store.snapshot(candidate.version()).await.expect("after");
    assert_eq!(
        after.customers, written.customers,
        "the held build wrote nothing"
    );
    assert_eq!(after.checkpoints, written.checkpoints);

    log.close().await;
    store.close().await;
    a.cleanup().await;
}

/// A build holds each customer from the batch that first met it, chain head included. When the
/// live version adds to a customer's audit copy meanwhile and the build then overtakes it (on
/// events the live version has not applied yet), the build chains on from the audit copy as it
/// is: every chain stays whole, and the build equals the live version built on to the end.
async fn a_build_overtaking_the_live_version_chains_on_from_the_audit_copy_as_it_is(
    test: &str,
    backend: Backend,
) {
    let Some(a) = TestStore::new(test, backend).await else {
        return;
    };
    let batches = demo_batches(20, 6, 11);
    let (log, rest) = log_with_first_half(&a, &batches).await;
    let (middle, last) = rest.split_at(rest.len() / 2);
    let next_offset = |log: &SqliteLog| {
        let log = log.clone();
        async move { log.high_water_marks().await.expect("hwm")[&0] }
    };
    let (store, live) = project_live(&a, &log).await;
    let first_end = next_offset(&log).await - 1;
    for batch in middle {
        log.append(batch).await.expect("append");
    }
    let middle_end = next_offset(&log).await - 1;
    for batch in last {
        log.append(batch).await.expect("append");
    }

    // The build folds the first part (audited by the live version, so it holds every customer
    // it meets, chain heads included) and pauses near its end.
    let candidate = Projector::candidate(store.clone(), Policies::defaults())
        .await
        .expect("candidate");
    let first_part = usize::try_from(first_end).expect("offset");
    let (resume, build) = start_held_build(&a, &candidate, first_part - 5, first_part - 30).await;

    // Meanwhile the live version applies the middle part only, adding to the chains the build
    // holds heads of.
    let (go_on, held_back) = tokio::sync::watch::channel(false);
    let live_log = PausingLog {
        log: SqliteLog::open_path(a.dir().join("events.db"))
            .await
            .expect("open log for the live version"),
        first: usize::try_from(middle_end - first_end).expect("count"),
        resume: held_back,
    };
    let stop_live = CancellationToken::new();
    let live_run = tokio::spawn({
        let (live, stop_live) = (live.clone(), stop_live.clone());
        async move {
            let result = live.run(&live_log, &config(false), stop_live).await;
            live_log.log.close().await;
            result
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while store
        .checkpoints(live.version())
        .await
        .expect("checkpoints")
        .get(&0)
        != Some(&middle_end)
    {
        assert!(
            Instant::now() < deadline,
            "the live version did not apply the middle part"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_live.cancel();
    live_run.await.expect("live task").expect("live run");
    drop(go_on);

    // The build reads on past the live version: it writes the last part's audit copy.
    resume.send(true).expect("resume");
    build
        .await
        .expect("build task")
        .expect("the build chains on from the audit copy as it is");
    assert_eq!(
        store.verify_chains().await.expect("chains"),
        Vec::<(String, i64)>::new(),
        "every chain is whole"
    );
    live.run(&log, &config(true), CancellationToken::new())
        .await
        .expect("the live version on to the end");
    let built = store.snapshot(candidate.version()).await.expect("built");
    let expected = store.snapshot(live.version()).await.expect("live");
    assert_eq!(built.customers.len(), expected.customers.len());
    assert_eq!(built.states, expected.states);
    assert_eq!(built.checkpoints, expected.checkpoints);

    log.close().await;
    store.close().await;
    a.cleanup().await;
}

/// A live version catching up at start holds its customers in one open transaction. Behind
/// the audit frontier (another version applied those events first) it reads no chain heads;
/// a customer met there whose later events it is the first to apply has its head read before
/// its chain goes on. Every chain is whole, and the rows equal a projection that wrote every
/// batch.
async fn a_live_version_catching_up_behind_the_audit_copy_reads_a_head_before_adding_to_its_chain(
    test: &str,
    backend: Backend,
) {
    let Some((a, b)) = TestStore::pair(test, backend).await else {
        return;
    };
    let batches = demo_batches(20, 6, 5);
    let (log, rest) = log_with_first_half(&a, &batches).await;
    let store = a.open().await.expect("store");
    let live = Projector::new(store.clone(), Policies::defaults())
        .await
        .expect("live");
    // A candidate applies the first part before the live version does: the audit copy holds it.
    let candidate = Projector::candidate(store.clone(), loyalty_policies())
        .await
        .expect("candidate");
    candidate
        .run(&log, &config(true), CancellationToken::new())
        .await
        .expect("candidate run");
    for batch in rest {
        log.append(batch).await.expect("append");
    }
    let holding = ProjectorConfig {
        batch_size: 25,
        batch_wait: Duration::ZERO,
        hold_customers: 1_000,
        ..config(true)
    };
    live.run(&log, &holding, CancellationToken::new())
        .await
        .expect("the live version catches up");
    assert_eq!(
        store.verify_chains().await.expect("chains"),
        Vec::<(String, i64)>::new(),
        "every chain is whole"
    );

    let (expected_store, reference) = project_live(&b, &log).await;
    assert_same_models(&store, live.version(), &expected_store, reference.version()).await;

    log.close().await;
    store.close().await;
    expected_store.close().await;
    a.cleanup().await;
    b.cleanup().await;
}

/// The live projector catching up with the log's end at start holds its customers across
/// batches, in one open transaction with their audit copy: nothing shows meanwhile. Told to
/// stop, it writes what it holds with the checkpoint. Once caught up it writes every batch: an
/// event appended then shows without waiting for more. Everything ends equal to a projection
/// that wrote every batch.
async fn a_live_projector_catching_up_holds_customers_and_writes_them_when_stopped(
    test: &str,
    backend: Backend,
) {
    let Some((a, b)) = TestStore::pair(test, backend).await else {
        return;
    };
    let log = demo_log(&a, 40, 6, 3).await;
    let expected_store = b.open().await.expect("reference store");
    let reference = Projector::new(expected_store.clone(), Policies::defaults())
        .await
        .expect("reference");
    reference
        .run(&log, &config(true), CancellationToken::new())
        .await
        .expect("batch-by-batch run");

    let store = a.open().await.expect("store");
    let live = Projector::new(store.clone(), Policies::defaults())
        .await
        .expect("live");
    let (_resume, paused) = tokio::sync::watch::channel(false);
    let first = 120;
    let pausing = PausingLog {
        log: SqliteLog::open_path(a.dir().join("events.db"))
            .await
            .expect("open log again"),
        first,
        resume: paused,
    };
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let holding = ProjectorConfig {
        batch_size: 25,
        batch_wait: Duration::ZERO,
        hold_customers: 1_000,
        progress: Some(progress.clone()),
        ..config(false)
    };
    let stop = CancellationToken::new();
    let catching_up = {
        let (live, stop) = (live.clone(), stop.clone());
        tokio::spawn(async move {
            let result = live.run(&pausing, &holding, stop).await;
            pausing.log.close().await;
            result
        })
    };
    let started = Instant::now();
    while progress.load(std::sync::atomic::Ordering::Relaxed) < first as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the live projector folded nothing"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let during = store.snapshot(live.version()).await.expect("during");
    assert!(
        during.customers.is_empty() && during.checkpoints.is_empty() && during.events.is_empty(),
        "customers and their audit copy are held while catching up: {} rows, {} audit rows, \
         checkpoints {:?}",
        during.customers.len(),
        during.events.len(),
        during.checkpoints
    );

    stop.cancel();
    catching_up
        .await
        .expect("live task")
        .expect("stopped cleanly");
    let stopped = store.snapshot(live.version()).await.expect("stopped");
    assert_eq!(
        stopped.checkpoints.get(&0).copied(),
        Some(first as i64),
        "what was held is written when told to stop"
    );
    let customers_seen: std::collections::BTreeSet<&str> = stopped
        .events
        .iter()
        .map(|e| e.customer_id.as_str())
        .collect();
    assert_eq!(stopped.events.len(), first, "with their audit copy");
    assert_eq!(stopped.customers.len(), customers_seen.len());

    // On from the checkpoint, then one more event once caught up.
    let stop = CancellationToken::new();
    let following = {
        let (live, stop) = (live.clone(), stop.clone());
        let log = SqliteLog::open_path(a.dir().join("events.db"))
            .await
            .expect("open log for the live run");
        let config = ProjectorConfig {
            hold_customers: 1_000,
            ..config(false)
        };
        tokio::spawn(async move {
            let result = live.run(&log, &config, stop).await;
            log.close().await;
            result
        })
    };
    wait_until_projected(&store, &log, live.version()).await;
    assert_same_models(&store, live.version(), &expected_store, reference.version()).await;

    let later = AppendEvent::from_bytes(
        clientlog_eventlog::test_support::purchase_json("CUST-LATE", 1).into_bytes(),
    )
    .expect("a valid event");
    log.append(&[later])
        .await
        .expect("append after catching up");
    // A held customer would wait for records that never come: this waits for its row.
    wait_until_projected(&store, &log, live.version()).await;
    let late = store.snapshot(live.version()).await.expect("late");
    assert!(late.customers.iter().any(|c| c.customer_id == "CUST-LATE"));
    stop.cancel();
    following
        .await
        .expect("live task")
        .expect("stopped cleanly");

    log.close().await;
    store.close().await;
    expected_store.close().await;
    a.cleanup().await;
    b.cleanup().await;
}

/// Two projectors of the live version reading the same log at once (each reads every
/// partition): every event is applied once, and the rows equal a single projector's.
async fn two_projectors_of_one_version_apply_each_event_once(test: &str, backend: Backend) {
    let Some((a, b)) = TestStore::pair(test, backend).await else {
        return;
    };
    let log = demo_log(&a, 120, 12, 9).await;
    let store = a.open().await.expect("store");
    let one = Projector::new(store.clone(), Policies::defaults())
        .await
        .expect("one");
    let other = Projector::new(store.clone(), Policies::defaults())
        .await
        .expect("other");
    let large = config(true);
    let small = ProjectorConfig {
        batch_size: 150,
        ..config(true)
    };
    let (x, y) = tokio::join!(
        one.run(&log, &large, CancellationToken::new()),
        other.run(&log, &small, CancellationToken::new()),
    );
    let (x, y) = (x.expect("one"), y.expect("other"));
    assert!(x.applied + y.applied > 0);

    let clean_store = b.open().await.expect("clean store");
    let clean = Projector::new(clean_store.clone(), Policies::defaults())
        .await
        .expect("clean");
    let c = clean
        .run(&log, &config(true), CancellationToken::new())
        .await
        .expect("clean run");
    assert_eq!(x.applied + y.applied, c.applied);
    let both = store.snapshot(one.version()).await.expect("snapshot");
    let expected = clean_store
        .snapshot(clean.version())
        .await
        .expect("clean snapshot");
    assert_eq!(both.customers, expected.customers);
    assert_eq!(both.states, expected.states);
    assert_eq!(both.events, expected.events);

    log.close().await;
    store.close().await;
    clean_store.close().await;
    a.cleanup().await;
    b.cleanup().await;
}

/// Replay evaluates with the policies that were live at the time asked about, read back from
/// the texts stored with each version.
async fn replay_uses_the_policies_live_then(test: &str, backend: Backend) {
    let Some(a) = TestStore::new(test, backend).await else {
        return;
    };
    let store = a.open().await.expect("store");
    let first = Projector::new(store.clone(), Policies::defaults())
        .await
        .expect("first");
    let before = store
        .version(first.version())
        .await
        .expect("version")
        .and_then(|v| v.promoted_at)
        .expect("promoted");
    // Promotion times are whole seconds: let one pass.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new_policies = loyalty_policies();
    let second = Projector::candidate(store.clone(), new_policies.clone())
        .await
        .expect("candidate");
    store
        .promote(second.version(), false)
        .await
        .expect("promote");
    let after = store
        .version(second.version())
        .await
        .expect("version")
        .and_then(|v| v.promoted_at)
        .expect("promoted");
    assert!(after > before);

    // The fallback is deliberately other than both: it must not be used.
    let mut fallback = Policies::defaults();
    let other_weights = DEFAULT_GRADING
        .replace("monthly_sales = 50", "monthly_sales = 30")
        .replace("loyalty = 10", "loyalty = 30");
    fallback.grading = policy::parse(GRADING_FILE, &other_weights).expect("grading");
    let then = policies_live_at(&store, before, &fallback)
        .await
        .expect("then");
    assert!(then.same_versions(&Policies::defaults()));
    let now = policies_live_at(&store, after, &fallback)
        .await
        .expect("now");
    assert!(now.same_versions(&new_policies));

    let at = ReplayAt {
        as_of: AS_OF,
        known_at_nanos: Some(before * 1_000_000_000),
    };
    let replayed = replay_customer(&store, "CUST-000001", &fallback, at)
        .await
        .expect("replay");
    assert_eq!(
        replayed.policies.grading,
        Policies::defaults().grading.version
    );
    store.close().await;
    a.cleanup().await;
}
