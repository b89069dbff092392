//! The churn risk must rank who stops buying better than "days since the last purchase" alone,
//! on real purchase histories (the CDNOW sample, see tests/data/README.md).

use clientlog_domain::churn_eval::{auc, read_cdnow, score_at_cutoff};
use clientlog_domain::Policies;

#[test]
fn churn_risk_beats_recency_on_real_purchase_histories() {
    let text = include_str!("data/cdnow_sample.txt");
    let purchases = read_cdnow(text).unwrap();
    let policies = Policies::defaults();
    let mut margins = Vec::new();
    for cutoff in ["1997-06-30", "1997-09-30", "1997-12-31", "1998-03-31"] {
        let scored = score_at_cutoff(&purchases, &policies, cutoff, 90).unwrap();
        assert_eq!(
            scored.len(),
            2357,
            "every sample customer bought in Q1 1997"
        );
        let risk = auc(scored.iter().map(|s| (s.risk, s.churned)));
        let recency = auc(scored
            .iter()
            .map(|s| (f64::from(s.days_since_last), s.churned)));
        eprintln!("{cutoff}: AUC risk {risk:.4}, days since last purchase {recency:.4}");
        assert!(
            risk > recency,
            "{cutoff}: risk {risk:.4} <= recency {recency:.4}"
        );
        margins.push(risk - recency);
    }
    let mean = margins.iter().sum::<f64>() / margins.len() as f64;
    assert!(mean >= 0.01, "mean AUC margin over recency {mean:.4}");
}
