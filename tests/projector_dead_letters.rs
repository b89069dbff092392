//! Poison isolation end to end: a record in the embedded log that is not a valid event, written
//! for customer X by a foreign writer, is dead-lettered by `clientlog projector` with X as its
//! customer; X's later events are held while Y's are applied; `clientlog dead-letters skip`
//! releases X, and `list` shows every action.

use std::path::Path;
use std::process::{Command, Stdio};

use clientlog_eventlog::test_support::purchase_json;
use clientlog_readstore::{ReadStore, StoreConfig};
use sqlx::{ConnectOptions, Connection};

fn clientlog(args: &[&str], data: &Path) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_clientlog"))
        .args(args)
        .arg("--data")
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .expect("run clientlog");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn append(data: &Path, lines: &[String]) {
    let file = data.join("batch.ndjson");
    std::fs::write(&file, lines.join("\n")).expect("write input");
    let (ok, _, err) = clientlog(&["append", file.to_str().expect("utf-8 path")], data);
    assert!(ok, "append failed: {err}");
}

/// Writes `bytes` for `subject` straight into the log, as a foreign writer could.
async fn insert_raw(data: &Path, subject: &str, bytes: &[u8]) {
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data.join("events.db"))
        .connect()
        .await
        .expect("open log");
    sqlx::query(
        "INSERT INTO events (position, event_id, subject, recorded_at, payload) \
         SELECT COALESCE(MAX(position), 0) + 1, ?, ?, 0, ? FROM events",
    )
    .bind(uuid::Uuid::new_v4().as_bytes().as_slice())
    .bind(subject)
    .bind(bytes)
    .execute(&mut conn)
    .await
    .expect("insert raw record");
    conn.close().await.expect("close");
}

fn project(data: &Path) -> String {
    let (ok, out, err) = clientlog(
        &["projector", "--until-caught-up", "--as-of", "2026-06-01"],
        data,
    );
    assert!(ok, "projector failed: {err}");
    out
}

/// How many events the read model has applied for `customer`.
async fn events_of(data: &Path, customer: &str) -> i64 {
    let store = ReadStore::open(&StoreConfig::from_args(data, None))
        .await
        .expect("open read store");
    let version = store
        .live_version()
        .await
        .expect("version")
        .expect("a live version")
        .version;
    let row = store.customer(version, customer).await.expect("customer");
    store.close().await;
    row.map_or(0, |c| c.events)
}

#[tokio::test]
async fn a_bad_record_holds_its_customer_until_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    append(
        data,
        &[purchase_json("CUST-X", 1), purchase_json("CUST-Y", 2)],
    );
    insert_raw(data, "CUST-X", b"{\"not\":\"an event\"}").await;
    append(
        data,
        &[
            purchase_json("CUST-X", 3),
            purchase_json("CUST-Y", 4),
            purchase_json("CUST-X", 5),
        ],
    );
    let out = project(data);
    assert!(
        out.contains("3 applied") && out.contains("2 held") && out.contains("1 dead letters"),
        "{out}"
    );
    assert_eq!(events_of(data, "CUST-X").await, 1);
    assert_eq!(events_of(data, "CUST-Y").await, 2);

    let (ok, list, err) = clientlog(&["dead-letters", "list"], data);
    assert!(ok, "{err}");
    let first = list.lines().next().expect("one dead letter");
    let fields: Vec<&str> = first.split('\t').collect();
    assert_eq!(fields[1], "0@3", "{first}");
    assert_eq!(fields[2], "CUST-X", "{first}");
    assert_eq!(fields[3], "open", "{first}");
    assert_eq!(fields[4], "held 2", "{first}");
    assert!(
        fields[5].contains("$.not") || fields[5].contains('$'),
        "{first}"
    );
    let id = fields[0];

    // Y keeps moving, X stays held.
    append(
        data,
        &[purchase_json("CUST-Y", 6), purchase_json("CUST-X", 7)],
    );
    project(data);
    assert_eq!(events_of(data, "CUST-X").await, 1);
    assert_eq!(events_of(data, "CUST-Y").await, 3);

    // Retrying bytes that still do not decode fails and changes nothing.
    let (ok, _, err) = clientlog(
        &["dead-letters", "retry", id, "--as-of", "2026-06-01"],
        data,
    );
    assert!(!ok && err.contains("still not a valid event"), "{err}");
    let (ok, out, err) = clientlog(&["dead-letters", "skip", id, "--as-of", "2026-06-01"], data);
    assert!(ok, "{err}");
    assert!(out.contains("3 held events released"), "{out}");
    assert_eq!(events_of(data, "CUST-X").await, 4);

    let (ok, list, _) = clientlog(&["dead-letters", "list"], data);
    assert!(ok);
    assert!(
        list.lines().next().expect("letter").contains("\tskipped\t"),
        "{list}"
    );
    for action in [
        "\tcreated\t",
        "\tretry\tstill invalid",
        "\tskip\tresolved",
        "\tskip\tapplied 3 events",
    ] {
        assert!(list.contains(action), "{action:?} missing from\n{list}");
    }
    // A second skip is refused.
    let (ok, _, err) = clientlog(&["dead-letters", "skip", id], data);
    assert!(!ok && err.contains("already resolved"), "{err}");
}
