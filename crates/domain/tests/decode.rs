//! Strict decoding of the wire format: every rejection names the JSON path and the problem.

use clientlog_domain::event::{EventData, EventType};
use clientlog_domain::{DecodeError, Event};

const PURCHASE: &str = r#"{"specversion":"1.0","id":"0193a1c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d","source":"/erp/orders",
 "type":"purchase.recorded","subject":"CUST-000042","time":"2026-03-14T09:30:00Z",
 "datacontenttype":"application/json","actor":"rep:alice",
 "data":{"order_id":"SO-1001","amount":{"minor":129900,"currency":"CNY"},"units":3}}"#;

fn reject(json: &str) -> DecodeError {
    Event::decode(json.as_bytes()).expect_err("should be rejected")
}

#[test]
fn the_guide_example_decodes() {
    let event = Event::decode(PURCHASE.as_bytes()).unwrap();
    assert_eq!(event.subject.as_str(), "CUST-000042");
    assert_eq!(event.event_type(), EventType::PurchaseRecorded);
    let EventData::PurchaseRecorded(p) = &event.data else {
        panic!("wrong variant")
    };
    assert_eq!(p.amount.minor.get(), 129_900);
    assert_eq!(p.amount.currency.as_str(), "CNY");
    assert_eq!(p.units.unwrap().get(), 3);
}

#[test]
fn encode_then_decode_is_identity() {
    let event = Event::decode(PURCHASE.as_bytes()).unwrap();
    let again = Event::decode(&event.encode()).unwrap();
    assert_eq!(event, again);
}

#[test]
fn errors_name_the_path_and_the_problem() {
    let cases = [
        (
            PURCHASE.replace("129900", "-5"),
            "$.data.amount.minor",
            "invalid value",
        ),
        (
            PURCHASE.replace("129900", "12.5"),
            "$.data.amount.minor",
            "floating point",
        ),
        (
            PURCHASE.replace("\"CNY\"", "\"ABC\""),
            "$.data.amount.currency",
            "ISO-4217",
        ),
        (
            PURCHASE.replace("\"units\":3", "\"units\":3,\"color\":1"),
            "$.data.color",
            "unknown field",
        ),
        (
            PURCHASE.replace("\"actor\"", "\"foo\""),
            "$.foo",
            "unknown field",
        ),
        (
            PURCHASE.replace("purchase.recorded", "purchase.made"),
            "$.type",
            "unknown event type",
        ),
        (
            PURCHASE.replace("CUST-000042", "CUST 42"),
            "$.subject",
            "' '",
        ),
        (
            PURCHASE.replace("09:30:00Z", "09:30:00"),
            "$.time",
            "RFC 3339",
        ),
        (PURCHASE.replace("0193a1c4-", "zz"), "$.id", "not a UUID"),
        (
            PURCHASE.replace("\"1.0\"", "\"0.3\""),
            "$.specversion",
            "not supported",
        ),
        (
            PURCHASE
                .replace(",\"units\":3", "")
                .replace("\"order_id\":\"SO-1001\",", ""),
            "$.data",
            "missing field `order_id`",
        ),
    ];
    for (json, path, problem) in cases {
        let err = reject(&json);
        assert_eq!(err.path, path, "{err} for {json}");
        assert!(
            err.problem.contains(problem),
            "{err:?} should mention {problem:?}"
        );
        assert!(!err.problem.contains("line 1"), "{err:?} leaks a position");
    }
}

#[test]
fn a_contract_cannot_end_before_it_starts() {
    let json = r#"{"specversion":"1.0","id":"0193a1c4-5e6f-7a8b-9c0d-1e2f3a4b5c6e","source":"/crm","type":"contract.signed","subject":"C1","time":"2026-01-01T00:00:00+08:00","data":{"contract_id":"K1","value":{"minor":1,"currency":"EUR"},"starts_on":"2026-02-01","ends_on":"2026-01-31"}}"#;
    let err = reject(json);
    assert_eq!(err.path, "$.data.ends_on");
    assert!(err.problem.contains("before starts_on 2026-02-01"), "{err}");
}

#[test]
fn garbage_is_an_error_at_the_root() {
    assert_eq!(Event::decode(b"\xff\xfe").unwrap_err().path, "$");
    assert_eq!(Event::decode(b"{").unwrap_err().path, "$");
    assert_eq!(Event::decode(b"[]").unwrap_err().path, "$");
    assert_eq!(reject(&format!("{PURCHASE} x")).path, "$");
}
