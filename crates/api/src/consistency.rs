//! Read-your-writes. An append answers with a [`ConsistencyToken`]: per partition, the highest
//! position it wrote (or found as a duplicate). A read that sends the token back waits, up to
//! a bound, until the projector's checkpoints cover it; then it answers as usual, or, if the
//! bound ran out, answers with `"stale": true` (or 504 `stale` when the client asked for a
//! strict wait). Every projected answer says which checkpoints it reflects.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use clientlog_eventlog::Position;

use crate::error::{ApiError, Detail};
use crate::State;

pub const TOKEN_HEADER: &str = "x-consistency-token";
/// `true`: answer 504 instead of a stale answer.
pub const STRICT_HEADER: &str = "x-consistency-strict";
pub const POSITION_HEADER: &str = "x-projection-position";
pub const STALE_HEADER: &str = "x-consistency-stale";

/// Per partition, the last offset an append wrote. Opaque to clients: `c1.` and hex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsistencyToken(pub BTreeMap<i32, i64>);

impl ConsistencyToken {
    pub fn from_positions(positions: impl IntoIterator<Item = Position>) -> Self {
        let mut marks = BTreeMap::new();
        for p in positions {
            let mark = marks.entry(p.partition).or_insert(p.offset);
            *mark = (*mark).max(p.offset);
        }
        Self(marks)
    }

    pub fn encode(&self) -> String {
        let plain = self
            .0
            .iter()
            .map(|(p, o)| format!("{p}:{o}"))
            .collect::<Vec<_>>()
            .join(",");
        format!("c1.{}", crate::auth::hex(plain.as_bytes()))
    }

    pub fn decode(token: &str) -> Option<Self> {
        let hex = token.strip_prefix("c1.")?;
        if !hex.len().is_multiple_of(2) || hex.len() > 4096 {
            return None;
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let plain = String::from_utf8(bytes).ok()?;
        let mut marks = BTreeMap::new();
        for part in plain.split(',').filter(|p| !p.is_empty()) {
            let (p, o) = part.split_once(':')?;
            marks.insert(p.parse().ok()?, o.parse().ok()?);
        }
        Some(Self(marks))
    }

    /// Whether `checkpoints` include every position of the token.
    pub fn covered_by(&self, checkpoints: &BTreeMap<i32, i64>) -> bool {
        self.0
            .iter()
            .all(|(p, o)| checkpoints.get(p).is_some_and(|c| c >= o))
    }
}

/// `0:123,1:45`: the checkpoints an answer reflects, for the header.
pub fn position_header(checkpoints: &BTreeMap<i32, i64>) -> String {
    checkpoints
        .iter()
        .map(|(p, o)| format!("{p}:{o}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// How long the live version is reused (promotion changes it).
const VERSION_TTL: Duration = Duration::from_millis(500);
/// How long a read of the checkpoints is reused by answers without a consistency token. An
/// older read is still true of a row read after it (checkpoints only move forward), so it can
/// only understate what an answer reflects; a token it does not cover is checked afresh.
const CHECKPOINTS_TTL: Duration = Duration::from_millis(20);

/// Per partition, the last projected offset.
type Checkpoints = Arc<BTreeMap<i32, i64>>;

/// Checkpoints as read at `at` for `version`.
struct CheckpointRead {
    at: Instant,
    version: Option<i64>,
    checkpoints: Checkpoints,
}

/// The live projection version and its checkpoints, shared by every request so that a read
/// costs one query (its rows) rather than three. Never held across an await.
#[derive(Default)]
pub struct VersionCache {
    version: Mutex<Option<(Instant, Option<i64>)>>,
    checkpoints: Mutex<Option<CheckpointRead>>,
}

impl VersionCache {
    pub async fn get(&self, state: &State) -> Result<Option<i64>, ApiError> {
        if let Some((at, version)) = *self.version.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < VERSION_TTL && version.is_some() {
                return Ok(version);
            }
        }
        let version = state.reader.live_version().await?;
        *self.version.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), version));
        Ok(version)
    }

    /// The live version and its checkpoints as read at most `max_age` ago.
    async fn checkpoints(
        &self,
        state: &State,
        max_age: Duration,
    ) -> Result<(Option<i64>, Checkpoints), ApiError> {
        let version = self.get(state).await?;
        if let Some(read) = &*self.checkpoints.lock().unwrap_or_else(|e| e.into_inner()) {
            if read.version == version && read.at.elapsed() <= max_age {
                return Ok((version, read.checkpoints.clone()));
            }
        }
        let checkpoints = Arc::new(match version {
            Some(v) => state.reader.checkpoints(v).await?,
            None => BTreeMap::new(),
        });
        *self.checkpoints.lock().unwrap_or_else(|e| e.into_inner()) = Some(CheckpointRead {
            at: Instant::now(),
            version,
            checkpoints: checkpoints.clone(),
        });
        Ok((version, checkpoints))
    }
}

/// What a projected answer reflects.
#[derive(Debug, Clone, Default)]
pub struct Freshness {
    pub version: Option<i64>,
    pub checkpoints: BTreeMap<i32, i64>,
    pub stale: bool,
}

impl Freshness {
    pub fn reflects_json(&self) -> serde_json::Value {
        self.checkpoints
            .iter()
            .map(|(p, o)| (p.to_string(), serde_json::Value::from(*o)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// Waits for the request's consistency token, if any, and returns what the answer reflects.
pub async fn settle(state: &State, headers: &HeaderMap) -> Result<Freshness, ApiError> {
    let token = match headers.get(TOKEN_HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(ConsistencyToken::decode)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "invalid consistency token",
                        vec![Detail::new(
                            "header.X-Consistency-Token",
                            "send back the consistency_token of an append unchanged",
                        )],
                    )
                })?,
        ),
    };
    let strict = match headers.get(STRICT_HEADER).map(|v| v.to_str().unwrap_or("")) {
        None => false,
        Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid X-Consistency-Strict",
                vec![Detail::new(
                    "header.X-Consistency-Strict",
                    "must be true or false",
                )],
            ))
        }
    };
    let bound = state.limits.consistency_wait;
    let started = Instant::now();
    let mut max_age = CHECKPOINTS_TTL;
    loop {
        let (version, checkpoints) = state.version.checkpoints(state, max_age).await?;
        let covered = token.as_ref().is_none_or(|t| t.covered_by(&checkpoints));
        if covered || started.elapsed() >= bound {
            if !covered && strict {
                return Err(ApiError::Stale(bound.as_millis() as u64));
            }
            return Ok(Freshness {
                version,
                checkpoints: Arc::unwrap_or_clone(checkpoints),
                stale: !covered,
            });
        }
        // Waiting for a token: read the checkpoints afresh from now on.
        if max_age.is_zero() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        max_age = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        let token = ConsistencyToken::from_positions([
            Position::new(0, 7),
            Position::new(0, 9),
            Position::new(2, 1),
        ]);
        assert_eq!(
            ConsistencyToken::decode(&token.encode()),
            Some(token.clone())
        );
        for bad in ["", "c1.", "c1.zz", "c1.3", "0:7", "c1.303a"] {
            assert_ne!(ConsistencyToken::decode(bad), Some(token.clone()), "{bad}");
        }
        assert!(ConsistencyToken::decode("c1.zz").is_none());
        assert!(token.covered_by(&BTreeMap::from([(0, 9), (2, 5)])));
        assert!(!token.covered_by(&BTreeMap::from([(0, 8), (2, 5)])));
        assert!(!token.covered_by(&BTreeMap::from([(0, 9)])));
    }
}
