//! Measures how well the churn risk ranks customers who then stop buying.
//!
//! Reads a CDNOW-format transaction file (`customer YYYYMMDD units dollars` per line), folds the
//! purchases up to a cut-off, evaluates every customer at the cut-off and compares the ranking by
//! risk with who bought nothing in the following `horizon` days (ROC AUC), beside the ranking by
//! days since the last purchase alone.
//!
//! `cargo run --release -p clientlog-domain --example churn_auc -- FILE CUTOFF HORIZON_DAYS`
//! (set `CLIENTLOG_POLICIES=DIR` to try other policy files)

use std::collections::BTreeMap;

use clientlog_domain::churn_eval::{auc, read_cdnow, score_at_cutoff};
use clientlog_domain::Policies;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, cutoff, horizon] = args.as_slice() else {
        eprintln!("usage: churn_auc FILE CUTOFF(YYYY-MM-DD) HORIZON_DAYS");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(file).expect("readable file");
    let purchases = read_cdnow(&text).expect("CDNOW format");
    let horizon: i32 = horizon.parse().expect("horizon in days");
    // CLIENTLOG_POLICIES=DIR evaluates under the policy files in DIR instead of the defaults.
    let policies = match std::env::var_os("CLIENTLOG_POLICIES") {
        Some(dir) => Policies::load_dir(std::path::Path::new(&dir)).expect("valid policies"),
        None => Policies::defaults(),
    };
    let scored =
        score_at_cutoff(&purchases, &policies, cutoff, horizon).expect("valid cut-off date");
    let churned = scored.iter().filter(|s| s.churned).count();
    println!(
        "customers with a purchase before the cut-off: {}",
        scored.len()
    );
    println!("bought nothing in the next {horizon} days: {churned}");
    let risk = auc(scored.iter().map(|s| (s.risk, s.churned)));
    let recency = auc(scored
        .iter()
        .map(|s| (f64::from(s.days_since_last), s.churned)));
    println!("AUC churn risk:            {risk:.4}");
    println!("AUC days since last purchase: {recency:.4}");
    let mut by_band: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for s in &scored {
        let entry = by_band.entry(s.band.as_str()).or_default();
        entry.0 += 1;
        entry.1 += usize::from(s.churned);
    }
    for (band, (n, c)) in by_band {
        println!(
            "band {band:>8}: {n:>6} customers, {:.1} % stopped buying",
            100.0 * c as f64 / n as f64
        );
    }
}
