//! The Kafka log against a broker that dies after the log connected: appends fail with a typed
//! error within the configured message timeout (never hang), and work again once the broker is
//! back. Spawns its own tansu (`CLIENTLOG_TANSU_BIN`, `tansu` on `PATH` or `~/.cargo/bin`).

use std::time::{Duration, Instant};

use clientlog_eventlog::test_support::{purchase, tansu_binary, unique_name, TansuBroker};
use clientlog_eventlog::{EventLog, KafkaConfig, KafkaLog, LogError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_fail_in_bounded_time_while_the_broker_is_down() {
    let Some(binary) = tansu_binary("appends_fail_in_bounded_time_while_the_broker_is_down") else {
        return;
    };
    let mut broker = TansuBroker::start(&binary, "memory://tansu/").expect("start tansu");
    let timeout = Duration::from_secs(3);
    let config = KafkaConfig {
        partitions: 1,
        message_timeout: timeout,
        request_timeout: timeout,
        ..KafkaConfig::new(&broker.bootstrap).with_topic(unique_name("clientlog-test-down"))
    };
    let log = KafkaLog::connect(config.clone()).await.expect("connect");
    log.append(&[purchase("C", 1)])
        .await
        .expect("append while up");

    broker.kill().expect("kill tansu");
    let started = Instant::now();
    let result = log.append(&[purchase("C", 2)]).await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(LogError::Unavailable { .. })),
        "expected Unavailable, got {result:?}"
    );
    assert!(took < timeout + Duration::from_secs(5), "took {took:?}");

    // The memory engine forgets the topic on restart; a fresh connect recreates it and the
    // producer reconnects by itself.
    broker.restart().expect("restart tansu");
    let log = KafkaLog::connect(config).await.expect("reconnect");
    log.append(&[purchase("C", 3)])
        .await
        .expect("append after restart");
}
