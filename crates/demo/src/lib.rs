//! Realistic, deterministic demo histories for clientlog.
//!
//! A [`Generator`] simulates a book of customers month by month and yields their events as
//! [`Event`]s in business-time order across customers, the way a real feed would deliver them:
//! customers in segments and regions, reps with portfolios (some of whom leave), purchases
//! with seasonality and a per-customer rhythm, contracts signed, renewed, lapsed and terminated,
//! complaints that get escalated, resolved — or not —, assessments, interactions and profile
//! updates. Customers drift away more often after an unresolved complaint, a departed rep or a
//! lapsed contract, stop buying, and some come back; [`Generator::truth`] says who and when,
//! so the churn-risk model can be checked against it.
//!
//! A little dirt is on purpose: about 0.5 % of events arrive late (after later events of the
//! same customer) and about 0.2 % are delivered twice (same id).
//!
//! The same [`Config`] always gives the same events, byte for byte: every customer draws from
//! its own ChaCha stream per month, keyed by the seed; ids come from that stream, never from
//! the OS or the clock. Memory is bounded by one month of events plus a small per-customer state.

mod catalog;
mod customer;
mod random;
mod roster;

use std::fmt;
use std::io::{self, Write};

use clientlog_domain::Event;
use time::{Date, Month};

use crate::catalog::Catalog;
use crate::customer::{Customer, MonthCtx};
use crate::random::{key_from_seed, rng_for};
use crate::roster::Roster;

/// Why a generator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("--customers must be at least 1")]
    NoCustomers,
    #[error("--months must be from 1 to {max}, not {got}")]
    Months { got: u32, max: u32 },
    #[error("{0:?} is not a month in the form YYYY-MM between 1970-01 and 9000-12")]
    BadMonth(String),
    /// A built-in name or text was refused by the domain types (a bug in this crate).
    #[error("demo vocabulary rejected by the domain types: {0}")]
    Vocabulary(String),
}

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    pub year: i32,
    /// 1–12.
    pub month: u8,
}

impl YearMonth {
    pub fn new(year: i32, month: u8) -> Result<Self, DemoError> {
        if !(1970..=9000).contains(&year) || !(1..=12).contains(&month) {
            return Err(DemoError::BadMonth(format!("{year:04}-{month:02}")));
        }
        Ok(Self { year, month })
    }

    pub fn parse(s: &str) -> Result<Self, DemoError> {
        let bad = || DemoError::BadMonth(s.to_string());
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year = y.parse().map_err(|_| bad())?;
        let month = m.parse().map_err(|_| bad())?;
        Self::new(year, month).map_err(|_| bad())
    }

    /// The month `n` months later.
    pub fn plus(self, n: u32) -> Self {
        let index = i64::from(self.year) * 12 + i64::from(self.month - 1) + i64::from(n);
        Self {
            year: index.div_euclid(12) as i32,
            month: (index.rem_euclid(12) + 1) as u8,
        }
    }

    pub fn first_day(self) -> Date {
        let month = Month::try_from(self.month).unwrap_or(Month::January);
        Date::from_calendar_date(self.year, month, 1).unwrap_or(Date::MIN)
    }

    /// Unix time of the first instant of the month (UTC).
    pub fn start_unix(self) -> i64 {
        self.first_day().midnight().assume_utc().unix_timestamp()
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// What to generate. The same config always yields the same events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub customers: u32,
    pub months: u32,
    pub seed: u64,
    /// The first month of the history.
    pub start: YearMonth,
}

impl Config {
    pub const MAX_MONTHS: u32 = 1200;
    /// The default first month (fixed, so that output never depends on the clock).
    pub const DEFAULT_START: YearMonth = YearMonth {
        year: 2024,
        month: 1,
    };
}

/// The generator's verdict on one customer, for checking the churn-risk model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truth {
    pub customer_id: String,
    /// The month the customer was decided to drift away; they buy nothing after it, unless
    /// they come back.
    pub churned_at: Option<YearMonth>,
    /// The month a churned customer started buying again.
    pub reactivated_at: Option<YearMonth>,
}

/// One event in a month's buffer: sorted by `key` (business time, or arrival time for a late
/// event), then customer, then the customer's own order.
struct Pending {
    key: i64,
    customer: u32,
    seq: u32,
    event: Event,
}

/// Simulates the whole book month by month; an `Iterator` over the feed.
pub struct Generator {
    config: Config,
    catalog: Catalog,
    roster: Roster,
    key: [u8; 32],
    month_bounds: Vec<(i64, i64)>,
    customers: Vec<Customer>,
    next_month: u32,
    /// Late events held back into the next month's buffer.
    deferred: Vec<Pending>,
    current: std::vec::IntoIter<Event>,
    scratch: Vec<(i64, Event)>,
}

impl Generator {
    pub fn new(config: Config) -> Result<Self, DemoError> {
        if config.customers == 0 {
            return Err(DemoError::NoCustomers);
        }
        if !(1..=Config::MAX_MONTHS).contains(&config.months) {
            return Err(DemoError::Months {
                got: config.months,
                max: Config::MAX_MONTHS,
            });
        }
        YearMonth::new(config.start.year, config.start.month)?;
        let key = key_from_seed(config.seed);
        let month_bounds: Vec<(i64, i64)> = (0..config.months)
            .map(|m| {
                let ym = config.start.plus(m);
                (ym.start_unix(), ym.plus(1).start_unix())
            })
            .collect();
        let catalog = Catalog::build()?;
        let roster = Roster::build(&key, config.customers, &month_bounds)?;
        let customers = (0..config.customers)
            .map(|idx| {
                let mut rng = rng_for(&key, u64::from(idx), 0);
                Customer::new(idx, config.months, &mut rng)
            })
            .collect();
        Ok(Self {
            config,
            catalog,
            roster,
            key,
            month_bounds,
            customers,
            next_month: 0,
            deferred: Vec::new(),
            current: Vec::new().into_iter(),
            scratch: Vec::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many months have been generated so far (for progress reporting).
    pub fn months_done(&self) -> u32 {
        self.next_month
    }

    /// The events of the next month (plus late arrivals from the month before), in feed
    /// order; `None` when the history is complete. Mixing this with `next()` is fine.
    pub fn next_batch(&mut self) -> Option<Vec<Event>> {
        let rest: Vec<Event> = self.current.by_ref().collect();
        if !rest.is_empty() {
            return Some(rest);
        }
        self.fill().then(|| self.current.by_ref().collect())
    }

    /// Who churned and came back, per customer. Complete once the generator is exhausted;
    /// before that it covers the months generated so far.
    pub fn truth(&self) -> impl Iterator<Item = Truth> + '_ {
        let start = self.config.start;
        self.customers.iter().map(move |c| Truth {
            customer_id: customer_id_string(c.idx),
            churned_at: c.churned_at.map(|m| start.plus(m)),
            reactivated_at: c.reactivated_at.map(|m| start.plus(m)),
        })
    }

    /// Generates the next month into `current`; false when nothing is left.
    fn fill(&mut self) -> bool {
        let month = self.next_month;
        if month >= self.config.months {
            if self.deferred.is_empty() {
                return false;
            }
            let mut late = std::mem::take(&mut self.deferred);
            late.sort_unstable_by_key(|p| (p.key, p.customer, p.seq));
            self.current = late
                .into_iter()
                .map(|p| p.event)
                .collect::<Vec<_>>()
                .into_iter();
            return true;
        }
        self.next_month += 1;
        let (month_start, month_end) = self.month_bounds[month as usize];
        let ctx = MonthCtx {
            month,
            month_start,
            month_end,
            calendar_month0: self.config.start.plus(month).month - 1,
            catalog: &self.catalog,
            roster: &self.roster,
        };
        let mut buffer = std::mem::take(&mut self.deferred);
        let mut next_deferred = Vec::new();
        for customer in &mut self.customers {
            let mut rng = rng_for(&self.key, u64::from(customer.idx), u64::from(month) + 1);
            self.scratch.clear();
            customer.simulate_month(&ctx, &mut rng, &mut self.scratch);
            if self.scratch.is_empty() {
                continue;
            }
            self.scratch.sort_by_key(|(t, _)| *t);
            let last = self.scratch.len() - 1;
            for (seq, (t, event)) in self.scratch.drain(..).enumerate() {
                let seq = seq as u32 * 2;
                let registration = matches!(
                    event.data,
                    clientlog_domain::EventData::CustomerRegistered(_)
                );
                // Late: held back past the customer's later events of this month, so it
                // arrives after them in the next month's part of the feed.
                if seq / 2 != last as u32 && !registration && customer::late(&mut rng) {
                    let arrival = month_end + customer::late_delay(&mut rng);
                    next_deferred.push(Pending {
                        key: arrival,
                        customer: customer.idx,
                        seq,
                        event,
                    });
                    continue;
                }
                if customer::duplicate(&mut rng) {
                    buffer.push(Pending {
                        key: t,
                        customer: customer.idx,
                        seq: seq + 1,
                        event: event.clone(),
                    });
                }
                buffer.push(Pending {
                    key: t,
                    customer: customer.idx,
                    seq,
                    event,
                });
            }
        }
        self.deferred = next_deferred;
        buffer.sort_unstable_by_key(|p| (p.key, p.customer, p.seq));
        self.current = buffer
            .into_iter()
            .map(|p| p.event)
            .collect::<Vec<_>>()
            .into_iter();
        true
    }
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.current.next() {
                return Some(event);
            }
            if !self.fill() {
                return None;
            }
        }
    }
}

pub(crate) fn customer_id_string(idx: u32) -> String {
    format!("CUST-{:06}", u64::from(idx) + 1)
}

/// Writes events as NDJSON (one `Event::encode()` per line); returns how many were written.
pub fn write_ndjson<W: Write>(
    events: impl IntoIterator<Item = Event>,
    out: &mut W,
) -> io::Result<u64> {
    let mut count = 0;
    for event in events {
        out.write_all(&event.encode())?;
        out.write_all(b"\n")?;
        count += 1;
    }
    Ok(count)
}

/// Writes the ground truth as CSV: `customer_id,churned_at,reactivated_at` (months as
/// `YYYY-MM`, empty when it did not happen).
pub fn write_truth_csv<W: Write>(
    truth: impl IntoIterator<Item = Truth>,
    out: &mut W,
) -> io::Result<()> {
    writeln!(out, "customer_id,churned_at,reactivated_at")?;
    let month = |m: Option<YearMonth>| m.map(|m| m.to_string()).unwrap_or_default();
    for row in truth {
        writeln!(
            out,
            "{},{},{}",
            row.customer_id,
            month(row.churned_at),
            month(row.reactivated_at)
        )?;
    }
    Ok(())
}
