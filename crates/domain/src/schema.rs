//! JSON Schemas (draft 2020-12) of the wire format, generated from the Rust types.
//!
//! The files under `schemas/` are the output of [`all`]; a test (`tests/schemas.rs`) fails when
//! they differ from what the types say, and checks that the decoder and a JSON-Schema validator
//! agree on every example under `schemas/examples/`. The decoder stays the authority: the rules a
//! JSON Schema cannot state (one date not before another, one currency per order, …) are named in
//! the schemas' `description`s.
//!
//! Each payload schema's `$id` is the `dataschema` URI of its version ([`upcast::schema_uri`]),
//! so a CloudEvents consumer can look the payload schema up by the event's `dataschema`. The
//! envelope schema dispatches `data` to the payload schema of its `type` and `dataschema`.
//! Fields that hold personal data carry `"x-personal-data": true`.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::event::{
    AssessmentRecorded, ComplaintEscalated, ComplaintFiled, ComplaintResolved, ContractRenewed,
    ContractSigned, ContractTerminated, CustomerReassigned, CustomerRegistered, EventId, EventType,
    InteractionLogged, ProfileUpdated, PurchaseRecorded, WireEnvelope, DATA_CONTENT_TYPE,
    SPEC_VERSION,
};
use crate::upcast::{self, PurchaseRecordedV2};
use crate::values::{
    Actor, Currency, CustomerId, Ident, Label, MinorUnits, Percent, Personal, Sentiment, Source,
    Text, Units, IDENT_MAX_LEN, LABEL_MAX_CHARS, TEXT_MAX_CHARS,
};

/// The `$id` of the envelope schema.
pub const ENVELOPE_ID: &str = "urn:clientlog:envelope:v1";

/// The keyword that marks personal data, for a later erasure feature to find.
pub const PERSONAL_DATA: &str = "x-personal-data";

/// One schema file under `schemas/`.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaFile {
    /// The file name, e.g. `purchase.recorded.v2.json`.
    pub file_name: String,
    /// The schema's `$id`.
    pub id: String,
    pub schema: Value,
}

impl SchemaFile {
    /// The file's content: pretty-printed, keys sorted, with a trailing newline.
    pub fn render(&self) -> String {
        render(&self.schema)
    }
}

/// Every schema: the envelope, then each event type's payload in each version.
pub fn all() -> Vec<SchemaFile> {
    let mut files = vec![SchemaFile {
        file_name: "envelope.json".to_owned(),
        id: ENVELOPE_ID.to_owned(),
        schema: envelope_schema(),
    }];
    for &event_type in EventType::ALL {
        for &version in upcast::versions(event_type) {
            files.push(SchemaFile {
                file_name: file_name(event_type, version),
                id: upcast::schema_uri(event_type, version),
                schema: data_schema(event_type, version),
            });
        }
    }
    files
}

/// `<type>.json` for version 1, `<type>.v<N>.json` for later versions.
pub fn file_name(event_type: EventType, version: u32) -> String {
    match version {
        1 => format!("{event_type}.json"),
        _ => format!("{event_type}.v{version}.json"),
    }
}

/// Pretty-printed JSON with keys in sorted order (whatever `serde_json`'s map type) and a
/// trailing newline, so regenerating gives byte-identical files.
pub fn render(schema: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for key in keys {
                    out.insert(key.clone(), sorted(&map[key]));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let mut text = serde_json::to_string_pretty(&sorted(schema)).unwrap_or_default();
    text.push('\n');
    text
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().into_generator()
}

/// The schema of `event_type`'s `data` in payload version `version` (1 if unknown).
pub fn data_schema(event_type: EventType, version: u32) -> Value {
    let g = generator();
    let mut schema = match (event_type, version) {
        (EventType::CustomerRegistered, _) => g.into_root_schema_for::<CustomerRegistered>(),
        (EventType::ProfileUpdated, _) => {
            let mut s = g.into_root_schema_for::<ProfileUpdated>();
            require_one_of(&mut s, &["name", "segment", "region", "channel"]);
            s
        }
        (EventType::InteractionLogged, _) => g.into_root_schema_for::<InteractionLogged>(),
        (EventType::PurchaseRecorded, 2) => g.into_root_schema_for::<PurchaseRecordedV2>(),
        (EventType::PurchaseRecorded, _) => g.into_root_schema_for::<PurchaseRecorded>(),
        (EventType::ContractSigned, _) => g.into_root_schema_for::<ContractSigned>(),
        (EventType::ContractRenewed, _) => g.into_root_schema_for::<ContractRenewed>(),
        (EventType::ContractTerminated, _) => g.into_root_schema_for::<ContractTerminated>(),
        (EventType::ComplaintFiled, _) => g.into_root_schema_for::<ComplaintFiled>(),
        (EventType::ComplaintEscalated, _) => g.into_root_schema_for::<ComplaintEscalated>(),
        (EventType::ComplaintResolved, _) => g.into_root_schema_for::<ComplaintResolved>(),
        (EventType::CustomerReassigned, _) => g.into_root_schema_for::<CustomerReassigned>(),
        (EventType::AssessmentRecorded, _) => {
            let mut s = g.into_root_schema_for::<AssessmentRecorded>();
            require_one_of(&mut s, &["coverage", "prospects"]);
            s
        }
    };
    let version = if upcast::versions(event_type).contains(&version) {
        version
    } else {
        1
    };
    schema.insert("$id".into(), upcast::schema_uri(event_type, version).into());
    schema.insert(
        "title".into(),
        format!("{event_type} data, version {version}").into(),
    );
    schema.insert(
        "description".into(),
        data_description(event_type, version).into(),
    );
    let mut value = schema.to_value();
    hoist_personal_marker(&mut value);
    value
}

/// What a payload is, and the rules only the decoder checks.
fn data_description(event_type: EventType, version: u32) -> String {
    let what = match (event_type, version) {
        (EventType::CustomerRegistered, _) => "A new customer: name, optional segment, region, channel and owning rep.",
        (EventType::ProfileUpdated, _) => "A change to the customer's profile; at least one field is present and not null.",
        (EventType::InteractionLogged, _) => "A contact with the customer: a visit, a call, a meeting, …",
        (EventType::PurchaseRecorded, 2) => "A purchase as its order lines (version 2, read as version 1 with amount = Σ quantity × unit_price − discount and units = Σ quantity). Checked by the decoder only: every line and the discount are in one currency, the discount is not larger than the lines' total, and the total fits the amount's range.",
        (EventType::PurchaseRecorded, _) => "A purchase: the order and its total.",
        (EventType::ContractSigned, _) => "A contract signed. Checked by the decoder only: ends_on is not before starts_on.",
        (EventType::ContractRenewed, _) => "A contract extended to a new end date, optionally at a new value.",
        (EventType::ContractTerminated, _) => "A contract ended early.",
        (EventType::ComplaintFiled, _) => "A complaint opened.",
        (EventType::ComplaintEscalated, _) => "A complaint escalated, optionally to a new severity.",
        (EventType::ComplaintResolved, _) => "A complaint closed.",
        (EventType::CustomerReassigned, _) => "A change of the customer's account manager.",
        (EventType::AssessmentRecorded, _) => "The rep's judgement of the customer (0–100); at least one of coverage and prospects is present and not null.",
    };
    format!("The `data` of a `{event_type}` event. {what}")
}

/// "At least one of `fields` is present and not null", as `anyOf`.
fn require_one_of(schema: &mut Schema, fields: &[&str]) {
    let alternatives: Vec<Value> = fields
        .iter()
        .map(|field| {
            json!({
                "required": [field],
                "properties": { *field: { "not": { "type": "null" } } }
            })
        })
        .collect();
    schema.insert("anyOf".into(), Value::Array(alternatives));
}

/// `Option<Personal<T>>` comes out as `anyOf: [{$ref, x-personal-data}, {type: null}]`; moves
/// the marker up to the property so that erasure finds it at `properties.<field>`.
fn hoist_personal_marker(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let marked = map
                .get_mut("anyOf")
                .and_then(Value::as_array_mut)
                .map(|branches| {
                    let mut marked = false;
                    for branch in branches.iter_mut().filter_map(Value::as_object_mut) {
                        marked |= branch.remove(PERSONAL_DATA).is_some();
                    }
                    marked
                })
                .unwrap_or(false);
            if marked {
                map.insert(PERSONAL_DATA.into(), Value::Bool(true));
            }
            for child in map.values_mut() {
                hoist_personal_marker(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(hoist_personal_marker),
        _ => {}
    }
}

/// The CloudEvents envelope, with `data` dispatched on `type` and `dataschema`.
pub fn envelope_schema() -> Value {
    let mut schema = generator().into_root_schema_for::<WireEnvelope<'static>>();
    schema.insert("$id".into(), ENVELOPE_ID.into());
    schema.insert(
        "title".into(),
        "clientlog event (CloudEvents 1.0, structured JSON)".into(),
    );
    schema.insert(
        "description".into(),
        "One fact about one customer. `data` is checked against the schema of its `type` \
         in the version named by `dataschema` (absent or null: version 1); each payload \
         schema's `$id` is that `dataschema` URI. Checked by the decoder only: no key appears \
         twice, and every rule listed in the payload schema's description."
            .into(),
    );
    let dispatch: Vec<Value> = EventType::ALL
        .iter()
        .map(|&event_type| {
            json!({
                "if": {
                    "properties": { "type": { "const": event_type.as_str() } },
                    "required": ["type"]
                },
                "then": payload_by_version(event_type)
            })
        })
        .collect();
    schema.insert("allOf".into(), Value::Array(dispatch));
    schema.to_value()
}

/// `dataschema` is one of `event_type`'s versions (or absent/null for 1), and `data` follows the
/// schema of that version.
fn payload_by_version(event_type: EventType) -> Value {
    let versions = upcast::versions(event_type);
    let mut allowed: Vec<Value> = versions
        .iter()
        .map(|&v| upcast::schema_uri(event_type, v).into())
        .collect();
    allowed.push(Value::Null);
    let data_is = |version: u32| json!({ "properties": { "data": { "$ref": upcast::schema_uri(event_type, version) } } });
    // Version 1 when `dataschema` is absent or null; otherwise the version it names.
    let mut chosen = data_is(1);
    for &version in versions.iter().filter(|&&v| v != 1) {
        chosen = json!({
            "if": {
                "properties": { "dataschema": { "const": upcast::schema_uri(event_type, version) } },
                "required": ["dataschema"]
            },
            "then": data_is(version),
            "else": chosen
        });
    }
    chosen["properties"]["dataschema"] = json!({ "enum": allowed });
    chosen
}

// ---- Schemas of the value types: each states the rule its constructor checks. ----

/// A character that is neither a control character (`char::is_control`) nor white space
/// (`char::is_whitespace`), as an ECMA-262 character class.
const VISIBLE: &str =
    r"[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
/// Any character but a control character, tab and newline excepted.
const TEXT_CHAR: &str = r"[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]";

fn ident_schema(description: &str) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": format!("^[A-Za-z0-9._:-]{{1,{IDENT_MAX_LEN}}}$"),
        "minLength": 1,
        "maxLength": IDENT_MAX_LEN,
        "description": description,
    })
}

fn text_schema(max_chars: usize, description: &str) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": format!("^{TEXT_CHAR}*{VISIBLE}{TEXT_CHAR}*$"),
        "minLength": 1,
        "maxLength": max_chars,
        "description": description,
    })
}

fn token_schema(max_chars: usize, description: &str) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": format!("^{VISIBLE}+$"),
        "minLength": 1,
        "maxLength": max_chars,
        "description": description,
    })
}

macro_rules! value_schema {
    ($ty:ty, $name:literal, |$g:ident| $body:expr) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn schema_id() -> Cow<'static, str> {
                concat!("clientlog_domain::", $name).into()
            }
            fn json_schema($g: &mut SchemaGenerator) -> Schema {
                $body
            }
        }
    };
}

value_schema!(CustomerId, "CustomerId", |_g| ident_schema(
    "The customer's id: 1–64 characters of A–Z a–z 0–9 . _ : -"
));
value_schema!(Ident, "Ident", |_g| {
    ident_schema(
    "An id of a rep, order, contract, complaint or interaction: 1–64 characters of A–Z a–z 0–9 . _ : -"
)
});
value_schema!(Label, "Label", |_g| text_schema(
    LABEL_MAX_CHARS,
    "A short category name: 1–64 characters, not blank, no control characters but tab and newline."
));
value_schema!(Text, "Text", |_g| text_schema(
    TEXT_MAX_CHARS,
    "Free text: 1–2000 characters, not blank, no control characters but tab and newline."
));
value_schema!(Actor, "Actor", |_g| {
    token_schema(
    Actor::MAX_CHARS,
    "Who recorded the event, e.g. rep:alice: 1–128 characters, no white space or control characters."
)
});
value_schema!(Source, "Source", |_g| {
    token_schema(
    Source::MAX_CHARS,
    "The producer, a URI-reference such as /erp/orders: 1–256 characters, no white space or control characters."
)
});
value_schema!(Currency, "Currency", |_g| json_schema!({
    "type": "string",
    "enum": Currency::all_codes(),
    "description": "An ISO-4217 currency code in use, e.g. CNY, EUR, USD.",
}));
value_schema!(MinorUnits, "MinorUnits", |_g| json_schema!({
    "type": "integer",
    "minimum": 0,
    "maximum": MinorUnits::MAX,
    "description": "An amount in minor units (fen, cents): an integer from 0 to 2^63 − 1, never a float. Checked by the decoder only: written without a fraction or exponent (100.0 is refused).",
}));
value_schema!(Units, "Units", |_g| json_schema!({
    "type": "integer",
    "minimum": Units::MIN,
    "maximum": Units::MAX,
    "description": "A number of units, 1 to 1 000 000 000. Checked by the decoder only: written without a fraction or exponent.",
}));
value_schema!(Sentiment, "Sentiment", |_g| json_schema!({
    "type": "integer",
    "minimum": Sentiment::MIN,
    "maximum": Sentiment::MAX,
    "description": "How an interaction felt: −2 (very negative) to 2 (very positive). Checked by the decoder only: written without a fraction or exponent.",
}));
value_schema!(Percent, "Percent", |_g| json_schema!({
    "type": "integer",
    "minimum": Percent::MIN,
    "maximum": Percent::MAX,
    "description": "A judgement on a 0–100 scale. Checked by the decoder only: written without a fraction or exponent.",
}));
value_schema!(EventId, "EventId", |_g| json_schema!({
    "type": "string",
    "format": "uuid",
    "description": "The event's id, a UUID in the hyphenated form; the idempotency key of the log.",
}));
value_schema!(EventType, "EventType", |_g| {
    let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    json_schema!({
        "type": "string",
        "enum": names,
        "description": "The event type; it selects the schema of `data`.",
    })
});

/// Personal data: the inner type's schema, marked for erasure.
impl<T: JsonSchema> JsonSchema for Personal<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("Personal_{}", T::schema_name()).into()
    }
    fn schema_id() -> Cow<'static, str> {
        format!("clientlog_domain::Personal<{}>", T::schema_id()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = generator.subschema_for::<T>();
        schema.insert(PERSONAL_DATA.into(), Value::Bool(true));
        schema
    }
}

// ---- Stand-ins for wire types whose Rust representation is not the JSON one. ----

/// A `YYYY-MM-DD` date (the `iso_date` fields).
pub(crate) struct IsoDate;

impl JsonSchema for IsoDate {
    fn schema_name() -> Cow<'static, str> {
        "Date".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date",
            "description": "A calendar date, YYYY-MM-DD.",
        })
    }
}

/// An RFC 3339 time with its offset (the envelope's `time`).
pub(crate) struct Rfc3339Time;

impl JsonSchema for Rfc3339Time {
    fn schema_name() -> Cow<'static, str> {
        "Time".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "When it happened in the business: RFC 3339 with an offset, e.g. 2026-03-14T09:30:00Z.",
        })
    }
}

/// The CloudEvents `specversion` this crate speaks.
pub(crate) struct SpecVersion;

impl JsonSchema for SpecVersion {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "SpecVersion".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "const": SPEC_VERSION })
    }
}

/// The one `datacontenttype` accepted.
pub(crate) struct DataContentType;

impl JsonSchema for DataContentType {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "DataContentType".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "const": DATA_CONTENT_TYPE })
    }
}

/// The envelope's `data` before dispatch: an object.
pub(crate) struct Payload;

impl JsonSchema for Payload {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Payload".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "description": "The payload; its schema is chosen by `type` and `dataschema`.",
        })
    }
}
