//! A customer's folded state: bounded in size however many events the customer has.
//!
//! `CustomerState::apply` folds one event. Quantities that do not depend on order — sums,
//! counts, windows by business time, "latest by business time" — give the same state whatever
//! order late events arrive in: month and day windows slide on the latest business time seen,
//! and a value that fell out of a window in order is dropped the same way when it arrives late.
//! What the policies need and nothing more is kept: monthly buckets, a bitmap of purchase days,
//! open complaints, recent contracts, the latest reassignment and assessment.

use serde::{Deserialize, Serialize};

use crate::calendar::{day_of, day_of_date, month_of_day, Day, Month};
use crate::event::{EventData, ReassignReason, Severity};
use crate::values::{Currency, Ident, Label, Personal, Text};
use crate::Event;

/// Months kept in the monthly windows: the latest month and the 12 complete months before it.
pub const MONTHS: usize = 13;
/// Days kept in the purchase-day bitmap (about 1.4 years: longer than any churn threshold).
pub const BITMAP_DAYS: usize = 512;
/// Most recent contracts kept; older ones are only counted.
pub const MAX_CONTRACTS: usize = 8;
/// Unmatched complaint resolutions kept to match a late `complaint.filed`.
pub const MAX_ORPHANS: usize = 8;

/// A value with the business time it was stated at; the latest statement wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped<T> {
    pub at: i64,
    pub value: T,
}

fn bump(counter: &mut u16) {
    *counter = counter.saturating_add(1);
}

fn set_latest<T>(slot: &mut Option<Stamped<T>>, at: i64, value: T) {
    if slot.as_ref().is_none_or(|s| at >= s.at) {
        *slot = Some(Stamped { at, value });
    }
}

/// Per-month values for the `MONTHS` months ending with the latest month seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthWindow<T> {
    latest: Month,
    slots: [T; MONTHS],
}

impl<T: Copy + Default> Default for MonthWindow<T> {
    fn default() -> Self {
        Self {
            latest: Month::MIN,
            slots: [T::default(); MONTHS],
        }
    }
}

impl<T: Copy + Default> MonthWindow<T> {
    fn slot(month: Month) -> usize {
        month.rem_euclid(MONTHS as i32) as usize
    }

    /// Updates `month`'s value; a month older than the window is dropped (returns false).
    pub fn update(&mut self, month: Month, f: impl FnOnce(&mut T)) -> bool {
        if self.latest == Month::MIN {
            self.latest = month;
        } else if month > self.latest {
            let clear = (month - self.latest).min(MONTHS as i32);
            for m in (month - clear + 1)..=month {
                self.slots[Self::slot(m)] = T::default();
            }
            self.latest = month;
        } else if month <= self.latest - MONTHS as i32 {
            return false;
        }
        f(&mut self.slots[Self::slot(month)]);
        true
    }

    /// The value of `month`, or the default if it is outside the window.
    pub fn get(&self, month: Month) -> T {
        if self.latest != Month::MIN && month <= self.latest && month > self.latest - MONTHS as i32
        {
            self.slots[Self::slot(month)]
        } else {
            T::default()
        }
    }

    /// Folds the values of those of the `count` months ending with `last` that are in the
    /// window, oldest first. A month outside it holds the default, which must leave `f`'s
    /// accumulator as it is (a sum, a count of months with something in them): a verdict at a
    /// date long after the customer's last month folds nothing.
    pub fn fold<A>(&self, last: Month, count: i32, init: A, f: impl Fn(A, T) -> A) -> A {
        if self.latest == Month::MIN {
            return init;
        }
        let first = (last - count + 1).max(self.latest - MONTHS as i32 + 1);
        (first..=last.min(self.latest)).fold(init, |acc, m| f(acc, self.slots[Self::slot(m)]))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct InteractionMonth {
    pub count: u16,
    /// Interactions with sentiment −1 or −2.
    pub negative: u16,
}

/// Complaints filed in a month, by severity (low, medium, high, critical).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ComplaintMonth {
    /// Saturating at 255 a month.
    pub filed: [u8; 4],
    pub unsatisfied: u8,
}

/// Distinct purchase days: a bitmap of the last `BITMAP_DAYS` days before the latest purchase
/// day, and a count (and the latest) of the distinct days before that.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseDays {
    latest: Day,
    bits: [u64; BITMAP_DAYS / 64],
    /// Distinct purchase days older than the bitmap.
    older: u32,
    /// The latest of those older days.
    older_latest: Option<Day>,
    /// The earliest purchase day ever.
    first: Day,
}

impl Default for PurchaseDays {
    fn default() -> Self {
        Self {
            latest: Day::MIN,
            bits: [0; BITMAP_DAYS / 64],
            older: 0,
            older_latest: None,
            first: Day::MAX,
        }
    }
}

impl PurchaseDays {
    fn index(day: Day) -> (usize, u64) {
        let i = day.rem_euclid(BITMAP_DAYS as i32) as usize;
        (i / 64, 1u64 << (i % 64))
    }

    fn in_window(&self, day: Day) -> bool {
        day <= self.latest && day > self.latest - BITMAP_DAYS as i32
    }

    fn contains(&self, day: Day) -> bool {
        let (word, bit) = Self::index(day);
        self.in_window(day) && self.bits[word] & bit != 0
    }

    fn push_older(&mut self, day: Day) {
        self.older += 1;
        self.older_latest = Some(self.older_latest.map_or(day, |d| d.max(day)));
    }

    pub fn insert(&mut self, day: Day) {
        self.first = self.first.min(day);
        if self.latest == Day::MIN {
            self.latest = day;
        } else if day > self.latest {
            // Slide: days leaving the window become "older".
            let leaving = (day - self.latest).min(BITMAP_DAYS as i32);
            let first_leaving = self.latest - BITMAP_DAYS as i32 + 1;
            for d in first_leaving..first_leaving + leaving {
                let (word, bit) = Self::index(d);
                if self.bits[word] & bit != 0 {
                    self.bits[word] &= !bit;
                    self.push_older(d);
                }
            }
            self.latest = day;
        } else if !self.in_window(day) {
            // Older than the window: counted, but only the latest older day can be told apart
            // from one already counted.
            if self.older_latest != Some(day) {
                self.push_older(day);
            }
            return;
        }
        let (word, bit) = Self::index(day);
        self.bits[word] |= bit;
    }

    pub fn distinct(&self) -> u32 {
        self.older + self.bits.iter().map(|w| w.count_ones()).sum::<u32>()
    }

    pub fn first(&self) -> Option<Day> {
        (self.first != Day::MAX).then_some(self.first)
    }

    pub fn latest(&self) -> Option<Day> {
        (self.latest != Day::MIN).then_some(self.latest)
    }

    /// Distinct purchase days in `from..=to` (only days inside the bitmap are seen).
    pub fn count_between(&self, from: Day, to: Day) -> u32 {
        let from = from.max(self.latest - BITMAP_DAYS as i32 + 1);
        let to = to.min(self.latest);
        let mut count = 0;
        let mut day = from;
        while day <= to {
            // Whole 64-day words at a time: the ring index of `day` up to the end of its word.
            let (word, _) = Self::index(day);
            let bit = day.rem_euclid(BITMAP_DAYS as i32) as u32 % 64;
            let span = (64 - bit).min((to - day + 1) as u32);
            let mask = if span == 64 {
                u64::MAX
            } else {
                ((1u64 << span) - 1) << bit
            };
            count += (self.bits[word] & mask).count_ones();
            day += span as i32;
        }
        count
    }

    /// The latest purchase day before `day`.
    pub fn previous(&self, day: Day) -> Option<Day> {
        let low = self.latest - BITMAP_DAYS as i32 + 1;
        let mut d = day.min(self.latest + 1) - 1;
        while d >= low {
            if self.contains(d) {
                return Some(d);
            }
            d -= 1;
        }
        self.older_latest.filter(|&o| o < day)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Purchases {
    /// The currency sales are summed in: that of the first purchase applied.
    pub currency: Option<Currency>,
    pub orders: u64,
    /// Sum of all purchases in `currency`, in minor units (saturating).
    pub total_minor: u64,
    /// Purchases in another currency: counted, not summed.
    pub foreign_currency_orders: u32,
    pub days: PurchaseDays,
    /// Sales per month in minor units of `currency` (saturating).
    pub months: MonthWindow<u64>,
    /// Orders per month in any currency (saturating); kept apart from the amounts so that the
    /// windows pack without padding.
    pub order_months: MonthWindow<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interactions {
    pub count: u64,
    pub last_at: Option<i64>,
    pub months: MonthWindow<InteractionMonth>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenComplaint {
    pub id: Ident,
    pub severity: Severity,
    pub filed_at: i64,
    pub escalations: u16,
}

/// A resolution whose complaint has not been seen (yet): it may arrive late.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrphanResolution {
    pub id: Ident,
    pub at: i64,
    pub satisfied: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Complaints {
    pub open: Vec<OpenComplaint>,
    pub filed: u32,
    pub resolved: u32,
    /// Resolutions the customer was not satisfied with.
    pub unsatisfied: u32,
    pub orphans: Vec<OrphanResolution>,
    pub months: MonthWindow<ComplaintMonth>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contract {
    pub id: Ident,
    pub value_minor: u64,
    pub currency: Currency,
    pub starts_on: Day,
    /// The latest end date, renewals included.
    pub ends_on: Day,
    pub auto_renew: bool,
    pub renewals: u16,
    pub terminated_on: Option<Day>,
}

impl Contract {
    /// The last day the contract is in force, if it has one.
    pub fn last_day(&self) -> Option<Day> {
        match self.terminated_on {
            Some(t) => Some(t.min(self.ends_on)),
            None if self.auto_renew => None,
            None => Some(self.ends_on),
        }
    }

    pub fn active_on(&self, day: Day) -> bool {
        self.starts_on <= day && self.last_day().is_none_or(|last| day <= last)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reassignment {
    pub from: Option<Ident>,
    pub to: Ident,
    pub reason: ReassignReason,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: Option<Stamped<Personal<Text>>>,
    pub segment: Option<Stamped<Label>>,
    pub region: Option<Stamped<Label>>,
    pub channel: Option<Stamped<Label>>,
}

impl Profile {
    /// Takes every stated field whose statement is at least as recent as the one held.
    fn update(
        &mut self,
        at: i64,
        name: Option<&Personal<Text>>,
        segment: &Option<Label>,
        region: &Option<Label>,
        channel: &Option<Label>,
    ) {
        if let Some(v) = name {
            set_latest(&mut self.name, at, v.clone());
        }
        for (slot, value) in [
            (&mut self.segment, segment),
            (&mut self.region, region),
            (&mut self.channel, channel),
        ] {
            if let Some(v) = value {
                set_latest(slot, at, v.clone());
            }
        }
    }
}

/// Events that were tolerated but did not fit what was known; reported with every verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomalies {
    pub resolved_never_filed: u16,
    pub complaint_filed_twice: u16,
    pub escalated_unknown_complaint: u16,
    pub renewed_unknown_contract: u16,
    pub terminated_unknown_contract: u16,
    pub contract_signed_twice: u16,
    pub reassigned_to_same_rep: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    pub events: u64,
    pub first_event_at: Option<i64>,
    pub last_event_at: Option<i64>,
    pub registered_at: Option<i64>,
    pub profile: Profile,
    pub owner: Option<Stamped<Ident>>,
    pub reassignments: u32,
    pub last_reassignment: Option<Stamped<Reassignment>>,
    pub purchases: Purchases,
    pub interactions: Interactions,
    pub complaints: Complaints,
    pub contracts: Vec<Contract>,
    /// Contracts dropped from `contracts` to keep the state bounded.
    pub older_contracts: u32,
    pub coverage: Option<Stamped<u8>>,
    pub prospects: Option<Stamped<u8>>,
    pub anomalies: Anomalies,
}

/// Version of the binary encoding of `CustomerState`; stored states of another version are
/// rebuilt from the log rather than decoded.
pub const STATE_FORMAT: u32 = 1;

/// A stored state that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("stored customer state cannot be decoded: {0}")]
pub struct StateDecodeError(#[from] postcard::Error);

impl CustomerState {
    /// Compact binary encoding (postcard) for persisting the state between batches.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StateDecodeError> {
        Ok(postcard::from_bytes(bytes)?)
    }

    /// Folds one event into the state. Events of other customers must not be passed here.
    pub fn apply(&mut self, event: &Event) {
        let at = event.time.unix_timestamp();
        self.events += 1;
        self.first_event_at = Some(self.first_event_at.map_or(at, |t| t.min(at)));
        self.last_event_at = Some(self.last_event_at.map_or(at, |t| t.max(at)));
        match &event.data {
            EventData::CustomerRegistered(d) => {
                self.registered_at = Some(self.registered_at.map_or(at, |t| t.min(at)));
                let p = &mut self.profile;
                p.update(at, Some(&d.name), &d.segment, &d.region, &d.channel);
                if let Some(owner) = &d.owner {
                    set_latest(&mut self.owner, at, owner.clone());
                }
            }
            EventData::ProfileUpdated(d) => {
                let p = &mut self.profile;
                p.update(at, d.name.as_ref(), &d.segment, &d.region, &d.channel);
            }
            EventData::InteractionLogged(d) => {
                let i = &mut self.interactions;
                i.count += 1;
                i.last_at = Some(i.last_at.map_or(at, |t| t.max(at)));
                let negative = d.sentiment.is_some_and(|s| s.get() < 0);
                i.months.update(month_of_day(day_of(at)), |m| {
                    m.count = m.count.saturating_add(1);
                    m.negative = m.negative.saturating_add(u16::from(negative));
                });
            }
            EventData::PurchaseRecorded(d) => {
                let p = &mut self.purchases;
                p.orders += 1;
                let day = day_of(at);
                let month = month_of_day(day);
                p.days.insert(day);
                p.order_months
                    .update(month, |orders| *orders = orders.saturating_add(1));
                let currency = *p.currency.get_or_insert(d.amount.currency);
                if currency == d.amount.currency {
                    let amount = d.amount.minor.get();
                    p.total_minor = p.total_minor.saturating_add(amount);
                    p.months
                        .update(month, |sales| *sales = sales.saturating_add(amount));
                } else {
                    p.foreign_currency_orders += 1;
                }
            }
            EventData::ContractSigned(d) => {
                if self.contracts.iter().any(|c| c.id == d.contract_id) {
                    bump(&mut self.anomalies.contract_signed_twice);
                    return;
                }
                // Kept in order of start, whatever the arrival order: the verdict lists them so.
                let starts_on = day_of_date(d.starts_on);
                let pos = self
                    .contracts
                    .partition_point(|c| (c.starts_on, &c.id) < (starts_on, &d.contract_id));
                self.contracts.reserve_exact(1);
                self.contracts.insert(
                    pos,
                    Contract {
                        id: d.contract_id.clone(),
                        value_minor: d.value.minor.get(),
                        currency: d.value.currency,
                        starts_on,
                        ends_on: day_of_date(d.ends_on),
                        auto_renew: d.auto_renew.unwrap_or(false),
                        renewals: 0,
                        terminated_on: None,
                    },
                );
                if self.contracts.len() > MAX_CONTRACTS {
                    // Keep the contracts that matter for "now": drop the one that ended first.
                    let oldest = (0..self.contracts.len())
                        .min_by_key(|&i| (self.contracts[i].ends_on, self.contracts[i].id.clone()))
                        .unwrap_or(0);
                    self.contracts.remove(oldest);
                    self.older_contracts += 1;
                }
            }
            EventData::ContractRenewed(d) => {
                match self.contracts.iter_mut().find(|c| c.id == d.contract_id) {
                    Some(c) => {
                        c.ends_on = c.ends_on.max(day_of_date(d.ends_on));
                        c.renewals += 1;
                        if let Some(value) = d.value {
                            c.value_minor = value.minor.get();
                            c.currency = value.currency;
                        }
                    }
                    None => bump(&mut self.anomalies.renewed_unknown_contract),
                }
            }
            EventData::ContractTerminated(d) => {
                match self.contracts.iter_mut().find(|c| c.id == d.contract_id) {
                    Some(c) => {
                        let on = day_of_date(d.effective_on);
                        c.terminated_on = Some(c.terminated_on.map_or(on, |t| t.min(on)));
                    }
                    None => bump(&mut self.anomalies.terminated_unknown_contract),
                }
            }
            EventData::ComplaintFiled(d) => {
                let c = &mut self.complaints;
                if c.open.iter().any(|o| o.id == d.complaint_id) {
                    bump(&mut self.anomalies.complaint_filed_twice);
                    return;
                }
                c.filed += 1;
                let severity = d.severity;
                c.months.update(month_of_day(day_of(at)), |m| {
                    m.filed[severity as usize] = m.filed[severity as usize].saturating_add(1);
                });
                if let Some(i) = c.orphans.iter().position(|o| o.id == d.complaint_id) {
                    // Its resolution arrived first: the complaint is filed and resolved at once.
                    c.orphans.remove(i);
                    c.orphans.shrink_to_fit();
                    self.anomalies.resolved_never_filed =
                        self.anomalies.resolved_never_filed.saturating_sub(1);
                    return;
                }
                // Kept in filing order, whatever the arrival order: the verdict lists them so.
                let pos = c
                    .open
                    .partition_point(|o| (o.filed_at, &o.id) < (at, &d.complaint_id));
                // Exact capacities: a customer has few open complaints and contracts, and Vec's
                // growth to 4 would double the state's heap.
                c.open.reserve_exact(1);
                c.open.insert(
                    pos,
                    OpenComplaint {
                        id: d.complaint_id.clone(),
                        severity,
                        filed_at: at,
                        escalations: 0,
                    },
                );
            }
            EventData::ComplaintEscalated(d) => {
                match self
                    .complaints
                    .open
                    .iter_mut()
                    .find(|o| o.id == d.complaint_id)
                {
                    Some(o) => {
                        o.escalations += 1;
                        if let Some(s) = d.severity {
                            o.severity = o.severity.max(s);
                        }
                    }
                    None => bump(&mut self.anomalies.escalated_unknown_complaint),
                }
            }
            EventData::ComplaintResolved(d) => {
                let c = &mut self.complaints;
                c.resolved += 1;
                if d.satisfied == Some(false) {
                    c.unsatisfied += 1;
                    c.months.update(month_of_day(day_of(at)), |m| {
                        m.unsatisfied = m.unsatisfied.saturating_add(1)
                    });
                }
                match c.open.iter().position(|o| o.id == d.complaint_id) {
                    Some(i) => {
                        c.open.remove(i);
                        c.open.shrink_to_fit();
                    }
                    None => {
                        bump(&mut self.anomalies.resolved_never_filed);
                        if c.orphans.len() < MAX_ORPHANS {
                            c.orphans.reserve_exact(1);
                            c.orphans.push(OrphanResolution {
                                id: d.complaint_id.clone(),
                                at,
                                satisfied: d.satisfied,
                            });
                        }
                    }
                }
            }
            EventData::CustomerReassigned(d) => {
                let current = self.owner.as_ref().map(|o| &o.value);
                if d.from_rep.as_ref() == Some(&d.to_rep) || current == Some(&d.to_rep) {
                    bump(&mut self.anomalies.reassigned_to_same_rep);
                    return;
                }
                self.reassignments += 1;
                set_latest(&mut self.owner, at, d.to_rep.clone());
                set_latest(
                    &mut self.last_reassignment,
                    at,
                    Reassignment {
                        from: d.from_rep.clone(),
                        to: d.to_rep.clone(),
                        reason: d.reason,
                    },
                );
            }
            EventData::AssessmentRecorded(d) => {
                if let Some(v) = d.coverage {
                    set_latest(&mut self.coverage, at, v.get());
                }
                if let Some(v) = d.prospects {
                    set_latest(&mut self.prospects, at, v.get());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_a_window_agrees_with_month_by_month() {
        let mut window = MonthWindow::<u64>::default();
        assert_eq!(window.fold(100, 13, 0, |t, v| t + v), 0, "empty window");
        for (month, value) in [(90, 1), (95, 10), (100, 100), (101, 1_000), (104, 10_000)] {
            window.update(month, |v| *v += value);
        }
        for last in 70..130 {
            for count in 0..30 {
                let naive: u64 = ((last - count + 1)..=last).map(|m| window.get(m)).sum();
                assert_eq!(
                    window.fold(last, count, 0, |t, v| t + v),
                    naive,
                    "{count} months to {last}"
                );
            }
        }
    }

    #[test]
    fn counting_days_by_words_agrees_with_day_by_day() {
        let mut days = PurchaseDays::default();
        for d in [3, 5, 63, 64, 65, 127, 128, 300, 511, 512, 700, 701, 760] {
            days.insert(d);
        }
        for from in (0..800).step_by(7) {
            for to in (from..800).step_by(11) {
                let naive = (from.max(days.latest - BITMAP_DAYS as i32 + 1)..=to.min(days.latest))
                    .filter(|&d| days.contains(d))
                    .count() as u32;
                assert_eq!(days.count_between(from, to), naive, "{from}..={to}");
            }
        }
    }
}
