//! A batch's statements on the SQLite read store, run through rusqlite on the transaction's
//! own connection: its lookups by customer and by event id, and its writes, one prepared
//! single-row statement per kind of row.
//!
//! sqlx sends a statement and its arguments to the connection's worker thread and each row
//! back. For a batch that meant multi-row `INSERT … VALUES` statements of thousands of rows:
//! each was parsed anew, and every argument and row was copied and handed between threads,
//! which cost about as much as SQLite's own b-tree work (`perf`: malloc, memmove and mutexes on
//! the worker thread). sqlx lends the connection out while its worker waits; each statement
//! here is prepared once per batch and re-run with borrowed values.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, OptionalExtension};
use sqlx::{Sqlite, Transaction};

use super::{
    blocking, cause_columns, customer_conflict, push_runs, row_states, FeedEnd, ALL_INDEXED,
    AUDITED_POSITIONS, AUDITED_POSITIONS_COUNT, AUDIT_FRONTIER_UPSERT, CHECKPOINTS_CONFLICT,
    CHECKPOINTS_INSERT, CUSTOMER_COLUMN_COUNT, CUSTOMER_INSERT, CUSTOMER_TAIL_TYPES, EVENTS_INSERT,
    FEED_END, HELD_CONFLICT, HELD_INSERT, INDEXED_COLUMNS, TRANSITIONS_INSERT,
};
use crate::error::{db, sqlite, StoreError};
use crate::model::{BatchWrite, ChainHead, KnownHead, ListKeys, LoadedCustomer, Summary};

/// Runs `f` on the connection of `tx`, inside its open transaction.
pub(super) async fn run<T>(
    tx: &mut Transaction<'static, Sqlite>,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // While `locked` lives, sqlx's worker thread makes no call on the connection or its
    // statements.
    let mut locked = tx
        .lock_handle()
        .await
        .map_err(db("taking the read store's connection"))?;
    let handle = locked.as_raw_handle();
    blocking(|| {
        // SAFETY: `handle` is an open connection that no other thread uses while this runs
        // (see above). `from_handle` borrows it: dropping `conn` finalizes the statements
        // prepared here and leaves the connection, and its transaction, open for sqlx.
        #[allow(unsafe_code)]
        let conn = unsafe { rusqlite::Connection::from_handle(handle.as_ptr()) }
            .map_err(sqlite("borrowing the read store's connection"))?;
        f(&conn)
    })
}

/// What the store holds about `customers` in `version`: state, verdict summary, chain head.
pub(super) fn load_customers(
    conn: &rusqlite::Connection,
    version: i64,
    customers: &[&str],
    heads_of: &[&str],
) -> Result<HashMap<String, LoadedCustomer>, StoreError> {
    let context = "loading the batch's customers";
    let mut loaded = HashMap::with_capacity(customers.len());
    if !customers.is_empty() {
        let mut row = conn
            .prepare(&format!(
                "SELECT {}, evaluated_at, log_partition, log_offset, state_format, state \
                 FROM customers WHERE version = ?1 AND customer_id = ?2",
                INDEXED_COLUMNS.join(", ")
            ))
            .map_err(sqlite(context))?;
        for &customer in customers {
            let stored = row
                .query_row(params![version, customer], |r| {
                    let n = INDEXED_COLUMNS.len();
                    let state_format: Option<i64> = r.get(n + 3)?;
                    let state: Option<Vec<u8>> = r.get(n + 4)?;
                    Ok((
                        Summary {
                            keys: list_keys(r)?,
                            evaluated_at: r.get(n)?,
                            log_partition: r.get(n + 1)?,
                            log_offset: r.get(n + 2)?,
                        },
                        state_format.zip(state),
                    ))
                })
                .optional()
                .map_err(sqlite(context))?;
            if let Some((summary, state)) = stored {
                loaded.insert(
                    customer.to_string(),
                    LoadedCustomer {
                        state,
                        summary: Some(summary),
                        head: KnownHead::Unread,
                    },
                );
            }
        }
    }
    if !heads_of.is_empty() {
        // The chain head is the last row of the customer's audit copy.
        let mut head = conn
            .prepare(
                "SELECT seq, hash FROM customer_events WHERE customer_id = ?1 \
                 ORDER BY seq DESC LIMIT 1",
            )
            .map_err(sqlite(context))?;
        for &customer in heads_of {
            let found = head
                .query_row([customer], |r| {
                    Ok(ChainHead {
                        seq: r.get(0)?,
                        hash: r.get(1)?,
                    })
                })
                .optional()
                .map_err(sqlite(context))?;
            loaded
                .entry(customer.to_string())
                .or_insert(LoadedCustomer {
                    state: None,
                    summary: None,
                    head: KnownHead::Unread,
                })
                .head = KnownHead::Read(found);
        }
    }
    Ok(loaded)
}

/// Those of `ids` present in the audit copy, with the log position they were applied from.
pub(super) fn audited_event_ids(
    conn: &rusqlite::Connection,
    ids: &[[u8; 16]],
) -> Result<HashMap<[u8; 16], (i32, i64)>, StoreError> {
    let context = "looking up applied ids";
    let mut applied = conn
        .prepare("SELECT log_partition, log_offset FROM customer_events WHERE event_id = ?1")
        .map_err(sqlite(context))?;
    let mut found = HashMap::new();
    for id in ids {
        if let Some(position) = applied
            .query_row([id.as_slice()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(sqlite(context))?
        {
            found.insert(*id, position);
        }
    }
    Ok(found)
}

/// The positions within `ranges` that the audit copy holds, as runs (read from its position
/// index alone).
pub(super) fn audited_positions(
    conn: &rusqlite::Connection,
    ranges: &BTreeMap<i32, (i64, i64)>,
) -> Result<Vec<(i32, i64, i64)>, StoreError> {
    let context = "looking up the audit copy by position";
    let mut count = conn
        .prepare(AUDITED_POSITIONS_COUNT)
        .map_err(sqlite(context))?;
    let mut in_range = conn.prepare(AUDITED_POSITIONS).map_err(sqlite(context))?;
    let mut found = Vec::new();
    for (&partition, &(first, last)) in ranges {
        // A rebuild asks about ranges the audit copy holds whole: counting them in the index
        // is quicker than reading every offset back.
        let held: i64 = count
            .query_row(params![partition, first, last], |r| r.get(0))
            .map_err(sqlite(context))?;
        if held == last - first + 1 {
            found.push((partition, first, last));
            continue;
        }
        let offsets = in_range
            .query_map(params![partition, first, last], |r| r.get(0))
            .map_err(sqlite(context))?
            .collect::<Result<Vec<i64>, _>>()
            .map_err(sqlite(context))?;
        push_runs(&mut found, partition, offsets);
    }
    Ok(found)
}

/// For each of `customers` with an open dead letter in `version`: the earliest one's id.
pub(super) fn open_dead_letters_of(
    conn: &rusqlite::Connection,
    version: i64,
    customers: &[&str],
) -> Result<HashMap<String, i64>, StoreError> {
    let context = "finding open dead letters";
    // Usually there are none: one look-up instead of one per customer (a rebuild meets
    // every customer once, in its first batches).
    let any_open: bool = conn
        .prepare(
            "SELECT EXISTS (SELECT 1 FROM dead_letters WHERE status = 'open' AND version = ?1)",
        )
        .and_then(|mut any| any.query_row([version], |r| r.get(0)))
        .map_err(sqlite(context))?;
    if !any_open {
        return Ok(HashMap::new());
    }
    let mut earliest = conn
        .prepare(
            "SELECT MIN(id) FROM dead_letters WHERE status = 'open' AND version = ?1 \
             AND customer_id = ?2",
        )
        .map_err(sqlite(context))?;
    let mut found = HashMap::new();
    for &customer in customers {
        let id: Option<i64> = earliest
            .query_row(params![version, customer], |r| r.get(0))
            .map_err(sqlite(context))?;
        if let Some(id) = id {
            found.insert(customer.to_string(), id);
        }
    }
    Ok(found)
}

/// Writes `batch` for `version`.
pub(super) fn write(
    conn: &rusqlite::Connection,
    version: i64,
    batch: &BatchWrite,
    now: i64,
    feed_end: &mut FeedEnd,
) -> Result<(), StoreError> {
    write_customers(conn, version, batch, feed_end)?;

    let mut frontier: BTreeMap<i32, i64> = BTreeMap::new();
    for row in &batch.events {
        let furthest = frontier.entry(row.log_partition).or_insert(row.log_offset);
        *furthest = (*furthest).max(row.log_offset);
    }
    insert_rows(
        conn,
        (EVENTS_INSERT, 10, ""),
        1,
        &batch.events,
        "writing the audit copy",
        |st, first, row| {
            bind_row(
                st,
                first,
                params![
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
                ],
            )
        },
    )?;
    let mut advance = conn
        .prepare(AUDIT_FRONTIER_UPSERT)
        .map_err(sqlite("preparing the audit frontier write"))?;
    for (partition, offset) in frontier {
        advance
            .execute(params![partition, offset])
            .map_err(sqlite("recording the audit frontier"))?;
    }

    insert_rows(
        conn,
        (TRANSITIONS_INSERT, 10, ""),
        SMALL_ROWS_PER_INSERT,
        &batch.transitions,
        "writing transitions",
        |st, first, row| {
            let (cause, event_id, partition, offset) = cause_columns(&row.cause);
            bind_row(
                st,
                first,
                params![
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
                ],
            )
        },
    )?;

    insert_rows(
        conn,
        (HELD_INSERT, 7, HELD_CONFLICT),
        1,
        &batch.held,
        "holding events",
        |st, first, row| {
            bind_row(
                st,
                first,
                params![
                    version,
                    row.log_partition,
                    row.log_offset,
                    row.customer_id,
                    row.dead_letter_id,
                    row.recorded_at,
                    row.bytes,
                ],
            )
        },
    )?;

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
/// `INDEXED_COLUMNS`): the values the batch loaded, or else read here. Every row written moves
/// to the end of its version's change feed; the transaction holds the store's write lock, so no
/// other writer takes these seqs.
fn write_customers(
    conn: &rusqlite::Connection,
    version: i64,
    batch: &BatchWrite,
    feed_end: &mut FeedEnd,
) -> Result<(), StoreError> {
    let states = row_states(batch)?;
    if batch.customers.is_empty() {
        return Ok(());
    }
    let last = match feed_end.known(version) {
        Some(last) => last,
        None => conn
            .query_row(FEED_END, [version], |r| r.get::<_, Option<i64>>(0))
            .map_err(sqlite("reading the change feed's end"))?
            .unwrap_or(0),
    };
    let seqs = feed_end.take(version, last, batch.customers.len());
    let mut stored = conn
        .prepare(&format!(
            "SELECT {} FROM customers WHERE version = ?1 AND customer_id = ?2",
            INDEXED_COLUMNS.join(", ")
        ))
        .map_err(sqlite("preparing the list key lookup"))?;
    let mut upserts: HashMap<u16, rusqlite::Statement<'_>> = HashMap::new();
    for ((row, state), seq) in batch.customers.iter().zip(states).zip(seqs) {
        let changed = match batch.stored_keys.get(&row.customer_id) {
            Some(keys) => keys.changed(row),
            None => stored
                .query_row(params![version, row.customer_id], list_keys)
                .optional()
                .map_err(sqlite("reading a customer's list keys"))?
                .map_or(ALL_INDEXED, |keys| keys.changed(row)),
        };
        let upsert = match upserts.entry(changed) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                conn.prepare(&one_row(
                    CUSTOMER_INSERT,
                    1 + CUSTOMER_COLUMN_COUNT + CUSTOMER_TAIL_TYPES.len(),
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
                state.map(|s| s.format),
                state.map(|s| s.state.as_slice()),
                seq,
            ])
            .map_err(sqlite("writing customers"))?;
    }
    Ok(())
}

/// The list keys of a row whose first columns are `INDEXED_COLUMNS`, in that order.
fn list_keys(r: &rusqlite::Row<'_>) -> rusqlite::Result<ListKeys> {
    Ok(ListKeys {
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
}

/// `insert` (`INSERT INTO t (columns) `) with one row of `columns` numbered parameters, then
/// `tail` (an `ON CONFLICT` clause, or nothing).
fn one_row(insert: &str, columns: usize, tail: &str) -> String {
    let parameters: Vec<String> = (1..=columns).map(|i| format!("?{i}")).collect();
    format!("{insert}VALUES ({}){tail}", parameters.join(", "))
}

/// Rows per multi-row `INSERT` of small rows. A single-row statement spends about as long
/// starting and resetting its step as inserting a small row: 224 000 transitions took 0.57 s
/// one row a statement and 0.31 s thirty-two. Rows carrying an event's bytes go one a
/// statement: there the binding dominates, and the live projection into SQLite was 8 % slower
/// with its audit copy thirty-two rows a statement.
const SMALL_ROWS_PER_INSERT: usize = 32;

/// Inserts `rows` with the statement `insert` (`INSERT INTO t (columns) `) of `columns` values
/// a row, then `tail` (an `ON CONFLICT` clause, or nothing): `per_statement` rows a step, the
/// rest one by one. `bind` binds a row's values from the parameter numbered `first` on.
fn insert_rows<R>(
    conn: &rusqlite::Connection,
    (insert, columns, tail): (&str, usize, &str),
    per_statement: usize,
    rows: &[R],
    context: &'static str,
    bind: impl Fn(&mut rusqlite::Statement<'_>, usize, &R) -> rusqlite::Result<()>,
) -> Result<(), StoreError> {
    let cut = if per_statement > 1 {
        rows.len() - rows.len() % per_statement
    } else {
        0
    };
    if cut > 0 {
        let row = format!("({})", vec!["?"; columns].join(", "));
        let mut many = conn
            .prepare(&format!(
                "{insert}VALUES {}{tail}",
                vec![row.as_str(); per_statement].join(", ")
            ))
            .map_err(sqlite(context))?;
        for chunk in rows[..cut].chunks_exact(per_statement) {
            for (n, row) in chunk.iter().enumerate() {
                bind(&mut many, 1 + n * columns, row).map_err(sqlite(context))?;
            }
            many.raw_execute().map_err(sqlite(context))?;
        }
    }
    let rest = &rows[cut..];
    if !rest.is_empty() {
        let mut one = conn
            .prepare(&one_row(insert, columns, tail))
            .map_err(sqlite(context))?;
        for row in rest {
            bind(&mut one, 1, row).map_err(sqlite(context))?;
            one.raw_execute().map_err(sqlite(context))?;
        }
    }
    Ok(())
}

/// Binds `values` to the parameters numbered `first` on.
fn bind_row(
    statement: &mut rusqlite::Statement<'_>,
    first: usize,
    values: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<()> {
    for (k, value) in values.iter().enumerate() {
        statement.raw_bind_parameter(first + k, value)?;
    }
    Ok(())
}
