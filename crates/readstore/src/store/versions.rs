//! Projection versions: the live one, candidates being built beside it, retired ones; the policy
//! documents each was built with; a build's progress; promotion and dropping. Promotion is one
//! transaction under the store's write lock, so readers and projectors see either the old or
//! the new live version, never both or neither.

use std::collections::BTreeMap;

use sqlx::{Postgres, QueryBuilder, Row, Sqlite};

use super::{now_unix, Backend, ReadStore, StoreTx, TxBackend};
use crate::error::{db, StoreError};
use crate::model::{BuildProgress, Lineage, PolicyDocument, ProjectionVersion};

const VERSION_SELECT: &str = "SELECT version, status, code_version, state_format, \
     grading_version, lifecycle_version, churn_version, created_at, promoted_at, retired_at, \
     build_done, build_total, build_started_at, build_updated_at, build_finished_at, build_error \
     FROM projection_versions";

/// Tables whose rows belong to one version, children first.
const VERSIONED_TABLES: [&str; 5] = [
    "customers",
    "transitions",
    "checkpoints",
    "held_events",
    "dead_letters",
];

/// Why a version cannot be promoted or dropped.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("projection version {0} does not exist")]
    NotFound(i64),
    #[error("projection version {0} is already live")]
    AlreadyLive(i64),
    #[error("projection version {0} is live; promote another version first")]
    Live(i64),
    #[error(
        "projection version {version} is behind the live version on partition {partition} \
         (offset {candidate} against {live}); let it catch up, or promote it anyway and let \
         the projectors catch it up"
    )]
    Behind {
        version: i64,
        partition: i32,
        candidate: i64,
        live: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn version_of<R: Row>(r: &R) -> Result<ProjectionVersion, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let e = || db("reading a projection version");
    Ok(ProjectionVersion {
        version: r.try_get(0).map_err(e())?,
        status: r.try_get(1).map_err(e())?,
        lineage: Lineage {
            code_version: r.try_get(2).map_err(e())?,
            state_format: r.try_get(3).map_err(e())?,
            grading_version: r.try_get(4).map_err(e())?,
            lifecycle_version: r.try_get(5).map_err(e())?,
            churn_version: r.try_get(6).map_err(e())?,
        },
        created_at: r.try_get(7).map_err(e())?,
        promoted_at: r.try_get(8).map_err(e())?,
        retired_at: r.try_get(9).map_err(e())?,
        build: BuildProgress {
            done: r.try_get(10).map_err(e())?,
            total: r.try_get(11).map_err(e())?,
            started_at: r.try_get(12).map_err(e())?,
            updated_at: r.try_get(13).map_err(e())?,
            finished_at: r.try_get(14).map_err(e())?,
            error: r.try_get(15).map_err(e())?,
        },
    })
}

impl ReadStore {
    /// The live projection version, created (as version 1, with `policies` stored) if the
    /// store has none. A live version built under other policies is returned as it is.
    pub async fn ensure_live_version(
        &self,
        lineage: &Lineage,
        policies: &[PolicyDocument],
    ) -> Result<ProjectionVersion, StoreError> {
        let mut tx = self.begin().await?;
        let live = match tx.versions_where("status = 'live'").await?.pop() {
            Some(live) => live,
            None => {
                let version = tx.insert_version("live", lineage, policies).await?;
                tx.version(version).await?.ok_or_else(|| {
                    StoreError::Invalid("the new live projection version vanished".to_string())
                })?
            }
        };
        tx.commit().await?;
        Ok(live)
    }

    /// A new candidate version (built beside the live one), with `policies` stored.
    pub async fn create_candidate(
        &self,
        lineage: &Lineage,
        policies: &[PolicyDocument],
    ) -> Result<ProjectionVersion, StoreError> {
        let mut tx = self.begin().await?;
        let version = tx.insert_version("candidate", lineage, policies).await?;
        let created = tx.version(version).await?.ok_or_else(|| {
            StoreError::Invalid("the new candidate projection version vanished".to_string())
        })?;
        tx.commit().await?;
        Ok(created)
    }

    /// The live projection version, if any.
    pub async fn live_version(&self) -> Result<Option<ProjectionVersion>, StoreError> {
        Ok(self.versions_where("status = 'live'").await?.pop())
    }

    /// Every projection version, oldest first.
    pub async fn versions(&self) -> Result<Vec<ProjectionVersion>, StoreError> {
        self.versions_where("1 = 1").await
    }

    /// One projection version.
    pub async fn version(&self, version: i64) -> Result<Option<ProjectionVersion>, StoreError> {
        Ok(self
            .versions_where(&format!("version = {version}"))
            .await?
            .pop())
    }

    /// How many customers `version` holds.
    pub async fn customer_count(&self, version: i64) -> Result<i64, StoreError> {
        per_backend!(&self.backend, Backend, pool => {
            let mut q = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM customers WHERE version = ");
            q.push_bind(version);
            q.build()
                .fetch_one(pool)
                .await
                .and_then(|r| r.try_get(0))
                .map_err(db("counting customers"))
        })
    }

    /// The version that was live at `at` (Unix seconds): promoted by then and not yet retired.
    pub async fn version_live_at(&self, at: i64) -> Result<Option<ProjectionVersion>, StoreError> {
        Ok(self
            .versions_where(&format!(
                "promoted_at IS NOT NULL AND promoted_at <= {at} \
                 AND (retired_at IS NULL OR retired_at > {at})"
            ))
            .await?
            .pop())
    }

    /// Versions matching a condition built from trusted parts only (no user text).
    async fn versions_where(&self, condition: &str) -> Result<Vec<ProjectionVersion>, StoreError> {
        per_backend!(&self.backend, Backend, pool => {
            QueryBuilder::<Db>::new(format!("{VERSION_SELECT} WHERE {condition} ORDER BY version"))
                .build()
                .fetch_all(pool)
                .await
                .map_err(db("reading projection versions"))?
                .iter()
                .map(version_of)
                .collect()
        })
    }

    /// The stored texts of the policies named by `lineage` (fewer than three if a version was
    /// created before policies were stored).
    pub async fn policy_documents(
        &self,
        lineage: &Lineage,
    ) -> Result<Vec<PolicyDocument>, StoreError> {
        per_backend!(&self.backend, Backend, pool => {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT kind, version, source FROM policy_documents WHERE ",
            );
            let wanted = [
                ("grading", &lineage.grading_version),
                ("lifecycle", &lineage.lifecycle_version),
                ("churn", &lineage.churn_version),
            ];
            for (i, (kind, version)) in wanted.into_iter().enumerate() {
                if i > 0 {
                    q.push(" OR ");
                }
                q.push("(kind = ").push_bind(kind);
                q.push(" AND version = ").push_bind(version.as_str()).push(")");
            }
            q.push(" ORDER BY kind");
            q.build()
                .fetch_all(pool)
                .await
                .map_err(db("reading policy documents"))?
                .iter()
                .map(|r| {
                    let e = || db("reading a policy document");
                    Ok(PolicyDocument {
                        kind: r.try_get(0).map_err(e())?,
                        version: r.try_get(1).map_err(e())?,
                        source: r.try_get(2).map_err(e())?,
                    })
                })
                .collect()
        })
    }

    /// Records how far the build of `version` has come.
    pub async fn record_build(
        &self,
        version: i64,
        progress: &BuildProgress,
    ) -> Result<(), StoreError> {
        // In a transaction that takes the write lock first. A plain UPDATE on SQLite waits for
        // the batch being written while holding a read snapshot, which no checkpoint can get
        // past; it then often fails as its snapshot is stale by the time the lock is free.
        let mut tx = self.begin().await?;
        per_backend!(&mut tx.inner, TxBackend, c => {
            let mut q = QueryBuilder::<Db>::new("UPDATE projection_versions SET build_done = ");
            q.push_bind(progress.done);
            q.push(", build_total = ").push_bind(progress.total);
            q.push(", build_started_at = ").push_bind(progress.started_at);
            q.push(", build_updated_at = ").push_bind(progress.updated_at);
            q.push(", build_finished_at = ").push_bind(progress.finished_at);
            q.push(", build_error = ").push_bind(progress.error.as_deref());
            q.push(" WHERE version = ").push_bind(version);
            q.build()
                .execute(&mut **c)
                .await
                .map_err(db("recording a build's progress"))?;
        });
        tx.commit().await
    }

    /// Makes `version` the live one and retires the current live version, in one transaction.
    /// Unless `allow_behind`, refuses a version whose checkpoints are behind the live
    /// version's on any partition (readers would see older data until projectors catch it up).
    pub async fn promote(
        &self,
        version: i64,
        allow_behind: bool,
    ) -> Result<ProjectionVersion, PromoteError> {
        let mut tx = self.begin().await?;
        let target = tx
            .version(version)
            .await?
            .ok_or(PromoteError::NotFound(version))?;
        if target.status == "live" {
            return Err(PromoteError::AlreadyLive(version));
        }
        let live = tx.versions_where("status = 'live'").await?.pop();
        if let (Some(live), false) = (&live, allow_behind) {
            let theirs = tx.checkpoints_of(live.version).await?;
            let ours = tx.checkpoints_of(version).await?;
            for (&partition, &live_offset) in &theirs {
                let candidate = ours.get(&partition).copied().unwrap_or(-1);
                if candidate < live_offset {
                    return Err(PromoteError::Behind {
                        version,
                        partition,
                        candidate,
                        live: live_offset,
                    });
                }
            }
        }
        let now = now_unix();
        per_backend!(&mut tx.inner, TxBackend, c => {
            let mut q = QueryBuilder::<Db>::new(
                "UPDATE projection_versions SET status = 'retired', retired_at = ",
            );
            q.push_bind(now).push(" WHERE status = 'live'");
            q.build().execute(&mut **c).await.map_err(db("retiring the live version"))?;
            let mut q = QueryBuilder::<Db>::new(
                "UPDATE projection_versions SET status = 'live', retired_at = NULL, promoted_at = ",
            );
            q.push_bind(now).push(" WHERE version = ").push_bind(version);
            q.build().execute(&mut **c).await.map_err(db("promoting a version"))?;
        });
        let promoted = tx
            .version(version)
            .await?
            .ok_or(PromoteError::NotFound(version))?;
        tx.commit().await?;
        Ok(promoted)
    }

    /// Deletes every row of a version that is not live; returns the customer rows it had.
    pub async fn drop_version(&self, version: i64) -> Result<i64, PromoteError> {
        let mut tx = self.begin().await?;
        let target = tx
            .version(version)
            .await?
            .ok_or(PromoteError::NotFound(version))?;
        if target.status == "live" {
            return Err(PromoteError::Live(version));
        }
        let customers = per_backend!(&mut tx.inner, TxBackend, c => {
            let mut q = QueryBuilder::<Db>::new(
                "DELETE FROM dead_letter_actions WHERE dead_letter_id IN \
                 (SELECT id FROM dead_letters WHERE version = ",
            );
            q.push_bind(version).push(")");
            q.build().execute(&mut **c).await.map_err(db("dropping a version"))?;
            let mut customers = 0;
            for table in VERSIONED_TABLES {
                let mut q = QueryBuilder::<Db>::new(format!("DELETE FROM {table} WHERE version = "));
                q.push_bind(version);
                let done = q.build().execute(&mut **c).await.map_err(db("dropping a version"))?;
                if table == "customers" {
                    customers = done.rows_affected() as i64;
                }
            }
            let mut q =
                QueryBuilder::<Db>::new("DELETE FROM projection_versions WHERE version = ");
            q.push_bind(version);
            q.build().execute(&mut **c).await.map_err(db("dropping a version"))?;
            customers
        });
        tx.commit().await?;
        Ok(customers)
    }
}

impl StoreTx {
    /// The status of `version` (`live`, `candidate`, `retired`), if it exists.
    pub async fn version_status(&mut self, version: i64) -> Result<Option<String>, StoreError> {
        Ok(self.version(version).await?.map(|v| v.status))
    }

    async fn version(&mut self, version: i64) -> Result<Option<ProjectionVersion>, StoreError> {
        Ok(self
            .versions_where(&format!("version = {version}"))
            .await?
            .pop())
    }

    /// Versions matching a condition built from trusted parts only (no user text).
    async fn versions_where(
        &mut self,
        condition: &str,
    ) -> Result<Vec<ProjectionVersion>, StoreError> {
        per_backend!(&mut self.inner, TxBackend, c => {
            QueryBuilder::<Db>::new(format!("{VERSION_SELECT} WHERE {condition} ORDER BY version"))
                .build()
                .fetch_all(&mut **c)
                .await
                .map_err(db("reading projection versions"))?
                .iter()
                .map(version_of)
                .collect()
        })
    }

    /// Per partition, the last offset whose effect is in `version` (read in this transaction).
    pub async fn checkpoints_of(&mut self, version: i64) -> Result<BTreeMap<i32, i64>, StoreError> {
        per_backend!(&mut self.inner, TxBackend, c => {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT log_partition, log_offset FROM checkpoints WHERE version = ",
            );
            q.push_bind(version);
            q.build()
                .fetch_all(&mut **c)
                .await
                .map_err(db("reading checkpoints"))?
                .iter()
                .map(|r| {
                    let e = || db("reading a checkpoint");
                    let partition: i64 = r.try_get(0).map_err(e())?;
                    Ok((partition as i32, r.try_get(1).map_err(e())?))
                })
                .collect()
        })
    }

    /// Inserts a version with the next number and stores its policy documents.
    async fn insert_version(
        &mut self,
        status: &str,
        lineage: &Lineage,
        policies: &[PolicyDocument],
    ) -> Result<i64, StoreError> {
        let now = now_unix();
        per_backend!(&mut self.inner, TxBackend, c => {
            let next: i64 = QueryBuilder::<Db>::new(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM projection_versions",
            )
            .build()
            .fetch_one(&mut **c)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(db("choosing a projection version"))?;
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO projection_versions (version, status, code_version, state_format, \
                 grading_version, lifecycle_version, churn_version, created_at, promoted_at) ",
            );
            q.push_values([()], |mut b, ()| {
                b.push_bind(next)
                    .push_bind(status)
                    .push_bind(lineage.code_version)
                    .push_bind(lineage.state_format)
                    .push_bind(lineage.grading_version.as_str())
                    .push_bind(lineage.lifecycle_version.as_str())
                    .push_bind(lineage.churn_version.as_str())
                    .push_bind(now)
                    .push_bind((status == "live").then_some(now));
            });
            q.build()
                .execute(&mut **c)
                .await
                .map_err(db("creating a projection version"))?;
            if !policies.is_empty() {
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO policy_documents (kind, version, source) ",
                );
                q.push_values(policies, |mut b, d| {
                    b.push_bind(d.kind.as_str())
                        .push_bind(d.version.as_str())
                        .push_bind(d.source.as_str());
                });
                q.push(" ON CONFLICT (kind, version) DO NOTHING");
                q.build()
                    .execute(&mut **c)
                    .await
                    .map_err(db("storing policy documents"))?;
            }
            Ok(next)
        })
    }
}
