//! The contract's durability case against Kafka on durable storage: a tansu broker of the
//! test's own, storing in a fresh PostgreSQL database on the server of
//! `CLIENTLOG_TEST_DATABASE_URL` (schema `tansu/postgres-schema.sql`, which tansu 0.6.0 does
//! not create itself), killed with SIGKILL and started again on the same database mid-test.
//! Spawns tansu like `kafka_broker_down.rs` (`CLIENTLOG_TANSU_BIN`, `tansu` on `PATH` or
//! `~/.cargo/bin`); skipped without either service, failed under
//! `CLIENTLOG_REQUIRE_SERVICES=1`.

mod contract;

use clientlog_eventlog::test_support::{
    self, kafka_test_config, produce_raw, raw_producer, tansu_binary, ScratchDatabase, TansuBroker,
};
use clientlog_eventlog::{KafkaLog, Position};
use contract::Harness;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::FutureProducer;

/// The tables tansu's postgres engine expects.
const TANSU_SCHEMA: &str = include_str!("tansu/postgres-schema.sql");

/// `url` for tansu's PostgreSQL client. tokio-postgres defaults to `sslmode=prefer` and tansu
/// verifies the server's certificate against the system roots, so a local server with a
/// self-signed certificate (Debian's default) fails the TLS handshake instead of falling back
/// to plain TCP: without an explicit `sslmode`, ask for none.
fn tansu_storage_url(url: &str) -> String {
    if url.contains("sslmode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

struct KafkaOnPostgres {
    log: KafkaLog,
    raw: FutureProducer,
    // Fields drop in order: the broker dies before its database is dropped.
    broker: TansuBroker,
    database: ScratchDatabase,
}

impl Harness for KafkaOnPostgres {
    type Log = KafkaLog;

    async fn start(test: &str) -> Option<Self> {
        let admin = test_support::service(test, test_support::DATABASE_URL)?;
        let binary = tansu_binary(test)?;
        let database = ScratchDatabase::create(&admin, "clientlog_tansu")
            .await
            .unwrap_or_else(|err| panic!("{test}: cannot create a database on {admin}: {err}"));
        database
            .execute_script(TANSU_SCHEMA)
            .await
            .unwrap_or_else(|err| panic!("{test}: cannot apply tansu's schema: {err}"));
        let storage = tansu_storage_url(&database.url);
        // Starting waits (blocking) until the broker listens.
        let broker = tokio::task::block_in_place(|| TansuBroker::start(&binary, &storage))
            .expect("start tansu on PostgreSQL");
        let mut config = kafka_test_config(&broker.bootstrap);
        // tansu 0.6.0 answers ListOffsets(latest) at read_committed (librdkafka's default, and
        // what `high_water_marks` sends) with `list_latest_offset_committed.sql`, whose
        // `from (select …)` has no alias, which only PostgreSQL 16+ accepts. On older servers
        // (Debian 12 ships 15) the broker fails the request and drops the connection. Nothing
        // writes this topic transactionally, so read_uncommitted gives the same answers.
        config.client_options.push((
            "isolation.level".to_string(),
            "read_uncommitted".to_string(),
        ));
        let log = KafkaLog::connect(config)
            .await
            .expect("connect to the test broker");
        Some(Self {
            raw: raw_producer(&broker.bootstrap),
            log,
            broker,
            database,
        })
    }

    fn log(&self) -> &KafkaLog {
        &self.log
    }

    async fn inject_raw(&self, bytes: &[u8]) -> Position {
        produce_raw(
            &self.raw,
            &self.log.config().topic,
            bytes,
            OwnedHeaders::new(),
        )
        .await
    }

    /// SIGKILL, then the same binary on the same port and database. The log keeps its
    /// clients: they reconnect by themselves, as a running service's would.
    async fn restart(&mut self) {
        tokio::task::block_in_place(|| self.broker.restart()).unwrap_or_else(|err| {
            panic!("restart tansu on database {}: {err}", self.database.name)
        });
    }
}

contract_tests!(KafkaOnPostgres; is_durable_across_restart);
