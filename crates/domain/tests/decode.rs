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

/// Version 2 of `purchase.recorded` carries order lines; the upcaster reads it as version 1.
#[test]
fn purchase_v2_is_read_as_v1_through_the_upcaster() {
    let v2 = include_str!("../../../schemas/examples/valid/purchase.recorded.v2.json");
    let event = Event::decode(v2.as_bytes()).unwrap();
    let EventData::PurchaseRecorded(p) = &event.data else {
        panic!("wrong variant")
    };
    // 2 × 50 000 + 1 × 29 900 − 10 000 discount = 119 900; 2 + 1 units.
    assert_eq!(p.amount.minor.get(), 119_900);
    assert_eq!(p.amount.currency.as_str(), "CNY");
    assert_eq!(p.units.unwrap().get(), 3);
    assert_eq!(p.order_id.as_str(), "SO-1003");

    // v1 and v2 of the same purchase fold to the same state.
    let v1 = PURCHASE
        .replace("SO-1001", "SO-1003")
        .replace("129900", "119900")
        .replace(
            "0193a1c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
            "0193a1c4-5e6f-7a8b-9c0d-1e2f3a4b5c07",
        );
    let as_v1 = Event::decode(v1.as_bytes()).unwrap();
    assert_eq!(event.data, as_v1.data);
    // Encoding writes the current version, which decodes to the same event.
    assert_eq!(Event::decode(&event.encode()).unwrap(), event);

    let two_currencies = v2.replacen("\"CNY\"", "\"EUR\"", 1);
    let err = reject(&two_currencies);
    assert_eq!(err.path, "$.data.lines[1].unit_price.currency");
    let too_much_discount = v2.replace("\"minor\": 10000", "\"minor\": 200000");
    assert_eq!(reject(&too_much_discount).path, "$.data.discount.minor");
    let under_v1 = v2.replace(
        "urn:clientlog:purchase.recorded:v2",
        "urn:clientlog:purchase.recorded:v1",
    );
    assert!(reject(&under_v1).path.starts_with("$.data"));
    let unknown = v2.replace(":v2\"", ":v3\"");
    assert_eq!(reject(&unknown).path, "$.dataschema");
}
