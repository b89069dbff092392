//! Each grading, lifecycle and churn rule of `projections/*.toml`, with expectations computed by
//! hand from the shipped policies (the arithmetic is in the comment beside each number).
//!
//! Unless a test says otherwise the verdict is taken at noon UTC on 2026-03-15, so "the last 3
//! complete months" are Dec 2025, Jan and Feb 2026 and "the 3 before" are Sep, Oct, Nov 2025.

mod common;

use clientlog_domain::event::{ReassignReason, Severity};
use clientlog_domain::policy::Factor;
use clientlog_domain::verdict::{
    FactorDetail, FactorScore, ReasonDetail, RiskFactor, RiskReason, StageRule,
};
use clientlog_domain::{evaluate, CustomerState, Grade, Policies, RiskBand, Stage, Verdict};
use common::{day, ident, noon, Builder};

const AS_OF: &str = "2026-03-15";

fn factor(v: &Verdict, f: Factor) -> &FactorScore {
    v.factors.iter().find(|s| s.factor == f).unwrap()
}

fn reasons(v: &Verdict, f: RiskFactor) -> Vec<&RiskReason> {
    v.risk_reasons.iter().filter(|r| r.factor == f).collect()
}

fn reason(v: &Verdict, f: RiskFactor) -> &RiskReason {
    match reasons(v, f).as_slice() {
        [one] => one,
        other => panic!("expected one {f:?} reason, found {other:?} in {v:#?}"),
    }
}

fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{actual} is not {expected}"
    );
}

/// The reported shares add up to the risk (to the cent, as both are rounded to 2 decimals).
fn assert_reasons_add_up(v: &Verdict) {
    let sum: f64 = v.risk_reasons.iter().map(|r| r.points).sum();
    assert_close((sum * 100.0).round() / 100.0, v.risk);
}

/// A customer who never bought: the first reason is always "never bought" with 30 points, so
/// every later factor takes its share of the remaining 70 % (risk = 100 × (1 − Π(1 − p/100))).
fn prospect() -> Builder {
    let mut b = Builder::new();
    b.registered("2025-06-01", Some("rep-a"));
    b
}

// ---------------------------------------------------------------------------------------------
// Grade factors

#[test]
fn monthly_sales_average_the_last_three_complete_months_against_the_target() {
    let mut b = Builder::new();
    b.buy("2025-12-10", 3_000_000)
        .buy("2026-01-10", 2_000_000)
        .buy("2026-02-10", 4_000_000)
        // The as_of month is not complete: not counted.
        .buy("2026-03-10", 9_000_000);
    let v = b.verdict(AS_OF);
    let f = factor(&v, Factor::MonthlySales);
    // (3 000 000 + 2 000 000 + 4 000 000) / 3 = 3 000 000 a month.
    assert_eq!(f.raw, Some(3_000_000.0));
    // 100 × 3 000 000 / 5 000 000 (CNY target) = 60.
    assert_close(f.sub_score, 60.0);
    assert_eq!(f.weight, 50);
    // 60 × 50 / 100 = 30.
    assert_close(f.contribution, 30.0);
    assert!(matches!(
        f.detail,
        FactorDetail::MonthlySales {
            months: 3,
            target_minor: Some(5_000_000),
            ..
        }
    ));
}

#[test]
fn monthly_sales_above_the_target_score_100() {
    let mut b = Builder::new();
    b.buy("2026-01-10", 18_000_000);
    let f = factor(&b.verdict(AS_OF), Factor::MonthlySales).clone();
    // 18 000 000 / 3 = 6 000 000 a month; 100 × 6 000 000 / 5 000 000 = 120, capped at 100.
    assert_eq!(f.raw, Some(6_000_000.0));
    assert_close(f.sub_score, 100.0);
    // 100 × 50 / 100 = 50.
    assert_close(f.contribution, 50.0);
}

#[test]
fn monthly_sales_in_a_currency_without_a_target_score_0_and_say_why() {
    let mut b = Builder::new();
    b.purchase("2026-01-10", 300_000, "GBP");
    let f = factor(&b.verdict(AS_OF), Factor::MonthlySales).clone();
    // 300 000 / 3 = 100 000 a month, but grading.toml has no GBP target.
    assert_eq!(f.raw, Some(100_000.0));
    assert_close(f.sub_score, 0.0);
    assert!(f
        .detail
        .to_string()
        .contains("no monthly sales target for GBP"));
}

#[test]
fn a_customer_with_no_purchases() {
    let v = prospect().verdict(AS_OF);
    let sales = factor(&v, Factor::MonthlySales);
    assert_eq!(sales.raw, None);
    assert_close(sales.sub_score, 0.0);
    let growth = factor(&v, Factor::SalesGrowth);
    // Nothing in either window: no_sales_score = 0.
    assert_eq!(growth.raw, None);
    assert_close(growth.sub_score, 0.0);
    let loyalty = factor(&v, Factor::Loyalty);
    // No tenure (0), no active month (0), clean complaint history (20) = 20.
    assert_close(loyalty.sub_score, 20.0);
    // 0 + 0 + 50 × 10 / 100 (coverage default) + 20 × 10 / 100 + 50 × 10 / 100 = 12 → E.
    assert_close(v.score, 12.0);
    assert_eq!(v.grade, Grade::E);
    // Prospect since the first event (the registration).
    assert_eq!(v.stage, Stage::Prospect);
    assert_eq!(v.stage_since, day("2025-06-01"));
    assert_eq!(v.stage_rule, StageRule::NeverBought);
    // The only risk reason: never bought, 30 points.
    assert_eq!(v.risk_reasons.len(), 1);
    assert_close(reason(&v, RiskFactor::NeverBought).points, 30.0);
    assert_close(v.risk, 30.0);
    assert_eq!(v.risk_band, RiskBand::Medium);

    // With no event at all the prospect stage starts on the as_of day.
    let empty = evaluate(
        &CustomerState::default(),
        &Policies::defaults(),
        noon(AS_OF),
    );
    assert_eq!(empty.stage, Stage::Prospect);
    assert_eq!(empty.stage_since, day(AS_OF));
    assert_close(empty.score, 12.0);
}

/// Sales of `earlier` per month in Sep–Nov 2025 and `recent` per month in Dec 2025–Feb 2026.
fn growth_of(earlier: u64, recent: u64) -> FactorScore {
    let mut b = Builder::new();
    for month in ["2025-09", "2025-10", "2025-11"] {
        if earlier > 0 {
            b.buy(&format!("{month}-15"), earlier);
        }
    }
    for month in ["2025-12", "2026-01", "2026-02"] {
        if recent > 0 {
            b.buy(&format!("{month}-15"), recent);
        }
    }
    factor(&b.verdict(AS_OF), Factor::SalesGrowth).clone()
}

#[test]
fn sales_growth_is_linear_between_floor_and_ceiling() {
    // Flat: growth 0 %; sub = (0 − (−50)) × 100 / (50 − (−50)) = 50; 50 × 20 / 100 = 10.
    let flat = growth_of(1_000_000, 1_000_000);
    assert_eq!(flat.raw, Some(0.0));
    assert_close(flat.sub_score, 50.0);
    assert_eq!(flat.weight, 20);
    assert_close(flat.contribution, 10.0);
    // 3 600 000 against 3 000 000: +20 %; sub = (20 + 50) × 100 / 100 = 70; 70 × 0.2 = 14.
    let up = growth_of(1_000_000, 1_200_000);
    assert_eq!(up.raw, Some(20.0));
    assert_close(up.sub_score, 70.0);
    assert_close(up.contribution, 14.0);
    assert!(matches!(
        up.detail,
        FactorDetail::SalesGrowth {
            recent_minor: 3_600_000,
            earlier_minor: 3_000_000,
            months: 3
        }
    ));
}

#[test]
fn sales_growth_is_clamped_at_the_floor_and_the_ceiling() {
    // 6 000 000 against 12 000 000: −50 %, exactly the floor → 0.
    let at_floor = growth_of(4_000_000, 2_000_000);
    assert_eq!(at_floor.raw, Some(-50.0));
    assert_close(at_floor.sub_score, 0.0);
    // 3 000 000 against 12 000 000: −75 %, below the floor → 0.
    let below = growth_of(4_000_000, 1_000_000);
    assert_eq!(below.raw, Some(-75.0));
    assert_close(below.sub_score, 0.0);
    // Nothing recent: −100 % → 0.
    let stopped = growth_of(4_000_000, 0);
    assert_eq!(stopped.raw, Some(-100.0));
    assert_close(stopped.sub_score, 0.0);
    // 18 000 000 against 6 000 000: +200 %, above the ceiling (50 %) → 100.
    let above = growth_of(2_000_000, 6_000_000);
    assert_eq!(above.raw, Some(200.0));
    assert_close(above.sub_score, 100.0);
    // +50 %: exactly the ceiling → (50 + 50) × 100 / 100 = 100.
    let at_ceiling = growth_of(2_000_000, 3_000_000);
    assert_eq!(at_ceiling.raw, Some(50.0));
    assert_close(at_ceiling.sub_score, 100.0);
}

#[test]
fn sales_growth_without_earlier_sales() {
    // Sales now, none in the 3 months before: new_sales_score = 100, no percentage.
    let new = growth_of(0, 1_000_000);
    assert_eq!(new.raw, None);
    assert_close(new.sub_score, 100.0);
    assert_close(new.contribution, 20.0);
    // No sales in either window (only a purchase long before): no_sales_score = 0.
    let mut b = Builder::new();
    b.buy("2025-01-15", 1_000_000);
    let none = factor(&b.verdict(AS_OF), Factor::SalesGrowth).clone();
    assert_eq!(none.raw, None);
    assert_close(none.sub_score, 0.0);
}

#[test]
fn coverage_and_prospects_default_to_50_when_never_assessed() {
    let v = prospect().verdict(AS_OF);
    for f in [Factor::ChannelCoverage, Factor::DevelopmentProspects] {
        let s = factor(&v, f);
        assert_eq!(s.raw, None);
        assert_close(s.sub_score, 50.0);
        assert_eq!(s.weight, 10);
        // 50 × 10 / 100 = 5.
        assert_close(s.contribution, 5.0);
        assert_eq!(s.detail, FactorDetail::Assessed { assessed_on: None });
    }
}

#[test]
fn coverage_and_prospects_come_from_the_latest_assessment_by_business_time() {
    let mut b = prospect();
    b.assess("2026-02-01", Some(30), None)
        // Arrives later but happened earlier: its coverage is superseded, its prospects are not.
        .assess("2026-01-10", Some(80), Some(90));
    let v = b.verdict(AS_OF);
    let coverage = factor(&v, Factor::ChannelCoverage);
    assert_eq!(coverage.raw, Some(30.0));
    assert_close(coverage.sub_score, 30.0);
    // 30 × 10 / 100 = 3.
    assert_close(coverage.contribution, 3.0);
    assert_eq!(
        coverage.detail,
        FactorDetail::Assessed {
            assessed_on: Some(day("2026-02-01"))
        }
    );
    let prospects = factor(&v, Factor::DevelopmentProspects);
    assert_eq!(prospects.raw, Some(90.0));
    // 90 × 10 / 100 = 9.
    assert_close(prospects.contribution, 9.0);
    assert_eq!(
        prospects.detail,
        FactorDetail::Assessed {
            assessed_on: Some(day("2026-01-10"))
        }
    );
}

#[test]
fn loyalty_adds_tenure_repeat_buying_and_complaint_history() {
    let mut b = Builder::new();
    // First purchase 1525 days before as_of: 1525 / 30.436875 = 50.10 months ≥ 36 → 40 points.
    b.buy("2022-01-10", 100)
        // Feb 2025 is 13 months back: outside the last 12 complete months.
        .buy("2025-02-10", 100);
    // Purchases in 6 of the 12 complete months Mar 2025–Feb 2026 → 40 × 6 / 12 = 20 points.
    for on in [
        "2025-04-03",
        "2025-05-03",
        "2025-06-03",
        "2025-06-20", // same month: still one active month
        "2025-09-03",
        "2025-10-03",
        "2026-02-03",
    ] {
        b.buy(on, 100);
    }
    // The as_of month does not count as an active month.
    b.buy("2026-03-03", 100);
    // Complaints filed in the last 12 complete months: high (10) + low (2) = 12; the high one was
    // resolved to the customer's dissatisfaction (+5, counted ever) → penalty 17.
    b.complaint("2025-11-05", "C-1", Severity::High)
        .resolve("2025-11-20", "C-1", Some(false))
        .complaint("2025-07-01", "C-2", Severity::Low)
        .resolve("2025-07-02", "C-2", Some(true))
        // Filed 13 months back, resolved satisfactorily: no penalty.
        .complaint("2025-02-20", "C-3", Severity::Critical)
        .resolve("2025-02-25", "C-3", Some(true))
        // Filed in the as_of month: not in the 12 complete months.
        .complaint("2026-03-02", "C-4", Severity::Medium);
    let v = b.verdict(AS_OF);
    let f = factor(&v, Factor::Loyalty);
    // 40 + 20 + (20 − 17) = 63.
    assert_eq!(f.raw, Some(63.0));
    assert_close(f.sub_score, 63.0);
    // 63 × 10 / 100 = 6.3.
    assert_close(f.contribution, 6.3);
    assert_eq!(
        f.detail,
        FactorDetail::Loyalty {
            tenure_months: 50.1,
            active_months: 6,
            complaint_penalty: 17.0,
        }
    );
}

#[test]
fn loyalty_tenure_is_proportional_and_the_complaint_part_stops_at_zero() {
    let mut b = Builder::new();
    // 365 days: 365 / 30.436875 = 11.992 months → 40 × 11.992 / 36 = 13.3245 points.
    // Mar 2025 is the oldest of the 12 complete months → 1 active month → 40 / 12 = 3.3333.
    b.buy("2025-03-15", 100);
    // 3 critical complaints in the last 12 months: 3 × 20 = 60 > 20 → 0 points, not −40.
    for (on, id) in [
        ("2025-05-01", "C-1"),
        ("2025-06-01", "C-2"),
        ("2025-07-01", "C-3"),
    ] {
        b.complaint(on, id, Severity::Critical);
    }
    let f = factor(&b.verdict(AS_OF), Factor::Loyalty).clone();
    // 13.3245 + 3.3333 + 0 = 16.6578 → 16.66.
    assert_eq!(f.raw, Some(16.66));
    assert_close(f.sub_score, 16.66);
    assert_eq!(
        f.detail,
        FactorDetail::Loyalty {
            tenure_months: 11.99,
            active_months: 1,
            complaint_penalty: 60.0,
        }
    );
}

/// A customer whose score is `monthly_sub / 2 + 27 + (coverage + prospects) / 10`:
/// first purchase in 2022 (tenure ≥ 36 months: 40 loyalty points), `monthly` in each of
/// Dec, Jan, Feb (3 active months: 40 × 3 / 12 = 10 points), no complaint (20 points) → loyalty
/// 70 → 7; nothing in Sep–Nov → growth is "new sales" = 100 → 20.
fn graded(monthly: u64, coverage: i64, prospects: i64) -> Verdict {
    let mut b = Builder::new();
    b.buy("2022-01-10", 1);
    for on in ["2025-12-10", "2026-01-10", "2026-02-10"] {
        b.buy(on, monthly);
    }
    b.assess("2026-03-01", Some(coverage), Some(prospects));
    b.verdict(AS_OF)
}

#[test]
fn grade_thresholds_are_inclusive_lower_bounds() {
    let cases = [
        // 100 / 2 + 27 + (70 + 60) / 10 = 90 → A.
        (5_000_000, 70, 60, 90.0, Grade::A),
        // 50 + 27 + 12.9 = 89.9 → B.
        (5_000_000, 70, 59, 89.9, Grade::B),
        // 100 × 4 800 000 / 5 000 000 = 96 → 48 + 27 = 75 → B.
        (4_800_000, 0, 0, 75.0, Grade::B),
        // 95.98 → 47.99 + 27 = 74.99 → C.
        (4_799_000, 0, 0, 74.99, Grade::C),
        // 66 → 33 + 27 = 60 → C.
        (3_300_000, 0, 0, 60.0, Grade::C),
        // 65.98 → 32.99 + 27 = 59.99 → D.
        (3_299_000, 0, 0, 59.99, Grade::D),
        // 46 → 23 + 27 = 50 → D.
        (2_300_000, 0, 0, 50.0, Grade::D),
        // 45.98 → 22.99 + 27 = 49.99 → E.
        (2_299_000, 0, 0, 49.99, Grade::E),
    ];
    for (monthly, coverage, prospects, score, grade) in cases {
        let v = graded(monthly, coverage, prospects);
        assert_close(v.score, score);
        assert_eq!(v.grade, grade, "score {score}");
        let sum: f64 = v.factors.iter().map(|f| f.contribution).sum();
        assert_close((sum * 100.0).round() / 100.0, v.score);
    }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

/// A purchase on the 1st of each month from `from` to `to` (inclusive), `YYYY-MM`.
fn monthly_buyer(b: &mut Builder, months: &[&str], amount: u64) {
    for m in months {
        b.buy(&format!("{m}-01"), amount);
    }
}

const MAR25_TO_MAR26: [&str; 13] = [
    "2025-03", "2025-04", "2025-05", "2025-06", "2025-07", "2025-08", "2025-09", "2025-10",
    "2025-11", "2025-12", "2026-01", "2026-02", "2026-03",
];

#[test]
fn developing_a_recent_first_buyer() {
    let mut b = Builder::new();
    b.buy("2026-02-01", 1_000);
    let v = b.verdict(AS_OF);
    // Silence 42 days < declining after max(2 × 60 (default gap), 45) = 120; tenure 42 < 180.
    assert_eq!(v.stage, Stage::Developing);
    assert_eq!(v.stage_since, day("2026-02-01"));
    assert_eq!(
        v.stage_rule,
        StageRule::EarlyBuyer {
            tenure_days: 42,
            purchase_days: 1
        }
    );
}

#[test]
fn established_after_180_days_and_4_purchase_days() {
    let mut b = Builder::new();
    monthly_buyer(&mut b, &MAR25_TO_MAR26, 1_000_000);
    let v = b.verdict(AS_OF);
    // Usual gap 365 / 12 = 30.42 days: declining after max(⌈60.83⌉, 45) = 61, silence 14.
    // Tenure 2025-03-01 → 2026-03-15 = 379 ≥ 180, 13 purchase days ≥ 4.
    assert_eq!(v.stage, Stage::Established);
    // 2025-03-01 + 180 days.
    assert_eq!(v.stage_since, day("2025-08-28"));
    assert_eq!(
        v.stage_rule,
        StageRule::TenureAndRepeat {
            tenure_days: 379,
            purchase_days: 13
        }
    );
    // Three purchase days are not enough.
    let mut few = Builder::new();
    few.buy("2025-03-01", 1)
        .buy("2025-12-01", 1)
        .buy("2026-03-01", 1);
    assert_eq!(few.verdict(AS_OF).stage, Stage::Developing);
}

#[test]
fn declining_when_overdue_against_the_usual_gap() {
    let mut b = Builder::new();
    monthly_buyer(&mut b, &MAR25_TO_MAR26[..10], 1_000_000); // Mar–Dec 2025
    let v = b.verdict(AS_OF);
    // Usual gap 275 / 9 = 30.56 days; declining after max(⌈61.11⌉, 45) = 62;
    // churned after clamp(⌈122.2⌉, 120, 365) = 123; silence 2025-12-01 → 2026-03-15 = 104.
    assert_eq!(v.stage, Stage::Declining);
    assert_eq!(
        v.stage_rule,
        StageRule::Overdue {
            silent_days: 104,
            threshold_days: 62
        }
    );
    // 2025-12-01 + 62 days.
    assert_eq!(v.stage_since, day("2026-02-01"));
}

#[test]
fn declining_when_sales_drop_by_half() {
    let drop_to = |recent: u64| {
        let mut b = Builder::new();
        monthly_buyer(&mut b, &MAR25_TO_MAR26[..6], 1_000_000); // Mar–Aug 2025
        monthly_buyer(&mut b, &MAR25_TO_MAR26[6..9], 1_000_000); // Sep–Nov
        monthly_buyer(&mut b, &MAR25_TO_MAR26[9..], recent); // Dec–Mar
        b.verdict(AS_OF)
    };
    // 1 200 000 against 3 000 000: a 60 % drop ≥ 50 %; silence 14 < 61.
    let v = drop_to(400_000);
    assert_eq!(v.stage, Stage::Declining);
    assert_eq!(
        v.stage_rule,
        StageRule::SalesDrop {
            drop_percent: 60.0,
            months: 3
        }
    );
    // Since the start of the recent window.
    assert_eq!(v.stage_since, day("2025-12-01"));
    // Exactly 50 %: declining.
    assert_eq!(drop_to(500_000).stage, Stage::Declining);
    // 1 530 000 against 3 000 000: 49 %: established.
    assert_eq!(drop_to(510_000).stage, Stage::Established);
}

#[test]
fn churned_when_silent_past_the_threshold() {
    let mut b = Builder::new();
    b.buy("2025-06-01", 1_000);
    // One purchase day: usual gap = default 60; churn threshold clamp(4 × 60, 120, 365) = 240.
    // Silence 2025-06-01 → 2026-03-15 = 287 ≥ 240.
    let v = b.verdict(AS_OF);
    assert_eq!(v.stage, Stage::Churned);
    assert_eq!(
        v.stage_rule,
        StageRule::SilentPastChurnThreshold {
            silent_days: 287,
            threshold_days: 240
        }
    );
    // 2025-06-01 + 240 days.
    assert_eq!(v.stage_since, day("2026-01-27"));
    // On the threshold day itself: churned since that day.
    let on = b.verdict("2026-01-27");
    assert_eq!(on.stage, Stage::Churned);
    assert_eq!(on.stage_since, day("2026-01-27"));
    // The day before: silence 239 ≥ 120 → declining since 2025-06-01 + 120 = 2025-09-29.
    let before = b.verdict("2026-01-26");
    assert_eq!(before.stage, Stage::Declining);
    assert_eq!(before.stage_since, day("2025-09-29"));
}

#[test]
fn reactivated_after_a_churn_length_silence_for_90_days() {
    let mut b = Builder::new();
    b.buy("2025-01-10", 1_000)
        .buy("2025-02-10", 1_000)
        .buy("2026-03-01", 1_000);
    // Usual gap (2026-03-01 − 2025-01-10) / 2 = 415 / 2 = 207.5; churn threshold
    // clamp(⌈830⌉, 120, 365) = 365; the last purchase ended a 384-day silence ≥ 365.
    let v = b.verdict(AS_OF);
    assert_eq!(v.stage, Stage::Reactivated);
    assert_eq!(v.stage_since, day("2026-03-01"));
    assert_eq!(
        v.stage_rule,
        StageRule::ReturnedAfterSilence {
            gap_days: 384,
            threshold_days: 365
        }
    );
    // 89 days after the return: still reactivated; 90 days after (2026-05-30): no longer.
    assert_eq!(b.verdict("2026-05-29").stage, Stage::Reactivated);
    let after = b.verdict("2026-05-30");
    // Silence 90 < max(⌈415⌉, 45); 3 purchase days < 4 → developing since the first purchase.
    assert_eq!(after.stage, Stage::Developing);
    assert_eq!(after.stage_since, day("2025-01-10"));
}

// ---------------------------------------------------------------------------------------------
// Churn risk

#[test]
fn silence_of_a_one_day_buyer_on_the_day_of_the_purchase() {
    let mut b = Builder::new();
    b.buy(AS_OF, 1_000);
    let v = b.verdict(AS_OF);
    // R = 0, x = 0, T = 0, f = 1:
    // z = −1.04 + 0.61 (single_day) − 0.23 × ln 2 = −0.5894; P = 1 / (1 + e^0.5894) = 0.35677.
    let r = reason(&v, RiskFactor::BuyingSilence);
    assert_close(r.points, 35.68);
    assert_eq!(
        r.detail,
        ReasonDetail::Silence {
            silent_days: 0,
            usual_gap_days: None,
            purchase_days: 1,
            recent_days: 1,
            recent_window_days: 90,
            probability: 0.36,
        }
    );
    assert_close(v.risk, 35.68);
    assert_eq!(v.risk_band, RiskBand::Medium);
}

#[test]
fn silence_of_a_regular_monthly_buyer() {
    let mut b = Builder::new();
    monthly_buyer(&mut b, &MAR25_TO_MAR26, 1_000_000);
    let v = b.verdict(AS_OF);
    // R = 14, x = 12, T = 379, g = 365 / 12 = 30.42, f = 3 (Jan 1, Feb 1, Mar 1 ≥ Dec 16):
    // z = −1.04 + 0.07 ln 15 − 1.22 ln 13 + 0.49 ln 380 + 0.30 ln(1 + 14 / 30.42) − 0.23 ln 4
    //   = −1.2743; P = 0.21853.
    let r = reason(&v, RiskFactor::BuyingSilence);
    assert_close(r.points, 21.85);
    assert_eq!(
        r.detail,
        ReasonDetail::Silence {
            silent_days: 14,
            usual_gap_days: Some(30.42),
            purchase_days: 13,
            recent_days: 3,
            recent_window_days: 90,
            probability: 0.22,
        }
    );
    assert_eq!(v.risk_reasons.len(), 1);
    assert_close(v.risk, 21.85);
    assert_eq!(v.risk_band, RiskBand::Low);
}

#[test]
fn silence_of_a_one_day_buyer_a_year_later_is_critical() {
    let mut b = Builder::new();
    b.buy("2025-03-15", 1_000);
    let v = b.verdict(AS_OF);
    // R = T = 365, x = 0, f = 0: z = −1.04 + 0.07 ln 366 + 0.49 ln 366 + 0.61 = 2.8755;
    // P = 0.94662.
    assert_close(reason(&v, RiskFactor::BuyingSilence).points, 94.66);
    assert_close(v.risk, 94.66);
    assert_eq!(v.risk_band, RiskBand::Critical);
}

#[test]
fn falling_purchases_weigh_up_to_5_points() {
    let with_recent = |recent: u64| {
        let mut b = Builder::new();
        monthly_buyer(&mut b, &MAR25_TO_MAR26[..9], 1_000_000); // Mar–Nov 2025
        monthly_buyer(&mut b, &MAR25_TO_MAR26[9..], recent); // Dec 2025–Mar 2026
        b.verdict(AS_OF)
    };
    // Same purchase days as the regular monthly buyer: silence P = 0.21853 → 21.85 first.
    // 1 200 000 against 3 000 000: 60 % drop → 5 × 0.6 = 3 alone; share (1 − 0.21853) × 3
    // = 2.344 → 2.34; risk 21.85 + 2.34 = 24.19.
    let v = with_recent(400_000);
    let r = reason(&v, RiskFactor::FallingPurchases);
    assert_close(r.points, 2.34);
    assert_eq!(
        r.detail,
        ReasonDetail::Falling {
            drop_percent: 60.0,
            months: 3
        }
    );
    assert_close(v.risk, 24.19);
    assert_reasons_add_up(&v);
    // A 20 % drop (2 400 000 against 3 000 000) counts: 5 × 0.2 = 1 alone → 0.78147 → 0.78.
    assert_close(
        reason(&with_recent(800_000), RiskFactor::FallingPurchases).points,
        0.78,
    );
    // A 19 % drop does not (2 430 000 against 3 000 000).
    assert!(reasons(&with_recent(810_000), RiskFactor::FallingPurchases).is_empty());
}

#[test]
fn open_complaints_by_severity_and_age() {
    let mut b = prospect();
    // High, open 5 days (deadline 7): 12 alone → 0.7 × 12 = 8.4.
    b.complaint("2026-03-10", "C-1", Severity::High);
    let v = b.verdict(AS_OF);
    let r = reason(&v, RiskFactor::OpenComplaint);
    assert_close(r.points, 8.4);
    assert_eq!(
        r.detail,
        ReasonDetail::Complaint {
            id: ident("C-1"),
            severity: Severity::High,
            open_days: 5,
            overdue_days: None,
        }
    );
    assert_eq!(r.detail.to_string(), "complaint C-1 (high) open 5 days");
    // Open exactly 7 days: on its deadline, not past it.
    let on_deadline = b.verdict("2026-03-17");
    assert_close(reason(&on_deadline, RiskFactor::OpenComplaint).points, 8.4);
    // Open 23 days: 16 past the deadline: 12 + 5 = 17 alone → 0.7 × 17 = 11.9.
    let late = b.verdict("2026-04-02");
    let r = reason(&late, RiskFactor::OpenComplaint);
    assert_close(r.points, 11.9);
    assert_eq!(
        r.detail.to_string(),
        "complaint C-1 (high) open 23 days, 16 past its resolution deadline"
    );
}

#[test]
fn open_complaint_points_per_severity() {
    // (severity, open points, deadline days); each open 3 days, so only critical is overdue.
    for (severity, alone) in [
        (Severity::Low, 3.0),
        (Severity::Medium, 6.0),
        (Severity::High, 12.0),
        // Critical: deadline 2 days, open 3 → 20 + 5.
        (Severity::Critical, 25.0),
    ] {
        let mut b = prospect();
        b.complaint("2026-03-12", "C-1", severity);
        let v = b.verdict(AS_OF);
        // 0.7 × alone.
        assert_close(reason(&v, RiskFactor::OpenComplaint).points, 0.7 * alone);
    }
}

#[test]
fn several_open_complaints_each_take_a_share() {
    let mut b = prospect();
    b.complaint("2026-03-10", "C-1", Severity::High)
        .complaint("2026-03-11", "C-2", Severity::Low);
    let v = b.verdict(AS_OF);
    let points: Vec<f64> = reasons(&v, RiskFactor::OpenComplaint)
        .iter()
        .map(|r| r.points)
        .collect();
    // 0.7 × 12 = 8.4; then 0.7 × 0.88 × 3 = 1.848 → 1.85.
    assert_eq!(points, [8.4, 1.85]);
    // 30 + 8.4 + 1.85 = 40.25 = 100 × (1 − 0.7 × 0.88 × 0.97) = 40.248.
    assert_close(v.risk, 40.25);
    assert_reasons_add_up(&v);
}

#[test]
fn a_resolved_or_escalated_complaint() {
    let mut b = prospect();
    b.complaint("2026-03-01", "C-1", Severity::Low)
        .escalate("2026-03-05", "C-1", Some(Severity::High))
        .complaint("2026-03-02", "C-2", Severity::Medium)
        .resolve("2026-03-03", "C-2", Some(true));
    let v = b.verdict(AS_OF);
    // C-2 is resolved; C-1 is now high, open 14 days (7 past its deadline): 17 alone → 11.9.
    let r = reason(&v, RiskFactor::OpenComplaint);
    assert_close(r.points, 11.9);
    assert!(matches!(
        r.detail,
        ReasonDetail::Complaint {
            severity: Severity::High,
            open_days: 14,
            overdue_days: Some(7),
            ..
        }
    ));
    // A satisfied resolution adds nothing.
    assert!(reasons(&v, RiskFactor::UnsatisfiedResolution).is_empty());
}

#[test]
fn unsatisfied_resolutions_of_the_last_six_complete_months() {
    let with_resolution_on = |on: &str| {
        let mut b = prospect();
        b.complaint("2025-08-01", "C-1", Severity::Low)
            .resolve(on, "C-1", Some(false));
        b.verdict(AS_OF)
    };
    // Sep 2025 is the oldest of the 6 complete months: 4 alone → 0.7 × 4 = 2.8.
    let v = with_resolution_on("2025-09-10");
    let r = reason(&v, RiskFactor::UnsatisfiedResolution);
    assert_close(r.points, 2.8);
    assert_eq!(
        r.detail,
        ReasonDetail::Unsatisfied {
            count: 1,
            months: 6
        }
    );
    // Feb 2026: counted.
    assert_close(
        reason(
            &with_resolution_on("2026-02-28"),
            RiskFactor::UnsatisfiedResolution,
        )
        .points,
        2.8,
    );
    // Aug 2025 is 7 months back; Mar 2026 is the as_of month, not complete (churn.toml: only
    // sentiment counts the as_of month).
    for on in ["2025-08-20", "2026-03-10"] {
        let v = with_resolution_on(on);
        assert!(
            reasons(&v, RiskFactor::UnsatisfiedResolution).is_empty(),
            "{on}: {v:#?}"
        );
    }
    // Satisfied or not said: nothing.
    let mut b = prospect();
    b.complaint("2026-01-01", "C-1", Severity::Low)
        .resolve("2026-01-05", "C-1", None)
        .complaint("2026-01-02", "C-2", Severity::Low)
        .resolve("2026-01-05", "C-2", Some(true));
    assert!(reasons(&b.verdict(AS_OF), RiskFactor::UnsatisfiedResolution).is_empty());
}

#[test]
fn a_complaint_resolved_that_was_never_filed_is_tolerated_and_reported() {
    let mut b = prospect();
    b.resolve("2026-02-10", "C-404", Some(false));
    let v = b.verdict(AS_OF);
    assert_eq!(v.anomalies.resolved_never_filed, 1);
    assert!(reasons(&v, RiskFactor::OpenComplaint).is_empty());
    // The dissatisfaction still counts: 0.7 × 4 = 2.8.
    assert_close(reason(&v, RiskFactor::UnsatisfiedResolution).points, 2.8);
    // If the filing arrives late, the complaint is filed and resolved at once: no anomaly left.
    b.complaint("2026-02-01", "C-404", Severity::High);
    let late = b.verdict(AS_OF);
    assert_eq!(late.anomalies.resolved_never_filed, 0);
    assert!(reasons(&late, RiskFactor::OpenComplaint).is_empty());
    // An escalation of an unknown complaint is reported too.
    b.escalate("2026-03-01", "C-999", None);
    assert_eq!(b.verdict(AS_OF).anomalies.escalated_unknown_complaint, 1);
}

#[test]
fn a_contract_ending_soon_without_renewal() {
    let ending = |ends_on: &str, auto_renew: bool| {
        let mut b = prospect();
        b.contract("2025-06-01", "K-1", "2025-06-01", ends_on, auto_renew);
        b.verdict(AS_OF)
    };
    // Ends 2026-04-30, in 46 days ≤ 60: 12 alone → 0.7 × 12 = 8.4.
    let v = ending("2026-04-30", false);
    let r = reason(&v, RiskFactor::ContractEnding);
    assert_close(r.points, 8.4);
    assert_eq!(
        r.detail,
        ReasonDetail::ContractEnding {
            id: ident("K-1"),
            in_days: 46
        }
    );
    // In exactly 60 days (2026-05-14): counted; in 61: not.
    assert_eq!(
        reasons(&ending("2026-05-14", false), RiskFactor::ContractEnding).len(),
        1
    );
    assert!(reasons(&ending("2026-05-15", false), RiskFactor::ContractEnding).is_empty());
    // Auto-renewing: never ends.
    let auto = ending("2026-04-30", true);
    assert_eq!(auto.risk_reasons.len(), 1, "{auto:#?}");
}

#[test]
fn a_contract_ending_on_the_as_of_date() {
    let mut b = prospect();
    b.contract("2025-06-01", "K-1", "2025-06-01", AS_OF, false);
    // Its last day is today: still in force, ending in 0 days → 8.4.
    let v = b.verdict(AS_OF);
    let r = reason(&v, RiskFactor::ContractEnding);
    assert_close(r.points, 8.4);
    assert_eq!(
        r.detail,
        ReasonDetail::ContractEnding {
            id: ident("K-1"),
            in_days: 0
        }
    );
    // The next day it has lapsed 1 day ago and none is active: 15 alone → 0.7 × 15 = 10.5.
    let next = b.verdict("2026-03-16");
    assert!(reasons(&next, RiskFactor::ContractEnding).is_empty());
    let r = reason(&next, RiskFactor::ContractLapsed);
    assert_close(r.points, 10.5);
    assert_eq!(
        r.detail,
        ReasonDetail::ContractLapsed {
            id: ident("K-1"),
            days_ago: 1
        }
    );
}

#[test]
fn a_renewed_contract_is_not_ending() {
    let mut b = prospect();
    b.contract("2025-06-01", "K-1", "2025-06-01", "2026-04-30", false)
        .renew("2026-03-01", "K-1", "2027-04-30");
    let v = b.verdict(AS_OF);
    assert!(reasons(&v, RiskFactor::ContractEnding).is_empty());
    assert_eq!(v.risk_reasons.len(), 1);
}

#[test]
fn a_terminated_contract_weighs_for_180_days() {
    let terminated_on = |on: &str| {
        let mut b = prospect();
        b.contract("2025-01-01", "K-1", "2025-01-01", "2027-12-31", false)
            .terminate(on, "K-1", on);
        b.verdict(AS_OF)
    };
    // Terminated 30 days ago: 20 alone → 0.7 × 20 = 14.
    let v = terminated_on("2026-02-13");
    let r = reason(&v, RiskFactor::ContractTerminated);
    assert_close(r.points, 14.0);
    assert_eq!(
        r.detail,
        ReasonDetail::ContractTerminated {
            id: ident("K-1"),
            days_ago: 30
        }
    );
    // Neither "ending" nor "lapsed" on top.
    assert_eq!(v.risk_reasons.len(), 2);
    // 180 days ago: counted; 181: no longer (and not reported as lapsed either).
    assert_eq!(
        reasons(&terminated_on("2025-09-16"), RiskFactor::ContractTerminated).len(),
        1
    );
    assert_eq!(terminated_on("2025-09-15").risk_reasons.len(), 1);
}

#[test]
fn a_lapsed_contract_counts_only_when_none_is_active() {
    let mut b = prospect();
    b.contract("2025-01-01", "K-1", "2025-01-01", "2026-02-13", false);
    // Ended 30 days ago and nothing active: 15 alone → 10.5.
    let v = b.verdict(AS_OF);
    let r = reason(&v, RiskFactor::ContractLapsed);
    assert_close(r.points, 10.5);
    assert_eq!(
        r.detail,
        ReasonDetail::ContractLapsed {
            id: ident("K-1"),
            days_ago: 30
        }
    );
    // A successor contract in force: no longer lapsed.
    b.contract("2026-02-10", "K-2", "2026-02-14", "2027-02-13", false);
    assert!(reasons(&b.verdict(AS_OF), RiskFactor::ContractLapsed).is_empty());
}

#[test]
fn a_change_of_account_manager_by_reason_fading_over_120_days() {
    let reassigned = |on: &str, reason: ReassignReason| {
        let mut b = prospect();
        b.reassign(on, Some("rep-a"), "rep-b", reason);
        b.verdict(AS_OF)
    };
    // 24 days ago: fade 1 − 24 / 120 = 0.8; alone = points × 0.8; share = 0.7 × alone.
    for (reason, share) in [
        (ReassignReason::StaffTurnover, 8.4), // 15 × 0.8 = 12 → 0.7 × 12
        (ReassignReason::Territory, 3.36),    // 6 × 0.8 = 4.8 → 0.7 × 4.8
        (ReassignReason::Workload, 2.8),      // 5 × 0.8 = 4 → 0.7 × 4
        (ReassignReason::CustomerRequest, 1.68), // 3 × 0.8 = 2.4 → 0.7 × 2.4
        (ReassignReason::Other, 2.8),         // 5 × 0.8 = 4 → 0.7 × 4
    ] {
        let v = reassigned("2026-02-19", reason);
        let r = reassignment(&v);
        assert_close(r.points, share);
        assert_eq!(
            r.detail,
            ReasonDetail::Reassigned {
                reason,
                days_ago: 24,
                from: Some(ident("rep-a")),
                to: ident("rep-b"),
            }
        );
    }
    // Today: the full 15 → 10.5.
    let today = reassigned(AS_OF, ReassignReason::StaffTurnover);
    assert_close(reassignment(&today).points, 10.5);
    // 108 days ago: 15 × 12 / 120 = 1.5 → 1.05.
    let old = reassigned("2025-11-27", ReassignReason::StaffTurnover);
    assert_close(reassignment(&old).points, 1.05);
    // 120 days ago: faded out.
    let gone = reassigned("2025-11-15", ReassignReason::StaffTurnover);
    assert!(reasons(&gone, RiskFactor::AccountManagerChanged).is_empty());
}

fn reassignment(v: &Verdict) -> &RiskReason {
    reason(v, RiskFactor::AccountManagerChanged)
}

#[test]
fn a_reassignment_to_the_same_rep_is_an_anomaly_not_a_change() {
    // From rep-a to rep-a, as the event says.
    let mut b = prospect();
    b.reassign(
        "2026-03-01",
        Some("rep-a"),
        "rep-a",
        ReassignReason::Workload,
    );
    let state = b.state();
    assert_eq!(state.reassignments, 0);
    let v = b.verdict(AS_OF);
    assert_eq!(v.anomalies.reassigned_to_same_rep, 1);
    assert!(reasons(&v, RiskFactor::AccountManagerChanged).is_empty());
    // To the rep who already owns the account (registered with owner rep-a).
    let mut b = prospect();
    b.reassign("2026-03-01", None, "rep-a", ReassignReason::StaffTurnover);
    let v = b.verdict(AS_OF);
    assert_eq!(v.anomalies.reassigned_to_same_rep, 1);
    assert!(reasons(&v, RiskFactor::AccountManagerChanged).is_empty());
}

#[test]
fn negative_sentiment_in_the_as_of_month_and_the_two_before() {
    let mut b = prospect();
    b.interaction("2025-12-20", Some(-2)) // 3 months back: outside the window
        .interaction("2026-01-05", Some(-1))
        .interaction("2026-02-05", Some(0))
        .interaction("2026-02-06", Some(2))
        .interaction("2026-02-07", None)
        .interaction("2026-03-14", Some(-2));
    let v = b.verdict(AS_OF);
    let r = reason(&v, RiskFactor::NegativeSentiment);
    // 2 negatives × 4 = 8 alone → 0.7 × 8 = 5.6.
    assert_close(r.points, 5.6);
    assert_eq!(
        r.detail,
        ReasonDetail::Negative {
            count: 2,
            months: 3
        }
    );
    // Two more: 4 × 4 = 16, capped at 12 → 0.7 × 12 = 8.4.
    b.interaction("2026-03-01", Some(-1))
        .interaction("2026-03-02", Some(-1));
    assert_close(
        reason(&b.verdict(AS_OF), RiskFactor::NegativeSentiment).points,
        8.4,
    );
}

#[test]
fn fading_engagement_from_a_50_percent_drop() {
    let with_recent = |recent: usize| {
        let mut b = prospect();
        for on in ["2025-09-10", "2025-10-10", "2025-11-10", "2025-11-20"] {
            b.interaction(on, None);
        }
        for on in ["2025-12-10", "2026-01-10", "2026-02-10"]
            .iter()
            .take(recent)
        {
            b.interaction(on, None);
        }
        // The as_of month is not compared.
        b.interaction("2026-03-10", None);
        b.verdict(AS_OF)
    };
    // 1 against 4: a 75 % drop → 8 × 0.75 = 6 alone → 0.7 × 6 = 4.2.
    let v = with_recent(1);
    let r = reason(&v, RiskFactor::FadingEngagement);
    assert_close(r.points, 4.2);
    assert_eq!(
        r.detail,
        ReasonDetail::Fading {
            drop_percent: 75.0,
            months: 3
        }
    );
    // 2 against 4: exactly 50 % → 4 alone → 2.8.
    assert_close(
        reason(&with_recent(2), RiskFactor::FadingEngagement).points,
        2.8,
    );
    // 3 against 4: 25 % < 50 %: nothing.
    assert!(reasons(&with_recent(3), RiskFactor::FadingEngagement).is_empty());
}

#[test]
fn reasons_combine_like_independent_chances_and_add_up_to_the_risk() {
    let mut b = prospect();
    b.complaint("2026-03-10", "C-1", Severity::Critical) // open 5 days, 3 overdue: 25
        .complaint("2026-02-01", "C-2", Severity::Low)
        .resolve("2026-02-10", "C-2", Some(false)) // unsatisfied: 4
        .contract("2025-01-01", "K-1", "2025-01-01", "2027-12-31", false)
        .terminate("2026-02-13", "K-1", "2026-02-13") // 20
        .reassign(AS_OF, Some("rep-a"), "rep-b", ReassignReason::StaffTurnover); // 15
    for on in [
        "2025-09-10",
        "2025-10-10",
        "2025-11-10",
        "2025-11-20",
        "2025-12-10",
    ] {
        b.interaction(on, None); // 1 against 4: 75 % drop → 6
    }
    for on in ["2026-03-01", "2026-03-02", "2026-03-03"] {
        b.interaction(on, Some(-1)); // 3 × 4 = 12
    }
    let v = b.verdict(AS_OF);
    let got: Vec<(RiskFactor, f64)> = v
        .risk_reasons
        .iter()
        .map(|r| (r.factor, r.points))
        .collect();
    // Each takes its part of what the ones before left:
    // 30; 0.7 × 25 = 17.5; 0.525 × 4 = 2.1; 0.504 × 20 = 10.08; 0.4032 × 15 = 6.048;
    // 0.34272 × 12 = 4.1126; 0.3015936 × 6 = 1.8096.
    assert_eq!(
        got,
        [
            (RiskFactor::NeverBought, 30.0),
            (RiskFactor::OpenComplaint, 17.5),
            (RiskFactor::UnsatisfiedResolution, 2.1),
            (RiskFactor::ContractTerminated, 10.08),
            (RiskFactor::AccountManagerChanged, 6.05),
            (RiskFactor::NegativeSentiment, 4.11),
            (RiskFactor::FadingEngagement, 1.81),
        ]
    );
    // 100 × (1 − 0.7 × 0.75 × 0.96 × 0.8 × 0.85 × 0.88 × 0.94) = 71.6502.
    assert_close(v.risk, 71.65);
    assert_reasons_add_up(&v);
    assert_eq!(v.risk_band, RiskBand::High);
}

#[test]
fn risk_bands_by_default() {
    // Low: the regular monthly buyer, 21.85 < 25.
    let mut low = Builder::new();
    monthly_buyer(&mut low, &MAR25_TO_MAR26, 1_000_000);
    assert_eq!(low.verdict(AS_OF).risk_band, RiskBand::Low);
    // Medium: never bought, 30 (25 ≤ 30 < 50).
    assert_eq!(prospect().verdict(AS_OF).risk_band, RiskBand::Medium);
    // High: never bought (30), critical complaint overdue (25), terminated contract (20):
    // 30 + 17.5 + 10.5 = 58 = 100 × (1 − 0.7 × 0.75 × 0.8).
    let mut high = prospect();
    high.complaint("2026-03-10", "C-1", Severity::Critical)
        .contract("2025-01-01", "K-1", "2025-01-01", "2027-12-31", false)
        .terminate("2026-02-13", "K-1", "2026-02-13");
    let v = high.verdict(AS_OF);
    assert_close(v.risk, 58.0);
    assert_eq!(v.risk_band, RiskBand::High);
    assert_reasons_add_up(&v);
    // Critical: a one-day buyer silent for a year, 94.66 (see above).
}

#[test]
fn risk_band_edges_are_inclusive_lower_bounds() {
    // The never-bought prospect's risk is exactly 30.
    let state = prospect().state();
    let band = |medium: f64, high: f64, critical: f64| {
        let mut policies = Policies::defaults();
        let b = &mut policies.churn.policy.bands;
        (b.medium, b.high, b.critical) = (medium, high, critical);
        let v = evaluate(&state, &policies, noon(AS_OF));
        assert_close(v.risk, 30.0);
        v.risk_band
    };
    assert_eq!(band(30.01, 40.0, 50.0), RiskBand::Low);
    assert_eq!(band(30.0, 40.0, 50.0), RiskBand::Medium);
    assert_eq!(band(20.0, 30.0, 50.0), RiskBand::High);
    assert_eq!(band(10.0, 20.0, 30.0), RiskBand::Critical);
    assert_eq!(band(10.0, 20.0, 30.01), RiskBand::High);
}

// ---------------------------------------------------------------------------------------------
// Determinism

fn rich_customer() -> Builder {
    let mut b = prospect();
    monthly_buyer(&mut b, &MAR25_TO_MAR26[..11], 2_000_000);
    b.complaint("2026-03-10", "C-1", Severity::High)
        .complaint("2026-01-01", "C-2", Severity::Low)
        .resolve("2026-01-10", "C-2", Some(false))
        .resolve("2026-01-11", "C-404", None)
        .contract("2025-06-01", "K-1", "2025-06-01", "2026-04-30", false)
        .reassign(
            "2026-02-01",
            Some("rep-a"),
            "rep-b",
            ReassignReason::Territory,
        )
        .assess("2026-02-02", Some(70), Some(40))
        .interaction("2026-03-01", Some(-2))
        .interaction("2025-11-01", Some(1));
    b
}

#[test]
fn same_inputs_give_the_same_verdict_bit_for_bit() {
    let b = rich_customer();
    let policies = Policies::defaults();
    for as_of in ["2025-12-31", AS_OF, "2026-09-01"] {
        let one = evaluate(&b.state(), &policies, noon(as_of));
        let two = evaluate(&b.state(), &Policies::defaults(), noon(as_of));
        assert_eq!(one, two);
        let (a, b) = (
            serde_json::to_vec(&one).unwrap(),
            serde_json::to_vec(&two).unwrap(),
        );
        assert_eq!(a, b);
        // Any time of the as_of day gives the same verdict.
        let late = evaluate(&rich_customer().state(), &policies, noon(as_of) + 11 * 3600);
        assert_eq!(serde_json::to_vec(&late).unwrap(), a);
    }
}

#[test]
fn the_verdict_serializes_its_details_as_text() {
    let v = rich_customer().verdict(AS_OF);
    let json: serde_json::Value = serde_json::to_value(&v).unwrap();
    assert_eq!(json["as_of_day"], "2026-03-15");
    assert_eq!(json["stage_rule"]["rule"], v.stage_rule.id());
    assert!(json["risk_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["detail"] == "complaint C-1 (high) open 5 days"));
    assert_eq!(json["anomalies"]["resolved_never_filed"], 1);
}
