//! Measuring the churn risk against what customers actually did next.
//!
//! Given purchase histories, fold each customer's purchases up to a cut-off, evaluate at the
//! cut-off, and label who bought nothing in the following days; the ROC AUC of the risk against
//! that label says how well the risk ranks customers. The same is computed for "days since the
//! last purchase", the baseline the risk has to beat. Used by the `churn_auc` example and by the
//! prediction tests on the CDNOW sample.

use std::collections::BTreeMap;

use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};
use uuid::Uuid;

use crate::calendar::{day_of_date, Day};
use crate::event::{EventData, EventId, PurchaseRecorded};
use crate::values::{Currency, CustomerId, Ident, Money, Source, Units};
use crate::{evaluate, CustomerState, Event, Policies, RiskBand};

/// One purchase of a history: customer, day, amount in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub customer: String,
    pub date: Date,
    pub amount_minor: u64,
    pub units: u32,
}

/// Parses CDNOW transaction lines: `customer [sequence] YYYYMMDD units dollars`, whitespace-separated,
/// after an optional header line (`customer_id date number_of_cds dollar_value`).
pub fn read_cdnow(text: &str) -> Result<Vec<Purchase>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || (i == 0 && fields.get(1) == Some(&"date")) {
            continue;
        }
        // The full panel has 4 fields; the 1/10 sample adds a sequence number after the id.
        let (customer, date, units, dollars) = match fields.as_slice() {
            [c, d, u, v] | [c, _, d, u, v] => (c, d, u, v),
            _ => return Err(format!("line {}: expected 4 or 5 fields", i + 1)),
        };
        let date =
            parse_yyyymmdd(date).ok_or_else(|| format!("line {}: bad date {date:?}", i + 1))?;
        let units: u32 = units.parse().map_err(|e| format!("line {}: {e}", i + 1))?;
        let dollars: f64 = dollars
            .parse()
            .map_err(|e| format!("line {}: {e}", i + 1))?;
        out.push(Purchase {
            customer: format!("CDNOW-{customer}"),
            date,
            amount_minor: (dollars * 100.0).round().max(0.0) as u64,
            units: units.max(1),
        });
    }
    Ok(out)
}

fn parse_yyyymmdd(s: &str) -> Option<Date> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = s[0..4].parse().ok()?;
    let month = time::Month::try_from(s[4..6].parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(year, month, s[6..8].parse().ok()?).ok()
}

/// A customer's risk at the cut-off and what they did next.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub customer: String,
    pub risk: f64,
    pub band: RiskBand,
    pub days_since_last: i32,
    /// Bought nothing in the horizon after the cut-off.
    pub churned: bool,
}

/// Folds purchases on or before `cutoff` (YYYY-MM-DD, end of day UTC), evaluates every customer
/// who had bought by then, and labels whether they bought in the `horizon_days` that followed.
pub fn score_at_cutoff(
    purchases: &[Purchase],
    policies: &Policies,
    cutoff: &str,
    horizon_days: i32,
) -> Result<Vec<Scored>, String> {
    let cutoff = crate::event::iso_date::parse(cutoff)?;
    let cutoff_day = day_of_date(cutoff);
    let usd = Currency::parse("USD").map_err(|e| e.0)?;
    let source = Source::parse("/import/cdnow").map_err(|e| e.0)?;
    let mut states: BTreeMap<&str, (CustomerState, Option<Day>)> = BTreeMap::new();
    for (i, p) in purchases.iter().enumerate() {
        let day = day_of_date(p.date);
        let (state, next) = states.entry(&p.customer).or_default();
        if day <= cutoff_day {
            let event = Event {
                id: EventId(Uuid::from_u128(i as u128)),
                source: source.clone(),
                subject: CustomerId::parse(&p.customer).map_err(|e| e.0)?,
                time: PrimitiveDateTime::new(
                    p.date,
                    Time::from_hms(12, 0, 0).map_err(|e| e.to_string())?,
                )
                .assume_utc(),
                actor: None,
                data: EventData::PurchaseRecorded(PurchaseRecorded {
                    order_id: Ident::parse(&format!("O{i}")).map_err(|e| e.0)?,
                    amount: Money::new(p.amount_minor, usd).map_err(|e| e.0)?,
                    units: Units::new(i64::from(p.units)).ok(),
                }),
            };
            state.apply(&event);
        } else if day <= cutoff_day + horizon_days {
            *next = Some(next.map_or(day, |d: Day| d.min(day)));
        }
    }
    let as_of = OffsetDateTime::new_utc(
        cutoff,
        Time::from_hms(23, 59, 59).map_err(|e| e.to_string())?,
    )
    .unix_timestamp();
    Ok(states
        .into_iter()
        .filter(|(_, (state, _))| state.purchases.orders > 0)
        .map(|(customer, (state, next))| {
            let verdict = evaluate(&state, policies, as_of);
            let last = state.purchases.days.latest().unwrap_or(cutoff_day);
            Scored {
                customer: customer.to_string(),
                risk: verdict.risk,
                band: verdict.risk_band,
                days_since_last: cutoff_day - last,
                churned: next.is_none(),
            }
        })
        .collect())
}

/// ROC AUC of `score` for predicting `positive` (ties count half), by the rank-sum formula.
pub fn auc(items: impl IntoIterator<Item = (f64, bool)>) -> f64 {
    let mut items: Vec<(f64, bool)> = items.into_iter().collect();
    items.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = items.iter().filter(|(_, p)| *p).count() as f64;
    let negatives = items.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        while j < items.len() && items[j].0 == items[i].0 {
            j += 1;
        }
        let average_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += average_rank * items[i..j].iter().filter(|(_, p)| *p).count() as f64;
        i = j;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_perfect_random_and_reversed_rankings() {
        assert_eq!(
            auc([(1.0, false), (2.0, false), (3.0, true), (4.0, true)]),
            1.0
        );
        assert_eq!(
            auc([(1.0, true), (2.0, true), (3.0, false), (4.0, false)]),
            0.0
        );
        assert_eq!(auc([(1.0, true), (1.0, false)]), 0.5);
        assert_eq!(
            auc([(1.0, false), (2.0, true), (3.0, false), (4.0, true)]),
            0.75
        );
    }
}
