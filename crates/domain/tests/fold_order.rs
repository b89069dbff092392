//! Property tests of the fold: late events (business time older than events already applied)
//! give the same verdict as in-order arrival wherever the quantity is order-free, and every
//! event survives `decode(encode(x))`.
//!
//! The history generator is restricted where a quantity is order-dependent by design:
//! - one currency: the account currency is that of the first purchase *applied*;
//! - distinct business times: "the latest assessment wins" keeps the one applied last on a tie;
//! - no escalations, renewals or terminations, no reassignments: they refer to an earlier event
//!   (the complaint, the contract, the current owner) and are reported as anomalies when they
//!   arrive before it, unlike resolutions, which wait for their complaint (`OrphanResolution`).
//! - at most 8 contracts and 8 complaints, so that nothing is dropped to keep the state bounded;
//! - 500 days of business time, within the purchase-day bitmap (see `SPAN_DAYS`).

mod common;

use clientlog_domain::calendar::SECONDS_PER_DAY;
use clientlog_domain::event::{
    AssessmentRecorded, ComplaintEscalated, ComplaintFiled, ComplaintResolved, ContractRenewed,
    ContractSigned, ContractTerminated, CustomerReassigned, CustomerRegistered, Direction,
    EventData, InteractionKind, InteractionLogged, ProfileUpdated, PurchaseRecorded,
    ReassignReason, Severity,
};
use clientlog_domain::values::{
    Actor, CustomerId, Ident, Label, Percent, Personal, Sentiment, Source, Text, Units,
};
use clientlog_domain::{evaluate, Event, EventId, Policies};
use common::{fold, ident, money, noon};
use proptest::prelude::*;
use time::{Date, OffsetDateTime, UtcOffset};

/// Business times span 500 days from here: purchase days more than `BITMAP_DAYS` (512) before
/// the latest purchase are counted without telling a repeated day apart (see `PurchaseDays`),
/// so a late purchase on such a day is the one place where distinct purchase days depend on
/// arrival order.
const SPAN_DAYS: i64 = 500;

fn start() -> i64 {
    noon("2024-01-01")
}

#[derive(Debug, Clone)]
enum Spec {
    Purchase {
        day: i64,
        minor: u64,
    },
    Interaction {
        day: i64,
        sentiment: Option<i64>,
    },
    Complaint {
        day: i64,
        severity: Severity,
        /// Days until resolved, and whether the customer was satisfied.
        resolved: Option<(i64, Option<bool>)>,
    },
    Assessment {
        day: i64,
        coverage: Option<i64>,
        prospects: Option<i64>,
    },
    Contract {
        day: i64,
        starts_in: i64,
        length: i64,
        auto_renew: bool,
    },
}

fn severity() -> impl Strategy<Value = Severity> {
    prop_oneof![
        Just(Severity::Low),
        Just(Severity::Medium),
        Just(Severity::High),
        Just(Severity::Critical)
    ]
}

fn day() -> impl Strategy<Value = i64> {
    0..SPAN_DAYS
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        6 => (day(), 1..5_000_000u64).prop_map(|(day, minor)| Spec::Purchase { day, minor }),
        4 => (day(), proptest::option::of(-2..=2i64))
            .prop_map(|(day, sentiment)| Spec::Interaction { day, sentiment }),
        1 => (day(), severity(), proptest::option::of((0..60i64, proptest::option::of(any::<bool>()))))
            .prop_map(|(day, severity, resolved)| Spec::Complaint { day, severity, resolved }),
        1 => (day(), proptest::option::of(0..=100i64), 0..=100i64, any::<bool>())
            .prop_map(|(day, coverage, p, with_p)| Spec::Assessment {
                day,
                coverage,
                // At least one of the two is present.
                prospects: (with_p || coverage.is_none()).then_some(p),
            }),
        1 => (day(), 0..60i64, 0..500i64, any::<bool>()).prop_map(
            |(day, starts_in, length, auto_renew)| Spec::Contract { day, starts_in, length, auto_renew }
        ),
    ]
}

/// The events of a history, with distinct business times (the spec's index is added in seconds).
fn events(specs: &[Spec]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut push = |at: i64, data: EventData| {
        let id = out.len() as u128 + 1;
        out.push(Event {
            id: EventId(uuid::Uuid::from_u128(id)),
            source: Source::parse("/test").unwrap(),
            subject: CustomerId::parse("CUST-1").unwrap(),
            time: OffsetDateTime::from_unix_timestamp(at).unwrap(),
            actor: None,
            data,
        });
    };
    let date_of = |day: i64| {
        OffsetDateTime::from_unix_timestamp(start() + day * SECONDS_PER_DAY)
            .unwrap()
            .date()
    };
    push(
        start(),
        EventData::CustomerRegistered(CustomerRegistered {
            name: Personal(Text::parse("Customer").unwrap()),
            segment: None,
            region: None,
            channel: None,
            owner: Some(ident("rep-a")),
        }),
    );
    let (mut complaints, mut contracts) = (0, 0);
    for (i, spec) in specs.iter().enumerate() {
        let at = |day: i64| start() + day * SECONDS_PER_DAY + 1 + i as i64;
        match spec.clone() {
            Spec::Purchase { day, minor } => push(
                at(day),
                EventData::PurchaseRecorded(PurchaseRecorded {
                    order_id: ident(&format!("SO-{i}")),
                    amount: money(minor, "CNY"),
                    units: None,
                }),
            ),
            Spec::Interaction { day, sentiment } => push(
                at(day),
                EventData::InteractionLogged(InteractionLogged {
                    interaction_id: ident(&format!("I-{i}")),
                    kind: InteractionKind::Visit,
                    direction: None,
                    rep: None,
                    summary: None,
                    sentiment: sentiment.map(|s| Sentiment::new(s).unwrap()),
                }),
            ),
            Spec::Complaint {
                day,
                severity,
                resolved,
            } => {
                if complaints == 8 {
                    continue;
                }
                complaints += 1;
                let id = ident(&format!("C-{i}"));
                push(
                    at(day),
                    EventData::ComplaintFiled(ComplaintFiled {
                        complaint_id: id.clone(),
                        severity,
                        category: None,
                        summary: None,
                    }),
                );
                if let Some((after, satisfied)) = resolved {
                    push(
                        at(day + after) + 1,
                        EventData::ComplaintResolved(ComplaintResolved {
                            complaint_id: id,
                            resolution: None,
                            satisfied,
                        }),
                    );
                }
            }
            Spec::Assessment {
                day,
                coverage,
                prospects,
            } => push(
                at(day),
                EventData::AssessmentRecorded(AssessmentRecorded {
                    coverage: coverage.map(|v| Percent::new(v).unwrap()),
                    prospects: prospects.map(|v| Percent::new(v).unwrap()),
                    note: None,
                }),
            ),
            Spec::Contract {
                day,
                starts_in,
                length,
                auto_renew,
            } => {
                if contracts == 8 {
                    continue;
                }
                contracts += 1;
                push(
                    at(day),
                    EventData::ContractSigned(ContractSigned {
                        contract_id: ident(&format!("K-{i}")),
                        value: money(1_000_000, "CNY"),
                        starts_on: date_of(day + starts_in),
                        ends_on: date_of(day + starts_in + length),
                        auto_renew: Some(auto_renew),
                    }),
                );
            }
        }
    }
    out
}

/// A history in business-time order and the same events in a random arrival order.
fn history() -> impl Strategy<Value = (Vec<Event>, Vec<Event>)> {
    proptest::collection::vec(spec(), 0..80).prop_flat_map(|specs| {
        let mut sorted = events(&specs);
        sorted.sort_by_key(|e| e.time);
        let shuffled = Just(sorted.clone()).prop_shuffle();
        (Just(sorted), shuffled)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn late_events_give_the_in_order_verdict((sorted, shuffled) in history()) {
        let policies = Policies::defaults();
        let (in_order, late) = (fold(&sorted), fold(&shuffled));
        // Inside the history, at its end, and after it (windows sliding past the events).
        for as_of_day in [200, 400, 600, SPAN_DAYS + 1, SPAN_DAYS + 100, SPAN_DAYS + 400] {
            let as_of = start() + as_of_day * SECONDS_PER_DAY;
            prop_assert_eq!(
                evaluate(&in_order, &policies, as_of),
                evaluate(&late, &policies, as_of),
                "as_of day {}", as_of_day
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// decode(encode(x)) == x

fn ident_s() -> impl Strategy<Value = Ident> {
    "[A-Za-z0-9._:-]{1,64}".prop_map(|s| Ident::parse(&s).unwrap())
}

/// Free text, Unicode included; blank strings are not texts.
fn text(max: usize) -> impl Strategy<Value = Text> {
    proptest::string::string_regex(&format!("[\\PC\\n\\t\"\\\\]{{1,{max}}}"))
        .unwrap()
        .prop_filter_map("a text", |s| Text::parse(&s).ok())
}

fn label() -> impl Strategy<Value = Label> {
    "\\PC{1,64}".prop_filter_map("a label", |s| Label::parse(&s).ok())
}

fn currency_money() -> impl Strategy<Value = clientlog_domain::Money> {
    (
        0..=i64::MAX as u64,
        prop_oneof![Just("CNY"), Just("EUR"), Just("USD"), Just("JPY")],
    )
        .prop_map(|(minor, c)| money(minor, c))
}

fn a_date() -> impl Strategy<Value = Date> {
    (-3650..36_500i32).prop_map(|d| Date::from_julian_day(2_460_000 + d).unwrap())
}

fn opt<T: std::fmt::Debug>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(s)
}

fn data() -> impl Strategy<Value = EventData> {
    let kind = prop_oneof![
        Just(InteractionKind::Visit),
        Just(InteractionKind::Call),
        Just(InteractionKind::Meeting),
        Just(InteractionKind::Email),
        Just(InteractionKind::Demo),
        Just(InteractionKind::Event),
        Just(InteractionKind::Support),
        Just(InteractionKind::Other),
    ];
    let direction = prop_oneof![Just(Direction::Inbound), Just(Direction::Outbound)];
    let reason = prop_oneof![
        Just(ReassignReason::StaffTurnover),
        Just(ReassignReason::Territory),
        Just(ReassignReason::Workload),
        Just(ReassignReason::CustomerRequest),
        Just(ReassignReason::Other),
    ];
    prop_oneof![
        (
            text(200),
            opt(label()),
            opt(label()),
            opt(label()),
            opt(ident_s())
        )
            .prop_map(|(name, segment, region, channel, owner)| {
                EventData::CustomerRegistered(CustomerRegistered {
                    name: Personal(name),
                    segment,
                    region,
                    channel,
                    owner,
                })
            }),
        (opt(text(200)), opt(label()), opt(label()), label()).prop_map(
            |(name, segment, region, channel)| EventData::ProfileUpdated(ProfileUpdated {
                name: name.map(Personal),
                segment,
                region,
                // At least one field.
                channel: Some(channel),
            })
        ),
        (
            ident_s(),
            kind,
            opt(direction),
            opt(ident_s()),
            opt(text(500)),
            opt(-2..=2i64)
        )
            .prop_map(
                |(interaction_id, kind, direction, rep, summary, sentiment)| {
                    EventData::InteractionLogged(InteractionLogged {
                        interaction_id,
                        kind,
                        direction,
                        rep,
                        summary: summary.map(Personal),
                        sentiment: sentiment.map(|s| Sentiment::new(s).unwrap()),
                    })
                }
            ),
        (ident_s(), currency_money(), opt(1..=1_000_000_000i64)).prop_map(
            |(order_id, amount, units)| EventData::PurchaseRecorded(PurchaseRecorded {
                order_id,
                amount,
                units: units.map(|u| Units::new(u).unwrap()),
            })
        ),
        (
            ident_s(),
            currency_money(),
            a_date(),
            0..4000i64,
            opt(any::<bool>())
        )
            .prop_map(|(contract_id, value, starts_on, length, auto_renew)| {
                EventData::ContractSigned(ContractSigned {
                    contract_id,
                    value,
                    starts_on,
                    ends_on: starts_on + time::Duration::days(length),
                    auto_renew,
                })
            }),
        (ident_s(), a_date(), opt(currency_money())).prop_map(|(contract_id, ends_on, value)| {
            EventData::ContractRenewed(ContractRenewed {
                contract_id,
                ends_on,
                value,
            })
        }),
        (ident_s(), a_date(), opt(text(300))).prop_map(|(contract_id, effective_on, reason)| {
            EventData::ContractTerminated(ContractTerminated {
                contract_id,
                effective_on,
                reason,
            })
        }),
        (ident_s(), severity(), opt(label()), opt(text(300))).prop_map(
            |(complaint_id, severity, category, summary)| {
                EventData::ComplaintFiled(ComplaintFiled {
                    complaint_id,
                    severity,
                    category,
                    summary: summary.map(Personal),
                })
            }
        ),
        (ident_s(), opt(severity())).prop_map(|(complaint_id, severity)| {
            EventData::ComplaintEscalated(ComplaintEscalated {
                complaint_id,
                severity,
            })
        }),
        (ident_s(), opt(text(300)), opt(any::<bool>())).prop_map(
            |(complaint_id, resolution, satisfied)| {
                EventData::ComplaintResolved(ComplaintResolved {
                    complaint_id,
                    resolution: resolution.map(Personal),
                    satisfied,
                })
            }
        ),
        (opt(ident_s()), ident_s(), reason).prop_map(|(from_rep, to_rep, reason)| {
            EventData::CustomerReassigned(CustomerReassigned {
                from_rep,
                to_rep,
                reason,
            })
        }),
        (opt(0..=100i64), 0..=100i64, opt(text(300))).prop_map(|(coverage, prospects, note)| {
            EventData::AssessmentRecorded(AssessmentRecorded {
                coverage: coverage.map(|v| Percent::new(v).unwrap()),
                prospects: Some(Percent::new(prospects).unwrap()),
                note: note.map(Personal),
            })
        }),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (
        any::<u128>(),
        "/[a-z/]{0,30}",
        ident_s(),
        // 1900..2100, with an offset of up to ±18 hours in whole minutes and sub-second digits.
        (
            -2_208_988_800i64..4_102_444_800,
            0..1_000_000_000u32,
            -1080..=1080i32,
        ),
        opt("(rep|system):[a-z0-9._-]{1,20}"),
        data(),
    )
        .prop_map(
            |(id, source, subject, (secs, nanos, minutes), actor, data)| {
                let offset = UtcOffset::from_whole_seconds(minutes * 60).unwrap();
                let time = OffsetDateTime::from_unix_timestamp(secs)
                    .unwrap()
                    .replace_nanosecond(nanos)
                    .unwrap()
                    .to_offset(offset);
                Event {
                    id: EventId(uuid::Uuid::from_u128(id)),
                    source: Source::parse(&source).unwrap(),
                    subject: CustomerId::parse(subject.as_str()).unwrap(),
                    time,
                    actor: actor.map(|a| Actor::parse(&a).unwrap()),
                    data,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_of_encode_is_identity(event in event()) {
        let bytes = event.encode();
        let decoded = Event::decode(&bytes);
        prop_assert_eq!(decoded.as_ref(), Ok(&event), "{}", String::from_utf8_lossy(&bytes));
        // And the offset the producer wrote is kept, not only the instant.
        prop_assert_eq!(decoded.unwrap().time.offset(), event.time.offset());
    }
}
