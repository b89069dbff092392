//! Rebuild beside live: a new projection version is built from the start of the log under
//! (possibly new) policies while the live version keeps serving and updating; once it has
//! caught up with the log it is promoted in one transaction, and live projectors follow it.
//!
//! Nothing is lost in the switch: promotion requires the candidate's checkpoints to be at or
//! past the live version's (it retries after catching up again if appends moved the live
//! version on meanwhile), and a projector that finds its version retired re-attaches and reads
//! on from the new version's checkpoints. The build's progress is written to the version's row
//! about once a second, where `clientlog versions list` and the API read it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clientlog_domain::simulate::SimulationReport;
use clientlog_eventlog::EventLog;
use clientlog_readstore::{BuildProgress, ProjectionVersion, PromoteError};
use tokio_util::sync::CancellationToken;

use crate::analysis::compare_versions;
use crate::worker::{first_offset, now_unix, Clock, Projector, ProjectorConfig, RunStats};
use crate::ProjectorError;

/// Customers a rebuild holds in memory between writes unless told otherwise.
pub use crate::worker::DEFAULT_HOLD_CUSTOMERS;

/// Records per batch of a rebuild. A build holds its customers across batches (and writes each
/// once), so its batches need not be large; its memory is the held customers and one batch.
pub const DEFAULT_BATCH_SIZE: usize = 20_000;

/// How a rebuild runs.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Promote the new version once it has caught up (else it stays a candidate).
    pub promote: bool,
    /// The `as_of` of the verdicts (the wall clock, or a fixed business time).
    pub clock: Clock,
    pub batch_size: usize,
    /// Customers held in memory between writes (`ProjectorConfig::hold_customers`).
    pub hold_customers: usize,
    /// Customers whose score moved most, in the comparison with the previous live version.
    pub top_movers: usize,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            promote: true,
            clock: Clock::System,
            batch_size: DEFAULT_BATCH_SIZE,
            hold_customers: DEFAULT_HOLD_CUSTOMERS,
            top_movers: 20,
        }
    }
}

/// What a finished rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildOutcome {
    pub version: i64,
    /// The version that was live when the build finished.
    pub previous: Option<i64>,
    pub promoted: bool,
    pub stats: RunStats,
    pub elapsed: Duration,
    /// The previous live version's grades against the new version's.
    pub comparison: Option<VersionComparison>,
}

/// Two versions' grades compared customer by customer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VersionComparison {
    pub from: i64,
    pub to: i64,
    /// Customers in both: distributions, transition matrix (rows `from`, columns `to`) and
    /// the customers whose score moved most.
    pub report: SimulationReport,
    pub only_in_from: u64,
    pub only_in_to: u64,
}

/// How many times promotion is retried when the live version moved on meanwhile.
const PROMOTE_ATTEMPTS: usize = 100;

/// Builds the candidate `projector` (made by [`Projector::candidate`]) from the start of the log and (with `options.promote`)
/// promotes it. `on_progress` is called about once a second. Stopped by `shutdown`, the
/// candidate keeps what it built (not promoted) and the error says so.
pub async fn run_rebuild<L: EventLog>(
    projector: &Projector,
    log: &L,
    options: &RebuildOptions,
    shutdown: CancellationToken,
    on_progress: impl Fn(&BuildProgress) + Send + Sync + 'static,
) -> Result<RebuildOutcome, ProjectorError> {
    let store = projector.store().clone();
    let version = projector.version();
    let started = Instant::now();
    let first = first_offset(log);
    let total: i64 = log
        .high_water_marks()
        .await?
        .values()
        .map(|&next| (next - first).max(0))
        .sum();
    let counter = Arc::new(AtomicU64::new(0));
    let progress = BuildProgress {
        done: 0,
        total: Some(total),
        started_at: Some(now_unix()),
        updated_at: Some(now_unix()),
        finished_at: None,
        error: None,
    };
    store.record_build(version, &progress).await?;
    let reporter = {
        let store = store.clone();
        let counter = counter.clone();
        let mut progress = progress.clone();
        let stop = shutdown.child_token();
        let done = stop.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                progress.done = i64::try_from(counter.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
                progress.updated_at = Some(now_unix());
                on_progress(&progress);
                if let Err(err) = store.record_build(version, &progress).await {
                    tracing::warn!(error = %err, version, "recording the build's progress failed");
                }
            }
        });
        (task, done)
    };

    let config = ProjectorConfig {
        batch_size: options.batch_size,
        reevaluate_every: None,
        clock: options.clock,
        until_caught_up: true,
        progress: Some(counter.clone()),
        hold_customers: options.hold_customers,
        ..ProjectorConfig::default()
    };
    let result = build_and_promote(projector, log, &config, options, &shutdown).await;
    reporter.1.cancel();
    let _ = reporter.0.await;

    let mut finished = progress;
    finished.done = i64::try_from(counter.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
    finished.updated_at = Some(now_unix());
    finished.finished_at = Some(now_unix());
    finished.error = result.as_ref().err().map(ToString::to_string);
    store.record_build(version, &finished).await?;
    let (stats, promoted, previous) = result?;

    let comparison = match previous {
        Some(previous) if previous != version => {
            Some(compare_versions(&store, previous, version, options.top_movers).await?)
        }
        _ => None,
    };
    Ok(RebuildOutcome {
        version,
        previous,
        promoted,
        stats,
        elapsed: started.elapsed(),
        comparison,
    })
}

/// Catches the candidate up with the log and promotes it, catching up again whenever the live
/// version got ahead in between. Returns the run's counts, whether it was promoted and the
/// version that was live before.
async fn build_and_promote<L: EventLog>(
    projector: &Projector,
    log: &L,
    config: &ProjectorConfig,
    options: &RebuildOptions,
    shutdown: &CancellationToken,
) -> Result<(RunStats, bool, Option<i64>), ProjectorError> {
    let store = projector.store();
    let version = projector.version();
    let mut stats = RunStats::default();
    for _ in 0..PROMOTE_ATTEMPTS {
        let run = projector.run(log, config, shutdown.clone()).await?;
        stats.batches += run.batches;
        stats.records += run.records;
        stats.applied += run.applied;
        stats.duplicates += run.duplicates;
        stats.held += run.held;
        stats.dead_letters += run.dead_letters;
        if shutdown.is_cancelled() {
            return Err(ProjectorError::Interrupted { version });
        }
        let live = store.live_version().await?.map(|v| v.version);
        if !options.promote {
            return Ok((stats, false, live));
        }
        match store.promote(version, false).await {
            Ok(_) => return Ok((stats, true, live)),
            Err(PromoteError::Behind { .. }) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(ProjectorError::NeverCaughtUp {
        version,
        attempts: PROMOTE_ATTEMPTS,
    })
}

/// A projection version as JSON, with its build progress (rate and ETA derived): what
/// `clientlog versions list --json` prints and the API serves.
pub fn version_json(v: &ProjectionVersion) -> serde_json::Value {
    let b = &v.build;
    serde_json::json!({
        "version": v.version,
        "status": v.status,
        "code_version": v.lineage.code_version,
        "state_format": v.lineage.state_format,
        "policies": {
            "grading": v.lineage.grading_version,
            "lifecycle": v.lineage.lifecycle_version,
            "churn": v.lineage.churn_version,
        },
        "created_at": v.created_at,
        "promoted_at": v.promoted_at,
        "retired_at": v.retired_at,
        "build": {
            "state": match (&b.error, b.finished_at, b.total) {
                (Some(_), _, _) => "failed",
                (None, Some(_), _) => "done",
                (None, None, Some(_)) => "running",
                (None, None, None) => "none",
            },
            "records_done": b.done,
            "records_total": b.total,
            "started_at": b.started_at,
            "updated_at": b.updated_at,
            "finished_at": b.finished_at,
            "records_per_second": b.rate(),
            "eta_seconds": b.eta_seconds(),
            "error": b.error,
        },
    })
}
