//! End-to-end properties of generated histories: every event round-trips through the strict
//! decoder, output is a pure function of the config, the deliberate dirt is there at about the
//! intended rates, the churn ground truth is consistent with what customers did, and the marks
//! a projector compares after every event are those of the full verdict.

use std::collections::{HashMap, HashSet};

use clientlog_demo::{write_ndjson, Config, Generator, Truth, YearMonth};
use clientlog_domain::event::ReassignReason;
use clientlog_domain::{evaluate, marks, CustomerState, Marks, Policies};
use clientlog_domain::{Event, EventData, EventType};

fn config(customers: u32, months: u32, seed: u64) -> Config {
    Config {
        customers,
        months,
        seed,
        start: Config::DEFAULT_START,
    }
}

fn ndjson(config: Config) -> Vec<u8> {
    let mut out = Vec::new();
    write_ndjson(Generator::new(config).expect("valid config"), &mut out).expect("in memory");
    out
}

fn month_of(event: &Event) -> YearMonth {
    YearMonth::new(event.time.year(), event.time.month() as u8).expect("in range")
}

/// One medium-sized history shared by the statistical tests.
fn history() -> (Vec<Event>, Vec<Truth>) {
    let mut generator = Generator::new(config(1500, 24, 42)).expect("valid config");
    let events: Vec<Event> = generator.by_ref().collect();
    let truth = generator.truth().collect();
    (events, truth)
}

#[test]
fn every_event_round_trips_through_the_strict_decoder() {
    let events: Vec<Event> = Generator::new(config(200, 12, 7))
        .expect("config")
        .collect();
    assert!(events.len() > 3000, "only {} events", events.len());
    let mut types = HashSet::new();
    for event in &events {
        let bytes = event.encode();
        let decoded = Event::decode(&bytes).unwrap_or_else(|e| {
            panic!("{e}\n{}", String::from_utf8_lossy(&bytes));
        });
        assert_eq!(&decoded, event);
        types.insert(event.event_type());
    }
    // Over a thousand customers and two years every type shows up.
    let wide: HashSet<EventType> = Generator::new(config(1000, 24, 8))
        .expect("config")
        .map(|e| e.event_type())
        .collect();
    assert_eq!(wide.len(), EventType::ALL.len(), "{wide:?}");
}

#[test]
fn the_same_seed_gives_identical_bytes_and_another_seed_does_not() {
    let a = ndjson(config(300, 6, 1));
    let b = ndjson(config(300, 6, 1));
    let c = ndjson(config(300, 6, 2));
    assert!(!a.is_empty());
    assert!(a == b, "same seed, different output");
    assert!(a != c, "different seeds, same output");
}

#[test]
fn output_does_not_depend_on_the_number_of_threads() {
    // Large enough that several worker threads are used.
    let feed = |threads| -> Vec<u8> {
        let generator = Generator::new(config(6000, 3, 9))
            .expect("config")
            .with_threads(threads);
        let mut out = Vec::new();
        write_ndjson(generator, &mut out).expect("in memory");
        out
    };
    assert!(feed(1) == feed(3));
}

#[test]
fn batches_and_iteration_give_the_same_feed() {
    let iterated: Vec<Event> = Generator::new(config(100, 6, 3)).expect("config").collect();
    let mut generator = Generator::new(config(100, 6, 3)).expect("config");
    let mut batched = Vec::new();
    while let Some(batch) = generator.next_batch() {
        batched.extend(batch);
    }
    assert_eq!(iterated, batched);
}

#[test]
fn registration_is_each_customers_first_event() {
    let (events, truth) = history();
    let mut first: HashMap<&str, &Event> = HashMap::new();
    let mut registrations: HashMap<&str, HashSet<_>> = HashMap::new();
    for event in &events {
        first.entry(event.subject.as_str()).or_insert(event);
        if event.event_type() == EventType::CustomerRegistered {
            registrations
                .entry(event.subject.as_str())
                .or_default()
                .insert(event.id);
        }
    }
    assert_eq!(first.len(), truth.len(), "every customer has events");
    for (customer, event) in first {
        assert_eq!(
            event.event_type(),
            EventType::CustomerRegistered,
            "{customer}"
        );
        assert_eq!(registrations[customer].len(), 1, "{customer}");
    }
}

#[test]
fn late_and_duplicate_events_appear_at_about_the_intended_rates() {
    let (events, _) = history();
    let n = events.len() as f64;
    let mut seen_ids = HashSet::new();
    let mut latest: HashMap<&str, time::OffsetDateTime> = HashMap::new();
    let mut feed_time = time::OffsetDateTime::UNIX_EPOCH;
    let (mut duplicates, mut late) = (0usize, 0usize);
    for event in &events {
        if !seen_ids.insert(event.id) {
            duplicates += 1;
            continue;
        }
        let latest = latest.entry(event.subject.as_str()).or_insert(event.time);
        if event.time < *latest {
            late += 1;
            continue;
        }
        *latest = event.time;
        // Apart from late arrivals, the feed interleaves customers in business-time order.
        assert!(event.time >= feed_time, "{event:?} before {feed_time}");
        feed_time = event.time;
    }
    let late_rate = late as f64 / n;
    let duplicate_rate = duplicates as f64 / n;
    assert!((0.003..0.008).contains(&late_rate), "late {late_rate}");
    assert!(
        (0.001..0.0035).contains(&duplicate_rate),
        "duplicates {duplicate_rate}"
    );
}

#[test]
fn duplicates_are_the_exact_same_event() {
    let (events, _) = history();
    let mut by_id: HashMap<_, &Event> = HashMap::new();
    let mut duplicates = 0;
    for event in &events {
        if let Some(previous) = by_id.insert(event.id, event) {
            assert_eq!(previous.encode(), event.encode());
            duplicates += 1;
        }
    }
    assert!(duplicates > 0);
}

#[test]
fn churned_customers_stop_buying_until_they_come_back() {
    let (events, truth) = history();
    let truth: HashMap<&str, &Truth> = truth.iter().map(|t| (t.customer_id.as_str(), t)).collect();
    let churned = truth.values().filter(|t| t.churned_at.is_some()).count();
    let reactivated = truth
        .values()
        .filter(|t| t.reactivated_at.is_some())
        .count();
    let share = churned as f64 / truth.len() as f64;
    assert!((0.05..0.4).contains(&share), "churned share {share}");
    assert!(reactivated > 0 && reactivated < churned);

    let mut bought_after_return = 0;
    for event in events
        .iter()
        .filter(|e| e.event_type() == EventType::PurchaseRecorded)
    {
        let t = truth[event.subject.as_str()];
        let Some(churned_at) = t.churned_at else {
            continue;
        };
        let month = month_of(event);
        match t.reactivated_at {
            Some(back) if month >= back => bought_after_return += 1,
            _ => assert!(
                month <= churned_at,
                "{} bought in {month} after churning in {churned_at}",
                event.subject
            ),
        }
    }
    assert!(bought_after_return > 0, "reactivated customers buy again");
}

#[test]
fn churn_follows_its_drivers() {
    let (events, truth) = history();
    let churned: HashSet<&str> = truth
        .iter()
        .filter(|t| t.churned_at.is_some())
        .map(|t| t.customer_id.as_str())
        .collect();
    let all: HashSet<&str> = truth.iter().map(|t| t.customer_id.as_str()).collect();
    let mut turnover = HashSet::new();
    let mut filed = HashSet::new();
    let mut resolved = HashSet::new();
    for event in &events {
        match &event.data {
            EventData::CustomerReassigned(r) if r.reason == ReassignReason::StaffTurnover => {
                turnover.insert(event.subject.as_str());
            }
            EventData::ComplaintFiled(c) => {
                filed.insert((event.subject.as_str(), c.complaint_id.as_str()));
            }
            EventData::ComplaintResolved(c) => {
                resolved.insert((event.subject.as_str(), c.complaint_id.as_str()));
            }
            _ => {}
        }
    }
    let unresolved: HashSet<&str> = filed.difference(&resolved).map(|(c, _)| *c).collect();
    let churn_rate = |group: &HashSet<&str>, inside: bool| {
        let members: Vec<&&str> = all
            .iter()
            .filter(|c| group.contains(*c) == inside)
            .collect();
        let n = members.len().max(1) as f64;
        members.iter().filter(|c| churned.contains(**c)).count() as f64 / n
    };
    assert!(turnover.len() > 20 && unresolved.len() > 20);
    let (with, without) = (churn_rate(&turnover, true), churn_rate(&turnover, false));
    assert!(with > 1.2 * without, "staff turnover: {with} vs {without}");
    let (with, without) = (
        churn_rate(&unresolved, true),
        churn_rate(&unresolved, false),
    );
    assert!(
        with > 1.2 * without,
        "unresolved complaint: {with} vs {without}"
    );
}

#[test]
fn one_currency_per_customer_mostly_cny() {
    let (events, _) = history();
    let mut currency: HashMap<&str, &str> = HashMap::new();
    let mut cny = 0;
    let mut purchases = 0;
    for event in &events {
        if let EventData::PurchaseRecorded(p) = &event.data {
            let code = p.amount.currency.as_str();
            let first = *currency.entry(event.subject.as_str()).or_insert(code);
            assert_eq!(first, code, "{}", event.subject);
            purchases += 1;
            cny += usize::from(code == "CNY");
        }
    }
    let share = cny as f64 / purchases as f64;
    assert!((0.6..0.95).contains(&share), "CNY share {share}");
}

#[test]
fn truth_csv_has_a_row_per_customer() {
    let mut generator = Generator::new(config(50, 12, 5)).expect("config");
    generator.by_ref().for_each(drop);
    let mut csv = Vec::new();
    clientlog_demo::write_truth_csv(generator.truth(), &mut csv).expect("in memory");
    let csv = String::from_utf8(csv).expect("utf-8");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("customer_id,churned_at,reactivated_at"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 50);
    assert!(rows[0].starts_with("CUST-000001,"));
}

#[test]
fn bad_configs_are_refused() {
    assert!(Generator::new(config(0, 12, 1)).is_err());
    assert!(Generator::new(config(10, 0, 1)).is_err());
    assert!(YearMonth::parse("2024-13").is_err());
    assert!(YearMonth::parse("24-01").is_err());
    assert_eq!(
        YearMonth::parse("2024-11")
            .expect("valid")
            .plus(3)
            .to_string(),
        "2025-02"
    );
}

#[test]
fn marks_are_those_of_the_full_verdict_after_every_event() {
    let policies = Policies::defaults();
    let mut states: HashMap<String, CustomerState> = HashMap::new();
    let mut seen = HashSet::new();
    let mut checked = 0;
    for event in Generator::new(config(300, 36, 11)).expect("config") {
        let state = states
            .entry(event.subject.as_str().to_string())
            .or_default();
        state.apply(&event);
        // At the event's own time, and long after (silence, lapsed contracts, churn).
        for as_of in [
            event.time.unix_timestamp(),
            event.time.unix_timestamp() + 400 * 86_400,
        ] {
            let verdict = evaluate(state, &policies, as_of);
            assert_eq!(
                marks(state, &policies, as_of),
                Marks::of(&verdict),
                "customer {} at {as_of}",
                event.subject.as_str()
            );
            seen.insert((verdict.grade, verdict.stage, verdict.risk_band));
            checked += 1;
        }
    }
    assert!(checked > 10_000, "{checked} verdicts checked");
    // The history reaches most of the marks' values, not one corner of them.
    assert!(
        seen.len() >= 20,
        "{} combinations of marks seen",
        seen.len()
    );
}
