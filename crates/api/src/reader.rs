//! The read-side queries of the API, over a connection pool of its own to the read store
//! (SQLite file or PostgreSQL), so the projector's write transactions and the API's reads do
//! not queue on one pool. Every statement is built here, in one obvious module; the schema and
//! its indexes are in `projections/migrations/`. Every query on a versioned table names the
//! live version, which leads every index.
//!
//! Statements are written once: [`Sql`] writes `?` or `$n` placeholders for the backend, and
//! rows come back as [`Val`]s of declared [`Kind`]s, so no query is duplicated per database.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use clientlog_readstore::StoreConfig;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

/// A connection pool for reads.
#[derive(Clone)]
pub enum Reader {
    Sqlite(SqlitePool),
    Postgres(PgPool),
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
        match self {
            Val::Null => serde_json::Value::Null,
            Val::Int(v) => (*v).into(),
            Val::Real(v) => {
                serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into)
            }
            Val::Text(v) => v.clone().into(),
            Val::Bytes(v) => crate::auth::hex(v).into(),
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

fn decode<R: Row>(r: &R, kinds: &[Kind]) -> Result<Vec<Val>, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
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

macro_rules! run {
    ($pool:expr, $sql:expr, $kinds:expr) => {{
        let mut q = sqlx::query(&$sql.text);
        for arg in &$sql.args {
            q = match arg {
                Arg::Int(v) => q.bind(*v),
                Arg::Real(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_str()),
            };
        }
        q.fetch_all($pool)
            .await?
            .iter()
            .map(|r| decode(r, $kinds))
            .collect::<Result<Vec<_>, _>>()
    }};
}

impl Reader {
    /// A read pool on the store the projector writes (which must already be migrated).
    pub async fn connect(config: &StoreConfig, max_connections: u32) -> Result<Self, sqlx::Error> {
        Ok(match config {
            StoreConfig::Sqlite { path } => {
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .busy_timeout(Duration::from_secs(5))
                    .pragma("cache_size", "-32768")
                    .pragma("mmap_size", "268435456");
                Reader::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(max_connections)
                        // A ping before every query is a round trip to the connection's worker
                        // thread (about a third of a card read's cost); a local file does not
                        // drop connections.
                        .test_before_acquire(false)
                        .connect_with(options)
                        .await?,
                )
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

    pub async fn rows(&self, sql: &Sql, kinds: &[Kind]) -> Result<Vec<Vec<Val>>, sqlx::Error> {
        match self {
            Reader::Sqlite(pool) => run!(pool, sql, kinds),
            Reader::Postgres(pool) => run!(pool, sql, kinds),
        }
    }

    pub async fn close(&self) {
        match self {
            Reader::Sqlite(pool) => pool.close().await,
            Reader::Postgres(pool) => pool.close().await,
        }
    }

    /// The live projection version, if the projector created one.
    pub async fn live_version(&self) -> Result<Option<i64>, sqlx::Error> {
        let sql = self.sql("SELECT version FROM projection_versions WHERE status = 'live'");
        Ok(self
            .rows(&sql, &[Kind::Int])
            .await?
            .first()
            .map(|r| r[0].int()))
    }

    /// Per partition, the last offset whose effect is in `version`'s read models.
    pub async fn checkpoints(&self, version: i64) -> Result<BTreeMap<i32, i64>, sqlx::Error> {
        let mut sql =
            self.sql("SELECT log_partition, log_offset FROM checkpoints WHERE version = ");
        sql.int(version);
        Ok(self
            .rows(&sql, &[Kind::Int, Kind::Int])
            .await?
            .iter()
            .map(|r| (r[0].int() as i32, r[1].int()))
            .collect())
    }

    /// Open dead letters of `version`.
    pub async fn open_dead_letters(&self, version: i64) -> Result<i64, sqlx::Error> {
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

/// A list row as JSON.
pub fn summary_json(r: &[Val]) -> serde_json::Value {
    serde_json::json!({
        "id": r[0].json(),
        "name": r[1].json(),
        "owner": r[2].json(),
        "segment": r[3].json(),
        "region": r[4].json(),
        "grade": r[5].json(),
        "score": r[6].json(),
        "stage": r[7].json(),
        "risk": r[8].json(),
        "risk_band": r[9].json(),
        "last_activity_on": r[10].json(),
        "open_complaints": r[11].json(),
        "active_contracts": r[12].json(),
        "position": {"partition": r[13].int(), "offset": r[14].int()},
        "evaluated_at": r[15].json(),
    })
}
