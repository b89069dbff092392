//! Replay: a customer's verdict **as of business time T using only events recorded by T2** —
//! what we knew then — folded from the audit copy (`customer_events`: the exact bytes, in log
//! order, with `recorded_at` and the business time `occurred_at`).
//!
//! One function, [`replay`], serves `clientlog replay`, `clientlog export --as-of`, and the
//! API's `GET /v1/customers/{id}?as_of=T&known_at=T2`, so the three cannot disagree. It lives
//! here because the projector crate is where the domain fold meets the read store's rows; the
//! API and the CLI both depend on it.
//!
//! The fold is the projector's: events in log order through [`CustomerState::apply`], then
//! [`evaluate`] at T and [`CustomerCard::new`]. Replaying with T at or after every event's
//! business time and no T2 gives the live card evaluated at T.
//!
//! Policy: the policies that were live then — at T2 if given, else at T — read back from the
//! texts stored with the projection version live at that time ([`policies_live_at`]); before
//! the first version was promoted, the live version's. The answer names the versions it used.

use clientlog_domain::{evaluate, CustomerCard, CustomerId, CustomerState, Event, Policies};
use clientlog_readstore::{AuditRow, ReadStore, StoreError};
use serde::Serialize;

/// When to replay: business time and (optionally) what was known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayAt {
    /// Business time of the verdict (Unix seconds); events that occurred after it are left out.
    pub as_of: i64,
    /// Only events recorded at or before this (Unix **nanoseconds**, the unit of `recorded_at`);
    /// `None`: every event in the audit copy.
    pub known_at_nanos: Option<i64>,
}

/// One audit row that went into the replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsedEvent {
    pub seq: i64,
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Business time, Unix seconds.
    pub occurred_at: i64,
    /// Log time, Unix nanoseconds.
    pub recorded_at: i64,
}

/// The policy versions a replay was evaluated with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyVersions {
    pub grading: String,
    pub lifecycle: String,
    pub churn: String,
}

impl PolicyVersions {
    pub fn of(policies: &Policies) -> Self {
        Self {
            grading: policies.grading.version.clone(),
            lifecycle: policies.lifecycle.version.clone(),
            churn: policies.churn.version.clone(),
        }
    }
}

/// A replayed verdict and what it was made of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replay {
    /// `None` when no event passed the filters (the customer was unknown then).
    pub card: Option<CustomerCard>,
    pub as_of: i64,
    pub known_at_nanos: Option<i64>,
    /// Rows in the customer's audit copy.
    pub events_total: usize,
    /// Left out because they were recorded after `known_at`.
    pub recorded_later: usize,
    /// Left out because they occurred (business time) after `as_of`.
    pub occurred_later: usize,
    pub used: Vec<UsedEvent>,
    pub policies: PolicyVersions,
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("customer {customer}: audit row {seq} is not a valid event: {problem}")]
    Undecodable {
        customer: String,
        seq: i64,
        problem: String,
    },
    #[error("customer id {0:?} is not valid")]
    CustomerId(String),
    #[error("the policies live then cannot be read: {0}")]
    Policies(String),
}

/// Folds `rows` (one customer's audit copy, in chain order) as of `at` under `policies`.
pub fn replay(
    customer: &str,
    rows: &[AuditRow],
    policies: &Policies,
    at: ReplayAt,
) -> Result<Replay, ReplayError> {
    let id = CustomerId::parse(customer).map_err(|_| ReplayError::CustomerId(customer.into()))?;
    let mut state = CustomerState::default();
    let mut out = Replay {
        card: None,
        as_of: at.as_of,
        known_at_nanos: at.known_at_nanos,
        events_total: rows.len(),
        recorded_later: 0,
        occurred_later: 0,
        used: Vec::new(),
        policies: PolicyVersions::of(policies),
    };
    for row in rows {
        if at.known_at_nanos.is_some_and(|k| row.recorded_at > k) {
            out.recorded_later += 1;
            continue;
        }
        if row.occurred_at > at.as_of {
            out.occurred_later += 1;
            continue;
        }
        let event = Event::decode(&row.bytes).map_err(|e| ReplayError::Undecodable {
            customer: customer.to_string(),
            seq: row.seq,
            problem: e.to_string(),
        })?;
        state.apply(&event);
        out.used.push(UsedEvent {
            seq: row.seq,
            event_id: event.id.as_uuid().to_string(),
            event_type: row.event_type.clone(),
            occurred_at: row.occurred_at,
            recorded_at: row.recorded_at,
        });
    }
    if !out.used.is_empty() {
        let verdict = evaluate(&state, policies, at.as_of);
        out.card = Some(CustomerCard::new(id, &state, verdict));
    }
    Ok(out)
}

/// [`replay`] of one customer's audit copy as stored in `store`, under the policies live
/// then (see the module docs; `fallback` serves a store whose versions predate stored
/// policies, if it names the same versions).
pub async fn replay_customer(
    store: &ReadStore,
    customer: &str,
    fallback: &Policies,
    at: ReplayAt,
) -> Result<Replay, ReplayError> {
    let policies = policies_live_at(store, at.policy_time(), fallback).await?;
    let rows = store.customer_events(customer).await?;
    replay(customer, &rows, &policies, at)
}

/// The policies of the projection version live at `at` (Unix seconds); before any version
/// was promoted, the live version's; on an empty store, `fallback`.
pub async fn policies_live_at(
    store: &ReadStore,
    at: i64,
    fallback: &Policies,
) -> Result<Policies, ReplayError> {
    let version = match store.version_live_at(at).await? {
        Some(then) => Some(then),
        None => store.live_version().await?,
    };
    match version {
        Some(version) => crate::policies_of(store, &version, fallback)
            .await
            .map_err(|e| ReplayError::Policies(e.to_string())),
        None => Ok(fallback.clone()),
    }
}

impl ReplayAt {
    /// When the policies of the replay were live: what was known at T2, else T.
    pub fn policy_time(&self) -> i64 {
        self.known_at_nanos
            .map_or(self.as_of, |nanos| nanos.div_euclid(1_000_000_000))
    }
}

impl Replay {
    /// The answer of `clientlog replay` and of the API's as-of lookup: the card (or `null`),
    /// the times, which events were used and left out, and the policy versions.
    pub fn to_json(&self) -> serde_json::Value {
        let used: Vec<serde_json::Value> = self
            .used
            .iter()
            .map(|e| {
                serde_json::json!({
                    "seq": e.seq,
                    "event_id": e.event_id,
                    "type": e.event_type,
                    "occurred_at": rfc3339_nanos(i128::from(e.occurred_at) * 1_000_000_000),
                    "recorded_at": rfc3339_nanos(i128::from(e.recorded_at)),
                    "recorded_at_nanos": e.recorded_at,
                })
            })
            .collect();
        serde_json::json!({
            "customer": self.card,
            "replay": {
                "as_of": rfc3339_nanos(i128::from(self.as_of) * 1_000_000_000),
                "known_at": self.known_at_nanos.map(|k| rfc3339_nanos(i128::from(k))),
                "events_total": self.events_total,
                "events_used": self.used.len(),
                "recorded_later": self.recorded_later,
                "occurred_later": self.occurred_later,
                "used": used,
                "policies": self.policies,
                "policy_note": "evaluated with the policies in force now; the content of \
                                earlier policy versions is not kept",
            },
        })
    }
}

fn rfc3339_nanos(nanos: i128) -> serde_json::Value {
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(serde_json::Value::Null, serde_json::Value::String)
}

/// Parses a `known_at` to Unix nanoseconds: RFC 3339 keeps its fraction of a second; a date
/// (midnight UTC) or Unix seconds is the start of that second.
pub fn parse_known_at(s: &str) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    let bad = || format!("{s:?} is not a time: use RFC 3339, YYYY-MM-DD or Unix seconds");
    if let Ok(seconds) = s.parse::<i64>() {
        return seconds.checked_mul(1_000_000_000).ok_or_else(bad);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos()).map_err(|_| bad());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format)
        .ok()
        .and_then(|d| i64::try_from(d.midnight().assume_utc().unix_timestamp_nanos()).ok())
        .ok_or_else(bad)
}
