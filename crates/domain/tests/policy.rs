//! Loading the policies of `projections/`: the shipped files are valid, every broken file is
//! refused with an error naming the key, and the version is a hash of the content, not of the
//! text.

use std::path::Path;

use clientlog_domain::policy::{
    parse, ChurnPolicy, GradingPolicy, LifecyclePolicy, Policy, PolicyError, Versioned,
    DEFAULT_CHURN, DEFAULT_GRADING, DEFAULT_LIFECYCLE,
};
use clientlog_domain::Policies;

fn projections() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../projections"))
}

/// `text` with exactly one occurrence of `from` replaced.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} is not unique");
    text.replacen(from, to, 1)
}

fn refused<P: Policy + std::fmt::Debug>(file: &str, text: &str) -> PolicyError {
    parse::<P>(file, text).expect_err("should be refused")
}

fn assert_refused<P: Policy + std::fmt::Debug>(
    file: &str,
    text: &str,
    key: &str,
    problem_contains: &str,
) {
    let err = refused::<P>(file, text);
    assert_eq!(err.key, key, "{err}");
    assert!(
        err.problem.contains(problem_contains),
        "{err} does not say {problem_contains:?}"
    );
    assert_eq!(err.file, file);
    // The message names the file and the key.
    assert!(
        err.to_string().starts_with(&format!("{file}: {key}: ")),
        "{err}"
    );
}

fn version<P: Policy>(text: &str) -> String {
    let v: Versioned<P> = parse("x.toml", text).unwrap();
    v.version
}

#[test]
fn the_shipped_policies_load() {
    let compiled = Policies::defaults();
    let from_disk = Policies::load_dir(projections()).unwrap();
    assert_eq!(compiled, from_disk);
    for version in [
        &compiled.grading.version,
        &compiled.lifecycle.version,
        &compiled.churn.version,
    ] {
        let hex = version.strip_prefix("sha256:").unwrap();
        assert_eq!(hex.len(), 16, "{version}");
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{version}");
    }
    let g = &compiled.grading.policy;
    assert_eq!(
        [
            g.weights.monthly_sales,
            g.weights.sales_growth,
            g.weights.channel_coverage,
            g.weights.loyalty,
            g.weights.development_prospects
        ],
        [50, 20, 10, 10, 10]
    );
    let t = &g.thresholds;
    assert_eq!([t.a, t.b, t.c, t.d], [90.0, 75.0, 60.0, 50.0]);
}

#[test]
fn a_missing_file_is_named() {
    let dir = std::env::temp_dir().join(format!("clientlog-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = Policies::load_dir(&dir).unwrap_err();
    assert_eq!(err.key, "(file)");
    assert!(err.file.ends_with("grading.toml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn weights_must_sum_to_100() {
    let text = edit(DEFAULT_GRADING, "\nloyalty = 10", "\nloyalty = 11");
    assert_refused::<GradingPolicy>("grading.toml", &text, "weights", "sum to 101");
    let text = edit(DEFAULT_GRADING, "monthly_sales = 50", "monthly_sales = 40");
    assert_refused::<GradingPolicy>("grading.toml", &text, "weights", "sum to 90");
}

#[test]
fn thresholds_must_strictly_descend() {
    let text = edit(DEFAULT_GRADING, "B = 75", "B = 90");
    assert_refused::<GradingPolicy>("grading.toml", &text, "thresholds.B", "strictly descend");
    let text = edit(DEFAULT_GRADING, "D = 50", "D = 61");
    assert_refused::<GradingPolicy>("grading.toml", &text, "thresholds.D", "strictly descend");
    let text = edit(DEFAULT_CHURN, "high = 50", "high = 80");
    assert_refused::<ChurnPolicy>("churn.toml", &text, "bands", "strictly ascend");
}

#[test]
fn numbers_out_of_range_are_refused_by_key() {
    let text = edit(DEFAULT_GRADING, "A = 90", "A = 190");
    assert_refused::<GradingPolicy>("grading.toml", &text, "thresholds.A", "out of range");
    let text = edit(
        DEFAULT_GRADING,
        "floor_percent = -50",
        "floor_percent = -150",
    );
    assert_refused::<GradingPolicy>(
        "grading.toml",
        &text,
        "sales_growth.floor_percent",
        "-150 is out of range",
    );
    let text = edit(DEFAULT_GRADING, "CNY = 5_000_000", "CNY = 0");
    assert_refused::<GradingPolicy>(
        "grading.toml",
        &text,
        "monthly_sales.target_minor.CNY",
        "greater than 0",
    );
    let text = edit(DEFAULT_GRADING, "CNY = 5_000_000", "XYZ = 5_000_000");
    assert_refused::<GradingPolicy>(
        "grading.toml",
        &text,
        "monthly_sales.target_minor.XYZ",
        "ISO-4217",
    );
    let text = edit(DEFAULT_CHURN, "critical = 75", "critical = 175");
    assert_refused::<ChurnPolicy>("churn.toml", &text, "bands.critical", "out of range");
    let text = edit(DEFAULT_CHURN, "critical = 20\n", "critical = -1\n");
    assert_refused::<ChurnPolicy>(
        "churn.toml",
        &text,
        "complaints.open_points.critical",
        "out of range",
    );
    let text = edit(
        DEFAULT_LIFECYCLE,
        "overdue_ratio = 2.0",
        "overdue_ratio = 0.5",
    );
    assert_refused::<LifecyclePolicy>(
        "lifecycle.toml",
        &text,
        "declining.overdue_ratio",
        "out of range",
    );
    // A u8 that does not fit is refused by the parser, still by key.
    let text = edit(DEFAULT_GRADING, "monthly_sales = 50", "monthly_sales = 300");
    let err = refused::<GradingPolicy>("grading.toml", &text);
    assert_eq!(err.key, "weights.monthly_sales", "{err}");
}

#[test]
fn unknown_keys_are_refused_by_key() {
    let text = edit(DEFAULT_GRADING, "[weights]\n", "[weights]\ncolour = 1\n");
    let err = refused::<GradingPolicy>("grading.toml", &text);
    assert!(err.key.starts_with("weights"), "{err}");
    assert!(err.problem.contains("colour"), "{err}");
    let text = format!("{DEFAULT_LIFECYCLE}\n[hibernating]\nfor_days = 3\n");
    let err = refused::<LifecyclePolicy>("lifecycle.toml", &text);
    assert!(err.problem.contains("hibernating"), "{err}");
}

#[test]
fn wrong_types_are_refused_by_key() {
    let text = edit(
        DEFAULT_GRADING,
        "[monthly_sales]\nwindow_months = 3",
        "[monthly_sales]\nwindow_months = \"three\"",
    );
    assert_refused::<GradingPolicy>(
        "grading.toml",
        &text,
        "monthly_sales.window_months",
        "invalid type",
    );
    let text = edit(DEFAULT_LIFECYCLE, "for_days = 90", "for_days = 9.5");
    assert_refused::<LifecyclePolicy>(
        "lifecycle.toml",
        &text,
        "reactivated.for_days",
        "invalid type",
    );
    let text = edit(DEFAULT_CHURN, "medium = 25", "medium = true");
    assert_refused::<ChurnPolicy>("churn.toml", &text, "bands.medium", "invalid type");
}

#[test]
fn the_version_is_stable_across_comments_and_layout() {
    let original = version::<GradingPolicy>(DEFAULT_GRADING);
    // Comments, blank lines, spacing, number spelling and key order do not change it.
    let restyled = DEFAULT_GRADING
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| l.split('#').next().unwrap().trim_end().replace(" = ", "="))
        .collect::<Vec<_>>()
        .join("\n\n");
    let restyled = edit(&restyled, "A=90", "A=90.0");
    let restyled = edit(
        &restyled,
        "monthly_sales=50\n\nsales_growth=20",
        "sales_growth=20\n\nmonthly_sales=50",
    );
    let restyled = format!("# a new comment\n{restyled}\n");
    assert_ne!(restyled, DEFAULT_GRADING);
    assert_eq!(version::<GradingPolicy>(&restyled), original);
    // A number changes it.
    let changed = edit(DEFAULT_GRADING, "A = 90", "A = 91");
    assert_ne!(version::<GradingPolicy>(&changed), original);
    let changed = edit(DEFAULT_GRADING, "CNY = 5_000_000", "CNY = 5_000_001");
    assert_ne!(version::<GradingPolicy>(&changed), original);
    // The same holds for the other two.
    let lifecycle = version::<LifecyclePolicy>(DEFAULT_LIFECYCLE);
    let uncommented = DEFAULT_LIFECYCLE
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(version::<LifecyclePolicy>(&uncommented), lifecycle);
    assert_ne!(
        version::<LifecyclePolicy>(&edit(DEFAULT_LIFECYCLE, "for_days = 90", "for_days = 91")),
        lifecycle
    );
    let churn = version::<ChurnPolicy>(DEFAULT_CHURN);
    assert_eq!(
        version::<ChurnPolicy>(&DEFAULT_CHURN.replace("  # a prospect who never bought", "")),
        churn
    );
    assert_ne!(
        version::<ChurnPolicy>(&edit(
            DEFAULT_CHURN,
            "overdue_points = 5",
            "overdue_points = 6"
        )),
        churn
    );
    // The three are different policies with different versions.
    assert_ne!(original, lifecycle);
    assert_ne!(lifecycle, churn);
}
