//! The embedded event log: one SQLite file, one partition (`0`), offsets `1, 2, 3…`.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a transaction is on disk (WAL fsynced)
//! when `COMMIT` returns, and an acknowledged event survives `kill -9` and power loss.
//!
//! Group commit: every append is a request to one writer task that owns the only writing
//! connection. The writer takes the first waiting request, then every other request already
//! queued (up to [`SqliteConfig::max_group_events`]), and writes them all in one
//! `BEGIN IMMEDIATE … COMMIT`, so one fsync serves many callers. Each caller is answered only
//! after that `COMMIT` returned. If a group fails, each of its requests is retried in its own
//! transaction, so one bad request cannot fail the others.
//!
//! Each read stream has a read-only connection of its own (rusqlite, on a blocking thread,
//! where it also decodes each page: sqlx would hand every row from its SQLite thread to the
//! reading task, which costs more than reading and decoding it); WAL lets readers run beside
//! the writer. A read stream wakes up on this process's commits and also polls
//! ([`SqliteConfig::poll_interval`]) for events appended by other processes. Other queries
//! share a small pool of read-only connections.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clientlog_domain::Event;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch, Mutex};
use tokio::task::JoinHandle;

use crate::error::{LogError, ReadError};
use crate::model::{AppendEvent, AppendOutcome, Position, StoredEvent, WireMode};
use crate::{EventLog, EventStream, StartOffsets};

/// The embedded log has one partition.
pub const PARTITION: i32 = 0;
/// The first offset of the embedded log.
pub const FIRST_OFFSET: i64 = 1;

const SCHEMA: &str = include_str!("schema.sql");
const SCHEMA_VERSION: i64 = 1;
/// Rows per multi-row `INSERT` (5 parameters each, below SQLite's 32 766-parameter limit) and
/// ids per duplicate lookup: large enough that the per-statement cost is spread thin.
const ROWS_PER_INSERT: usize = 1000;
/// How many times the writer yields to gather more requests into a commit group.
const GATHER_ROUNDS: usize = 4;
/// Rows fetched per query by a reader.
const READ_PAGE: i64 = 4096;

/// Where and how to open the embedded log.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file; its directory is created if missing.
    pub path: PathBuf,
    /// Upper bound on the events one commit group takes from the queue. Bounds the memory
    /// and the duration of one transaction; a single larger batch is still written whole.
    pub max_group_events: usize,
    /// How often an idle reader looks for events appended by other processes.
    pub poll_interval: Duration,
    /// Read-only connections shared by the log's queries other than read streams (which have
    /// their own), such as the high-water mark.
    pub read_connections: u32,
    /// How long a connection waits for a lock held by another process.
    pub busy_timeout: Duration,
    /// Page cache of the writer connection, MiB. The unique index on random event ids is
    /// touched all over on every append; once it outgrows the cache every insert costs page
    /// reads, so the writer gets a generous cache (readers scan in order and need little).
    pub writer_cache_mib: u32,
    /// Memory-mapped I/O window, MiB (`mmap_size`): page reads without a syscall each.
    pub mmap_mib: u32,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_group_events: 50_000,
            poll_interval: Duration::from_millis(200),
            read_connections: 4,
            busy_timeout: Duration::from_secs(10),
            writer_cache_mib: 64,
            mmap_mib: 256,
        }
    }
}

/// The embedded event log. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct SqliteLog {
    inner: Arc<Inner>,
}

struct Inner {
    requests: mpsc::Sender<Request>,
    readers: SqlitePool,
    /// The last committed offset, published by the writer so readers wake up at once.
    committed: watch::Receiver<i64>,
    commits: Arc<AtomicU64>,
    writer: Mutex<Option<JoinHandle<()>>>,
    config: SqliteConfig,
}

struct Request {
    events: Vec<AppendEvent>,
    reply: oneshot::Sender<Result<Vec<AppendOutcome>, LogError>>,
}

fn sqlite_err(context: &'static str) -> impl FnOnce(sqlx::Error) -> LogError {
    move |source| LogError::Sqlite { context, source }
}

impl SqliteLog {
    /// Opens (creating if needed) the log at `config.path`.
    pub async fn open(config: SqliteConfig) -> Result<Self, LogError> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| LogError::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(&config.path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(config.busy_timeout)
            .foreign_keys(false)
            .pragma("mmap_size", (u64::from(config.mmap_mib) << 20).to_string())
            // sqlx warns of a statement over a second with its whole text: 1 000-row inserts.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));

        let mut writer = options
            .clone()
            .pragma(
                "cache_size",
                format!("-{}", u64::from(config.writer_cache_mib) * 1024),
            )
            .create_if_missing(true)
            .connect()
            .await
            .map_err(sqlite_err("opening the event log for writing"))?;
        migrate(&mut writer).await?;
        // `recorded_at` never decreases along the log, so the last row holds the latest one: a
        // lookup at the end of the b-tree, where MAX(recorded_at) read the whole log.
        let (last_offset, last_recorded): (i64, i64) = sqlx::query_as(
            "SELECT position, recorded_at FROM events ORDER BY position DESC LIMIT 1",
        )
        .fetch_optional(&mut writer)
        .await
        .map_err(sqlite_err("reading the end of the event log"))?
        .unwrap_or((0, 0));

        let readers = SqlitePoolOptions::new()
            .max_connections(config.read_connections.max(1))
            .min_connections(0)
            .connect_with(options.read_only(true))
            .await
            .map_err(sqlite_err("opening the event log for reading"))?;

        let (requests, queue) = mpsc::channel(1024);
        let (committed_tx, committed) = watch::channel(last_offset);
        let commits = Arc::new(AtomicU64::new(0));
        let task = Writer {
            conn: writer,
            queue,
            committed: committed_tx,
            commits: commits.clone(),
            max_group_events: config.max_group_events.max(1),
            last_recorded_at: last_recorded,
        };
        let handle = tokio::spawn(task.run());
        tracing::info!(path = %config.path.display(), last_offset, "opened the embedded event log");
        Ok(Self {
            inner: Arc::new(Inner {
                requests,
                readers,
                committed,
                commits,
                writer: Mutex::new(Some(handle)),
                config,
            }),
        })
    }

    /// Opens the log at `path` with default settings.
    pub async fn open_path(path: impl AsRef<Path>) -> Result<Self, LogError> {
        Self::open(SqliteConfig::new(path.as_ref())).await
    }

    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// How many transactions the writer has committed since open (group commit makes this
    /// smaller than the number of appends).
    pub fn commit_count(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Stops the writer after the appends already queued, and closes every connection. Other
    /// clones of this log can no longer append afterwards.
    pub async fn close(self) {
        let handle = self.inner.writer.lock().await.take();
        let readers = self.inner.readers.clone();
        drop(self);
        // The writer ends when every sender is gone; clones still alive keep it running,
        // in which case it stops with the last of them.
        if let Some(handle) = handle {
            if let Err(err) = tokio::time::timeout(Duration::from_secs(30), handle)
                .await
                .unwrap_or(Ok(()))
            {
                tracing::error!(error = %err, "the event log writer task failed");
            }
        }
        readers.close().await;
    }
}

/// Creates or upgrades the schema. (Boxed for the same `Send` reason as
/// `Writer::transaction`.)
fn migrate(conn: &mut SqliteConnection) -> BoxFuture<'_, Result<(), LogError>> {
    Box::pin(async move {
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *conn)
            .await
            .map_err(sqlite_err("reading the event log schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(LogError::Config(format!(
                "the event log file has schema version {version}; this build knows up to \
                 {SCHEMA_VERSION} — upgrade clientlog"
            )));
        }
        if version < SCHEMA_VERSION {
            let mut tx = conn
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(sqlite_err("starting the event log schema migration"))?;
            // A plain string runs every statement in it, unprepared.
            sqlx::Executor::execute(&mut *tx, SCHEMA)
                .await
                .map_err(sqlite_err("creating the event log schema"))?;
            tx.commit()
                .await
                .map_err(sqlite_err("committing the event log schema"))?;
        }
        Ok(())
    })
}

/// The single writer: owns the write connection and the queue of append requests.
struct Writer {
    conn: SqliteConnection,
    queue: mpsc::Receiver<Request>,
    committed: watch::Sender<i64>,
    commits: Arc<AtomicU64>,
    max_group_events: usize,
    /// Keeps `recorded_at` from going backwards when the wall clock does.
    last_recorded_at: i64,
}

impl Writer {
    async fn run(mut self) {
        while let Some(first) = self.queue.recv().await {
            let mut size = first.events.len();
            let mut group = vec![first];
            // Take what is queued; while more keeps arriving, let the appenders that were just
            // answered run first (a scheduler yield, no timer) so their next appends join this
            // group instead of each paying for a commit of its own.
            for _ in 0..GATHER_ROUNDS {
                tokio::task::yield_now().await;
                let before = group.len();
                while size < self.max_group_events {
                    match self.queue.try_recv() {
                        Ok(request) => {
                            size += request.events.len();
                            group.push(request);
                        }
                        Err(_) => break,
                    }
                }
                if group.len() == before || size >= self.max_group_events {
                    break;
                }
            }
            self.commit_group(group).await;
        }
        if let Err(err) = self.conn.close().await {
            tracing::warn!(error = %err, "closing the event log writer connection failed");
        }
    }

    async fn commit_group(&mut self, group: Vec<Request>) {
        let recorded_at = now_nanos().max(self.last_recorded_at);
        let batches: Vec<&[AppendEvent]> = group.iter().map(|r| r.events.as_slice()).collect();
        match self.transaction(&batches, recorded_at).await {
            Ok(outcomes) => {
                for (request, outcome) in group.into_iter().zip(outcomes) {
                    // A caller that gave up waiting is not an error: its events are durable.
                    let _ = request.reply.send(Ok(outcome));
                }
            }
            Err(err) if group.len() == 1 => {
                if let Some(request) = group.into_iter().next() {
                    let _ = request.reply.send(Err(err));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, requests = group.len(),
                    "a commit group failed; retrying its requests one by one");
                for request in group {
                    let recorded_at = now_nanos().max(self.last_recorded_at);
                    let result = self
                        .transaction(&[request.events.as_slice()], recorded_at)
                        .await
                        .map(|mut outcomes| outcomes.pop().unwrap_or_default());
                    let _ = request.reply.send(result);
                }
            }
        }
    }

    /// Writes `batches` in one transaction and returns the outcomes per batch. (Boxed: the
    /// boxed future is checked for `Send` at one concrete lifetime, which the compiler needs
    /// for sqlx's `Executor` on `&mut SqliteConnection` inside a spawned task.)
    fn transaction<'a>(
        &'a mut self,
        batches: &'a [&'a [AppendEvent]],
        recorded_at: i64,
    ) -> BoxFuture<'a, Result<Vec<Vec<AppendOutcome>>, LogError>> {
        Box::pin(async move {
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut self.conn)
                .await
                .map_err(sqlite_err("starting an append transaction"))?;
            match self.write(batches, recorded_at).await {
                Ok((outcomes, last_offset)) => {
                    sqlx::query("COMMIT")
                        .execute(&mut self.conn)
                        .await
                        .map_err(sqlite_err("committing appended events"))?;
                    self.last_recorded_at = recorded_at;
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    if let Some(last) = last_offset {
                        self.committed.send_replace(last);
                    }
                    Ok(outcomes)
                }
                Err(err) => {
                    if let Err(rollback) = sqlx::query("ROLLBACK").execute(&mut self.conn).await {
                        tracing::warn!(error = %rollback, "rolling back a failed append failed");
                    }
                    Err(err)
                }
            }
        })
    }

    /// Inside the `BEGIN IMMEDIATE` transaction, so no other writer (in any process) can
    /// interleave: finds which ids are already in the log, gives every new event the next
    /// offset explicitly, and inserts them with multi-row statements.
    async fn write(
        &mut self,
        batches: &[&[AppendEvent]],
        recorded_at: i64,
    ) -> Result<(Vec<Vec<AppendOutcome>>, Option<i64>), LogError> {
        let mut last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&mut self.conn)
            .await
            .map_err(sqlite_err("reading the end of the event log"))?;
        let first_new = last + 1;
        // The whole group is written as one sequence of chunks, whatever its requests' sizes:
        // every statement is a round trip to SQLite's thread, so 64 single-event requests
        // must cost one lookup and one insert, not 64 of each.
        let events: Vec<&AppendEvent> = batches.iter().flat_map(|batch| batch.iter()).collect();
        // Ids given a position in this transaction, for repeats across or within requests.
        let mut placed: HashMap<[u8; 16], i64> = HashMap::new();
        let mut outcomes = Vec::with_capacity(events.len());
        for chunk in events.chunks(ROWS_PER_INSERT) {
            let ids: Vec<[u8; 16]> = chunk.iter().map(|e| *e.id().as_uuid().as_bytes()).collect();
            let existing = find_positions(&mut self.conn, &ids).await?;
            let mut rows: Vec<(i64, &AppendEvent)> = Vec::with_capacity(chunk.len());
            for (event, id) in chunk.iter().zip(&ids) {
                if let Some(&offset) = existing.get(id).or_else(|| placed.get(id)) {
                    outcomes.push(AppendOutcome::Duplicate(Position::new(PARTITION, offset)));
                } else {
                    last += 1;
                    placed.insert(*id, last);
                    rows.push((last, event));
                    outcomes.push(AppendOutcome::Appended(Position::new(PARTITION, last)));
                }
            }
            insert_rows(&mut self.conn, &rows, recorded_at).await?;
        }
        let mut outcomes = outcomes.into_iter();
        let all = batches
            .iter()
            .map(|batch| outcomes.by_ref().take(batch.len()).collect())
            .collect();
        Ok((all, (last >= first_new).then_some(last)))
    }
}

/// Inserts `rows` (offset, event) with one statement. The offsets are explicit; a UNIQUE
/// violation here would mean the duplicate check above is wrong, and fails the transaction.
async fn insert_rows(
    conn: &mut SqliteConnection,
    rows: &[(i64, &AppendEvent)],
    recorded_at: i64,
) -> Result<(), LogError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut sql = String::with_capacity(96 + rows.len() * 12);
    sql.push_str("INSERT INTO events (position, event_id, subject, recorded_at, payload) VALUES ");
    for i in 0..rows.len() {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?)");
    }
    let mut query = sqlx::query(&sql);
    for (offset, event) in rows {
        query = query
            .bind(*offset)
            .bind(event.id().as_uuid().as_bytes().to_vec())
            .bind(event.subject().as_str())
            .bind(recorded_at)
            .bind(event.bytes());
    }
    let done = query
        .execute(&mut *conn)
        .await
        .map_err(sqlite_err("inserting appended events"))?;
    if done.rows_affected() != rows.len() as u64 {
        return Err(LogError::Config(format!(
            "inserted {} of {} events",
            done.rows_affected(),
            rows.len()
        )));
    }
    Ok(())
}

/// The offsets of those `ids` that are already in the log.
async fn find_positions(
    conn: &mut SqliteConnection,
    ids: &[[u8; 16]],
) -> Result<HashMap<[u8; 16], i64>, LogError> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(ROWS_PER_INSERT) {
        let placeholders = vec!["?"; chunk.len()].join(",");
        let sql =
            format!("SELECT event_id, position FROM events WHERE event_id IN ({placeholders})");
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.as_slice());
        }
        for row in query
            .fetch_all(&mut *conn)
            .await
            .map_err(sqlite_err("looking up event ids already in the log"))?
        {
            let id: Vec<u8> = row
                .try_get(0)
                .map_err(sqlite_err("reading a duplicate's id"))?;
            let offset: i64 = row
                .try_get(1)
                .map_err(sqlite_err("reading a duplicate's position"))?;
            if let Ok(id) = <[u8; 16]>::try_from(id.as_slice()) {
                found.insert(id, offset);
            }
        }
    }
    Ok(found)
}

fn now_nanos() -> i64 {
    // i64 nanoseconds reach the year 2262.
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn time_of(nanos: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl EventLog for SqliteLog {
    async fn append(&self, batch: &[AppendEvent]) -> Result<Vec<AppendOutcome>, LogError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .requests
            .send(Request {
                events: batch.to_vec(),
                reply,
            })
            .await
            .map_err(|_| LogError::WriterStopped)?;
        answer.await.map_err(|_| LogError::WriterStopped)?
    }

    async fn read(&self, from: &StartOffsets) -> Result<EventStream, LogError> {
        let next = from
            .get(&PARTITION)
            .copied()
            .unwrap_or(FIRST_OFFSET)
            .max(FIRST_OFFSET);
        let reader = Reader {
            config: self.inner.config.clone(),
            conn: None,
            next,
            committed: Some(self.inner.committed.clone()),
            poll_interval: self.inner.config.poll_interval,
            failed: false,
            run: None,
        };
        Ok(stream::unfold(reader, |mut reader| async move {
            let page = reader.next_page().await;
            Some((stream::iter(page), reader))
        })
        .flatten()
        .boxed())
    }

    async fn high_water_marks(&self) -> Result<BTreeMap<i32, i64>, LogError> {
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.inner.readers)
            .await
            .map_err(sqlite_err("reading the high-water mark"))?;
        Ok(BTreeMap::from([(
            PARTITION,
            last.max(FIRST_OFFSET - 1) + 1,
        )]))
    }

    fn dedupes_on_append(&self) -> bool {
        true
    }
}

/// The state of one read stream.
struct Reader {
    config: SqliteConfig,
    /// Opened on the first page, dropped after an error (the next page opens another).
    conn: Option<rusqlite::Connection>,
    next: i64,
    /// `None` once this process's writer is gone; polling alone continues.
    committed: Option<watch::Receiver<i64>>,
    poll_interval: Duration,
    /// The previous page was an error: back off before the next query.
    failed: bool,
    /// The pages being read ahead on the blocking pool.
    run: Option<PageRun>,
}

type Page = Vec<Result<StoredEvent, ReadError>>;

/// Pages read one after another on a blocking-pool thread, each sent as soon as it is decoded,
/// while they come out full and the stream is there to take them: a reader that catches up
/// keeps one thread scanning instead of handing each page to a thread woken for it. The
/// connection comes back when the run ends (lost with it after an error).
struct PageRun {
    pages: mpsc::Receiver<Result<Page, LogError>>,
    done: JoinHandle<Option<rusqlite::Connection>>,
}

impl Reader {
    /// The next non-empty page of items; waits while the log has nothing new.
    async fn next_page(&mut self) -> Page {
        loop {
            if self.failed {
                tokio::time::sleep(self.poll_interval).await;
                self.failed = false;
            }
            let run = self.run.get_or_insert_with(|| {
                start_run(&mut self.committed, &mut self.conn, &self.config, self.next)
            });
            let page = match run.pages.recv().await {
                Some(Ok(page)) => page,
                Some(Err(err)) => {
                    self.end_run().await;
                    self.failed = true;
                    return vec![Err(ReadError::Log(err))];
                }
                None => {
                    // The run ended without a page: only a panic ends it so.
                    if let Some(err) = self.end_run().await {
                        self.failed = true;
                        return vec![Err(ReadError::Log(err))];
                    }
                    continue;
                }
            };
            if (page.len() as i64) < READ_PAGE {
                if let Some(err) = self.end_run().await {
                    self.failed = true;
                    return vec![Err(ReadError::Log(err))];
                }
            }
            if page.is_empty() {
                self.wait().await;
                continue;
            }
            if let Some(last) = page.iter().map(position_of).max() {
                self.next = last + 1;
            }
            return page;
        }
    }

    /// Waits for the current run's thread and takes its connection back; the thread's panic,
    /// if it had one.
    async fn end_run(&mut self) -> Option<LogError> {
        let run = self.run.take()?;
        drop(run.pages);
        match run.done.await {
            Ok(conn) => {
                self.conn = conn;
                None
            }
            Err(err) => Some(LogError::from(err)),
        }
    }

    async fn wait(&mut self) {
        match &mut self.committed {
            Some(committed) => {
                tokio::select! {
                    changed = committed.changed() => {
                        if changed.is_err() {
                            self.committed = None;
                        }
                    }
                    () = tokio::time::sleep(self.poll_interval) => {}
                }
            }
            None => tokio::time::sleep(self.poll_interval).await,
        }
    }
}

/// Starts reading pages from offset `next` on the blocking pool (see [`PageRun`]).
fn start_run(
    committed: &mut Option<watch::Receiver<i64>>,
    conn: &mut Option<rusqlite::Connection>,
    config: &SqliteConfig,
    next: i64,
) -> PageRun {
    // What is committed from here on wakes `Reader::wait`.
    if let Some(committed) = committed {
        committed.borrow_and_update();
    }
    let (pages, received) = mpsc::channel(1);
    let (conn, config) = (conn.take(), config.clone());
    let done = tokio::task::spawn_blocking(move || {
        let conn = match conn.map_or_else(|| open_reader(&config), Ok) {
            Ok(conn) => conn,
            Err(err) => {
                let _ = pages.blocking_send(Err(err));
                return None;
            }
        };
        let mut next = next;
        let mut helper = None;
        loop {
            let page = match read_page(&conn, next, &mut helper) {
                Ok(page) => page,
                Err(err) => {
                    let _ = pages.blocking_send(Err(err));
                    return None;
                }
            };
            let full = page.len() as i64 >= READ_PAGE;
            if let Some(last) = page.iter().map(position_of).max() {
                next = last + 1;
            }
            if pages.blocking_send(Ok(page)).is_err() || !full {
                return Some(conn);
            }
        }
    });
    PageRun {
        pages: received,
        done,
    }
}

fn position_of(item: &Result<StoredEvent, ReadError>) -> i64 {
    match item {
        Ok(event) => event.position.offset,
        Err(ReadError::BadRecord(bad)) => bad.position.offset,
        Err(ReadError::Log(_)) => i64::MIN,
    }
}

fn scan_err(context: &'static str) -> impl FnOnce(rusqlite::Error) -> LogError {
    move |source| LogError::Scan { context, source }
}

/// A read stream's connection: read-only, with the log's lock wait and memory map.
fn open_reader(config: &SqliteConfig) -> Result<rusqlite::Connection, LogError> {
    let context = "opening the event log for reading";
    let conn = rusqlite::Connection::open_with_flags(
        &config.path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(scan_err(context))?;
    conn.busy_timeout(config.busy_timeout)
        .map_err(scan_err(context))?;
    conn.pragma_update(None, "mmap_size", u64::from(config.mmap_mib) << 20)
        .map_err(scan_err(context))?;
    Ok(conn)
}

/// Up to [`READ_PAGE`] records from offset `next` on, decoded.
///
/// Decoding costs several times the scan, and a reader that catches up (a projector starting,
/// a rebuild) is the one serial stage before the fold: a full page is decoded half on the
/// run's `helper` thread (started for the first such page), half here.
fn read_page(
    conn: &rusqlite::Connection,
    next: i64,
    helper: &mut Option<DecodeHelper>,
) -> Result<Vec<Result<StoredEvent, ReadError>>, LogError> {
    let context = "reading events";
    let mut statement = conn
        .prepare_cached(
            "SELECT position, recorded_at, payload FROM events \
             WHERE position >= ?1 ORDER BY position LIMIT ?2",
        )
        .map_err(scan_err(context))?;
    let mut rows = statement
        .query([next, READ_PAGE])
        .map_err(scan_err(context))?;
    let mut scanned = Vec::new();
    while let Some(row) = rows.next().map_err(scan_err(context))? {
        let offset: i64 = row.get(0).map_err(scan_err(context))?;
        let recorded_at: i64 = row.get(1).map_err(scan_err(context))?;
        let bytes: Vec<u8> = row.get(2).map_err(scan_err(context))?;
        scanned.push((offset, recorded_at, bytes));
    }
    if scanned.len() >= PARALLEL_DECODE_FROM && helper.is_none() {
        *helper = DecodeHelper::start();
    }
    let mut page = match helper.as_ref() {
        Some(helper) if scanned.len() >= PARALLEL_DECODE_FROM => {
            let second = scanned.split_off(scanned.len() / 2);
            let second = helper.send(second);
            let mut page = decode_rows(scanned);
            page.extend(helper.receive(second)?);
            page
        }
        _ => decode_rows(scanned),
    };
    // A bad record's customer, if its row names one (a valid event carries its own).
    for item in &mut page {
        if let Err(ReadError::BadRecord(bad)) = item {
            bad.key = conn
                .query_row(
                    "SELECT subject FROM events WHERE position = ?1",
                    [bad.position.offset],
                    |row| row.get::<_, Option<String>>(0),
                )
                .map_err(scan_err(context))?;
        }
    }
    Ok(page)
}

/// Rows at least this many are decoded on two threads (fewer: handing them over would cost
/// more than it saves).
const PARALLEL_DECODE_FROM: usize = 512;

type ScannedRow = (i64, i64, Vec<u8>);

/// A thread that decodes the second half of every full page of one page run: one thread for
/// the run, where a thread per page (about 1 200 in a rebuild of 5 M events) spent 1.4 % of
/// the rebuild's CPU in thread exits alone, the allocator handing each exited thread's memory
/// (the decoded events, still in use) over to others.
struct DecodeHelper {
    rows: std::sync::mpsc::SyncSender<Vec<ScannedRow>>,
    decoded: std::sync::mpsc::Receiver<Vec<Result<StoredEvent, ReadError>>>,
}

impl DecodeHelper {
    /// `None` if no thread can be started: the run decodes on its own thread.
    fn start() -> Option<Self> {
        let (rows, to_decode) = std::sync::mpsc::sync_channel::<Vec<ScannedRow>>(1);
        let (done, decoded) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("clientlog-log-decode".to_string())
            .spawn(move || {
                for rows in to_decode {
                    if done.send(decode_rows(rows)).is_err() {
                        return;
                    }
                }
            });
        match spawned {
            Ok(_) => Some(Self { rows, decoded }),
            Err(err) => {
                tracing::warn!(error = %err, "no thread to decode the log's pages on; decoding on one");
                None
            }
        }
    }

    /// Hands `rows` to the thread; what it could not take is given back.
    fn send(&self, rows: Vec<ScannedRow>) -> Result<(), Vec<ScannedRow>> {
        self.rows.send(rows).map_err(|err| err.0)
    }

    /// The rows handed over by [`DecodeHelper::send`], decoded (here, if the thread was gone).
    fn receive(
        &self,
        sent: Result<(), Vec<ScannedRow>>,
    ) -> Result<Vec<Result<StoredEvent, ReadError>>, LogError> {
        match sent {
            Err(rows) => Ok(decode_rows(rows)),
            Ok(()) => self.decoded.recv().map_err(|_| LogError::DecoderStopped),
        }
    }
}

/// Scanned rows (offset, `recorded_at`, payload) decoded in order; a bad record's key is left
/// for [`read_page`] to look up.
fn decode_rows(rows: Vec<ScannedRow>) -> Vec<Result<StoredEvent, ReadError>> {
    rows.into_iter()
        .map(|(offset, recorded_at, bytes)| {
            let position = Position::new(PARTITION, offset);
            match Event::decode(&bytes) {
                Ok(event) => Ok(StoredEvent {
                    position,
                    bytes,
                    recorded_at: time_of(recorded_at),
                    mode: WireMode::Structured,
                    event,
                }),
                Err(reason) => Err(ReadError::bad_record(position, None, bytes, reason)),
            }
        })
        .collect()
}
