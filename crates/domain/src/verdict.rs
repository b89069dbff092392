//! `evaluate`: a customer's state, the policies and an explicit `as_of` give a `Verdict` —
//! grade with every factor, lifecycle stage with the rule that put it there, churn risk with its
//! reasons. Pure and deterministic: the same inputs give the same verdict, bit for bit.
//!
//! Details are kept as data and rendered to text only when shown, so evaluating a million
//! customers does not format a million sentences.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::calendar::{day_of, first_day_of_month, iso_date, month_of_day, Day, Month};
use crate::event::{ReassignReason, Severity};
use crate::grading::{self, compare_windows, round2, GradeInputs};
use crate::policy::{ChurnPolicy, Factor, LifecyclePolicy, Policies};
use crate::state::{Anomalies, CustomerState};
use crate::values::{Currency, Ident};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Grade {
    A,
    B,
    C,
    D,
    E,
}

impl Grade {
    pub const ALL: [Grade; 5] = [Grade::A, Grade::B, Grade::C, Grade::D, Grade::E];
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::A => "A",
            Grade::B => "B",
            Grade::C => "C",
            Grade::D => "D",
            Grade::E => "E",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Prospect,
    Developing,
    Established,
    Declining,
    Churned,
    Reactivated,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Prospect,
        Stage::Developing,
        Stage::Established,
        Stage::Declining,
        Stage::Churned,
        Stage::Reactivated,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Prospect => "prospect",
            Stage::Developing => "developing",
            Stage::Established => "established",
            Stage::Declining => "declining",
            Stage::Churned => "churned",
            Stage::Reactivated => "reactivated",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskBand {
    Low,
    Medium,
    High,
    Critical,
}

impl RiskBand {
    pub const ALL: [RiskBand; 4] = [
        RiskBand::Low,
        RiskBand::Medium,
        RiskBand::High,
        RiskBand::Critical,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            RiskBand::Low => "low",
            RiskBand::Medium => "medium",
            RiskBand::High => "high",
            RiskBand::Critical => "critical",
        }
    }
}

/// Everything the projections say about one customer at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    #[serde(serialize_with = "as_date")]
    pub as_of_day: Day,
    pub grade: Grade,
    pub score: f64,
    pub factors: [FactorScore; 5],
    pub stage: Stage,
    #[serde(serialize_with = "as_date")]
    pub stage_since: Day,
    pub stage_rule: StageRule,
    pub risk: f64,
    pub risk_band: RiskBand,
    pub risk_reasons: Vec<RiskReason>,
    pub anomalies: Anomalies,
    /// What the grade was computed from; what-if simulation re-grades these.
    pub grade_inputs: GradeInputs,
}

fn as_date<S: Serializer>(day: &Day, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&iso_date(*day))
}

/// One factor of the grade.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactorScore {
    pub factor: Factor,
    /// The measured value (unit per factor, see `FactorDetail`); `None` when there is none.
    pub raw: Option<f64>,
    pub sub_score: f64,
    pub weight: u8,
    pub contribution: f64,
    pub detail: FactorDetail,
}

/// What a factor's raw value was made of.
#[derive(Debug, Clone, PartialEq)]
pub enum FactorDetail {
    /// `raw` = average monthly sales in minor units.
    MonthlySales {
        months: u8,
        currency: Option<Currency>,
        target_minor: Option<u64>,
    },
    /// `raw` = growth in percent.
    SalesGrowth {
        recent_minor: u64,
        earlier_minor: u64,
        months: u8,
    },
    /// `raw` = the assessed value, `None` if never assessed.
    Assessed { assessed_on: Option<Day> },
    /// `raw` = loyalty points.
    Loyalty {
        tenure_months: f64,
        active_months: u8,
        complaint_penalty: f64,
    },
}

impl fmt::Display for FactorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactorDetail::MonthlySales { months, currency: None, .. } => {
                write!(f, "no purchases in the last {months} complete months")
            }
            FactorDetail::MonthlySales { currency: Some(c), target_minor: None, .. } => {
                write!(f, "no monthly sales target for {c} in the grading policy")
            }
            FactorDetail::MonthlySales { months, currency: Some(c), target_minor: Some(t) } => {
                write!(f, "average of the last {months} complete months against a target of {t} {c} minor units")
            }
            FactorDetail::SalesGrowth { recent_minor, earlier_minor, months } => write!(
                f,
                "{recent_minor} in the last {months} complete months against {earlier_minor} in the {months} before"
            ),
            FactorDetail::Assessed { assessed_on: Some(day) } => {
                write!(f, "assessed on {}", iso_date(*day))
            }
            FactorDetail::Assessed { assessed_on: None } => {
                f.write_str("never assessed; the policy's default applies")
            }
            FactorDetail::Loyalty { tenure_months, active_months, complaint_penalty } => write!(
                f,
                "{tenure_months:.1} months of tenure, purchases in {active_months} of the last 12 months, complaint penalty {complaint_penalty}"
            ),
        }
    }
}

impl Serialize for FactorDetail {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Which lifecycle rule decided the stage, with the numbers it looked at.
#[derive(Debug, Clone, PartialEq)]
pub enum StageRule {
    NeverBought,
    SilentPastChurnThreshold {
        silent_days: i32,
        threshold_days: i32,
    },
    ReturnedAfterSilence {
        gap_days: i32,
        threshold_days: i32,
    },
    Overdue {
        silent_days: i32,
        threshold_days: i32,
    },
    SalesDrop {
        drop_percent: f64,
        months: u8,
    },
    TenureAndRepeat {
        tenure_days: i32,
        purchase_days: u32,
    },
    EarlyBuyer {
        tenure_days: i32,
        purchase_days: u32,
    },
}

impl StageRule {
    /// A stable identifier of the rule, for filtering and for the read model.
    pub fn id(&self) -> &'static str {
        match self {
            StageRule::NeverBought => "prospect.never_bought",
            StageRule::SilentPastChurnThreshold { .. } => "churned.silent_past_threshold",
            StageRule::ReturnedAfterSilence { .. } => "reactivated.returned_after_silence",
            StageRule::Overdue { .. } => "declining.overdue",
            StageRule::SalesDrop { .. } => "declining.sales_drop",
            StageRule::TenureAndRepeat { .. } => "established.tenure_and_repeat",
            StageRule::EarlyBuyer { .. } => "developing.early_buyer",
        }
    }
}

impl fmt::Display for StageRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageRule::NeverBought => f.write_str("no purchase yet"),
            StageRule::SilentPastChurnThreshold { silent_days, threshold_days } => write!(
                f,
                "no purchase for {silent_days} days; churned after {threshold_days}"
            ),
            StageRule::ReturnedAfterSilence { gap_days, threshold_days } => write!(
                f,
                "bought again after {gap_days} days without a purchase (churn threshold {threshold_days})"
            ),
            StageRule::Overdue { silent_days, threshold_days } => write!(
                f,
                "no purchase for {silent_days} days; declining after {threshold_days}"
            ),
            StageRule::SalesDrop { drop_percent, months } => write!(
                f,
                "sales of the last {months} complete months fell {drop_percent:.0} % against the {months} before"
            ),
            StageRule::TenureAndRepeat { tenure_days, purchase_days } => write!(
                f,
                "buying for {tenure_days} days, on {purchase_days} distinct days"
            ),
            StageRule::EarlyBuyer { tenure_days, purchase_days } => write!(
                f,
                "first purchase {tenure_days} days ago, {purchase_days} distinct purchase days"
            ),
        }
    }
}

impl Serialize for StageRule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("StageRule", 2)?;
        s.serialize_field("rule", self.id())?;
        s.serialize_field("detail", &self.to_string())?;
        s.end()
    }
}

/// One reason the customer may churn, and the points it adds to the risk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskReason {
    pub factor: RiskFactor,
    pub points: f64,
    pub detail: ReasonDetail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskFactor {
    BuyingSilence,
    NeverBought,
    FallingPurchases,
    OpenComplaint,
    UnsatisfiedResolution,
    ContractEnding,
    ContractTerminated,
    ContractLapsed,
    AccountManagerChanged,
    NegativeSentiment,
    FadingEngagement,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReasonDetail {
    Silence {
        silent_days: i32,
        usual_gap_days: Option<f64>,
        purchase_days: u32,
        recent_days: u32,
        recent_window_days: u32,
        probability: f64,
    },
    NeverBought,
    Falling {
        drop_percent: f64,
        months: u8,
    },
    Complaint {
        id: Ident,
        severity: Severity,
        open_days: i32,
        overdue_days: Option<i32>,
    },
    Unsatisfied {
        count: u32,
        months: u8,
    },
    ContractEnding {
        id: Ident,
        in_days: i32,
    },
    ContractTerminated {
        id: Ident,
        days_ago: i32,
    },
    ContractLapsed {
        id: Ident,
        days_ago: i32,
    },
    Reassigned {
        reason: ReassignReason,
        days_ago: i32,
        from: Option<Ident>,
        to: Ident,
    },
    Negative {
        count: u32,
        months: u8,
    },
    Fading {
        drop_percent: f64,
        months: u8,
    },
}

impl fmt::Display for ReasonDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReasonDetail::Silence { silent_days, usual_gap_days: Some(gap), purchase_days, recent_days, recent_window_days, probability } => write!(
                f,
                "no purchase for {silent_days} days; usually every {gap:.0} days over {purchase_days} purchase days, {recent_days} in the last {recent_window_days} days ({:.0} % likely to buy nothing in the coming months)",
                probability * 100.0
            ),
            ReasonDetail::Silence { silent_days, usual_gap_days: None, probability, .. } => write!(
                f,
                "bought on one day only, {silent_days} days ago ({:.0} % likely to buy nothing in the coming months)",
                probability * 100.0
            ),
            ReasonDetail::NeverBought => f.write_str("has never bought"),
            ReasonDetail::Falling { drop_percent, months } => write!(
                f,
                "sales of the last {months} complete months fell {drop_percent:.0} % against the {months} before"
            ),
            ReasonDetail::Complaint { id, severity, open_days, overdue_days: None } => {
                write!(f, "complaint {id} ({}) open {open_days} days", severity.as_str())
            }
            ReasonDetail::Complaint { id, severity, open_days, overdue_days: Some(late) } => write!(
                f,
                "complaint {id} ({}) open {open_days} days, {late} past its resolution deadline",
                severity.as_str()
            ),
            ReasonDetail::Unsatisfied { count, months } => write!(
                f,
                "{count} complaint(s) resolved to the customer's dissatisfaction in the last {months} months"
            ),
            ReasonDetail::ContractEnding { id, in_days } => {
                write!(f, "contract {id} ends in {in_days} days without renewal")
            }
            ReasonDetail::ContractTerminated { id, days_ago } => {
                write!(f, "contract {id} terminated {days_ago} days ago")
            }
            ReasonDetail::ContractLapsed { id, days_ago } => {
                write!(f, "contract {id} lapsed {days_ago} days ago and no contract is active")
            }
            ReasonDetail::Reassigned { reason, days_ago, from, to } => {
                write!(f, "account manager changed {days_ago} days ago (")?;
                if let Some(from) = from {
                    write!(f, "{from} → ")?;
                }
                write!(f, "{to}, {})", reason.as_str())
            }
            ReasonDetail::Negative { count, months } => write!(
                f,
                "{count} interaction(s) with negative sentiment in the last {months} months"
            ),
            ReasonDetail::Fading { drop_percent, months } => write!(
                f,
                "interactions of the last {months} complete months fell {drop_percent:.0} % against the {months} before"
            ),
        }
    }
}

impl Serialize for ReasonDetail {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn drop_percent(recent: u64, earlier: u64) -> f64 {
    if earlier == 0 || recent >= earlier {
        0.0
    } else {
        (earlier - recent) as f64 * 100.0 / earlier as f64
    }
}

/// Evaluates a customer's state under the policies at business time `as_of` (Unix seconds).
pub fn evaluate(state: &CustomerState, policies: &Policies, as_of: i64) -> Verdict {
    verdict(state, policies, as_of, true)
}

/// The verdict, with the risk's reasons only if `with_reasons` (a verdict without them
/// allocates nothing).
fn verdict(state: &CustomerState, policies: &Policies, as_of: i64, with_reasons: bool) -> Verdict {
    let today = day_of(as_of);
    let month = month_of_day(today);
    let grade_inputs = GradeInputs::measure(state, &policies.grading.policy, today, month);
    let (grade, score, factors) = grading::grade(&grade_inputs, &policies.grading.policy);
    let (stage, stage_since, stage_rule) = stage(state, &policies.lifecycle.policy, today, month);
    let mut risk_reasons = Vec::new();
    let (risk, risk_band) = churn_risk(
        state,
        &policies.churn.policy,
        today,
        month,
        with_reasons.then_some(&mut risk_reasons),
    );
    Verdict {
        as_of_day: today,
        grade,
        score,
        factors,
        stage,
        stage_since,
        stage_rule,
        risk,
        risk_band,
        risk_reasons,
        anomalies: state.anomalies,
        grade_inputs,
    }
}

/// The three values transitions are about, as [`evaluate`] gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    pub grade: Grade,
    pub stage: Stage,
    pub risk_band: RiskBand,
}

impl Marks {
    pub fn of(verdict: &Verdict) -> Self {
        Self {
            grade: verdict.grade,
            stage: verdict.stage,
            risk_band: verdict.risk_band,
        }
    }
}

/// The grade, stage and risk band of [`evaluate`]'s verdict, without the risk's reasons and
/// their details: what a projector needs after every event to find the transitions, where
/// the whole verdict is needed once per customer and batch.
pub fn marks(state: &CustomerState, policies: &Policies, as_of: i64) -> Marks {
    Marks::of(&verdict(state, policies, as_of, false))
}

/// The customer's usual gap between distinct purchase days, if they bought on two days or more.
fn usual_gap(state: &CustomerState) -> Option<f64> {
    let days = &state.purchases.days;
    let (first, last) = (days.first()?, days.latest()?);
    let distinct = days.distinct();
    (distinct >= 2).then(|| f64::from(last - first) / f64::from(distinct - 1))
}

fn stage(
    state: &CustomerState,
    policy: &LifecyclePolicy,
    today: Day,
    month: Month,
) -> (Stage, Day, StageRule) {
    let days = &state.purchases.days;
    let (Some(first), Some(last)) = (days.first(), days.latest()) else {
        let since = state.first_event_at.map_or(today, day_of);
        return (Stage::Prospect, since, StageRule::NeverBought);
    };
    let gap = usual_gap(state).unwrap_or(f64::from(policy.default_gap_days));
    let silent = (today - last).max(0);
    let c = &policy.churned;
    let churn_after =
        ((c.overdue_ratio * gap).ceil() as i64).clamp(c.min_days.into(), c.max_days.into()) as i32;
    if silent >= churn_after {
        let rule = StageRule::SilentPastChurnThreshold {
            silent_days: silent,
            threshold_days: churn_after,
        };
        return (Stage::Churned, last + churn_after, rule);
    }
    if let Some(previous) = days.previous(last) {
        let returned_after = last - previous;
        if returned_after >= churn_after && silent < policy.reactivated.for_days as i32 {
            let rule = StageRule::ReturnedAfterSilence {
                gap_days: returned_after,
                threshold_days: churn_after,
            };
            return (Stage::Reactivated, last, rule);
        }
    }
    let d = &policy.declining;
    let decline_after = ((d.overdue_ratio * gap).ceil() as i32).max(d.min_overdue_days as i32);
    if silent >= decline_after {
        let rule = StageRule::Overdue {
            silent_days: silent,
            threshold_days: decline_after,
        };
        return (Stage::Declining, last + decline_after, rule);
    }
    let (recent, earlier) =
        compare_windows(month, d.window_months, &state.purchases.months, |minor| {
            minor
        });
    let drop = drop_percent(recent, earlier);
    if drop >= d.sales_drop_percent {
        let since = first_day_of_month(month - i32::from(d.window_months));
        let rule = StageRule::SalesDrop {
            drop_percent: round2(drop),
            months: d.window_months,
        };
        return (Stage::Declining, since, rule);
    }
    let tenure = (today - first).max(0);
    let e = &policy.established;
    let purchase_days = days.distinct();
    if tenure >= e.min_tenure_days as i32 && purchase_days >= e.min_purchase_days {
        let rule = StageRule::TenureAndRepeat {
            tenure_days: tenure,
            purchase_days,
        };
        return (Stage::Established, first + e.min_tenure_days as i32, rule);
    }
    let rule = StageRule::EarlyBuyer {
        tenure_days: tenure,
        purchase_days,
    };
    (Stage::Developing, first, rule)
}

/// The logistic probability that the customer buys nothing in the coming months
/// (see `projections/churn.toml` for the model).
fn silence_probability(
    rule: &crate::policy::SilenceRule,
    silent_days: i32,
    repeat_days: u32,
    tenure_days: i32,
    usual_gap: Option<f64>,
    recent_days: u32,
) -> f64 {
    let ln1p = |v: f64| v.max(0.0).ln_1p();
    let mut z = rule.intercept
        + rule.log_silence_days * ln1p(f64::from(silent_days))
        + rule.log_repeat_days * ln1p(f64::from(repeat_days))
        + rule.log_tenure_days * ln1p(f64::from(tenure_days))
        + rule.log_recent_days * ln1p(f64::from(recent_days));
    match usual_gap {
        Some(gap) if repeat_days > 0 => {
            z += rule.log_overdue_ratio * ln1p(f64::from(silent_days) / gap.max(1.0))
        }
        _ => z += rule.single_day,
    }
    1.0 / (1.0 + (-z).exp())
}

/// The churn risk and its band; each reason goes to `reasons` if there is one (a verdict), and
/// none is built otherwise (the marks alone).
fn churn_risk(
    state: &CustomerState,
    policy: &ChurnPolicy,
    today: Day,
    month: Month,
    reasons: Option<&mut Vec<RiskReason>>,
) -> (f64, RiskBand) {
    let mut risk = RiskSum {
        remaining: 1.0,
        total: -0.0,
        reasons,
    };
    let days = &state.purchases.days;

    // Buying silence against the customer's own rhythm, tenure and recent activity.
    match (days.first(), days.latest()) {
        (Some(first), Some(last)) => {
            let s = &policy.silence;
            let distinct = days.distinct();
            let silent_days = (today - last).max(0);
            let gap = usual_gap(state);
            let recent = days.count_between(today - s.recent_window_days as i32 + 1, today);
            let tenure = (today - first).max(0);
            let probability =
                silence_probability(s, silent_days, distinct - 1, tenure, gap, recent);
            risk.push(
                RiskFactor::BuyingSilence,
                s.max_points * probability,
                &|| ReasonDetail::Silence {
                    silent_days,
                    usual_gap_days: gap.map(round2),
                    purchase_days: distinct,
                    recent_days: recent,
                    recent_window_days: s.recent_window_days,
                    probability: round2(probability),
                },
            );
        }
        _ => risk.push(
            RiskFactor::NeverBought,
            policy.silence.never_bought_points,
            &|| ReasonDetail::NeverBought,
        ),
    }

    // Falling purchases.
    let f = &policy.falling_purchases;
    let (recent, earlier) =
        compare_windows(month, f.window_months, &state.purchases.months, |minor| {
            minor
        });
    let drop = drop_percent(recent, earlier);
    if drop >= f.min_drop_percent {
        risk.push(
            RiskFactor::FallingPurchases,
            f.max_points * drop / 100.0,
            &|| ReasonDetail::Falling {
                drop_percent: round2(drop),
                months: f.window_months,
            },
        );
    }

    // Complaints: open ones by severity and age, then unsatisfying resolutions.
    let c = &policy.complaints;
    for open in &state.complaints.open {
        let open_days = (today - day_of(open.filed_at)).max(0);
        let deadline = c.resolution_days.of(open.severity) as i32;
        let overdue = (open_days > deadline).then_some(open_days - deadline);
        risk.push(
            RiskFactor::OpenComplaint,
            c.open_points.of(open.severity) + overdue.map_or(0.0, |_| c.overdue_points),
            &|| ReasonDetail::Complaint {
                id: open.id.clone(),
                severity: open.severity,
                open_days,
                overdue_days: overdue,
            },
        );
    }
    // The last N complete months: unlike sentiment, the as_of month does not count.
    let unsatisfied = state.complaints.months.fold(
        month - 1,
        i32::from(c.unsatisfied_window_months),
        0,
        |n, m| n + u32::from(m.unsatisfied),
    );
    risk.push(
        RiskFactor::UnsatisfiedResolution,
        (f64::from(unsatisfied) * c.unsatisfied_points).min(100.0),
        &|| ReasonDetail::Unsatisfied {
            count: unsatisfied,
            months: c.unsatisfied_window_months,
        },
    );

    // Contracts.
    let k = &policy.contracts;
    let any_active = state.contracts.iter().any(|x| x.active_on(today));
    for contract in &state.contracts {
        if let Some(terminated) = contract.terminated_on {
            let ago = today - terminated;
            if (0..=k.recent_days as i32).contains(&ago) {
                risk.push(RiskFactor::ContractTerminated, k.terminated_points, &|| {
                    ReasonDetail::ContractTerminated {
                        id: contract.id.clone(),
                        days_ago: ago,
                    }
                });
                continue;
            }
        }
        let Some(last) = contract.last_day() else {
            continue;
        };
        if contract.terminated_on.is_some() {
            continue;
        }
        let in_days = last - today;
        if contract.active_on(today) && in_days <= k.ending_within_days as i32 {
            risk.push(RiskFactor::ContractEnding, k.ending_points, &|| {
                ReasonDetail::ContractEnding {
                    id: contract.id.clone(),
                    in_days,
                }
            });
        } else if !any_active && (1..=k.recent_days as i32).contains(&-in_days) {
            risk.push(RiskFactor::ContractLapsed, k.lapsed_points, &|| {
                ReasonDetail::ContractLapsed {
                    id: contract.id.clone(),
                    days_ago: -in_days,
                }
            });
        }
    }

    // A recent change of account manager, fading over the window.
    let r = &policy.reassignment;
    if let Some(last) = &state.last_reassignment {
        let ago = today - day_of(last.at);
        if (0..r.recent_days as i32).contains(&ago) {
            let fade = 1.0 - f64::from(ago) / f64::from(r.recent_days);
            risk.push(
                RiskFactor::AccountManagerChanged,
                r.points.of(last.value.reason) * fade,
                &|| ReasonDetail::Reassigned {
                    reason: last.value.reason,
                    days_ago: ago,
                    from: last.value.from.clone(),
                    to: last.value.to.clone(),
                },
            );
        }
    }

    // Negative sentiment, counting the as_of month.
    let s = &policy.sentiment;
    let negative = state
        .interactions
        .months
        .fold(month, i32::from(s.window_months), 0, |n, m| {
            n + u32::from(m.negative)
        });
    risk.push(
        RiskFactor::NegativeSentiment,
        (f64::from(negative) * s.points_per_negative).min(s.max_points),
        &|| ReasonDetail::Negative {
            count: negative,
            months: s.window_months,
        },
    );

    // Fading engagement.
    let e = &policy.engagement;
    let (recent, earlier) =
        compare_windows(month, e.window_months, &state.interactions.months, |m| {
            u64::from(m.count)
        });
    let drop = drop_percent(recent, earlier);
    if drop >= e.min_drop_percent {
        risk.push(
            RiskFactor::FadingEngagement,
            e.max_points * drop / 100.0,
            &|| ReasonDetail::Fading {
                drop_percent: round2(drop),
                months: e.window_months,
            },
        );
    }

    // The sum of the reported (rounded) shares, so that the reasons always add up to the risk.
    let risk = round2(risk.total.min(100.0));
    let b = &policy.bands;
    let band = if risk >= b.critical {
        RiskBand::Critical
    } else if risk >= b.high {
        RiskBand::High
    } else if risk >= b.medium {
        RiskBand::Medium
    } else {
        RiskBand::Low
    };
    (risk, band)
}

/// A churn risk being added up, reason by reason.
struct RiskSum<'a> {
    /// Each factor's points are what the risk would be if it were alone; they combine like
    /// independent chances, and each reason keeps its share of what the ones before left.
    remaining: f64,
    /// The reported (rounded) shares so far, added in order from -0.0 as `Iterator::sum` does.
    total: f64,
    reasons: Option<&'a mut Vec<RiskReason>>,
}

impl RiskSum<'_> {
    fn push(&mut self, factor: RiskFactor, points: f64, detail: &dyn Fn() -> ReasonDetail) {
        let alone = (points / 100.0).clamp(0.0, 1.0);
        if alone > 0.0 {
            let share = self.remaining * alone;
            self.remaining -= share;
            let points = round2(share * 100.0);
            self.total += points;
            if let Some(reasons) = self.reasons.as_deref_mut() {
                reasons.push(RiskReason {
                    factor,
                    points,
                    detail: detail(),
                });
            }
        }
    }
}
