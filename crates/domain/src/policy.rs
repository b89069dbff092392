//! Policies are data: grading weights and thresholds, lifecycle rules and churn-risk factors,
//! loaded from `projections/*.toml`, validated on load (errors name the key), and versioned by a
//! hash of their canonical content so that every stored verdict can name the policy behind it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::{ReassignReason, Severity};
use crate::values::Currency;

/// A policy file that could not be read, parsed or validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {key}: {problem}")]
pub struct PolicyError {
    pub file: String,
    /// Dotted TOML key, e.g. `weights.loyalty`.
    pub key: String,
    pub problem: String,
}

/// The three policies a verdict is computed under.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies {
    pub grading: Versioned<GradingPolicy>,
    pub lifecycle: Versioned<LifecyclePolicy>,
    pub churn: Versioned<ChurnPolicy>,
}

/// A validated policy with its version: `sha256:` and the first 16 hex digits of the hash of
/// its canonical JSON form (so comments and formatting do not change the version).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<P> {
    pub version: String,
    pub policy: P,
    /// The text it was parsed from, comments included: stored with every projection version
    /// built under it, so the policy live at any time can be read back and reloaded.
    pub source: String,
}

pub const GRADING_FILE: &str = "grading.toml";
pub const LIFECYCLE_FILE: &str = "lifecycle.toml";
pub const CHURN_FILE: &str = "churn.toml";

/// The policies shipped in `projections/`, compiled in so the binary works from anywhere.
pub const DEFAULT_GRADING: &str = include_str!("../../../projections/grading.toml");
pub const DEFAULT_LIFECYCLE: &str = include_str!("../../../projections/lifecycle.toml");
pub const DEFAULT_CHURN: &str = include_str!("../../../projections/churn.toml");

impl Policies {
    /// The shipped defaults (`projections/*.toml`).
    pub fn defaults() -> Self {
        // The shipped files are validated by this crate's tests; failing here is a build defect.
        Self {
            grading: parse(GRADING_FILE, DEFAULT_GRADING).expect("shipped grading.toml is valid"),
            lifecycle: parse(LIFECYCLE_FILE, DEFAULT_LIFECYCLE)
                .expect("shipped lifecycle.toml is valid"),
            churn: parse(CHURN_FILE, DEFAULT_CHURN).expect("shipped churn.toml is valid"),
        }
    }

    /// Parses the three policies from their texts (as stored with a projection version).
    pub fn from_sources(grading: &str, lifecycle: &str, churn: &str) -> Result<Self, PolicyError> {
        Ok(Self {
            grading: parse(GRADING_FILE, grading)?,
            lifecycle: parse(LIFECYCLE_FILE, lifecycle)?,
            churn: parse(CHURN_FILE, churn)?,
        })
    }

    /// Whether both name the same three policy versions (texts may differ in comments only).
    pub fn same_versions(&self, other: &Self) -> bool {
        self.grading.version == other.grading.version
            && self.lifecycle.version == other.lifecycle.version
            && self.churn.version == other.churn.version
    }

    /// Reads the three policy files from a directory.
    pub fn load_dir(dir: &Path) -> Result<Self, PolicyError> {
        Ok(Self {
            grading: load(&dir.join(GRADING_FILE))?,
            lifecycle: load(&dir.join(LIFECYCLE_FILE))?,
            churn: load(&dir.join(CHURN_FILE))?,
        })
    }
}

/// A policy type: parsed from TOML, then checked as a whole.
pub trait Policy: Serialize + for<'de> Deserialize<'de> {
    fn validate(&self) -> Result<(), (String, String)>;
}

/// Reads and validates one policy file.
pub fn load<P: Policy>(path: &Path) -> Result<Versioned<P>, PolicyError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
        file: file.clone(),
        key: "(file)".into(),
        problem: format!("cannot be read: {e}"),
    })?;
    parse(&file, &text)
}

/// Parses and validates policy text; `file` only names the source in errors.
pub fn parse<P: Policy>(file: &str, text: &str) -> Result<Versioned<P>, PolicyError> {
    let error = |key: String, problem: String| PolicyError {
        file: file.to_string(),
        key,
        problem,
    };
    let deserializer = toml::Deserializer::new(text);
    let policy: P = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = match e.path().to_string().as_str() {
            "." => "(root)".to_string(),
            path => path.to_string(),
        };
        error(key, e.inner().message().trim().to_string())
    })?;
    policy
        .validate()
        .map_err(|(key, problem)| error(key, problem))?;
    let canonical =
        serde_json::to_vec(&policy).map_err(|e| error("(root)".into(), e.to_string()))?;
    let digest = Sha256::digest(&canonical);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(Versioned {
        version: format!("sha256:{hex}"),
        policy,
        source: text.to_string(),
    })
}

fn check_range(key: &str, value: f64, min: f64, max: f64) -> Result<(), (String, String)> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err((
            key.to_string(),
            format!("{value} is out of range {min}..={max}"),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Grading

/// The five factors of the grade, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    MonthlySales,
    SalesGrowth,
    ChannelCoverage,
    Loyalty,
    DevelopmentProspects,
}

impl Factor {
    pub const ALL: [Factor; 5] = [
        Factor::MonthlySales,
        Factor::SalesGrowth,
        Factor::ChannelCoverage,
        Factor::Loyalty,
        Factor::DevelopmentProspects,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::MonthlySales => "monthly_sales",
            Factor::SalesGrowth => "sales_growth",
            Factor::ChannelCoverage => "channel_coverage",
            Factor::Loyalty => "loyalty",
            Factor::DevelopmentProspects => "development_prospects",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradingPolicy {
    pub weights: Weights,
    pub thresholds: Thresholds,
    pub monthly_sales: MonthlySalesRule,
    pub sales_growth: SalesGrowthRule,
    pub channel_coverage: AssessedRule,
    pub development_prospects: AssessedRule,
    pub loyalty: LoyaltyRule,
}

/// Percent of the 100-point score each factor carries; they sum to 100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub monthly_sales: u8,
    pub sales_growth: u8,
    pub channel_coverage: u8,
    pub loyalty: u8,
    pub development_prospects: u8,
}

impl Weights {
    pub fn of(&self, factor: Factor) -> u8 {
        match factor {
            Factor::MonthlySales => self.monthly_sales,
            Factor::SalesGrowth => self.sales_growth,
            Factor::ChannelCoverage => self.channel_coverage,
            Factor::Loyalty => self.loyalty,
            Factor::DevelopmentProspects => self.development_prospects,
        }
    }
}

/// The lowest score of each grade; E is everything below D.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    #[serde(rename = "A")]
    pub a: f64,
    #[serde(rename = "B")]
    pub b: f64,
    #[serde(rename = "C")]
    pub c: f64,
    #[serde(rename = "D")]
    pub d: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonthlySalesRule {
    /// Trailing calendar months, including the as_of month, whose average is scored.
    pub window_months: u8,
    /// The average monthly sales, in minor units per currency, that scores 100.
    pub target_minor: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesGrowthRule {
    /// Sales of the last `window_months` months are compared with the `window_months` before.
    pub window_months: u8,
    /// Growth (percent) at or below which the sub-score is 0.
    pub floor_percent: f64,
    /// Growth (percent) at or above which the sub-score is 100.
    pub ceiling_percent: f64,
    /// Sub-score when there were no sales in either window.
    pub no_sales_score: f64,
    /// Sub-score when sales appear in the recent window after none in the earlier one.
    pub new_sales_score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessedRule {
    /// Sub-score when the customer has never been assessed.
    pub default_score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoyaltyRule {
    /// Points for tenure (time since first purchase), reached in full at `tenure_full_months`.
    pub tenure_points: f64,
    pub tenure_full_months: u16,
    /// Points for repeat buying: months with a purchase among the last 12.
    pub repeat_points: f64,
    /// Points for a clean complaint history, minus the penalties below (not below 0).
    pub complaint_points: f64,
    /// Penalty per complaint filed in the last 12 months, by severity.
    pub complaint_penalty: SeverityTable,
    /// Penalty per complaint resolved to the customer's dissatisfaction (ever).
    pub unsatisfied_penalty: f64,
}

/// One number per complaint severity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityTable {
    pub low: f64,
    pub medium: f64,
    pub high: f64,
    pub critical: f64,
}

impl SeverityTable {
    pub fn of(&self, severity: Severity) -> f64 {
        match severity {
            Severity::Low => self.low,
            Severity::Medium => self.medium,
            Severity::High => self.high,
            Severity::Critical => self.critical,
        }
    }
    fn validate(&self, key: &str, max: f64) -> Result<(), (String, String)> {
        for (name, v) in [
            ("low", self.low),
            ("medium", self.medium),
            ("high", self.high),
            ("critical", self.critical),
        ] {
            check_range(&format!("{key}.{name}"), v, 0.0, max)?;
        }
        Ok(())
    }
}

impl Policy for GradingPolicy {
    fn validate(&self) -> Result<(), (String, String)> {
        let w = &self.weights;
        let sum: u32 = Factor::ALL.iter().map(|&f| u32::from(w.of(f))).sum();
        if sum != 100 {
            return Err((
                "weights".into(),
                format!("sum to {sum}; they must sum to 100"),
            ));
        }
        let t = &self.thresholds;
        check_range("thresholds.A", t.a, 0.0, 100.0)?;
        for (key, value, above_key, above) in [
            ("thresholds.B", t.b, "thresholds.A", t.a),
            ("thresholds.C", t.c, "thresholds.B", t.b),
            ("thresholds.D", t.d, "thresholds.C", t.c),
        ] {
            check_range(key, value, 0.0, 100.0)?;
            if value >= above {
                return Err((
                    key.into(),
                    format!(
                        "{value} must be below {above_key} ({above}): thresholds strictly descend"
                    ),
                ));
            }
        }
        let ms = &self.monthly_sales;
        check_range(
            "monthly_sales.window_months",
            ms.window_months.into(),
            1.0,
            12.0,
        )?;
        if ms.target_minor.is_empty() {
            return Err((
                "monthly_sales.target_minor".into(),
                "name at least one currency's target".into(),
            ));
        }
        for (code, &target) in &ms.target_minor {
            let key = format!("monthly_sales.target_minor.{code}");
            Currency::parse(code).map_err(|e| (key.clone(), e.0))?;
            if target == 0 {
                return Err((key, "must be greater than 0".into()));
            }
        }
        let g = &self.sales_growth;
        check_range(
            "sales_growth.window_months",
            g.window_months.into(),
            1.0,
            6.0,
        )?;
        check_range("sales_growth.floor_percent", g.floor_percent, -100.0, 0.0)?;
        check_range(
            "sales_growth.ceiling_percent",
            g.ceiling_percent,
            0.0,
            1000.0,
        )?;
        if g.ceiling_percent <= g.floor_percent {
            return Err((
                "sales_growth.ceiling_percent".into(),
                "must be above floor_percent".into(),
            ));
        }
        check_range("sales_growth.no_sales_score", g.no_sales_score, 0.0, 100.0)?;
        check_range(
            "sales_growth.new_sales_score",
            g.new_sales_score,
            0.0,
            100.0,
        )?;
        check_range(
            "channel_coverage.default_score",
            self.channel_coverage.default_score,
            0.0,
            100.0,
        )?;
        check_range(
            "development_prospects.default_score",
            self.development_prospects.default_score,
            0.0,
            100.0,
        )?;
        let l = &self.loyalty;
        check_range("loyalty.tenure_points", l.tenure_points, 0.0, 100.0)?;
        check_range("loyalty.repeat_points", l.repeat_points, 0.0, 100.0)?;
        check_range("loyalty.complaint_points", l.complaint_points, 0.0, 100.0)?;
        let points = l.tenure_points + l.repeat_points + l.complaint_points;
        if (points - 100.0).abs() > 1e-9 {
            return Err((
                "loyalty".into(),
                format!(
                    "tenure_points + repeat_points + complaint_points = {points}; they must sum to 100"
                ),
            ));
        }
        check_range(
            "loyalty.tenure_full_months",
            l.tenure_full_months.into(),
            1.0,
            240.0,
        )?;
        l.complaint_penalty
            .validate("loyalty.complaint_penalty", 100.0)?;
        check_range(
            "loyalty.unsatisfied_penalty",
            l.unsatisfied_penalty,
            0.0,
            100.0,
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecyclePolicy {
    /// The usual gap between purchase days assumed for a customer who bought on one day only.
    pub default_gap_days: u32,
    pub established: EstablishedRule,
    pub declining: DecliningRule,
    pub churned: ChurnedRule,
    pub reactivated: ReactivatedRule,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstablishedRule {
    /// Days since the first purchase before a customer can be established.
    pub min_tenure_days: u32,
    /// Distinct days with a purchase needed to be established.
    pub min_purchase_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecliningRule {
    /// Declining when the silence since the last purchase reaches this multiple of the usual gap…
    pub overdue_ratio: f64,
    /// …but never before this many days.
    pub min_overdue_days: u32,
    /// Or when sales of the last `window_months` fell by at least this percent against the
    /// `window_months` before.
    pub sales_drop_percent: f64,
    pub window_months: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnedRule {
    /// Churned when the silence reaches this multiple of the usual gap, clamped to the bounds below.
    pub overdue_ratio: f64,
    pub min_days: u32,
    pub max_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactivatedRule {
    /// How long a customer who came back after a churn-length silence counts as reactivated.
    pub for_days: u32,
}

impl Policy for LifecyclePolicy {
    fn validate(&self) -> Result<(), (String, String)> {
        check_range(
            "default_gap_days",
            self.default_gap_days.into(),
            1.0,
            3650.0,
        )?;
        check_range(
            "established.min_tenure_days",
            self.established.min_tenure_days.into(),
            0.0,
            3650.0,
        )?;
        check_range(
            "established.min_purchase_days",
            self.established.min_purchase_days.into(),
            1.0,
            10_000.0,
        )?;
        let d = &self.declining;
        check_range("declining.overdue_ratio", d.overdue_ratio, 1.0, 100.0)?;
        check_range(
            "declining.min_overdue_days",
            d.min_overdue_days.into(),
            1.0,
            3650.0,
        )?;
        check_range(
            "declining.sales_drop_percent",
            d.sales_drop_percent,
            1.0,
            100.0,
        )?;
        check_range("declining.window_months", d.window_months.into(), 1.0, 6.0)?;
        let c = &self.churned;
        check_range("churned.overdue_ratio", c.overdue_ratio, 1.0, 100.0)?;
        if c.overdue_ratio <= d.overdue_ratio {
            return Err((
                "churned.overdue_ratio".into(),
                format!(
                    "{} must be above declining.overdue_ratio ({})",
                    c.overdue_ratio, d.overdue_ratio
                ),
            ));
        }
        check_range("churned.min_days", c.min_days.into(), 1.0, 3650.0)?;
        check_range("churned.max_days", c.max_days.into(), 1.0, 3650.0)?;
        if c.max_days < c.min_days {
            return Err((
                "churned.max_days".into(),
                "must not be below churned.min_days".into(),
            ));
        }
        if c.min_days <= d.min_overdue_days {
            return Err((
                "churned.min_days".into(),
                "must be above declining.min_overdue_days".into(),
            ));
        }
        check_range(
            "reactivated.for_days",
            self.reactivated.for_days.into(),
            1.0,
            3650.0,
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Churn risk

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnPolicy {
    pub bands: Bands,
    pub silence: SilenceRule,
    pub falling_purchases: FallingPurchasesRule,
    pub complaints: ComplaintsRule,
    pub contracts: ContractsRule,
    pub reassignment: ReassignmentRule,
    pub sentiment: SentimentRule,
    pub engagement: EngagementRule,
}

/// The lowest risk of each band; `low` is everything below `medium`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bands {
    pub medium: f64,
    pub high: f64,
    pub critical: f64,
}

/// Buying silence judged against the customer's own rhythm, tenure and recent activity: a
/// logistic model of the probability that the customer buys nothing in the coming months, times
/// `max_points`. The formula is documented in `projections/churn.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRule {
    pub max_points: f64,
    pub intercept: f64,
    pub log_silence_days: f64,
    pub log_repeat_days: f64,
    pub log_tenure_days: f64,
    pub log_overdue_ratio: f64,
    pub single_day: f64,
    pub log_recent_days: f64,
    pub recent_window_days: u32,
    /// Points for a customer who never bought (a prospect).
    pub never_bought_points: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallingPurchasesRule {
    pub window_months: u8,
    /// Drops below this percent are noise and score nothing.
    pub min_drop_percent: f64,
    /// Points at a 100 % drop; proportional in between.
    pub max_points: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplaintsRule {
    /// Points per open complaint, by severity.
    pub open_points: SeverityTable,
    /// Days within which a complaint should be resolved, by severity.
    pub resolution_days: SeverityTable,
    /// Extra points per open complaint past its resolution deadline.
    pub overdue_points: f64,
    /// Points per complaint resolved unsatisfactorily in the last `unsatisfied_window_months`.
    pub unsatisfied_points: f64,
    pub unsatisfied_window_months: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractsRule {
    /// A contract ending within this many days, not auto-renewing, counts as ending soon.
    pub ending_within_days: u32,
    pub ending_points: f64,
    /// A contract terminated within `recent_days`.
    pub terminated_points: f64,
    /// The last contract ended within `recent_days` and none is active.
    pub lapsed_points: f64,
    pub recent_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReassignmentRule {
    /// Points right after a change of account manager, by reason; they fade linearly to 0
    /// over `recent_days`.
    pub points: ReasonTable,
    pub recent_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonTable {
    pub staff_turnover: f64,
    pub territory: f64,
    pub workload: f64,
    pub customer_request: f64,
    pub other: f64,
}

impl ReasonTable {
    pub fn of(&self, reason: ReassignReason) -> f64 {
        match reason {
            ReassignReason::StaffTurnover => self.staff_turnover,
            ReassignReason::Territory => self.territory,
            ReassignReason::Workload => self.workload,
            ReassignReason::CustomerRequest => self.customer_request,
            ReassignReason::Other => self.other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentRule {
    /// Calendar months, including the as_of month, in which negative interactions count.
    pub window_months: u8,
    pub points_per_negative: f64,
    pub max_points: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngagementRule {
    /// Interactions of the last `window_months` against the `window_months` before.
    pub window_months: u8,
    pub min_drop_percent: f64,
    /// Points at a 100 % drop; proportional in between.
    pub max_points: f64,
}

impl Policy for ChurnPolicy {
    fn validate(&self) -> Result<(), (String, String)> {
        let b = &self.bands;
        check_range("bands.medium", b.medium, 0.0, 100.0)?;
        check_range("bands.high", b.high, 0.0, 100.0)?;
        check_range("bands.critical", b.critical, 0.0, 100.0)?;
        if !(b.medium < b.high && b.high < b.critical) {
            return Err((
                "bands".into(),
                "medium < high < critical must hold: bands strictly ascend".into(),
            ));
        }
        let s = &self.silence;
        check_range("silence.max_points", s.max_points, 0.0, 100.0)?;
        for (key, value) in [
            ("silence.intercept", s.intercept),
            ("silence.log_silence_days", s.log_silence_days),
            ("silence.log_repeat_days", s.log_repeat_days),
            ("silence.log_tenure_days", s.log_tenure_days),
            ("silence.log_overdue_ratio", s.log_overdue_ratio),
            ("silence.single_day", s.single_day),
            ("silence.log_recent_days", s.log_recent_days),
        ] {
            check_range(key, value, -20.0, 20.0)?;
        }
        check_range(
            "silence.recent_window_days",
            s.recent_window_days.into(),
            1.0,
            1000.0,
        )?;
        check_range(
            "silence.never_bought_points",
            s.never_bought_points,
            0.0,
            100.0,
        )?;
        let f = &self.falling_purchases;
        check_range(
            "falling_purchases.window_months",
            f.window_months.into(),
            1.0,
            6.0,
        )?;
        check_range(
            "falling_purchases.min_drop_percent",
            f.min_drop_percent,
            0.0,
            100.0,
        )?;
        check_range("falling_purchases.max_points", f.max_points, 0.0, 100.0)?;
        let c = &self.complaints;
        c.open_points.validate("complaints.open_points", 100.0)?;
        c.resolution_days
            .validate("complaints.resolution_days", 3650.0)?;
        check_range("complaints.overdue_points", c.overdue_points, 0.0, 100.0)?;
        check_range(
            "complaints.unsatisfied_points",
            c.unsatisfied_points,
            0.0,
            100.0,
        )?;
        check_range(
            "complaints.unsatisfied_window_months",
            c.unsatisfied_window_months.into(),
            1.0,
            12.0,
        )?;
        let k = &self.contracts;
        check_range(
            "contracts.ending_within_days",
            k.ending_within_days.into(),
            1.0,
            3650.0,
        )?;
        check_range("contracts.ending_points", k.ending_points, 0.0, 100.0)?;
        check_range(
            "contracts.terminated_points",
            k.terminated_points,
            0.0,
            100.0,
        )?;
        check_range("contracts.lapsed_points", k.lapsed_points, 0.0, 100.0)?;
        check_range("contracts.recent_days", k.recent_days.into(), 1.0, 3650.0)?;
        let r = &self.reassignment;
        for (name, v) in [
            ("staff_turnover", r.points.staff_turnover),
            ("territory", r.points.territory),
            ("workload", r.points.workload),
            ("customer_request", r.points.customer_request),
            ("other", r.points.other),
        ] {
            check_range(&format!("reassignment.points.{name}"), v, 0.0, 100.0)?;
        }
        check_range(
            "reassignment.recent_days",
            r.recent_days.into(),
            1.0,
            3650.0,
        )?;
        let s = &self.sentiment;
        check_range("sentiment.window_months", s.window_months.into(), 1.0, 12.0)?;
        check_range(
            "sentiment.points_per_negative",
            s.points_per_negative,
            0.0,
            100.0,
        )?;
        check_range("sentiment.max_points", s.max_points, 0.0, 100.0)?;
        let e = &self.engagement;
        check_range("engagement.window_months", e.window_months.into(), 1.0, 6.0)?;
        check_range(
            "engagement.min_drop_percent",
            e.min_drop_percent,
            0.0,
            100.0,
        )?;
        check_range("engagement.max_points", e.max_points, 0.0, 100.0)?;
        Ok(())
    }
}
