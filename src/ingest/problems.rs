//! The problems found in one body, kept bounded: a hostile body can hold millions of invalid
//! values, and listing each one would make the 400 answer (and the memory behind it) hundreds of
//! times larger than the body.
//!
//! Invariant: the first [`MAX_LISTED`] problems are kept in the order they were found; every
//! later one is only counted, so [`Problems::total`] is always the true number.

use std::ops::Deref;

use super::parse::FieldProblem;

/// How many problems a 400 answer lists; the rest are counted.
pub const MAX_LISTED: usize = 100;

/// Problems of one body: the first [`MAX_LISTED`] and the count of all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    listed: Vec<FieldProblem>,
    total: usize,
}

impl Problems {
    /// Records a problem (kept if fewer than [`MAX_LISTED`] are listed, counted always).
    pub fn push(&mut self, problem: FieldProblem) {
        if self.listed.len() < MAX_LISTED {
            self.listed.push(problem);
        }
        self.total += 1;
    }

    /// Every problem found, listed or not.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Problems found but not listed.
    pub fn unlisted(&self) -> usize {
        self.total - self.listed.len()
    }
}

/// The listed problems.
impl Deref for Problems {
    type Target = [FieldProblem];

    fn deref(&self) -> &[FieldProblem] {
        &self.listed
    }
}

impl IntoIterator for Problems {
    type Item = FieldProblem;
    type IntoIter = std::vec::IntoIter<FieldProblem>;

    fn into_iter(self) -> Self::IntoIter {
        self.listed.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_problems_are_counted_not_kept() {
        let mut problems = Problems::default();
        assert!(problems.is_empty());
        for index in 0..1000 {
            problems.push(FieldProblem {
                index,
                kind: None,
                field: String::new(),
                problem: "bad".into(),
            });
        }
        assert_eq!((problems.len(), problems.total()), (MAX_LISTED, 1000));
        assert_eq!(problems.unlisted(), 900);
        assert_eq!(problems.last().unwrap().index, MAX_LISTED - 1);
    }
}
