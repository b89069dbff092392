//! The flags every read-model command shares: where the log and the read store are, which
//! policies to evaluate with, and how to read an `as_of` time.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clientlog_domain::Policies;
use clientlog_eventlog::{AnyLog, KafkaConfig, KafkaLog, SqliteLog};
use clientlog_projector::Projector;
use clientlog_readstore::{ReadStore, StoreConfig};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

/// Global, so that `clientlog dead-letters list --data DIR` works as well as
/// `clientlog dead-letters --data DIR list`.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Data directory: the embedded log is `DIR/events.db`, the embedded read store
    /// `DIR/readstore.db`.
    #[arg(long, value_name = "DIR", default_value = "./data", global = true)]
    pub data: PathBuf,
    /// Keep the read models in PostgreSQL instead of `DIR/readstore.db`.
    #[arg(
        long,
        value_name = "URL",
        env = "CLIENTLOG_DATABASE_URL",
        global = true
    )]
    pub database_url: Option<String>,
    /// Directory with grading.toml, lifecycle.toml and churn.toml (default: the shipped ones).
    #[arg(long, value_name = "DIR", global = true)]
    pub policies: Option<PathBuf>,
}

impl StoreArgs {
    pub async fn open_store(&self) -> anyhow::Result<ReadStore> {
        let config = StoreConfig::from_args(&self.data, self.database_url.as_deref());
        ReadStore::open(&config)
            .await
            .with_context(|| match &config {
                StoreConfig::Sqlite { path } => {
                    format!("while opening the read store {}", path.display())
                }
                StoreConfig::Postgres { .. } => "while opening the PostgreSQL read store".into(),
            })
    }

    pub fn load_policies(&self) -> anyhow::Result<Policies> {
        match &self.policies {
            Some(dir) => Policies::load_dir(dir)
                .with_context(|| format!("while loading the policies in {}", dir.display())),
            None => Ok(Policies::defaults()),
        }
    }

    /// The store and a projector of its live version.
    pub async fn projector(&self) -> anyhow::Result<Projector> {
        let policies = self.load_policies()?;
        let store = self.open_store().await?;
        Projector::new(store, policies)
            .await
            .context("while attaching to the live projection version")
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// Read from Kafka instead of the embedded log: bootstrap servers `host:port[,…]`.
    #[arg(long, value_name = "BROKERS", env = "CLIENTLOG_KAFKA")]
    pub kafka: Option<String>,
    /// Kafka topic.
    #[arg(long, default_value = clientlog_eventlog::kafka::DEFAULT_TOPIC)]
    pub topic: String,
    /// Kafka consumer group of the live projectors: processes with the same group share the
    /// topic's partitions (rebalanced as they come and go).
    #[arg(long, value_name = "G", default_value = "clientlog-projector")]
    pub group: String,
}

impl LogArgs {
    pub async fn open(&self, store: &StoreArgs) -> anyhow::Result<AnyLog> {
        Ok(match &self.kafka {
            Some(brokers) => {
                let config = KafkaConfig {
                    reader_group_id: self.group.clone(),
                    ..KafkaConfig::new(brokers).with_topic(&self.topic)
                };
                AnyLog::Kafka(
                    KafkaLog::connect(config)
                        .await
                        .with_context(|| format!("while connecting to Kafka at {brokers}"))?,
                )
            }
            None => {
                let path = store.data.join("events.db");
                AnyLog::Embedded(
                    SqliteLog::open_path(&path).await.with_context(|| {
                        format!("while opening the event log {}", path.display())
                    })?,
                )
            }
        })
    }
}

/// Parses a time: RFC 3339 (`2026-03-31T00:00:00Z`), a date (`2026-03-31`, midnight UTC) or
/// Unix seconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(seconds) = s.parse::<i64>() {
        return Ok(seconds);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &format)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .map_err(|_| format!("{s:?} is not a time: use RFC 3339, YYYY-MM-DD or Unix seconds"))
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
/// How logs are written to stderr.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Sets up logging once for every command; `RUST_LOG` filters (default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub fn seconds(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}
