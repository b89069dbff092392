//! Rows sent to PostgreSQL by `COPY … FROM STDIN (FORMAT binary)`: the write path for tables a
//! batch only appends to (the audit copy, transitions), and the audit copy's own connection.
//!
//! An `INSERT … SELECT FROM UNNEST($1::t[], …)` makes the server decode every array, store the
//! unnested rows in a tuplestore and insert them one by one. `COPY` reads each row straight off
//! the wire and inserts them a page at a time (`heap_multi_insert`), with fewer WAL records.

use std::collections::BTreeMap;

use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{AUDIT_FRONTIER_UPSERT, EVENTS_COPY};
use crate::error::{db, StoreError};
use crate::model::AuditRow;

/// The binary `COPY` header: signature, flags (no OIDs), length of the header extension (none).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The binary `COPY` trailer: a row of -1 fields.
const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// The binary `COPY` stream of one statement: its header, then the rows added, then the end.
pub(super) struct CopyRows {
    buf: Vec<u8>,
    fields: i16,
    rows: usize,
}

impl CopyRows {
    /// A whole stream (header, rows, trailer) of rows of `fields` columns each.
    pub(super) fn new(fields: usize, capacity: usize) -> Self {
        let mut rows = Self::part(fields, capacity + HEADER.len());
        rows.buf.extend_from_slice(HEADER);
        rows
    }

    /// Rows in the middle of a stream: no header, and no trailer is added.
    fn part(fields: usize, capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
            fields: i16::try_from(fields).unwrap_or(i16::MAX),
            rows: 0,
        }
    }

    /// Starts the next row; its fields follow, in the statement's column order.
    pub(super) fn row(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&self.fields.to_be_bytes());
        self.rows += 1;
        self
    }

    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        // A field longer than i32::MAX cannot be sent; the server then rejects the row.
        let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
        self
    }

    pub(super) fn null(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    /// `int8`.
    pub(super) fn int8(&mut self, value: i64) -> &mut Self {
        self.field(&value.to_be_bytes())
    }

    /// `text`, UTF-8.
    pub(super) fn text(&mut self, value: &str) -> &mut Self {
        self.field(value.as_bytes())
    }

    /// `bytea`.
    pub(super) fn bytea(&mut self, value: &[u8]) -> &mut Self {
        self.field(value)
    }

    pub(super) fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    pub(super) fn opt_int8(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(v) => self.int8(v),
            None => self.null(),
        }
    }

    pub(super) fn opt_bytea(&mut self, value: Option<&[u8]>) -> &mut Self {
        match value {
            Some(v) => self.bytea(v),
            None => self.null(),
        }
    }

    /// Runs `COPY {target} FROM STDIN (FORMAT binary)` in `tx` with the rows added; `what` names
    /// them in an error.
    pub(super) async fn send(
        mut self,
        tx: &mut Transaction<'static, Postgres>,
        target: &str,
        what: &'static str,
    ) -> Result<(), StoreError> {
        if self.rows == 0 {
            return Ok(());
        }
        self.buf.extend_from_slice(&TRAILER);
        let mut copy = tx
            .copy_in_raw(&format!("COPY {target} FROM STDIN (FORMAT binary)"))
            .await
            .map_err(db(what))?;
        if let Err(err) = copy.send(self.buf).await {
            // The server has seen part of the stream; end it so the connection stays usable
            // (the transaction is failed either way).
            let _ = copy.abort(err.to_string()).await;
            return Err(db(what)(err));
        }
        copy.finish().await.map_err(db(what))?;
        Ok(())
    }
}

/// The columns of [`EVENTS_COPY`] for each of `rows`.
fn audit_rows(rows: &[AuditRow]) -> CopyRows {
    let mut copy = CopyRows::part(10, rows.iter().map(|r| r.bytes.len() + 150).sum());
    for r in rows {
        copy.row()
            .text(&r.customer_id)
            .int8(r.seq)
            .bytea(&r.event_id)
            .int8(i64::from(r.log_partition))
            .int8(r.log_offset)
            .text(&r.event_type)
            .int8(r.occurred_at)
            .int8(r.recorded_at)
            .bytea(&r.bytes)
            .bytea(&r.hash);
    }
    copy
}

/// The audit copy of one PostgreSQL write transaction, written on a connection of its own.
///
/// The audit copy is most of a batch's work in the database (a row and three index entries per
/// event), and a PostgreSQL backend runs one statement at a time: on the batch's connection
/// alone, one core copies events while the other waits. Here a task streams the transaction's
/// audit rows into one `COPY` on a second connection while the batch's other rows (customers,
/// transitions, checkpoints) go over the first.
///
/// The audit transaction commits just before the batch's own. It takes no write lock: it only
/// runs while the batch's transaction holds the store's lock, and the audit copy's keys (event
/// id; customer and seq) refuse a second writer's copy of the same event or chain link. If the
/// batch's commit fails after the audit's, the audit copy holds events no checkpoint covers:
/// `audit_frontier`, written with the rows, makes the next batch look them up by position and
/// fold them without copying them again (they are the same events at the same positions).
pub(super) struct AuditStream {
    pool: PgPool,
    open: Option<OpenAudit>,
    /// Per partition, the furthest position among the rows sent.
    frontier: BTreeMap<i32, i64>,
}

struct OpenAudit {
    /// Dropped to end the `COPY`.
    rows: Option<mpsc::Sender<Vec<u8>>>,
    /// Gives the audit transaction back once its `COPY` is complete.
    task: JoinHandle<Result<Transaction<'static, Postgres>, StoreError>>,
}

impl OpenAudit {
    /// Ends the `COPY` and waits for the task: the audit transaction, or why it failed.
    async fn finish(mut self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.rows = None;
        (&mut self.task)
            .await
            .map_err(|err| StoreError::Invalid(format!("the audit copy's task failed: {err}")))?
    }
}

impl Drop for OpenAudit {
    /// A transaction dropped without commit: its audit rows are rolled back with it.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Chunks of encoded rows the writer may be ahead of the audit connection.
const AUDIT_QUEUE: usize = 8;

impl AuditStream {
    pub(super) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            open: None,
            frontier: BTreeMap::new(),
        }
    }

    /// Queues `rows` for the audit copy, opening its connection and `COPY` at the first rows.
    pub(super) async fn send(&mut self, rows: &[AuditRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        for r in rows {
            let furthest = self.frontier.entry(r.log_partition).or_insert(r.log_offset);
            *furthest = (*furthest).max(r.log_offset);
        }
        let open = self.open.get_or_insert_with(|| {
            let (sender, receiver) = mpsc::channel(AUDIT_QUEUE);
            OpenAudit {
                rows: Some(sender),
                task: tokio::spawn(copy_audit_rows(self.pool.clone(), receiver)),
            }
        });
        let queued = match &open.rows {
            Some(sender) => sender.send(audit_rows(rows).buf).await.is_ok(),
            None => false,
        };
        if !queued {
            // The task stopped early, on an error that finishing it returns.
            if let Some(open) = self.open.take() {
                open.finish().await?;
            }
            return Err(StoreError::Invalid(
                "the audit copy's connection stopped".to_string(),
            ));
        }
        Ok(())
    }

    /// Completes the `COPY`, records the frontier and commits the audit transaction.
    pub(super) async fn commit(mut self) -> Result<(), StoreError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let mut tx = open.finish().await?;
        for (&partition, &offset) in &self.frontier {
            sqlx::query(AUDIT_FRONTIER_UPSERT)
                .bind(i64::from(partition))
                .bind(offset)
                .execute(&mut *tx)
                .await
                .map_err(db("recording the audit frontier"))?;
        }
        tx.commit().await.map_err(db("committing the audit copy"))
    }
}

/// Opens the audit transaction and streams every chunk received into one `COPY`; returns the
/// transaction, uncommitted, once the sender is gone and the server has taken every row.
async fn copy_audit_rows(
    pool: PgPool,
    mut chunks: mpsc::Receiver<Vec<u8>>,
) -> Result<Transaction<'static, Postgres>, StoreError> {
    let what = "writing the audit copy";
    let mut tx = pool
        .begin()
        .await
        .map_err(db("starting the audit copy's transaction"))?;
    let mut copy = tx
        .copy_in_raw(&format!("COPY {EVENTS_COPY} FROM STDIN (FORMAT binary)"))
        .await
        .map_err(db(what))?;
    let mut sent = copy.send(HEADER).await.map(|_| ());
    while sent.is_ok() {
        match chunks.recv().await {
            Some(chunk) => sent = copy.send(chunk).await.map(|_| ()),
            None => {
                sent = copy.send(TRAILER.as_slice()).await.map(|_| ());
                break;
            }
        }
    }
    if let Err(err) = sent {
        let _ = copy.abort(err.to_string()).await;
        return Err(db(what)(err));
    }
    copy.finish().await.map_err(db(what))?;
    Ok(tx)
}
