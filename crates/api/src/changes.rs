//! `GET /v1/changes`: the customers whose read model changed, in the order they changed, so a
//! front end stays current without polling lists. One source of order serves both forms: the
//! read store's change feed, the customers rows' `change_seq` (see
//! `projections/migrations/postgres/0012_change_seq_in_customers.sql`), which the projector moves
//! to the end, under the version's write lock and in the row's own write, every time it rewrites
//! the row.
//!
//! * A long poll (JSON): answers at once when there are changes after the cursor, else waits up
//!   to `wait` (capped below the request timeout) and answers an empty page with the same cursor.
//! * Server-Sent Events (`Accept: text/event-stream`): one `customer` event per change with
//!   `id:` = its cursor, so a reconnecting `EventSource` resumes with `Last-Event-ID`.
//!
//! A cursor is `VERSION-SEQ` (opaque to clients): the projection version and the feed position.
//! When the live version changes (a promoted rebuild), the feed restarts from the beginning of
//! the new version and says so (`"reset": true`, or a `reset` event), since every card may differ.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Scope;
use crate::error::ApiError;
use crate::reader::{Kind, Summary, SUMMARY_COLUMNS, SUMMARY_KINDS};
use crate::State as AppState;

/// How often a waiting request looks for new changes.
const POLL: Duration = Duration::from_millis(50);
/// The longest long poll, whatever `wait` asks (and never longer than the request timeout).
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Changes fetched per query by an event stream.
const STREAM_PAGE: i64 = 500;

/// A position in a version's change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The projection version; 0: not bound to one yet (start of whichever is live).
    pub version: i64,
    /// The last feed position delivered; 0: the beginning.
    pub seq: i64,
}

impl Cursor {
    pub fn encode(self) -> String {
        format!("{}-{}", self.version, self.seq)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let (v, s) = text.split_once('-')?;
        let digits =
            |t: &str| !t.is_empty() && t.len() <= 18 && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(v) || !digits(s) {
            return None;
        }
        Some(Self {
            version: v.parse().ok()?,
            seq: s.parse().ok()?,
        })
    }
}

/// `30s`, `500ms`, `2m` or plain seconds.
fn parse_wait(text: &str) -> Option<Duration> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    if number.is_empty() || number.len() > 9 {
        return None;
    }
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

struct Request {
    start: Option<Start>,
    limit: i64,
    wait: Duration,
}

/// Where to start reading.
#[derive(Clone, Copy)]
enum Start {
    After(Cursor),
    /// The current end of the live version's feed: only changes from now on.
    Now,
}

fn bad_cursor(name: &str) -> ApiError {
    if name == "Last-Event-ID" {
        ApiError::invalid(
            "invalid Last-Event-ID",
            vec![crate::error::Detail::new(
                "header.Last-Event-ID",
                "not an event id this API gave out",
            )],
        )
    } else {
        ApiError::param(name, "not a cursor this API gave out (or `now`)")
    }
}

fn parse_request(s: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<Request, ApiError> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| ApiError::invalid(format!("invalid query string: {e}"), vec![]))?;
    let (mut after, mut limit, mut wait) = (None, None, None);
    for (k, v) in pairs {
        let slot = match k.as_str() {
            "after" => &mut after,
            "limit" => &mut limit,
            "wait" => &mut wait,
            other => {
                let mut shown: String = other.chars().take(64).collect();
                if shown.is_empty() {
                    shown = "(empty)".into();
                }
                return Err(ApiError::param(
                    &shown,
                    "unknown parameter; see /openapi.json",
                ));
            }
        };
        if slot.replace(v).is_some() {
            return Err(ApiError::param(&k, "given more than once"));
        }
    }
    let max_page = i64::from(s.limits.max_page);
    let limit = match limit {
        None => 100.min(max_page),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max_page).contains(n))
            .ok_or_else(|| {
                ApiError::param("limit", format!("must be an integer from 1 to {max_page}"))
            })?,
    };
    let cap = MAX_WAIT.min(
        s.limits
            .request_timeout
            .saturating_sub(Duration::from_secs(1)),
    );
    let wait = match wait {
        None => Duration::ZERO,
        Some(v) => parse_wait(&v)
            .ok_or_else(|| ApiError::param("wait", "a duration such as 30s, 500ms or 2m (capped)"))?
            .min(cap),
    };
    let parse = |name: &str, text: &str| -> Result<Start, ApiError> {
        if text == "now" {
            Ok(Start::Now)
        } else {
            Cursor::parse(text)
                .map(Start::After)
                .ok_or_else(|| bad_cursor(name))
        }
    };
    // An EventSource reconnects to the same URL with the last id it saw: that id wins.
    let start = match headers.get("last-event-id") {
        Some(id) => Some(parse(
            "Last-Event-ID",
            id.to_str().map_err(|_| bad_cursor("Last-Event-ID"))?,
        )?),
        None => after.as_deref().map(|a| parse("after", a)).transpose()?,
    };
    Ok(Request { start, limit, wait })
}

/// One page of the feed after `cursor`, each change as (its cursor, the customer summary).
/// Returns the cursor to continue from and whether the version changed under the cursor.
struct Page {
    changes: Vec<(Cursor, Value)>,
    next: Cursor,
    reset: bool,
}

async fn end_of_feed(s: &AppState, version: i64) -> Result<i64, ApiError> {
    let mut sql = s
        .reader
        .sql("SELECT MAX(change_seq) FROM customers WHERE version = ");
    sql.int(version);
    Ok(s.reader
        .rows(&sql, &[Kind::Int])
        .await?
        .first()
        .map_or(0, |r| r[0].int()))
}

/// Resolves a start against the live version.
async fn resolve(s: &AppState, start: Option<Start>) -> Result<(Cursor, bool), ApiError> {
    let live = s.version.get(s).await?;
    Ok(match (start, live) {
        (None, Some(v)) => (Cursor { version: v, seq: 0 }, false),
        (None, None) | (Some(Start::Now), None) => (Cursor { version: 0, seq: 0 }, false),
        (Some(Start::Now), Some(v)) => (
            Cursor {
                version: v,
                seq: end_of_feed(s, v).await?,
            },
            false,
        ),
        (Some(Start::After(c)), live) => match live {
            Some(v) if c.version != v => (Cursor { version: v, seq: 0 }, c.version != 0),
            _ => (c, false),
        },
    })
}

async fn page(s: &AppState, start: Cursor, limit: i64) -> Result<Page, ApiError> {
    let (cursor, reset) = resolve(s, Some(Start::After(start))).await?;
    if cursor.version == 0 {
        return Ok(Page {
            changes: vec![],
            next: cursor,
            reset,
        });
    }
    let mut sql = s.reader.sql(&format!(
        "SELECT {SUMMARY_COLUMNS}, change_seq FROM customers WHERE version = "
    ));
    sql.int(cursor.version)
        .push(" AND change_seq > ")
        .int(cursor.seq)
        .push(" ORDER BY change_seq LIMIT ")
        .int(limit);
    let mut kinds = SUMMARY_KINDS.to_vec();
    kinds.push(Kind::Int);
    let rows = s.reader.rows(&sql, &kinds).await?;
    let changes: Vec<(Cursor, Value)> = rows
        .iter()
        .map(|r| {
            let at = Cursor {
                version: cursor.version,
                seq: r[SUMMARY_KINDS.len()].int(),
            };
            (at, serde_json::to_value(Summary(r)).unwrap_or_default())
        })
        .collect();
    let next = changes.last().map_or(cursor, |(c, _)| *c);
    Ok(Page {
        changes,
        next,
        reset,
    })
}

pub(crate) async fn changes(
    State(s): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    s.auth.check(&headers, Scope::Read)?;
    let request = parse_request(&s, &headers, &uri)?;
    let wants_stream = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"));
    let (start, reset) = resolve(&s, request.start).await?;
    if wants_stream {
        return Ok(stream(s, start, reset).into_response());
    }
    let deadline = Instant::now() + request.wait;
    let mut reset = reset;
    let mut cursor = start;
    loop {
        let page = page(&s, cursor, request.limit).await?;
        reset |= page.reset;
        cursor = page.next;
        if !page.changes.is_empty() || Instant::now() + POLL > deadline || s.shutdown.is_cancelled()
        {
            let fresh = crate::consistency::settle(&s, &HeaderMap::new()).await?;
            let changes: Vec<Value> = page
                .changes
                .into_iter()
                .map(|(c, customer)| json!({"cursor": c.encode(), "customer": customer}))
                .collect();
            let mut body = json!({
                "changes": changes,
                "next_cursor": cursor.encode(),
                "reset": reset,
                "reflects": fresh.reflects_json(),
            });
            if cursor.version != 0 {
                body["projection_version"] = cursor.version.into();
            }
            return Ok(Json(body).into_response());
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = s.shutdown.cancelled() => {}
        }
    }
}

/// What an event stream carries between polls.
struct Feed {
    state: AppState,
    cursor: Cursor,
    pending: VecDeque<Event>,
}

fn stream(state: AppState, start: Cursor, reset: bool) -> impl IntoResponse {
    let mut pending = VecDeque::new();
    if reset {
        pending.push_back(reset_event(start));
    }
    let feed = Feed {
        state,
        cursor: start,
        pending,
    };
    let events = futures::stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(event) = feed.pending.pop_front() {
                return Some((Ok::<_, Infallible>(event), feed));
            }
            if feed.state.shutdown.is_cancelled() {
                return None;
            }
            match page(&feed.state, feed.cursor, STREAM_PAGE).await {
                Ok(page) => {
                    if page.reset {
                        feed.pending.push_back(reset_event(page.next));
                    }
                    feed.cursor = page.next;
                    for (c, customer) in page.changes {
                        let data = json!({"cursor": c.encode(), "customer": customer});
                        feed.pending.push_back(
                            Event::default()
                                .event("customer")
                                .id(c.encode())
                                .data(data.to_string()),
                        );
                    }
                }
                Err(err) => {
                    // The client reconnects with its Last-Event-ID; nothing is lost.
                    if let ApiError::Internal(cause) = &err {
                        tracing::warn!(cause = %crate::error::chain(cause.as_ref()), "change stream ended");
                    }
                    return None;
                }
            }
            if feed.pending.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = feed.state.shutdown.cancelled() => return None,
                }
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Tells a stream's client that the live version changed and the feed starts over at `at`.
fn reset_event(at: Cursor) -> Event {
    Event::default()
        .event("reset")
        .id(at.encode())
        .data(json!({"cursor": at.encode(), "projection_version": at.version}).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            version: 3,
            seq: 1234,
        };
        assert_eq!(Cursor::parse(&c.encode()), Some(c));
        for bad in [
            "",
            "3",
            "-1",
            "3-",
            "a-1",
            "3--1",
            "3-1-2",
            " 3-1",
            "1-9999999999999999999",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn waits_parse() {
        assert_eq!(parse_wait("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_wait("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_wait("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_wait("2m"), Some(Duration::from_secs(120)));
        for bad in ["", "s", "-1s", "1h", "1.5s", "99999999999s"] {
            assert_eq!(parse_wait(bad), None, "{bad}");
        }
    }
}
