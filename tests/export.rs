//! `clientlog export customers` end to end: the CSV parses back (header, quoting of commas,
//! quotes and newlines in names), one row per customer; NDJSON is the stored cards; and with
//! `--as-of T` every card equals what `clientlog replay --as-of T` says for that customer.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use clientlog_readstore::test_support::{Backend, TestStore};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_clientlog");
const AS_OF: &str = "2026-01-01";
const EARLIER: &str = "2025-06-30";
const TRICKY: &str = "Acme, \"Quoted\"\nLtd";

fn clientlog(store: &TestStore, args: &[&str]) -> String {
    let mut command = Command::new(BIN);
    command.args(args).arg("--data").arg(store.dir());
    if let Some(url) = &store.url {
        command.arg("--database-url").arg(url);
    }
    let out = command
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run clientlog");
    assert!(
        out.status.success(),
        "clientlog {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

async fn build(test: &str, backend: Backend) -> Option<TestStore> {
    let store = TestStore::new(test, backend).await?;
    let demo = store.dir().join("demo.ndjson");
    let out = Command::new(BIN)
        .args([
            "demo",
            "--customers",
            "120",
            "--months",
            "24",
            "--seed",
            "7",
            "--out",
        ])
        .arg(&demo)
        .output()
        .expect("demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tricky = json!({
        "specversion": "1.0", "id": uuid::Uuid::new_v4().to_string(), "source": "/test/export",
        "type": "customer.registered", "subject": "ZZ-TRICKY", "time": "2025-03-01T10:00:00Z",
        "data": {"name": TRICKY, "owner": "rep-1", "segment": "smb", "region": "west-china",
                 "channel": "direct"}
    });
    let mut events = std::fs::read_to_string(&demo).unwrap();
    events.push_str(&tricky.to_string());
    events.push('\n');
    std::fs::write(&demo, events).unwrap();
    let out = Command::new(BIN)
        .arg("append")
        .arg(&demo)
        .arg("--data")
        .arg(store.dir())
        .output()
        .expect("append");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    clientlog(
        &store,
        &[
            "projector",
            "--until-caught-up",
            "--reevaluate-every",
            "0",
            "--as-of",
            AS_OF,
        ],
    );
    Some(store)
}

/// A strict RFC 4180 reader: quoted fields may hold commas, doubled quotes and newlines.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => {
                assert!(field.is_empty(), "a quote inside an unquoted field");
                quoted = true;
            }
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && row.is_empty(),
        "unterminated CSV"
    );
    rows
}

async fn export(test: &str, backend: Backend) {
    let Some(store) = build(test, backend).await else {
        return;
    };
    let rs = store.open().await.unwrap();
    let version = rs.live_version().await.unwrap().unwrap().version;
    let stored = rs.snapshot(version).await.unwrap().customers;
    rs.close().await;
    assert_eq!(stored.len(), 121);

    // CSV: header, one row per customer, quoting survives.
    let csv = parse_csv(&clientlog(
        &store,
        &["export", "customers", "--format", "csv"],
    ));
    let header = &csv[0];
    assert_eq!(
        header[..8],
        [
            "id",
            "name",
            "owner",
            "grade",
            "score",
            "stage",
            "risk",
            "risk_band"
        ]
    );
    assert_eq!(header[8], "monthly_sales_raw");
    assert_eq!(header[10], "monthly_sales_contribution");
    assert_eq!(csv.len(), 1 + stored.len());
    assert!(csv.iter().all(|r| r.len() == header.len()));
    let by_id: BTreeMap<&str, &Vec<String>> = csv[1..].iter().map(|r| (r[0].as_str(), r)).collect();
    assert_eq!(by_id["ZZ-TRICKY"][1], TRICKY);
    assert_eq!(by_id["ZZ-TRICKY"][2], "rep-1");
    for row in &stored {
        let line = by_id[row.customer_id.as_str()];
        assert_eq!(line[3], row.grade);
        assert_eq!(line[7], row.risk_band);
        assert_eq!(line[4].parse::<f64>().unwrap(), row.score);
    }

    // NDJSON without --as-of: the stored cards, in id order.
    let ndjson = clientlog(&store, &["export", "customers", "--format", "ndjson"]);
    let cards: Vec<&str> = ndjson.lines().collect();
    assert_eq!(
        cards,
        stored.iter().map(|r| r.card.as_str()).collect::<Vec<_>>()
    );

    // --as-of: each card equals `replay --as-of` of that customer; sample every 10th.
    let out = store.dir().join("earlier.ndjson");
    clientlog(
        &store,
        &[
            "export",
            "customers",
            "--as-of",
            EARLIER,
            "--format",
            "ndjson",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let earlier: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!earlier.is_empty() && earlier.len() <= stored.len());
    let mut differs_from_live = 0;
    for card in earlier.iter().step_by(10) {
        let id = card["id"].as_str().unwrap();
        let replayed: Value = serde_json::from_str(&clientlog(
            &store,
            &["replay", "--customer", id, "--as-of", EARLIER],
        ))
        .unwrap();
        assert_eq!(&replayed["customer"], card, "{id}");
        let live: Value =
            serde_json::from_str(&stored.iter().find(|r| r.customer_id == id).unwrap().card)
                .unwrap();
        differs_from_live += usize::from(live != *card);
    }
    assert!(
        differs_from_live > 0,
        "as-of cards should differ from the live ones"
    );
    // The CSV as of T has the same customers as the NDJSON.
    let csv_earlier = parse_csv(&clientlog(
        &store,
        &["export", "customers", "--as-of", EARLIER],
    ));
    assert_eq!(csv_earlier.len(), 1 + earlier.len());
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_sqlite() {
    export("export::export_sqlite", Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_postgres() {
    export("export::export_postgres", Backend::Postgres).await;
}
