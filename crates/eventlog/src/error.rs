//! The errors of the event-log boundary: one for appending and administration, one for items
//! of a read stream.

use std::time::Duration;

use clientlog_domain::DecodeError;

use crate::model::Position;

/// Appending, opening or inspecting the log failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The embedded log's database failed.
    #[error("event log database error while {context}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A read stream's own connection to the embedded log failed.
    #[error("event log database error while {context}")]
    Scan {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// The embedded log file could not be prepared (directory, permissions).
    #[error("cannot prepare the event log at {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The broker did not acknowledge within the configured time: it is down, unreachable or
    /// overloaded. Some events of the batch may still have been stored.
    #[error("Kafka did not acknowledge within {timeout:?} while {context}")]
    Unavailable {
        context: &'static str,
        timeout: Duration,
        #[source]
        source: Option<rdkafka::error::KafkaError>,
    },
    /// Kafka refused or failed a request.
    #[error("Kafka error while {context}")]
    Kafka {
        context: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The topic exists in a form this log cannot use, or the configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// A background task of the log (a blocking client call) panicked or was cancelled.
    #[error("a background task of the event log failed")]
    Task(#[from] tokio::task::JoinError),
    /// The thread decoding a read stream's pages stopped (it panicked): the page is read again.
    #[error("the event log's decoding thread stopped")]
    DecoderStopped,
    /// The log's writer is gone (the log is shutting down or its writer task failed).
    #[error("the event log writer has stopped")]
    WriterStopped,
}

/// A record in the log that is not a valid event. It keeps everything needed to find it, look
/// at it and dead-letter it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {position} is not a valid event: {reason}")]
pub struct BadRecord {
    pub position: Position,
    /// The customer the record belongs to, if the log knows it without decoding: the Kafka
    /// record key, or the embedded log's stored subject. A projector holds that customer's
    /// later events behind the bad record instead of building the customer on a gap.
    pub key: Option<String>,
    /// The record's raw value, as stored.
    pub bytes: Vec<u8>,
    /// Why it was rejected: JSON path and problem.
    pub reason: DecodeError,
}

/// One failed item of a read stream. The stream continues after it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    BadRecord(Box<BadRecord>),
    /// Reading failed (database or broker); the reader retries and continues from where it was.
    #[error(transparent)]
    Log(#[from] LogError),
}

impl ReadError {
    pub fn bad_record(
        position: Position,
        key: Option<String>,
        bytes: Vec<u8>,
        reason: DecodeError,
    ) -> Self {
        ReadError::BadRecord(Box::new(BadRecord {
            position,
            key,
            bytes,
            reason,
        }))
    }
}
