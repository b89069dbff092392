//! `--log-format json` writes every log line as one JSON object (for log collectors);
//! the default is human-readable text.

use std::process::Command;

fn projector_stderr(data: &std::path::Path, format: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_clientlog"))
        .args([
            "--log-format",
            format,
            "projector",
            "--until-caught-up",
            "--data",
        ])
        .arg(data)
        .output()
        .expect("clientlog runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn json_log_lines_are_json_objects() {
    let dir = tempfile::tempdir().unwrap();
    let json = projector_stderr(dir.path(), "json");
    let lines: Vec<&str> = json.lines().filter(|l| l.contains("\"level\"")).collect();
    assert!(!lines.is_empty(), "no log lines in {json}");
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line).expect(line);
        assert!(value["fields"]["message"].is_string(), "{line}");
    }
    let text = projector_stderr(dir.path(), "text");
    assert!(
        text.contains("projector starting") && !text.contains("\"level\""),
        "{text}"
    );
}
