//! The fixed vocabulary of the demo world: segments, regions (each with its currency, office
//! hours and buying season), channels, company-name parts and the free texts reps write.
//! Everything here is validated once, when a generator is built.

use clientlog_domain::event::{InteractionKind, Severity};
use clientlog_domain::values::{Actor, Currency, Label, Personal, Source, Text};

use crate::DemoError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment {
    Enterprise,
    MidMarket,
    Smb,
}

impl Segment {
    pub(crate) const ALL: [Segment; 3] = [Segment::Enterprise, Segment::MidMarket, Segment::Smb];
    /// Share of customers, in percent.
    pub(crate) const WEIGHTS: [u32; 3] = [10, 30, 60];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            Segment::Enterprise => "enterprise",
            Segment::MidMarket => "mid-market",
            Segment::Smb => "smb",
        }
    }
    /// Median order value in CNY (whole yuan) before the customer's own scale.
    pub(crate) fn median_order_cny(self) -> f64 {
        match self {
            Segment::Enterprise => 180_000.0,
            Segment::MidMarket => 35_000.0,
            Segment::Smb => 4_500.0,
        }
    }
    /// Median days between orders before the customer's own rhythm.
    pub(crate) fn median_gap_days(self) -> f64 {
        match self {
            Segment::Enterprise => 18.0,
            Segment::MidMarket => 30.0,
            Segment::Smb => 55.0,
        }
    }
    /// Monthly probability of drifting away with no risk factor present.
    pub(crate) fn base_churn(self) -> f64 {
        match self {
            Segment::Enterprise => 0.004,
            Segment::MidMarket => 0.007,
            Segment::Smb => 0.011,
        }
    }
    pub(crate) fn contract_at_start(self) -> f64 {
        match self {
            Segment::Enterprise => 0.7,
            Segment::MidMarket => 0.35,
            Segment::Smb => 0.08,
        }
    }
    pub(crate) fn complaint_rate(self) -> f64 {
        match self {
            Segment::Enterprise => 0.06,
            Segment::MidMarket => 0.035,
            Segment::Smb => 0.02,
        }
    }
    pub(crate) fn interaction_rate(self) -> f64 {
        match self {
            Segment::Enterprise => 2.2,
            Segment::MidMarket => 1.1,
            Segment::Smb => 0.45,
        }
    }
    /// Months between account assessments.
    pub(crate) fn assessment_period(self) -> u32 {
        match self {
            Segment::Enterprise => 3,
            Segment::MidMarket | Segment::Smb => 6,
        }
    }
    pub(crate) fn base_coverage(self) -> f64 {
        match self {
            Segment::Enterprise => 62.0,
            Segment::MidMarket => 48.0,
            Segment::Smb => 32.0,
        }
    }
}

/// The buying calendar a region follows (relative order rate by calendar month, Jan = 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Season {
    /// Stocking before Spring Festival, the festival lull, 618, Golden Week, Singles' Day.
    China,
    /// A quiet August and January, a busy year end.
    West,
}

impl Season {
    pub(crate) fn factor(self, month0: u8) -> f64 {
        const CHINA: [f64; 12] = [
            1.1, 0.6, 1.0, 1.0, 1.0, 1.15, 0.95, 0.95, 1.05, 0.85, 1.25, 1.2,
        ];
        const WEST: [f64; 12] = [
            0.85, 0.9, 1.05, 1.0, 1.0, 1.0, 0.9, 0.75, 1.05, 1.05, 1.15, 1.25,
        ];
        let table = match self {
            Season::China => &CHINA,
            Season::West => &WEST,
        };
        table[usize::from(month0 % 12)]
    }
}

pub(crate) struct RegionSpec {
    pub name: &'static str,
    /// Share of customers, in percent.
    pub weight: u32,
    pub currency: &'static str,
    /// Yuan per unit of the region's currency, to scale order values.
    pub cny_per_unit: f64,
    /// UTC hour at which the region's office day starts.
    pub first_utc_hour: i64,
    pub season: Season,
    pub name_style: NameStyle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameStyle {
    China,
    Europe,
    America,
}

pub(crate) const REGIONS: [RegionSpec; 6] = [
    RegionSpec {
        name: "east-china",
        weight: 30,
        currency: "CNY",
        cny_per_unit: 1.0,
        first_utc_hour: 1,
        season: Season::China,
        name_style: NameStyle::China,
    },
    RegionSpec {
        name: "north-china",
        weight: 20,
        currency: "CNY",
        cny_per_unit: 1.0,
        first_utc_hour: 1,
        season: Season::China,
        name_style: NameStyle::China,
    },
    RegionSpec {
        name: "south-china",
        weight: 20,
        currency: "CNY",
        cny_per_unit: 1.0,
        first_utc_hour: 1,
        season: Season::China,
        name_style: NameStyle::China,
    },
    RegionSpec {
        name: "west-china",
        weight: 10,
        currency: "CNY",
        cny_per_unit: 1.0,
        first_utc_hour: 1,
        season: Season::China,
        name_style: NameStyle::China,
    },
    RegionSpec {
        name: "europe",
        weight: 11,
        currency: "EUR",
        cny_per_unit: 7.8,
        first_utc_hour: 8,
        season: Season::West,
        name_style: NameStyle::Europe,
    },
    RegionSpec {
        name: "north-america",
        weight: 9,
        currency: "USD",
        cny_per_unit: 7.2,
        first_utc_hour: 14,
        season: Season::West,
        name_style: NameStyle::America,
    },
];

pub(crate) const CHANNELS: [&str; 4] = ["direct", "distributor", "online", "partner"];
pub(crate) const CHANNEL_WEIGHTS: [u32; 4] = [45, 25, 20, 10];

pub(crate) const CHINA_NAMES: [&str; 24] = [
    "Huaxin",
    "Jinlong",
    "Hengtai",
    "Zhongda",
    "Xinghe",
    "Tianrui",
    "Baoli",
    "Dongfang",
    "Kaiyuan",
    "Ruifeng",
    "Shengda",
    "Minghui",
    "Yongxin",
    "Haitong",
    "Jiahe",
    "Longsheng",
    "Fuda",
    "Hongyu",
    "Xinyuan",
    "Changjiang",
    "Huamei",
    "Guotai",
    "Anxin",
    "Dingsheng",
];
pub(crate) const EUROPE_NAMES: [&str; 16] = [
    "Nordwind",
    "Alpenblick",
    "Lumiere",
    "Bergmann",
    "Vasquez",
    "Rotterdam Freight",
    "Kessler",
    "Moreau",
    "Lindqvist",
    "Brenner",
    "Castellano",
    "Vermeer",
    "Halvorsen",
    "Duval",
    "Novak",
    "Ferraro",
];
pub(crate) const AMERICA_NAMES: [&str; 16] = [
    "Summit",
    "Lakeshore",
    "Pioneer",
    "Redwood",
    "Bluewater",
    "Keystone",
    "Granite Peak",
    "Evergreen",
    "Liberty",
    "Cascade",
    "Ironbridge",
    "Prairie",
    "Harbor Point",
    "Silverline",
    "Northstar",
    "Copperfield",
];
pub(crate) const TRADES: [&str; 16] = [
    "Trading",
    "Logistics",
    "Electronics",
    "Foods",
    "Machinery",
    "Textiles",
    "Pharma",
    "Retail",
    "Packaging",
    "Chemicals",
    "Auto Parts",
    "Furniture",
    "Medical",
    "Building Materials",
    "Optics",
    "Home Goods",
];

pub(crate) fn company_suffix(style: NameStyle, pick: usize) -> &'static str {
    match style {
        NameStyle::China => ["Co., Ltd.", "Group Co., Ltd.", "Technology Co., Ltd."][pick % 3],
        NameStyle::Europe => ["GmbH", "S.A.", "B.V.", "S.r.l.", "AB"][pick % 5],
        NameStyle::America => ["Inc.", "LLC", "Corp.", "Co."][pick % 4],
    }
}

pub(crate) const COMPLAINT_CATEGORIES: [&str; 6] = [
    "delivery",
    "quality",
    "billing",
    "service",
    "product",
    "documentation",
];

pub(crate) const SEVERITIES: [Severity; 4] = [
    Severity::Low,
    Severity::Medium,
    Severity::High,
    Severity::Critical,
];
pub(crate) const SEVERITY_WEIGHTS: [u32; 4] = [45, 35, 15, 5];

pub(crate) const INTERACTION_KINDS: [InteractionKind; 8] = [
    InteractionKind::Visit,
    InteractionKind::Call,
    InteractionKind::Meeting,
    InteractionKind::Email,
    InteractionKind::Demo,
    InteractionKind::Event,
    InteractionKind::Support,
    InteractionKind::Other,
];

/// Weights of `INTERACTION_KINDS` per segment: large accounts get visits and meetings, small
/// ones calls and e-mail.
pub(crate) fn interaction_weights(segment: Segment) -> &'static [u32; 8] {
    match segment {
        Segment::Enterprise => &[20, 18, 25, 20, 5, 5, 5, 2],
        Segment::MidMarket => &[12, 28, 15, 28, 6, 4, 5, 2],
        Segment::Smb => &[6, 35, 4, 36, 4, 3, 10, 2],
    }
}

const INTERACTION_SUMMARIES: [&str; 10] = [
    "Quarterly business review with the purchasing team",
    "Discussed next season's volumes and delivery slots",
    "Follow-up on the open quotation",
    "Introduced the new product line",
    "Customer asked about volume discounts",
    "Checked in after the last delivery",
    "Walked through the invoice questions",
    "Customer mentioned a competitor's offer",
    "Planning a site visit with their operations lead",
    "Shared updated price list",
];

const COMPLAINT_SUMMARIES: [[&str; 2]; 6] = [
    [
        "Shipment arrived a week late",
        "Partial delivery without notice",
    ],
    [
        "Batch failed incoming inspection",
        "Defect rate above the agreed level",
    ],
    [
        "Invoice does not match the order",
        "Charged twice for one order",
    ],
    [
        "No answer from the account team for two weeks",
        "Support ticket closed without a fix",
    ],
    [
        "Feature missing from the delivered version",
        "Product does not match the specification",
    ],
    [
        "Certificates missing from the shipment",
        "Manual in the wrong language",
    ],
];

const RESOLUTIONS: [&str; 6] = [
    "Replacement shipped at our cost",
    "Credit note issued",
    "Process fixed and customer informed",
    "Refund of the disputed amount",
    "Root cause found in packaging; corrected",
    "Explained the terms; customer accepted",
];

const ASSESSMENT_NOTES: [&str; 6] = [
    "Strong relationship with the buyer; room to grow in new plants",
    "Buys from two competitors as well",
    "Budget cuts announced for next year",
    "Expanding into new cities, good fit for our range",
    "Decision maker changed recently",
    "Stable account, little upside",
];

pub(crate) const TERMINATION_REASONS: [&str; 4] = [
    "Customer moved to a competitor",
    "Budget cut at the customer",
    "Service quality below expectations",
    "Customer consolidated suppliers",
];

pub(crate) const AUTO_RENEW_CANCELLED: &str = "Auto-renewal cancelled by the customer";

/// The vocabulary as validated domain values, built once per generator.
pub(crate) struct Catalog {
    pub source_crm: Source,
    pub source_erp: Source,
    pub source_support: Source,
    pub actor_erp: Actor,
    pub actor_crm: Actor,
    pub actor_support: Actor,
    pub segments: Vec<Label>,
    pub regions: Vec<Label>,
    pub currencies: Vec<Currency>,
    pub channels: Vec<Label>,
    pub categories: Vec<Label>,
    pub interaction_summaries: Vec<Personal<Text>>,
    /// Indexed like `COMPLAINT_CATEGORIES`.
    pub complaint_summaries: Vec<Vec<Personal<Text>>>,
    pub resolutions: Vec<Personal<Text>>,
    pub assessment_notes: Vec<Personal<Text>>,
    pub termination_reasons: Vec<Text>,
    pub auto_renew_cancelled: Text,
}

fn label(s: &str) -> Result<Label, DemoError> {
    Label::parse(s).map_err(|e| DemoError::Vocabulary(format!("label {s:?}: {e}")))
}

fn text(s: &str) -> Result<Text, DemoError> {
    Text::parse(s).map_err(|e| DemoError::Vocabulary(format!("text {s:?}: {e}")))
}

fn personal(s: &str) -> Result<Personal<Text>, DemoError> {
    text(s).map(Personal)
}

impl Catalog {
    pub(crate) fn build() -> Result<Self, DemoError> {
        let source =
            |s: &str| Source::parse(s).map_err(|e| DemoError::Vocabulary(format!("{s}: {e}")));
        let actor =
            |s: &str| Actor::parse(s).map_err(|e| DemoError::Vocabulary(format!("{s}: {e}")));
        Ok(Catalog {
            source_crm: source("/demo/crm")?,
            source_erp: source("/demo/erp")?,
            source_support: source("/demo/support")?,
            actor_erp: actor("system:erp")?,
            actor_crm: actor("system:crm")?,
            actor_support: actor("support:desk")?,
            segments: Segment::ALL
                .iter()
                .map(|s| label(s.name()))
                .collect::<Result<_, _>>()?,
            regions: REGIONS
                .iter()
                .map(|r| label(r.name))
                .collect::<Result<_, _>>()?,
            currencies: REGIONS
                .iter()
                .map(|r| {
                    Currency::parse(r.currency)
                        .map_err(|e| DemoError::Vocabulary(format!("{}: {e}", r.currency)))
                })
                .collect::<Result<_, _>>()?,
            channels: CHANNELS
                .iter()
                .map(|c| label(c))
                .collect::<Result<_, _>>()?,
            categories: COMPLAINT_CATEGORIES
                .iter()
                .map(|c| label(c))
                .collect::<Result<_, _>>()?,
            interaction_summaries: INTERACTION_SUMMARIES
                .iter()
                .map(|s| personal(s))
                .collect::<Result<_, _>>()?,
            complaint_summaries: COMPLAINT_SUMMARIES
                .iter()
                .map(|pair| pair.iter().map(|s| personal(s)).collect())
                .collect::<Result<_, _>>()?,
            resolutions: RESOLUTIONS
                .iter()
                .map(|s| personal(s))
                .collect::<Result<_, _>>()?,
            assessment_notes: ASSESSMENT_NOTES
                .iter()
                .map(|s| personal(s))
                .collect::<Result<_, _>>()?,
            termination_reasons: TERMINATION_REASONS
                .iter()
                .map(|s| text(s))
                .collect::<Result<_, _>>()?,
            auto_renew_cancelled: text(AUTO_RENEW_CANCELLED)?,
        })
    }
}
