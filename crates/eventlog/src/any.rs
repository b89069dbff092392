//! A log chosen at run time (`--data DIR` or `--kafka BROKERS`), for code above the contract
//! that does not want to be generic.

use std::collections::BTreeMap;

use crate::error::{BadRecord, LogError};
use crate::kafka::KafkaLog;
use crate::model::{AppendEvent, AppendOutcome};
use crate::sqlite::SqliteLog;
use crate::{EventLog, EventStream, SharedStartOffsets, StartOffsets};

/// Either backend, behind the same contract.
#[derive(Clone)]
pub enum AnyLog {
    Embedded(SqliteLog),
    Kafka(KafkaLog),
}

impl AnyLog {
    /// Releases the backend's resources; for the embedded log, waits for its writer to stop.
    pub async fn close(self) {
        match self {
            AnyLog::Embedded(log) => log.close().await,
            AnyLog::Kafka(log) => drop(log),
        }
    }
}

impl EventLog for AnyLog {
    async fn append(&self, batch: &[AppendEvent]) -> Result<Vec<AppendOutcome>, LogError> {
        match self {
            AnyLog::Embedded(log) => log.append(batch).await,
            AnyLog::Kafka(log) => log.append(batch).await,
        }
    }

    async fn read(&self, from: &StartOffsets) -> Result<EventStream, LogError> {
        match self {
            AnyLog::Embedded(log) => log.read(from).await,
            AnyLog::Kafka(log) => log.read(from).await,
        }
    }

    async fn read_shared(&self, positions: SharedStartOffsets) -> Result<EventStream, LogError> {
        match self {
            AnyLog::Embedded(log) => log.read_shared(positions).await,
            AnyLog::Kafka(log) => log.read_shared(positions).await,
        }
    }

    async fn publish_dead_letter(&self, bad: &BadRecord) -> Result<(), LogError> {
        match self {
            AnyLog::Embedded(log) => log.publish_dead_letter(bad).await,
            AnyLog::Kafka(log) => log.publish_dead_letter(bad).await,
        }
    }

    async fn high_water_marks(&self) -> Result<BTreeMap<i32, i64>, LogError> {
        match self {
            AnyLog::Embedded(log) => log.high_water_marks().await,
            AnyLog::Kafka(log) => log.high_water_marks().await,
        }
    }

    fn dedupes_on_append(&self) -> bool {
        match self {
            AnyLog::Embedded(log) => log.dedupes_on_append(),
            AnyLog::Kafka(log) => log.dedupes_on_append(),
        }
    }

    fn shares_partitions(&self) -> bool {
        match self {
            AnyLog::Embedded(log) => log.shares_partitions(),
            AnyLog::Kafka(log) => log.shares_partitions(),
        }
    }
}
