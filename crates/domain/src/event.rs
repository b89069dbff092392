//! The event catalogue and its wire format: CloudEvents 1.0 JSON (structured mode).
//!
//! Decoding is strict — unknown fields, wrong types, out-of-range values and unknown types are
//! errors that carry the JSON path (`$.data.amount.minor`) and the problem. Encoding writes the
//! canonical current version; the log keeps the producer's exact bytes, and `decode` reads every
//! supported payload version through `upcast`.

use std::borrow::Cow;
use std::fmt;

use schemars::JsonSchema;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::upcast;
use crate::values::{
    Actor, CustomerId, Ident, Label, Money, Percent, Personal, Sentiment, Source, Text, Units,
};

pub const SPEC_VERSION: &str = "1.0";
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// A decoding or validation failure: where in the JSON, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct DecodeError {
    /// JSONPath of the offending value, `$` for the whole document.
    pub path: String,
    pub problem: String,
}

impl DecodeError {
    pub fn new(path: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// One fact about one customer, as appended to the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique per event; the idempotency key of the log.
    pub id: EventId,
    pub source: Source,
    /// The customer the event is about; the log's partition key.
    pub subject: CustomerId,
    /// When it happened in the business (not when it was recorded).
    pub time: OffsetDateTime,
    pub actor: Option<Actor>,
    pub data: EventData,
}

/// The event id: a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub Uuid);

impl EventId {
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(deserializer)?;
        // Only the hyphenated form (8-4-4-4-12), as JSON Schema's `uuid` format and auditors'
        // tools expect; braces, URNs and bare hex are refused.
        let hyphenated = s.len() == 36 && [8, 13, 18, 23].iter().all(|&i| s.as_bytes()[i] == b'-');
        Uuid::try_parse(&s)
            .ok()
            .filter(|_| hyphenated)
            .map(EventId)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "{s:?} is not a UUID in the hyphenated form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
                ))
            })
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0.hyphenated())
    }
}

macro_rules! event_types {
    ($($variant:ident = $name:literal),+ $(,)?) => {
        /// The CloudEvents `type` of each event in the catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum EventType { $($variant),+ }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(EventType::$variant),)+ _ => None }
            }
        }
    };
}

event_types! {
    CustomerRegistered = "customer.registered",
    ProfileUpdated = "customer.profile_updated",
    InteractionLogged = "interaction.logged",
    PurchaseRecorded = "purchase.recorded",
    ContractSigned = "contract.signed",
    ContractRenewed = "contract.renewed",
    ContractTerminated = "contract.terminated",
    ComplaintFiled = "complaint.filed",
    ComplaintEscalated = "complaint.escalated",
    ComplaintResolved = "complaint.resolved",
    CustomerReassigned = "customer.reassigned",
    AssessmentRecorded = "assessment.recorded",
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(deserializer)?;
        EventType::parse(&s).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            de::Error::custom(format!(
                "unknown event type {s:?}; expected one of {}",
                known.join(", ")
            ))
        })
    }
}

/// The payload of an event, one variant per type.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    CustomerRegistered(CustomerRegistered),
    ProfileUpdated(ProfileUpdated),
    InteractionLogged(InteractionLogged),
    PurchaseRecorded(PurchaseRecorded),
    ContractSigned(ContractSigned),
    ContractRenewed(ContractRenewed),
    ContractTerminated(ContractTerminated),
    ComplaintFiled(ComplaintFiled),
    ComplaintEscalated(ComplaintEscalated),
    ComplaintResolved(ComplaintResolved),
    CustomerReassigned(CustomerReassigned),
    AssessmentRecorded(AssessmentRecorded),
}

impl EventData {
    pub fn event_type(&self) -> EventType {
        match self {
            EventData::CustomerRegistered(_) => EventType::CustomerRegistered,
            EventData::ProfileUpdated(_) => EventType::ProfileUpdated,
            EventData::InteractionLogged(_) => EventType::InteractionLogged,
            EventData::PurchaseRecorded(_) => EventType::PurchaseRecorded,
            EventData::ContractSigned(_) => EventType::ContractSigned,
            EventData::ContractRenewed(_) => EventType::ContractRenewed,
            EventData::ContractTerminated(_) => EventType::ContractTerminated,
            EventData::ComplaintFiled(_) => EventType::ComplaintFiled,
            EventData::ComplaintEscalated(_) => EventType::ComplaintEscalated,
            EventData::ComplaintResolved(_) => EventType::ComplaintResolved,
            EventData::CustomerReassigned(_) => EventType::CustomerReassigned,
            EventData::AssessmentRecorded(_) => EventType::AssessmentRecorded,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRegistered {
    pub name: Personal<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Label>,
    /// The rep who owns the account from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Ident>,
}

/// At least one field is present (checked on decode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Personal<Text>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Label>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InteractionKind {
    Visit,
    Call,
    Meeting,
    Email,
    Demo,
    Event,
    Support,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractionLogged {
    pub interaction_id: Ident,
    pub kind: InteractionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rep: Option<Ident>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Personal<Text>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<Sentiment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseRecorded {
    pub order_id: Ident,
    pub amount: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<Units>,
}

/// `ends_on` is not before `starts_on` (checked on decode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractSigned {
    pub contract_id: Ident,
    pub value: Money,
    #[serde(with = "iso_date")]
    #[schemars(with = "crate::schema::IsoDate")]
    pub starts_on: Date,
    #[serde(with = "iso_date")]
    #[schemars(with = "crate::schema::IsoDate")]
    pub ends_on: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_renew: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractRenewed {
    pub contract_id: Ident,
    #[serde(with = "iso_date")]
    #[schemars(with = "crate::schema::IsoDate")]
    pub ends_on: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractTerminated {
    pub contract_id: Ident,
    #[serde(with = "iso_date")]
    #[schemars(with = "crate::schema::IsoDate")]
    pub effective_on: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Text>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintFiled {
    pub complaint_id: Ident,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Personal<Text>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintEscalated {
    pub complaint_id: Ident,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplaintResolved {
    pub complaint_id: Ident,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Personal<Text>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satisfied: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReassignReason {
    StaffTurnover,
    Territory,
    Workload,
    CustomerRequest,
    Other,
}

impl ReassignReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ReassignReason::StaffTurnover => "staff_turnover",
            ReassignReason::Territory => "territory",
            ReassignReason::Workload => "workload",
            ReassignReason::CustomerRequest => "customer_request",
            ReassignReason::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerReassigned {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_rep: Option<Ident>,
    pub to_rep: Ident,
    pub reason: ReassignReason,
}

/// At least one of `coverage` and `prospects` is present (checked on decode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssessmentRecorded {
    /// The rep's judgement of the customer's channel coverage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Percent>,
    /// The rep's judgement of the customer's development prospects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prospects: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Personal<Text>>,
}

/// `YYYY-MM-DD` dates in payloads.
pub(crate) mod iso_date {
    use serde::{de, Deserialize, Deserializer, Serializer};
    use std::borrow::Cow;
    use time::macros::format_description;
    use time::Date;

    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
        format_description!("[year]-[month]-[day]");

    pub fn parse(s: &str) -> Result<Date, String> {
        let error = || format!("{s:?} is not a date in the form YYYY-MM-DD");
        if s.len() != 10 || !s.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(error());
        }
        Date::parse(s, FORMAT).map_err(|_| error())
    }

    pub fn format(date: &Date) -> String {
        date.format(FORMAT).unwrap_or_default()
    }

    pub fn serialize<S: Serializer>(date: &Date, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(date))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
        let s = <Cow<'de, str>>::deserialize(deserializer)?;
        parse(&s).map_err(de::Error::custom)
    }
}

/// RFC 3339 timestamps with a required offset.
struct BusinessTime(OffsetDateTime);

impl<'de> Deserialize<'de> for BusinessTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(deserializer)?;
        // RFC 3339 permits a space for the `T` in prose only; the wire form uses `T`.
        let has_t = matches!(s.as_bytes().get(10), Some(b'T' | b't'));
        OffsetDateTime::parse(&s, &Rfc3339)
            .ok()
            .filter(|_| has_t)
            .map(BusinessTime)
            .ok_or(())
            .map_err(|_| {
                de::Error::custom(format!(
                    "{s:?} is not an RFC 3339 time with an offset, e.g. 2026-03-14T09:30:00Z"
                ))
            })
    }
}

struct SpecVersion;

impl<'de> Deserialize<'de> for SpecVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(deserializer)?;
        if s == SPEC_VERSION {
            Ok(SpecVersion)
        } else {
            Err(de::Error::custom(format!(
                "{s:?} is not supported; expected \"{SPEC_VERSION}\""
            )))
        }
    }
}

struct DataContentType;

impl<'de> Deserialize<'de> for DataContentType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(deserializer)?;
        if s == DATA_CONTENT_TYPE {
            Ok(DataContentType)
        } else {
            Err(de::Error::custom(format!(
                "{s:?} is not supported; expected \"{DATA_CONTENT_TYPE}\""
            )))
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireEnvelope<'a> {
    #[allow(dead_code)]
    #[schemars(with = "crate::schema::SpecVersion")]
    specversion: SpecVersion,
    id: EventId,
    source: Source,
    #[serde(rename = "type")]
    event_type: EventType,
    subject: CustomerId,
    #[schemars(with = "crate::schema::Rfc3339Time")]
    time: BusinessTime,
    #[allow(dead_code)]
    #[serde(default)]
    #[schemars(with = "Option<crate::schema::DataContentType>")]
    datacontenttype: Option<DataContentType>,
    #[serde(default, borrow)]
    dataschema: Option<Cow<'a, str>>,
    #[serde(default)]
    actor: Option<Actor>,
    #[serde(borrow)]
    #[schemars(with = "crate::schema::Payload")]
    data: &'a RawValue,
}

/// `serde_json` appends " at line L column C" to its messages; the path says where instead.
fn problem_of(err: &serde_json::Error) -> String {
    let message = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match message.strip_suffix(&suffix) {
        Some(problem) => problem.to_string(),
        None => message,
    }
}

fn json_path(prefix: &str, path: &serde_path_to_error::Path) -> String {
    let mut out = String::from(prefix);
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => {
                out.push_str(&format!("[{index}]"));
            }
            serde_path_to_error::Segment::Map { key } => {
                out.push('.');
                out.push_str(key);
            }
            serde_path_to_error::Segment::Enum { variant } => {
                out.push('.');
                out.push_str(variant);
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

/// Deserializes `json` as `T`, reporting errors at paths under `prefix` (`$` or `$.data`).
pub(crate) fn parse_at<'a, T: Deserialize<'a>>(
    json: &'a str,
    prefix: &str,
) -> Result<T, DecodeError> {
    // Valid input is the common case: parse without tracking the path, and only when that
    // fails parse again with tracking to say where. Both parses apply the same rules.
    serde_json::from_str(json).map_err(|fast_err| {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
            Err(err) => DecodeError::new(json_path(prefix, err.path()), problem_of(err.inner())),
            Ok(_) => match deserializer.end() {
                Err(err) => DecodeError::new(prefix, problem_of(&err)),
                Ok(()) => DecodeError::new(prefix, problem_of(&fast_err)),
            },
        }
    })
}

impl Event {
    /// Decodes and validates one event from its CloudEvents JSON bytes.
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        let json = std::str::from_utf8(bytes)
            .map_err(|e| DecodeError::new("$", format!("not valid UTF-8: {e}")))?;
        let wire: WireEnvelope = parse_at(json, "$")?;
        let data = upcast::decode_data(wire.event_type, wire.dataschema.as_deref(), wire.data)?;
        Ok(Event {
            id: wire.id,
            source: wire.source,
            subject: wire.subject,
            time: wire.time.0,
            actor: wire.actor,
            data,
        })
    }

    /// Encodes the event as canonical CloudEvents JSON (current payload version).
    pub fn encode(&self) -> Vec<u8> {
        // Serializing these types into a Vec cannot fail: every key is a string and no
        // Serialize impl here returns an error.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let time = self.time.format(&Rfc3339).map_err(S::Error::custom)?;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("specversion", SPEC_VERSION)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("source", &self.source)?;
        map.serialize_entry("type", self.event_type().as_str())?;
        map.serialize_entry("subject", &self.subject)?;
        map.serialize_entry("time", &time)?;
        map.serialize_entry("datacontenttype", DATA_CONTENT_TYPE)?;
        if let Some(actor) = &self.actor {
            map.serialize_entry("actor", actor)?;
        }
        match &self.data {
            EventData::CustomerRegistered(d) => map.serialize_entry("data", d)?,
            EventData::ProfileUpdated(d) => map.serialize_entry("data", d)?,
            EventData::InteractionLogged(d) => map.serialize_entry("data", d)?,
            EventData::PurchaseRecorded(d) => map.serialize_entry("data", d)?,
            EventData::ContractSigned(d) => map.serialize_entry("data", d)?,
            EventData::ContractRenewed(d) => map.serialize_entry("data", d)?,
            EventData::ContractTerminated(d) => map.serialize_entry("data", d)?,
            EventData::ComplaintFiled(d) => map.serialize_entry("data", d)?,
            EventData::ComplaintEscalated(d) => map.serialize_entry("data", d)?,
            EventData::ComplaintResolved(d) => map.serialize_entry("data", d)?,
            EventData::CustomerReassigned(d) => map.serialize_entry("data", d)?,
            EventData::AssessmentRecorded(d) => map.serialize_entry("data", d)?,
        }
        map.end()
    }
}

/// Cross-field rules that the types alone cannot express.
pub(crate) fn check_data(data: &EventData) -> Result<(), DecodeError> {
    match data {
        EventData::ProfileUpdated(d)
            if d.name.is_none()
                && d.segment.is_none()
                && d.region.is_none()
                && d.channel.is_none() =>
        {
            Err(DecodeError::new(
                "$.data",
                "at least one of name, segment, region, channel is required",
            ))
        }
        EventData::ContractSigned(d) if d.ends_on < d.starts_on => Err(DecodeError::new(
            "$.data.ends_on",
            format!(
                "{} is before starts_on {}",
                iso_date::format(&d.ends_on),
                iso_date::format(&d.starts_on)
            ),
        )),
        EventData::AssessmentRecorded(d) if d.coverage.is_none() && d.prospects.is_none() => Err(
            DecodeError::new("$.data", "at least one of coverage, prospects is required"),
        ),
        _ => Ok(()),
    }
}
