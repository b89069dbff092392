//! Every route of the API, declared once in [`ROUTES`]: the router and the OpenAPI document
//! are both built from that table. Handlers check the token's scope first, then parse their
//! parameters (unknown or malformed ones are 400s naming the parameter), then answer.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use clientlog_domain::{DecodeError, EventType, Grade, RiskBand, Stage};
use clientlog_eventlog::{AppendEvent, AppendOutcome, EventLog};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::auth::Scope;
use crate::consistency::{self, settle, ConsistencyToken, Freshness};
use crate::error::{ApiError, Detail};
use crate::reader::{Kind, Sql, Summary, Val, SUMMARY_COLUMNS, SUMMARY_KINDS};
use crate::State as AppState;

/// Where a documented parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
    Header,
}

/// A documented parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub location: In,
    /// JSON Schema type: `string`, `integer`, `number` or `boolean`.
    pub schema: &'static str,
    pub description: &'static str,
}

/// One route: what the router serves and what the OpenAPI document says about it.
pub struct Route {
    pub method: &'static str,
    /// axum syntax, which is also OpenAPI's: `/v1/customers/{id}`.
    pub path: &'static str,
    /// The scope a token needs; `None`: public.
    pub scope: Option<Scope>,
    pub summary: &'static str,
    pub params: &'static [Param],
    /// Media types of the request body, if it has one.
    pub body: &'static [&'static str],
    /// Success statuses.
    pub ok: &'static [u16],
    /// Error statuses this route itself may answer (beyond the ones every route may).
    pub errors: &'static [u16],
    pub(crate) handler: fn() -> MethodRouter<AppState>,
}

const fn q(name: &'static str, schema: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: In::Query,
        schema,
        description,
    }
}

const ID: Param = Param {
    name: "id",
    location: In::Path,
    schema: "string",
    description: "The customer id.",
};
const CONSISTENCY: Param = Param {
    name: "X-Consistency-Token",
    location: In::Header,
    schema: "string",
    description:
        "A consistency token from an append: wait (bounded) until the read models reflect it.",
};
const STRICT: Param = Param {
    name: "X-Consistency-Strict",
    location: In::Header,
    schema: "boolean",
    description:
        "With a consistency token: answer 504 instead of a stale answer when the wait runs out.",
};
const CURSOR: Param = q(
    "cursor",
    "string",
    "Opaque cursor from the previous page's next_cursor.",
);
const LIMIT: Param = q("limit", "integer", "Page size, 1 to 500 (default 50).");

pub static ROUTES: &[Route] = &[
    Route {
        method: "post",
        path: "/v1/events",
        scope: Some(Scope::Append),
        summary: "Append events: one CloudEvents JSON object, a JSON array, or NDJSON (at most 10 000). \
                  Answers each event's position, duplicate or rejection, and a consistency token. \
                  207 when some were rejected, 422 when none was accepted.",
        params: &[],
        body: &["application/json", "application/x-ndjson"],
        ok: &[200, 207],
        errors: &[400, 413, 415, 422],
        handler: || post(post_events),
    },
    Route {
        method: "get",
        path: "/v1/customers",
        scope: Some(Scope::Read),
        summary: "List customers: filters, a stable sort (customer id breaks ties), keyset pagination.",
        params: &[
            q("grade", "string", "A, B, C, D or E."),
            q("stage", "string", "prospect, developing, established, declining, churned or reactivated."),
            q("risk_band", "string", "low, medium, high or critical."),
            q("risk_min", "number", "Only customers with churn risk at least this (0 to 100)."),
            q("owner", "string", "The account manager (rep) id."),
            q("segment", "string", "Segment."),
            q("region", "string", "Region."),
            q("q", "string", "Name prefix, case-insensitive."),
            q("sort", "string", "id (default), risk, score, last_activity or name."),
            CURSOR,
            LIMIT,
            CONSISTENCY,
            STRICT,
        ],
        body: &[],
        ok: &[200],
        errors: &[400, 504],
        handler: || get(list_customers),
    },
    Route {
        method: "get",
        path: "/v1/customers/{id}",
        scope: Some(Scope::Read),
        summary: "The customer card (grade, stage, risk with reasons), its lineage and the log position it reflects. \
                  With as_of/known_at (scope audit): the card replayed from the audit copy at business time as_of \
                  from the events recorded by known_at.",
        params: &[
            ID,
            q("as_of", "string", "Replay: business time of the verdict (RFC 3339, YYYY-MM-DD or Unix seconds); needs scope audit."),
            q("known_at", "string", "Replay: only events recorded by then (RFC 3339 with fractions, YYYY-MM-DD or Unix seconds); needs scope audit."),
            CONSISTENCY,
            STRICT,
        ],
        body: &[],
        ok: &[200],
        errors: &[400, 404, 504],
        handler: || get(get_customer),
    },
    Route {
        method: "get",
        path: "/v1/customers/{id}/history",
        scope: Some(Scope::Audit),
        summary: "The audit copy of the customer's events with the hash chain; verify=true recomputes the chain.",
        params: &[
            ID,
            q("type", "string", "Only events of this type (e.g. purchase.recorded)."),
            q("from", "string", "Only events with business time at or after this (RFC 3339, YYYY-MM-DD or Unix seconds)."),
            q("to", "string", "Only events with business time before this."),
            q("verify", "boolean", "Recompute the customer's whole hash chain from the stored bytes."),
            CURSOR,
            LIMIT,
            CONSISTENCY,
            STRICT,
        ],
        body: &[],
        ok: &[200],
        errors: &[400, 404, 504],
        handler: || get(history),
    },
    Route {
        method: "get",
        path: "/v1/customers/{id}/timeline",
        scope: Some(Scope::Read),
        summary: "The customer's grade, stage and risk-band transitions with their causes.",
        params: &[
            ID,
            q("dimension", "string", "grade, stage or risk_band."),
            CURSOR,
            LIMIT,
            CONSISTENCY,
            STRICT,
        ],
        body: &[],
        ok: &[200],
        errors: &[400, 404, 504],
        handler: || get(timeline),
    },
    Route {
        method: "get",
        path: "/v1/reps/{rep}/portfolio",
        scope: Some(Scope::Read),
        summary: "A rep's portfolio: counts by grade, stage and risk band, and the riskiest customers.",
        params: &[
            Param {
                name: "rep",
                location: In::Path,
                schema: "string",
                description: "The rep (owner) id.",
            },
            q("top", "integer", "How many riskiest customers, 0 to 100 (default 10)."),
            CONSISTENCY,
            STRICT,
        ],
        body: &[],
        ok: &[200],
        errors: &[400, 504],
        handler: || get(portfolio),
    },
    Route {
        method: "get",
        path: "/v1/stats",
        scope: Some(Scope::Read),
        summary: "Distributions by grade, stage and risk band, optionally for one owner, segment or region.",
        params: &[
            q("owner", "string", "Only this owner's customers."),
            q("segment", "string", "Only this segment."),
            q("region", "string", "Only this region."),
            CONSISTENCY,
            STRICT,
        ],
        body: &[],
        ok: &[200],
        errors: &[400, 504],
        handler: || get(stats),
    },
    Route {
        method: "post",
        path: "/v1/simulations",
        scope: Some(Scope::Analyze),
        summary: "What-if grading: re-grade every customer's stored grade inputs under submitted \
                  weights/thresholds (merged over the policy in force) and compare.",
        params: &[],
        body: &["application/json"],
        ok: &[200],
        errors: &[400, 415, 422],
        handler: || post(simulate),
    },
    Route {
        method: "get",
        path: "/v1/versions",
        scope: Some(Scope::Read),
        summary: "Projection versions: live, candidates (with build progress) and retired, each with \
                  the policy versions it is built with.",
        params: &[],
        body: &[],
        ok: &[200],
        errors: &[],
        handler: || get(crate::versions::list),
    },
    Route {
        method: "post",
        path: "/v1/rebuilds",
        scope: Some(Scope::Analyze),
        summary: "Build a new projection version from the whole log beside the live one, under \
                  policies given as whole TOML texts or as changes merged over the live ones \
                  (grading, lifecycle, churn), optionally at a fixed as_of; `promote: true` (scope \
                  admin too) makes it live once it has caught up. Answers 202 with its id at once.",
        params: &[],
        body: &["application/json"],
        ok: &[202],
        errors: &[400, 415],
        handler: || post(crate::versions::start),
    },
    Route {
        method: "get",
        path: "/v1/rebuilds/{id}",
        scope: Some(Scope::Read),
        summary: "A rebuild's progress: records done of the total, records per second, ETA, state \
                  (running, done, failed) and the version's status.",
        params: &[Param {
            name: "id",
            location: In::Path,
            schema: "integer",
            description: "The rebuild's projection version.",
        }],
        body: &[],
        ok: &[200],
        errors: &[400, 404],
        handler: || get(crate::versions::rebuild_status),
    },
    Route {
        method: "post",
        path: "/v1/versions/{id}/promote",
        scope: Some(Scope::Admin),
        summary: "Make a version live (the live one is retired; projectors follow). Refused with \
                  409 if it is behind the live version, unless allow_behind=true.",
        params: &[
            Param {
                name: "id",
                location: In::Path,
                schema: "integer",
                description: "The projection version to promote.",
            },
            q("allow_behind", "boolean", "Promote even if it reflects less of the log than the live version."),
        ],
        body: &[],
        ok: &[200],
        errors: &[400, 404, 409],
        handler: || post(crate::versions::promote),
    },
    Route {
        method: "get",
        path: "/v1/changes",
        scope: Some(Scope::Read),
        summary: "Customers whose read model changed, in order, each with its cursor. JSON: a long \
                  poll that answers at once when there are changes after the cursor, else waits up \
                  to `wait` and answers an empty page with the same cursor. With `Accept: \
                  text/event-stream`: Server-Sent Events, one `customer` event per change with \
                  `id:` = its cursor, resumable with `Last-Event-ID`; a `reset` event (or \
                  `\"reset\": true`) when a new projection version went live and the feed starts over.",
        params: &[
            q("after", "string", "A cursor from a previous answer (next_cursor, or an event id); `now` for only later changes; absent: from the start."),
            q("limit", "integer", "Most changes in a JSON page, 1 to 500 (default 100)."),
            q("wait", "string", "How long a JSON request waits for a change: 30s, 500ms, 2m (default 0, capped at 60s and below the request timeout)."),
            Param {
                name: "Last-Event-ID",
                location: In::Header,
                schema: "string",
                description: "The id of the last event an event stream delivered: resume after it (wins over `after`).",
            },
        ],
        body: &[],
        ok: &[200],
        errors: &[400],
        handler: || get(crate::changes::changes),
    },
    Route {
        method: "get",
        path: "/healthz",
        scope: None,
        summary: "Liveness: the process answers.",
        params: &[],
        body: &[],
        ok: &[200],
        errors: &[],
        handler: || get(healthz),
    },
    Route {
        method: "get",
        path: "/readyz",
        scope: None,
        summary: "Readiness: log and read store reachable, projector lag under the threshold.",
        params: &[],
        body: &[],
        ok: &[200],
        errors: &[503],
        handler: || get(readyz),
    },
    Route {
        method: "get",
        path: "/metrics",
        scope: Some(Scope::Admin),
        summary: "Prometheus metrics: appends, projection checkpoints and lag per partition, dead letters, request latency.",
        params: &[],
        body: &[],
        ok: &[200],
        errors: &[],
        handler: || get(metrics),
    },
    Route {
        method: "get",
        path: "/openapi.json",
        scope: None,
        summary: "This document.",
        params: &[],
        body: &[],
        ok: &[200],
        errors: &[],
        handler: || get(openapi),
    },
];

/// The router of [`ROUTES`], with a JSON 404 for anything else.
pub(crate) fn router() -> Router<AppState> {
    ROUTES
        .iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, (route.handler)())
        })
        .fallback(|| async { ApiError::NotFound("no such route; see /openapi.json".into()) })
}

// ---------------------------------------------------------------------------------------------
// Parameters

/// The query string as pairs; each parameter is taken once, and [`Params::finish`] refuses
/// the ones nobody took.
struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    fn parse(uri: &Uri) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| ApiError::invalid(format!("invalid query string: {e}"), vec![]))?;
        Ok(Self { pairs })
    }

    fn take(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        let mut found = None;
        let mut count = 0;
        self.pairs.retain(|(k, v)| {
            if k == name {
                count += 1;
                found = Some(v.clone());
                false
            } else {
                true
            }
        });
        if count > 1 {
            return Err(ApiError::param(name, "given more than once"));
        }
        Ok(found)
    }

    fn finish(self) -> Result<(), ApiError> {
        match self.pairs.first() {
            None => Ok(()),
            Some((name, _)) => {
                let mut shown: String = name.chars().take(64).collect();
                if shown.is_empty() {
                    shown = "(empty)".into();
                }
                Err(ApiError::param(
                    &shown,
                    "unknown parameter; see /openapi.json",
                ))
            }
        }
    }

    fn one_of(&mut self, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        match self.take(name)? {
            None => Ok(None),
            Some(v) if allowed.contains(&v.as_str()) => Ok(Some(v)),
            Some(_) => Err(ApiError::param(
                name,
                format!("must be one of {}", allowed.join(", ")),
            )),
        }
    }

    fn text(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.take(name)? {
            Some(v) if v.is_empty() || v.len() > 200 => {
                Err(ApiError::param(name, "must be 1 to 200 characters"))
            }
            other => Ok(other),
        }
    }

    fn limit(&mut self, max: u32) -> Result<i64, ApiError> {
        self.int("limit", 1, i64::from(max), 50)
    }

    fn int(&mut self, name: &str, min: i64, max: i64, default: i64) -> Result<i64, ApiError> {
        match self.take(name)? {
            None => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::param(
                    name,
                    format!("must be an integer from {min} to {max}"),
                )),
            },
        }
    }

    fn bool(&mut self, name: &str) -> Result<bool, ApiError> {
        match self.take(name)?.as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") | Some("") => Ok(true),
            Some(_) => Err(ApiError::param(name, "must be true or false")),
        }
    }

    fn time(&mut self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.take(name)? {
            None => Ok(None),
            Some(v) => parse_time(&v).map(Some).ok_or_else(|| {
                ApiError::param(name, "must be RFC 3339, YYYY-MM-DD or Unix seconds")
            }),
        }
    }
}

/// RFC 3339, a date (midnight UTC) or Unix seconds.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    if let Ok(seconds) = s.parse::<i64>() {
        return (-62_135_596_800..=253_402_300_799)
            .contains(&seconds)
            .then_some(seconds);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp())
}

fn rfc3339(seconds: i64) -> Value {
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

fn rfc3339_nanos(nanos: i64) -> Value {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::invalid(
            format!("invalid {what} id"),
            vec![Detail::new(
                format!("path.{what}"),
                "must be 1 to 64 characters",
            )],
        ));
    }
    Ok(())
}

/// An opaque cursor: hex of a small JSON object.
fn encode_cursor(value: &Value) -> String {
    crate::auth::hex(value.to_string().as_bytes())
}

/// Keeps the first `limit` of `rows` (queried with `limit + 1`) and, if there were more, returns
/// the cursor of the last row kept.
fn next_page(
    rows: &mut Vec<Vec<Val>>,
    limit: i64,
    cursor_of: impl Fn(&[Val]) -> Value,
) -> Option<String> {
    if rows.len() as i64 <= limit {
        return None;
    }
    rows.truncate(limit as usize);
    rows.last().map(|r| encode_cursor(&cursor_of(r)))
}

fn decode_cursor(cursor: &str) -> Result<Value, ApiError> {
    let bad = || ApiError::param("cursor", "not a cursor this API gave out");
    if !cursor.len().is_multiple_of(2) || cursor.len() > 2048 {
        return Err(bad());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// A JSON answer with projected data: adds what it reflects.
/// An answer from the read models: `body`'s fields and what they reflect.
#[derive(Serialize)]
struct Projected<T> {
    #[serde(flatten)]
    body: T,
    reflects: Value,
    stale: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    projection_version: Option<i64>,
}

fn projected<T: Serialize>(body: T, fresh: &Freshness) -> Response {
    let answer = Projected {
        body,
        reflects: fresh.reflects_json(),
        stale: fresh.stale,
        projection_version: fresh.version,
    };
    with_freshness(Json(&answer).into_response(), fresh)
}

fn with_freshness(mut response: Response, fresh: &Freshness) -> Response {
    if let Ok(v) = HeaderValue::from_str(&consistency::position_header(&fresh.checkpoints)) {
        response
            .headers_mut()
            .insert(consistency::POSITION_HEADER, v);
    }
    if fresh.stale {
        response
            .headers_mut()
            .insert(consistency::STALE_HEADER, HeaderValue::from_static("true"));
    }
    response
}

// ---------------------------------------------------------------------------------------------
// POST /v1/events

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    Json,
    Ndjson,
}

pub(crate) fn body_kind(headers: &HeaderMap, allow_ndjson: bool) -> Result<BodyKind, ApiError> {
    let accepted = if allow_ndjson {
        "send Content-Type: application/json or application/x-ndjson"
    } else {
        "send Content-Type: application/json"
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::UnsupportedMediaType(format!("no Content-Type: {accepted}")))?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json"
        | "application/cloudevents+json"
        | "application/cloudevents-batch+json" => Ok(BodyKind::Json),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" if allow_ndjson => {
            Ok(BodyKind::Ndjson)
        }
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {essence:?} is not accepted: {accepted}"
        ))),
    }
}

pub(crate) fn malformed(err: &serde_json::Error) -> ApiError {
    ApiError::MalformedJson {
        details: vec![Detail::new(
            "$",
            format!(
                "{} (line {}, column {})",
                strip_position(err),
                err.line(),
                err.column()
            ),
        )],
    }
}

fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The events of a body, each as its exact bytes.
fn split_events(kind: BodyKind, body: &[u8], max: usize) -> Result<Vec<Vec<u8>>, ApiError> {
    let too_many = || ApiError::PayloadTooLarge(format!("at most {max} events per request"));
    let items: Vec<Vec<u8>> = match kind {
        BodyKind::Json => {
            let start = body.iter().position(|b| !b.is_ascii_whitespace());
            match start.map(|i| body[i]) {
                None => {
                    return Err(ApiError::invalid(
                        "the body is empty: send one or more events",
                        vec![],
                    ))
                }
                Some(b'[') => {
                    let items: Vec<&RawValue> =
                        serde_json::from_slice(body).map_err(|e| malformed(&e))?;
                    if items.len() > max {
                        return Err(too_many());
                    }
                    items
                        .into_iter()
                        .map(|r| r.get().as_bytes().to_vec())
                        .collect()
                }
                Some(_) => {
                    let _: &RawValue = serde_json::from_slice(body).map_err(|e| malformed(&e))?;
                    vec![body.to_vec()]
                }
            }
        }
        BodyKind::Ndjson => {
            let mut items = Vec::new();
            for line in body.split(|&b| b == b'\n') {
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                if items.len() == max {
                    return Err(too_many());
                }
                items.push(line.to_vec());
            }
            items
        }
    };
    if items.is_empty() {
        return Err(ApiError::invalid("the body holds no events", vec![]));
    }
    Ok(items)
}

#[derive(Serialize)]
struct EventResult {
    index: usize,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<PositionJson>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<Detail>,
}

#[derive(Serialize, Clone, Copy)]
pub(crate) struct PositionJson {
    pub partition: i32,
    pub offset: i64,
}

fn indexed(index: usize, err: &DecodeError) -> Detail {
    let rest = err.path.strip_prefix('$').unwrap_or(&err.path);
    Detail::new(format!("$[{index}]{rest}"), err.problem.clone())
}

async fn post_events(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.auth.check(&headers, Scope::Append)?;
    let kind = body_kind(&headers, true)?;
    let items = split_events(kind, &body, s.limits.max_batch)?;
    drop(body);
    let count = items.len();
    let decode = move || {
        items
            .into_iter()
            .map(AppendEvent::from_bytes)
            .collect::<Vec<_>>()
    };
    let decoded = if count > 64 {
        tokio::task::spawn_blocking(decode)
            .await
            .map_err(ApiError::internal)?
    } else {
        decode()
    };
    let mut valid = Vec::with_capacity(count);
    let mut results: Vec<EventResult> = Vec::with_capacity(count);
    let mut details = Vec::new();
    for (index, item) in decoded.into_iter().enumerate() {
        match item {
            Ok(event) => {
                valid.push(event);
                results.push(EventResult {
                    index,
                    status: "appended",
                    position: None,
                    errors: vec![],
                });
            }
            Err(err) => {
                let detail = indexed(index, &err);
                if details.len() < 1000 {
                    details.push(detail.clone());
                }
                results.push(EventResult {
                    index,
                    status: "rejected",
                    position: None,
                    errors: vec![detail],
                });
            }
        }
    }
    let rejected = count - valid.len();
    if valid.is_empty() {
        s.metrics.add(0, 0, rejected as u64);
        return Err(ApiError::Rejected {
            message: format!("none of the {count} events was accepted"),
            details,
        });
    }
    let outcomes = s.log.append(&valid).await?;
    let mut outcomes = outcomes.into_iter();
    let (mut appended, mut duplicates) = (0u64, 0u64);
    let mut positions = Vec::with_capacity(valid.len());
    for result in results.iter_mut().filter(|r| r.status == "appended") {
        let Some(outcome) = outcomes.next() else {
            return Err(ApiError::internal(std::io::Error::other(
                "the log answered fewer outcomes than events",
            )));
        };
        let p = outcome.position();
        positions.push(p);
        result.position = Some(PositionJson {
            partition: p.partition,
            offset: p.offset,
        });
        match outcome {
            AppendOutcome::Appended(_) => appended += 1,
            AppendOutcome::Duplicate(_) => {
                duplicates += 1;
                result.status = "duplicate";
            }
        }
    }
    s.metrics.add(appended, duplicates, rejected as u64);
    let token = ConsistencyToken::from_positions(positions).encode();
    let status = if rejected > 0 {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::OK
    };
    let mut response = (
        status,
        Json(json!({
            "accepted": appended + duplicates,
            "appended": appended,
            "duplicates": duplicates,
            "rejected": rejected,
            "consistency_token": token,
            "results": results,
        })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&token) {
        response.headers_mut().insert(consistency::TOKEN_HEADER, v);
    }
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Customers

#[derive(Serialize)]
struct CardAnswer {
    customer: Box<RawValue>,
    lineage: Value,
    position: PositionJson,
    reflects: Value,
    stale: bool,
    projection_version: i64,
}

async fn get_customer(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    // `as_of`/`known_at` answer from a replay of the audit copy: the `audit` scope.
    let replaying = uri.query().is_some_and(|q| {
        q.split('&')
            .any(|kv| matches!(kv.split('=').next(), Some("as_of" | "known_at")))
    });
    s.auth
        .check(&headers, if replaying { Scope::Audit } else { Scope::Read })?;
    let params = Params::parse(&uri)?;
    if replaying {
        return replay_customer(&s, &id, &headers, params).await;
    }
    params.finish()?;
    check_id("customer", &id)?;
    let fresh = settle(&s, &headers).await?;
    let not_found = || ApiError::NotFound(format!("no customer {id:?}"));
    let version = fresh.version.ok_or_else(not_found)?;
    let mut sql = s.reader.sql(
        "SELECT card, code_version, grading_version, lifecycle_version, churn_version, \
         log_partition, log_offset, events, evaluated_at FROM customers WHERE version = ",
    );
    sql.int(version).push(" AND customer_id = ").str(&id);
    let rows = s
        .reader
        .lookup(
            &sql,
            &[
                Kind::Text,
                Kind::Int,
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Int,
                Kind::Int,
                Kind::Int,
                Kind::Int,
            ],
        )
        .await?;
    let r = rows.first().ok_or_else(not_found)?;
    let card = RawValue::from_string(r[0].text().unwrap_or("null").to_string())
        .map_err(ApiError::internal)?;
    let position = PositionJson {
        partition: r[5].int() as i32,
        offset: r[6].int(),
    };
    let answer = CardAnswer {
        customer: card,
        lineage: json!({
            "code_version": r[1].int(),
            "grading_version": r[2].json(),
            "lifecycle_version": r[3].json(),
            "churn_version": r[4].json(),
            "events": r[7].int(),
            "evaluated_at": rfc3339(r[8].int()),
            "position": position,
        }),
        position,
        reflects: fresh.reflects_json(),
        stale: fresh.stale,
        projection_version: version,
    };
    Ok(with_freshness(Json(answer).into_response(), &fresh))
}

/// `GET /v1/customers/{id}?as_of=T&known_at=T2`: the verdict at business time T from the
/// events recorded by T2, by the replay `clientlog replay` uses.
async fn replay_customer(
    s: &AppState,
    id: &str,
    headers: &HeaderMap,
    mut params: Params,
) -> Result<Response, ApiError> {
    use clientlog_projector::replay::{self, ReplayAt, ReplayError};
    let as_of = params.time("as_of")?;
    let known_at = match params.take("known_at")? {
        None => None,
        Some(v) => Some(replay::parse_known_at(&v).map_err(|_| {
            ApiError::param("known_at", "must be RFC 3339, YYYY-MM-DD or Unix seconds")
        })?),
    };
    params.finish()?;
    check_id("customer", id)?;
    let fresh = settle(s, headers).await?;
    let at = ReplayAt {
        as_of: as_of.unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp()),
        known_at_nanos: known_at,
    };
    let answer = replay::replay_customer(&s.store, id, &s.policies, at)
        .await
        .map_err(|err| match err {
            ReplayError::CustomerId(_) => ApiError::invalid(
                "invalid customer id",
                vec![Detail::new("path.customer", "not a valid customer id")],
            ),
            other => ApiError::internal(other),
        })?;
    if answer.events_total == 0 {
        return Err(ApiError::NotFound(format!("no customer {id:?}")));
    }
    Ok(with_freshness(
        Json(answer.to_json()).into_response(),
        &fresh,
    ))
}

/// A list sort: the key expression, its direction, and which summary column holds it.
fn sort_of(name: &str) -> Option<(&'static str, bool, Option<usize>)> {
    // (expression, descending, column in SUMMARY_COLUMNS)
    Some(match name {
        "id" => ("customer_id", false, None),
        "risk" => ("risk", true, Some(8)),
        "score" => ("score", true, Some(6)),
        "last_activity" => ("COALESCE(last_activity_on, '')", true, Some(10)),
        "name" => ("COALESCE(name, '')", false, Some(1)),
        _ => return None,
    })
}

fn strings<T: Copy>(all: &[T], f: impl Fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| f(*v)).collect()
}

/// The equality filters lists and stats share, appended to `sql`.
fn push_filters(params: &mut Params, sql: &mut Sql) -> Result<(), ApiError> {
    for column in ["owner", "segment", "region"] {
        if let Some(v) = params.text(column)? {
            sql.push(&format!(" AND {column} = ")).str(&v);
        }
    }
    Ok(())
}

async fn list_customers(
    State(s): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    s.auth.check(&headers, Scope::Read)?;
    let mut p = Params::parse(&uri)?;
    let mut sql = s.reader.sql(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM customers WHERE version = "
    ));
    // The version is bound first; it is known only after the wait, so bind a placeholder
    // value now and patch it below.
    sql.int(0);
    let grades = strings(&Grade::ALL, Grade::as_str);
    let stages = strings(&Stage::ALL, Stage::as_str);
    let bands = strings(&RiskBand::ALL, RiskBand::as_str);
    if let Some(v) = p.one_of("grade", &grades)? {
        sql.push(" AND grade = ").str(&v);
    }
    if let Some(v) = p.one_of("stage", &stages)? {
        sql.push(" AND stage = ").str(&v);
    }
    if let Some(v) = p.one_of("risk_band", &bands)? {
        sql.push(" AND risk_band = ").str(&v);
    }
    if let Some(v) = p.take("risk_min")? {
        match v.parse::<f64>() {
            Ok(x) if (0.0..=100.0).contains(&x) => {
                sql.push(" AND risk >= ").real(x);
            }
            _ => {
                return Err(ApiError::param(
                    "risk_min",
                    "must be a number from 0 to 100",
                ))
            }
        }
    }
    push_filters(&mut p, &mut sql)?;
    if let Some(prefix) = p.text("q")? {
        let escaped: String = prefix
            .to_lowercase()
            .chars()
            .flat_map(|c| match c {
                '\\' | '%' | '_' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        sql.push(" AND LOWER(name) LIKE ")
            .str(&format!("{escaped}%"))
            .push(" ESCAPE '\\'");
    }
    let sort_name = p.take("sort")?.unwrap_or_else(|| "id".into());
    let (key, descending, column) = sort_of(&sort_name).ok_or_else(|| {
        ApiError::param(
            "sort",
            "must be one of id, risk, score, last_activity, name",
        )
    })?;
    let limit = p.limit(s.limits.max_page)?;
    if let Some(cursor) = p.take("cursor")? {
        let c = decode_cursor(&cursor)?;
        let bad = || ApiError::param("cursor", "this cursor belongs to another sort");
        if c.get("s").and_then(Value::as_str) != Some(sort_name.as_str()) {
            return Err(bad());
        }
        let after = c
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::param("cursor", "not a cursor this API gave out"))?
            .to_string();
        match column {
            None => {
                sql.push(" AND customer_id > ").str(&after);
            }
            Some(_) => {
                let op = if descending { "<" } else { ">" };
                let k = c.get("k").cloned().unwrap_or(Value::Null);
                let bind = |sql: &mut Sql| -> Result<(), ApiError> {
                    match &k {
                        Value::Number(n) if n.as_f64().is_some() => {
                            sql.real(n.as_f64().unwrap_or_default());
                        }
                        Value::String(t) => {
                            sql.str(t);
                        }
                        _ => {
                            return Err(ApiError::param("cursor", "not a cursor this API gave out"))
                        }
                    }
                    Ok(())
                };
                sql.push(&format!(" AND ({key} {op} "));
                bind(&mut sql)?;
                sql.push(&format!(" OR ({key} = "));
                bind(&mut sql)?;
                sql.push(" AND customer_id > ").str(&after).push("))");
            }
        }
    }
    p.finish()?;
    sql.push(&format!(
        " ORDER BY {key} {}, customer_id ASC LIMIT ",
        if descending { "DESC" } else { "ASC" }
    ))
    .int(limit + 1);

    let fresh = settle(&s, &headers).await?;
    let Some(version) = fresh.version else {
        return Ok(projected(
            json!({"customers": [], "next_cursor": null}),
            &fresh,
        ));
    };
    sql.args[0] = crate::reader::Arg::Int(version);
    let mut rows = s.reader.rows(&sql, &SUMMARY_KINDS).await?;
    let next = next_page(&mut rows, limit, |r| {
        let mut c = json!({"s": sort_name, "id": r[0].json()});
        if let Some(col) = column {
            c["k"] = match &r[col] {
                Val::Null => Value::String(String::new()),
                v => v.json(),
            };
        }
        c
    });
    #[derive(Serialize)]
    struct ListAnswer<'r> {
        customers: Vec<Summary<'r>>,
        sort: &'r str,
        next_cursor: Option<String>,
    }
    let answer = ListAnswer {
        customers: rows.iter().map(|r| Summary(r)).collect(),
        sort: &sort_name,
        next_cursor: next,
    };
    Ok(projected(answer, &fresh))
}

async fn history(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    s.auth.check(&headers, Scope::Audit)?;
    let mut p = Params::parse(&uri)?;
    check_id("customer", &id)?;
    let event_type = match p.take("type")? {
        None => None,
        Some(t) => Some(
            EventType::parse(&t)
                .ok_or_else(|| ApiError::param("type", "not an event type; see schemas/"))?,
        ),
    };
    let from = p.time("from")?;
    let to = p.time("to")?;
    let verify = p.bool("verify")?;
    let limit = p.limit(s.limits.max_page)?;
    let after = match p.take("cursor")? {
        None => 0,
        Some(c) => decode_cursor(&c)?
            .get("seq")
            .and_then(Value::as_i64)
            .ok_or_else(|| ApiError::param("cursor", "not a cursor this API gave out"))?,
    };
    p.finish()?;
    let fresh = settle(&s, &headers).await?;

    let mut sql = s
        .reader
        .sql("SELECT seq, hash FROM customer_events WHERE customer_id = ");
    sql.str(&id).push(" ORDER BY seq DESC LIMIT 1");
    let head = s.reader.rows(&sql, &[Kind::Int, Kind::Bytes]).await?;
    let head = head
        .first()
        .ok_or_else(|| ApiError::NotFound(format!("no events of customer {id:?}")))?;

    let mut sql = s.reader.sql(
        "SELECT seq, event_id, log_partition, log_offset, event_type, occurred_at, recorded_at, \
         bytes, hash FROM customer_events WHERE customer_id = ",
    );
    sql.str(&id).push(" AND seq > ").int(after);
    if let Some(t) = event_type {
        sql.push(" AND event_type = ").str(t.as_str());
    }
    if let Some(t) = from {
        sql.push(" AND occurred_at >= ").int(t);
    }
    if let Some(t) = to {
        sql.push(" AND occurred_at < ").int(t);
    }
    sql.push(" ORDER BY seq LIMIT ").int(limit + 1);
    let kinds = [
        Kind::Int,
        Kind::Bytes,
        Kind::Int,
        Kind::Int,
        Kind::Text,
        Kind::Int,
        Kind::Int,
        Kind::Bytes,
        Kind::Bytes,
    ];
    let mut rows = s.reader.rows(&sql, &kinds).await?;
    let next = next_page(&mut rows, limit, |r| json!({"seq": r[0].int()}));
    let events: Vec<Value> = rows
        .iter()
        .map(|r| {
            let event = std::str::from_utf8(r[7].bytes())
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
                .unwrap_or_else(|| Value::String(crate::auth::hex(r[7].bytes())));
            json!({
                "seq": r[0].int(),
                "event_id": uuid::Uuid::from_slice(r[1].bytes()).map_or(Value::Null, |u| u.to_string().into()),
                "position": {"partition": r[2].int(), "offset": r[3].int()},
                "type": r[4].json(),
                "occurred_at": rfc3339(r[5].int()),
                "recorded_at": rfc3339_nanos(r[6].int()),
                "hash": r[8].json(),
                "event": event,
            })
        })
        .collect();
    let mut body = json!({
        "customer_id": id,
        "events": events,
        "next_cursor": next,
        "chain": {
            "algorithm": "sha256(previous hash || event bytes), 32 zero bytes before the first",
            "head": {"seq": head[0].int(), "hash": head[1].json()},
        },
    });
    if verify {
        body["verification"] = verify_chain(&s, &id, head[0].int(), head[1].bytes()).await?;
    }
    Ok(projected(body, &fresh))
}

/// Recomputes a customer's whole chain from the stored bytes and compares it with the stored
/// hashes and head.
async fn verify_chain(
    s: &AppState,
    id: &str,
    head_seq: i64,
    head_hash: &[u8],
) -> Result<Value, ApiError> {
    let mut previous: Option<[u8; 32]> = None;
    let mut expected_seq = 1;
    let mut first_broken: Option<i64> = None;
    let mut after = 0i64;
    loop {
        let mut sql = s
            .reader
            .sql("SELECT seq, bytes, hash FROM customer_events WHERE customer_id = ");
        sql.str(id)
            .push(" AND seq > ")
            .int(after)
            .push(" ORDER BY seq LIMIT 5000");
        let rows = s
            .reader
            .rows(&sql, &[Kind::Int, Kind::Bytes, Kind::Bytes])
            .await?;
        let Some(last) = rows.last() else { break };
        after = last[0].int();
        for r in &rows {
            let hash = clientlog_readstore::chain_hash(previous.as_ref(), r[1].bytes());
            if first_broken.is_none() && (r[0].int() != expected_seq || r[2].bytes() != hash) {
                first_broken = Some(r[0].int());
            }
            previous = Some(hash);
            expected_seq = r[0].int() + 1;
        }
    }
    let head_ok =
        expected_seq - 1 == head_seq && previous.is_some_and(|h| h.as_slice() == head_hash);
    Ok(json!({
        "ok": first_broken.is_none() && head_ok,
        "events": expected_seq - 1,
        "first_broken_seq": first_broken,
        "head_matches": head_ok,
    }))
}

async fn customer_exists(s: &AppState, version: i64, id: &str) -> Result<bool, ApiError> {
    let mut sql = s
        .reader
        .sql("SELECT CAST(1 AS BIGINT) FROM customers WHERE version = ");
    sql.int(version).push(" AND customer_id = ").str(id);
    Ok(!s.reader.rows(&sql, &[Kind::Int]).await?.is_empty())
}

async fn timeline(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    s.auth.check(&headers, Scope::Read)?;
    let mut p = Params::parse(&uri)?;
    check_id("customer", &id)?;
    let dimension = p.one_of("dimension", &["grade", "stage", "risk_band"])?;
    let limit = p.limit(s.limits.max_page)?;
    let after = match p.take("cursor")? {
        None => 0,
        Some(c) => decode_cursor(&c)?
            .get("t")
            .and_then(Value::as_i64)
            .ok_or_else(|| ApiError::param("cursor", "not a cursor this API gave out"))?,
    };
    p.finish()?;
    let fresh = settle(&s, &headers).await?;
    let not_found = || ApiError::NotFound(format!("no customer {id:?}"));
    let version = fresh.version.ok_or_else(not_found)?;
    if !customer_exists(&s, version, &id).await? {
        return Err(not_found());
    }
    let mut sql = s.reader.sql(
        "SELECT id, dimension, from_value, to_value, cause, cause_event_id, log_partition, \
         log_offset, at FROM transitions WHERE version = ",
    );
    sql.int(version)
        .push(" AND customer_id = ")
        .str(&id)
        .push(" AND id > ")
        .int(after);
    if let Some(d) = &dimension {
        sql.push(" AND dimension = ").str(d);
    }
    sql.push(" ORDER BY id LIMIT ").int(limit + 1);
    let kinds = [
        Kind::Int,
        Kind::Text,
        Kind::Text,
        Kind::Text,
        Kind::Text,
        Kind::Bytes,
        Kind::Int,
        Kind::Int,
        Kind::Int,
    ];
    let mut rows = s.reader.rows(&sql, &kinds).await?;
    let next = next_page(&mut rows, limit, |r| json!({"t": r[0].int()}));
    let transitions: Vec<Value> = rows
        .iter()
        .map(|r| {
            let cause = if r[4].text() == Some("event") {
                json!({
                    "kind": "event",
                    "event_id": uuid::Uuid::from_slice(r[5].bytes()).map_or(Value::Null, |u| u.to_string().into()),
                    "position": {"partition": r[6].int(), "offset": r[7].int()},
                })
            } else {
                json!({"kind": "reevaluation"})
            };
            json!({
                "dimension": r[1].json(),
                "from": r[2].json(),
                "to": r[3].json(),
                "at": rfc3339(r[8].int()),
                "cause": cause,
            })
        })
        .collect();
    Ok(projected(
        json!({"customer_id": id, "transitions": transitions, "next_cursor": next}),
        &fresh,
    ))
}

/// Counts by `column` of the customers `sql_where` selects, with every known value present.
async fn counts(
    s: &AppState,
    column: &str,
    known: &[&str],
    filter: &Sql,
) -> Result<BTreeMap<String, i64>, ApiError> {
    let mut sql = s
        .reader
        .sql(&format!("SELECT {column}, COUNT(*) FROM customers WHERE "));
    sql.splice(filter).push(&format!(" GROUP BY {column}"));
    let mut out: BTreeMap<String, i64> = known.iter().map(|k| (k.to_string(), 0)).collect();
    for r in s.reader.rows(&sql, &[Kind::Text, Kind::Int]).await? {
        if let Some(k) = r[0].text() {
            out.insert(k.to_string(), r[1].int());
        }
    }
    Ok(out)
}

fn fragment() -> Sql {
    crate::reader::Reader::fragment()
}

async fn distributions(s: &AppState, filter: &Sql) -> Result<Value, ApiError> {
    let grades = strings(&Grade::ALL, Grade::as_str);
    let stages = strings(&Stage::ALL, Stage::as_str);
    let bands = strings(&RiskBand::ALL, RiskBand::as_str);
    let by_grade = counts(s, "grade", &grades, filter).await?;
    let by_stage = counts(s, "stage", &stages, filter).await?;
    let by_band = counts(s, "risk_band", &bands, filter).await?;
    Ok(json!({
        "customers": by_grade.values().sum::<i64>(),
        "by_grade": by_grade,
        "by_stage": by_stage,
        "by_risk_band": by_band,
    }))
}

async fn portfolio(
    State(s): State<AppState>,
    Path(rep): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    s.auth.check(&headers, Scope::Read)?;
    let mut p = Params::parse(&uri)?;
    check_id("rep", &rep)?;
    let top = p.int("top", 0, 100, 10)?;
    p.finish()?;
    let fresh = settle(&s, &headers).await?;
    let Some(version) = fresh.version else {
        return Ok(projected(json!({"rep": rep, "customers": 0}), &fresh));
    };
    let mut filter = fragment();
    filter
        .push("version = ")
        .int(version)
        .push(" AND owner = ")
        .str(&rep);
    let mut body = distributions(&s, &filter).await?;
    let mut sql = s.reader.sql(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM customers WHERE version = "
    ));
    sql.int(version)
        .push(" AND owner = ")
        .str(&rep)
        .push(" ORDER BY risk DESC, customer_id ASC LIMIT ")
        .int(top);
    let riskiest = s.reader.rows(&sql, &SUMMARY_KINDS).await?;
    let riskiest: Vec<Summary> = riskiest.iter().map(|r| Summary(r)).collect();
    body["rep"] = rep.into();
    body["riskiest"] = serde_json::to_value(riskiest).map_err(ApiError::internal)?;
    Ok(projected(body, &fresh))
}

async fn stats(
    State(s): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    s.auth.check(&headers, Scope::Read)?;
    let mut p = Params::parse(&uri)?;
    let mut filter = fragment();
    filter.push("version = ").int(0);
    push_filters(&mut p, &mut filter)?;
    p.finish()?;
    let fresh = settle(&s, &headers).await?;
    let Some(version) = fresh.version else {
        return Ok(projected(json!({"customers": 0}), &fresh));
    };
    filter.args[0] = crate::reader::Arg::Int(version);
    let body = distributions(&s, &filter).await?;
    Ok(projected(body, &fresh))
}

// ---------------------------------------------------------------------------------------------
// Simulation

/// `current` with `changes` merged over it (objects key by key), validated; `field` names the
/// request field in errors.
pub(crate) fn merged_policy<P: clientlog_domain::policy::Policy>(
    current: &P,
    changes: Value,
    field: &str,
) -> Result<P, ApiError> {
    fn merge(base: &mut Value, changes: Value) {
        match (base, changes) {
            (Value::Object(base), Value::Object(changes)) => {
                for (k, v) in changes {
                    merge(base.entry(k).or_insert(Value::Null), v);
                }
            }
            (base, changes) => *base = changes,
        }
    }
    let invalid = |problem: String| {
        ApiError::invalid(
            format!("invalid {field} policy"),
            vec![Detail::new(format!("$.{field}"), problem)],
        )
    };
    if !changes.is_object() {
        return Err(invalid(format!(
            "must be an object (a part of {field}.toml)"
        )));
    }
    let mut policy = serde_json::to_value(current).map_err(ApiError::internal)?;
    merge(&mut policy, changes);
    let policy: P = serde_json::from_value(policy).map_err(|e| invalid(e.to_string()))?;
    policy.validate().map_err(|(key, problem)| {
        ApiError::invalid(
            format!("invalid {field} policy"),
            vec![Detail::new(format!("$.{field}.{key}"), problem)],
        )
    })?;
    Ok(policy)
}

async fn simulate(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    s.auth.check(&headers, Scope::Analyze)?;
    body_kind(&headers, false)?;
    let request: Value = serde_json::from_slice(&body).map_err(|e| malformed(&e))?;
    let Value::Object(mut request) = request else {
        return Err(ApiError::invalid(
            "the body must be a JSON object",
            vec![Detail::new(
                "$",
                "expected an object with `grading` and `top_movers`",
            )],
        ));
    };
    let top = match request.remove("top_movers") {
        None => 20,
        Some(v) => v.as_u64().filter(|n| *n <= 1000).ok_or_else(|| {
            ApiError::invalid(
                "invalid top_movers",
                vec![Detail::new(
                    "$.top_movers",
                    "must be an integer from 0 to 1000",
                )],
            )
        })? as usize,
    };
    let changes = request
        .remove("grading")
        .unwrap_or(Value::Object(Default::default()));
    if let Some(key) = request.keys().next() {
        return Err(ApiError::invalid(
            "unknown field",
            vec![Detail::new(
                format!("$.{key}"),
                "unknown field; expected grading, top_movers",
            )],
        ));
    }
    let live = crate::versions::live_policies(&s).await?;
    let policy = merged_policy(&live.grading.policy, changes, "grading")?;
    let fresh = settle(&s, &headers).await?;
    let Some(version) = fresh.version else {
        return Err(ApiError::Rejected {
            message: "no customers are projected yet".into(),
            details: vec![],
        });
    };
    let outcome = clientlog_projector::analysis::simulate_store(&s.store, version, &policy, top)
        .await
        .map_err(|err| match err {
            clientlog_projector::analysis::AnalysisError::Incompatible(err) => ApiError::Rejected {
                message: err.to_string(),
                details: vec![Detail::new(
                    "$.grading",
                    "changes the measurement windows; rebuild instead",
                )],
            },
            clientlog_projector::analysis::AnalysisError::Store(err) => err.into(),
        })?;
    let (report, skipped) = (outcome.report, outcome.skipped);
    Ok(projected(
        json!({"report": report, "skipped": skipped.len(), "policy": policy}),
        &fresh,
    ))
}

// ---------------------------------------------------------------------------------------------
// Operations

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Per partition: (high-water mark, checkpoint, lag in events).
async fn lag(s: &AppState) -> Result<BTreeMap<i32, (i64, Option<i64>, i64)>, ApiError> {
    let marks = s.log.high_water_marks().await?;
    let version = s.reader.live_version().await?;
    let checkpoints = match version {
        Some(v) => s.reader.checkpoints(v).await?,
        None => BTreeMap::new(),
    };
    let first = if s.log.dedupes_on_append() {
        clientlog_eventlog::sqlite::FIRST_OFFSET
    } else {
        0
    };
    Ok(marks
        .into_iter()
        .map(|(p, hwm)| {
            let next = checkpoints.get(&p).map_or(first, |c| c + 1);
            (p, (hwm, checkpoints.get(&p).copied(), (hwm - next).max(0)))
        })
        .collect())
}

async fn readyz(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let lags = match lag(&s).await {
        Ok(lags) => lags,
        Err(err) => {
            if let ApiError::Internal(cause) = &err {
                tracing::warn!(cause = %crate::error::chain(cause.as_ref()), "not ready");
            }
            return Err(ApiError::NotReady {
                details: vec![Detail::new(
                    "storage",
                    "the event log or the read store is unreachable",
                )],
            });
        }
    };
    let details: Vec<Detail> = lags
        .iter()
        .filter(|(_, (_, _, lag))| *lag > s.ready_max_lag)
        .map(|(p, (_, _, lag))| {
            Detail::new(
                format!("projector.partition.{p}"),
                format!("{lag} events behind (threshold {})", s.ready_max_lag),
            )
        })
        .collect();
    if !details.is_empty() {
        return Err(ApiError::NotReady { details });
    }
    let lag: BTreeMap<String, i64> = lags
        .iter()
        .map(|(p, (_, _, l))| (p.to_string(), *l))
        .collect();
    Ok(Json(json!({"status": "ready", "lag": lag})))
}

async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    use std::fmt::Write as _;
    s.auth.check(&headers, Scope::Admin)?;
    let mut out = String::new();
    s.metrics.render(&mut out);
    let lags = lag(&s).await?;
    let _ = writeln!(
        out,
        "# HELP clientlog_log_high_water_mark The offset the next appended event gets, per partition.\n\
         # TYPE clientlog_log_high_water_mark gauge"
    );
    for (p, (hwm, _, _)) in &lags {
        let _ = writeln!(
            out,
            "clientlog_log_high_water_mark{{partition=\"{p}\"}} {hwm}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP clientlog_projected_offset The last offset whose effect is in the read models.\n\
         # TYPE clientlog_projected_offset gauge"
    );
    for (p, (_, checkpoint, _)) in &lags {
        if let Some(c) = checkpoint {
            let _ = writeln!(out, "clientlog_projected_offset{{partition=\"{p}\"}} {c}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP clientlog_projector_lag_events Events appended but not yet projected.\n\
         # TYPE clientlog_projector_lag_events gauge"
    );
    for (p, (_, _, lag)) in &lags {
        let _ = writeln!(
            out,
            "clientlog_projector_lag_events{{partition=\"{p}\"}} {lag}"
        );
    }
    let dead = match s.reader.live_version().await? {
        Some(v) => s.reader.open_dead_letters(v).await?,
        None => 0,
    };
    let _ = writeln!(
        out,
        "# HELP clientlog_dead_letters_open Records the projector could not apply, unresolved.\n\
         # TYPE clientlog_dead_letters_open gauge\nclientlog_dead_letters_open {dead}"
    );
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
