//! The read-side queries of the API, over connections of its own to the read store (SQLite file
//! or PostgreSQL), so the projector's write transactions and the API's reads do not queue on one
//! pool. SQLite is read with rusqlite: key lookups on the request's own thread, other queries on
//! a blocking thread, one hand-off each, where sqlx's SQLite driver hands every row across
//! threads, which costs more than the lookups themselves. Every statement is built here, in one
//! obvious module; the schema and its indexes are in `projections/migrations/`. Every query on a versioned table names the
//! live version, which leads every index.
//!
//! Statements are written once: [`Sql`] writes `?` or `$n` placeholders for the backend, and
//! rows come back as [`Val`]s of declared [`Kind`]s, so no query is duplicated per database.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clientlog_readstore::StoreConfig;
use rusqlite::types::ValueRef;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;
use tokio::sync::Semaphore;

/// Connections for reads.
#[derive(Clone)]
pub enum Reader {
    Sqlite(Arc<SqliteReader>),
    Postgres(PgPool),
}

/// A query that failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("a column of {0:?} is not of the expected type")]
    Column(String),
    #[error("the SQLite read task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("the reader is closed")]
    Closed,
}

/// Read-only connections to the SQLite file, opened on first use, at most `permits` at once.
pub struct SqliteReader {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
    permits: Semaphore,
}

impl SqliteReader {
    fn open(&self) -> Result<rusqlite::Connection, rusqlite::Error> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "cache_size", -32768)?;
        conn.pragma_update(None, "mmap_size", 268_435_456)?;
        // Lists are built from a few dozen statement shapes.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// Runs `sql` on an idle connection (or a new one), returning it to the idle ones after.
    fn run(&self, text: &str, args: &[Arg], kinds: &[Kind]) -> Result<Vec<Vec<Val>>, ReadError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let rows = query(&conn, text, args, kinds);
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        rows
    }

    async fn rows(self: &Arc<Self>, sql: &Sql, kinds: &[Kind]) -> Result<Vec<Vec<Val>>, ReadError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ReadError::Closed)?;
        let reader = self.clone();
        let (text, args, kinds) = (sql.text.clone(), sql.args.clone(), kinds.to_vec());
        tokio::task::spawn_blocking(move || reader.run(&text, &args, &kinds)).await?
    }
}

fn query(
    conn: &rusqlite::Connection,
    text: &str,
    args: &[Arg],
    kinds: &[Kind],
) -> Result<Vec<Vec<Val>>, ReadError> {
    let mut statement = conn.prepare_cached(text)?;
    for (i, arg) in args.iter().enumerate() {
        match arg {
            Arg::Int(v) => statement.raw_bind_parameter(i + 1, v)?,
            Arg::Real(v) => statement.raw_bind_parameter(i + 1, v)?,
            Arg::Text(v) => statement.raw_bind_parameter(i + 1, v.as_str())?,
        }
    }
    let mut rows = statement.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let row = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                Ok(match (kind, r.get_ref(i)?) {
                    (_, ValueRef::Null) => Val::Null,
                    (Kind::Int, ValueRef::Integer(v)) => Val::Int(v),
                    (Kind::Real, ValueRef::Real(v)) => Val::Real(v),
                    (Kind::Real, ValueRef::Integer(v)) => Val::Real(v as f64),
                    (Kind::Text, ValueRef::Text(v)) => Val::Text(
                        std::str::from_utf8(v)
                            .map_err(|_| ReadError::Column(text.to_string()))?
                            .to_string(),
                    ),
                    (Kind::Bytes, ValueRef::Blob(v)) => Val::Bytes(v.to_vec()),
                    _ => return Err(ReadError::Column(text.to_string())),
                })
            })
            .collect::<Result<Vec<Val>, ReadError>>()?;
        out.push(row);
    }
    Ok(out)
}

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Int(i64),
    Real(f64),
    Text(String),
}

/// A column value as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Val {
    pub fn int(&self) -> i64 {
        match self {
            Val::Int(v) => *v,
            _ => 0,
        }
    }
    pub fn real(&self) -> f64 {
        match self {
            Val::Real(v) => *v,
            Val::Int(v) => *v as f64,
            _ => 0.0,
        }
    }
    pub fn text(&self) -> Option<&str> {
        match self {
            Val::Text(v) => Some(v),
            _ => None,
        }
    }
    pub fn bytes(&self) -> &[u8] {
        match self {
            Val::Bytes(v) => v,
            _ => &[],
        }
    }
    pub fn json(&self) -> serde_json::Value {
        // A `Val` always serializes (see below).
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl serde::Serialize for Val {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Null => serializer.serialize_unit(),
            Val::Int(v) => serializer.serialize_i64(*v),
            Val::Real(v) if v.is_finite() => serializer.serialize_f64(*v),
            Val::Real(_) => serializer.serialize_unit(),
            Val::Text(v) => serializer.serialize_str(v),
            Val::Bytes(v) => serializer.serialize_str(&crate::auth::hex(v)),
        }
    }
}

/// The type a column is read as (always nullable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Real,
    Text,
    Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sqlite,
    Postgres,
    /// A piece to splice into statements: placeholders are NUL until [`Sql::splice`].
    Fragment,
}

/// A statement under construction for one backend.
#[derive(Debug, Clone)]
pub struct Sql {
    mode: Mode,
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        match self.mode {
            Mode::Sqlite => self.text.push('?'),
            Mode::Postgres => self.text.push_str(&format!("${}", self.args.len())),
            Mode::Fragment => self.text.push('\u{0}'),
        }
        self
    }
    /// Appends a [`Reader::fragment`], binding its arguments in this statement's style.
    pub fn splice(&mut self, fragment: &Sql) -> &mut Self {
        for (i, piece) in fragment.text.split('\u{0}').enumerate() {
            self.push(piece);
            if let Some(arg) = fragment.args.get(i) {
                self.bind(arg.clone());
            }
        }
        self
    }
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.bind(Arg::Int(v))
    }
    pub fn real(&mut self, v: f64) -> &mut Self {
        self.bind(Arg::Real(v))
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bind(Arg::Text(v.to_string()))
    }
}

fn decode(r: &sqlx::postgres::PgRow, kinds: &[Kind]) -> Result<Vec<Val>, sqlx::Error> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            Ok(match kind {
                Kind::Int => r.try_get::<Option<i64>, _>(i)?.map_or(Val::Null, Val::Int),
                Kind::Real => r.try_get::<Option<f64>, _>(i)?.map_or(Val::Null, Val::Real),
                Kind::Text => r
                    .try_get::<Option<String>, _>(i)?
                    .map_or(Val::Null, Val::Text),
                Kind::Bytes => r
                    .try_get::<Option<Vec<u8>>, _>(i)?
                    .map_or(Val::Null, Val::Bytes),
            })
        })
        .collect()
}

impl Reader {
    /// A read pool on the store the projector writes (which must already be migrated).
    pub async fn connect(config: &StoreConfig, max_connections: u32) -> Result<Self, ReadError> {
        Ok(match config {
            StoreConfig::Sqlite { path } => {
                let reader = Arc::new(SqliteReader {
                    path: path.clone(),
                    idle: Mutex::new(Vec::new()),
                    permits: Semaphore::new(max_connections as usize),
                });
                // Fail now, not at the first request, if the file cannot be read.
                let first = reader.open()?;
                reader
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(first);
                Reader::Sqlite(reader)
            }
            StoreConfig::Postgres { url } => Reader::Postgres(
                PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(PgConnectOptions::from_str(url)?)
                    .await?,
            ),
        })
    }

    pub fn sql(&self, text: &str) -> Sql {
        Sql {
            mode: match self {
                Reader::Sqlite(_) => Mode::Sqlite,
                Reader::Postgres(_) => Mode::Postgres,
            },
            text: text.to_string(),
            args: Vec::new(),
        }
    }

    /// A piece of SQL with arguments, to [`Sql::splice`] into statements of either backend.
    pub fn fragment() -> Sql {
        Sql {
            mode: Mode::Fragment,
            text: String::new(),
            args: Vec::new(),
        }
    }

    /// Rows of a statement that reads a few rows by key (a customer's card, the live version):
    /// on SQLite it runs on the calling thread, as it takes microseconds, less than handing it
    /// to another thread and back.
    pub async fn lookup(&self, sql: &Sql, kinds: &[Kind]) -> Result<Vec<Vec<Val>>, ReadError> {
        match self {
            Reader::Sqlite(reader) => {
                if reader.permits.is_closed() {
                    return Err(ReadError::Closed);
                }
                reader.run(&sql.text, &sql.args, kinds)
            }
            Reader::Postgres(_) => self.rows(sql, kinds).await,
        }
    }

    /// Rows of any statement; on SQLite it runs on a blocking thread.
    pub async fn rows(&self, sql: &Sql, kinds: &[Kind]) -> Result<Vec<Vec<Val>>, ReadError> {
        match self {
            Reader::Sqlite(reader) => reader.rows(sql, kinds).await,
            Reader::Postgres(pool) => {
                let mut q = sqlx::query(&sql.text);
                for arg in &sql.args {
                    q = match arg {
                        Arg::Int(v) => q.bind(*v),
                        Arg::Real(v) => q.bind(*v),
                        Arg::Text(v) => q.bind(v.as_str()),
                    };
                }
                Ok(q.fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| decode(r, kinds))
                    .collect::<Result<Vec<_>, _>>()?)
            }
        }
    }

    pub async fn close(&self) {
        match self {
            Reader::Sqlite(reader) => {
                reader.permits.close();
                reader
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
            }
            Reader::Postgres(pool) => pool.close().await,
        }
    }

    /// The live projection version, if the projector created one.
    pub async fn live_version(&self) -> Result<Option<i64>, ReadError> {
        let sql = self.sql("SELECT version FROM projection_versions WHERE status = 'live'");
        Ok(self
            .lookup(&sql, &[Kind::Int])
            .await?
            .first()
            .map(|r| r[0].int()))
    }

    /// Per partition, the last offset whose effect is in `version`'s read models.
    pub async fn checkpoints(&self, version: i64) -> Result<BTreeMap<i32, i64>, ReadError> {
        let mut sql =
            self.sql("SELECT log_partition, log_offset FROM checkpoints WHERE version = ");
        sql.int(version);
        Ok(self
            .lookup(&sql, &[Kind::Int, Kind::Int])
            .await?
            .iter()
            .map(|r| (r[0].int() as i32, r[1].int()))
            .collect())
    }

    /// Open dead letters of `version`.
    pub async fn open_dead_letters(&self, version: i64) -> Result<i64, ReadError> {
        let mut sql =
            self.sql("SELECT COUNT(*) FROM dead_letters WHERE status = 'open' AND version = ");
        sql.int(version);
        Ok(self
            .rows(&sql, &[Kind::Int])
            .await?
            .first()
            .map_or(0, |r| r[0].int()))
    }
}

/// Columns of a customer in a list (not the whole card, which lists do not need).
pub const SUMMARY_COLUMNS: &str = "customer_id, name, owner, segment, region, grade, score, \
     stage, risk, risk_band, last_activity_on, open_complaints, active_contracts, \
     log_partition, log_offset, evaluated_at";
pub const SUMMARY_KINDS: [Kind; 16] = [
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Real,
    Kind::Text,
    Kind::Real,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Int,
    Kind::Int,
    Kind::Int,
    Kind::Int,
];

/// A list row, serialized straight from its columns (lists are the API's largest answers; no
/// intermediate JSON tree is built).
pub struct Summary<'r>(pub &'r [Val]);

impl serde::Serialize for Summary<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let r = self.0;
        let mut map = serializer.serialize_map(Some(15))?;
        for (key, i) in [
            ("id", 0),
            ("name", 1),
            ("owner", 2),
            ("segment", 3),
            ("region", 4),
            ("grade", 5),
            ("score", 6),
            ("stage", 7),
            ("risk", 8),
            ("risk_band", 9),
            ("last_activity_on", 10),
            ("open_complaints", 11),
            ("active_contracts", 12),
        ] {
            map.serialize_entry(key, &r[i])?;
        }
        map.serialize_entry(
            "position",
            &crate::routes::PositionJson {
                partition: r[13].int() as i32,
                offset: r[14].int(),
            },
        )?;
        map.serialize_entry("evaluated_at", &r[15])?;
        map.end()
    }
}
