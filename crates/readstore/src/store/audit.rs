//! Read-side queries for auditors and analysts: one customer's audit copy (replay), the audit
//! copies of a page of customers (export as of a time), and keyset pages of the customer rows
//! (export, what-if simulation). Every query pages or names its customers, so a caller walks a
//! store of any size in constant memory.

use std::path::Path;

use futures::TryStreamExt as _;
use sqlx::{Postgres, QueryBuilder, Row, Sqlite};
use tokio::sync::mpsc;

use super::{customer_of, hash32, id16, Backend, ReadStore, CUSTOMER_SELECT, LOOKUP_CHUNK};
use crate::error::{db, sqlite, StoreError};
use crate::model::{AuditRow, CustomerRow};

const AUDIT_SELECT: &str = "SELECT customer_id, seq, event_id, log_partition, log_offset, \
     event_type, occurred_at, recorded_at, bytes, hash FROM customer_events";

/// What what-if grading reads of a customer: its current grade and score and the card JSON,
/// whose `grade_inputs` are re-graded.
#[derive(Debug, Clone, PartialEq)]
pub struct GradeRow {
    pub customer_id: String,
    pub grade: String,
    pub score: f64,
    /// `GradeInputs`, postcard-encoded; empty for rows written before the column existed.
    pub grade_inputs: Vec<u8>,
}

fn audit_of<R: Row>(r: &R) -> Result<AuditRow, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let e = || db("reading the audit copy");
    let partition: i64 = r.try_get(3).map_err(e())?;
    Ok(AuditRow {
        customer_id: r.try_get(0).map_err(e())?,
        seq: r.try_get(1).map_err(e())?,
        event_id: id16(r.try_get(2).map_err(e())?)?,
        log_partition: partition as i32,
        log_offset: r.try_get(4).map_err(e())?,
        event_type: r.try_get(5).map_err(e())?,
        occurred_at: r.try_get(6).map_err(e())?,
        recorded_at: r.try_get(7).map_err(e())?,
        bytes: r.try_get(8).map_err(e())?,
        hash: hash32(r.try_get(9).map_err(e())?)?,
    })
}

impl ReadStore {
    /// One customer's audit copy in chain (log) order; empty if the customer has none.
    pub async fn customer_events(&self, customer_id: &str) -> Result<Vec<AuditRow>, StoreError> {
        per_backend!(&self.backend, Backend, pool => {
            let mut q = QueryBuilder::<Db>::new(AUDIT_SELECT);
            q.push(" WHERE customer_id = ").push_bind(customer_id).push(" ORDER BY seq");
            q.build()
                .fetch_all(pool)
                .await
                .map_err(db("reading a customer's audit copy"))?
                .iter()
                .map(audit_of)
                .collect()
        })
    }

    /// The audit copies of `customers`, ordered by customer then chain order.
    pub async fn customer_events_of(
        &self,
        customers: &[String],
    ) -> Result<Vec<AuditRow>, StoreError> {
        let mut out = Vec::new();
        for chunk in customers.chunks(LOOKUP_CHUNK) {
            per_backend!(&self.backend, Backend, pool => {
                let mut q = QueryBuilder::<Db>::new(AUDIT_SELECT);
                q.push(" WHERE customer_id IN (");
                let mut ids = q.separated(", ");
                for id in chunk {
                    ids.push_bind(id.as_str());
                }
                q.push(") ORDER BY customer_id, seq");
                let mut rows = q.build().fetch(pool);
                while let Some(r) = rows.try_next().await.map_err(db("reading audit copies"))? {
                    out.push(audit_of(&r)?);
                }
            });
        }
        Ok(out)
    }

    /// Up to `limit` customer rows of `version` with ids after `after`, by id (keyset paging:
    /// the caller passes the last id of the previous page, `""` for the first).
    pub async fn customers_page(
        &self,
        version: i64,
        after: &str,
        limit: i64,
    ) -> Result<Vec<CustomerRow>, StoreError> {
        per_backend!(&self.backend, Backend, pool => {
            let mut q = QueryBuilder::<Db>::new(CUSTOMER_SELECT);
            q.push(" WHERE version = ").push_bind(version);
            q.push(" AND customer_id > ").push_bind(after);
            q.push(" ORDER BY customer_id LIMIT ").push_bind(limit);
            q.build()
                .fetch_all(pool)
                .await
                .map_err(db("reading a page of customers"))?
                .iter()
                .map(customer_of)
                .collect()
        })
    }

    /// Every grade row of `version` in customer order, as pages read ahead of the caller (on a
    /// thread of their own for SQLite, a task for PostgreSQL) while it works on the previous one.
    pub fn grade_pages(&self, version: i64) -> GradePages {
        let (pages, receiver) = mpsc::channel(2);
        match (&self.backend, &self.sqlite_file) {
            (Backend::Sqlite(_), Some(file)) => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(err) = scan_sqlite_grades(&file, version, &pages) {
                        let _ = pages.blocking_send(Err(err));
                    }
                });
            }
            _ => {
                tokio::spawn(page_grades(self.clone(), version, pages));
            }
        }
        GradePages { receiver }
    }
}

/// Rows per page of [`ReadStore::grade_pages`].
const GRADE_PAGE: usize = 5_000;

/// The pages of [`ReadStore::grade_pages`]; dropping it stops the scan.
pub struct GradePages {
    receiver: mpsc::Receiver<Result<Vec<GradeRow>, StoreError>>,
}

impl GradePages {
    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<GradeRow>>, StoreError> {
        self.receiver.recv().await.transpose()
    }
}

type PageSender = mpsc::Sender<Result<Vec<GradeRow>, StoreError>>;

const GRADE_SELECT: &str = "SELECT customer_id, grade, score, grade_inputs FROM customers";

/// One statement over the covering index, in one read transaction (a consistent snapshot), on
/// a connection of its own: sqlx hands every row from its SQLite thread to the caller's task,
/// which costs more than reading the row.
fn scan_sqlite_grades(file: &Path, version: i64, pages: &PageSender) -> Result<(), StoreError> {
    let context = "scanning the grades";
    let conn = rusqlite::Connection::open_with_flags(
        file,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(context))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(sqlite(context))?;
    let mut statement = conn
        .prepare(&format!(
            "{GRADE_SELECT} WHERE version = ?1 ORDER BY customer_id"
        ))
        .map_err(sqlite(context))?;
    let mut rows = statement.query([version]).map_err(sqlite(context))?;
    let mut page = Vec::with_capacity(GRADE_PAGE);
    while let Some(r) = rows.next().map_err(sqlite(context))? {
        page.push(GradeRow {
            customer_id: r.get(0).map_err(sqlite(context))?,
            grade: r.get(1).map_err(sqlite(context))?,
            score: r.get(2).map_err(sqlite(context))?,
            grade_inputs: r
                .get::<_, Option<Vec<u8>>>(3)
                .map_err(sqlite(context))?
                .unwrap_or_default(),
        });
        if page.len() == GRADE_PAGE {
            let full = std::mem::replace(&mut page, Vec::with_capacity(GRADE_PAGE));
            if pages.blocking_send(Ok(full)).is_err() {
                return Ok(());
            }
        }
    }
    if !page.is_empty() {
        let _ = pages.blocking_send(Ok(page));
    }
    Ok(())
}

/// Keyset pages by customer id, each its own statement.
async fn page_grades(store: ReadStore, version: i64, pages: PageSender) {
    let mut after = String::new();
    loop {
        let page = store.grade_page(version, &after).await;
        let last = match &page {
            Ok(rows) => match rows.last() {
                Some(row) => row.customer_id.clone(),
                None => return,
            },
            Err(_) => String::new(),
        };
        let failed = page.is_err();
        if pages.send(page).await.is_err() || failed {
            return;
        }
        after = last;
    }
}

impl ReadStore {
    /// Up to a page of `version`'s grade rows with ids after `after`, by id.
    async fn grade_page(&self, version: i64, after: &str) -> Result<Vec<GradeRow>, StoreError> {
        per_backend!(&self.backend, Backend, pool => {
            let mut q = QueryBuilder::<Db>::new(GRADE_SELECT);
            q.push(" WHERE version = ").push_bind(version);
            q.push(" AND customer_id > ").push_bind(after);
            q.push(" ORDER BY customer_id LIMIT ").push_bind(GRADE_PAGE as i64);
            q.build()
                .fetch_all(pool)
                .await
                .map_err(db("reading a page of grades"))?
                .iter()
                .map(|r| {
                    let e = || db("reading a page of grades");
                    Ok(GradeRow {
                        customer_id: r.try_get(0).map_err(e())?,
                        grade: r.try_get(1).map_err(e())?,
                        score: r.try_get(2).map_err(e())?,
                        grade_inputs: r
                            .try_get::<Option<Vec<u8>>, _>(3)
                            .map_err(e())?
                            .unwrap_or_default(),
                    })
                })
                .collect()
        })
    }
}
