//! Reading events from Kafka records in either CloudEvents mode (Kafka protocol binding).
//!
//! * Structured mode (what [`crate::KafkaLog`] writes): the value is the whole event JSON,
//!   header `content-type: application/cloudevents+json`.
//! * Binary mode (foreign producers): every attribute is a `ce_<name>` header with a UTF-8
//!   string value, the `content-type` header is the `datacontenttype`, and the value is the
//!   `data`. We rebuild the structured JSON from them, in a fixed attribute order with the value
//!   spliced in unchanged, and give that to the domain decoder, so a binary record passes
//!   exactly the same checks as a structured one.

use clientlog_domain::{DecodeError, Event};
use serde_json::value::RawValue;

use crate::model::WireMode;

/// The content type of a structured-mode record.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";
const CONTENT_TYPE: &str = "content-type";
const CE_PREFIX: &str = "ce_";
/// Attributes first in the rebuilt JSON; the rest follow sorted by name.
const ATTRIBUTE_ORDER: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
];

/// The event in one record: the bytes it is read as (see [`WireMode`]) and the decoding result.
pub(crate) struct Decoded {
    pub bytes: Vec<u8>,
    pub mode: WireMode,
    pub event: Result<Event, DecodeError>,
}

/// Decodes one record's value and headers.
pub(crate) fn decode_record<'h>(
    value: Option<&[u8]>,
    headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
) -> Decoded {
    let headers: Vec<(&str, Option<&[u8]>)> = headers.into_iter().collect();
    let binary = headers
        .iter()
        .any(|(key, _)| key.eq_ignore_ascii_case("ce_specversion"));
    let structured_type = headers.iter().any(|(key, value)| {
        key.eq_ignore_ascii_case(CONTENT_TYPE)
            && value.is_some_and(|v| v.starts_with(b"application/cloudevents"))
    });
    if binary && !structured_type {
        let raw = value.map(<[u8]>::to_vec).unwrap_or_default();
        return match rebuild_structured(value, &headers) {
            Ok(bytes) => Decoded {
                event: Event::decode(&bytes),
                bytes,
                mode: WireMode::Binary,
            },
            Err(reason) => Decoded {
                bytes: raw,
                mode: WireMode::Binary,
                event: Err(reason),
            },
        };
    }
    match value {
        Some(bytes) => Decoded {
            bytes: bytes.to_vec(),
            mode: WireMode::Structured,
            event: Event::decode(bytes),
        },
        None => Decoded {
            bytes: Vec::new(),
            mode: WireMode::Structured,
            event: Err(DecodeError::new("$", "the record has no value")),
        },
    }
}

/// The structured JSON of a binary-mode record.
fn rebuild_structured(
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
) -> Result<Vec<u8>, DecodeError> {
    let mut attributes: Vec<(String, String)> = Vec::new();
    for &(key, header_value) in headers {
        let name = if key.eq_ignore_ascii_case(CONTENT_TYPE) {
            "datacontenttype".to_string()
        } else if key.len() > CE_PREFIX.len()
            && key[..CE_PREFIX.len()].eq_ignore_ascii_case(CE_PREFIX)
        {
            key[CE_PREFIX.len()..].to_ascii_lowercase()
        } else {
            continue;
        };
        let where_ = format!("header {key}");
        let text = header_value
            .ok_or_else(|| DecodeError::new(&where_, "the header has no value"))
            .and_then(|v| {
                std::str::from_utf8(v)
                    .map_err(|e| DecodeError::new(&where_, format!("not valid UTF-8: {e}")))
            })?;
        if name == "data" {
            return Err(DecodeError::new(
                where_,
                "`data` is the record value in binary mode, not a header",
            ));
        }
        if attributes.iter().any(|(n, _)| *n == name) {
            return Err(DecodeError::new(where_, "the attribute is given twice"));
        }
        attributes.push((name, text.to_string()));
    }
    attributes.sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));

    let mut json = String::from("{");
    for (i, (name, text)) in attributes.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json_string(&mut json, name);
        json.push(':');
        push_json_string(&mut json, text);
    }
    if let Some(value) = value {
        let data = std::str::from_utf8(value)
            .map_err(|e| DecodeError::new("$.data", format!("not valid UTF-8: {e}")))?;
        serde_json::from_str::<&RawValue>(data).map_err(|e| {
            DecodeError::new("$.data", format!("the binary-mode value is not JSON: {e}"))
        })?;
        if !attributes.is_empty() {
            json.push(',');
        }
        json.push_str("\"data\":");
        json.push_str(data.trim());
    }
    json.push('}');
    Ok(json.into_bytes())
}

fn rank(name: &str) -> usize {
    ATTRIBUTE_ORDER
        .iter()
        .position(|n| *n == name)
        .unwrap_or(ATTRIBUTE_ORDER.len())
}

fn push_json_string(out: &mut String, s: &str) {
    // Serializing a &str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &[u8] = br#"{"order_id":"SO-1","amount":{"minor":100,"currency":"EUR"}}"#;

    fn binary_headers(event_type: &str) -> Vec<(&str, Option<&[u8]>)> {
        vec![
            ("ce_specversion", Some(b"1.0".as_slice())),
            (
                "ce_id",
                Some(b"0193a1c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".as_slice()),
            ),
            ("ce_source", Some(b"/erp/orders".as_slice())),
            ("ce_type", Some(event_type.as_bytes())),
            ("ce_subject", Some(b"CUST-1".as_slice())),
            ("ce_time", Some(b"2026-03-14T09:30:00Z".as_slice())),
            ("content-type", Some(b"application/json".as_slice())),
        ]
    }

    #[test]
    fn binary_mode_decodes_like_structured() {
        let decoded = decode_record(Some(DATA), binary_headers("purchase.recorded"));
        assert_eq!(decoded.mode, WireMode::Binary);
        let event = decoded.event.expect("a valid binary-mode event");
        assert_eq!(event.subject.as_str(), "CUST-1");
        let rebuilt = std::str::from_utf8(&decoded.bytes).unwrap();
        assert!(
            rebuilt.starts_with(r#"{"specversion":"1.0","id":"0193a1c4"#),
            "{rebuilt}"
        );
        assert!(rebuilt.ends_with(&format!(
            "\"data\":{}}}",
            std::str::from_utf8(DATA).unwrap()
        )));
    }

    #[test]
    fn binary_mode_rebuild_is_independent_of_header_order() {
        let mut headers = binary_headers("purchase.recorded");
        let first = decode_record(Some(DATA), headers.clone()).bytes;
        headers.reverse();
        assert_eq!(decode_record(Some(DATA), headers).bytes, first);
    }

    #[test]
    fn binary_mode_errors_name_the_header_or_path() {
        let decoded = decode_record(Some(DATA), binary_headers("customer.teleported"));
        assert_eq!(decoded.event.unwrap_err().path, "$.type");

        let mut headers = binary_headers("purchase.recorded");
        headers.push(("ce_id", Some(b"again".as_slice())));
        assert_eq!(
            decode_record(Some(DATA), headers).event.unwrap_err().path,
            "header ce_id"
        );

        let decoded = decode_record(Some(b"not json"), binary_headers("purchase.recorded"));
        let err = decoded.event.unwrap_err();
        assert_eq!(err.path, "$.data");
        assert_eq!(decoded.bytes, b"not json");
    }

    #[test]
    fn structured_mode_keeps_the_exact_bytes() {
        let json = br#"{ "specversion":"1.0" }"#;
        let decoded = decode_record(
            Some(json),
            [(CONTENT_TYPE, Some(STRUCTURED_CONTENT_TYPE.as_bytes()))],
        );
        assert_eq!(decoded.mode, WireMode::Structured);
        assert_eq!(decoded.bytes, json);
        assert!(decoded.event.is_err());
        let empty = decode_record(None, []);
        assert_eq!(empty.event.unwrap_err().problem, "the record has no value");
    }
}
