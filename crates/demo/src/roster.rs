//! The sales force: reps per region with portfolios of about 150 accounts, some of whom leave
//! during the history (their accounts are then reassigned for `staff_turnover`) and are
//! replaced by new hires in the same month.

use clientlog_domain::values::{Actor, Ident};
use rand::Rng;

use crate::catalog::REGIONS;
use crate::random::{rng_for, DemoRng, DAY};
use crate::DemoError;

/// Accounts a rep looks after, on average.
const PORTFOLIO: u32 = 150;
/// Chance that a rep leaves at some point in a two-year history.
const LEAVE_CHANCE_PER_YEAR: f64 = 0.15;

pub(crate) struct Rep {
    pub id: Ident,
    pub actor: Actor,
    pub hired_month: u32,
    /// Month index and instant of leaving, if the rep leaves within the history.
    pub left: Option<(u32, i64)>,
}

impl Rep {
    pub(crate) fn active_in(&self, month: u32) -> bool {
        self.hired_month <= month && self.left.is_none_or(|(m, _)| m > month)
    }
}

pub(crate) struct Roster {
    pub reps: Vec<Rep>,
    /// Rep indices per region, in hiring order.
    pub by_region: Vec<Vec<u32>>,
}

impl Roster {
    pub(crate) fn build(
        key: &[u8; 32],
        customers: u32,
        month_bounds: &[(i64, i64)],
    ) -> Result<Self, DemoError> {
        let months = month_bounds.len() as u32;
        let mut rng = rng_for(key, u64::MAX, 0);
        let total_weight: u32 = REGIONS.iter().map(|r| r.weight).sum();
        let leave_per_month = LEAVE_CHANCE_PER_YEAR / 12.0;
        let mut roster = Roster {
            reps: Vec::new(),
            by_region: vec![Vec::new(); REGIONS.len()],
        };
        for (region, spec) in REGIONS.iter().enumerate() {
            let expected = u64::from(customers) * u64::from(spec.weight) / u64::from(total_weight);
            let initial = (expected as u32).div_ceil(PORTFOLIO).max(2);
            // Each seat is held by a sequence of reps: when one leaves, the next is hired.
            for _ in 0..initial {
                let mut hired = 0;
                loop {
                    let mut left = None;
                    for m in hired.max(1)..months {
                        if rng.gen_bool(leave_per_month) {
                            let (lo, hi) = month_bounds[m as usize];
                            left = Some((m, rng.gen_range(lo..hi - DAY)));
                            break;
                        }
                    }
                    roster.add(region, hired, left)?;
                    match left {
                        Some((m, _)) => hired = m,
                        None => break,
                    }
                }
            }
        }
        Ok(roster)
    }

    fn add(
        &mut self,
        region: usize,
        hired_month: u32,
        left: Option<(u32, i64)>,
    ) -> Result<(), DemoError> {
        let n = self.reps.len() + 1;
        let id = format!("R-{n:04}");
        let vocab = |e: clientlog_domain::values::InvalidValue| {
            DemoError::Vocabulary(format!("rep {id}: {e}"))
        };
        let rep = Rep {
            id: Ident::parse(&id).map_err(vocab)?,
            actor: Actor::parse(&format!("rep:{id}")).map_err(vocab)?,
            hired_month,
            left,
        };
        self.by_region[region].push(self.reps.len() as u32);
        self.reps.push(rep);
        Ok(())
    }

    /// A rep of `region` who works there through `month`, other than `except`.
    pub(crate) fn pick_active(
        &self,
        rng: &mut DemoRng,
        region: usize,
        month: u32,
        except: Option<u32>,
    ) -> u32 {
        let candidates = &self.by_region[region];
        let ok = |&r: &u32| Some(r) != except && self.reps[r as usize].active_in(month);
        for _ in 0..16 {
            let r = candidates[rng.gen_range(0..candidates.len())];
            if ok(&r) {
                return r;
            }
        }
        let active: Vec<u32> = candidates.iter().copied().filter(ok).collect();
        match active.len() {
            0 => candidates[0],
            n => active[rng.gen_range(0..n)],
        }
    }
}
