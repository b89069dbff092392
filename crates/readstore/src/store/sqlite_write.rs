//! A batch's rows written into the SQLite read store: one prepared single-row statement per
//! kind of row, run on the transaction's own connection.
//!
//! sqlx sends a statement and its arguments to the connection's worker thread. For a batch
//! that meant multi-row `INSERT … VALUES` statements of thousands of rows: each was parsed
//! anew, and every argument was copied into sqlx's buffers and handed over, which cost about as
//! much as SQLite's own b-tree work (`perf`: malloc, memmove and mutexes on the worker thread).
//! Here the batch is written through rusqlite on the same connection, which sqlx lends out while
//! its worker waits: each statement is prepared once per batch and re-run with borrowed values.

use std::collections::HashMap;
use std::ptr::NonNull;

use rusqlite::{params, OptionalExtension};

use super::{
    cause_columns, customer_conflict, IndexedValues, ALL_INDEXED, CHANGES_CONFLICT, CHANGES_INSERT,
    CHECKPOINTS_CONFLICT, CHECKPOINTS_INSERT, CUSTOMER_COLUMN_COUNT, CUSTOMER_INSERT,
    EVENTS_INSERT, HEADS_CONFLICT, HEADS_INSERT, HELD_CONFLICT, HELD_INSERT, INDEXED_COLUMNS,
    STATES_CONFLICT, STATES_INSERT, TRANSITIONS_INSERT,
};
use crate::error::{sqlite, StoreError};
use crate::model::{BatchWrite, CustomerRow};

/// Writes `batch` for `version` on the connection `handle`, inside its open transaction.
///
/// The caller holds sqlx's lock on the connection (`LockedSqliteHandle`), which guarantees
/// that sqlx's worker thread makes no call on it or its statements meanwhile.
pub(super) fn write(
    handle: NonNull<rusqlite::ffi::sqlite3>,
    version: i64,
    batch: &BatchWrite,
    now: i64,
) -> Result<(), StoreError> {
    // SAFETY: `handle` is an open connection that no other thread uses while this runs (see
    // above). `from_handle` borrows it: dropping the returned value finalizes the statements
    // prepared here and leaves the connection, and its transaction, open for sqlx.
    #[allow(unsafe_code)]
    let conn = unsafe { rusqlite::Connection::from_handle(handle.as_ptr()) }
        .map_err(sqlite("borrowing the connection for a batch's write"))?;
    write_customers(&conn, version, &batch.customers)?;
    write_changes(&conn, version, &batch.customers)?;

    let mut states = conn
        .prepare(&one_row(STATES_INSERT, 4, STATES_CONFLICT))
        .map_err(sqlite("preparing the state write"))?;
    for row in &batch.states {
        states
            .execute(params![version, row.customer_id, row.format, row.state])
            .map_err(sqlite("writing states"))?;
    }

    let mut events = conn
        .prepare(&one_row(EVENTS_INSERT, 10, ""))
        .map_err(sqlite("preparing the audit copy write"))?;
    for row in &batch.events {
        events
            .execute(params![
                row.customer_id,
                row.seq,
                row.event_id.as_slice(),
                row.log_partition,
                row.log_offset,
                row.event_type,
                row.occurred_at,
                row.recorded_at,
                row.bytes,
                row.hash.as_slice(),
            ])
            .map_err(sqlite("writing the audit copy"))?;
    }

    let mut heads = conn
        .prepare(&one_row(HEADS_INSERT, 3, HEADS_CONFLICT))
        .map_err(sqlite("preparing the chain head write"))?;
    for (customer, head) in &batch.heads {
        heads
            .execute(params![customer, head.seq, head.hash.as_slice()])
            .map_err(sqlite("writing chain heads"))?;
    }

    let mut transitions = conn
        .prepare(&one_row(TRANSITIONS_INSERT, 10, ""))
        .map_err(sqlite("preparing the transition write"))?;
    for row in &batch.transitions {
        let (cause, event_id, partition, offset) = cause_columns(&row.cause);
        transitions
            .execute(params![
                version,
                row.customer_id,
                row.dimension,
                row.from_value,
                row.to_value,
                cause,
                event_id,
                partition,
                offset,
                row.at,
            ])
            .map_err(sqlite("writing transitions"))?;
    }

    let mut held = conn
        .prepare(&one_row(HELD_INSERT, 7, HELD_CONFLICT))
        .map_err(sqlite("preparing the held event write"))?;
    for row in &batch.held {
        held.execute(params![
            version,
            row.log_partition,
            row.log_offset,
            row.customer_id,
            row.dead_letter_id,
            row.recorded_at,
            row.bytes,
        ])
        .map_err(sqlite("holding events"))?;
    }

    let mut checkpoints = conn
        .prepare(&one_row(CHECKPOINTS_INSERT, 4, CHECKPOINTS_CONFLICT))
        .map_err(sqlite("preparing the checkpoint write"))?;
    for (partition, offset) in &batch.checkpoints {
        checkpoints
            .execute(params![version, partition, offset, now])
            .map_err(sqlite("writing checkpoints"))?;
    }
    Ok(())
}

/// Each row assigns only the indexed columns whose stored value it changes (see
/// `INDEXED_COLUMNS`), so the stored values are read first.
fn write_customers(
    conn: &rusqlite::Connection,
    version: i64,
    rows: &[CustomerRow],
) -> Result<(), StoreError> {
    let mut stored = conn
        .prepare(&format!(
            "SELECT {} FROM customers WHERE version = ?1 AND customer_id = ?2",
            INDEXED_COLUMNS.join(", ")
        ))
        .map_err(sqlite("preparing the list key lookup"))?;
    let mut upserts: HashMap<u16, rusqlite::Statement<'_>> = HashMap::new();
    for row in rows {
        let changed = stored
            .query_row(params![version, row.customer_id], |r| {
                Ok(IndexedValues {
                    owner: r.get(0)?,
                    segment: r.get(1)?,
                    region: r.get(2)?,
                    grade: r.get(3)?,
                    score: r.get(4)?,
                    grade_inputs: r.get(5)?,
                    stage: r.get(6)?,
                    last_activity_on: r.get(7)?,
                    risk_band: r.get(8)?,
                    risk: r.get(9)?,
                })
            })
            .optional()
            .map_err(sqlite("reading a customer's list keys"))?
            .map_or(ALL_INDEXED, |values| values.changed(row));
        let upsert = match upserts.entry(changed) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                conn.prepare(&one_row(
                    CUSTOMER_INSERT,
                    CUSTOMER_COLUMN_COUNT + 1,
                    &customer_conflict(changed),
                ))
                .map_err(sqlite("preparing the customer write"))?,
            ),
        };
        let [f0, f1, f2, f3, f4] = &row.factors;
        upsert
            .execute(params![
                version,
                row.customer_id,
                row.name,
                row.owner,
                row.segment,
                row.region,
                row.channel,
                row.grade,
                row.score,
                row.stage,
                row.stage_since,
                row.stage_rule,
                row.risk,
                row.risk_band,
                row.open_complaints,
                row.active_contracts,
                row.last_purchase_on,
                row.last_interaction_on,
                row.last_activity_on,
                row.currency,
                row.sales_3m_minor,
                row.sales_12m_minor,
                f0.raw,
                f0.score,
                f1.raw,
                f1.score,
                f2.raw,
                f2.score,
                f3.raw,
                f3.score,
                f4.raw,
                f4.score,
                row.card,
                row.code_version,
                row.grading_version,
                row.lifecycle_version,
                row.churn_version,
                row.log_partition,
                row.log_offset,
                row.events,
                row.evaluated_at,
                row.grade_inputs,
            ])
            .map_err(sqlite("writing customers"))?;
    }
    Ok(())
}

/// Every customer written moves to the end of its version's change feed. The transaction holds
/// the store's write lock, so no other writer takes these seqs.
fn write_changes(
    conn: &rusqlite::Connection,
    version: i64,
    rows: &[CustomerRow],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let last: Option<i64> = conn
        .query_row(
            "SELECT MAX(seq) FROM customer_changes WHERE version = ?1",
            [version],
            |r| r.get(0),
        )
        .map_err(sqlite("reading the change feed's end"))?;
    let mut change = conn
        .prepare(&one_row(CHANGES_INSERT, 3, CHANGES_CONFLICT))
        .map_err(sqlite("preparing the change feed write"))?;
    for (seq, row) in (last.unwrap_or(0) + 1..).zip(rows) {
        change
            .execute(params![version, row.customer_id, seq])
            .map_err(sqlite("writing the change feed"))?;
    }
    Ok(())
}

/// `insert` (`INSERT INTO t (columns) `) with one row of `columns` numbered parameters, then
/// `tail` (an `ON CONFLICT` clause, or nothing).
fn one_row(insert: &str, columns: usize, tail: &str) -> String {
    let parameters: Vec<String> = (1..=columns).map(|i| format!("?{i}")).collect();
    format!("{insert}VALUES ({}){tail}", parameters.join(", "))
}
