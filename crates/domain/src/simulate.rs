//! What-if grading: re-grade customers from their stored `GradeInputs` under another grading
//! policy, without replaying the log, and compare with the grades they have now — the grade
//! distribution before and after, the transition matrix (old grade × new grade) and the
//! customers whose score moved most.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::Serialize;

use crate::grading::{grade, GradeInputs};
use crate::policy::GradingPolicy;
use crate::verdict::Grade;

/// Why a customer's inputs cannot be re-graded under the submitted policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("customer {customer}: its stored inputs were measured with other windows ({reason}); rebuild instead")]
pub struct IncompatibleInputs {
    pub customer: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mover {
    pub customer: String,
    pub grade_before: Grade,
    pub grade_after: Grade,
    pub score_before: f64,
    pub score_after: f64,
    pub delta: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulationReport {
    pub customers: u64,
    /// Customers per grade A…E under the current and the submitted policy.
    pub before: [u64; 5],
    pub after: [u64; 5],
    /// `matrix[old][new]`: customers moving from grade `old` to grade `new` (A = 0 … E = 4).
    pub matrix: [[u64; 5]; 5],
    /// Customers whose score moved most (largest |delta| first; ties by customer id).
    pub top_movers: Vec<Mover>,
}

/// Ordered by |delta|, then by customer id reversed, so the heap keeps the largest moves and,
/// among equal moves, the smallest ids — the same report whatever order customers come in.
#[derive(Debug, PartialEq)]
struct ByMove(Mover);

impl Eq for ByMove {}

impl Ord for ByMove {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .delta
            .abs()
            .total_cmp(&other.0.delta.abs())
            .then_with(|| other.0.customer.cmp(&self.0.customer))
    }
}

impl PartialOrd for ByMove {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two gradings of the same customers one customer at a time, in constant memory but
/// for the top movers: what-if simulation (stored grade against re-graded inputs) and the
/// comparison of two projection versions both report through it.
pub struct GradeTally {
    top: usize,
    report: SimulationReport,
    heap: BinaryHeap<Reverse<ByMove>>,
}

impl GradeTally {
    pub fn new(top_movers: usize) -> Self {
        Self {
            top: top_movers,
            report: SimulationReport {
                customers: 0,
                before: [0; 5],
                after: [0; 5],
                matrix: [[0; 5]; 5],
                top_movers: Vec::new(),
            },
            heap: BinaryHeap::with_capacity(top_movers + 1),
        }
    }

    /// Adds one customer's grade and score before and after.
    pub fn add(
        &mut self,
        customer: &str,
        (grade_before, score_before): (Grade, f64),
        (grade_after, score_after): (Grade, f64),
    ) {
        let r = &mut self.report;
        r.customers += 1;
        r.before[grade_before as usize] += 1;
        r.after[grade_after as usize] += 1;
        r.matrix[grade_before as usize][grade_after as usize] += 1;
        let delta = crate::grading::round2(score_after - score_before);
        if self.top > 0 && delta != 0.0 {
            let candidate = ByMove(Mover {
                customer: customer.to_string(),
                grade_before,
                grade_after,
                score_before,
                score_after,
                delta,
            });
            if self.heap.len() < self.top {
                self.heap.push(Reverse(candidate));
            } else if self
                .heap
                .peek()
                .is_some_and(|Reverse(min)| candidate > *min)
            {
                self.heap.pop();
                self.heap.push(Reverse(candidate));
            }
        }
    }

    pub fn finish(mut self) -> SimulationReport {
        let mut movers: Vec<ByMove> = self.heap.into_iter().map(|Reverse(m)| m).collect();
        movers.sort_by(|a, b| b.cmp(a));
        self.report.top_movers = movers.into_iter().map(|m| m.0).collect();
        self.report
    }
}

/// Re-grades customers' stored inputs under a grading policy and tallies the moves.
pub struct Simulation<'p> {
    policy: &'p GradingPolicy,
    tally: GradeTally,
}

impl<'p> Simulation<'p> {
    pub fn new(policy: &'p GradingPolicy, top_movers: usize) -> Self {
        Self {
            policy,
            tally: GradeTally::new(top_movers),
        }
    }

    /// Adds one customer with its current grade and score and its stored inputs.
    pub fn add(
        &mut self,
        customer: &str,
        grade_before: Grade,
        score_before: f64,
        inputs: &GradeInputs,
    ) -> Result<(), IncompatibleInputs> {
        if !inputs.measured_like(self.policy) {
            return Err(IncompatibleInputs {
                customer: customer.to_string(),
                reason: format!(
                    "monthly sales over {} months and growth over {}, the policy asks for {} and {}",
                    inputs.sales_window_months,
                    inputs.growth_window_months,
                    self.policy.monthly_sales.window_months,
                    self.policy.sales_growth.window_months
                ),
            });
        }
        let (grade_after, score_after, _) = grade(inputs, self.policy);
        self.tally.add(
            customer,
            (grade_before, score_before),
            (grade_after, score_after),
        );
        Ok(())
    }

    pub fn finish(self) -> SimulationReport {
        self.tally.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policies;

    fn inputs(sales: u64) -> GradeInputs {
        GradeInputs {
            sales_window_months: 3,
            sales_window_minor: sales,
            currency: Some(crate::values::Currency::parse("CNY").unwrap()),
            growth_window_months: 3,
            growth_recent_minor: sales,
            growth_earlier_minor: sales,
            coverage: Some(80),
            coverage_assessed_on: None,
            prospects: Some(60),
            prospects_assessed_on: None,
            tenure_months: 40.0,
            active_months: 12,
            complaints_filed: [0; 4],
            unsatisfied: 0,
        }
    }

    #[test]
    fn same_policy_moves_nobody_and_new_weights_move_the_right_customers() {
        let policies = Policies::defaults();
        let current = &policies.grading.policy;
        let customers = [("big", inputs(15_000_000)), ("small", inputs(3_000_000))];
        let mut same = Simulation::new(current, 10);
        for (id, i) in &customers {
            let (g, s, _) = grade(i, current);
            same.add(id, g, s, i).unwrap();
        }
        let report = same.finish();
        assert_eq!(report.customers, 2);
        assert_eq!(report.before, report.after);
        assert!(report.top_movers.is_empty());

        // Weigh loyalty instead of sales: the small customer (full loyalty) gains most.
        let mut loyal = current.clone();
        loyal.weights.monthly_sales = 10;
        loyal.weights.loyalty = 50;
        let mut sim = Simulation::new(&loyal, 1);
        for (id, i) in &customers {
            let (g, s, _) = grade(i, current);
            sim.add(id, g, s, i).unwrap();
        }
        let report = sim.finish();
        // small: sales 1 000 000 a month of a 5 000 000 target = 20 → 20×0.5 = 10 before,
        // 20×0.1 = 2 after; loyalty 100 → 10 before, 50 after: +32.
        assert_eq!(report.top_movers.len(), 1);
        assert_eq!(report.top_movers[0].customer, "small");
        assert_eq!(report.top_movers[0].delta, 32.0);
        assert_eq!(report.matrix.iter().flatten().sum::<u64>(), 2);
    }

    #[test]
    fn other_windows_are_refused() {
        let policies = Policies::defaults();
        let mut policy = policies.grading.policy.clone();
        policy.sales_growth.window_months = 6;
        let mut sim = Simulation::new(&policy, 10);
        let err = sim.add("c", Grade::C, 60.0, &inputs(1)).unwrap_err();
        assert!(err.to_string().contains("rebuild"), "{err}");
    }
}
