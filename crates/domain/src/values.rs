//! Validated value types used in events ("parse, don't validate").
//!
//! Each type's constructor checks its rule, and its `Deserialize` goes through that constructor,
//! so a value that breaks a rule cannot exist past the decoder — and the decoder's error names
//! the JSON path of the offending field.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Why a value was refused; the decoder adds the JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn invalid(problem: impl Into<String>) -> InvalidValue {
    InvalidValue(problem.into())
}

/// The representation of every string value: up to 24 bytes in the value itself, longer ones
/// on the heap. Most of an event's strings (its source, actor, subject and the ids it names)
/// are that short, so decoding one costs an allocation or two instead of half a dozen — and a
/// projector, which frees its batch's events on other threads than decoded them and long
/// after, frees as few.
type Short = compact_str::CompactString;

/// Implements `Deserialize` through `parse` and `Serialize`/`Display` through `as_str`.
macro_rules! string_value {
    ($ty:ident, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl<'de> de::Visitor<'de> for Visitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        $ty::parse(v).map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    };
}

pub const IDENT_MAX_LEN: usize = 64;

fn check_ident(s: &str) -> Result<(), InvalidValue> {
    if s.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if s.len() > IDENT_MAX_LEN {
        return Err(invalid(format!(
            "is {} characters long; at most {IDENT_MAX_LEN} are allowed",
            s.chars().count()
        )));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(invalid(format!(
            "contains {c:?}; only letters, digits and . _ : - are allowed"
        )));
    }
    Ok(())
}

/// The customer an event is about (the CloudEvents `subject`): 1–64 chars of `[A-Za-z0-9._:-]`.
///
/// Every event carries one, read again at each stage of a projector's batch, and a projector
/// keys the thousands of customers it holds by it; like every string value here an id of up
/// to 24 bytes is held in the value itself (see [`Short`]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomerId(Short);

impl CustomerId {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        check_ident(s)?;
        Ok(Self(Short::new(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for CustomerId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CustomerId").field(&self.as_str()).finish()
    }
}
string_value!(
    CustomerId,
    "a customer id (1-64 characters of A-Z a-z 0-9 . _ : -)"
);

/// An identifier of a rep, order, contract, complaint or interaction; same rule as `CustomerId`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ident(Short);

impl Ident {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        check_ident(s)?;
        Ok(Self(Short::new(s)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_value!(
    Ident,
    "an identifier (1-64 characters of A-Z a-z 0-9 . _ : -)"
);

fn check_text(s: &str, max_chars: usize) -> Result<(), InvalidValue> {
    if s.trim().is_empty() {
        return Err(invalid("must not be empty or blank"));
    }
    let chars = s.chars().count();
    if chars > max_chars {
        return Err(invalid(format!(
            "is {chars} characters long; at most {max_chars} are allowed"
        )));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid("contains a control character"));
    }
    Ok(())
}

pub const LABEL_MAX_CHARS: usize = 64;
pub const TEXT_MAX_CHARS: usize = 2000;

/// A short category name: segment, region, channel, complaint category (1–64 chars, no control chars).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label(Short);

impl Label {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        check_text(s, LABEL_MAX_CHARS)?;
        Ok(Self(Short::new(s)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_value!(Label, "a label (1-64 characters)");

/// Free text: names, summaries, notes (1–2000 chars, not blank, no control chars but newline and tab).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text(Short);

impl Text {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        check_text(s, TEXT_MAX_CHARS)?;
        Ok(Self(Short::new(s)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_value!(Text, "a text (1-2000 characters)");

/// A value that is personal data (a person's name, free text about people). Erasure finds
/// these fields through this type and through `x-personal-data` in the schemas.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Personal<T>(pub T);

/// Who recorded an event (the `actor` extension), e.g. `rep:alice` or `system:erp`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Actor(Short);

impl Actor {
    pub const MAX_CHARS: usize = 128;
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        check_text(s, Self::MAX_CHARS)?;
        if s.chars().any(char::is_whitespace) {
            return Err(invalid("must not contain whitespace"));
        }
        Ok(Self(Short::new(s)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_value!(Actor, "an actor (1-128 characters without whitespace)");

/// The CloudEvents `source`: a non-empty URI-reference naming the producer, e.g. `/erp/orders`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source(Short);

impl Source {
    pub const MAX_CHARS: usize = 256;
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        check_text(s, Self::MAX_CHARS)?;
        if s.chars().any(char::is_whitespace) {
            return Err(invalid(
                "must be a URI-reference (no whitespace), e.g. /erp/orders",
            ));
        }
        Ok(Self(Short::new(s)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_value!(Source, "a URI-reference such as /erp/orders");

/// Integer within an inclusive range, checked on construction.
macro_rules! bounded_int {
    ($ty:ident, $inner:ty, $min:expr, $max:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $ty($inner);

        impl $ty {
            pub const MIN: $inner = $min;
            pub const MAX: $inner = $max;
            pub fn new(value: i64) -> Result<Self, InvalidValue> {
                if (Self::MIN as i64..=Self::MAX as i64).contains(&value) {
                    Ok(Self(value as $inner))
                } else {
                    Err(invalid(format!(
                        "{value} is out of range; expected an integer from {} to {}",
                        Self::MIN,
                        Self::MAX
                    )))
                }
            }
            pub fn get(self) -> $inner {
                self.0
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = i64::deserialize(deserializer)?;
                $ty::new(value).map_err(de::Error::custom)
            }
        }
    };
}

bounded_int!(Percent, u8, 0, 100, "A judgement on a 0–100 scale.");
bounded_int!(
    Sentiment,
    i8,
    -2,
    2,
    "How an interaction felt: −2 (very negative) to 2 (very positive)."
);
bounded_int!(
    Units,
    u32,
    1,
    1_000_000_000,
    "How many units a purchase covered."
);

/// An ISO-4217 currency code that is in use (active codes plus precious metals are excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

/// ISO-4217 active codes, sorted for binary search.
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

impl Currency {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if ISO_4217.binary_search(&s).is_err() {
            return Err(invalid(format!(
                "{s:?} is not an ISO-4217 currency code in use (e.g. \"CNY\", \"EUR\", \"USD\")"
            )));
        }
        let b = s.as_bytes();
        Ok(Self([b[0], b[1], b[2]]))
    }
    pub fn as_str(&self) -> &str {
        // Only ever built from an ASCII entry of ISO_4217.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
    pub fn all_codes() -> &'static [&'static str] {
        ISO_4217
    }
}
string_value!(Currency, "an ISO-4217 currency code such as \"CNY\"");

/// An exact amount: integer minor units (e.g. fen, cents) and the currency. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    pub minor: MinorUnits,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: u64, currency: Currency) -> Result<Self, InvalidValue> {
        Ok(Self {
            minor: MinorUnits::new(minor)?,
            currency,
        })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} (minor units)", self.minor.get(), self.currency)
    }
}

/// A non-negative amount in minor units that fits a signed 64-bit SQL column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct MinorUnits(u64);

impl MinorUnits {
    pub const MAX: u64 = i64::MAX as u64;
    pub fn new(value: u64) -> Result<Self, InvalidValue> {
        if value > Self::MAX {
            return Err(invalid(format!(
                "{value} is too large; at most {} minor units",
                Self::MAX
            )));
        }
        Ok(Self(value))
    }
    pub fn get(self) -> u64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for MinorUnits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        MinorUnits::new(value).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_inline_or_not_compare_hash_and_order_as_their_text() {
        // Held inline up to 24 bytes.
        let long = "C".repeat(25);
        let edge = "E".repeat(24);
        let ids = ["CUST-000001", &edge, &long, "x"];
        let mut map = std::collections::HashMap::new();
        for (i, id) in ids.into_iter().enumerate() {
            let parsed = CustomerId::parse(id).unwrap();
            assert_eq!(parsed.as_str(), id);
            assert_eq!(format!("{parsed:?}"), format!("CustomerId({id:?})"));
            map.insert(parsed, i);
        }
        let get = |id: &str| map.get(id).copied();
        assert_eq!(get("CUST-000001"), Some(0));
        assert_eq!(get(&edge), Some(1));
        assert_eq!(get(&long), Some(2));
        assert_eq!(get("x"), Some(3));
        assert_eq!(get("CUST-00000"), None);
        assert_eq!(get(&long[1..]), None);
        let mut sorted: Vec<CustomerId> = ids
            .iter()
            .map(|id| CustomerId::parse(id).unwrap())
            .collect();
        sorted.sort();
        let mut expected = ids.to_vec();
        expected.sort();
        assert_eq!(
            sorted.iter().map(CustomerId::as_str).collect::<Vec<_>>(),
            expected
        );
    }

    #[test]
    fn currency_list_is_sorted_and_three_uppercase_letters() {
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
        assert!(ISO_4217
            .iter()
            .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())));
    }

    #[test]
    fn identifiers_follow_the_charset_and_length_rule() {
        assert!(CustomerId::parse("CUST-000042").is_ok());
        assert!(CustomerId::parse("a.b_c:d-e").is_ok());
        assert!(CustomerId::parse(&"x".repeat(64)).is_ok());
        assert!(CustomerId::parse(&"x".repeat(65)).is_err());
        assert!(CustomerId::parse("").is_err());
        let err = CustomerId::parse("CUST 1").unwrap_err();
        assert!(err.0.contains("' '"), "{err}");
    }

    #[test]
    fn bounded_integers_reject_out_of_range() {
        assert!(Sentiment::new(-2).is_ok());
        assert!(Sentiment::new(3).is_err());
        assert!(Percent::new(101).is_err());
        assert!(Units::new(0).is_err());
    }

    #[test]
    fn currency_must_be_an_active_code() {
        assert_eq!(Currency::parse("CNY").unwrap().as_str(), "CNY");
        assert!(Currency::parse("cny").is_err());
        assert!(Currency::parse("XXX").is_err());
        assert!(Currency::parse("EURO").is_err());
    }

    #[test]
    fn money_minor_units_fit_a_signed_64_bit_column() {
        let cny = Currency::parse("CNY").unwrap();
        assert!(Money::new(i64::MAX as u64, cny).is_ok());
        assert!(Money::new(i64::MAX as u64 + 1, cny).is_err());
    }
}
