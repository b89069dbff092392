//! Builders for events and dates in the domain crate's tests: every event is built in Rust
//! (no JSON), at noon UTC of a calendar date unless a test needs another instant.

#![allow(dead_code)]

use clientlog_domain::calendar::{day_of_date, Day};
use clientlog_domain::event::{
    AssessmentRecorded, ComplaintEscalated, ComplaintFiled, ComplaintResolved, ContractRenewed,
    ContractSigned, ContractTerminated, CustomerReassigned, CustomerRegistered, EventData,
    InteractionKind, InteractionLogged, PurchaseRecorded, ReassignReason, Severity,
};
use clientlog_domain::values::{
    Currency, CustomerId, Ident, Money, Percent, Personal, Sentiment, Source, Text,
};
use clientlog_domain::{evaluate, CustomerState, Event, EventId, Policies, Verdict};
use time::{Date, OffsetDateTime};

/// `"2026-03-15"` as a date.
pub fn date(s: &str) -> Date {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, format).unwrap_or_else(|_| panic!("bad test date {s:?}"))
}

/// The day number of a calendar date.
pub fn day(s: &str) -> Day {
    day_of_date(date(s))
}

/// Noon UTC of a calendar date, in Unix seconds.
pub fn noon(s: &str) -> i64 {
    date(s).midnight().assume_utc().unix_timestamp() + 12 * 3600
}

pub fn ident(s: &str) -> Ident {
    Ident::parse(s).unwrap()
}

pub fn money(minor: u64, currency: &str) -> Money {
    Money::new(minor, Currency::parse(currency).unwrap()).unwrap()
}

/// Events of one customer, each with a fresh id.
#[derive(Default)]
pub struct Builder {
    pub events: Vec<Event>,
    next_id: u128,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an event at Unix second `at`.
    pub fn at(&mut self, at: i64, data: EventData) -> &mut Self {
        self.next_id += 1;
        self.events.push(Event {
            id: EventId(uuid::Uuid::from_u128(self.next_id)),
            source: Source::parse("/test").unwrap(),
            subject: CustomerId::parse("CUST-1").unwrap(),
            time: OffsetDateTime::from_unix_timestamp(at).unwrap(),
            actor: None,
            data,
        });
        self
    }

    /// Adds an event at noon UTC of `date`.
    pub fn on(&mut self, date: &str, data: EventData) -> &mut Self {
        self.at(noon(date), data)
    }

    pub fn registered(&mut self, on: &str, owner: Option<&str>) -> &mut Self {
        self.on(
            on,
            EventData::CustomerRegistered(CustomerRegistered {
                name: Personal(Text::parse("Test Customer").unwrap()),
                segment: None,
                region: None,
                channel: None,
                owner: owner.map(ident),
            }),
        )
    }

    pub fn purchase(&mut self, on: &str, minor: u64, currency: &str) -> &mut Self {
        let order = format!("SO-{}", self.next_id + 1);
        self.on(
            on,
            EventData::PurchaseRecorded(PurchaseRecorded {
                order_id: ident(&order),
                amount: money(minor, currency),
                units: None,
            }),
        )
    }

    /// A CNY purchase.
    pub fn buy(&mut self, on: &str, minor: u64) -> &mut Self {
        self.purchase(on, minor, "CNY")
    }

    pub fn interaction(&mut self, on: &str, sentiment: Option<i64>) -> &mut Self {
        let id = format!("I-{}", self.next_id + 1);
        self.on(
            on,
            EventData::InteractionLogged(InteractionLogged {
                interaction_id: ident(&id),
                kind: InteractionKind::Call,
                direction: None,
                rep: None,
                summary: None,
                sentiment: sentiment.map(|s| Sentiment::new(s).unwrap()),
            }),
        )
    }

    pub fn complaint(&mut self, on: &str, id: &str, severity: Severity) -> &mut Self {
        self.on(
            on,
            EventData::ComplaintFiled(ComplaintFiled {
                complaint_id: ident(id),
                severity,
                category: None,
                summary: None,
            }),
        )
    }

    pub fn escalate(&mut self, on: &str, id: &str, severity: Option<Severity>) -> &mut Self {
        self.on(
            on,
            EventData::ComplaintEscalated(ComplaintEscalated {
                complaint_id: ident(id),
                severity,
            }),
        )
    }

    pub fn resolve(&mut self, on: &str, id: &str, satisfied: Option<bool>) -> &mut Self {
        self.on(
            on,
            EventData::ComplaintResolved(ComplaintResolved {
                complaint_id: ident(id),
                resolution: None,
                satisfied,
            }),
        )
    }

    pub fn contract(
        &mut self,
        on: &str,
        id: &str,
        starts_on: &str,
        ends_on: &str,
        auto_renew: bool,
    ) -> &mut Self {
        self.on(
            on,
            EventData::ContractSigned(ContractSigned {
                contract_id: ident(id),
                value: money(1_000_000, "CNY"),
                starts_on: date(starts_on),
                ends_on: date(ends_on),
                auto_renew: Some(auto_renew),
            }),
        )
    }

    pub fn renew(&mut self, on: &str, id: &str, ends_on: &str) -> &mut Self {
        self.on(
            on,
            EventData::ContractRenewed(ContractRenewed {
                contract_id: ident(id),
                ends_on: date(ends_on),
                value: None,
            }),
        )
    }

    pub fn terminate(&mut self, on: &str, id: &str, effective_on: &str) -> &mut Self {
        self.on(
            on,
            EventData::ContractTerminated(ContractTerminated {
                contract_id: ident(id),
                effective_on: date(effective_on),
                reason: None,
            }),
        )
    }

    pub fn reassign(
        &mut self,
        on: &str,
        from: Option<&str>,
        to: &str,
        reason: ReassignReason,
    ) -> &mut Self {
        self.on(
            on,
            EventData::CustomerReassigned(CustomerReassigned {
                from_rep: from.map(ident),
                to_rep: ident(to),
                reason,
            }),
        )
    }

    pub fn assess(&mut self, on: &str, coverage: Option<i64>, prospects: Option<i64>) -> &mut Self {
        self.on(
            on,
            EventData::AssessmentRecorded(AssessmentRecorded {
                coverage: coverage.map(|v| Percent::new(v).unwrap()),
                prospects: prospects.map(|v| Percent::new(v).unwrap()),
                note: None,
            }),
        )
    }

    /// The events folded in the order they were added.
    pub fn state(&self) -> CustomerState {
        fold(&self.events)
    }

    /// The verdict under the shipped policies at noon UTC of `as_of`.
    pub fn verdict(&self, as_of: &str) -> Verdict {
        evaluate(&self.state(), &Policies::defaults(), noon(as_of))
    }
}

pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> CustomerState {
    let mut state = CustomerState::default();
    for event in events {
        state.apply(event);
    }
    state
}
