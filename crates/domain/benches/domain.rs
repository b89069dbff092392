//! The domain's speed targets (issue 2): decode + validate ≥ 400 000 events/s for typical
//! ~400-byte events (beside `serde_json::Value` parsing of the same bytes, the limit of any
//! JSON decoder), apply ≥ 5 000 000 events/s, evaluate ≥ 1 000 000 customers/s, on one core;
//! and the state size of a typical customer (≤ 1 KiB), printed before the benchmarks.
//!
//! `cargo bench -p clientlog-domain --bench domain -- --warm-up-time 1 --measurement-time 3`

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use clientlog_domain::event::{EventData, InteractionLogged};
use clientlog_domain::values::{Personal, Text};
use clientlog_domain::{evaluate, CustomerState, Event, Policies};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The events of 100 typical customers, as wire bytes: purchases and interactions (with a
/// summary, as reps write them) with the `actor` extension, plus the rarer types.
fn wire_events() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in 0..100 {
        for mut event in common::typical_customer(n).events {
            event.actor = Some(clientlog_domain::values::Actor::parse("rep:alice").unwrap());
            if let EventData::InteractionLogged(InteractionLogged { summary, .. }) = &mut event.data
            {
                *summary = Some(Personal(
                    Text::parse(
                        "Visited the buyer; discussed the spring order and delivery dates.",
                    )
                    .unwrap(),
                ));
            }
            out.push(event.encode());
        }
    }
    out
}

fn report_state_size() {
    let b = common::typical_customer(7);
    let state = b.state();
    let inline = std::mem::size_of::<CustomerState>();
    let (heap, allocations) = common::state_heap_bytes(&state);
    println!(
        "state of a typical customer ({} events): {inline} B inline + {heap} B heap in \
         {allocations} allocations = {} B (+ ~16 B allocator overhead per allocation)",
        b.events.len(),
        inline + heap
    );
}

fn decode(c: &mut Criterion) {
    let events = wire_events();
    let bytes: usize = events.iter().map(Vec::len).sum();
    println!(
        "decode: {} events, {:.0} bytes each on average",
        events.len(),
        bytes as f64 / events.len() as f64
    );
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("Event::decode", |b| {
        b.iter(|| {
            for e in &events {
                black_box(Event::decode(black_box(e)).unwrap());
            }
        })
    });
    g.bench_function("serde_json::Value (limit)", |b| {
        b.iter(|| {
            for e in &events {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(e)).unwrap());
            }
        })
    });
    g.finish();
}

fn apply(c: &mut Criterion) {
    // One customer's history, in business-time order as a projector sees it.
    let mut events = common::typical_customer(3).events;
    events.sort_by_key(|e| e.time);
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("CustomerState::apply", |b| {
        b.iter(|| {
            let mut state = CustomerState::default();
            for e in &events {
                state.apply(black_box(e));
            }
            black_box(state)
        })
    });
    g.finish();
}

fn evaluate_customers(c: &mut Criterion) {
    let policies = Policies::defaults();
    let states: Vec<CustomerState> = (0..1000)
        .map(|n| common::typical_customer(n).state())
        .collect();
    let as_of = common::noon("2026-03-15");
    let mut g = c.benchmark_group("evaluate");
    g.throughput(Throughput::Elements(states.len() as u64));
    g.bench_function("evaluate", |b| {
        b.iter(|| {
            for s in &states {
                black_box(evaluate(black_box(s), &policies, as_of));
            }
        })
    });
    g.finish();
}

/// Nanoseconds this thread has run on a CPU (Linux), so that the rates below hold for one
/// core even while other processes compete for it; criterion's figures are wall-clock.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Items per second of on-CPU time of `run`, which handles `items` items per call.
fn per_cpu_second(items: usize, mut run: impl FnMut()) -> Option<f64> {
    let start = thread_cpu_ns()?;
    let mut calls = 0;
    while thread_cpu_ns()? - start < 2_000_000_000 {
        run();
        calls += 1;
    }
    let spent = (thread_cpu_ns()? - start) as f64 / 1e9;
    Some((calls * items) as f64 / spent)
}

fn size_and_cpu_time(_: &mut Criterion) {
    report_state_size();
    let events = wire_events();
    let mut history = common::typical_customer(3).events;
    history.sort_by_key(|e| e.time);
    let policies = Policies::defaults();
    let states: Vec<CustomerState> = (0..1000)
        .map(|n| common::typical_customer(n).state())
        .collect();
    let as_of = common::noon("2026-03-15");
    let rates = [
        (
            "decode (Event::decode)",
            per_cpu_second(events.len(), || {
                for e in &events {
                    black_box(Event::decode(black_box(e)).unwrap());
                }
            }),
        ),
        (
            "decode limit (serde_json::Value)",
            per_cpu_second(events.len(), || {
                for e in &events {
                    black_box(serde_json::from_slice::<serde_json::Value>(black_box(e)).unwrap());
                }
            }),
        ),
        (
            "apply",
            per_cpu_second(history.len(), || {
                let mut state = CustomerState::default();
                for e in &history {
                    state.apply(black_box(e));
                }
                black_box(state);
            }),
        ),
        (
            "evaluate",
            per_cpu_second(states.len(), || {
                for s in &states {
                    black_box(evaluate(black_box(s), &policies, as_of));
                }
            }),
        ),
    ];
    for (name, rate) in rates {
        match rate {
            Some(rate) => println!("{name}: {:.0} per CPU-second", rate),
            None => println!("{name}: no per-thread CPU clock on this system"),
        }
    }
}

criterion_group!(
    benches,
    size_and_cpu_time,
    decode,
    apply,
    evaluate_customers
);
criterion_main!(benches);
