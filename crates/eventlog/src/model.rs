//! The values that cross the [`crate::EventLog`] contract: what goes in, where it landed, what
//! comes out.

use std::fmt;

use clientlog_domain::{CustomerId, DecodeError, Event, EventId};
use time::OffsetDateTime;

/// Where an event is in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

impl Position {
    pub fn new(partition: i32, offset: i64) -> Self {
        Self { partition, offset }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.partition, self.offset)
    }
}

/// One event to append: the producer's exact bytes, which the log keeps unchanged (auditors
/// hash them), and the two fields the log itself needs, taken from those same bytes by the
/// domain decoder so they cannot disagree with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendEvent {
    bytes: Vec<u8>,
    id: EventId,
    subject: CustomerId,
}

impl AppendEvent {
    /// Validates `bytes` as one CloudEvents JSON event and keeps them as they are.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, DecodeError> {
        let event = Event::decode(&bytes)?;
        Ok(Self::from_decoded(bytes, &event))
    }

    /// An event already decoded from `bytes` (saves decoding twice). The caller guarantees
    /// `event` is `Event::decode(&bytes)`.
    pub fn from_decoded(bytes: Vec<u8>, event: &Event) -> Self {
        Self {
            bytes,
            id: event.id,
            subject: event.subject.clone(),
        }
    }

    /// The canonical encoding of `event`.
    pub fn from_event(event: &Event) -> Self {
        Self::from_decoded(event.encode(), event)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn id(&self) -> EventId {
        self.id
    }

    pub fn subject(&self) -> &CustomerId {
        &self.subject
    }
}

/// The answer for one appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppendOutcome {
    /// Newly appended at this position.
    Appended(Position),
    /// The id was already in the log (or earlier in the batch); nothing was added. The position
    /// is the original's.
    Duplicate(Position),
}

impl AppendOutcome {
    pub fn position(&self) -> Position {
        match *self {
            AppendOutcome::Appended(p) | AppendOutcome::Duplicate(p) => p,
        }
    }

    pub fn is_duplicate(&self) -> bool {
        matches!(self, AppendOutcome::Duplicate(_))
    }
}

/// How a record carried its event on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireMode {
    /// The record's value is the whole CloudEvents JSON; `StoredEvent::bytes` are the stored
    /// bytes exactly.
    Structured,
    /// A foreign Kafka producer's binary mode: attributes in `ce_*` headers, `data` as the
    /// value. `StoredEvent::bytes` is the structured JSON rebuilt from them deterministically
    /// (attributes in a fixed order, the value spliced in unchanged), so hashes over it are
    /// reproducible.
    Binary,
}

/// One event as read back from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub position: Position,
    /// The producer's exact bytes (see [`WireMode`] for binary-mode records).
    pub bytes: Vec<u8>,
    /// When the log accepted the event. Embedded: the writer's clock at the commit group, never
    /// decreasing. Kafka: the record timestamp (the broker's log-append time where the topic
    /// is configured for it, the producer's send time otherwise).
    pub recorded_at: OffsetDateTime,
    pub mode: WireMode,
    /// `Event::decode(&bytes)`.
    pub event: Event,
}
