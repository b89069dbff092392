//! The HTTP API end to end: the real binary (`clientlog serve`) on port 0, embedded SQLite by
//! default and a fresh PostgreSQL read store when `CLIENTLOG_TEST_DATABASE_URL` is set.

mod api_support;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use api_support::*;
use clientlog_readstore::test_support::{Backend, TestStore};
use serde_json::Value;

/// Posts `events` as a JSON array and returns the consistency token.
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

/// Every endpoint answers, with the shapes the OpenAPI document promises.
async fn exercise_endpoints(server: &Server) {
    // Append: one valid array with a bad event → 207 with per-event results.
    let bad = purchase_json("C-ERR", 1).replace("\"minor\":101", "\"minor\":\"lots\"");
    let events = [
        registered("C-1", "Acme Trading", "R-1"),
        purchase_json("C-1", 1),
        bad,
        registered("C-2", "Bolt Logistics", "R-1"),
    ];
    let answer = server
        .post_json("/v1/events", &format!("[{}]", events.join(",")))
        .await;
    assert_eq!(answer.status, 207, "{}", answer.text);
    let results = answer.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["status"], "appended");
    assert!(results[0]["position"]["offset"].is_i64());
    assert_eq!(results[2]["status"], "rejected");
    assert_eq!(results[2]["index"], 2);
    assert_eq!(results[2]["errors"][0]["path"], "$[2].data.amount.minor");
    assert_eq!(answer.body["appended"], 3);
    assert_eq!(answer.body["rejected"], 1);
    let token = answer.body["consistency_token"]
        .as_str()
        .unwrap()
        .to_string();

    // The same event again is a duplicate with the original position; NDJSON works too.
    let again = server
        .call(
            "POST",
            "/v1/events",
            None,
            &[],
            Some((
                "application/x-ndjson",
                format!("{}\n\n{}\n", events[0], purchase_json("C-2", 7)).into_bytes(),
            )),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["results"][0]["status"], "duplicate");
    assert_eq!(again.body["results"][0]["position"], results[0]["position"]);
    assert_eq!(again.body["results"][1]["status"], "appended");
    let token2 = again.body["consistency_token"]
        .as_str()
        .unwrap()
        .to_string();

    // Read-your-writes: the card is there at once with the token.
    let card = server
        .call(
            "GET",
            "/v1/customers/C-1",
            None,
            &[("X-Consistency-Token", &token)],
            None,
        )
        .await;
    assert_eq!(card.status, 200, "{}", card.text);
    assert_eq!(card.body["customer"]["id"], "C-1");
    assert_eq!(card.body["customer"]["name"], "Acme Trading");
    assert!(card.body["customer"]["grade"].is_string());
    assert!(card.body["lineage"]["grading_version"].is_string());
    assert!(card.body["position"]["offset"].is_i64());
    assert_eq!(card.body["stale"], false);
    assert!(card.headers.contains_key("x-projection-position"));

    // Lists, stats, portfolio.
    let list = server
        .call(
            "GET",
            "/v1/customers?owner=R-1&sort=name",
            None,
            &[("X-Consistency-Token", &token2)],
            None,
        )
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    let ids: Vec<&str> = list.body["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["C-1", "C-2"]);
    let q = server.get("/v1/customers?q=bol").await;
    assert_eq!(q.body["customers"][0]["id"], "C-2", "{}", q.text);
    assert_eq!(q.body["customers"].as_array().unwrap().len(), 1);
    let stats = server.get("/v1/stats?owner=R-1").await;
    assert_eq!(stats.status, 200, "{}", stats.text);
    assert_eq!(stats.body["customers"], 2);
    let total: i64 = stats.body["by_grade"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(total, 2);
    let portfolio = server.get("/v1/reps/R-1/portfolio?top=1").await;
    assert_eq!(portfolio.status, 200, "{}", portfolio.text);
    assert_eq!(portfolio.body["customers"], 2);
    assert_eq!(portfolio.body["riskiest"].as_array().unwrap().len(), 1);

    // Audit copy with its chain, filtered and verified; timeline.
    let history = server
        .get("/v1/customers/C-1/history?verify=true&limit=1")
        .await;
    assert_eq!(history.status, 200, "{}", history.text);
    assert_eq!(history.body["events"].as_array().unwrap().len(), 1);
    assert_eq!(history.body["events"][0]["type"], "customer.registered");
    assert!(history.body["next_cursor"].is_string());
    assert_eq!(history.body["verification"]["ok"], true);
    assert_eq!(history.body["verification"]["events"], 2);
    let cursor = history.body["next_cursor"].as_str().unwrap();
    let page2 = server
        .get(&format!(
            "/v1/customers/C-1/history?limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(
        page2.body["events"][0]["type"], "purchase.recorded",
        "{}",
        page2.text
    );
    assert!(page2.body["next_cursor"].is_null());
    let typed = server
        .get("/v1/customers/C-1/history?type=purchase.recorded&from=2026-03-01&to=2026-04-01")
        .await;
    assert_eq!(
        typed.body["events"].as_array().unwrap().len(),
        1,
        "{}",
        typed.text
    );
    let timeline = server.get("/v1/customers/C-1/timeline").await;
    assert_eq!(timeline.status, 200, "{}", timeline.text);
    let dims: BTreeSet<&str> = timeline.body["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["dimension"].as_str().unwrap())
        .collect();
    assert_eq!(dims, BTreeSet::from(["grade", "risk_band", "stage"]));
    assert_eq!(timeline.body["transitions"][0]["cause"]["kind"], "event");

    // What-if: weigh loyalty instead of sales.
    let sim = server
        .post_json(
            "/v1/simulations",
            r#"{"grading":{"weights":{"monthly_sales":10,"loyalty":50}},"top_movers":5}"#,
        )
        .await;
    assert_eq!(sim.status, 200, "{}", sim.text);
    assert_eq!(sim.body["report"]["customers"], 2);
    let bad_sim = server
        .post_json(
            "/v1/simulations",
            r#"{"grading":{"weights":{"monthly_sales":99}}}"#,
        )
        .await;
    assert_eq!(bad_sim.status, 400, "{}", bad_sim.text);
    assert_error_body(&bad_sim);

    // Operations.
    assert_eq!(server.get("/healthz").await.status, 200);
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let metrics = server.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    for series in [
        "clientlog_api_events_appended_total 4",
        "clientlog_projector_lag_events{partition=",
        "clientlog_projected_offset{partition=",
        "clientlog_dead_letters_open 0",
        "clientlog_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/customers/{id}\"",
    ] {
        assert!(metrics.text.contains(series), "{series} missing in\n{}", metrics.text);
    }
    let openapi = server.get("/openapi.json").await;
    assert_eq!(openapi.body["openapi"], "3.1.0");
}

/// (method, path, content type and body, expected status, expected code).
type ErrorCase = (
    &'static str,
    &'static str,
    Option<(&'static str, Vec<u8>)>,
    u16,
    &'static str,
);

/// Every documented route is routed, and every answer ≥ 400 has the one error body.
async fn errors_have_one_form(server: &Server) {
    let openapi = server.get("/openapi.json").await.body;
    for (path, methods) in openapi["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "C-1").replace("{rep}", "R-1");
        for method in methods.as_object().unwrap().keys() {
            let answer = server
                .call(
                    &method.to_uppercase(),
                    &concrete,
                    None,
                    &[],
                    Some(("application/json", b"{}".to_vec())),
                )
                .await;
            assert!(answer.status != 405, "{method} {path} not routed");
            if answer.status == 404 {
                assert_ne!(
                    answer.body["error"]["message"], "no such route; see /openapi.json",
                    "{method} {path}"
                );
            }
            if answer.status >= 400 {
                assert_error_body(&answer);
            }
        }
    }
    let cases: Vec<ErrorCase> = vec![
        ("GET", "/nope", None, 404, "not_found"),
        ("GET", "/v1/customers/NOBODY", None, 404, "not_found"),
        (
            "GET",
            "/v1/customers/NOBODY/history",
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/customers/NOBODY/timeline",
            None,
            404,
            "not_found",
        ),
        ("DELETE", "/v1/customers", None, 405, "method_not_allowed"),
        ("GET", "/v1/events", None, 405, "method_not_allowed"),
        ("GET", "/v1/customers?limit=0", None, 400, "invalid_request"),
        (
            "GET",
            "/v1/customers?limit=501",
            None,
            400,
            "invalid_request",
        ),
        ("GET", "/v1/customers?grade=Z", None, 400, "invalid_request"),
        (
            "GET",
            "/v1/customers?sort=height",
            None,
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/customers?risk_min=x",
            None,
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/customers?cursor=zz",
            None,
            400,
            "invalid_request",
        ),
        ("GET", "/v1/customers?bogus=1", None, 400, "invalid_request"),
        (
            "GET",
            "/v1/customers?limit=1&limit=2",
            None,
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/customers/C-1/history?type=nope",
            None,
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/customers/C-1/history?from=yesterday",
            None,
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/customers/C-1?as_of=yesterday",
            None,
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/events",
            Some(("application/json", b"{\"a\":".to_vec())),
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/v1/events",
            Some(("application/json", b"[1,".to_vec())),
            400,
            "malformed_json",
        ),
        (
            "POST",
            "/v1/events",
            Some(("application/json", b"   ".to_vec())),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/events",
            Some(("application/json", b"[]".to_vec())),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/events",
            Some(("text/plain", b"{}".to_vec())),
            415,
            "unsupported_media_type",
        ),
        ("POST", "/v1/events", None, 415, "unsupported_media_type"),
        (
            "POST",
            "/v1/events",
            Some(("application/json", b"{}".to_vec())),
            422,
            "rejected",
        ),
        (
            "POST",
            "/v1/events",
            Some(("application/x-ndjson", b"{}\nnot json\n".to_vec())),
            422,
            "rejected",
        ),
        (
            "POST",
            "/v1/simulations",
            Some(("application/json", b"[]".to_vec())),
            400,
            "invalid_request",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let answer = server.call(method, path, None, &[], body).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.text);
        assert_eq!(assert_error_body(&answer), code, "{method} {path}");
        assert_eq!(
            answer
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
            answer.body["request_id"].as_str(),
        );
    }
    // 422 names each event's problem by index.
    let answer = server
        .call(
            "POST",
            "/v1/events",
            None,
            &[],
            Some(("application/x-ndjson", b"{}\nnot json\n".to_vec())),
        )
        .await;
    let paths: Vec<&str> = answer.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert!(
        paths[0].starts_with("$[0]") && paths[1].starts_with("$[1]"),
        "{paths:?}"
    );
    // Too many events.
    let many = format!("[{}]", vec!["{}"; 10_001].join(","));
    let answer = server.post_json("/v1/events", &many).await;
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert_error_body(&answer);
}

#[tokio::test]
async fn every_endpoint_answers_and_every_error_has_one_form() {
    let store = sqlite_store("api_endpoints").await;
    let server = serve(&store, &[]);
    exercise_endpoints(&server).await;
    errors_have_one_form(&server).await;
}

#[tokio::test]
async fn postgres_read_store_serves_the_same_api() {
    let Some(store) =
        TestStore::new("postgres_read_store_serves_the_same_api", Backend::Postgres).await
    else {
        return;
    };
    {
        let server = serve(&store, &[]);
        exercise_endpoints(&server).await;
        errors_have_one_form(&server).await;
        pagination_is_complete_under_concurrent_appends(&server).await;
    }
    store.cleanup().await;
}

#[tokio::test]
async fn every_route_checks_its_scope() {
    let store = sqlite_store("api_auth").await;
    let dir = store.dir();
    let mut tokens = std::collections::BTreeMap::new();
    for scope in ["append", "read", "audit", "analyze", "admin"] {
        tokens.insert(scope, create_token(dir, &format!("t-{scope}"), scope));
    }
    let file = std::fs::read_to_string(dir.join("tokens.toml")).unwrap();
    assert!(
        tokens.values().all(|t| !file.contains(t.as_str())),
        "secrets must not be stored"
    );
    let server = serve(&store, &[]);
    let openapi = server.get("/openapi.json").await.body;
    assert_eq!(openapi["openapi"], "3.1.0", "openapi.json is public");
    for (path, methods) in openapi["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "C-1").replace("{rep}", "R-1");
        for (method, op) in methods.as_object().unwrap() {
            let method = method.to_uppercase();
            let needed = op["security"][0]["bearer"][0].as_str();
            let body = || Some(("application/json", b"{}".to_vec()));
            let anonymous = server.call(&method, &concrete, None, &[], body()).await;
            let Some(needed) = needed else {
                assert!(
                    anonymous.status < 400 || anonymous.status == 503,
                    "{method} {path} is public: {}",
                    anonymous.text
                );
                continue;
            };
            assert_eq!(anonymous.status, 401, "{method} {path}: {}", anonymous.text);
            assert_eq!(assert_error_body(&anonymous), "unauthenticated");
            assert!(anonymous.headers.contains_key("www-authenticate"));
            let forged = server
                .call(&method, &concrete, Some("clt_forged"), &[], body())
                .await;
            assert_eq!(forged.status, 401, "{method} {path}");
            for (scope, token) in &tokens {
                let answer = server
                    .call(&method, &concrete, Some(token), &[], body())
                    .await;
                if *scope == needed || *scope == "admin" {
                    assert!(
                        answer.status != 401 && answer.status != 403,
                        "{method} {path} with {scope}: {}",
                        answer.text
                    );
                } else {
                    assert_eq!(
                        answer.status, 403,
                        "{method} {path} with {scope}: {}",
                        answer.text
                    );
                    assert_eq!(assert_error_body(&answer), "forbidden");
                }
            }
        }
    }
}

#[test]
fn refuses_to_listen_beyond_loopback_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--data"])
        .arg(dir.path())
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without API tokens"),
        "{stderr}"
    );
}

#[tokio::test]
async fn reads_wait_for_their_consistency_token() {
    let store = sqlite_store("api_ryw").await;
    let server = serve(&store, &["--consistency-wait-ms", "300"]);
    for n in 0..20 {
        let token = append(
            &server,
            &[registered(&format!("RYW-{n}"), "Read Your Writes", "R-9")],
        )
        .await;
        let card = server
            .call(
                "GET",
                &format!("/v1/customers/RYW-{n}"),
                None,
                &[("X-Consistency-Token", &token)],
                None,
            )
            .await;
        assert_eq!(card.status, 200, "write {n} not visible: {}", card.text);
        assert_eq!(card.body["stale"], false);
    }
    // A token the projector cannot reach in time: stale, or 504 when strict.
    let future = format!(
        "c1.{}",
        "0:999999999"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let stale = server
        .call(
            "GET",
            "/v1/customers",
            None,
            &[("X-Consistency-Token", &future)],
            None,
        )
        .await;
    assert_eq!(stale.status, 200, "{}", stale.text);
    assert_eq!(stale.body["stale"], true);
    assert_eq!(stale.headers.get("x-consistency-stale").unwrap(), "true");
    let strict = server
        .call(
            "GET",
            "/v1/customers",
            None,
            &[
                ("X-Consistency-Token", &future),
                ("X-Consistency-Strict", "true"),
            ],
            None,
        )
        .await;
    assert_eq!(strict.status, 504, "{}", strict.text);
    assert_eq!(assert_error_body(&strict), "stale");
    let garbage = server
        .call(
            "GET",
            "/v1/customers",
            None,
            &[("X-Consistency-Token", "nonsense")],
            None,
        )
        .await;
    assert_eq!(garbage.status, 400);
    assert_error_body(&garbage);
}

/// Pages through `query` with `limit`, returning the ids in order.
async fn page_all(server: &Server, query: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/customers?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = server.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let customers = page.body["customers"].as_array().unwrap();
        assert!(customers.len() <= limit);
        ids.extend(
            customers
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_string()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

/// Customers that exist before paging appear exactly once, in the sort's order, while new
/// customers are appended concurrently.
async fn pagination_is_complete_under_concurrent_appends(server: &Server) {
    let mut events = Vec::new();
    for n in 0..240u64 {
        let id = format!("PG-{n:04}");
        events.push(registered(
            &id,
            &format!("Name {:03}", (n * 7919) % 240),
            &format!("R-{}", n % 3),
        ));
        for k in 0..(n % 4) {
            events.push(purchase_json(&id, n * 10 + k));
        }
    }
    let token = append(server, &events).await;
    let settled = server
        .call(
            "GET",
            "/v1/customers?limit=1",
            None,
            &[("X-Consistency-Token", &token)],
            None,
        )
        .await;
    assert_eq!(settled.body["stale"], false);
    let before: BTreeSet<String> = page_all(server, "q=name", 500).await.into_iter().collect();
    assert!(before.len() >= 240, "{}", before.len());

    let writer = {
        let client = server.client.clone();
        let base = server.base.clone();
        tokio::spawn(async move {
            for n in 0..30 {
                let body = format!(
                    "[{}]",
                    registered(&format!("PG-NEW-{n}"), &format!("Name {n:03}x"), "R-0")
                );
                let _ = client
                    .post(format!("{base}/v1/events"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for sort in ["risk", "score", "name", "id", "last_activity"] {
        let ids = page_all(server, &format!("q=name&sort={sort}"), 17).await;
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "duplicates with sort={sort}");
        for id in &before {
            assert!(unique.contains(id), "{id} missing with sort={sort}");
        }
    }
    writer.await.unwrap();
    // The order is the documented one: risk descending, ties by id.
    let all = server.get("/v1/customers?q=name&sort=risk&limit=500").await;
    let rows: Vec<(f64, String)> = all.body["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["risk"].as_f64().unwrap(),
                c["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for w in rows.windows(2) {
        assert!(
            w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1),
            "{w:?}"
        );
    }
    let filtered = page_all(server, "q=name&owner=R-1&risk_min=0&sort=score", 9).await;
    assert!(filtered.iter().all(|id| id.starts_with("PG-")));
}

#[tokio::test]
async fn pagination_has_no_duplicates_or_gaps_while_data_changes() {
    let store = sqlite_store("api_pagination").await;
    let server = serve(&store, &[]);
    pagination_is_complete_under_concurrent_appends(&server).await;
}

#[tokio::test]
async fn serve_demo_loads_customers_and_prints_working_curl_lines() {
    let store = sqlite_store("api_demo").await;
    let data = store.dir().to_str().unwrap().to_string();
    let mut child = std::process::Command::new(BIN)
        .args([
            "serve",
            "--data",
            &data,
            "--listen",
            "127.0.0.1:0",
            "--demo",
            "--demo-customers",
            "40",
            "--demo-months",
            "6",
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut curls = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(120)) {
        if let Some(rest) = line.trim().strip_prefix("curl -s '") {
            curls.push(rest.trim_end_matches('\'').to_string());
        } else if line.trim().is_empty() && !curls.is_empty() {
            break;
        }
    }
    assert!(curls.len() >= 5, "{curls:?}");
    let client = reqwest::Client::new();
    for url in &curls {
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
    }
    let stats: Value = client
        .get(curls.iter().find(|u| u.ends_with("/v1/stats")).unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["customers"], 40);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn api_alone_serves_what_a_projector_wrote_and_shuts_down_cleanly() {
    let store = sqlite_store("api_alone").await;
    {
        let mut server = serve(&store, &[]);
        let token = append(&server, &[registered("AL-1", "Alone Ltd", "R-5")]).await;
        let card = server
            .call(
                "GET",
                "/v1/customers/AL-1",
                None,
                &[("X-Consistency-Token", &token)],
                None,
            )
            .await;
        assert_eq!(card.status, 200, "{}", card.text);
        // SIGTERM: in-flight work finishes, the process exits 0.
        assert!(server.terminate().success());
    }
    let log = std::fs::read_to_string(store.dir().join("serve.log")).unwrap();
    assert!(log.contains("clientlog: stopped"), "{log}");

    // `clientlog api` alone: reads what the projector wrote; appends go to the log but nothing
    // projects them, so a strict wait for them answers 504.
    let server = start(
        &store,
        "api",
        &[
            "--consistency-wait-ms",
            "200",
            "--max-body-bytes",
            "4096",
            "--cors-origin",
            "https://crm.example",
        ],
    );
    let card = server.get("/v1/customers/AL-1").await;
    assert_eq!(card.status, 200, "{}", card.text);
    assert_eq!(card.body["customer"]["name"], "Alone Ltd");
    let token = append(&server, &[purchase_json("AL-1", 1)]).await;
    let strict = server
        .call(
            "GET",
            "/v1/customers/AL-1",
            None,
            &[
                ("X-Consistency-Token", &token),
                ("X-Consistency-Strict", "true"),
            ],
            None,
        )
        .await;
    assert_eq!(strict.status, 504, "{}", strict.text);
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status, 200, "one event of lag is under the threshold");

    // Limits: the body size.
    let big = format!("[{}]", vec![purchase_json("AL-1", 2); 20].join(","));
    let answer = server.post_json("/v1/events", &big).await;
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert_eq!(assert_error_body(&answer), "payload_too_large");

    // CORS for the configured origin only.
    let preflight = server
        .call(
            "OPTIONS",
            "/v1/customers",
            None,
            &[
                ("Origin", "https://crm.example"),
                ("Access-Control-Request-Method", "GET"),
            ],
            None,
        )
        .await;
    assert_eq!(
        preflight
            .headers
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://crm.example")
    );
    let other = server
        .call(
            "GET",
            "/v1/customers",
            None,
            &[("Origin", "https://evil.example")],
            None,
        )
        .await;
    assert!(!other.headers.contains_key("access-control-allow-origin"));
}

/// A rebuild over HTTP: started under changed weights, followed to completion, promoted; the
/// versions list shows both; promoting the old version back is a rollback; bad requests name
/// the field.
#[tokio::test]
async fn rebuild_over_http_builds_promotes_and_rolls_back() {
    let store = sqlite_store("api_rebuild").await;
    let server = serve(&store, &[]);
    let events = [
        registered("C-1", "Acme Trading", "R-1"),
        purchase_json("C-1", 1),
        registered("C-2", "Bolt Logistics", "R-1"),
        purchase_json("C-2", 2),
    ];
    let token = append(&server, &events).await;
    let ready = server
        .call(
            "GET",
            "/v1/customers/C-2",
            None,
            &[("X-Consistency-Token", token.as_str())],
            None,
        )
        .await;
    assert_eq!(ready.status, 200, "{}", ready.text);

    let before = server.get("/v1/versions").await;
    let versions = before.body["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1);
    let old = versions[0]["version"].as_i64().expect("version");
    let old_grading = versions[0]["policies"]["grading"].clone();

    for (body, path) in [
        (r#"{"grading": {"weights": {"loyalty": 99}}}"#, "$.grading"),
        (r#"{"grading": "not = [valid"}"#, "$.grading"),
        (r#"{"bogus": 1}"#, "$.bogus"),
        (r#"{"promote": "yes"}"#, "$.promote"),
        (r#"{"as_of": "yesterday"}"#, "$.as_of"),
    ] {
        let refused = server.post_json("/v1/rebuilds", body).await;
        assert_eq!(refused.status, 400, "{body}: {}", refused.text);
        let field = refused.body["error"]["details"][0]["path"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(field.starts_with(path), "{body}: {}", refused.text);
    }

    let started = server
        .post_json(
            "/v1/rebuilds",
            r#"{"grading": {"weights": {"monthly_sales": 20, "loyalty": 40}}, "promote": true}"#,
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    let new = started.body["version"].as_i64().expect("version");
    assert_ne!(new, old);
    let link = started.body["links"]["self"]
        .as_str()
        .expect("link")
        .to_string();

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let done = loop {
        let status = server.get(&link).await;
        assert_eq!(status.status, 200, "{}", status.text);
        if status.body["build"]["state"] == "done" && status.body["status"] == "live" {
            break status.body;
        }
        assert_ne!(status.body["build"]["state"], "failed", "{}", status.text);
        assert!(std::time::Instant::now() < deadline, "{}", status.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        done["build"]["records_done"],
        done["build"]["records_total"]
    );
    assert_ne!(done["policies"]["grading"], old_grading);

    let after = server.get("/v1/versions").await.body;
    let statuses: Vec<(i64, String)> = after["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap(),
                v["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![(old, "retired".to_string()), (new, "live".to_string())]
    );
    // Cards are served from the new version.
    let card = server.get("/v1/customers/C-1").await;
    assert_eq!(card.status, 200, "{}", card.text);

    // Rollback: the old version is live again.
    let again = server
        .call(
            "POST",
            &format!("/v1/versions/{new}/promote"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    let back = server
        .call(
            "POST",
            &format!("/v1/versions/{old}/promote"),
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(back.status, 200, "{}", back.text);
    assert_eq!(back.body["status"], "live");
    assert_eq!(server.get("/v1/rebuilds/999").await.status, 404);
}

/// A projector process, killed on drop.
struct Projectors(Vec<std::process::Child>);

impl Drop for Projectors {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The scaled deployment end to end: `clientlog api` and two `clientlog projector` processes in
/// one consumer group, on Kafka (tansu) and PostgreSQL. An append over HTTP is read back with
/// its consistency token; a rebuild over HTTP is promoted, the projectors follow it, and later
/// appends are visible in the new version.
#[tokio::test]
async fn kafka_and_postgres_deployment_reads_its_writes_through_a_rebuild() {
    use clientlog_eventlog::test_support::{service, unique_name, KAFKA};
    let test = "kafka_and_postgres_deployment_reads_its_writes_through_a_rebuild";
    let Some(brokers) = service(test, KAFKA) else {
        return;
    };
    let Some(store) = TestStore::new(test, Backend::Postgres).await else {
        return;
    };
    let topic = unique_name("api");
    let group = unique_name("api-projectors");
    let url = store.url.clone().expect("a PostgreSQL store");
    let projectors = Projectors(
        (0..2)
            .map(|i| {
                let log = std::fs::File::create(store.dir().join(format!("projector-{i}.log")))
                    .expect("log file");
                std::process::Command::new(BIN)
                    .args(["projector", "--kafka", &brokers, "--topic", &topic])
                    .args(["--group", &group, "--database-url", &url])
                    .args(["--reevaluate-every", "0", "--batch-wait-ms", "20"])
                    .arg("--data")
                    .arg(store.dir())
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("start a projector")
            })
            .collect(),
    );
    // Re-attaching both projectors to the promoted version is a consumer-group rebalance on the
    // broker, which takes seconds on a loaded machine: the strict reads may wait that long.
    let server = start(
        &store,
        "api",
        &[
            "--kafka",
            &brokers,
            "--topic",
            &topic,
            "--consistency-wait-ms",
            "30000",
        ],
    );

    let strict_read = |path: String, token: String| {
        let server = &server;
        async move {
            server
                .call(
                    "GET",
                    &path,
                    None,
                    &[
                        ("X-Consistency-Token", token.as_str()),
                        ("X-Consistency-Strict", "true"),
                    ],
                    None,
                )
                .await
        }
    };
    let mut events = Vec::new();
    for i in 0..20 {
        let id = format!("K-{i:02}");
        events.push(registered(&id, &format!("Kafka Customer {i}"), "R-9"));
        events.push(purchase_json(&id, 1));
    }
    let token = append(&server, &events).await;
    let card = strict_read("/v1/customers/K-07".into(), token.clone()).await;
    assert_eq!(card.status, 200, "{}", card.text);
    assert_eq!(card.body["customer"]["name"], "Kafka Customer 7");
    let list = strict_read("/v1/customers?owner=R-9&limit=50".into(), token).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["customers"].as_array().map(Vec::len), Some(20));

    let started = server
        .post_json(
            "/v1/rebuilds",
            r#"{"grading": {"weights": {"monthly_sales": 30, "loyalty": 30}}, "promote": true}"#,
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    let link = started.body["links"]["self"]
        .as_str()
        .expect("link")
        .to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let status = server.get(&link).await;
        if status.body["status"] == "live" {
            break;
        }
        assert_ne!(status.body["build"]["state"], "failed", "{}", status.text);
        assert!(std::time::Instant::now() < deadline, "{}", status.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // After the promotion the projectors write the new version.
    let token = append(&server, &[registered("K-99", "After The Switch", "R-9")]).await;
    let card = strict_read("/v1/customers/K-99".into(), token).await;
    assert_eq!(card.status, 200, "{}", card.text);
    drop(projectors);
    drop(server);
    store.cleanup().await;
}
