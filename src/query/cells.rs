//! The skeleton both stats endpoints share: readings folded into one cell per (group, step),
//! at most `max_points` cells, read out per group in time order.
//!
//! Steps are aligned to multiples of the step since the epoch (a cell's time is its step's
//! start). Folding does not depend on the order readings arrive in, so the fan-out feeding it
//! may be unordered. Memory is bounded by the number of cells.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use super::params::Step;
use crate::model::TimestampMs;

/// Cells of type `C` by group `G` and step.
#[derive(Debug)]
pub struct StepCells<G, C> {
    step: Step,
    max_points: usize,
    cells: HashMap<(G, i64), C>,
}

impl<G: Hash + Eq + Ord, C: Default> StepCells<G, C> {
    /// No cells yet; at most `max_points` of them.
    pub fn new(step: Step, max_points: usize) -> Self {
        Self {
            step,
            max_points,
            cells: HashMap::new(),
        }
    }

    /// The step.
    pub fn step(&self) -> Step {
        self.step
    }

    /// The most cells there may be.
    pub fn max_points(&self) -> usize {
        self.max_points
    }

    /// The cell of `group` for the step holding `at`; `None` when it would be one cell more
    /// than `max_points`.
    pub fn cell(&mut self, group: G, at: TimestampMs) -> Option<&mut C> {
        let key = (group, self.step.start_of(at).millis());
        if self.cells.len() >= self.max_points && !self.cells.contains_key(&key) {
            return None;
        }
        Some(self.cells.entry(key).or_default())
    }

    /// The cells of each group by step start, groups sorted.
    pub fn into_groups(self) -> BTreeMap<G, BTreeMap<i64, C>> {
        let mut groups: BTreeMap<G, BTreeMap<i64, C>> = BTreeMap::new();
        for ((group, t), cell) in self.cells {
            groups.entry(group).or_default().insert(t, cell);
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_per_group_and_step_and_capped() {
        let mut cells: StepCells<&str, u32> = StepCells::new(Step::parse("1m").unwrap(), 2);
        let at = TimestampMs::from_millis;
        *cells.cell("a", at(1)).unwrap() += 1;
        *cells.cell("a", at(59_999)).unwrap() += 1;
        *cells.cell("b", at(60_000)).unwrap() += 1;
        assert!(cells.cell("a", at(60_000)).is_none(), "a third cell");
        assert!(cells.cell("a", at(2)).is_some(), "an existing cell");
        let groups = cells.into_groups();
        assert_eq!(groups["a"][&0], 2);
        assert_eq!(groups["b"][&60_000], 1);
    }
}
