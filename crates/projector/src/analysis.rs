//! What-if grading over every stored customer: re-grade each customer's stored `grade_inputs`
//! (the compact column beside its card) under another grading policy with [`Simulation`], reading
//! the `customers` rows of one projection version in id order. `clientlog simulate` and the API's
//! `POST /v1/simulations` both call [`simulate_store`].

use clientlog_domain::grading::GradeInputs;
use clientlog_domain::policy::GradingPolicy;
use clientlog_domain::simulate::{GradeTally, IncompatibleInputs, Simulation, SimulationReport};
use clientlog_domain::Grade;
use clientlog_readstore::{GradePages, GradeRow, ReadStore, StoreError};

use crate::rebuild::VersionComparison;

/// A finished simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationOutcome {
    pub report: SimulationReport,
    /// Customers whose stored row could not be read as a grade and inputs (left out).
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Incompatible(#[from] IncompatibleInputs),
}

/// Re-grades every customer of `version` under `policy`, keeping the `top` movers.
pub async fn simulate_store(
    store: &ReadStore,
    version: i64,
    policy: &GradingPolicy,
    top: usize,
) -> Result<SimulationOutcome, AnalysisError> {
    let mut simulation = Simulation::new(policy, top);
    let mut skipped = Vec::new();
    let mut pages = store.grade_pages(version);
    while let Some(rows) = pages.next_page().await? {
        for r in &rows {
            match (grade_of(r), GradeInputs::decode(&r.grade_inputs)) {
                (Some(grade), Ok(inputs)) => {
                    simulation.add(&r.customer_id, grade, r.score, &inputs)?
                }
                _ => skipped.push(r.customer_id.clone()),
            }
        }
    }
    Ok(SimulationOutcome {
        report: simulation.finish(),
        skipped,
    })
}

fn grade_of(row: &GradeRow) -> Option<Grade> {
    Grade::ALL.into_iter().find(|g| g.as_str() == row.grade)
}

/// One version's grade rows in customer order, a row at a time.
struct GradeRows {
    pages: GradePages,
    page: std::vec::IntoIter<GradeRow>,
}

impl GradeRows {
    fn new(store: &ReadStore, version: i64) -> Self {
        Self {
            pages: store.grade_pages(version),
            page: Vec::new().into_iter(),
        }
    }

    async fn next(&mut self) -> Result<Option<GradeRow>, StoreError> {
        loop {
            if let Some(row) = self.page.next() {
                return Ok(Some(row));
            }
            match self.pages.next_page().await? {
                Some(page) => self.page = page.into_iter(),
                None => return Ok(None),
            }
        }
    }
}

/// Compares the grades of two versions customer by customer (a merge of both in customer
/// order, in constant memory but for the `top` movers).
pub async fn compare_versions(
    store: &ReadStore,
    from: i64,
    to: i64,
    top: usize,
) -> Result<VersionComparison, StoreError> {
    let mut tally = GradeTally::new(top);
    let (mut only_in_from, mut only_in_to) = (0, 0);
    let mut left = GradeRows::new(store, from);
    let mut right = GradeRows::new(store, to);
    let (mut a, mut b) = (left.next().await?, right.next().await?);
    loop {
        match (&a, &b) {
            (None, None) => break,
            (Some(x), Some(y)) if x.customer_id == y.customer_id => {
                if let (Some(gx), Some(gy)) = (grade_of(x), grade_of(y)) {
                    tally.add(&x.customer_id, (gx, x.score), (gy, y.score));
                }
                a = left.next().await?;
                b = right.next().await?;
            }
            (Some(x), Some(y)) if x.customer_id < y.customer_id => {
                only_in_from += 1;
                a = left.next().await?;
            }
            (Some(_), None) => {
                only_in_from += 1;
                a = left.next().await?;
            }
            (_, Some(_)) => {
                only_in_to += 1;
                b = right.next().await?;
            }
        }
    }
    Ok(VersionComparison {
        from,
        to,
        report: tally.finish(),
        only_in_from,
        only_in_to,
    })
}
