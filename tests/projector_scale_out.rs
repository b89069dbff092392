//! Scale-out on Kafka (tansu in CI, `CLIENTLOG_TEST_KAFKA`) into PostgreSQL: `clientlog
//! projector` processes in one consumer group share the partitions; a third joining and one
//! leaving force rebalances while appends go on; at the end the read models equal a single
//! projector's clean build, row for row (nothing lost, nothing applied twice).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clientlog_eventlog::test_support::{service, unique_name, KAFKA};
use clientlog_eventlog::{EventLog, KafkaConfig, KafkaLog, ReadError};
use clientlog_readstore::test_support::{Backend, TestStore};
use clientlog_readstore::ReadStore;
use futures::StreamExt;

fn clientlog() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clientlog"))
}

/// Appends `file`; returns how many records reached the topic (duplicates in the file do not).
fn append(brokers: &str, topic: &str, file: &Path) -> usize {
    let out = clientlog()
        .args([
            "append",
            "--kafka",
            brokers,
            "--topic",
            topic,
            "--partitions",
            "6",
        ])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("run clientlog append");
    assert!(
        out.status.success(),
        "append failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    summary
        .strip_prefix("accepted ")
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in the append summary {summary:?}"))
}

/// A projector process, killed if the test fails before stopping it.
struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn projector(brokers: &str, topic: &str, group: &str, store: &TestStore, name: &str) -> Member {
    let log = std::fs::File::create(store.dir().join(format!("{name}.log"))).expect("log file");
    clientlog()
        .args([
            "projector",
            "--kafka",
            brokers,
            "--topic",
            topic,
            "--group",
            group,
        ])
        .args(["--as-of", "2026-01-01", "--reevaluate-every", "0"])
        .args(["--batch-size", "300", "--batch-wait-ms", "20"])
        .arg("--data")
        .arg(store.dir())
        .arg("--database-url")
        .arg(store.url.as_deref().expect("a PostgreSQL store"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Member)
        .expect("start clientlog projector")
}

/// SIGTERM, and a clean exit.
fn stop(member: &mut Member) {
    let _ = Command::new("kill")
        .args(["-TERM", &member.0.id().to_string()])
        .status();
    let status = member.0.wait().expect("wait");
    assert!(status.success(), "a projector exited with {status}");
}

/// The last offset of each partition, from reading the topic's `records` records. tansu 0.6.0's
/// in-memory engine answers ListOffsets(latest) with the last *batch's* base offset + 1 (see
/// `crates/eventlog/tests/kafka.rs`), so its high-water marks can fall short of the end.
async fn last_offsets(log: &KafkaLog, records: usize) -> BTreeMap<i32, i64> {
    let read = log
        .read(&Default::default())
        .await
        .expect("read")
        .take(records)
        .fold(BTreeMap::new(), |mut last, item| async move {
            let position = match item {
                Ok(event) => event.position,
                Err(ReadError::BadRecord(bad)) => bad.position,
                Err(err) => panic!("reading the topic: {err}"),
            };
            last.insert(position.partition, position.offset);
            last
        });
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the topic's records arrive")
}

/// Waits until the live version's checkpoints reach `last`, every record of the topic.
async fn wait_caught_up(store: &ReadStore, last: &BTreeMap<i32, i64>, dir: &TestStore) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done = match store.live_version().await.expect("version") {
            Some(live) => store.checkpoints(live.version).await.expect("checkpoints"),
            None => Default::default(),
        };
        let behind: Vec<_> = last
            .iter()
            .filter(|(p, &end)| done.get(p).is_none_or(|&d| d < end))
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not caught up: {behind:?} against {done:?}\n{}",
            logs(dir)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The logs of the projectors of `store`, for a failure message.
fn logs(store: &TestStore) -> String {
    ["one", "two", "three", "clean"]
        .iter()
        .filter_map(|name| {
            let log = std::fs::read_to_string(store.dir().join(format!("{name}.log"))).ok()?;
            Some(format!("--- {name}\n{log}"))
        })
        .collect()
}

fn assigned_partitions(store: &TestStore, name: &str) -> usize {
    let log = std::fs::read_to_string(store.dir().join(format!("{name}.log"))).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("partitions assigned") && !l.contains("partitions=[]"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projectors_in_a_group_share_partitions_through_rebalances() {
    let test = "projectors_in_a_group_share_partitions_through_rebalances";
    let Some(brokers) = service(test, KAFKA) else {
        return;
    };
    let Some(shared) = TestStore::new(test, Backend::Postgres).await else {
        return;
    };
    let Some(clean) = TestStore::new(test, Backend::Postgres).await else {
        return;
    };
    let topic = unique_name("scale-out");
    let group = unique_name("projectors");

    let demo = clientlog()
        .args(["demo", "--customers", "240", "--months", "12"])
        .output()
        .expect("demo");
    assert!(demo.status.success());
    let text = String::from_utf8(demo.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    let thirds: Vec<String> = lines
        .chunks(lines.len().div_ceil(3))
        .map(|c| c.join("\n") + "\n")
        .collect();
    let file = |i: usize| {
        let path = shared.dir().join(format!("part-{i}.ndjson"));
        std::fs::write(&path, &thirds[i]).expect("write part");
        path
    };

    let mut records = append(&brokers, &topic, &file(0));
    let mut one = projector(&brokers, &topic, &group, &shared, "one");
    let mut two = projector(&brokers, &topic, &group, &shared, "two");
    tokio::time::sleep(Duration::from_secs(4)).await;
    records += append(&brokers, &topic, &file(1));
    // A third member joins: the group rebalances while records flow.
    let mut three = projector(&brokers, &topic, &group, &shared, "three");
    tokio::time::sleep(Duration::from_secs(4)).await;
    records += append(&brokers, &topic, &file(2));
    // One member stops (SIGTERM: it finishes its batch and leaves the group): its partitions
    // move to the others.
    stop(&mut two);

    let store = shared.open().await.expect("store");
    let log = KafkaLog::connect(KafkaConfig::new(brokers.clone()).with_topic(&topic))
        .await
        .expect("connect");
    let last = last_offsets(&log, records).await;
    wait_caught_up(&store, &last, &shared).await;
    stop(&mut one);
    stop(&mut three);
    let members_with_partitions = ["one", "two", "three"]
        .iter()
        .filter(|name| assigned_partitions(&shared, name) > 0)
        .count();
    assert!(
        members_with_partitions >= 2,
        "the partitions were not shared: {members_with_partitions} member(s) got any"
    );

    // A clean build by one projector in a group of its own.
    let mut alone = projector(&brokers, &topic, &unique_name("clean"), &clean, "clean");
    let clean_store = clean.open().await.expect("clean store");
    wait_caught_up(&clean_store, &last, &clean).await;
    stop(&mut alone);
    let clean_store = clean.open().await.expect("clean store");
    let version = |s: &ReadStore| {
        let s = s.clone();
        async move { s.live_version().await.expect("v").expect("live").version }
    };
    let got = store
        .snapshot(version(&store).await)
        .await
        .expect("snapshot");
    let expected = clean_store
        .snapshot(version(&clean_store).await)
        .await
        .expect("clean snapshot");
    // On a difference, which events the group lost, where the checkpoints stand, and what
    // each member was assigned when.
    let have: std::collections::HashSet<_> = got.events.iter().map(|e| e.event_id).collect();
    let missing: Vec<(String, i64, i32, i64)> = expected
        .events
        .iter()
        .filter(|e| !have.contains(&e.event_id))
        .map(|e| (e.customer_id.clone(), e.seq, e.log_partition, e.log_offset))
        .collect();
    let diagnosis = || {
        format!(
            "missing (customer, seq, partition, offset in the clean build): {missing:?}\n\
             checkpoints {:?}, clean {:?}\n{}",
            got.checkpoints,
            expected.checkpoints,
            logs(&shared)
        )
    };
    assert_eq!(got.customers.len(), 240, "{}", diagnosis());
    assert_eq!(got.events.len(), expected.events.len(), "{}", diagnosis());
    assert_eq!(got.events, expected.events);
    assert_eq!(got.customers, expected.customers);
    assert_eq!(got.states, expected.states);
    assert_eq!(got.checkpoints, expected.checkpoints);

    store.close().await;
    clean_store.close().await;
    shared.cleanup().await;
    clean.cleanup().await;
}
