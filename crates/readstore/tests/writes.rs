//! Writing customers rows to the embedded store: a rewrite assigns only the indexed columns
//! that changed, and what is read back — through the table and through its list indexes — is
//! always the row last written. Commits are copied into the database file by the store's
//! checkpoint thread, not by the committing writer.

use std::path::Path;
use std::time::{Duration, Instant};

use clientlog_readstore::{BatchWrite, CustomerRow, FactorValue, Lineage, ReadStore, StoreConfig};

fn lineage() -> Lineage {
    Lineage {
        code_version: 1,
        state_format: 1,
        grading_version: "g".into(),
        lifecycle_version: "l".into(),
        churn_version: "c".into(),
    }
}

fn row(id: &str) -> CustomerRow {
    CustomerRow {
        customer_id: id.into(),
        name: Some(format!("Name of {id}")),
        owner: Some("rep-1".into()),
        segment: Some("retail".into()),
        region: Some("north".into()),
        channel: Some("online".into()),
        grade: "C".into(),
        score: 61.5,
        stage: "established".into(),
        stage_since: "2025-01-01".into(),
        stage_rule: "rule".into(),
        risk: 20.0,
        risk_band: "low".into(),
        open_complaints: 0,
        active_contracts: 1,
        last_purchase_on: Some("2025-06-01".into()),
        last_interaction_on: None,
        last_activity_on: Some("2025-06-01".into()),
        currency: Some("EUR".into()),
        sales_3m_minor: 1000,
        sales_12m_minor: 4000,
        factors: std::array::from_fn(|i| FactorValue {
            raw: Some(i as f64),
            score: 10.0 * i as f64,
        }),
        card: format!("{{\"id\":\"{id}\"}}"),
        code_version: 1,
        grading_version: "g".into(),
        lifecycle_version: "l".into(),
        churn_version: "c".into(),
        log_partition: 0,
        log_offset: 1,
        events: 1,
        evaluated_at: 1_700_000_000,
        grade_inputs: vec![1, 2, 3],
    }
}

/// A new embedded store at `path` and its live version.
async fn store_with_live_version(path: &Path) -> (ReadStore, i64) {
    let store = ReadStore::open(&StoreConfig::Sqlite {
        path: path.to_path_buf(),
    })
    .await
    .expect("open");
    let version = store
        .ensure_live_version(&lineage(), &[])
        .await
        .expect("version")
        .version;
    (store, version)
}

async fn write(store: &ReadStore, version: i64, rows: &[CustomerRow]) {
    let mut tx = store.begin().await.expect("begin");
    let batch = BatchWrite {
        customers: rows.to_vec(),
        ..BatchWrite::default()
    };
    tx.write(version, &batch, 0).await.expect("write");
    tx.commit().await.expect("commit");
}

fn ids_where(path: &Path, version: i64, filter: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).expect("open");
    let mut statement = conn
        .prepare(&format!(
            "SELECT customer_id FROM customers WHERE version = ?1 AND {filter} ORDER BY customer_id"
        ))
        .expect("prepare");
    let ids = statement
        .query_map([version], |r| r.get(0))
        .expect("query")
        .collect::<Result<Vec<String>, _>>()
        .expect("rows");
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_that_change_some_indexed_columns_read_back_as_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("readstore.db");
    let (store, version) = store_with_live_version(&path).await;

    let mut rows: Vec<CustomerRow> = ["A", "B", "C"].into_iter().map(row).collect();
    write(&store, version, &rows).await;
    // Each step changes another set of indexed columns of some rows (and the card of all),
    // so one batch mixes rows that need different statements.
    let steps: [fn(&mut CustomerRow); 7] = [
        |r| r.owner = Some("rep-2".into()),
        |r| r.score += 1.0,
        |r| {
            r.risk = 80.0;
            r.risk_band = "high".into();
        },
        |r| r.last_activity_on = Some("2025-07-01".into()),
        |r| {
            r.grade = "B".into();
            r.grade_inputs = vec![9];
        },
        |r| {
            r.segment = None;
            r.region = Some("south".into());
            r.stage = "declining".into();
        },
        |_| {},
    ];
    for (n, step) in steps.iter().enumerate() {
        for (i, r) in rows.iter_mut().enumerate() {
            if (n + i) % 2 == 0 {
                step(r);
            }
            r.card = format!("{{\"id\":\"{}\",\"step\":{n}}}", r.customer_id);
            r.log_offset += 1;
        }
        write(&store, version, &rows).await;
        let stored = store.snapshot(version).await.expect("snapshot").customers;
        assert_eq!(stored, rows, "after step {n}");
    }

    // The list indexes agree with the table (integrity_check compares every index entry with
    // its row), and queries answered from them find the rows by their new values.
    let conn = rusqlite::Connection::open(&path).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    type Selects = fn(&CustomerRow) -> bool;
    let filters: [(&str, Selects); 5] = [
        ("owner = 'rep-2'", |r: &CustomerRow| {
            r.owner.as_deref() == Some("rep-2")
        }),
        ("risk_band = 'high'", |r: &CustomerRow| {
            r.risk_band == "high"
        }),
        ("grade = 'B'", |r: &CustomerRow| r.grade == "B"),
        ("region = 'south'", |r: &CustomerRow| {
            r.region.as_deref() == Some("south")
        }),
        ("stage = 'declining'", |r: &CustomerRow| {
            r.stage == "declining"
        }),
    ];
    for (filter, selects) in filters {
        let expected: Vec<String> = rows
            .iter()
            .filter(|r| selects(r))
            .map(|r| r.customer_id.clone())
            .collect();
        assert!(!expected.is_empty(), "{filter} selects some rows");
        assert_eq!(ids_where(&path, version, filter), expected, "{filter}");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_copied_into_the_database_file_beside_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("readstore.db");
    let (store, version) = store_with_live_version(&path).await;
    // Held open throughout: a database whose last connection closes is checkpointed then,
    // which would hide whether anything checkpointed before.
    let _reader = rusqlite::Connection::open(&path).expect("reader");
    let before = std::fs::metadata(&path).expect("size").len();

    let rows: Vec<CustomerRow> = (0..2_000).map(|i| row(&format!("C{i:05}"))).collect();
    write(&store, version, &rows).await;
    // The commit's pages are in the WAL; the checkpoint thread copies them into the file.
    let started = Instant::now();
    while std::fs::metadata(&path).expect("size").len() <= before {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing was copied into the database file within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.customer_count(version).await.expect("count"), 2_000);
    store.close().await;
}
