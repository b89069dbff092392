//! `clientlog simulate --grading FILE` end to end: over a projected demo store, the report
//! covers every customer, the current policy moves nobody, and new weights give the same
//! report as the API's `POST /v1/simulations` (both run `projector::analysis`).

mod api_support;

use std::process::{Command, Stdio};

use api_support::{sqlite_store, start, BIN};
use serde_json::Value;

fn ok(args: &[&str], dir: &std::path::Path) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run clientlog");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_cli_matches_api() {
    let store = sqlite_store("audit_simulate::simulate_cli_matches_api").await;
    let dir = store.dir();
    let demo = dir.join("demo.ndjson");
    let out = Command::new(BIN)
        .args([
            "demo",
            "--customers",
            "150",
            "--months",
            "24",
            "--seed",
            "5",
            "--out",
        ])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(BIN)
        .arg("append")
        .arg(&demo)
        .arg("--data")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    ok(
        &[
            "projector",
            "--until-caught-up",
            "--reevaluate-every",
            "0",
            "--as-of",
            "2026-01-01",
        ],
        dir,
    );

    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/projections/grading.toml"
    ))
    .unwrap();
    let same = dir.join("same.toml");
    std::fs::write(&same, &shipped).unwrap();
    let report: Value = serde_json::from_str(&ok(
        &[
            "simulate",
            "--grading",
            same.to_str().unwrap(),
            "--format",
            "json",
        ],
        dir,
    ))
    .unwrap();
    assert_eq!(report["report"]["customers"], 150);
    assert_eq!(report["report"]["before"], report["report"]["after"]);
    assert!(report["report"]["top_movers"]
        .as_array()
        .unwrap()
        .is_empty());

    let loyal = dir.join("loyal.toml");
    std::fs::write(
        &loyal,
        shipped
            .replace("monthly_sales = 50", "monthly_sales = 10")
            .replace("loyalty = 10", "loyalty = 50"),
    )
    .unwrap();
    let cli: Value = serde_json::from_str(&ok(
        &[
            "simulate",
            "--grading",
            loyal.to_str().unwrap(),
            "--format",
            "json",
            "--top",
            "5",
        ],
        dir,
    ))
    .unwrap();
    let table = ok(&["simulate", "--grading", loyal.to_str().unwrap()], dir);
    assert!(
        table.contains("transitions") && table.contains("top movers"),
        "{table}"
    );

    let server = start(&store, "api", &[]);
    let api = server
        .post_json(
            "/v1/simulations",
            r#"{"grading":{"weights":{"monthly_sales":10,"loyalty":50}},"top_movers":5}"#,
        )
        .await;
    assert_eq!(api.status, 200, "{}", api.text);
    assert_eq!(api.body["report"], cli["report"]);
    assert_eq!(cli["report"]["top_movers"].as_array().unwrap().len(), 5);
}
