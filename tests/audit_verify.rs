//! `clientlog verify` end to end: a store built by the real projector (with a re-evaluation
//! and a later batch at another as_of, so rows have different `evaluated_at`) verifies clean;
//! after tampering with one audit row's bytes and one customer's card in the database, both
//! are reported by customer and field, with a non-zero exit. SQLite always, PostgreSQL when
//! `CLIENTLOG_TEST_DATABASE_URL` is set.

use std::process::{Command, Output, Stdio};

use clientlog_readstore::test_support::{Backend, TestStore};
use clientlog_readstore::StoreConfig;

const BIN: &str = env!("CARGO_BIN_EXE_clientlog");

fn clientlog(store: &TestStore, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).arg("--data").arg(store.dir());
    if let Some(url) = &store.url {
        command.arg("--database-url").arg(url);
    }
    command
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run clientlog")
}

fn ok(store: &TestStore, args: &[&str]) -> String {
    let out = clientlog(store, args);
    assert!(
        out.status.success(),
        "clientlog {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn append(store: &TestStore, file: &std::path::Path) {
    let out = Command::new(BIN)
        .arg("append")
        .arg(file)
        .arg("--data")
        .arg(store.dir())
        .output()
        .expect("append");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs one statement with `?`/`$n` placeholders for the store's database.
async fn execute(store: &TestStore, sqlite: &str, postgres: &str, args: (Vec<u8>, String, i64)) {
    match &store.config {
        StoreConfig::Sqlite { path } => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query(sqlite)
                .bind(args.0)
                .bind(args.1)
                .bind(args.2)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        StoreConfig::Postgres { url } => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query(postgres)
                .bind(args.0)
                .bind(args.1)
                .bind(args.2)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

async fn verify(test: &str, backend: Backend) {
    let Some(store) = TestStore::new(test, backend).await else {
        return;
    };
    let demo = store.dir().join("demo.ndjson");
    let out = Command::new(BIN)
        .args([
            "demo",
            "--customers",
            "80",
            "--months",
            "24",
            "--seed",
            "11",
            "--out",
        ])
        .arg(&demo)
        .output()
        .expect("demo");
    assert!(out.status.success());
    append(&store, &demo);
    ok(
        &store,
        &[
            "projector",
            "--until-caught-up",
            "--reevaluate-every",
            "0",
            "--as-of",
            "2026-01-01",
        ],
    );
    ok(&store, &["reevaluate", "--as-of", "2026-02-01"]);
    let rs = store.open().await.unwrap();
    let version = rs.live_version().await.unwrap().unwrap().version;
    let snapshot = rs.snapshot(version).await.unwrap();
    let first = &snapshot.customers[0].customer_id;
    let late = store.dir().join("late.ndjson");
    std::fs::write(
        &late,
        format!(
            r#"{{"specversion":"1.0","id":"{}","source":"/test/verify","type":"purchase.recorded","subject":"{first}","time":"2026-02-10T10:00:00Z","data":{{"order_id":"SO-LATE","amount":{{"minor":12345,"currency":"CNY"}},"units":1}}}}"#,
            uuid::Uuid::new_v4()
        ) + "\n",
    )
    .unwrap();
    append(&store, &late);
    ok(
        &store,
        &[
            "projector",
            "--until-caught-up",
            "--reevaluate-every",
            "0",
            "--as-of",
            "2026-03-01",
        ],
    );
    let snapshot = rs.snapshot(version).await.unwrap();
    rs.close().await;
    let ats: std::collections::BTreeSet<i64> =
        snapshot.customers.iter().map(|c| c.evaluated_at).collect();
    assert!(ats.len() >= 2, "rows at one as_of only: {ats:?}");

    let clean = ok(&store, &["verify"]);
    assert!(clean.contains("verify: ok"), "{clean}");

    // Tamper: one audit row's bytes, one customer's card.
    let victim = snapshot
        .events
        .iter()
        .find(|e| e.seq == 2)
        .expect("a customer with two events");
    let mut bytes = victim.bytes.clone();
    let at = bytes.len() - 1;
    bytes.insert(at, b' ');
    execute(
        &store,
        "UPDATE customer_events SET bytes = ? WHERE customer_id = ? AND seq = ?",
        "UPDATE customer_events SET bytes = $1 WHERE customer_id = $2 AND seq = $3",
        (bytes, victim.customer_id.clone(), 2),
    )
    .await;
    let forged = snapshot
        .customers
        .iter()
        .rfind(|c| c.customer_id != victim.customer_id)
        .unwrap();
    let mut card: serde_json::Value = serde_json::from_str(&forged.card).unwrap();
    card["score"] = serde_json::json!(99.5);
    execute(
        &store,
        "UPDATE customers SET card = CAST(? AS TEXT) WHERE customer_id = ? AND version = ?",
        "UPDATE customers SET card = convert_from($1, 'UTF8') WHERE customer_id = $2 AND version = $3",
        (card.to_string().into_bytes(), forged.customer_id.clone(), version),
    )
    .await;

    let out = clientlog(&store, &["verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "verify passed a tampered store: {stdout}"
    );
    let lines: Vec<(&str, &str)> = stdout
        .lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            Some((parts.next()?, parts.next()?))
        })
        .collect();
    let v = victim.customer_id.as_str();
    assert!(lines.contains(&(v, "customer_events[2].bytes")), "{stdout}");
    assert!(lines.contains(&(v, "customer_events[2].hash")), "{stdout}");
    assert!(
        lines.contains(&(forged.customer_id.as_str(), "customers.card.score")),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .all(|(c, _)| *c == v || *c == forged.customer_id),
        "differences beyond the two tampered customers: {stdout}"
    );
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_sqlite() {
    verify("audit_verify::verify_sqlite", Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_postgres() {
    verify("audit_verify::verify_postgres", Backend::Postgres).await;
}
