//! `clientlog append` end to end: the built binary against a temporary data directory (and a
//! Kafka topic of its own when `CLIENTLOG_TEST_KAFKA` is set).

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use clientlog_eventlog::test_support::{self, purchase_json, unique_name};
use clientlog_eventlog::{EventLog, KafkaConfig, KafkaLog, SqliteLog, StartOffsets};
use futures::StreamExt;

fn clientlog(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clientlog"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run clientlog");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    child.wait_with_output().expect("clientlog finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Three valid events, two rejected lines (bad amount, unknown type) and a blank line.
fn mixed_input() -> (String, Vec<String>) {
    let valid = vec![
        purchase_json("CUST-1", 1),
        purchase_json("CUST-2", 2),
        // Odd spacing survives byte for byte.
        purchase_json("CUST-1", 3).replace(",\"source\"", " , \"source\""),
    ];
    let bad_amount = purchase_json("CUST-3", 4).replace("\"minor\":104", "\"minor\":\"lots\"");
    let bad_type = purchase_json("CUST-3", 5).replace("purchase.recorded", "customer.teleported");
    let input = format!(
        "{}\n{bad_amount}\n{}\n\n{bad_type}\r\n{}\n",
        valid[0], valid[1], valid[2]
    );
    (input, valid)
}

async fn read_embedded(dir: &std::path::Path, n: usize) -> Vec<Vec<u8>> {
    let log = SqliteLog::open_path(dir.join("events.db")).await.unwrap();
    assert_eq!(log.high_water_marks().await.unwrap()[&0], n as i64 + 1);
    let stream = log.read(&StartOffsets::new()).await.unwrap();
    let items: Vec<_> =
        tokio::time::timeout(Duration::from_secs(30), stream.take(n).collect::<Vec<_>>())
            .await
            .expect("events arrive");
    log.close().await;
    items
        .into_iter()
        .map(|i| i.expect("valid event").bytes)
        .collect()
}

#[tokio::test]
async fn appends_valid_lines_and_reports_rejected_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (input, valid) = mixed_input();
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, &input).unwrap();
    let data = dir.path().join("data");
    let args = [
        "append",
        "--data",
        data.to_str().unwrap(),
        file.to_str().unwrap(),
    ];

    let out = clientlog(&args, None);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "rejected lines must fail the run");
    assert!(
        stderr.contains("line 2: $.data.amount.minor: "),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("line 5: $.type: unknown event type \"customer.teleported\""),
        "stderr: {stderr}"
    );
    assert!(
        !stderr.contains("line 4"),
        "a blank line is not an error: {stderr}"
    );
    assert_eq!(
        text(&out.stdout).trim(),
        "accepted 3, duplicates 0, rejected 2"
    );

    let stored = read_embedded(&data, 3).await;
    let expected: Vec<Vec<u8>> = valid.iter().map(|v| v.clone().into_bytes()).collect();
    assert_eq!(
        stored, expected,
        "the log keeps each line's exact bytes, in order"
    );

    // Again: nothing new, every valid line is a duplicate.
    let out = clientlog(&args, None);
    assert_eq!(
        text(&out.stdout).trim(),
        "accepted 0, duplicates 3, rejected 2"
    );
    read_embedded(&data, 3).await;
}

#[tokio::test]
async fn reads_stdin_and_succeeds_when_everything_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input: String = (0..2500)
        .map(|n| purchase_json(&format!("CUST-{}", n % 7), n) + "\n")
        .collect();
    let out = clientlog(
        &[
            "append",
            "--data",
            data.to_str().unwrap(),
            "--batch-size",
            "1000",
            "-",
        ],
        Some(input.as_bytes()),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "accepted 2500, duplicates 0, rejected 0"
    );
    // Log lines may be there; a progress bar (redrawn with \r, showing a rate and an ETA) not.
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains('\r') && !stderr.contains(" eta ") && !stderr.contains('·'),
        "no progress bar off a terminal: {stderr}"
    );
    assert_eq!(read_embedded(&data, 2500).await.len(), 2500);
}

#[tokio::test]
async fn dry_run_validates_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = mixed_input();
    let data = dir.path().join("data");
    let out = clientlog(
        &["append", "--dry-run", "--data", data.to_str().unwrap(), "-"],
        Some(input.as_bytes()),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("line 2: $.data.amount.minor"));
    assert_eq!(
        text(&out.stdout).trim(),
        "dry run: 3 valid, 2 rejected; nothing appended"
    );
    assert!(!data.exists(), "a dry run creates nothing");
}

#[tokio::test]
async fn a_missing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.ndjson");
    let data = dir.path().join("data");
    let out = clientlog(
        &[
            "append",
            "--data",
            data.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("while opening") && stderr.contains("nope.ndjson"),
        "{stderr}"
    );
}

#[tokio::test]
async fn appends_to_kafka() {
    let Some(brokers) = test_support::service("appends_to_kafka", test_support::KAFKA) else {
        return;
    };
    let topic = unique_name("clientlog-test-append");
    let (input, valid) = mixed_input();
    let out = clientlog(
        &[
            "append",
            "--kafka",
            &brokers,
            "--topic",
            &topic,
            "--partitions",
            "3",
            "-",
        ],
        Some(input.as_bytes()),
    );
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        "accepted 3, duplicates 0, rejected 2"
    );
    assert!(text(&out.stderr).contains("line 5: $.type"));

    let config = KafkaConfig {
        reader_group_id: unique_name("clientlog-test-reader"),
        ..KafkaConfig::new(&brokers).with_topic(&topic)
    };
    let log = KafkaLog::connect(config).await.unwrap();
    assert_eq!(log.partition_count().await.unwrap(), 3);
    let stream = log.read(&StartOffsets::new()).await.unwrap();
    let items: Vec<_> =
        tokio::time::timeout(Duration::from_secs(60), stream.take(3).collect::<Vec<_>>())
            .await
            .expect("events arrive");
    let mut stored: Vec<Vec<u8>> = items.into_iter().map(|i| i.expect("valid").bytes).collect();
    let mut expected: Vec<Vec<u8>> = valid.into_iter().map(String::into_bytes).collect();
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected);
}
