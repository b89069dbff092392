//! Connections, migrations and every statement of the read store.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Postgres, QueryBuilder, Row, Sqlite, Transaction};

use crate::error::{db, StoreError};
use crate::model::*;

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "read models",
        include_str!("../../../projections/migrations/sqlite/0001_read_models.sql"),
    ),
    (
        2,
        "customer changes",
        include_str!("../../../projections/migrations/sqlite/0002_customer_changes.sql"),
    ),
    (
        3,
        "list indexes",
        include_str!("../../../projections/migrations/sqlite/0003_list_indexes.sql"),
    ),
    (
        4,
        "grade inputs",
        include_str!("../../../projections/migrations/sqlite/0004_grade_inputs.sql"),
    ),
    (
        5,
        "rebuilds",
        include_str!("../../../projections/migrations/sqlite/0005_rebuilds.sql"),
    ),
    (
        6,
        "audit positions",
        include_str!("../../../projections/migrations/sqlite/0006_audit_positions.sql"),
    ),
    (
        7,
        "chain heads from audit copy",
        include_str!("../../../projections/migrations/sqlite/0007_chain_heads_from_audit_copy.sql"),
    ),
    (
        8,
        "states in customers",
        include_str!("../../../projections/migrations/sqlite/0008_states_in_customers.sql"),
    ),
    (
        9,
        "audit frontier",
        include_str!("../../../projections/migrations/sqlite/0009_audit_frontier.sql"),
    ),
    (
        10,
        "change seq in customers",
        include_str!("../../../projections/migrations/sqlite/0010_change_seq_in_customers.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "read models",
        include_str!("../../../projections/migrations/postgres/0001_read_models.sql"),
    ),
    (
        2,
        "customer changes",
        include_str!("../../../projections/migrations/postgres/0002_customer_changes.sql"),
    ),
    (
        3,
        "list indexes",
        include_str!("../../../projections/migrations/postgres/0003_list_indexes.sql"),
    ),
    (
        4,
        "grade inputs",
        include_str!("../../../projections/migrations/postgres/0004_grade_inputs.sql"),
    ),
    (
        5,
        "rebuilds",
        include_str!("../../../projections/migrations/postgres/0005_rebuilds.sql"),
    ),
    (
        6,
        "inline cards",
        include_str!("../../../projections/migrations/postgres/0006_inline_cards.sql"),
    ),
    (
        7,
        "audit positions",
        include_str!("../../../projections/migrations/postgres/0007_audit_positions.sql"),
    ),
    (
        8,
        "chain heads from audit copy",
        include_str!(
            "../../../projections/migrations/postgres/0008_chain_heads_from_audit_copy.sql"
        ),
    ),
    (
        9,
        "states in customers",
        include_str!("../../../projections/migrations/postgres/0009_states_in_customers.sql"),
    ),
    (
        10,
        "audit copy on its own connection",
        include_str!(
            "../../../projections/migrations/postgres/0010_audit_copy_on_its_own_connection.sql"
        ),
    ),
    (
        11,
        "fewer indexes",
        include_str!("../../../projections/migrations/postgres/0011_fewer_indexes.sql"),
    ),
    (
        12,
        "change seq in customers",
        include_str!("../../../projections/migrations/postgres/0012_change_seq_in_customers.sql"),
    ),
];

/// Keys per `IN (…)` lookup.
const LOOKUP_CHUNK: usize = 1_000;
/// How long a SQLite statement waits for a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// The PostgreSQL advisory lock key the store's writers take ("CLLG" in the high half).
const WRITE_LOCK: i64 = 0x434C_4C47 << 32;

/// Where the read store is.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded SQLite file (created if missing).
    Sqlite { path: PathBuf },
    /// A PostgreSQL database URL.
    Postgres { url: String },
}

impl StoreConfig {
    /// `postgres://…` (or `postgresql://…`) if given, else the SQLite file `DIR/readstore.db`.
    pub fn from_args(data_dir: &std::path::Path, database_url: Option<&str>) -> Self {
        match database_url {
            Some(url) => StoreConfig::Postgres {
                url: url.to_string(),
            },
            None => StoreConfig::Sqlite {
                path: data_dir.join("readstore.db"),
            },
        }
    }
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The read store. Cheap to clone (a connection pool).
#[derive(Clone)]
pub struct ReadStore {
    backend: Backend,
    /// The SQLite file, which whole-table scans read with a connection of their own.
    sqlite_file: Option<PathBuf>,
    /// SQLite: checkpoints the WAL after commits, beside the writer.
    wal_checkpoints: Option<WalCheckpoints>,
}

enum TxBackend {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// One transaction holding the store's write lock for a projection version: a batch's reads,
/// writes and checkpoint, or one dead-letter resolution, or one page of a re-evaluation.
pub struct StoreTx {
    inner: TxBackend,
    wal_checkpoints: Option<WalCheckpoints>,
    /// PostgreSQL: the audit copy's own connection, opened by the first audit rows written.
    audit: Option<AuditStream>,
    feed_end: FeedEnd,
}

/// The last seq of a version's change feed, read by a transaction's first write of customers
/// and then kept: the transaction holds the store's write lock, so only it moves the end.
#[derive(Default)]
struct FeedEnd(Option<(i64, i64)>);

impl FeedEnd {
    /// The last seq of `version`'s feed, if this transaction knows it.
    fn known(&self, version: i64) -> Option<i64> {
        self.0.filter(|&(v, _)| v == version).map(|(_, last)| last)
    }

    /// `count` seqs after `last` for `version`, which become its last.
    fn take(&mut self, version: i64, last: i64, count: usize) -> std::ops::Range<i64> {
        let end = last + count as i64;
        self.0 = Some((version, end));
        last + 1..end + 1
    }
}

/// Expands `$body` once per backend, with `$c` the backend's pool or transaction and `Db` its
/// sqlx database type, so one statement builder serves both.
macro_rules! per_backend {
    ($value:expr, $enum:ident, $c:ident => $body:expr) => {
        match $value {
            $enum::Sqlite($c) => {
                #[allow(dead_code)]
                type Db = Sqlite;
                $body
            }
            $enum::Postgres($c) => {
                #[allow(dead_code)]
                type Db = Postgres;
                $body
            }
        }
    };
}

/// The hash of a row of a customer's audit chain: SHA-256 of the previous row's hash (32 zero
/// bytes for the first row) followed by the event's exact bytes.
pub fn chain_hash(previous: Option<&[u8; 32]>, bytes: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous.unwrap_or(&[0u8; 32]));
    hasher.update(bytes);
    hasher.finalize().into()
}

fn hash32(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Invalid(format!("a stored hash has {} bytes", bytes.len())))
}

fn id16(bytes: Vec<u8>) -> Result<[u8; 16], StoreError> {
    <[u8; 16]>::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Invalid(format!("a stored event id has {} bytes", bytes.len())))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn migrator(sources: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            sources
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect(),
        ),
        ..Migrator::DEFAULT
    }
}

/// Applies to the store at `config` the migrations before the one described as `name`, so a
/// test can fill the schema as it was and check what that migration makes of the rows.
#[cfg(feature = "test-support")]
pub(crate) async fn migrate_before(config: &StoreConfig, name: &str) -> Result<(), StoreError> {
    fn before(
        sources: &'static [(i64, &'static str, &'static str)],
        name: &str,
    ) -> Result<&'static [(i64, &'static str, &'static str)], StoreError> {
        let at = sources
            .iter()
            .position(|&(_, description, _)| description == name)
            .ok_or_else(|| StoreError::Invalid(format!("no migration is described as {name:?}")))?;
        Ok(&sources[..at])
    }
    match config {
        StoreConfig::Sqlite { path } => {
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    SqliteConnectOptions::new()
                        .filename(path)
                        .create_if_missing(true),
                )
                .await
                .map_err(db("opening the read store"))?;
            migrator(before(SQLITE_MIGRATIONS, name)?)
                .run(&pool)
                .await?;
            pool.close().await;
        }
        StoreConfig::Postgres { url } => {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .map_err(db("connecting to the read store"))?;
            migrator(before(POSTGRES_MIGRATIONS, name)?)
                .run(&pool)
                .await?;
            pool.close().await;
        }
    }
    Ok(())
}

/// Connects to the SQLite file and applies the migrations. Processes opening a new file at
/// once contend for it: switching it to WAL needs it alone, and sqlx takes no lock around the
/// migrations on SQLite (it does on PostgreSQL), so the loser of a race fails on the winner's
/// lock or tables. Connecting and migrating again then finds the work done, so a failure is
/// retried a few times before it counts.
async fn open_sqlite(options: &SqliteConnectOptions) -> Result<SqlitePool, StoreError> {
    const ATTEMPTS: u32 = 20;
    let mut attempt = 1;
    loop {
        let opened = async {
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                // A connection to a local file does not go stale; the check before each
                // acquire was one more round trip to its worker thread per transaction.
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await
                .map_err(db("opening the SQLite read store"))?;
            match migrator(SQLITE_MIGRATIONS).run(&pool).await {
                Ok(()) => Ok(pool),
                Err(err) => {
                    pool.close().await;
                    Err(StoreError::from(err))
                }
            }
        }
        .await;
        match opened {
            Ok(pool) => return Ok(pool),
            Err(err) if attempt >= ATTEMPTS => return Err(err),
            Err(err) => {
                tracing::debug!(attempt, error = %err, "opening the read store failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
                attempt += 1;
            }
        }
    }
}

impl ReadStore {
    /// Connects (creating the SQLite file if needed) and applies the migrations.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let sqlite_file = match config {
            StoreConfig::Sqlite { path } => Some(path.clone()),
            StoreConfig::Postgres { .. } => None,
        };
        let backend = match config {
            StoreConfig::Sqlite { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .map_err(|source| StoreError::Io {
                            path: dir.display().to_string(),
                            source,
                        })?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(BUSY_TIMEOUT)
                    .foreign_keys(true)
                    .pragma("cache_size", "-65536")
                    // Multi-row statements keep a statement journal to undo a half-done
                    // statement; in a temporary file its writes cost as much as the WAL's.
                    .pragma("temp_store", "memory")
                    // Commits do not checkpoint: a thread does, beside the writer (store/wal.rs).
                    .pragma("wal_autocheckpoint", "0")
                    // After the WAL starts again at its beginning, the file is cut to 64 MiB
                    // (it would otherwise keep its largest size), so its size tells whether it
                    // starts again (see `bound_wal`).
                    .pragma("journal_size_limit", "67108864")
                    .pragma("mmap_size", "268435456")
                    // A batch's `IN (…)` lookups run to a thousand parameters, and the last
                    // chunk of each batch has a length of its own: a deep cache of prepared
                    // statements would hold many of them.
                    .statement_cache_capacity(16)
                    // sqlx warns of a statement over a second with its whole text: a batch's
                    // lookups run to tens of kB, and the projector logs its batches' timings.
                    .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
                Backend::Sqlite(open_sqlite(&options).await?)
            }
            StoreConfig::Postgres { url } => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(db("parsing the database URL"))?
                    .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
                // A write transaction takes a second connection for its audit copy
                // (store/pg_copy.rs) while it holds the write lock; writers waiting for the lock
                // each hold one, and readers share the rest.
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await
                    .map_err(db("connecting to PostgreSQL"))?;
                migrator(POSTGRES_MIGRATIONS).run(&pool).await?;
                Backend::Postgres(pool)
            }
        };
        let wal_checkpoints = match &sqlite_file {
            Some(path) => Some(
                WalCheckpoints::start(path).map_err(|source| StoreError::Io {
                    path: path.display().to_string(),
                    source,
                })?,
            ),
            None => None,
        };
        Ok(Self {
            backend,
            sqlite_file,
            wal_checkpoints,
        })
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        per_backend!(&self.backend, Backend, pool => pool.close().await)
    }

    /// Starts a transaction holding the store's write lock (see the crate docs).
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        let inner = match &self.backend {
            Backend::Sqlite(pool) => TxBackend::Sqlite(
                pool.begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(db("starting a read store transaction"))?,
            ),
            Backend::Postgres(pool) => {
                let mut tx = pool
                    .begin()
                    .await
                    .map_err(db("starting a read store transaction"))?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("taking the read store's write lock"))?;
                TxBackend::Postgres(tx)
            }
        };
        let audit = match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pool) => Some(AuditStream::new(pool.clone())),
        };
        Ok(StoreTx {
            inner,
            wal_checkpoints: self.wal_checkpoints.clone(),
            audit,
            feed_end: FeedEnd::default(),
        })
    }

    /// Keeps SQLite's write-ahead log under `limit_bytes`; on PostgreSQL, does nothing.
    ///
    /// Checkpoints (see store/wal.rs) copy the WAL into the database but never shorten it: a
    /// writer starts again at its beginning only if, when it begins a transaction, the WAL is
    /// fully copied and no reader holds a snapshot in it. A writer that begins its next batch
    /// while the checkpoint thread still copies the last one, or two writers taking turns (a
    /// rebuild's batches and its progress writer), miss that chance on every batch, and the
    /// file grows by every batch's pages: 11 GiB over 1.7 M events and 100 000 customers; at a
    /// million customers, until the disk was full. Past the limit this runs a RESTART
    /// checkpoint: it waits for the current readers (at most a second: it holds the write lock
    /// meanwhile) and copies what is left, so the next commit writes the WAL from its
    /// beginning and cuts the file to 64 MiB (`journal_size_limit`). Returns whether it did.
    pub async fn bound_wal(&self, limit_bytes: u64) -> Result<bool, StoreError> {
        let (Backend::Sqlite(pool), Some(file)) = (&self.backend, &self.sqlite_file) else {
            return Ok(false);
        };
        let mut wal = file.clone().into_os_string();
        wal.push("-wal");
        let size = match tokio::fs::metadata(&wal).await {
            Ok(meta) => meta.len(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(StoreError::Io {
                    path: PathBuf::from(wal).display().to_string(),
                    source,
                })
            }
        };
        if size <= limit_bytes {
            return Ok(false);
        }
        // The checkpoint thread's PASSIVE checkpoint would make this one fail at once.
        let _no_checkpoint_running = match &self.wal_checkpoints {
            Some(checkpoints) => Some(checkpoints.running.lock().await),
            None => None,
        };
        let mut conn = pool
            .acquire()
            .await
            .map_err(db("taking a connection to checkpoint the WAL"))?;
        sqlx::query("PRAGMA busy_timeout = 1000")
            .execute(&mut *conn)
            .await
            .map_err(db("checkpointing the WAL"))?;
        let checkpoint = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .fetch_one(&mut *conn)
            .await
            .and_then(|r| r.try_get::<i64, _>(0));
        sqlx::query(&format!(
            "PRAGMA busy_timeout = {}",
            BUSY_TIMEOUT.as_millis()
        ))
        .execute(&mut *conn)
        .await
        .map_err(db("checkpointing the WAL"))?;
        let busy = checkpoint.map_err(db("checkpointing the WAL"))?;
        if busy != 0 {
            tracing::warn!(
                wal_bytes = size,
                "the read store's WAL could not be started again: a reader held it for over a second"
            );
        }
        Ok(busy == 0)
    }

    /// Per partition, the last offset whose effect is stored for `version`.
    pub async fn checkpoints(&self, version: i64) -> Result<BTreeMap<i32, i64>, StoreError> {
        per_backend!(&self.backend, Backend, pool => {
            let rows = QueryBuilder::<Db>::new(
                "SELECT log_partition, log_offset FROM checkpoints WHERE version = ",
            )
            .push_bind(version)
            .build()
            .fetch_all(pool)
            .await
            .map_err(db("reading checkpoints"))?;
            rows.iter()
                .map(|r| {
                    let partition: i64 = r.try_get(0).map_err(db("reading a checkpoint"))?;
                    let offset: i64 = r.try_get(1).map_err(db("reading a checkpoint"))?;
                    Ok((partition as i32, offset))
                })
                .collect()
        })
    }

    /// The dead letters of `version`, newest first, with how many events each holds.
    pub async fn dead_letters(&self, version: i64) -> Result<Vec<DeadLetter>, StoreError> {
        per_backend!(&self.backend, Backend, pool => {
            let rows = QueryBuilder::<Db>::new(
                "SELECT d.id, d.version, d.log_partition, d.log_offset, d.customer_id, d.reason, \
                 d.bytes, d.status, d.created_at, d.resolved_at, \
                 (SELECT COUNT(*) FROM held_events h WHERE h.dead_letter_id = d.id) \
                 FROM dead_letters d WHERE d.version = ",
            )
            .push_bind(version)
            .push(" ORDER BY d.id DESC")
            .build()
            .fetch_all(pool)
            .await
            .map_err(db("listing dead letters"))?;
            rows.iter().map(dead_letter_of).collect()
        })
    }

    /// The recorded actions on a dead letter, oldest first.
    pub async fn dead_letter_actions(&self, id: i64) -> Result<Vec<DeadLetterAction>, StoreError> {
        per_backend!(&self.backend, Backend, pool => {
            let rows = QueryBuilder::<Db>::new(
                "SELECT dead_letter_id, action, outcome, released, at FROM dead_letter_actions \
                 WHERE dead_letter_id = ",
            )
            .push_bind(id)
            .push(" ORDER BY id")
            .build()
            .fetch_all(pool)
            .await
            .map_err(db("listing dead-letter actions"))?;
            rows.iter()
                .map(|r| {
                    Ok(DeadLetterAction {
                        dead_letter_id: r.try_get(0).map_err(db("reading an action"))?,
                        action: r.try_get(1).map_err(db("reading an action"))?,
                        outcome: r.try_get(2).map_err(db("reading an action"))?,
                        released: r.try_get(3).map_err(db("reading an action"))?,
                        at: r.try_get(4).map_err(db("reading an action"))?,
                    })
                })
                .collect()
        })
    }

    /// One customer's row of `version`.
    pub async fn customer(
        &self,
        version: i64,
        customer_id: &str,
    ) -> Result<Option<CustomerRow>, StoreError> {
        per_backend!(&self.backend, Backend, pool => {
            let mut q = QueryBuilder::<Db>::new(CUSTOMER_SELECT);
            q.push(" WHERE version = ").push_bind(version);
            q.push(" AND customer_id = ").push_bind(customer_id);
            let row = q
                .build()
                .fetch_optional(pool)
                .await
                .map_err(db("reading a customer"))?;
            row.as_ref().map(customer_of).transpose()
        })
    }

    /// Checks every customer's hash chain against the stored bytes. Returns the customers
    /// whose chain is broken, with the first bad sequence number.
    pub async fn verify_chains(&self) -> Result<Vec<(String, i64)>, StoreError> {
        use futures::StreamExt as _;
        let mut broken = Vec::new();
        let mut current: Option<(String, [u8; 32], i64, bool)> = None;
        let mut check = |customer: String, seq: i64, bytes: Vec<u8>, hash: Vec<u8>| {
            let fresh = !matches!(&current, Some((c, ..)) if *c == customer);
            if fresh {
                current = Some((customer.clone(), [0u8; 32], 0, false));
            }
            if let Some((c, previous, last_seq, failed)) = current.as_mut() {
                if *failed {
                    return;
                }
                let expected = chain_hash((*last_seq > 0).then_some(&*previous), &bytes);
                if seq != *last_seq + 1 || hash.as_slice() != expected {
                    *failed = true;
                    broken.push((c.clone(), seq));
                }
                *previous = expected;
                *last_seq = seq;
            }
        };
        per_backend!(&self.backend, Backend, pool => {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT customer_id, seq, bytes, hash FROM customer_events \
                 ORDER BY customer_id, seq",
            );
            let mut rows = q.build().fetch(pool);
            while let Some(row) = rows.next().await {
                let row = row.map_err(db("reading the audit copy"))?;
                check(
                    row.try_get(0).map_err(db("reading the audit copy"))?,
                    row.try_get(1).map_err(db("reading the audit copy"))?,
                    row.try_get(2).map_err(db("reading the audit copy"))?,
                    row.try_get(3).map_err(db("reading the audit copy"))?,
                );
            }
        });
        Ok(broken)
    }

    /// Every row of `version` and of the shared audit tables (see [`Snapshot`]).
    pub async fn snapshot(&self, version: i64) -> Result<Snapshot, StoreError> {
        let checkpoints = self.checkpoints(version).await?;
        per_backend!(&self.backend, Backend, pool => {
            let mut q = QueryBuilder::<Db>::new(CUSTOMER_SELECT);
            q.push(" WHERE version = ").push_bind(version).push(" ORDER BY customer_id");
            let customers = q
                .build()
                .fetch_all(pool)
                .await
                .map_err(db("reading customers"))?
                .iter()
                .map(customer_of)
                .collect::<Result<Vec<_>, _>>()?;

            let states = QueryBuilder::<Db>::new(
                "SELECT customer_id, state_format, state FROM customers WHERE version = ",
            )
            .push_bind(version)
            .push(" AND state IS NOT NULL ORDER BY customer_id")
            .build()
            .fetch_all(pool)
            .await
            .map_err(db("reading states"))?
            .iter()
            .map(|r| {
                Ok(StateRow {
                    customer_id: r.try_get(0).map_err(db("reading a state"))?,
                    format: r.try_get(1).map_err(db("reading a state"))?,
                    state: r.try_get(2).map_err(db("reading a state"))?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;

            let events = QueryBuilder::<Db>::new(
                "SELECT customer_id, seq, event_id, log_partition, log_offset, event_type, \
                 occurred_at, recorded_at, bytes, hash FROM customer_events \
                 ORDER BY customer_id, seq",
            )
            .build()
            .fetch_all(pool)
            .await
            .map_err(db("reading the audit copy"))?
            .iter()
            .map(|r| {
                let e = db("reading the audit copy");
                let partition: i64 = r.try_get(3).map_err(db("reading the audit copy"))?;
                Ok(AuditRow {
                    customer_id: r.try_get(0).map_err(db("reading the audit copy"))?,
                    seq: r.try_get(1).map_err(db("reading the audit copy"))?,
                    event_id: id16(r.try_get(2).map_err(db("reading the audit copy"))?)?,
                    log_partition: partition as i32,
                    log_offset: r.try_get(4).map_err(db("reading the audit copy"))?,
                    event_type: r.try_get(5).map_err(db("reading the audit copy"))?,
                    occurred_at: r.try_get(6).map_err(db("reading the audit copy"))?,
                    recorded_at: r.try_get(7).map_err(db("reading the audit copy"))?,
                    bytes: r.try_get(8).map_err(db("reading the audit copy"))?,
                    hash: hash32(r.try_get(9).map_err(e)?)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;

            let transitions = QueryBuilder::<Db>::new(
                "SELECT customer_id, dimension, from_value, to_value, cause, cause_event_id, \
                 log_partition, log_offset, at FROM transitions WHERE version = ",
            )
            .push_bind(version)
            .push(" ORDER BY customer_id, id")
            .build()
            .fetch_all(pool)
            .await
            .map_err(db("reading transitions"))?
            .iter()
            .map(transition_of)
            .collect::<Result<Vec<_>, StoreError>>()?;

            let dead_letters = QueryBuilder::<Db>::new(
                "SELECT log_partition, log_offset, customer_id, reason, status FROM dead_letters \
                 WHERE version = ",
            )
            .push_bind(version)
            .push(" ORDER BY log_partition, log_offset")
            .build()
            .fetch_all(pool)
            .await
            .map_err(db("reading dead letters"))?
            .iter()
            .map(|r| {
                let partition: i64 = r.try_get(0).map_err(db("reading a dead letter"))?;
                Ok((
                    partition as i32,
                    r.try_get(1).map_err(db("reading a dead letter"))?,
                    r.try_get(2).map_err(db("reading a dead letter"))?,
                    r.try_get(3).map_err(db("reading a dead letter"))?,
                    r.try_get(4).map_err(db("reading a dead letter"))?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;

            let held = QueryBuilder::<Db>::new(
                "SELECT log_partition, log_offset, customer_id FROM held_events WHERE version = ",
            )
            .push_bind(version)
            .push(" ORDER BY log_partition, log_offset")
            .build()
            .fetch_all(pool)
            .await
            .map_err(db("reading held events"))?
            .iter()
            .map(|r| {
                let partition: i64 = r.try_get(0).map_err(db("reading a held event"))?;
                Ok((
                    partition as i32,
                    r.try_get(1).map_err(db("reading a held event"))?,
                    r.try_get(2).map_err(db("reading a held event"))?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;

            Ok(Snapshot {
                customers,
                states,
                events,
                transitions,
                checkpoints,
                dead_letters,
                held,
            })
        })
    }
}

/// The columns of a customers row after `version`, in [`CustomerRow`] order (a macro, so that
/// the statements below can be built from it with `concat!`).
macro_rules! customer_columns {
    () => {
        "customer_id, name, owner, segment, region, channel, grade, score, stage, stage_since, \
         stage_rule, risk, risk_band, open_complaints, active_contracts, last_purchase_on, \
         last_interaction_on, last_activity_on, currency, sales_3m_minor, sales_12m_minor, \
         monthly_sales_raw, monthly_sales_score, sales_growth_raw, sales_growth_score, \
         channel_coverage_raw, channel_coverage_score, loyalty_raw, loyalty_score, \
         development_prospects_raw, development_prospects_score, card, code_version, \
         grading_version, lifecycle_version, churn_version, log_partition, log_offset, events, \
         evaluated_at, grade_inputs"
    };
}
const CUSTOMER_COLUMNS: &str = customer_columns!();
const CUSTOMER_COLUMN_COUNT: usize = 41;
const CUSTOMER_SELECT: &str = concat!("SELECT ", customer_columns!(), " FROM customers");

/// The customers columns the list indexes cover (0001, 0003 and 0004). A write assigns only
/// those whose value changed: SQLite rewrites every index whose columns an UPDATE assigns, even
/// to the value they hold, and most changes leave most keys alone (a purchase moves a customer's
/// score and last activity, not its owner, segment, region or stage). Eleven indexes rewritten
/// per customer were half of a batch's writes, and of its pages written to the WAL. PostgreSQL
/// compares the values itself (an update that changes no indexed value touches no index, and
/// one that changes any rewrites them all), so there the stored values are not read.
const INDEXED_COLUMNS: [&str; 10] = [
    "owner",
    "segment",
    "region",
    "grade",
    "score",
    "grade_inputs",
    "stage",
    "last_activity_on",
    "risk_band",
    "risk",
];
/// Every bit of [`INDEXED_COLUMNS`]: a new row, or one whose stored values are unknown.
const ALL_INDEXED: u16 = (1 << INDEXED_COLUMNS.len()) - 1;

impl ListKeys {
    /// Bit `i` is set when `row`'s value of `INDEXED_COLUMNS[i]` differs from the stored one.
    fn changed(&self, row: &CustomerRow) -> u16 {
        [
            self.owner != row.owner,
            self.segment != row.segment,
            self.region != row.region,
            self.grade != row.grade,
            self.score != row.score,
            self.grade_inputs.as_deref() != Some(row.grade_inputs.as_slice()),
            self.stage != row.stage,
            self.last_activity_on != row.last_activity_on,
            self.risk_band != row.risk_band,
            self.risk != row.risk,
        ]
        .iter()
        .enumerate()
        .fold(
            0,
            |mask, (i, &differs)| if differs { mask | 1 << i } else { mask },
        )
    }
}

fn customer_of<R: Row>(r: &R) -> Result<CustomerRow, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let e = || db("reading a customer row");
    let factor = |i: usize| -> Result<FactorValue, StoreError> {
        Ok(FactorValue {
            raw: r.try_get(i).map_err(e())?,
            score: r.try_get(i + 1).map_err(e())?,
        })
    };
    let partition: i64 = r.try_get(36).map_err(e())?;
    Ok(CustomerRow {
        customer_id: r.try_get(0).map_err(e())?,
        name: r.try_get(1).map_err(e())?,
        owner: r.try_get(2).map_err(e())?,
        segment: r.try_get(3).map_err(e())?,
        region: r.try_get(4).map_err(e())?,
        channel: r.try_get(5).map_err(e())?,
        grade: r.try_get(6).map_err(e())?,
        score: r.try_get(7).map_err(e())?,
        stage: r.try_get(8).map_err(e())?,
        stage_since: r.try_get(9).map_err(e())?,
        stage_rule: r.try_get(10).map_err(e())?,
        risk: r.try_get(11).map_err(e())?,
        risk_band: r.try_get(12).map_err(e())?,
        open_complaints: r.try_get(13).map_err(e())?,
        active_contracts: r.try_get(14).map_err(e())?,
        last_purchase_on: r.try_get(15).map_err(e())?,
        last_interaction_on: r.try_get(16).map_err(e())?,
        last_activity_on: r.try_get(17).map_err(e())?,
        currency: r.try_get(18).map_err(e())?,
        sales_3m_minor: r.try_get(19).map_err(e())?,
        sales_12m_minor: r.try_get(20).map_err(e())?,
        factors: [
            factor(21)?,
            factor(23)?,
            factor(25)?,
            factor(27)?,
            factor(29)?,
        ],
        card: r.try_get(31).map_err(e())?,
        code_version: r.try_get(32).map_err(e())?,
        grading_version: r.try_get(33).map_err(e())?,
        lifecycle_version: r.try_get(34).map_err(e())?,
        churn_version: r.try_get(35).map_err(e())?,
        log_partition: partition as i32,
        log_offset: r.try_get(37).map_err(e())?,
        events: r.try_get(38).map_err(e())?,
        evaluated_at: r.try_get(39).map_err(e())?,
        grade_inputs: r
            .try_get::<Option<Vec<u8>>, _>(40)
            .map_err(e())?
            .unwrap_or_default(),
    })
}

fn transition_of<R: Row>(r: &R) -> Result<TransitionRow, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let e = || db("reading a transition");
    let dimension: String = r.try_get(1).map_err(e())?;
    let dimension = match dimension.as_str() {
        "grade" => "grade",
        "stage" => "stage",
        "risk_band" => "risk_band",
        other => {
            return Err(StoreError::Invalid(format!(
                "unknown transition dimension {other}"
            )))
        }
    };
    let cause: String = r.try_get(4).map_err(e())?;
    let event_id: Option<Vec<u8>> = r.try_get(5).map_err(e())?;
    let partition: Option<i64> = r.try_get(6).map_err(e())?;
    let offset: Option<i64> = r.try_get(7).map_err(e())?;
    let cause = match (cause.as_str(), event_id, partition, offset) {
        ("event", Some(id), Some(p), Some(o)) => Cause::Event {
            event_id: id16(id)?,
            log_partition: p as i32,
            log_offset: o,
        },
        ("reevaluation", ..) => Cause::Reevaluation,
        (other, ..) => {
            return Err(StoreError::Invalid(format!(
                "transition with an incomplete cause {other}"
            )))
        }
    };
    Ok(TransitionRow {
        customer_id: r.try_get(0).map_err(e())?,
        dimension,
        from_value: r.try_get(2).map_err(e())?,
        to_value: r.try_get(3).map_err(e())?,
        cause,
        at: r.try_get(8).map_err(e())?,
    })
}

fn dead_letter_of<R: Row>(r: &R) -> Result<DeadLetter, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let e = || db("reading a dead letter");
    let partition: i64 = r.try_get(2).map_err(e())?;
    Ok(DeadLetter {
        id: r.try_get(0).map_err(e())?,
        version: r.try_get(1).map_err(e())?,
        log_partition: partition as i32,
        log_offset: r.try_get(3).map_err(e())?,
        customer_id: r.try_get(4).map_err(e())?,
        reason: r.try_get(5).map_err(e())?,
        bytes: r.try_get(6).map_err(e())?,
        status: r.try_get(7).map_err(e())?,
        created_at: r.try_get(8).map_err(e())?,
        resolved_at: r.try_get(9).map_err(e())?,
        held: r.try_get(10).map_err(e())?,
    })
}

fn held_of<R: Row>(r: &R) -> Result<HeldEvent, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let e = || db("reading a held event");
    let partition: i64 = r.try_get(0).map_err(e())?;
    Ok(HeldEvent {
        log_partition: partition as i32,
        log_offset: r.try_get(1).map_err(e())?,
        customer_id: r.try_get(2).map_err(e())?,
        dead_letter_id: r.try_get(3).map_err(e())?,
        recorded_at: r.try_get(4).map_err(e())?,
        bytes: r.try_get(5).map_err(e())?,
    })
}

impl StoreTx {
    /// Commits the audit copy's own transaction, if any, then the store's.
    pub async fn commit(self) -> Result<(), StoreError> {
        if let Some(audit) = self.audit {
            audit.commit().await?;
        }
        per_backend!(self.inner, TxBackend, tx => tx.commit().await.map_err(db("committing")))?;
        if let Some(checkpoints) = &self.wal_checkpoints {
            checkpoints.committed();
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        per_backend!(self.inner, TxBackend, tx => tx.rollback().await.map_err(db("rolling back")))
    }

    /// What the store holds about `customers` in `version` (state, verdict summary), and the
    /// chain heads of `heads_of`. A customer is in the map if something was found of it or its
    /// head was read (`KnownHead::Read`, `None` for a customer without an audit copy).
    pub async fn load_customers(
        &mut self,
        version: i64,
        customers: &[&str],
        heads_of: &[&str],
    ) -> Result<HashMap<String, LoadedCustomer>, StoreError> {
        if customers.is_empty() && heads_of.is_empty() {
            return Ok(HashMap::new());
        }
        let c = match &mut self.inner {
            TxBackend::Sqlite(c) => {
                return sqlite_tx::run(c, |conn| {
                    sqlite_tx::load_customers(conn, version, customers, heads_of)
                })
                .await
            }
            TxBackend::Postgres(c) => c,
        };
        // One statement per table, the ids bound as one array (prepared once).
        let mut loaded: HashMap<String, LoadedCustomer> = HashMap::with_capacity(customers.len());
        fn entry(loaded: &mut HashMap<String, LoadedCustomer>, id: String) -> &mut LoadedCustomer {
            loaded.entry(id).or_insert(LoadedCustomer {
                state: None,
                summary: None,
                head: KnownHead::Unread,
            })
        }
        if !customers.is_empty() {
            let verdicts = sqlx::query(&format!(
                "SELECT customer_id, {}, evaluated_at, log_partition, log_offset, state_format, \
                 state FROM customers WHERE version = $1 AND customer_id = ANY($2)",
                INDEXED_COLUMNS.join(", ")
            ))
            .bind(version)
            .bind(customers)
            .fetch_all(&mut **c)
            .await
            .map_err(db("loading verdicts"))?;
            for r in verdicts {
                let e = || db("loading a verdict");
                let id: String = r.try_get(0).map_err(e())?;
                let partition: i64 = r.try_get(12).map_err(e())?;
                let state_format: Option<i64> = r.try_get(14).map_err(e())?;
                let state: Option<Vec<u8>> = r.try_get(15).map_err(e())?;
                let found = entry(&mut loaded, id);
                found.state = state_format.zip(state);
                found.summary = Some(Summary {
                    keys: ListKeys {
                        owner: r.try_get(1).map_err(e())?,
                        segment: r.try_get(2).map_err(e())?,
                        region: r.try_get(3).map_err(e())?,
                        grade: r.try_get(4).map_err(e())?,
                        score: r.try_get(5).map_err(e())?,
                        grade_inputs: r.try_get(6).map_err(e())?,
                        stage: r.try_get(7).map_err(e())?,
                        last_activity_on: r.try_get(8).map_err(e())?,
                        risk_band: r.try_get(9).map_err(e())?,
                        risk: r.try_get(10).map_err(e())?,
                    },
                    evaluated_at: r.try_get(11).map_err(e())?,
                    log_partition: partition as i32,
                    log_offset: r.try_get(13).map_err(e())?,
                });
            }
        }
        if !heads_of.is_empty() {
            for &id in heads_of {
                entry(&mut loaded, id.to_string()).head = KnownHead::Read(None);
            }
            let heads = sqlx::query(
                "SELECT wanted.id, head.seq, head.hash FROM UNNEST($1::text[]) AS wanted(id), \
                 LATERAL (SELECT seq, hash FROM customer_events e WHERE e.customer_id = wanted.id \
                 ORDER BY seq DESC LIMIT 1) AS head",
            )
            .bind(heads_of)
            .fetch_all(&mut **c)
            .await
            .map_err(db("loading chain heads"))?;
            for r in heads {
                let e = || db("loading a chain head");
                let id: String = r.try_get(0).map_err(e())?;
                entry(&mut loaded, id).head = KnownHead::Read(Some(ChainHead {
                    seq: r.try_get(1).map_err(e())?,
                    hash: hash32(r.try_get(2).map_err(e())?)?,
                }));
            }
        }
        Ok(loaded)
    }

    /// Those of `ids` present in the audit copy, with the log position they were applied from.
    pub async fn audited_event_ids(
        &mut self,
        ids: &[[u8; 16]],
    ) -> Result<HashMap<[u8; 16], (i32, i64)>, StoreError> {
        let c = match &mut self.inner {
            TxBackend::Sqlite(c) => {
                return sqlite_tx::run(c, |conn| sqlite_tx::audited_event_ids(conn, ids)).await
            }
            TxBackend::Postgres(c) => c,
        };
        let ids: Vec<&[u8]> = ids.iter().map(|id| id.as_slice()).collect();
        let rows = sqlx::query(
            "SELECT event_id, log_partition, log_offset FROM customer_events \
             WHERE event_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&mut **c)
        .await
        .map_err(db("looking up applied ids"))?;
        let mut found = HashMap::with_capacity(rows.len());
        for r in rows {
            let e = || db("reading an applied id");
            let partition: i64 = r.try_get(1).map_err(e())?;
            found.insert(
                id16(r.try_get(0).map_err(e())?)?,
                (partition as i32, r.try_get(2).map_err(e())?),
            );
        }
        Ok(found)
    }

    /// The positions within `ranges` (per partition, first and last offset) that the audit
    /// copy holds, as runs of consecutive offsets `(partition, first, last)` in order. On a log
    /// that refuses a second copy of an event id, the event there is the log's own event at
    /// that position.
    pub async fn audited_positions(
        &mut self,
        ranges: &BTreeMap<i32, (i64, i64)>,
    ) -> Result<Vec<(i32, i64, i64)>, StoreError> {
        let c = match &mut self.inner {
            TxBackend::Sqlite(c) => {
                return sqlite_tx::run(c, |conn| sqlite_tx::audited_positions(conn, ranges)).await
            }
            TxBackend::Postgres(c) => c,
        };
        let mut found = Vec::new();
        for (&partition, &(first, last)) in ranges {
            let offsets: Vec<i64> = sqlx::query_scalar(AUDITED_POSITIONS)
                .bind(i64::from(partition))
                .bind(first)
                .bind(last)
                .fetch_all(&mut **c)
                .await
                .map_err(db("looking up the audit copy by position"))?;
            push_runs(&mut found, partition, offsets);
        }
        Ok(found)
    }

    /// Per partition, the furthest position the audit copy holds (it is shared, and written by
    /// whichever version applies an event first): past it, no event of the log is in it.
    pub async fn audit_frontier(&mut self) -> Result<BTreeMap<i32, i64>, StoreError> {
        per_backend!(&mut self.inner, TxBackend, c => {
            QueryBuilder::<Db>::new("SELECT log_partition, log_offset FROM audit_frontier")
            .build()
            .fetch_all(&mut **c)
            .await
            .map_err(db("reading the audit frontier"))?
            .iter()
            .map(|r| {
                let e = || db("reading the audit frontier");
                let partition: i64 = r.try_get(0).map_err(e())?;
                Ok((partition as i32, r.try_get(1).map_err(e())?))
            })
            .collect()
        })
    }

    /// For each of `customers` with an open dead letter in `version`: the earliest one's id.
    pub async fn open_dead_letters_of(
        &mut self,
        version: i64,
        customers: &[&str],
    ) -> Result<HashMap<String, i64>, StoreError> {
        if customers.is_empty() {
            return Ok(HashMap::new());
        }
        let c = match &mut self.inner {
            TxBackend::Sqlite(c) => {
                return sqlite_tx::run(c, |conn| {
                    sqlite_tx::open_dead_letters_of(conn, version, customers)
                })
                .await
            }
            TxBackend::Postgres(c) => c,
        };
        let rows = sqlx::query(
            "SELECT customer_id, MIN(id) FROM dead_letters WHERE status = 'open' \
             AND version = $1 AND customer_id = ANY($2) GROUP BY customer_id",
        )
        .bind(version)
        .bind(customers)
        .fetch_all(&mut **c)
        .await
        .map_err(db("finding open dead letters"))?;
        let mut found = HashMap::with_capacity(rows.len());
        for r in rows {
            let e = || db("reading an open dead letter");
            found.insert(r.try_get(0).map_err(e())?, r.try_get(1).map_err(e())?);
        }
        Ok(found)
    }

    /// The resolution (`skipped` or `retried`) another version gave the record at `position`,
    /// with that version (the most recent if several did).
    pub async fn resolved_elsewhere(
        &mut self,
        version: i64,
        (partition, offset): (i32, i64),
    ) -> Result<Option<(i64, String)>, StoreError> {
        per_backend!(&mut self.inner, TxBackend, c => {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT version, status FROM dead_letters WHERE status <> 'open' AND version <> ",
            );
            q.push_bind(version);
            q.push(" AND log_partition = ").push_bind(i64::from(partition));
            q.push(" AND log_offset = ").push_bind(offset);
            q.push(" ORDER BY resolved_at DESC LIMIT 1");
            let row = q
                .build()
                .fetch_optional(&mut **c)
                .await
                .map_err(db("looking up other versions' resolutions"))?;
            row.map(|r| {
                let e = || db("reading another version's resolution");
                Ok((r.try_get(0).map_err(e())?, r.try_get(1).map_err(e())?))
            })
            .transpose()
        })
    }

    /// Dead-letters a record (once per position and version) and records the action; returns
    /// its id and whether it is new (not a record read again).
    pub async fn insert_dead_letter(
        &mut self,
        version: i64,
        letter: &NewDeadLetter,
        now: i64,
    ) -> Result<(i64, bool), StoreError> {
        let (id, fresh) = per_backend!(&mut self.inner, TxBackend, c => {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO dead_letters (version, log_partition, log_offset, customer_id, \
                 reason, bytes, status, created_at) ",
            );
            q.push_values([letter], |mut b, l| {
                b.push_bind(version)
                    .push_bind(i64::from(l.log_partition))
                    .push_bind(l.log_offset)
                    .push_bind(l.customer_id.as_deref())
                    .push_bind(l.reason.as_str())
                    .push_bind(l.bytes.as_slice())
                    .push_bind("open")
                    .push_bind(now);
            });
            q.push(" ON CONFLICT (version, log_partition, log_offset) DO NOTHING");
            let inserted = q.build().execute(&mut **c).await.map_err(db("inserting a dead letter"))?;
            let id: i64 = QueryBuilder::<Db>::new("SELECT id FROM dead_letters WHERE version = ")
                .push_bind(version)
                .push(" AND log_partition = ")
                .push_bind(i64::from(letter.log_partition))
                .push(" AND log_offset = ")
                .push_bind(letter.log_offset)
                .build()
                .fetch_one(&mut **c)
                .await
                .map_err(db("reading a dead letter's id"))?
                .try_get(0)
                .map_err(db("reading a dead letter's id"))?;
            (id, inserted.rows_affected() == 1)
        });
        if fresh {
            self.record_dead_letter_action(id, "created", &letter.reason, 0, None, now)
                .await?;
        }
        Ok((id, fresh))
    }

    /// The dead letter `id`.
    pub async fn dead_letter(&mut self, id: i64) -> Result<DeadLetter, StoreError> {
        per_backend!(&mut self.inner, TxBackend, c => {
            let row = QueryBuilder::<Db>::new(
                "SELECT d.id, d.version, d.log_partition, d.log_offset, d.customer_id, d.reason, \
                 d.bytes, d.status, d.created_at, d.resolved_at, \
                 (SELECT COUNT(*) FROM held_events h WHERE h.dead_letter_id = d.id) \
                 FROM dead_letters d WHERE d.id = ",
            )
            .push_bind(id)
            .build()
            .fetch_optional(&mut **c)
            .await
            .map_err(db("reading a dead letter"))?;
            row.as_ref().map(dead_letter_of).transpose()?.ok_or(StoreError::NoSuchDeadLetter(id))
        })
    }

    /// The events of `customer` held in `version`, in log order.
    pub async fn held_events_of(
        &mut self,
        version: i64,
        customer: &str,
    ) -> Result<Vec<HeldEvent>, StoreError> {
        per_backend!(&mut self.inner, TxBackend, c => {
            QueryBuilder::<Db>::new(
                "SELECT log_partition, log_offset, customer_id, dead_letter_id, recorded_at, bytes \
                 FROM held_events WHERE version = ",
            )
            .push_bind(version)
            .push(" AND customer_id = ")
            .push_bind(customer)
            .push(" ORDER BY log_partition, log_offset")
            .build()
            .fetch_all(&mut **c)
            .await
            .map_err(db("reading held events"))?
            .iter()
            .map(held_of)
            .collect()
        })
    }

    /// Removes released held events.
    pub async fn delete_held(
        &mut self,
        version: i64,
        positions: &[(i32, i64)],
    ) -> Result<(), StoreError> {
        for (partition, offset) in positions {
            per_backend!(&mut self.inner, TxBackend, c => {
                QueryBuilder::<Db>::new("DELETE FROM held_events WHERE version = ")
                    .push_bind(version)
                    .push(" AND log_partition = ")
                    .push_bind(i64::from(*partition))
                    .push(" AND log_offset = ")
                    .push_bind(*offset)
                    .build()
                    .execute(&mut **c)
                    .await
                    .map_err(db("releasing a held event"))?;
            });
        }
        Ok(())
    }

    /// Moves held events to another dead letter of the same customer.
    pub async fn rehold(
        &mut self,
        version: i64,
        positions: &[(i32, i64)],
        dead_letter_id: i64,
    ) -> Result<(), StoreError> {
        for (partition, offset) in positions {
            per_backend!(&mut self.inner, TxBackend, c => {
                QueryBuilder::<Db>::new("UPDATE held_events SET dead_letter_id = ")
                    .push_bind(dead_letter_id)
                    .push(" WHERE version = ")
                    .push_bind(version)
                    .push(" AND log_partition = ")
                    .push_bind(i64::from(*partition))
                    .push(" AND log_offset = ")
                    .push_bind(*offset)
                    .build()
                    .execute(&mut **c)
                    .await
                    .map_err(db("moving a held event"))?;
            });
        }
        Ok(())
    }

    /// Records an action on a dead letter and, if `status` is given, resolves it.
    pub async fn record_dead_letter_action(
        &mut self,
        id: i64,
        action: &str,
        outcome: &str,
        released: i64,
        status: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        per_backend!(&mut self.inner, TxBackend, c => {
            if let Some(status) = status {
                QueryBuilder::<Db>::new("UPDATE dead_letters SET status = ")
                    .push_bind(status)
                    .push(", resolved_at = ")
                    .push_bind(now)
                    .push(" WHERE id = ")
                    .push_bind(id)
                    .build()
                    .execute(&mut **c)
                    .await
                    .map_err(db("resolving a dead letter"))?;
            }
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO dead_letter_actions (dead_letter_id, action, outcome, released, at) ",
            );
            q.push_values([()], |mut b, ()| {
                b.push_bind(id)
                    .push_bind(action)
                    .push_bind(outcome)
                    .push_bind(released)
                    .push_bind(now);
            });
            q.build()
                .execute(&mut **c)
                .await
                .map_err(db("recording a dead-letter action"))?;
            Ok(())
        })
    }

    /// Up to `limit` stored states of `version` after customer `after`, in customer order,
    /// each with its stored verdict summary: one page of a re-evaluation pass.
    pub async fn state_page(
        &mut self,
        version: i64,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, i64, Vec<u8>)>, StoreError> {
        per_backend!(&mut self.inner, TxBackend, c => {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT customer_id, state_format, state FROM customers WHERE version = ",
            );
            q.push_bind(version).push(" AND state IS NOT NULL");
            if let Some(after) = after {
                q.push(" AND customer_id > ").push_bind(after);
            }
            q.push(" ORDER BY customer_id LIMIT ").push_bind(limit);
            q.build()
                .fetch_all(&mut **c)
                .await
                .map_err(db("reading a page of states"))?
                .iter()
                .map(|r| {
                    let e = || db("reading a state");
                    Ok((
                        r.try_get(0).map_err(e())?,
                        r.try_get(1).map_err(e())?,
                        r.try_get(2).map_err(e())?,
                    ))
                })
                .collect()
        })
    }

    /// Writes a batch's rows and checkpoints for `version`.
    pub async fn write(
        &mut self,
        version: i64,
        batch: &BatchWrite,
        now: i64,
    ) -> Result<(), StoreError> {
        match &mut self.inner {
            TxBackend::Sqlite(c) => {
                let feed_end = &mut self.feed_end;
                sqlite_tx::run(c, |conn| {
                    sqlite_tx::write(conn, version, batch, now, feed_end)
                })
                .await
            }
            TxBackend::Postgres(c) => {
                if let Some(audit) = &mut self.audit {
                    audit.send(&batch.events).await?;
                }
                write_postgres(c, version, batch, now, &mut self.feed_end).await
            }
        }
    }
}

/// Runs `f`, which blocks, without stalling the other tasks of a multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A batch's rows written into PostgreSQL: one statement per table, its rows bound as one array
/// per column and unnested on the server. Multi-row `VALUES` lists were parsed and planned anew
/// for every chunk of a few thousand rows; these texts are the same every batch, so each is
/// prepared once per connection. PostgreSQL compares an update's indexed values itself, so
/// every column is assigned.
async fn write_postgres(
    c: &mut Transaction<'static, Postgres>,
    version: i64,
    batch: &BatchWrite,
    now: i64,
    feed_end: &mut FeedEnd,
) -> Result<(), StoreError> {
    fn column<'a, R, T>(rows: &'a [R], f: impl Fn(&'a R) -> T) -> Vec<T> {
        rows.iter().map(f).collect()
    }

    let customers = &batch.customers;
    if !customers.is_empty() {
        let states = row_states(batch)?;
        // Each row written moves to the end of the version's change feed (see
        // 0012_change_seq_in_customers.sql).
        let last = match feed_end.known(version) {
            Some(last) => last,
            None => sqlx::query(FEED_END)
                .bind(version)
                .fetch_one(&mut **c)
                .await
                .and_then(|r| r.try_get::<Option<i64>, _>(0))
                .map_err(db("reading the change feed's end"))?
                .unwrap_or(0),
        };
        let seqs: Vec<i64> = feed_end.take(version, last, customers.len()).collect();
        let sql = format!(
            "{CUSTOMER_INSERT}SELECT $1, * FROM {}{}",
            unnest(
                &[&CUSTOMER_ARRAY_TYPES[..], &CUSTOMER_TAIL_TYPES].concat(),
                2
            ),
            customer_conflict(ALL_INDEXED)
        );
        let mut q = sqlx::query(&sql)
            .bind(version)
            .bind(column(customers, |r| r.customer_id.as_str()))
            .bind(column(customers, |r| r.name.as_deref()))
            .bind(column(customers, |r| r.owner.as_deref()))
            .bind(column(customers, |r| r.segment.as_deref()))
            .bind(column(customers, |r| r.region.as_deref()))
            .bind(column(customers, |r| r.channel.as_deref()))
            .bind(column(customers, |r| r.grade.as_str()))
            .bind(column(customers, |r| r.score))
            .bind(column(customers, |r| r.stage.as_str()))
            .bind(column(customers, |r| r.stage_since.as_str()))
            .bind(column(customers, |r| r.stage_rule.as_str()))
            .bind(column(customers, |r| r.risk))
            .bind(column(customers, |r| r.risk_band.as_str()))
            .bind(column(customers, |r| r.open_complaints))
            .bind(column(customers, |r| r.active_contracts))
            .bind(column(customers, |r| r.last_purchase_on.as_deref()))
            .bind(column(customers, |r| r.last_interaction_on.as_deref()))
            .bind(column(customers, |r| r.last_activity_on.as_deref()))
            .bind(column(customers, |r| r.currency.as_deref()))
            .bind(column(customers, |r| r.sales_3m_minor))
            .bind(column(customers, |r| r.sales_12m_minor));
        for i in 0..FACTOR_COLUMNS.len() {
            q = q
                .bind(column(customers, |r| r.factors[i].raw))
                .bind(column(customers, |r| r.factors[i].score));
        }
        q.bind(column(customers, |r| r.card.as_str()))
            .bind(column(customers, |r| r.code_version))
            .bind(column(customers, |r| r.grading_version.as_str()))
            .bind(column(customers, |r| r.lifecycle_version.as_str()))
            .bind(column(customers, |r| r.churn_version.as_str()))
            .bind(column(customers, |r| i64::from(r.log_partition)))
            .bind(column(customers, |r| r.log_offset))
            .bind(column(customers, |r| r.events))
            .bind(column(customers, |r| r.evaluated_at))
            .bind(column(customers, |r| r.grade_inputs.as_slice()))
            .bind(column(&states, |s| s.map(|s| s.format)))
            .bind(column(&states, |s| s.map(|s| s.state.as_slice())))
            .bind(seqs)
            .execute(&mut **c)
            .await
            .map_err(db("writing customers"))?;
    }

    let mut transitions = CopyRows::new(10, batch.transitions.len() * 120);
    for r in &batch.transitions {
        let (cause, event_id, partition, offset) = cause_columns(&r.cause);
        transitions
            .row()
            .int8(version)
            .text(&r.customer_id)
            .text(r.dimension)
            .opt_text(r.from_value.as_deref())
            .text(&r.to_value)
            .text(cause)
            .opt_bytea(event_id)
            .opt_int8(partition)
            .opt_int8(offset)
            .int8(r.at);
    }
    transitions
        .send(c, TRANSITIONS_COPY, "writing transitions")
        .await?;

    let held = &batch.held;
    if !held.is_empty() {
        sqlx::query(&format!(
            "{HELD_INSERT}SELECT $1, * FROM {}{HELD_CONFLICT}",
            unnest(&["int8", "int8", "text", "int8", "int8", "bytea"], 2)
        ))
        .bind(version)
        .bind(column(held, |r| i64::from(r.log_partition)))
        .bind(column(held, |r| r.log_offset))
        .bind(column(held, |r| r.customer_id.as_str()))
        .bind(column(held, |r| r.dead_letter_id))
        .bind(column(held, |r| r.recorded_at))
        .bind(column(held, |r| r.bytes.as_slice()))
        .execute(&mut **c)
        .await
        .map_err(db("holding events"))?;
    }

    if !batch.checkpoints.is_empty() {
        let (partitions, offsets): (Vec<i64>, Vec<i64>) = batch
            .checkpoints
            .iter()
            .map(|(&partition, &offset)| (i64::from(partition), offset))
            .unzip();
        sqlx::query(&format!(
            "{CHECKPOINTS_INSERT}SELECT $1, *, $4 FROM {}{CHECKPOINTS_CONFLICT}",
            unnest(&["int8", "int8"], 2)
        ))
        .bind(version)
        .bind(partitions)
        .bind(offsets)
        .bind(now)
        .execute(&mut **c)
        .await
        .map_err(db("writing checkpoints"))?;
    }
    Ok(())
}

/// The state each row of `batch.customers` is written with: the batch's new state of that
/// customer, or none (the row keeps the stored one). A state comes with its customer's row.
fn row_states(batch: &BatchWrite) -> Result<Vec<Option<&StateRow>>, StoreError> {
    let mut states: HashMap<&str, &StateRow> = batch
        .states
        .iter()
        .map(|s| (s.customer_id.as_str(), s))
        .collect();
    let paired = batch
        .customers
        .iter()
        .map(|r| states.remove(r.customer_id.as_str()))
        .collect();
    match states.into_keys().next() {
        None => Ok(paired),
        Some(customer) => Err(StoreError::Invalid(format!(
            "the state of customer {customer:?} was to be written without its customers row"
        ))),
    }
}

/// `UNNEST($first::t1[], $first+1::t2[], …)`: one array parameter per column type.
fn unnest(types: &[&str], first: usize) -> String {
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", first + i))
        .collect();
    format!("UNNEST({})", arrays.join(", "))
}

/// The PostgreSQL types of the customers columns after `version`, in `customer_columns!`
/// order.
const CUSTOMER_ARRAY_TYPES: [&str; CUSTOMER_COLUMN_COUNT] = [
    "text", "text", "text", "text", "text", "text", "text", "float8", "text", "text", "text",
    "float8", "text", "int8", "int8", "text", "text", "text", "text", "int8", "int8", "float8",
    "float8", "float8", "float8", "float8", "float8", "float8", "float8", "float8", "float8",
    "text", "int8", "text", "text", "text", "int8", "int8", "int8", "int8", "bytea",
];

/// The PostgreSQL types of the columns a customers write ends with (`CUSTOMER_INSERT`):
/// `state_format`, `state`, `change_seq`.
const CUSTOMER_TAIL_TYPES: [&str; 3] = ["int8", "bytea", "int8"];

/// The start of each write statement (`INSERT INTO t (columns) `) and its conflict clause; the
/// PostgreSQL writer appends multi-row `VALUES` lists, the SQLite writer one row's parameters.
const CUSTOMER_INSERT: &str = concat!(
    "INSERT INTO customers (version, ",
    customer_columns!(),
    ", state_format, state, change_seq) "
);
/// The last seq of a version's change feed (NULL if empty). SQLite reads `$1` as positional.
const FEED_END: &str = "SELECT MAX(change_seq) FROM customers WHERE version = $1";
const EVENTS_INSERT: &str = "INSERT INTO customer_events (customer_id, seq, event_id, \
     log_partition, log_offset, event_type, occurred_at, recorded_at, bytes, hash) ";
/// The audit copy's and the transitions' columns as `COPY` targets (PostgreSQL).
const EVENTS_COPY: &str = "customer_events (customer_id, seq, event_id, log_partition, \
     log_offset, event_type, occurred_at, recorded_at, bytes, hash)";
const TRANSITIONS_COPY: &str = "transitions (version, customer_id, dimension, from_value, \
     to_value, cause, cause_event_id, log_partition, log_offset, at)";
/// Moves a partition's audit frontier to `$2` if that is further (`$1` the partition).
const AUDIT_FRONTIER_UPSERT: &str = "INSERT INTO audit_frontier (log_partition, log_offset) \
     VALUES ($1, $2) ON CONFLICT (log_partition) DO UPDATE SET log_offset = \
     CASE WHEN excluded.log_offset > audit_frontier.log_offset \
     THEN excluded.log_offset ELSE audit_frontier.log_offset END";
const TRANSITIONS_INSERT: &str = "INSERT INTO transitions (version, customer_id, dimension, \
     from_value, to_value, cause, cause_event_id, log_partition, log_offset, at) ";
const HELD_INSERT: &str = "INSERT INTO held_events (version, log_partition, log_offset, \
     customer_id, dead_letter_id, recorded_at, bytes) ";
/// Appends ascending `offsets` of `partition` to `runs` as runs of consecutive offsets.
fn push_runs(
    runs: &mut Vec<(i32, i64, i64)>,
    partition: i32,
    offsets: impl IntoIterator<Item = i64>,
) {
    for offset in offsets {
        match runs.last_mut() {
            Some((p, _, last)) if *p == partition && *last + 1 == offset => *last = offset,
            _ => runs.push((partition, offset, offset)),
        }
    }
}

/// Positions the audit copy holds, by partition and offset range (`customer_events_by_position`
/// covers it). SQLite reads `$n` as positional too.
const AUDITED_POSITIONS: &str = "SELECT log_offset FROM customer_events \
     WHERE log_partition = $1 AND log_offset BETWEEN $2 AND $3";
/// How many of those there are (SQLite counts them in the index alone).
const AUDITED_POSITIONS_COUNT: &str = "SELECT COUNT(*) FROM customer_events \
     WHERE log_partition = $1 AND log_offset BETWEEN $2 AND $3";
const HELD_CONFLICT: &str = " ON CONFLICT (version, log_partition, log_offset) DO NOTHING";
const CHECKPOINTS_INSERT: &str =
    "INSERT INTO checkpoints (version, log_partition, log_offset, updated_at) ";
/// Never moves a checkpoint backwards (a re-delivered older batch after a rebalance must not
/// rewind the position).
const CHECKPOINTS_CONFLICT: &str = " ON CONFLICT (version, log_partition) DO UPDATE SET \
     log_offset = CASE WHEN excluded.log_offset > checkpoints.log_offset \
     THEN excluded.log_offset ELSE checkpoints.log_offset END, \
     updated_at = excluded.updated_at";

/// The conflict clause of a customers write that assigns every column but the indexed ones
/// `changed` leaves alone (see [`INDEXED_COLUMNS`]).
fn customer_conflict(changed: u16) -> String {
    let assigned: Vec<String> = CUSTOMER_COLUMNS
        .split(',')
        .map(str::trim)
        .skip(1)
        .filter(|column| {
            INDEXED_COLUMNS
                .iter()
                .position(|c| c == column)
                .is_none_or(|i| changed & (1 << i) != 0)
        })
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    // A row written without a state (its batch did not change it) keeps the stored one.
    format!(
        " ON CONFLICT (version, customer_id) DO UPDATE SET {}, \
         change_seq = excluded.change_seq, \
         state_format = COALESCE(excluded.state_format, customers.state_format), \
         state = COALESCE(excluded.state, customers.state)",
        assigned.join(", ")
    )
}

/// A transition's cause as its columns: kind, event id, partition, offset.
fn cause_columns(cause: &Cause) -> (&'static str, Option<&[u8]>, Option<i64>, Option<i64>) {
    match cause {
        Cause::Event {
            event_id,
            log_partition,
            log_offset,
        } => (
            "event",
            Some(event_id.as_slice()),
            Some(i64::from(*log_partition)),
            Some(*log_offset),
        ),
        Cause::Reevaluation => ("reevaluation", None, None, None),
    }
}

mod audit;
mod pg_copy;
mod sqlite_tx;
mod versions;
mod wal;
pub use audit::{GradePages, GradeRow};
use pg_copy::{AuditStream, CopyRows};
pub use versions::PromoteError;
use wal::WalCheckpoints;

#[cfg(test)]
mod tests {
    use super::push_runs;

    #[test]
    fn offsets_are_pushed_as_runs_of_consecutive_offsets() {
        let mut runs = vec![(0, 1, 3)];
        push_runs(&mut runs, 0, [4, 5, 7, 9, 10]);
        push_runs(&mut runs, 1, [11, 12]);
        push_runs(&mut runs, 1, []);
        assert_eq!(runs, [(0, 1, 5), (0, 7, 7), (0, 9, 10), (1, 11, 12)]);
    }
}
