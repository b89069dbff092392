//! `clientlog replay` and `GET /v1/customers/{id}?as_of=T&known_at=T2` end to end: a real log,
//! a real projector run, then replays that leave out an event recorded after T2 and a purchase
//! after T, and a replay at the live card's as_of that equals the live card. On the embedded
//! read store always, and on PostgreSQL when `CLIENTLOG_TEST_DATABASE_URL` is set.

mod api_support;

use std::process::{Command, Stdio};

use api_support::{create_token, registered, start, BIN};
use clientlog_readstore::test_support::{Backend, TestStore};
use serde_json::Value;

const AS_OF: &str = "2026-06-01";

fn clientlog(store: &TestStore, args: &[&str]) -> std::process::Output {
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
        "clientlog {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn purchase_at(customer: &str, order: &str, minor: u64, time: &str) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"/test/audit","type":"purchase.recorded","subject":"{customer}","time":"{time}","data":{{"order_id":"{order}","amount":{{"minor":{minor},"currency":"EUR"}},"units":1}}}}"#,
        id = uuid::Uuid::new_v4()
    )
}

fn append(store: &TestStore, name: &str, lines: &[String]) {
    let file = store.dir().join(name);
    std::fs::write(&file, lines.join("\n") + "\n").expect("write events");
    let out = Command::new(BIN)
        .arg("append")
        .arg(&file)
        .arg("--data")
        .arg(store.dir())
        .output()
        .expect("run clientlog append");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn project(store: &TestStore) {
    ok(
        store,
        &[
            "projector",
            "--until-caught-up",
            "--reevaluate-every",
            "0",
            "--as-of",
            AS_OF,
        ],
    );
}

/// C-1 registered 2026-01-05, bought 2026-02-10 and 2026-03-14; then (appended later) a late
/// purchase with business time 2026-02-20. C-2 is there so lists are not trivial.
fn build(store: &TestStore) {
    append(
        store,
        "first.ndjson",
        &[
            registered("C-1", "Acme Ltd", "rep-1"),
            purchase_at("C-1", "SO-1", 500_000, "2026-02-10T10:00:00Z"),
            purchase_at("C-1", "SO-2", 700_000, "2026-03-14T10:00:00Z"),
            registered("C-2", "Beta", "rep-2"),
        ],
    );
    project(store);
    append(
        store,
        "late.ndjson",
        &[purchase_at(
            "C-1",
            "SO-LATE",
            900_000,
            "2026-02-20T10:00:00Z",
        )],
    );
    project(store);
}

fn replay(store: &TestStore, extra: &[&str]) -> Value {
    let mut args = vec!["replay", "--customer", "C-1"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(store, &args)).expect("replay prints JSON")
}

async fn live_card(store: &TestStore, customer: &str) -> Value {
    let rs = store.open().await.expect("open store");
    let version = rs
        .live_version()
        .await
        .unwrap()
        .expect("live version")
        .version;
    let row = rs.customer(version, customer).await.unwrap().expect("row");
    rs.close().await;
    serde_json::from_str(&row.card).unwrap()
}

fn used_orders(answer: &Value) -> u64 {
    answer["customer"]["orders"].as_u64().expect("orders")
}

async fn cli_replay(test: &str, backend: Backend) {
    let Some(store) = TestStore::new(test, backend).await else {
        return;
    };
    build(&store);

    // At the live as_of with everything known: the live card, exactly.
    let all = replay(&store, &["--as-of", AS_OF]);
    assert_eq!(all["replay"]["events_total"], 4, "{all}");
    assert_eq!(all["replay"]["events_used"], 4, "{all}");
    assert_eq!(all["customer"], live_card(&store, "C-1").await);
    assert_eq!(used_orders(&all), 3);

    // Known at the recording of the third event: the late purchase is left out.
    let third = all["replay"]["used"][2]["recorded_at"]
        .as_str()
        .unwrap()
        .to_string();
    let late_recorded = all["replay"]["used"][3]["recorded_at_nanos"]
        .as_i64()
        .unwrap();
    assert!(
        all["replay"]["used"][2]["recorded_at_nanos"]
            .as_i64()
            .unwrap()
            < late_recorded
    );
    let then = replay(&store, &["--as-of", AS_OF, "--known-at", &third]);
    assert_eq!(then["replay"]["events_used"], 3, "{then}");
    assert_eq!(then["replay"]["recorded_later"], 1, "{then}");
    assert_eq!(used_orders(&then), 2);
    assert!(then["replay"]["used"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["recorded_at_nanos"].as_i64().unwrap() < late_recorded));
    assert_ne!(then["customer"], all["customer"]);

    // As of before the 2026-03-14 purchase: it is left out, the late 02-20 one is in.
    let march = replay(&store, &["--as-of", "2026-03-01"]);
    assert_eq!(march["replay"]["occurred_later"], 1, "{march}");
    assert_eq!(used_orders(&march), 2);
    assert_eq!(march["customer"]["last_purchase_on"], "2026-02-20");

    // Before anything was known: no card.
    let before = replay(&store, &["--known-at", "2000-01-01"]);
    assert!(before["customer"].is_null(), "{before}");
    assert_eq!(before["replay"]["events_used"], 0);

    // An unknown customer is an error.
    let out = clientlog(&store, &["replay", "--customer", "NOPE"]);
    assert!(!out.status.success());
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_cli_sqlite() {
    cli_replay("audit_replay::replay_cli_sqlite", Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_cli_postgres() {
    cli_replay("audit_replay::replay_cli_postgres", Backend::Postgres).await;
}

async fn api_replay(test: &str, backend: Backend) {
    let Some(store) = TestStore::new(test, backend).await else {
        return;
    };
    build(&store);
    let reader = create_token(store.dir(), "crm", "read");
    let auditor = create_token(store.dir(), "auditor", "audit");
    let server = start(&store, "api", &[]);
    let get = |path: &str, token: &str| {
        let path = path.to_string();
        let token = token.to_string();
        let server = &server;
        async move { server.call("GET", &path, Some(&token), &[], None).await }
    };

    let live = get("/v1/customers/C-1", &reader).await;
    assert_eq!(live.status, 200, "{}", live.text);
    let evaluated_at = live.body["lineage"]["evaluated_at"]
        .as_str()
        .unwrap()
        .to_string();

    // The replay at the live card's as_of equals the live card.
    let path = format!("/v1/customers/C-1?as_of={evaluated_at}");
    let denied = get(&path, &reader).await;
    assert_eq!(denied.status, 403, "{}", denied.text);
    let now = get(&path, &auditor).await;
    assert_eq!(now.status, 200, "{}", now.text);
    assert_eq!(now.body["customer"], live.body["customer"]);
    assert_eq!(now.body["replay"]["events_used"], 4);

    // Known before the late event was recorded: left out.
    let third = now.body["replay"]["used"][2]["recorded_at"]
        .as_str()
        .unwrap();
    let then = get(
        &format!("/v1/customers/C-1?as_of={evaluated_at}&known_at={third}"),
        &auditor,
    )
    .await;
    assert_eq!(then.status, 200, "{}", then.text);
    assert_eq!(then.body["replay"]["events_used"], 3, "{}", then.text);
    assert_eq!(then.body["customer"]["orders"], 2);

    // As of before a purchase: left out.
    let march = get("/v1/customers/C-1?as_of=2026-03-01", &auditor).await;
    assert_eq!(march.body["replay"]["occurred_later"], 1, "{}", march.text);

    // Bad parameters and unknown customers keep the one error body.
    let bad = get("/v1/customers/C-1?known_at=yesterday", &auditor).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(api_support::assert_error_body(&bad), "invalid_request");
    let missing = get("/v1/customers/NOPE?as_of=2026-03-01", &auditor).await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    drop(server);
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_api_sqlite() {
    api_replay("audit_replay::replay_api_sqlite", Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_api_postgres() {
    api_replay("audit_replay::replay_api_postgres", Backend::Postgres).await;
}
