//! Property: no request — generated paths, methods, query parameters, headers and bodies,
//! including mutated valid events — makes the API answer 5xx, and every 4xx has the one
//! error body.

mod api_support;

use api_support::*;
use proptest::prelude::*;

const SEGMENTS: &[&str] = &[
    "v1",
    "customers",
    "events",
    "history",
    "timeline",
    "reps",
    "portfolio",
    "stats",
    "simulations",
    "healthz",
    "readyz",
    "metrics",
    "openapi.json",
    "C-1",
    "R-1",
    "",
    "..",
    "%ZZ",
    "%FF%FE",
    "%00",
    "a%2Fb",
];
const PARAMS: &[&str] = &[
    "grade",
    "stage",
    "risk_band",
    "risk_min",
    "owner",
    "segment",
    "region",
    "q",
    "sort",
    "cursor",
    "limit",
    "type",
    "from",
    "to",
    "verify",
    "top",
    "dimension",
    "as_of",
    "known_at",
    "x",
];
const VALUES: &[&str] = &[
    "A",
    "b",
    "churned",
    "high",
    "0.5",
    "-1",
    "1e309",
    "NaN",
    "risk",
    "name",
    "500",
    "501",
    "0",
    "true",
    "2026-01-01",
    "9999999999999",
    "purchase.recorded",
    "",
    "%",
    "%25",
    "%FF",
    "7b7d",
    "7b2273223a2272697368222c226964223a317d",
    "c1.303a31",
];

fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        3 => proptest::sample::select(SEGMENTS).prop_map(str::to_string),
        1 => "[A-Za-z0-9._~-]{0,12}",
    ];
    proptest::collection::vec(segment, 0..5).prop_map(|s| format!("/{}", s.join("/")))
}

fn query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        3 => proptest::sample::select(VALUES).prop_map(str::to_string),
        1 => "[A-Za-z0-9._~-]{0,16}",
    ];
    proptest::collection::vec((proptest::sample::select(PARAMS), value), 0..4).prop_map(|pairs| {
        if pairs.is_empty() {
            String::new()
        } else {
            let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("?{}", joined.join("&"))
        }
    })
}

fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    let event = (0usize..400, any::<u8>()).prop_map(|(at, byte)| {
        let mut e = purchase_json("PROP-1", 1).into_bytes();
        let at = at % e.len();
        e[at] = byte;
        e
    });
    prop_oneof![
        Just(None),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Some),
        event.clone().prop_map(Some),
        event.prop_map(|e| {
            let mut b = b"[".to_vec();
            b.extend(&e);
            b.extend(b",");
            b.extend(purchase_json("PROP-2", 2).into_bytes());
            b.extend(b"]");
            Some(b)
        }),
        Just(Some(
            br#"{"grading":{"weights":{"monthly_sales":10,"loyalty":50}}}"#.to_vec()
        )),
        Just(Some(
            br#"{"grading":{"thresholds":"x"},"top_movers":-1}"#.to_vec()
        )),
        Just(Some(
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]".to_vec()
        )),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    proptest::sample::select(
        &[
            Some("application/json"),
            Some("application/x-ndjson"),
            Some("application/json; charset=utf-8"),
            Some("text/plain"),
            Some("multipart/form-data"),
            Some(";;;"),
            None,
        ][..],
    )
}

fn method() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(
        &[
            "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS",
        ][..],
    )
}

fn header() -> impl Strategy<Value = Option<(&'static str, String)>> {
    prop_oneof![
        3 => Just(None),
        1 => "[ -~]{0,40}".prop_map(|v| Some(("X-Consistency-Token", v))),
        1 => Just(Some(("X-Consistency-Token", "c1.303a31".to_string()))),
        1 => "[ -~]{0,20}".prop_map(|v| Some(("X-Consistency-Strict", v))),
        1 => "[ -~]{0,40}".prop_map(|v| Some(("Authorization", v))),
        1 => "[ -~]{0,80}".prop_map(|v| Some(("X-Request-Id", v))),
    ]
}

#[test]
fn no_request_gets_a_5xx() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = runtime.block_on(sqlite_store("api_props"));
    let server = runtime.block_on(async { serve(&store, &["--consistency-wait-ms", "50"]) });
    runtime.block_on(async {
        let seed = format!(
            "[{},{}]",
            registered("C-1", "Acme", "R-1"),
            purchase_json("C-1", 1)
        );
        assert_eq!(server.post_json("/v1/events", &seed).await.status, 200);
    });
    let config = ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(method in method(), path in path(), query in query(), body in body(),
                        content_type in content_type(), header in header())| {
        let target = format!("{path}{query}");
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some((k, v)) = &header {
            headers.push((k, v.as_str()));
        }
        let body = match (content_type, body) {
            (Some(ct), Some(b)) => Some((ct, b)),
            (None, Some(b)) => Some(("", b)),
            (_, None) => None,
        };
        // An empty content type means "no header": send the body without one.
        let answer = runtime.block_on(async {
            match body {
                Some(("", b)) => {
                    let response = server
                        .client
                        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{target}", server.base))
                        .body(b)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let text = response.text().await.unwrap_or_default();
                    Answer { status, headers, body: serde_json::from_str(&text).unwrap_or_default(), text }
                }
                other => server.call(method, &target, None, &headers, other).await,
            }
        });
        let readiness = path == "/readyz" && answer.status == 503;
        prop_assert!(answer.status < 500 || readiness, "{method} {target} → {}: {}", answer.status, answer.text);
        if answer.status >= 400 && method != "HEAD" {
            prop_assert!(answer.body["error"]["code"].is_string() && answer.body["request_id"].is_string(),
                "{method} {target} → {} without the error body: {}", answer.status, answer.text);
        }
    });
}
