//! One customer's life, simulated a month at a time.
//!
//! The state is small (a few hundred bytes: profile, rhythm, open complaints, the running
//! contract, when risk factors last fired), so a generator holds every customer but only one
//! month of events. Each month the customer may be registered, reassigned, drift away or come
//! back, buy, sign/renew/lose a contract, complain, talk to their rep, be assessed and update
//! their profile. Churn hazard rises with an unresolved complaint, an escalation, a recent
//! staff-turnover reassignment, a lost contract and an unsatisfying resolution.

use clientlog_domain::event::{
    AssessmentRecorded, ComplaintEscalated, ComplaintFiled, ComplaintResolved, ContractRenewed,
    ContractSigned, ContractTerminated, CustomerReassigned, CustomerRegistered, Direction,
    InteractionKind, InteractionLogged, ProfileUpdated, PurchaseRecorded, ReassignReason, Severity,
};
use clientlog_domain::values::{
    Actor, CustomerId, Ident, Money, Percent, Personal, Sentiment, Source, Text, Units,
};
use clientlog_domain::{Event, EventData, EventId};
use rand::Rng;
use time::{Date, Duration, OffsetDateTime};

use crate::catalog::{
    company_suffix, interaction_weights, Catalog, NameStyle, Segment, AMERICA_NAMES, CHANNELS,
    CHANNEL_WEIGHTS, CHINA_NAMES, COMPLAINT_CATEGORIES, EUROPE_NAMES, INTERACTION_KINDS, REGIONS,
    SEVERITIES, SEVERITY_WEIGHTS, TRADES,
};
use crate::random::{
    lognormal, normal, office_time, pick, pick_weighted, poisson, DemoRng, DAY, HOUR,
};
use crate::roster::Roster;
use crate::{customer_id_string, YearMonth};

/// Share of events (among those eligible) held back to arrive late.
const LATE_CHANCE: f64 = 0.0085;
/// Share of events delivered twice.
const DUPLICATE_CHANCE: f64 = 0.002;

pub(crate) fn late(rng: &mut DemoRng) -> bool {
    rng.gen_bool(LATE_CHANCE)
}

pub(crate) fn late_delay(rng: &mut DemoRng) -> i64 {
    rng.gen_range(HOUR..20 * DAY)
}

pub(crate) fn duplicate(rng: &mut DemoRng) -> bool {
    rng.gen_bool(DUPLICATE_CHANCE)
}

/// What every customer sees of the month being generated.
pub(crate) struct MonthCtx<'a> {
    pub month: u32,
    pub month_start: i64,
    pub month_end: i64,
    /// January = 0, for seasonality.
    pub calendar_month0: u8,
    pub catalog: &'a Catalog,
    pub roster: &'a Roster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Registered, talking to sales, not buying (yet).
    Prospect,
    Active,
    /// Drifted away: buys nothing.
    Churned,
    /// Came back after churning.
    Reactivated,
}

struct OpenComplaint {
    no: u32,
    filed_at: i64,
    severity: Severity,
    escalated: bool,
    escalate_at: Option<i64>,
    /// `None`: never resolved.
    resolve_at: Option<i64>,
    satisfied: bool,
}

struct Contract {
    no: u32,
    ends_on: Date,
    auto_renew: bool,
    value_minor: u64,
    /// The renewal decision for the current term has been taken.
    decided: bool,
    /// The contract runs out at `ends_on` without renewal.
    will_end: bool,
}

impl Contract {
    /// The first instant after the contract's last day.
    fn ends_at(&self) -> i64 {
        unix(self.ends_on) + DAY
    }
}

/// Which churn drivers are present at the start of a month.
#[derive(Debug, Clone, Copy, Default)]
struct Factors {
    unresolved_complaint: bool,
    escalated: bool,
    staff_turnover: bool,
    contract_lost: bool,
    unsatisfied: bool,
}

impl Factors {
    fn count(self) -> u32 {
        u32::from(self.unresolved_complaint)
            + u32::from(self.escalated)
            + u32::from(self.staff_turnover)
            + u32::from(self.contract_lost)
            + u32::from(self.unsatisfied)
    }

    /// How many times more likely than its base the customer is to drift away this month.
    fn hazard_multiplier(self) -> f64 {
        let mut m = 1.0;
        if self.unresolved_complaint {
            m *= 3.0;
        }
        if self.escalated {
            m *= 1.5;
        }
        if self.staff_turnover {
            m *= 2.5;
        }
        if self.contract_lost {
            m *= 3.0;
        }
        if self.unsatisfied {
            m *= 1.5;
        }
        m
    }
}

/// How many months a risk factor keeps weighing after it fired.
const FACTOR_MONTHS: u32 = 6;

pub(crate) struct Customer {
    pub idx: u32,
    segment: Segment,
    region: u8,
    channel: u8,
    reg_month: u32,
    status: Status,
    /// A prospect who will become a buyer at some point.
    converts: bool,
    owner: u32,
    /// The customer's own buying rhythm.
    mean_gap_days: f32,
    /// Median order value in minor units of the customer's currency.
    order_scale: f32,
    unit_price: f32,
    /// Monthly log-growth of order values.
    trend: f32,
    /// Latent happiness, −1..1; drives sentiment, complaints and churn.
    satisfaction: f32,
    assess_phase: u8,
    next_purchase_at: i64,
    activated_month: Option<u32>,
    orders: u32,
    interactions: u32,
    contracts: u16,
    complaints: u16,
    open_complaints: Vec<OpenComplaint>,
    contract: Option<Contract>,
    last_turnover: Option<u32>,
    last_contract_loss: Option<u32>,
    last_unsatisfied: Option<u32>,
    pub churned_at: Option<u32>,
    pub reactivated_at: Option<u32>,
}

/// Collects a customer's events of one month with their business time.
struct Emitter<'a> {
    subject: CustomerId,
    out: &'a mut Vec<(i64, Event)>,
}

impl Emitter<'_> {
    fn emit(
        &mut self,
        rng: &mut DemoRng,
        t: i64,
        source: &Source,
        actor: Option<&Actor>,
        data: EventData,
    ) {
        // UUIDv7 from the business time and the customer's random stream: deterministic, and
        // time-ordered so that the log's unique index on ids grows at its end (random v4 ids
        // dirty a different index page per event and append several times slower).
        let millis = u64::try_from(t).unwrap_or(0).saturating_mul(1000);
        let id = EventId(uuid::Builder::from_unix_timestamp_millis(millis, &rng.gen()).into_uuid());
        let time = OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        self.out.push((
            t,
            Event {
                id,
                source: source.clone(),
                subject: self.subject.clone(),
                time,
                actor: actor.cloned(),
                data,
            },
        ));
    }
}

/// Builds an identifier from generated parts (`PREFIX-000042-0007`): always valid.
fn ident(s: String) -> Ident {
    Ident::parse(&s).unwrap_or_else(|e| unreachable!("generated identifier {s:?}: {e}"))
}

fn text(s: String) -> Text {
    Text::parse(&s).unwrap_or_else(|e| unreachable!("generated text {s:?}: {e}"))
}

fn unix(date: Date) -> i64 {
    date.midnight().assume_utc().unix_timestamp()
}

fn date_of(t: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(t)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .date()
}

fn add_months(date: Date, n: u32) -> Date {
    let ym = YearMonth {
        year: date.year(),
        month: date.month() as u8,
    }
    .plus(n);
    let first = ym.first_day();
    let day = date.day().min(first.month().length(first.year()));
    first.replace_day(day).unwrap_or(first)
}

fn percent(x: f64) -> Percent {
    Percent::new(x.round().clamp(0.0, 100.0) as i64).unwrap_or_else(|e| unreachable!("{e}"))
}

/// A random instant in `[max(lo, a), min(hi, b))`, or in `[lo, hi)` if that is empty.
fn time_between(rng: &mut DemoRng, lo: i64, hi: i64, a: i64, b: i64) -> i64 {
    let (from, to) = (lo.max(a), hi.min(b));
    if from < to {
        rng.gen_range(from..to)
    } else {
        rng.gen_range(lo..hi)
    }
}

fn company_name(rng: &mut DemoRng, style: NameStyle) -> Personal<Text> {
    let base = match style {
        NameStyle::China => pick(rng, &CHINA_NAMES),
        NameStyle::Europe => pick(rng, &EUROPE_NAMES),
        NameStyle::America => pick(rng, &AMERICA_NAMES),
    };
    let trade = pick(rng, &TRADES);
    let suffix = company_suffix(style, rng.gen_range(0..60));
    Personal(text(format!("{base} {trade} {suffix}")))
}

impl Customer {
    /// Draws the customer's profile: who they are, when they register, how they buy.
    pub(crate) fn new(idx: u32, months: u32, rng: &mut DemoRng) -> Self {
        let segment = Segment::ALL[pick_weighted(rng, &Segment::WEIGHTS)];
        let region_weights: Vec<u32> = REGIONS.iter().map(|r| r.weight).collect();
        let region = pick_weighted(rng, &region_weights);
        let channel = pick_weighted(rng, &CHANNEL_WEIGHTS) as u8;
        // About 40 % are the existing book, registered in the first month; the rest arrive
        // evenly over the history.
        let reg_month = if months == 1 || rng.gen_bool(0.4) {
            0
        } else {
            rng.gen_range(0..months)
        };
        let starts_buying = if reg_month == 0 {
            rng.gen_bool(0.85)
        } else {
            rng.gen_bool(0.35)
        };
        let spec = &REGIONS[region];
        let order_cny = segment.median_order_cny() * lognormal(rng, 0.6);
        let order_scale = (order_cny / spec.cny_per_unit * 100.0) as f32;
        let unit_price = order_scale / (rng.gen_range(2.0f32..40.0));
        Customer {
            idx,
            segment,
            region: region as u8,
            channel,
            reg_month,
            status: if starts_buying {
                Status::Active
            } else {
                Status::Prospect
            },
            converts: rng.gen_bool(0.75),
            owner: 0,
            mean_gap_days: (segment.median_gap_days() * lognormal(rng, 0.45)).clamp(5.0, 200.0)
                as f32,
            order_scale,
            unit_price: unit_price.max(1.0),
            trend: (0.01 * normal(rng)) as f32,
            satisfaction: (0.2 + 0.35 * normal(rng)).clamp(-1.0, 1.0) as f32,
            assess_phase: rng.gen_range(0..6),
            next_purchase_at: i64::MAX,
            activated_month: None,
            orders: 0,
            interactions: 0,
            contracts: 0,
            complaints: 0,
            open_complaints: Vec::new(),
            contract: None,
            last_turnover: None,
            last_contract_loss: None,
            last_unsatisfied: None,
            churned_at: None,
            reactivated_at: None,
        }
    }

    fn is_buying(&self) -> bool {
        matches!(self.status, Status::Active | Status::Reactivated)
    }

    fn recent(&self, at: Option<u32>, month: u32) -> bool {
        at.is_some_and(|m| month - m <= FACTOR_MONTHS)
    }

    fn factors(&self, ctx: &MonthCtx) -> Factors {
        let old = ctx.month_start - 30 * DAY;
        Factors {
            unresolved_complaint: self.open_complaints.iter().any(|c| c.filed_at < old),
            escalated: self.open_complaints.iter().any(|c| c.escalated),
            staff_turnover: self.recent(self.last_turnover, ctx.month),
            contract_lost: self.recent(self.last_contract_loss, ctx.month),
            unsatisfied: self.recent(self.last_unsatisfied, ctx.month),
        }
    }

    fn first_utc_hour(&self) -> i64 {
        REGIONS[usize::from(self.region)].first_utc_hour
    }

    fn currency_money(&self, ctx: &MonthCtx, minor: u64) -> Money {
        let currency = ctx.catalog.currencies[usize::from(self.region)];
        Money::new(minor.min(i64::MAX as u64), currency).unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// Adds this customer's events of `ctx.month` to `out` (in any order; the caller sorts).
    pub(crate) fn simulate_month(
        &mut self,
        ctx: &MonthCtx,
        rng: &mut DemoRng,
        out: &mut Vec<(i64, Event)>,
    ) {
        if ctx.month < self.reg_month {
            return;
        }
        let subject = CustomerId::parse(&customer_id_string(self.idx))
            .unwrap_or_else(|e| unreachable!("generated customer id: {e}"));
        let mut e = Emitter { subject, out };
        let hi = ctx.month_end;
        let mut lo = ctx.month_start;
        if ctx.month == self.reg_month {
            lo = self.register(ctx, rng, &mut e);
            if lo >= hi {
                return;
            }
        }
        let factors = self.factors(ctx);
        self.reassign(ctx, rng, &mut e, lo, hi);
        let buy_until = self.churn_or_return(ctx, rng, &mut e, lo, hi, factors);
        self.purchases(ctx, rng, &mut e, lo, hi, buy_until, factors);
        self.contract(ctx, rng, &mut e, lo, hi, factors);
        self.complaints(ctx, rng, &mut e, lo, hi);
        self.interactions(ctx, rng, &mut e, lo, hi, factors);
        self.assessment(ctx, rng, &mut e, lo, hi, factors);
        self.profile_update(ctx, rng, &mut e, lo, hi);
        // Moods drift and slowly return to the customer's usual.
        let drift = 0.04 * normal(rng) as f32 + (0.2 - self.satisfaction) * 0.05;
        self.satisfaction = (self.satisfaction + drift).clamp(-1.0, 1.0);
    }

    /// Emits `customer.registered`; returns the earliest time for the month's other events.
    fn register(&mut self, ctx: &MonthCtx, rng: &mut DemoRng, e: &mut Emitter) -> i64 {
        let (lo, hi) = (ctx.month_start, ctx.month_end);
        // The existing book is loaded in the first fortnight; newcomers arrive any time.
        let span = if ctx.month == 0 {
            14 * DAY
        } else {
            hi - lo - 2 * DAY
        };
        let t = office_time(rng, lo, lo + span.max(DAY), self.first_utc_hour());
        let region = usize::from(self.region);
        self.owner = ctx.roster.pick_active(rng, region, ctx.month, None);
        let owner = &ctx.roster.reps[self.owner as usize];
        let name = company_name(rng, REGIONS[region].name_style);
        let data = CustomerRegistered {
            name,
            segment: Some(ctx.catalog.segments[self.segment.index()].clone()),
            region: Some(ctx.catalog.regions[region].clone()),
            channel: rng
                .gen_bool(0.9)
                .then(|| ctx.catalog.channels[usize::from(self.channel)].clone()),
            owner: Some(owner.id.clone()),
        };
        e.emit(
            rng,
            t,
            &ctx.catalog.source_crm,
            Some(&owner.actor),
            EventData::CustomerRegistered(data),
        );
        if self.status == Status::Active {
            self.activated_month = Some(ctx.month);
            // The existing book has been buying all along: the next order is somewhere
            // within one rhythm; a newcomer registered with their first order.
            self.next_purchase_at = if ctx.month == 0 {
                t + HOUR
                    + (f64::from(self.mean_gap_days) * rng.gen_range(0.02..1.0) * 86_400.0) as i64
            } else {
                t + HOUR + rng.gen_range(0..2 * DAY)
            };
        }
        t + HOUR
    }

    fn reassign(&mut self, ctx: &MonthCtx, rng: &mut DemoRng, e: &mut Emitter, lo: i64, hi: i64) {
        let roster = ctx.roster;
        let region = usize::from(self.region);
        let owner = &roster.reps[self.owner as usize];
        let (t, reason) = match owner.left {
            Some((m, left_at)) if m == ctx.month => (
                time_between(rng, lo, hi, left_at, left_at + 7 * DAY),
                ReassignReason::StaffTurnover,
            ),
            _ => {
                let unhappy = self.satisfaction < -0.4;
                if !rng.gen_bool(if unhappy { 0.012 } else { 0.004 }) {
                    return;
                }
                let reasons = [
                    ReassignReason::Territory,
                    ReassignReason::Workload,
                    ReassignReason::CustomerRequest,
                    ReassignReason::Other,
                ];
                let weights = [30, 35, if unhappy { 75 } else { 25 }, 10];
                let reason = reasons[pick_weighted(rng, &weights)];
                (office_time(rng, lo, hi, self.first_utc_hour()), reason)
            }
        };
        let to = roster.pick_active(rng, region, ctx.month, Some(self.owner));
        let data = CustomerReassigned {
            from_rep: Some(owner.id.clone()),
            to_rep: roster.reps[to as usize].id.clone(),
            reason,
        };
        e.emit(
            rng,
            t,
            &ctx.catalog.source_crm,
            Some(&ctx.catalog.actor_crm),
            EventData::CustomerReassigned(data),
        );
        self.owner = to;
        if reason == ReassignReason::StaffTurnover {
            self.last_turnover = Some(ctx.month);
        }
    }

    /// Decides whether a buyer drifts away this month or a lost customer comes back.
    /// Returns the instant after which the customer buys nothing this month.
    #[allow(clippy::too_many_arguments)]
    fn churn_or_return(
        &mut self,
        ctx: &MonthCtx,
        rng: &mut DemoRng,
        e: &mut Emitter,
        lo: i64,
        hi: i64,
        factors: Factors,
    ) -> i64 {
        let month = ctx.month;
        match self.status {
            Status::Prospect => {
                if self.converts && month > self.reg_month && rng.gen_bool(0.25) {
                    self.status = Status::Active;
                    self.activated_month = Some(month);
                    self.next_purchase_at = rng.gen_range(lo..hi);
                }
                hi
            }
            Status::Active if self.orders > 0 && month >= self.reg_month + 2 => {
                let happiness = 1.3 - 0.5 * f64::from(self.satisfaction);
                let hazard =
                    (self.segment.base_churn() * factors.hazard_multiplier() * happiness).min(0.6);
                if !rng.gen_bool(hazard) {
                    return hi;
                }
                self.status = Status::Churned;
                self.churned_at = Some(month);
                self.satisfaction = (self.satisfaction - 0.2).max(-1.0);
                let churn_point = rng.gen_range(lo..hi);
                if let Some(contract) = &mut self.contract {
                    if !contract.decided && rng.gen_bool(0.5) {
                        let t = time_between(rng, lo, hi, churn_point, hi);
                        let effective_on = date_of(t) + Duration::days(rng.gen_range(0..60));
                        let data = ContractTerminated {
                            contract_id: contract_id(self.idx, contract.no),
                            effective_on,
                            reason: Some(pick(rng, &ctx.catalog.termination_reasons).clone()),
                        };
                        let owner = &ctx.roster.reps[self.owner as usize];
                        e.emit(
                            rng,
                            t,
                            &ctx.catalog.source_crm,
                            Some(&owner.actor),
                            EventData::ContractTerminated(data),
                        );
                        self.contract = None;
                        self.last_contract_loss = Some(month);
                    } else {
                        contract.will_end = true;
                    }
                }
                churn_point
            }
            Status::Churned
                if self.reactivated_at.is_none()
                    && self.churned_at.is_some_and(|c| month >= c + 3)
                    && rng.gen_bool(0.03) =>
            {
                self.status = Status::Reactivated;
                self.reactivated_at = Some(month);
                self.activated_month = Some(month);
                self.satisfaction = 0.3;
                let t = office_time(rng, lo, hi, self.first_utc_hour());
                self.interactions += 1;
                let owner = &ctx.roster.reps[self.owner as usize];
                let data = InteractionLogged {
                    interaction_id: ident(format!(
                        "IN-{:06}-{:04}",
                        self.idx + 1,
                        self.interactions
                    )),
                    kind: InteractionKind::Call,
                    direction: Some(Direction::Inbound),
                    rep: Some(owner.id.clone()),
                    summary: Some(Personal(text(
                        "Former customer called about a new order".to_string(),
                    ))),
                    sentiment: Some(Sentiment::new(1).unwrap_or_else(|e| unreachable!("{e}"))),
                };
                e.emit(
                    rng,
                    t,
                    &ctx.catalog.source_crm,
                    Some(&owner.actor),
                    EventData::InteractionLogged(data),
                );
                self.next_purchase_at = t + rng.gen_range(HOUR..5 * DAY);
                hi
            }
            _ => hi,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn purchases(
        &mut self,
        ctx: &MonthCtx,
        rng: &mut DemoRng,
        e: &mut Emitter,
        lo: i64,
        hi: i64,
        buy_until: i64,
        factors: Factors,
    ) {
        let churning_now = self.churned_at == Some(ctx.month) && self.status == Status::Churned;
        if !self.is_buying() && !churning_now {
            return;
        }
        let spec = &REGIONS[usize::from(self.region)];
        let season = spec.season.factor(ctx.calendar_month0);
        // A customer with problems buys less often before (maybe) leaving.
        let disengagement = 1.0 + 0.35 * f64::from(factors.count());
        let months_in = f64::from(ctx.month - self.reg_month);
        if self.next_purchase_at < lo {
            self.next_purchase_at = lo + rng.gen_range(0..(hi - lo).min(3 * DAY));
        }
        while self.next_purchase_at < hi.min(buy_until) {
            let t = self.next_purchase_at;
            self.orders += 1;
            let amount = f64::from(self.order_scale)
                * lognormal(rng, 0.45)
                * season.sqrt()
                * (f64::from(self.trend) * months_in).exp();
            let mut minor = amount.max(100.0) as u64;
            if rng.gen_bool(0.7) {
                minor = (minor / 100).max(1) * 100;
            }
            let units = rng.gen_bool(0.8).then(|| {
                let n = (minor as f64 / f64::from(self.unit_price)).round().max(1.0);
                Units::new(n as i64).unwrap_or_else(|e| unreachable!("{e}"))
            });
            let data = PurchaseRecorded {
                order_id: ident(format!("SO-{:06}-{:04}", self.idx + 1, self.orders)),
                amount: self.currency_money(ctx, minor),
                units,
            };
            e.emit(
                rng,
                t,
                &ctx.catalog.source_erp,
                Some(&ctx.catalog.actor_erp),
                EventData::PurchaseRecorded(data),
            );
            let gap_days =
                f64::from(self.mean_gap_days) * lognormal(rng, 0.35) * disengagement / season;
            let next = t + ((gap_days * 86_400.0) as i64).max(HOUR);
            // Orders come in during the region's office hours.
            let day = next.div_euclid(DAY) * DAY;
            self.next_purchase_at =
                day + spec.first_utc_hour * HOUR + next.rem_euclid(DAY) % (9 * HOUR);
            if self.next_purchase_at <= t {
                self.next_purchase_at = t + HOUR;
            }
        }
    }

    fn contract(
        &mut self,
        ctx: &MonthCtx,
        rng: &mut DemoRng,
        e: &mut Emitter,
        lo: i64,
        hi: i64,
        factors: Factors,
    ) {
        let month = ctx.month;
        let owner = &ctx.roster.reps[self.owner as usize];
        let buying = self.is_buying();
        if let Some(c) = &mut self.contract {
            let decide_at = c.ends_at() - 30 * DAY;
            if !c.decided && decide_at < hi {
                c.decided = true;
                let renew_chance = 0.85 - 0.15 * f64::from(factors.count());
                if !buying || c.will_end {
                    c.will_end = true;
                    if c.auto_renew {
                        let t = time_between(rng, lo, hi, decide_at, hi);
                        let data = ContractTerminated {
                            contract_id: contract_id(self.idx, c.no),
                            effective_on: c.ends_on,
                            reason: Some(ctx.catalog.auto_renew_cancelled.clone()),
                        };
                        e.emit(
                            rng,
                            t,
                            &ctx.catalog.source_crm,
                            Some(&owner.actor),
                            EventData::ContractTerminated(data),
                        );
                    }
                } else if c.auto_renew || rng.gen_bool(renew_chance.clamp(0.05, 1.0)) {
                    let t = time_between(rng, lo, hi, decide_at, hi);
                    let grown = (c.value_minor as f64 * (1.0 + 12.0 * f64::from(self.trend)))
                        .max(100_000.0) as u64
                        / 100_000
                        * 100_000;
                    let changed = grown != c.value_minor && rng.gen_bool(0.6);
                    c.ends_on = add_months(c.ends_on, 12);
                    let actor = if c.auto_renew {
                        &ctx.catalog.actor_crm
                    } else {
                        &owner.actor
                    };
                    let data = ContractRenewed {
                        contract_id: contract_id(self.idx, c.no),
                        ends_on: c.ends_on,
                        value: changed.then(|| {
                            let currency = ctx.catalog.currencies[usize::from(self.region)];
                            Money::new(grown, currency).unwrap_or_else(|e| unreachable!("{e}"))
                        }),
                    };
                    if changed {
                        c.value_minor = grown;
                    }
                    c.decided = false;
                    e.emit(
                        rng,
                        t,
                        &ctx.catalog.source_crm,
                        Some(actor),
                        EventData::ContractRenewed(data),
                    );
                } else {
                    c.will_end = true;
                }
            } else if !c.decided && factors.unresolved_complaint && rng.gen_bool(0.04) {
                // An unhappy customer walks out of the contract early.
                let t = office_time(
                    rng,
                    lo,
                    hi,
                    REGIONS[usize::from(self.region)].first_utc_hour,
                );
                let data = ContractTerminated {
                    contract_id: contract_id(self.idx, c.no),
                    effective_on: date_of(t) + Duration::days(30),
                    reason: Some(ctx.catalog.termination_reasons[2].clone()),
                };
                e.emit(
                    rng,
                    t,
                    &ctx.catalog.source_crm,
                    Some(&owner.actor),
                    EventData::ContractTerminated(data),
                );
                self.contract = None;
                self.last_contract_loss = Some(month);
                return;
            }
            if c.will_end && c.ends_at() < hi {
                // Lapsed (or ended after a cancelled auto-renewal).
                self.contract = None;
                self.last_contract_loss = Some(month);
            }
            return;
        }
        if !buying || self.orders == 0 {
            return;
        }
        let chance = if self.activated_month == Some(month) {
            self.segment.contract_at_start()
        } else {
            self.segment.contract_at_start() / 40.0
        };
        if !rng.gen_bool(chance) {
            return;
        }
        self.contracts += 1;
        let t = office_time(rng, lo, hi, self.first_utc_hour());
        let starts_on = date_of(t) + Duration::days(rng.gen_range(0..14));
        let term = if self.segment == Segment::Enterprise && rng.gen_bool(0.3) {
            24
        } else {
            12
        };
        let ends_on = add_months(starts_on, term) - Duration::days(1);
        let yearly = 365.0 / f64::from(self.mean_gap_days) * f64::from(self.order_scale);
        let value_minor =
            ((yearly * f64::from(term) / 12.0 * 0.9) as u64 / 100_000).max(1) * 100_000;
        let auto_renew = match pick_weighted(rng, &[35, 40, 25]) {
            0 => Some(true),
            1 => Some(false),
            _ => None,
        };
        let contract = Contract {
            no: u32::from(self.contracts),
            ends_on,
            auto_renew: auto_renew == Some(true),
            value_minor,
            decided: false,
            will_end: false,
        };
        let data = ContractSigned {
            contract_id: contract_id(self.idx, contract.no),
            value: self.currency_money(ctx, value_minor),
            starts_on,
            ends_on,
            auto_renew,
        };
        e.emit(
            rng,
            t,
            &ctx.catalog.source_crm,
            Some(&owner.actor),
            EventData::ContractSigned(data),
        );
        self.contract = Some(contract);
    }

    fn complaints(&mut self, ctx: &MonthCtx, rng: &mut DemoRng, e: &mut Emitter, lo: i64, hi: i64) {
        let month = ctx.month;
        let mut chance = self.segment.complaint_rate();
        if self.satisfaction < -0.3 {
            chance *= 1.5;
        }
        if matches!(self.status, Status::Churned | Status::Prospect) {
            chance *= 0.3;
        }
        if rng.gen_bool(chance) {
            self.complaints += 1;
            let no = u32::from(self.complaints);
            let t = office_time(rng, lo, hi, self.first_utc_hour());
            let sev = pick_weighted(rng, &SEVERITY_WEIGHTS);
            let category = rng.gen_range(0..COMPLAINT_CATEGORIES.len());
            let escalate_at = rng
                .gen_bool([0.05, 0.12, 0.25, 0.35][sev])
                .then(|| t + rng.gen_range(DAY..10 * DAY));
            let never = rng.gen_bool([0.06, 0.09, 0.14, 0.10][sev]);
            let median_days = [4.0, 8.0, 12.0, 6.0][sev];
            let slow = if escalate_at.is_some() { 1.6 } else { 1.0 };
            let resolve_at = (!never).then(|| {
                let days = median_days * lognormal(rng, 0.6) * slow;
                escalate_at.unwrap_or(t) + ((days * 86_400.0) as i64).max(2 * HOUR)
            });
            let satisfied = rng.gen_bool(if escalate_at.is_some() { 0.55 } else { 0.75 });
            let data = ComplaintFiled {
                complaint_id: complaint_id(self.idx, no),
                severity: SEVERITIES[sev],
                category: rng
                    .gen_bool(0.9)
                    .then(|| ctx.catalog.categories[category].clone()),
                summary: rng
                    .gen_bool(0.6)
                    .then(|| pick(rng, &ctx.catalog.complaint_summaries[category]).clone()),
            };
            e.emit(
                rng,
                t,
                &ctx.catalog.source_support,
                Some(&ctx.catalog.actor_support),
                EventData::ComplaintFiled(data),
            );
            self.satisfaction = (self.satisfaction - 0.08 * (sev as f32 + 1.0)).max(-1.0);
            self.open_complaints.push(OpenComplaint {
                no,
                filed_at: t,
                severity: SEVERITIES[sev],
                escalated: false,
                escalate_at,
                resolve_at,
                satisfied,
            });
        }
        let mut i = 0;
        while i < self.open_complaints.len() {
            let c = &mut self.open_complaints[i];
            if let Some(at) = c.escalate_at.filter(|&at| at < hi) {
                c.escalate_at = None;
                c.escalated = true;
                let bumped = match c.severity {
                    Severity::Low => Severity::Medium,
                    Severity::Medium => Severity::High,
                    Severity::High | Severity::Critical => Severity::Critical,
                };
                let severity = (bumped != c.severity && rng.gen_bool(0.5)).then_some(bumped);
                if let Some(s) = severity {
                    c.severity = s;
                }
                let data = ComplaintEscalated {
                    complaint_id: complaint_id(self.idx, c.no),
                    severity,
                };
                e.emit(
                    rng,
                    at,
                    &ctx.catalog.source_support,
                    Some(&ctx.catalog.actor_support),
                    EventData::ComplaintEscalated(data),
                );
            }
            let c = &self.open_complaints[i];
            match c.resolve_at {
                Some(at) if at < hi => {
                    let satisfied = c.satisfied;
                    let data = ComplaintResolved {
                        complaint_id: complaint_id(self.idx, c.no),
                        resolution: rng
                            .gen_bool(0.7)
                            .then(|| pick(rng, &ctx.catalog.resolutions).clone()),
                        satisfied: rng.gen_bool(0.8).then_some(satisfied),
                    };
                    e.emit(
                        rng,
                        at,
                        &ctx.catalog.source_support,
                        Some(&ctx.catalog.actor_support),
                        EventData::ComplaintResolved(data),
                    );
                    self.open_complaints.swap_remove(i);
                    if satisfied {
                        self.satisfaction = (self.satisfaction + 0.05).min(1.0);
                    } else {
                        self.satisfaction = (self.satisfaction - 0.2).max(-1.0);
                        self.last_unsatisfied = Some(month);
                    }
                }
                _ => i += 1,
            }
        }
    }

    fn interactions(
        &mut self,
        ctx: &MonthCtx,
        rng: &mut DemoRng,
        e: &mut Emitter,
        lo: i64,
        hi: i64,
        factors: Factors,
    ) {
        let mut rate = self.segment.interaction_rate();
        match self.status {
            Status::Prospect => rate *= 1.4,
            Status::Churned => rate = 0.2,
            Status::Active | Status::Reactivated => {}
        }
        rate /= 1.0 + 0.4 * f64::from(factors.count());
        let owner = &ctx.roster.reps[self.owner as usize];
        let weights = interaction_weights(self.segment);
        // Numbered in time order, like a CRM would.
        let mut times: Vec<i64> = (0..poisson(rng, rate))
            .map(|_| office_time(rng, lo, hi, self.first_utc_hour()))
            .collect();
        times.sort_unstable();
        for t in times {
            self.interactions += 1;
            let kind = INTERACTION_KINDS[pick_weighted(rng, weights)];
            let direction = match kind {
                InteractionKind::Support => Some(Direction::Inbound),
                InteractionKind::Event => None,
                _ if rng.gen_bool(0.65) => Some(Direction::Outbound),
                _ => Some(Direction::Inbound),
            };
            let sentiment = rng.gen_bool(0.75).then(|| {
                let mut mood = 1.5 * f64::from(self.satisfaction) + 0.7 * normal(rng);
                if !self.open_complaints.is_empty() {
                    mood -= 1.0;
                }
                if self.status == Status::Churned {
                    mood -= 0.8;
                }
                Sentiment::new(mood.round().clamp(-2.0, 2.0) as i64)
                    .unwrap_or_else(|e| unreachable!("{e}"))
            });
            let data = InteractionLogged {
                interaction_id: ident(format!("IN-{:06}-{:04}", self.idx + 1, self.interactions)),
                kind,
                direction,
                rep: Some(owner.id.clone()),
                summary: rng
                    .gen_bool(0.25)
                    .then(|| pick(rng, &ctx.catalog.interaction_summaries).clone()),
                sentiment,
            };
            e.emit(
                rng,
                t,
                &ctx.catalog.source_crm,
                Some(&owner.actor),
                EventData::InteractionLogged(data),
            );
        }
    }

    fn assessment(
        &mut self,
        ctx: &MonthCtx,
        rng: &mut DemoRng,
        e: &mut Emitter,
        lo: i64,
        hi: i64,
        factors: Factors,
    ) {
        let period = self.segment.assessment_period();
        if ctx.month <= self.reg_month
            || !(ctx.month + u32::from(self.assess_phase)).is_multiple_of(period)
            || (self.segment == Segment::Smb && !rng.gen_bool(0.6))
        {
            return;
        }
        let sat = f64::from(self.satisfaction);
        let coverage = self.segment.base_coverage() + 15.0 * sat + 8.0 * normal(rng);
        let mut prospects = 55.0 + 25.0 * sat + 400.0 * f64::from(self.trend)
            - 10.0 * f64::from(factors.count())
            + 10.0 * normal(rng);
        if self.status == Status::Churned {
            prospects = prospects.min(20.0 + 5.0 * normal(rng));
        }
        let (with_coverage, with_prospects) = match pick_weighted(rng, &[85, 10, 5]) {
            0 => (true, true),
            1 => (false, true),
            _ => (true, false),
        };
        let owner = &ctx.roster.reps[self.owner as usize];
        let data = AssessmentRecorded {
            coverage: with_coverage.then(|| percent(coverage)),
            prospects: with_prospects.then(|| percent(prospects)),
            note: rng
                .gen_bool(0.3)
                .then(|| pick(rng, &ctx.catalog.assessment_notes).clone()),
        };
        let t = office_time(rng, lo, hi, self.first_utc_hour());
        e.emit(
            rng,
            t,
            &ctx.catalog.source_crm,
            Some(&owner.actor),
            EventData::AssessmentRecorded(data),
        );
    }

    fn profile_update(
        &mut self,
        ctx: &MonthCtx,
        rng: &mut DemoRng,
        e: &mut Emitter,
        lo: i64,
        hi: i64,
    ) {
        if ctx.month <= self.reg_month || !rng.gen_bool(0.005) {
            return;
        }
        let mut data = ProfileUpdated {
            name: None,
            segment: None,
            region: None,
            channel: None,
        };
        let region = &REGIONS[usize::from(self.region)];
        match pick_weighted(rng, &[40, 25, 20, 15]) {
            1 => {
                self.segment = match self.segment {
                    Segment::Smb => Segment::MidMarket,
                    Segment::MidMarket if self.trend > 0.0 => Segment::Enterprise,
                    Segment::MidMarket => Segment::Smb,
                    Segment::Enterprise => Segment::MidMarket,
                };
                data.segment = Some(ctx.catalog.segments[self.segment.index()].clone());
            }
            2 => data.name = Some(company_name(rng, region.name_style)),
            3 if region.currency == "CNY" => {
                // Moves within China keep the currency.
                let others: Vec<usize> = (0..REGIONS.len())
                    .filter(|&r| REGIONS[r].currency == "CNY" && r != usize::from(self.region))
                    .collect();
                self.region = *pick(rng, &others) as u8;
                data.region = Some(ctx.catalog.regions[usize::from(self.region)].clone());
            }
            _ => {
                let next =
                    (usize::from(self.channel) + rng.gen_range(1..CHANNELS.len())) % CHANNELS.len();
                self.channel = next as u8;
                data.channel = Some(ctx.catalog.channels[next].clone());
            }
        }
        let owner = &ctx.roster.reps[self.owner as usize];
        let t = office_time(rng, lo, hi, self.first_utc_hour());
        e.emit(
            rng,
            t,
            &ctx.catalog.source_crm,
            Some(&owner.actor),
            EventData::ProfileUpdated(data),
        );
    }
}

fn contract_id(idx: u32, no: u32) -> Ident {
    ident(format!("CT-{:06}-{no:02}", idx + 1))
}

fn complaint_id(idx: u32, no: u32) -> Ident {
    ident(format!("CP-{:06}-{no:03}", idx + 1))
}
