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

/// Where an event goes in the feed: sorted by `key` (business time, or arrival time for a
/// late event), then customer, then the customer's own order; `slot` indexes the event.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    key: i64,
    customer: u32,
    seq: u32,
    slot: u32,
}

/// Events waiting for their place in the feed.
#[derive(Default)]
struct Batch {
    places: Vec<Place>,
    events: Vec<Event>,
}

impl Batch {
    fn with_capacity(n: usize) -> Self {
        Batch {
            places: Vec::with_capacity(n),
            events: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, key: i64, customer: u32, seq: u32, event: Event) {
        let slot = self.events.len() as u32;
        self.places.push(Place {
            key,
            customer,
            seq,
            slot,
        });
        self.events.push(event);
    }

    fn append(&mut self, other: Batch) {
        self.places.reserve(other.places.len());
        self.events.reserve(other.events.len());
        let offset = self.events.len() as u32;
        self.places.extend(other.places.into_iter().map(|p| Place {
            slot: p.slot + offset,
            ..p
        }));
        self.events.extend(other.events);
    }

    /// The events in feed order.
    fn into_sorted(mut self) -> Vec<Event> {
        self.places.sort_unstable();
        let mut slots: Vec<Option<Event>> = self.events.into_iter().map(Some).collect();
        let mut sorted = Vec::with_capacity(slots.len());
        sorted.extend(
            self.places
                .iter()
                .filter_map(|p| slots[p.slot as usize].take()),
        );
        sorted
    }
}

/// Customers per worker thread below which one thread is faster.
const MIN_CUSTOMERS_PER_THREAD: usize = 2_000;

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
    deferred: Batch,
    current: std::vec::IntoIter<Event>,
    threads: usize,
    /// Events in the last month generated, to size the next month's buffers.
    last_month_events: usize,
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
            deferred: Batch::default(),
            current: Vec::new().into_iter(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
            last_month_events: 0,
        })
    }

    /// Caps the worker threads used per month (default: the available cores, at most 8).
    /// The output does not depend on it.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
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
        // Collecting a whole `vec::IntoIter` reuses its buffer instead of copying the events.
        let rest: Vec<Event> = std::mem::take(&mut self.current).collect();
        if !rest.is_empty() {
            return Some(rest);
        }
        self.fill()
            .then(|| std::mem::take(&mut self.current).collect())
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
            if self.deferred.events.is_empty() {
                return false;
            }
            self.current = std::mem::take(&mut self.deferred).into_sorted().into_iter();
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
        let key = &self.key;
        // Customers are independent within a month (each has its own random stream), so
        // they are simulated in parallel chunks; the sort below fixes the feed order.
        let threads = self
            .threads
            .min(self.customers.len() / MIN_CUSTOMERS_PER_THREAD)
            .max(1);
        let chunk = self.customers.len().div_ceil(threads);
        let capacity = self.last_month_events / threads + self.last_month_events / threads / 8;
        let parts: Vec<(Batch, Batch)> = if threads == 1 {
            vec![simulate_chunk(&mut self.customers, &ctx, key, capacity)]
        } else {
            std::thread::scope(|scope| {
                let workers: Vec<_> = self
                    .customers
                    .chunks_mut(chunk)
                    .map(|customers| scope.spawn(|| simulate_chunk(customers, &ctx, key, capacity)))
                    .collect();
                workers
                    .into_iter()
                    .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        let mut buffer = std::mem::take(&mut self.deferred);
        for (events, late) in parts {
            buffer.append(events);
            self.deferred.append(late);
        }
        self.last_month_events = buffer.events.len();
        self.current = buffer.into_sorted().into_iter();
        true
    }
}

/// Simulates one month of `customers`: the events for this month's feed, and the late ones
/// held back for the next.
fn simulate_chunk(
    customers: &mut [Customer],
    ctx: &MonthCtx,
    key: &[u8; 32],
    capacity: usize,
) -> (Batch, Batch) {
    let mut batch = Batch::with_capacity(capacity);
    let mut late = Batch::default();
    let mut scratch = Vec::new();
    for customer in customers {
        let mut rng = rng_for(key, u64::from(customer.idx), u64::from(ctx.month) + 1);
        customer.simulate_month(ctx, &mut rng, &mut scratch);
        if scratch.is_empty() {
            continue;
        }
        scratch.sort_by_key(|(t, _)| *t);
        let last = scratch.len() - 1;
        for (i, (t, event)) in scratch.drain(..).enumerate() {
            let seq = i as u32 * 2;
            let registration = matches!(
                event.data,
                clientlog_domain::EventData::CustomerRegistered(_)
            );
            // Late: held back past the customer's later events of this month, so it arrives
            // after them, in the next month's part of the feed.
            if i != last && !registration && customer::late(&mut rng) {
                let arrival = ctx.month_end + customer::late_delay(&mut rng);
                late.push(arrival, customer.idx, seq, event);
                continue;
            }
            if customer::duplicate(&mut rng) {
                batch.push(t, customer.idx, seq + 1, event.clone());
            }
            batch.push(t, customer.idx, seq, event);
        }
    }
    (batch, late)
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

/// Events encoded per round of `write_ndjson`.
const ENCODE_CHUNK: usize = 16_384;

fn encode_lines(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * 400);
    for event in events {
        out.extend_from_slice(&event.encode());
        out.push(b'\n');
    }
    out
}

/// Writes events as NDJSON (one `Event::encode()` per line, in the given order); returns how
/// many were written. Encoding runs on all cores, in chunks, so memory stays bounded.
pub fn write_ndjson<W: Write>(
    events: impl IntoIterator<Item = Event>,
    out: &mut W,
) -> io::Result<u64> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let mut events = events.into_iter();
    let mut chunk = Vec::with_capacity(ENCODE_CHUNK);
    let mut count = 0;
    loop {
        chunk.clear();
        chunk.extend(events.by_ref().take(ENCODE_CHUNK));
        if chunk.is_empty() {
            return Ok(count);
        }
        count += chunk.len() as u64;
        if threads == 1 || chunk.len() < 1024 {
            out.write_all(&encode_lines(&chunk))?;
            continue;
        }
        let part = chunk.len().div_ceil(threads);
        let encoded: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let workers: Vec<_> = chunk
                .chunks(part)
                .map(|events| scope.spawn(move || encode_lines(events)))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for lines in encoded {
            out.write_all(&lines)?;
        }
    }
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
