//! The customer card: what a CRM front end shows about one customer — profile, the verdict, and
//! the facts behind it (open complaints, active contracts, last activity, recent sales).
//! The projector stores one card per customer beside its lineage; the API serves it.

use serde::{Serialize, Serializer};

use crate::calendar::{day_of, iso_date, month_of_day, Day};
use crate::event::Severity;
use crate::state::CustomerState;
use crate::values::{Currency, CustomerId};
use crate::verdict::Verdict;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerCard {
    pub id: CustomerId,
    pub name: Option<String>,
    pub owner: Option<String>,
    pub segment: Option<String>,
    pub region: Option<String>,
    pub channel: Option<String>,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub open_complaints: Vec<OpenComplaintCard>,
    pub active_contracts: Vec<ContractCard>,
    #[serde(serialize_with = "opt_date")]
    pub last_purchase_on: Option<Day>,
    #[serde(serialize_with = "opt_date")]
    pub last_interaction_on: Option<Day>,
    /// The last activity of any kind (business time), for sorting lists.
    #[serde(serialize_with = "opt_date")]
    pub last_activity_on: Option<Day>,
    /// The currency sales are summed in.
    pub currency: Option<Currency>,
    /// Sales in the 3 and 12 complete months before the as_of month, in minor units.
    pub sales_3_months_minor: u64,
    pub sales_12_months_minor: u64,
    pub orders: u64,
    pub events: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenComplaintCard {
    pub id: String,
    pub severity: Severity,
    #[serde(serialize_with = "date")]
    pub filed_on: Day,
    pub open_days: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContractCard {
    pub id: String,
    pub value_minor: u64,
    pub currency: Currency,
    #[serde(serialize_with = "date")]
    pub starts_on: Day,
    #[serde(serialize_with = "date")]
    pub ends_on: Day,
    pub auto_renew: bool,
}

fn date<S: Serializer>(day: &Day, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&iso_date(*day))
}

fn opt_date<S: Serializer>(day: &Option<Day>, serializer: S) -> Result<S::Ok, S::Error> {
    match day {
        Some(day) => date(day, serializer),
        None => serializer.serialize_none(),
    }
}

impl CustomerCard {
    /// The card of `id` from its state and the verdict evaluated on it.
    pub fn new(id: CustomerId, state: &CustomerState, verdict: Verdict) -> Self {
        let today = verdict.as_of_day;
        let month = month_of_day(today);
        let sales = |months: i32| -> u64 {
            state
                .purchases
                .months
                .fold(month - 1, months, 0, |total, minor| total + minor)
        };
        let text = |v: &Option<crate::state::Stamped<crate::values::Label>>| {
            v.as_ref().map(|s| s.value.as_str().to_string())
        };
        let last_purchase_on = state.purchases.days.latest();
        let last_interaction_on = state.interactions.last_at.map(day_of);
        Self {
            name: state
                .profile
                .name
                .as_ref()
                .map(|s| s.value.0.as_str().to_string()),
            owner: state.owner.as_ref().map(|o| o.value.as_str().to_string()),
            segment: text(&state.profile.segment),
            region: text(&state.profile.region),
            channel: text(&state.profile.channel),
            open_complaints: state
                .complaints
                .open
                .iter()
                .map(|c| OpenComplaintCard {
                    id: c.id.as_str().to_string(),
                    severity: c.severity,
                    filed_on: day_of(c.filed_at),
                    open_days: (today - day_of(c.filed_at)).max(0),
                })
                .collect(),
            active_contracts: state
                .contracts
                .iter()
                .filter(|c| c.active_on(today))
                .map(|c| ContractCard {
                    id: c.id.as_str().to_string(),
                    value_minor: c.value_minor,
                    currency: c.currency,
                    starts_on: c.starts_on,
                    ends_on: c.ends_on,
                    auto_renew: c.auto_renew,
                })
                .collect(),
            last_purchase_on,
            last_interaction_on,
            last_activity_on: state.last_event_at.map(day_of),
            currency: state.purchases.currency,
            sales_3_months_minor: sales(3),
            sales_12_months_minor: sales(12),
            orders: state.purchases.orders,
            events: state.events,
            id,
            verdict,
        }
    }
}
