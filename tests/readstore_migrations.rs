//! Migrations that carry rows over: a store filled under the schema before the migration,
//! then opened (which applies the rest), keeps what the rows meant.

use clientlog_readstore::test_support::{Backend, TestStore};
use clientlog_readstore::{BatchWrite, ReadStore, StoreConfig};
use sqlx::{Connection, PgConnection, Row, SqliteConnection};

/// Runs `statements` on the store's database, outside the store, and returns the rows of the
/// last one as (text, integer) pairs.
async fn sql(config: &StoreConfig, statements: &[&str]) -> Vec<(String, i64)> {
    // The same loop over either driver's connection.
    macro_rules! run_all {
        ($conn:expr) => {{
            let mut rows = Vec::new();
            for statement in statements {
                rows = sqlx::query(statement)
                    .fetch_all(&mut $conn)
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"))
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
            }
            rows
        }};
    }
    match config {
        StoreConfig::Sqlite { path } => {
            let url = format!("sqlite://{}", path.display());
            let mut conn = SqliteConnection::connect(&url).await.expect("connect");
            run_all!(conn)
        }
        StoreConfig::Postgres { url } => {
            let mut conn = PgConnection::connect(url).await.expect("connect");
            run_all!(conn)
        }
    }
}

/// A customers row of the schema before the change feed moved into it, every required column
/// given.
fn customer(version: i64, id: &str, empty_bytes: &str) -> String {
    format!(
        "INSERT INTO customers (version, customer_id, grade, score, stage, stage_since, \
         stage_rule, risk, risk_band, open_complaints, active_contracts, sales_3m_minor, \
         sales_12m_minor, monthly_sales_score, sales_growth_score, channel_coverage_score, \
         loyalty_score, development_prospects_score, card, code_version, grading_version, \
         lifecycle_version, churn_version, log_partition, log_offset, events, evaluated_at, \
         grade_inputs) VALUES ({version}, '{id}', 'B', 80.0, 'established', '2025-01-01', \
         'established.buying', 10.0, 'low', 0, 1, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, '{{}}', 1, \
         'g1', 'l1', 'c1', 0, 5, 1, 0, {empty_bytes})"
    )
}

async fn feed(config: &StoreConfig, version: i64) -> Vec<(String, i64)> {
    sql(
        config,
        &[&format!(
            "SELECT customer_id, change_seq FROM customers WHERE version = {version} \
             ORDER BY change_seq"
        )],
    )
    .await
}

async fn change_feed_moves_into_customers(test: &str, backend: Backend) {
    let Some(store) = TestStore::new(test, backend).await else {
        return;
    };
    let migration = "change seq in customers";
    store.migrate_before(migration).await.expect("older schema");
    let (empty_bytes, feed_table) = match backend {
        Backend::Sqlite => (
            "X''",
            "SELECT name, 0 FROM sqlite_master WHERE name LIKE 'customer_changes%'",
        ),
        Backend::Postgres => (
            "'\\x'::bytea",
            "SELECT relname::text, 0::bigint FROM pg_class WHERE relname LIKE 'customer_changes%'",
        ),
    };
    let mut fill: Vec<String> = ["c1", "c2", "c3"]
        .iter()
        .map(|id| customer(1, id, empty_bytes))
        .collect();
    fill.push(customer(2, "c1", empty_bytes));
    // The feed's order is not the ids' order, and each version has a feed of its own.
    fill.push(
        "INSERT INTO customer_changes (version, customer_id, seq) VALUES \
         (1, 'c2', 1), (1, 'c3', 2), (1, 'c1', 3), (2, 'c1', 1)"
            .to_string(),
    );
    let fill: Vec<&str> = fill.iter().map(String::as_str).collect();
    sql(&store.config, &fill).await;

    let opened: ReadStore = store.open().await.expect("the migrations after it");
    assert_eq!(
        feed(&store.config, 1).await,
        vec![("c2".into(), 1), ("c3".into(), 2), ("c1".into(), 3)],
        "{migration}: version 1's feed as it was"
    );
    assert_eq!(feed(&store.config, 2).await, vec![("c1".into(), 1)]);
    assert!(
        sql(&store.config, &[feed_table]).await.is_empty(),
        "{migration}: the old feed table is gone"
    );

    // A customer written again moves to the end of its version's feed, after the carried
    // seqs; the other version's feed does not move.
    let row = opened
        .customer(1, "c2")
        .await
        .expect("read")
        .expect("c2 of version 1");
    let mut tx = opened.begin().await.expect("begin");
    tx.write(
        1,
        &BatchWrite {
            customers: vec![row],
            ..BatchWrite::default()
        },
        0,
    )
    .await
    .expect("write");
    tx.commit().await.expect("commit");
    assert_eq!(
        feed(&store.config, 1).await,
        vec![("c3".into(), 2), ("c1".into(), 3), ("c2".into(), 4)]
    );
    assert_eq!(feed(&store.config, 2).await, vec![("c1".into(), 1)]);
    opened.close().await;
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_feed_moves_into_customers_sqlite() {
    change_feed_moves_into_customers("change_feed_moves_into_customers_sqlite", Backend::Sqlite)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_feed_moves_into_customers_postgres() {
    change_feed_moves_into_customers(
        "change_feed_moves_into_customers_postgres",
        Backend::Postgres,
    )
    .await;
}
