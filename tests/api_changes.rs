//! `GET /v1/changes` end to end against the real binary on port 0: a change appears after an
//! append, a long poll waits and answers, paging by cursor while appends go on delivers every
//! customer's last change with no duplicates, Server-Sent Events deliver and resume with
//! `Last-Event-ID`, and bad cursors are 400s with the error body. The feed tests also run on a
//! fresh PostgreSQL read store when `CLIENTLOG_TEST_DATABASE_URL` is set.

mod api_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use api_support::*;
use clientlog_readstore::test_support::{Backend, TestStore};
use serde_json::Value;

async fn append(server: &Server, events: &[String]) -> String {
    let answer = server
        .post_json("/v1/events", &format!("[{}]", events.join(",")))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body["consistency_token"]
        .as_str()
        .expect("a consistency token")
        .to_string()
}

/// Waits until the read models reflect `token` (a strict consistency wait on a cheap read).
async fn settle(server: &Server, token: &str) {
    let answer = server
        .call(
            "GET",
            "/v1/stats",
            None,
            &[
                ("X-Consistency-Token", token),
                ("X-Consistency-Strict", "true"),
            ],
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

fn ids(page: &Value) -> Vec<String> {
    page["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["customer"]["id"].as_str().expect("an id").to_string())
        .collect()
}

/// The feed position of a cursor `VERSION-SEQ`.
fn seq(cursor: &str) -> i64 {
    cursor
        .split_once('-')
        .and_then(|(_, s)| s.parse().ok())
        .expect("a cursor VERSION-SEQ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_appears_after_an_append_and_a_long_poll_waits_for_it() {
    let store = sqlite_store("changes_long_poll").await;
    let server = serve(&store, &[]);

    // `now` on an empty store: an empty page at once.
    let first = server.get("/v1/changes?after=now").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(ids(&first.body), Vec::<String>::new());
    assert_eq!(first.body["reset"], false);
    let start = first.body["next_cursor"].as_str().unwrap().to_string();

    let token = append(&server, &[registered("C-1", "Acme", "R-1")]).await;
    settle(&server, &token).await;
    let page = server.get(&format!("/v1/changes?after={start}")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(ids(&page.body), ["C-1"]);
    assert_eq!(page.body["changes"][0]["customer"]["name"], "Acme");
    let cursor = page.body["next_cursor"].as_str().unwrap().to_string();
    assert_eq!(page.body["changes"][0]["cursor"], cursor.as_str());

    // Nothing after the cursor: an empty page with the same cursor once `wait` has passed.
    let started = Instant::now();
    let empty = server
        .get(&format!("/v1/changes?after={cursor}&wait=300ms"))
        .await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(ids(&empty.body), Vec::<String>::new());
    assert_eq!(empty.body["next_cursor"], cursor.as_str());
    assert!(started.elapsed() >= Duration::from_millis(250));

    // A long poll in flight answers as soon as a change is projected, well before its bound.
    let poll = {
        let url = format!("{}/v1/changes?after={cursor}&wait=20s", server.base);
        let client = server.client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let body: Value = client
                .get(url)
                .send()
                .await
                .expect("long poll sent")
                .json()
                .await
                .expect("a JSON page");
            (body, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    append(&server, &[purchase_json("C-1", 1)]).await;
    let (body, took) = poll.await.expect("the long poll task");
    assert_eq!(ids(&body), ["C-1"], "{body}");
    assert!(seq(body["next_cursor"].as_str().unwrap()) > seq(&cursor));
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_by_cursor_during_appends_delivers_every_last_change_once() {
    let store = sqlite_store("changes_paging").await;
    paging_during_appends(&serve(&store, &[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_works_the_same_on_postgres() {
    let Some(store) = TestStore::new("changes_postgres", Backend::Postgres).await else {
        return;
    };
    {
        let server = serve(&store, &[]);
        paging_during_appends(&server).await;
        events_deliver_and_resume(&server).await;
    }
    store.cleanup().await;
}

async fn paging_during_appends(server: &Server) {
    let customers: Vec<String> = (0..12).map(|i| format!("P-{i:02}")).collect();
    let registrations: Vec<String> = customers
        .iter()
        .map(|c| registered(c, &format!("Name {c}"), "R-1"))
        .collect();
    append(server, &registrations).await;

    // A writer appends purchases in small batches while a reader pages with a small limit.
    let writer = {
        let base = server.base.clone();
        let client = server.client.clone();
        let customers = customers.clone();
        tokio::spawn(async move {
            let mut token = String::new();
            for round in 0..15u64 {
                let batch: Vec<String> = customers
                    .iter()
                    .skip(round as usize % 4)
                    .step_by(3)
                    .map(|c| purchase_json(c, round))
                    .collect();
                let body: Value = client
                    .post(format!("{base}/v1/events"))
                    .header("content-type", "application/json")
                    .body(format!("[{}]", batch.join(",")))
                    .send()
                    .await
                    .expect("append sent")
                    .json()
                    .await
                    .expect("append answer");
                token = body["consistency_token"].as_str().unwrap().to_string();
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            token
        })
    };

    let mut cursor: Option<String> = None;
    let mut seen: Vec<(i64, String)> = Vec::new();
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    let mut read_page = |page: &Value| {
        for change in page["changes"].as_array().unwrap() {
            let id = change["customer"]["id"].as_str().unwrap().to_string();
            seen.push((seq(change["cursor"].as_str().unwrap()), id.clone()));
            last.insert(id, change["customer"]["position"].clone());
        }
    };
    let mut writer = Some(writer);
    let mut final_token = None;
    loop {
        let after = cursor
            .as_deref()
            .map_or(String::new(), |c| format!("&after={c}"));
        let page = server
            .get(&format!("/v1/changes?limit=3&wait=100ms{after}"))
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(page.body["reset"], false);
        read_page(&page.body);
        cursor = Some(page.body["next_cursor"].as_str().unwrap().to_string());
        if writer.as_ref().is_some_and(|w| w.is_finished()) {
            let token = writer.take().unwrap().await.expect("writer");
            settle(server, &token).await;
            final_token = Some(token);
            continue; // drain what was projected up to the last append
        }
        if final_token.is_some() && page.body["changes"].as_array().unwrap().is_empty() {
            break;
        }
    }

    // No duplicates: feed positions strictly increase across pages.
    for pair in seen.windows(2) {
        assert!(pair[0].0 < pair[1].0, "out of order or repeated: {pair:?}");
    }
    // No gaps: every customer was seen, and the last change seen is its current card.
    let ids: BTreeSet<&String> = seen.iter().map(|(_, id)| id).collect();
    assert_eq!(ids, customers.iter().collect::<BTreeSet<_>>());
    for c in &customers {
        let card = server.get(&format!("/v1/customers/{c}")).await;
        assert_eq!(card.status, 200, "{}", card.text);
        assert_eq!(last[c], card.body["position"], "customer {c}");
    }
    // Reading the whole feed again from the start gives each customer once, at its last change.
    let all = server.get("/v1/changes?limit=500").await;
    let again: Vec<String> = all.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(again.len(), customers.len(), "{}", all.text);
    let mut last_seen: Vec<(i64, String)> = Vec::new();
    for c in &customers {
        let s = seen.iter().rev().find(|(_, id)| id == c).unwrap().0;
        last_seen.push((s, c.clone()));
    }
    last_seen.sort();
    let expected: Vec<String> = last_seen.into_iter().map(|(_, c)| c).collect();
    assert_eq!(again, expected);
}

/// Reads server-sent events from `response` until `want` customer events arrived; returns
/// (event, id, data) triples.
async fn read_events(
    response: &mut reqwest::Response,
    want: usize,
) -> Vec<(String, String, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while events
        .iter()
        .filter(|(e, _, _): &&(String, String, Value)| e == "customer")
        .count()
        < want
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, response.chunk())
            .await
            .expect("events within 20 s")
            .expect("the stream reads")
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).expect("utf-8 events"));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                let field =
                    |name: &str| line.strip_prefix(name).map(|v| v.trim_start().to_string());
                if let Some(v) = field("event:") {
                    event = v;
                } else if let Some(v) = field("id:") {
                    id = v;
                } else if let Some(v) = field("data:") {
                    data.push_str(&v);
                }
            }
            if !event.is_empty() {
                events.push((event, id, serde_json::from_str(&data).expect("JSON data")));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_deliver_changes_and_resume_with_last_event_id() {
    let store = sqlite_store("changes_sse").await;
    events_deliver_and_resume(&serve(&store, &[])).await;
}

async fn events_deliver_and_resume(server: &Server) {
    let url = format!("{}/v1/changes", server.base);
    // From now on: on a shared store, earlier changes belong to other checks.
    let mut stream = server
        .client
        .get(format!("{url}?after=now"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("stream opened");
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));

    append(
        server,
        &[
            registered("S-1", "One", "R-1"),
            registered("S-2", "Two", "R-1"),
            registered("S-3", "Three", "R-1"),
        ],
    )
    .await;
    let events = read_events(&mut stream, 3).await;
    let customers: Vec<&str> = events
        .iter()
        .filter(|(e, _, _)| e == "customer")
        .map(|(_, _, d)| d["customer"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        customers.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(["S-1", "S-2", "S-3"])
    );
    for (_, id, data) in &events {
        assert_eq!(data["cursor"], id.as_str(), "the event id is its cursor");
    }
    let last_id = events.last().unwrap().1.clone();
    drop(stream);

    // Changes while disconnected arrive after a reconnect with Last-Event-ID, and nothing
    // delivered before is repeated.
    let token = append(
        server,
        &[registered("S-4", "Four", "R-2"), purchase_json("S-1", 9)],
    )
    .await;
    settle(server, &token).await;
    let mut resumed = server
        .client
        .get(format!("{url}?after=0-0"))
        .header("accept", "text/event-stream")
        .header("last-event-id", &last_id)
        .send()
        .await
        .expect("stream reopened");
    assert_eq!(resumed.status(), 200);
    let events = read_events(&mut resumed, 2).await;
    let customers: Vec<&str> = events
        .iter()
        .map(|(_, _, d)| d["customer"]["id"].as_str().unwrap())
        .collect();
    // One projector batch: changes within it are in the batch's write order.
    assert_eq!(customers.len(), 2, "{events:?}");
    assert_eq!(
        customers.into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from(["S-1", "S-4"])
    );
    assert!(events.iter().all(|(_, id, _)| seq(id) > seq(&last_id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cursors_and_parameters_are_400_with_the_error_body() {
    let store = sqlite_store("changes_bad").await;
    let server = serve(&store, &[]);
    for (query, path) in [
        ("after=garbage", "query.after"),
        ("after=1-x", "query.after"),
        ("after=-1", "query.after"),
        ("after=7b7d", "query.after"),
        ("wait=forever", "query.wait"),
        ("wait=-1s", "query.wait"),
        ("limit=0", "query.limit"),
        ("limit=501", "query.limit"),
        ("after=1-1&after=1-2", "query.after"),
        ("cursor=1-1", "query.cursor"),
    ] {
        let answer = server.get(&format!("/v1/changes?{query}")).await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.text);
        assert_eq!(assert_error_body(&answer), "invalid_request", "{query}");
        assert_eq!(answer.body["error"]["details"][0]["path"], path, "{query}");
    }
    let answer = server
        .call(
            "GET",
            "/v1/changes",
            None,
            &[("accept", "text/event-stream"), ("last-event-id", "nope")],
            None,
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(assert_error_body(&answer), "invalid_request");
    assert_eq!(
        answer.body["error"]["details"][0]["path"],
        "header.Last-Event-ID"
    );

    // The route is documented.
    let doc = server.get("/openapi.json").await;
    assert!(doc.body["paths"]["/v1/changes"]["get"].is_object());
}
