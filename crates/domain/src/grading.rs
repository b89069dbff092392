//! The grade in two steps: `GradeInputs` — the measured quantities of a customer at an as_of
//! date — and `grade`, which turns inputs into sub-scores, a score and a grade under a grading
//! policy. `evaluate` does both; what-if simulation stores the inputs once and re-runs only the
//! second step under other weights, thresholds, targets or scales, so a million customers are
//! re-graded without replaying the log.

use serde::{Deserialize, Serialize};

use crate::calendar::{day_of, Day, Month};
use crate::event::Severity;
use crate::policy::{Factor, GradingPolicy};
use crate::state::{CustomerState, MonthWindow, Stamped};
use crate::values::Currency;
use crate::verdict::{FactorDetail, FactorScore, Grade};

const DAYS_PER_MONTH: f64 = 365.2425 / 12.0;
const SEVERITIES: [Severity; 4] = [
    Severity::Low,
    Severity::Medium,
    Severity::High,
    Severity::Critical,
];

/// What the grading factors measure, before any policy scale is applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradeInputs {
    /// Months in the monthly-sales window, and the sales in it (complete months before as_of).
    pub sales_window_months: u8,
    pub sales_window_minor: u64,
    pub currency: Option<Currency>,
    /// Months in each growth window, and the sales of the recent and the earlier window.
    pub growth_window_months: u8,
    pub growth_recent_minor: u64,
    pub growth_earlier_minor: u64,
    pub coverage: Option<u8>,
    pub coverage_assessed_on: Option<Day>,
    pub prospects: Option<u8>,
    pub prospects_assessed_on: Option<Day>,
    /// Months since the first purchase.
    pub tenure_months: f64,
    /// Months with a purchase among the 12 complete months before as_of.
    pub active_months: u8,
    /// Complaints filed in the 12 complete months before as_of, by severity (low … critical).
    pub complaints_filed: [u32; 4],
    /// Complaints ever resolved to the customer's dissatisfaction.
    pub unsatisfied: u32,
}

/// Sum of `value` over the `n` complete months before `month`, and over the `n` before those.
pub(crate) fn compare_windows<T: Copy + Default>(
    month: Month,
    n: u8,
    months: &MonthWindow<T>,
    value: impl Fn(T) -> u64,
) -> (u64, u64) {
    let n = i32::from(n);
    let sum = |last: Month| months.fold(last, n, 0, |total, v| total + value(v));
    (sum(month - 1), sum(month - 1 - n))
}

impl GradeInputs {
    /// Compact binary encoding (postcard) for storing beside the read model.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, crate::state::StateDecodeError> {
        Ok(postcard::from_bytes(bytes)?)
    }

    /// Measures `state` at day `today` (of month `month`) with the policy's windows.
    pub fn measure(
        state: &CustomerState,
        policy: &GradingPolicy,
        today: Day,
        month: Month,
    ) -> Self {
        let purchases = &state.purchases;
        let sales = |minor: u64| minor;
        let (sales_window_minor, _) = compare_windows(
            month,
            policy.monthly_sales.window_months,
            &purchases.months,
            sales,
        );
        let (growth_recent_minor, growth_earlier_minor) = compare_windows(
            month,
            policy.sales_growth.window_months,
            &purchases.months,
            sales,
        );
        let assessed = |s: &Option<Stamped<u8>>| s.as_ref().map(|s| (s.value, day_of(s.at)));
        let complaints_filed =
            state
                .complaints
                .months
                .fold(month - 1, 12, [0u32; 4], |mut totals, filed_in| {
                    for (total, n) in totals.iter_mut().zip(filed_in.filed) {
                        *total += u32::from(n);
                    }
                    totals
                });
        Self {
            sales_window_months: policy.monthly_sales.window_months,
            sales_window_minor,
            currency: purchases.currency,
            growth_window_months: policy.sales_growth.window_months,
            growth_recent_minor,
            growth_earlier_minor,
            coverage: assessed(&state.coverage).map(|(v, _)| v),
            coverage_assessed_on: assessed(&state.coverage).map(|(_, d)| d),
            prospects: assessed(&state.prospects).map(|(v, _)| v),
            prospects_assessed_on: assessed(&state.prospects).map(|(_, d)| d),
            tenure_months: purchases.days.first().map_or(0.0, |first| {
                f64::from((today - first).max(0)) / DAYS_PER_MONTH
            }),
            active_months: purchases
                .order_months
                .fold(month - 1, 12, 0, |active, orders| {
                    active + u8::from(orders > 0)
                }),
            complaints_filed,
            unsatisfied: state.complaints.unsatisfied,
        }
    }

    /// Whether `policy` measures with the same windows as these inputs were measured with; if
    /// not, the inputs cannot be re-graded under it and the log must be replayed.
    pub fn measured_like(&self, policy: &GradingPolicy) -> bool {
        self.sales_window_months == policy.monthly_sales.window_months
            && self.growth_window_months == policy.sales_growth.window_months
    }
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Scores measured inputs under a grading policy.
pub fn grade(inputs: &GradeInputs, policy: &GradingPolicy) -> (Grade, f64, [FactorScore; 5]) {
    // Monthly sales.
    let ms = &policy.monthly_sales;
    let average = inputs.sales_window_minor as f64 / f64::from(ms.window_months);
    let target = inputs
        .currency
        .and_then(|c| ms.target_minor.get(c.as_str()).copied());
    let monthly_sales = match target {
        Some(target) => (Some(average), (100.0 * average / target as f64).min(100.0)),
        None => (inputs.currency.map(|_| average), 0.0),
    };
    let monthly_detail = FactorDetail::MonthlySales {
        months: ms.window_months,
        currency: inputs.currency,
        target_minor: target,
    };

    // Sales growth.
    let g = &policy.sales_growth;
    let (recent, earlier) = (inputs.growth_recent_minor, inputs.growth_earlier_minor);
    let growth = match (recent, earlier) {
        (0, 0) => (None, g.no_sales_score),
        (_, 0) => (None, g.new_sales_score),
        _ => {
            let pct = (recent as f64 - earlier as f64) * 100.0 / earlier as f64;
            let sub = (pct - g.floor_percent) * 100.0 / (g.ceiling_percent - g.floor_percent);
            (Some(pct), sub.clamp(0.0, 100.0))
        }
    };
    let growth_detail = FactorDetail::SalesGrowth {
        recent_minor: recent,
        earlier_minor: earlier,
        months: g.window_months,
    };

    // Assessments.
    let assessed = |value: Option<u8>, on: Option<Day>, default: f64| {
        let raw = value.map(f64::from);
        (
            (raw, raw.unwrap_or(default)),
            FactorDetail::Assessed { assessed_on: on },
        )
    };
    let (coverage, coverage_detail) = assessed(
        inputs.coverage,
        inputs.coverage_assessed_on,
        policy.channel_coverage.default_score,
    );
    let (prospects, prospects_detail) = assessed(
        inputs.prospects,
        inputs.prospects_assessed_on,
        policy.development_prospects.default_score,
    );

    // Loyalty.
    let l = &policy.loyalty;
    let mut penalty = f64::from(inputs.unsatisfied) * l.unsatisfied_penalty;
    for (severity, &filed) in SEVERITIES.iter().zip(&inputs.complaints_filed) {
        penalty += f64::from(filed) * l.complaint_penalty.of(*severity);
    }
    let loyalty_points = l.tenure_points
        * (inputs.tenure_months / f64::from(l.tenure_full_months)).min(1.0)
        + l.repeat_points * f64::from(inputs.active_months) / 12.0
        + (l.complaint_points - penalty).max(0.0);
    let loyalty = (Some(round2(loyalty_points)), loyalty_points);
    let loyalty_detail = FactorDetail::Loyalty {
        tenure_months: round2(inputs.tenure_months),
        active_months: inputs.active_months,
        complaint_penalty: penalty,
    };

    let factor = |factor: Factor, (raw, sub): (Option<f64>, f64), detail| {
        let weight = policy.weights.of(factor);
        let sub_score = round2(sub);
        FactorScore {
            factor,
            raw: raw.map(round2),
            sub_score,
            weight,
            contribution: round2(sub_score * f64::from(weight) / 100.0),
            detail,
        }
    };
    let factors = [
        factor(Factor::MonthlySales, monthly_sales, monthly_detail),
        factor(Factor::SalesGrowth, growth, growth_detail),
        factor(Factor::ChannelCoverage, coverage, coverage_detail),
        factor(Factor::Loyalty, loyalty, loyalty_detail),
        factor(Factor::DevelopmentProspects, prospects, prospects_detail),
    ];
    let score = round2(factors.iter().map(|f| f.contribution).sum());
    (grade_of(score, policy), score, factors)
}

/// The grade a score earns under the policy's thresholds.
pub fn grade_of(score: f64, policy: &GradingPolicy) -> Grade {
    let t = &policy.thresholds;
    if score >= t.a {
        Grade::A
    } else if score >= t.b {
        Grade::B
    } else if score >= t.c {
        Grade::C
    } else if score >= t.d {
        Grade::D
    } else {
        Grade::E
    }
}
