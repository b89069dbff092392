//! Payload versions and the upcasters that read older or newer payloads as the current types.
//!
//! An event says which payload version it carries with the CloudEvents `dataschema` attribute:
//! absent or `urn:clientlog:<type>:v1` is version 1. The log keeps the producer's bytes as they
//! were, so every version ever accepted must stay readable: each later version gets an upcaster
//! from its wire type to the current Rust type, and the fold only ever sees the current type.
//!
//! `purchase.recorded` v2 carries order lines instead of a total:
//! `{"order_id", "lines": [{"sku", "quantity", "unit_price": Money}], "discount"?: Money}`;
//! it is read as v1 with `amount = Σ quantity × unit_price − discount` and `units = Σ quantity`.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{check_data, parse_at, DecodeError, EventData, EventType, PurchaseRecorded};
use crate::values::{Ident, Money, Units};

const SCHEMA_PREFIX: &str = "urn:clientlog:";

/// The `dataschema` value that names version `version` of `event_type`'s payload.
pub fn schema_uri(event_type: EventType, version: u32) -> String {
    format!("{SCHEMA_PREFIX}{}:v{version}", event_type.as_str())
}

/// The payload versions each event type accepts; the last one is what `Event::encode` writes.
pub fn versions(event_type: EventType) -> &'static [u32] {
    match event_type {
        EventType::PurchaseRecorded => &[1, 2],
        _ => &[1],
    }
}

fn version_of(event_type: EventType, dataschema: Option<&str>) -> Result<u32, DecodeError> {
    let Some(uri) = dataschema else {
        return Ok(1);
    };
    versions(event_type)
        .iter()
        .copied()
        .find(|&v| schema_uri(event_type, v) == uri)
        .ok_or_else(|| {
            let known: Vec<String> = versions(event_type)
                .iter()
                .map(|&v| schema_uri(event_type, v))
                .collect();
            DecodeError::new(
                "$.dataschema",
                format!(
                    "{uri:?} is not a known schema for {event_type}; expected one of {}",
                    known.join(", ")
                ),
            )
        })
}

pub(crate) fn decode_data(
    event_type: EventType,
    dataschema: Option<&str>,
    raw: &RawValue,
) -> Result<EventData, DecodeError> {
    let json = raw.get();
    let at = "$.data";
    if !json.starts_with('{') {
        return Err(DecodeError::new(at, "must be a JSON object"));
    }
    let data = match (event_type, version_of(event_type, dataschema)?) {
        (EventType::CustomerRegistered, _) => EventData::CustomerRegistered(parse_at(json, at)?),
        (EventType::ProfileUpdated, _) => EventData::ProfileUpdated(parse_at(json, at)?),
        (EventType::InteractionLogged, _) => EventData::InteractionLogged(parse_at(json, at)?),
        (EventType::PurchaseRecorded, 2) => {
            EventData::PurchaseRecorded(parse_at::<PurchaseRecordedV2>(json, at)?.upcast()?)
        }
        (EventType::PurchaseRecorded, _) => EventData::PurchaseRecorded(parse_at(json, at)?),
        (EventType::ContractSigned, _) => EventData::ContractSigned(parse_at(json, at)?),
        (EventType::ContractRenewed, _) => EventData::ContractRenewed(parse_at(json, at)?),
        (EventType::ContractTerminated, _) => EventData::ContractTerminated(parse_at(json, at)?),
        (EventType::ComplaintFiled, _) => EventData::ComplaintFiled(parse_at(json, at)?),
        (EventType::ComplaintEscalated, _) => EventData::ComplaintEscalated(parse_at(json, at)?),
        (EventType::ComplaintResolved, _) => EventData::ComplaintResolved(parse_at(json, at)?),
        (EventType::CustomerReassigned, _) => EventData::CustomerReassigned(parse_at(json, at)?),
        (EventType::AssessmentRecorded, _) => EventData::AssessmentRecorded(parse_at(json, at)?),
    };
    check_data(&data)?;
    Ok(data)
}

/// `purchase.recorded` version 2: the order's lines rather than its total.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseRecordedV2 {
    pub order_id: Ident,
    #[schemars(length(min = 1))]
    pub lines: Vec<OrderLine>,
    #[serde(default)]
    pub discount: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLine {
    pub sku: Ident,
    pub quantity: Units,
    pub unit_price: Money,
}

impl PurchaseRecordedV2 {
    pub fn upcast(self) -> Result<PurchaseRecorded, DecodeError> {
        let Some(first) = self.lines.first() else {
            return Err(DecodeError::new(
                "$.data.lines",
                "must hold at least one line",
            ));
        };
        let currency = first.unit_price.currency;
        let mut total: u64 = 0;
        let mut units: u64 = 0;
        for (i, line) in self.lines.iter().enumerate() {
            if line.unit_price.currency != currency {
                return Err(DecodeError::new(
                    format!("$.data.lines[{i}].unit_price.currency"),
                    format!(
                        "{} differs from the order's currency {currency}",
                        line.unit_price.currency
                    ),
                ));
            }
            let quantity = u64::from(line.quantity.get());
            total = line
                .unit_price
                .minor
                .get()
                .checked_mul(quantity)
                .and_then(|line_total| total.checked_add(line_total))
                .ok_or_else(|| {
                    DecodeError::new(format!("$.data.lines[{i}]"), "the order total overflows")
                })?;
            units += quantity;
        }
        if let Some(discount) = self.discount {
            if discount.currency != currency {
                return Err(DecodeError::new(
                    "$.data.discount.currency",
                    format!(
                        "{} differs from the order's currency {currency}",
                        discount.currency
                    ),
                ));
            }
            total = total.checked_sub(discount.minor.get()).ok_or_else(|| {
                DecodeError::new("$.data.discount.minor", "is larger than the order total")
            })?;
        }
        let amount =
            Money::new(total, currency).map_err(|e| DecodeError::new("$.data.lines", e.0))?;
        let units = i64::try_from(units)
            .ok()
            .and_then(|u| Units::new(u).ok())
            .ok_or_else(|| {
                DecodeError::new("$.data.lines", "the total quantity is out of range")
            })?;
        Ok(PurchaseRecorded {
            order_id: self.order_id,
            amount,
            units: Some(units),
        })
    }
}
