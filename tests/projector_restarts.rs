//! Exactly-once effect of the real `clientlog projector` process: `kill -9` it at random
//! moments (at least ten times, each while work remains) during a run over more than 100 000
//! demo events, restart it each time, and at the end its read models equal those of a clean
//! run over the same log, row for row — before and after `clientlog reevaluate` at a later
//! time. Runs against the embedded read store, and against PostgreSQL when
//! `CLIENTLOG_TEST_DATABASE_URL` is set.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use clientlog_readstore::test_support::{Backend, TestStore};
use clientlog_readstore::ReadStore;
use rand::{Rng, SeedableRng};

/// Every verdict is evaluated as of 2026-01-01 (the demo history covers 2024–2025).
const AS_OF: &str = "2026-01-01";
/// The later re-evaluation.
const LATER: &str = "2026-07-01";
const KILLS: usize = 10;
/// Demo customers: about 100 000 events over 24 months.
const CUSTOMERS: i64 = 3450;

fn clientlog() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clientlog"))
}

fn run_ok(command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("run clientlog");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The live version's checkpoint of the embedded log's one partition (0 before any).
async fn checkpoint(store: &ReadStore) -> i64 {
    match store.live_version().await.expect("version") {
        Some(v) => store
            .checkpoints(v.version)
            .await
            .expect("checkpoints")
            .get(&0)
            .copied()
            .unwrap_or(0),
        None => 0,
    }
}

fn store_args(command: &mut Command, data: &Path, store: &TestStore) {
    command.arg("--data").arg(data);
    if let Some(url) = &store.url {
        command.arg("--database-url").arg(url);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_sqlite() {
    kill_9_and_restart("projector_restarts::kill_9_sqlite", Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_postgres() {
    kill_9_and_restart("projector_restarts::kill_9_postgres", Backend::Postgres).await;
}

async fn kill_9_and_restart(test: &str, backend: Backend) {
    let Some((killed, clean)) = TestStore::pair(test, backend).await else {
        return;
    };
    // One log, copied into both data directories, so both runs read the same bytes with the
    // same positions and recorded_at.
    let demo = killed.dir().join("demo.ndjson");
    run_ok(
        clientlog()
            .args([
                "demo",
                "--customers",
                &CUSTOMERS.to_string(),
                "--months",
                "24",
                "--seed",
                "3",
            ])
            .arg("--out")
            .arg(&demo),
    );
    run_ok(
        clientlog()
            .arg("append")
            .arg(&demo)
            .arg("--data")
            .arg(killed.dir()),
    );
    for file in ["events.db", "events.db-wal"] {
        let from = killed.dir().join(file);
        if from.exists() {
            std::fs::copy(&from, clean.dir().join(file)).expect("copy the log");
        }
    }
    let end = {
        let log = clientlog_eventlog::SqliteLog::open_path(killed.dir().join("events.db"))
            .await
            .expect("open log");
        let end = clientlog_eventlog::EventLog::high_water_marks(&log)
            .await
            .expect("hwm")[&0]
            - 1;
        log.close().await;
        end
    };
    assert!(end >= 100_000, "only {end} events in the log");

    let seed: u64 = std::env::var("CLIENTLOG_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("{test}: seed {seed} (set CLIENTLOG_TEST_SEED to repeat)");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);

    // Kill ten times at random moments with work left. Each run is killed once its checkpoint
    // has passed a random target (about an even share of the first three quarters of the log),
    // plus a random delay of up to 300 ms: the kill lands in the middle of later batches,
    // whatever the machine's speed. The last quarter is the margin that keeps the run from
    // finishing before the ten kills: a held write, a batch and the delay each move the
    // checkpoint past its target by a few thousand events at most.
    let mut progress: Vec<i64> = Vec::new();
    // One store handle watches the checkpoints (opened, and so migrated, before any projector
    // starts: two processes must not race through the first migration).
    let watched = killed.open().await.expect("open store");
    for kill in 0..KILLS {
        let last = progress.last().copied().unwrap_or(0);
        let step = ((end * 3 / 4 - last) / (KILLS - kill) as i64).max(2);
        let target = last + rng.gen_range(step / 2..=step);
        let batch = rng.gen_range(200..3000).to_string();
        // Catching up, the projector holds customers across batches (the audit copy written,
        // rows and checkpoint not yet) until it holds `--hold` of them: a kill lands between
        // those writes as often as in a batch. Some runs write every batch. A held write
        // comes once `hold` customers have had events, which takes about
        // `hold * events_per_customer` events at most: a quarter of what lies past the target.
        // (Holding more customers than the log's stretch touches, the projector would write
        // only after 5 s, or at the end.)
        let events_per_customer = end / CUSTOMERS + 1;
        let most_held = ((end - target) / events_per_customer / 4).clamp(1, 3000);
        let hold = if rng.gen_bool(0.25) {
            0
        } else {
            rng.gen_range(1..=most_held)
        }
        .to_string();
        let mut command = clientlog();
        command.args(["projector", "--as-of", AS_OF, "--reevaluate-every", "0"]);
        command.args([
            "--batch-size",
            &batch,
            "--batch-wait-ms",
            "20",
            "--hold",
            &hold,
        ]);
        store_args(&mut command, killed.dir(), &killed);
        let stderr = std::fs::File::create(killed.dir().join("projector.log")).expect("log");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn projector");
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        while checkpoint(&watched).await < target {
            let log = || std::fs::read_to_string(killed.dir().join("projector.log"));
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "the projector exited ({status}): {}",
                    log().unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the projector makes no progress: {progress:?}\n{}",
                log().unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..300))).await;
        // SIGKILL: no chance to finish a batch or close anything.
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        let done = checkpoint(&watched).await;
        progress.push(done);
        assert!(
            done < end,
            "the projector finished before {KILLS} kills; progress {progress:?}"
        );
    }
    watched.close().await;
    eprintln!("{test}: checkpoints after each kill: {progress:?}");
    assert!(
        progress.windows(2).any(|w| w[1] > w[0]),
        "no progress between kills"
    );

    // Finish the killed run, and make a clean one.
    for store in [&killed, &clean] {
        let mut command = clientlog();
        command.args(["projector", "--as-of", AS_OF, "--until-caught-up"]);
        command.args(["--reevaluate-every", "0"]);
        store_args(&mut command, store.dir(), store);
        run_ok(&mut command);
    }
    compare(&killed, &clean, end).await;

    // Time moves on: the same re-evaluation on both gives the same rows again.
    for store in [&killed, &clean] {
        let mut command = clientlog();
        command.args(["reevaluate", "--as-of", LATER]);
        store_args(&mut command, store.dir(), store);
        run_ok(&mut command);
    }
    compare(&killed, &clean, end).await;

    killed.cleanup().await;
    clean.cleanup().await;
}

async fn compare(killed: &TestStore, clean: &TestStore, end: i64) {
    let a: ReadStore = killed.open().await.expect("open killed store");
    let b: ReadStore = clean.open().await.expect("open clean store");
    let version = |s: ReadStore| async move {
        s.live_version()
            .await
            .expect("version")
            .expect("a live version")
            .version
    };
    let (va, vb) = (version(a.clone()).await, version(b.clone()).await);
    let sa = a.snapshot(va).await.expect("snapshot killed");
    let sb = b.snapshot(vb).await.expect("snapshot clean");
    assert_eq!(sa.checkpoints.get(&0), Some(&end));
    assert_eq!(
        sa.events.len() as i64,
        end,
        "every event applied exactly once"
    );
    assert_eq!(sa.customers.len(), sb.customers.len());
    // Field-by-field first, for a readable failure; then everything.
    for (x, y) in sa.customers.iter().zip(&sb.customers) {
        assert_eq!(x, y);
    }
    assert_eq!(sa.transitions.len(), sb.transitions.len());
    assert_eq!(sa, sb);
    assert!(a.verify_chains().await.expect("verify").is_empty());
    a.close().await;
    b.close().await;
}

/// SIGTERM: the projector commits the batch in progress, prints its summary and exits 0; what
/// it reports applied is exactly what the store holds up to its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_batch_and_exits_cleanly() {
    let test = "projector_restarts::sigterm_finishes_the_batch_and_exits_cleanly";
    let Some(store) = TestStore::new(test, Backend::Sqlite).await else {
        return;
    };
    let demo = store.dir().join("demo.ndjson");
    run_ok(
        clientlog()
            .args([
                "demo",
                "--customers",
                "1500",
                "--months",
                "24",
                "--seed",
                "4",
            ])
            .arg("--out")
            .arg(&demo),
    );
    run_ok(
        clientlog()
            .arg("append")
            .arg(&demo)
            .arg("--data")
            .arg(store.dir()),
    );
    let mut command = clientlog();
    command.args(["projector", "--as-of", AS_OF, "--batch-size", "500"]);
    store_args(&mut command, store.dir(), &store);
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn projector");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let applied: i64 = stdout
        .split_whitespace()
        .zip(stdout.split_whitespace().skip(1))
        .find(|(_, word)| word.starts_with("applied"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary in {stdout:?}"));
    let reader = store.open().await.expect("open store");
    let version = reader
        .live_version()
        .await
        .expect("version")
        .expect("live")
        .version;
    let snapshot = reader.snapshot(version).await.expect("snapshot");
    assert!(applied > 0, "{stdout}");
    assert_eq!(snapshot.events.len() as i64, applied);
    assert_eq!(snapshot.checkpoints.get(&0), Some(&applied));
    reader.close().await;
}
