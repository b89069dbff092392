//! A read store owned by one test (feature `test-support`): a SQLite file in a temporary
//! directory, or a fresh PostgreSQL database `clientlog_test_<uuid>` on the server named by
//! `CLIENTLOG_TEST_DATABASE_URL` (skipped, or failed under `CLIENTLOG_REQUIRE_SERVICES=1`,
//! when it is not set — the rule of `clientlog_eventlog::test_support::service`).

use std::path::Path;

use sqlx::{Connection, PgConnection};

use crate::{ReadStore, StoreConfig, StoreError};

pub use clientlog_eventlog::test_support::{database_url, service, DATABASE_URL};

/// Which database a test store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store owned by one test. Call [`TestStore::cleanup`] at the end to drop a PostgreSQL
/// database (a SQLite store goes with its directory).
pub struct TestStore {
    pub config: StoreConfig,
    /// `--database-url` for the binary (PostgreSQL only).
    pub url: Option<String>,
    admin: Option<(String, String)>,
    dir: tempfile::TempDir,
}

impl TestStore {
    /// A store of `backend`, or `None` when the test is skipped for want of PostgreSQL.
    pub async fn new(test: &str, backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        match backend {
            Backend::Sqlite => Some(Self {
                config: StoreConfig::Sqlite {
                    path: dir.path().join("readstore.db"),
                },
                url: None,
                admin: None,
                dir,
            }),
            Backend::Postgres => {
                let admin = service(test, DATABASE_URL)?;
                let name = format!("clientlog_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("{test}: cannot connect to {admin}: {e}"));
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{test}: cannot create database {name}: {e}"));
                let _ = conn.close().await;
                let url = database_url(&admin, &name);
                Some(Self {
                    config: StoreConfig::Postgres { url: url.clone() },
                    url: Some(url),
                    admin: Some((admin, name)),
                    dir,
                })
            }
        }
    }

    /// Two stores of `backend` (a test's subject and its reference), or `None` when the test is
    /// skipped for want of PostgreSQL.
    pub async fn pair(test: &str, backend: Backend) -> Option<(Self, Self)> {
        let first = Self::new(test, backend).await?;
        let second = Self::new(test, backend).await?;
        Some((first, second))
    }

    /// A scratch directory that lives as long as the store.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub async fn open(&self) -> Result<ReadStore, StoreError> {
        ReadStore::open(&self.config).await
    }

    /// Creates the schema as it was before the migration described as `name` (see the
    /// migration lists in store.rs); [`TestStore::open`] then applies the rest.
    pub async fn migrate_before(&self, name: &str) -> Result<(), StoreError> {
        crate::store::migrate_before(&self.config, name).await
    }

    /// Drops the PostgreSQL database.
    pub async fn cleanup(self) {
        if let Some((admin, name)) = &self.admin {
            if let Ok(mut conn) = PgConnection::connect(admin).await {
                if let Err(err) =
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await
                {
                    eprintln!("could not drop test database {name}: {err}");
                }
                let _ = conn.close().await;
            }
        }
    }
}
