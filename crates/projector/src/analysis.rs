//! What-if grading over every stored customer: re-grade each customer's stored `grade_inputs`
//! (the compact column beside its card) under another grading policy with [`Simulation`], paging through the
//! `customers` rows of one projection version by id. `clientlog simulate` and the API's
//! `POST /v1/simulations` both call [`simulate_store`].

use clientlog_domain::grading::GradeInputs;
use clientlog_domain::policy::GradingPolicy;
use clientlog_domain::simulate::{IncompatibleInputs, Simulation, SimulationReport};
use clientlog_domain::Grade;
use clientlog_readstore::{ReadStore, StoreError};

/// Customers per page read from the store.
const PAGE: i64 = 5_000;

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
    let mut after = String::new();
    loop {
        let rows = store.grade_page(version, &after, PAGE).await?;
        let Some(last) = rows.last() else { break };
        after.clone_from(&last.customer_id);
        for r in &rows {
            let grade = Grade::ALL.into_iter().find(|g| g.as_str() == r.grade);
            match (grade, GradeInputs::decode(&r.grade_inputs)) {
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
