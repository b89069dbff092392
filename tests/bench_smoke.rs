//! `clientlog bench --smoke`: every figure group runs end to end at tiny sizes, the command
//! exits 0, and the JSON file has every row with a sane structure. Nothing here looks at a
//! timing: a slow or busy machine must not fail it.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_clientlog");

/// The rows the bench must produce, with or without the optional services.
const ROWS: &[&str] = &[
    "decode + validate (per CPU-second)",
    "fold (apply, per CPU-second)",
    "evaluate (per CPU-second)",
    "append, embedded, batches of 1 000",
    "read, embedded, from the start",
    "append, embedded, 64 concurrent single events",
    "append, Kafka, batches of 1 000",
    "read, Kafka, from the start",
    "live projection into SQLite",
    "live projection into PostgreSQL",
    "simulate new weights, 500 customers",
    "full rebuild, new version promoted",
    "peak RSS of the rebuild process",
    "peak RSS of a rebuild over 50 customers",
    "GET /v1/customers/{id}",
    "GET /v1/customers?grade=B&sort=risk&limit=50",
    "POST /v1/events, one event each",
    "append → visible, 5 k events/s steady",
];

fn stats_ok(s: &Value) -> bool {
    let n = |k: &str| s[k].as_f64();
    match (n("median"), n("min"), n("max"), s["runs"].as_array()) {
        (Some(median), Some(min), Some(max), Some(runs)) => {
            runs.len() >= 3 && min <= median && median <= max && min >= 0.0
        }
        _ => false,
    }
}

#[test]
fn every_figure_is_measured_or_honestly_skipped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("results.json");
    let mut child = Command::new(BIN)
        .args(["bench", "--smoke", "--json"])
        .arg(&json)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("clientlog bench starts");
    // Bounded: the smoke run takes seconds in a release build, under a minute in a debug one.
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("clientlog bench --smoke did not finish within 600 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(status.success(), "clientlog bench failed:\n{stdout}");
    assert!(stdout.contains("| figure | value | limit | ratio | target | pass |"));

    let results: Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the JSON file")).expect("JSON");
    assert_eq!(results["sizes"]["mode"], "smoke");
    let figures = results["figures"].as_array().expect("figures");
    let names: Vec<&str> = figures.iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(names, ROWS, "the rows, in order");
    for f in figures {
        let name = f["name"].as_str().unwrap_or_default();
        assert!(f["error"].is_null(), "{name}: {}", f["error"]);
        assert!(
            !f["target"]["text"].as_str().unwrap_or("").is_empty(),
            "{name}: a target"
        );
        if let Some(why) = f["skipped"].as_str() {
            assert!(why.starts_with("skipped: "), "{name}: {why}");
            assert!(f["value"].is_null() && f["pass"].is_null(), "{name}");
            continue;
        }
        assert!(stats_ok(&f["value"]), "{name}: value {}", f["value"]);
        // A figure only reported (no target to meet) has no verdict.
        let reported = f["target"]["text"] == "report";
        assert_eq!(
            f["pass"].is_boolean(),
            !reported,
            "{name}: pass {}",
            f["pass"]
        );
        if !f["limit"].is_null() {
            assert!(stats_ok(&f["limit"]), "{name}: limit {}", f["limit"]);
            assert!(f["limit_name"].is_string(), "{name}");
            assert!(f["ratio"].as_f64().is_some_and(|r| r > 0.0), "{name}");
        }
        if name.starts_with("GET") || name.starts_with("POST") {
            assert!(stats_ok(&f["p99_ms"]), "{name}: p99 {}", f["p99_ms"]);
        }
    }
}
