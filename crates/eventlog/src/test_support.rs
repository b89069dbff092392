//! Helpers for tests that need real services (feature `test-support`), shared by this crate's
//! contract suite and the binary's end-to-end tests so the skip/require rule lives in one place.

use std::path::Path;

/// Set to `1` (CI) to turn a missing service setting into a failure instead of a skip.
pub const REQUIRE_SERVICES: &str = "CLIENTLOG_REQUIRE_SERVICES";
/// Bootstrap servers of a Kafka-compatible broker for the Kafka contract cases.
pub const KAFKA: &str = "CLIENTLOG_TEST_KAFKA";
/// A PostgreSQL server URL (`postgres://user@host:port/db`) for tests that create databases.
pub const DATABASE_URL: &str = "CLIENTLOG_TEST_DATABASE_URL";
/// The tansu binary (default: `tansu` on `PATH`, then `~/.cargo/bin/tansu`).
pub const TANSU_BIN: &str = "CLIENTLOG_TANSU_BIN";

/// The value of the service setting `var`, or `None` after printing
/// `skipped: <test> needs <var>` to stderr. Panics instead when `CLIENTLOG_REQUIRE_SERVICES=1`.
/// The line is written to the process's stderr itself, not through `eprintln!`, which the test
/// harness captures and shows only for failing tests: a plain `cargo test` lists every skip.
pub fn service(test: &str, var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            let required = std::env::var(REQUIRE_SERVICES).is_ok_and(|v| v.trim() == "1");
            assert!(
                !required,
                "{test} needs {var}, and {REQUIRE_SERVICES}=1 forbids skipping it"
            );
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr().lock(), "skipped: {test} needs {var}");
            None
        }
    }
}

/// A file to append the output of every [`TansuBroker`] to (default: discarded); set
/// `RUST_LOG` as well for tansu's debug lines.
pub const TANSU_LOG: &str = "CLIENTLOG_TANSU_LOG";

/// The tansu binary to run, if one can be found.
pub fn tansu_binary(test: &str) -> Option<std::path::PathBuf> {
    if let Ok(bin) = std::env::var(TANSU_BIN) {
        if !bin.trim().is_empty() {
            return Some(bin.into());
        }
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|candidate| candidate.is_file())
    });
    let in_cargo_home = std::env::var_os("HOME")
        .map(|home| Path::new(&home).join(".cargo/bin/tansu"))
        .filter(|candidate| candidate.is_file());
    match on_path.or(in_cargo_home) {
        Some(bin) => Some(bin),
        None => service(test, TANSU_BIN).map(Into::into),
    }
}

/// A topic or group name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A config for a fresh topic on the test broker at `brokers` (3 partitions keeps tansu quick).
pub fn kafka_test_config(brokers: &str) -> crate::KafkaConfig {
    crate::KafkaConfig {
        partitions: 3,
        reader_group_id: unique_name("clientlog-test-reader"),
        message_timeout: std::time::Duration::from_secs(20),
        ..crate::KafkaConfig::new(brokers).with_topic(unique_name("clientlog-test"))
    }
}

/// A plain producer, as a foreign client would use.
pub fn raw_producer(brokers: &str) -> rdkafka::producer::FutureProducer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "20000")
        .create()
        .expect("raw producer")
}

/// Produces `value` with `headers` to `topic` through `producer`, keyed `RAW`, as it is.
pub async fn produce_raw(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    value: &[u8],
    headers: rdkafka::message::OwnedHeaders,
) -> crate::Position {
    let record = rdkafka::producer::FutureRecord::to(topic)
        .key("RAW")
        .payload(value)
        .headers(headers);
    let delivery = producer
        .send(record, std::time::Duration::from_secs(20))
        .await
        .map_err(|(err, _)| err)
        .expect("raw produce");
    crate::Position::new(delivery.partition, delivery.offset)
}

/// A PostgreSQL database owned by one test, `<prefix>_<uuid>` on the server of an admin URL
/// (see [`DATABASE_URL`]); dropped, with whatever connections are still open to it, when this
/// value is.
pub struct ScratchDatabase {
    admin: String,
    pub name: String,
    /// The admin URL with its database replaced by [`ScratchDatabase::name`].
    pub url: String,
}

impl ScratchDatabase {
    /// Creates the database on the server of `admin`.
    pub async fn create(admin: &str, prefix: &str) -> Result<Self, sqlx::Error> {
        use sqlx::Connection;
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(Self {
            admin: admin.to_string(),
            url: database_url(admin, &name),
            name,
        })
    }

    /// Runs `sql` (any number of statements, no parameters) in the database.
    pub async fn execute_script(&self, sql: &str) -> Result<(), sqlx::Error> {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::PgConnection::connect(&self.url).await?;
        // Without arguments sqlx sends the simple-query message, which runs every statement.
        conn.execute(sql).await?;
        conn.close().await
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        use sqlx::Connection;
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // A runtime of its own on a thread of its own: drop may run inside or outside one.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())?;
            runtime
                .block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&admin).await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await
                })
                .map_err(|err| err.to_string())
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("could not drop test database {}: {err}", self.name),
            Err(_) => eprintln!("could not drop test database {}: panicked", self.name),
        }
    }
}

/// `admin` (`postgres://user@host:port/db?options`) with its database replaced by `name`.
pub fn database_url(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// Inserts `bytes` into the embedded log at `path` as they are, bypassing validation, the way
/// a foreign writer or a damaged import could. Only for tests of the reader's bad-record path.
pub async fn sqlite_insert_raw(path: &Path, bytes: &[u8]) -> Result<i64, sqlx::Error> {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await?;
    let position: i64 = sqlx::query_scalar(
        "INSERT INTO events (event_id, subject, recorded_at, payload) \
         VALUES (?, 'raw', 0, ?) RETURNING position",
    )
    .bind(uuid::Uuid::new_v4().as_bytes().as_slice())
    .bind(bytes)
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(position)
}

/// The CloudEvents JSON of a valid `purchase.recorded` event for `customer`; `n` makes the
/// order id (and the amount) distinct. The id is fresh each call.
pub fn purchase_json(customer: &str, n: u64) -> String {
    purchase_json_with_id(uuid::Uuid::new_v4(), customer, n)
}

/// Like [`purchase_json`] with a chosen id.
pub fn purchase_json_with_id(id: uuid::Uuid, customer: &str, n: u64) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"/test/eventlog","type":"purchase.recorded","subject":"{customer}","time":"2026-03-14T09:30:00Z","data":{{"order_id":"SO-{n}","amount":{{"minor":{minor},"currency":"EUR"}},"units":1}}}}"#,
        minor = 100 + n
    )
}

/// A valid event ready to append (see [`purchase_json`]).
pub fn purchase(customer: &str, n: u64) -> crate::AppendEvent {
    // The JSON above is valid by construction; a failure is a bug in this helper.
    crate::AppendEvent::from_bytes(purchase_json(customer, n).into_bytes())
        .unwrap_or_else(|err| panic!("test fixture does not decode: {err}"))
}

/// Records that are not valid events, each with the JSON path its rejection must name:
/// garbage bytes, JSON that is not an event, and an unknown event type.
pub fn bad_records() -> Vec<(Vec<u8>, &'static str)> {
    let unknown_type =
        purchase_json("CUST-BAD", 1).replace("purchase.recorded", "customer.teleported");
    vec![
        (b"\xff\xfe garbage \x00\x01".to_vec(), "$"),
        (br#"{"hello":"world"}"#.to_vec(), "$.hello"),
        (unknown_type.into_bytes(), "$.type"),
    ]
}

/// A tansu broker owned by one test, on a free local port; killed on drop.
pub struct TansuBroker {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub bootstrap: String,
    binary: std::path::PathBuf,
    storage: String,
    port: u16,
}

impl TansuBroker {
    /// Starts `binary` with `storage` (`memory://tansu/`, or a `postgres://` URL of a database
    /// with tansu's tables: `tests/tansu/postgres-schema.sql`) and waits until it accepts
    /// connections.
    pub fn start(binary: &Path, storage: &str) -> std::io::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut broker = Self {
            child: Self::spawn(binary, storage, port)?,
            bootstrap: format!("127.0.0.1:{port}"),
            binary: binary.to_path_buf(),
            storage: storage.to_string(),
            port,
        };
        broker.wait_listening()?;
        Ok(broker)
    }

    fn spawn(binary: &Path, storage: &str, port: u16) -> std::io::Result<std::process::Child> {
        let url = format!("tcp://127.0.0.1:{port}");
        std::process::Command::new(binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", storage])
            .stdout(Self::output()?)
            .stderr(Self::output()?)
            .spawn()
    }

    /// Where the broker's output goes: the file named by [`TANSU_LOG`], or nowhere.
    fn output() -> std::io::Result<std::process::Stdio> {
        match std::env::var_os(TANSU_LOG).filter(|path| !path.is_empty()) {
            Some(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(Into::into),
            None => Ok(std::process::Stdio::null()),
        }
    }

    fn wait_listening(&mut self) -> std::io::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Err(std::io::Error::other(format!("tansu exited: {status}")));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(std::io::Error::other("tansu did not listen within 20 s"))
    }

    /// Kills the broker (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(drop)
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) -> std::io::Result<()> {
        let _ = self.kill();
        self.child = Self::spawn(&self.binary, &self.storage, self.port)?;
        self.wait_listening()
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
