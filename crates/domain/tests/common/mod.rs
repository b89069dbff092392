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

/// A typical customer of two years (2024-03 to 2026-03): registered with a profile and an owner,
/// a purchase about every 3 weeks, an interaction a week, two complaints (one still open), two
/// contracts (one renewed), a reassignment and two assessments.
pub fn typical_customer(n: u32) -> Builder {
    use clientlog_domain::event::{ProfileUpdated, ReassignReason, Severity};
    use clientlog_domain::values::Label;
    let mut b = Builder::new();
    let start = noon("2024-03-01");
    let day = |d: i64| start + d * 86_400 + i64::from(n % 3600);
    b.registered("2024-03-01", Some("rep-alice"));
    b.on(
        "2024-03-02",
        EventData::ProfileUpdated(ProfileUpdated {
            name: None,
            segment: Some(Label::parse("retail").unwrap()),
            region: Some(Label::parse("east-china").unwrap()),
            channel: Some(Label::parse("distributor").unwrap()),
        }),
    );
    for k in 0..35i64 {
        let amount = 800_000 + u64::from(n % 7) * 100_000 + (k as u64 % 5) * 50_000;
        b.at(
            day(k * 21 + i64::from(n % 5)),
            EventData::PurchaseRecorded(PurchaseRecorded {
                order_id: ident(&format!("SO-{n}-{k}")),
                amount: money(amount, "CNY"),
                units: None,
            }),
        );
    }
    for k in 0..104i64 {
        b.at(
            day(k * 7 + 1),
            EventData::InteractionLogged(InteractionLogged {
                interaction_id: ident(&format!("I-{n}-{k}")),
                kind: InteractionKind::Visit,
                direction: None,
                rep: Some(ident("rep-alice")),
                summary: None,
                sentiment: Some(Sentiment::new(k % 5 - 2).unwrap()),
            }),
        );
    }
    b.complaint("2025-04-10", "CMP-000123", Severity::Medium)
        .resolve("2025-04-20", "CMP-000123", Some(true))
        .complaint("2026-02-20", "CMP-000456", Severity::High)
        .contract(
            "2024-04-01",
            "CTR-2024-0001",
            "2024-04-01",
            "2025-03-31",
            false,
        )
        .renew("2025-03-15", "CTR-2024-0001", "2026-03-31")
        .contract(
            "2025-06-01",
            "CTR-2025-0042",
            "2025-06-01",
            "2026-05-31",
            true,
        )
        .reassign(
            "2025-09-01",
            Some("rep-alice"),
            "rep-bob",
            ReassignReason::Territory,
        )
        .assess("2024-06-01", Some(60), Some(70))
        .assess("2025-12-01", Some(65), None);
    b
}

/// Heap bytes a state owns, estimated as the bytes its allocations request: each `Vec` counts
/// `capacity × size_of` of its element, each string longer than 24 bytes its length; allocator headers and
/// rounding are not counted (add about 16 bytes per allocation for those). Returns
/// `(bytes, allocations)`.
pub fn state_heap_bytes(state: &CustomerState) -> (usize, usize) {
    use clientlog_domain::state::{Contract, OpenComplaint, OrphanResolution};
    use std::mem::size_of;
    let mut bytes = 0;
    let mut allocations = 0;
    // A string value of up to 24 bytes is held in the value itself (values.rs, `Short`).
    let mut string = |s: &str| {
        if s.len() > 24 {
            bytes += s.len();
            allocations += 1;
        }
    };
    let p = &state.profile;
    if let Some(n) = &p.name {
        string(n.value.0.as_str());
    }
    for label in [&p.segment, &p.region, &p.channel].into_iter().flatten() {
        string(label.value.as_str());
    }
    if let Some(o) = &state.owner {
        string(o.value.as_str());
    }
    if let Some(r) = &state.last_reassignment {
        if let Some(from) = &r.value.from {
            string(from.as_str());
        }
        string(r.value.to.as_str());
    }
    for c in &state.complaints.open {
        string(c.id.as_str());
    }
    for o in &state.complaints.orphans {
        string(o.id.as_str());
    }
    for c in &state.contracts {
        string(c.id.as_str());
    }
    let vec_bytes = state.complaints.open.capacity() * size_of::<OpenComplaint>()
        + state.complaints.orphans.capacity() * size_of::<OrphanResolution>()
        + state.contracts.capacity() * size_of::<Contract>();
    let vec_allocations = [
        state.complaints.open.capacity(),
        state.complaints.orphans.capacity(),
        state.contracts.capacity(),
    ]
    .iter()
    .filter(|&&c| c > 0)
    .count();
    (bytes + vec_bytes, allocations + vec_allocations)
}
