//! Duration percentiles in bounded memory, weighted by request count.
//!
//! A reading that summarises `count` requests carries their mean duration, so it adds `count`
//! requests at `duration_ms`: the percentiles are those of the request-weighted distribution
//! (a p99 over one summary of 1,000 requests and 10 single requests is 1,000 times more about the
//! summary). Within a summary the individual durations are unknown; its mean is the best value
//! there is, and that is the one documented approximation besides the sketch itself.
//!
//! The sketch is a log-bucketed histogram (the DDSketch idea): a duration `x > 1 ns` goes to
//! bucket `i = ceil(ln x / ln γ)` with `γ = (1 + α) / (1 − α)`, which covers `(γ^(i−1), γ^i]`
//! and is reported as `2γ^i / (γ + 1)`. Any value in the bucket is within a relative error of
//! `α` of that representative. The rank is exact (integer counts), so for the q-quantile —
//! the smallest duration whose cumulative request count reaches `ceil(q × N)` ("nearest rank")
//! — the answer `v̂` satisfies `|v̂ − v| ≤ α·v`, with `α` = [`RELATIVE_ACCURACY`] (1%). Durations
//! of at most 1 ns share one bucket, reported as the smallest of them (an error under 1 ns).
//! Answers are clamped to the exact minimum and maximum, which keeps the bound and makes
//! `p100 = max`.
//!
//! Memory: one `u64` per bucket between the smallest and largest duration seen, at most ~1,600
//! buckets from 1 ns to a day, whatever the number of readings.

use serde::{Deserialize, Serialize};

pub mod counts;

/// The relative accuracy α of every percentile.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Durations at or below this many milliseconds (1 ns) share one bucket.
pub const ZERO_MS: f64 = 1e-6;
/// The bucket growth factor γ.
const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);

/// A weighted duration distribution. Its serde layout is the form rollup rows store: the
/// buckets dense or sparse, whichever is shorter ([`counts`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    /// Bucket index of `counts[0]`.
    offset: i32,
    /// Requests per bucket, from `offset` up.
    #[serde(with = "counts")]
    counts: Vec<u64>,
    /// Requests of at most [`ZERO_MS`].
    zeros: u64,
    /// Every request added.
    total: u64,
    /// The exact smallest and largest durations added.
    min: f64,
    max: f64,
}

impl Default for Sketch {
    fn default() -> Self {
        Self {
            offset: 0,
            counts: Vec::new(),
            zeros: 0,
            total: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

/// A duration as the sketch counts it: negative and NaN are 0 ms.
/// A sketch as rollup rows stored it before the [`counts`] encoding (every bucket a varint,
/// `Sketch`'s field order): read only, so that those rows still decode.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub struct DenseSketch {
    offset: i32,
    counts: Vec<u64>,
    zeros: u64,
    total: u64,
    min: f64,
    max: f64,
}

impl From<DenseSketch> for Sketch {
    fn from(d: DenseSketch) -> Self {
        Self {
            offset: d.offset,
            counts: d.counts,
            zeros: d.zeros,
            total: d.total,
            min: d.min,
            max: d.max,
        }
    }
}

#[cfg(test)]
impl From<Sketch> for DenseSketch {
    fn from(s: Sketch) -> Self {
        Self {
            offset: s.offset,
            counts: s.counts,
            zeros: s.zeros,
            total: s.total,
            min: s.min,
            max: s.max,
        }
    }
}

fn clean(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.max(0.0)
    }
}

fn index_of(value: f64) -> i32 {
    (value.ln() / GAMMA.ln()).ceil() as i32
}

fn representative(index: i32) -> f64 {
    2.0 * GAMMA.powi(index) / (GAMMA + 1.0)
}

impl Sketch {
    /// Adds `weight` requests that took `value` ms (negative and NaN count as 0 ms).
    pub fn add(&mut self, value: f64, weight: u64) {
        if weight == 0 {
            return;
        }
        let value = clean(value);
        self.total += weight;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if value <= ZERO_MS {
            self.zeros += weight;
            return;
        }
        let index = index_of(value);
        self.cover(index, index);
        self.counts[(index - self.offset) as usize] += weight;
    }

    /// Adds each `(value, weight)` as [`Sketch::add`] does, with the buckets grown once, to
    /// their final size: a few durations of one series spread over dozens of buckets, so adding
    /// them one by one regrows the buckets with nearly every one.
    pub fn add_all(&mut self, values: &[(f64, u64)]) {
        // A bucket's index grows with the value, so the smallest and the largest value give
        // the span: two logarithms here, not one per value on top of `add`'s (which still
        // covers its own index, so the result never depends on this span).
        let span = values
            .iter()
            .filter(|(value, weight)| *weight > 0 && clean(*value) > ZERO_MS)
            .map(|(value, _)| clean(*value))
            .fold(None, |span: Option<(f64, f64)>, v| {
                Some(span.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
            });
        if let Some((lo, hi)) = span {
            self.cover(index_of(lo), index_of(hi));
        }
        for &(value, weight) in values {
            self.add(value, weight);
        }
    }

    /// Grows the buckets to cover indexes `lo..=hi`; empty buckets get exactly that.
    fn cover(&mut self, lo: i32, hi: i32) {
        if self.counts.is_empty() {
            self.offset = lo;
            self.counts = vec![0; (hi - lo) as usize + 1];
            return;
        }
        if lo < self.offset {
            let grow = (self.offset - lo) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = lo;
        }
        let top = (hi - self.offset) as usize;
        if top >= self.counts.len() {
            self.counts.resize(top + 1, 0);
        }
    }

    /// Adds every request of `other`: the result is the sketch of both inputs together, bucket
    /// for bucket, so merging rollups keeps the same ±α bound as adding the readings.
    pub fn merge(&mut self, other: &Sketch) {
        if other.total == 0 {
            return;
        }
        self.total += other.total;
        self.zeros += other.zeros;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.offset = other.offset;
            self.counts = other.counts.clone();
            return;
        }
        if other.offset < self.offset {
            let grow = (self.offset - other.offset) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = other.offset;
        }
        let start = (other.offset - self.offset) as usize;
        if start + other.counts.len() > self.counts.len() {
            self.counts.resize(start + other.counts.len(), 0);
        }
        for (slot, count) in self.counts[start..].iter_mut().zip(&other.counts) {
            *slot += count;
        }
    }

    /// Drops the spare capacity the buckets grew with: a sketch that is kept (a flush's partial
    /// rollups wait for their write) holds only its buckets.
    pub fn shrink_to_fit(&mut self) {
        self.counts.shrink_to_fit();
    }

    /// The exact smallest duration, if any.
    pub fn min(&self) -> Option<f64> {
        (self.total > 0).then_some(self.min)
    }

    /// Requests added.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The exact largest duration, if any.
    pub fn max(&self) -> Option<f64> {
        (self.total > 0).then_some(self.max)
    }

    /// The quantile `per_mille / 1000` (500 = p50, 990 = p99), nearest rank; `None` when empty.
    pub fn quantile(&self, per_mille: u32) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = (u128::from(self.total) * u128::from(per_mille))
            .div_ceil(1000)
            .max(1);
        let mut seen = u128::from(self.zeros);
        if seen >= rank {
            return Some(self.min);
        }
        for (slot, count) in self.counts.iter().enumerate() {
            seen += u128::from(*count);
            if seen >= rank {
                let value = representative(self.offset + slot as i32);
                return Some(value.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The exact nearest-rank quantile of `(value, weight)` pairs.
    fn exact(values: &[(f64, u64)], per_mille: u32) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: u64 = sorted.iter().map(|v| v.1).sum();
        let rank = (u128::from(total) * u128::from(per_mille))
            .div_ceil(1000)
            .max(1);
        let mut seen = 0u128;
        for (value, weight) in sorted {
            seen += u128::from(weight);
            if seen >= rank {
                return value;
            }
        }
        unreachable!("rank within total")
    }

    fn close(estimate: f64, truth: f64) -> bool {
        (estimate - truth).abs() <= RELATIVE_ACCURACY * truth * (1.0 + 1e-9) + ZERO_MS
    }

    #[test]
    fn weights_count_as_that_many_requests() {
        let mut s = Sketch::default();
        s.add(1000.0, 1000);
        for _ in 0..10 {
            s.add(1.0, 1);
        }
        assert_eq!(s.total(), 1010);
        // Only the 10 fastest requests are below the summary's mean.
        assert!(close(s.quantile(5).unwrap(), 1.0));
        assert!(close(s.quantile(500).unwrap(), 1000.0));
        assert_eq!(s.quantile(1000), Some(1000.0));
        assert_eq!(s.max(), Some(1000.0));
    }

    #[test]
    fn zero_and_empty() {
        let mut s = Sketch::default();
        assert_eq!(s.quantile(500), None);
        s.add(0.0, 3);
        s.add(2.0, 1);
        assert_eq!(s.quantile(500), Some(0.0));
        assert!(close(s.quantile(990).unwrap(), 2.0));
    }

    proptest! {
        #[test]
        fn a_merge_is_the_sketch_of_both_inputs(
            a in prop::collection::vec((0.0f64..1e6, 1u64..500), 0..100),
            b in prop::collection::vec((0.0f64..1e6, 1u64..500), 0..100),
        ) {
            let (mut left, mut right, mut all) = (Sketch::default(), Sketch::default(), Sketch::default());
            for (value, weight) in &a {
                left.add(*value, *weight);
                all.add(*value, *weight);
            }
            for (value, weight) in &b {
                right.add(*value, *weight);
                all.add(*value, *weight);
            }
            left.merge(&right);
            prop_assert_eq!(&left.total, &all.total);
            for per_mille in [1, 500, 900, 990, 1000] {
                prop_assert_eq!(left.quantile(per_mille), all.quantile(per_mille));
            }
            let bytes = postcard::to_allocvec(&left).unwrap();
            prop_assert_eq!(postcard::from_bytes::<Sketch>(&bytes).unwrap(), left);
        }

        #[test]
        fn adding_all_at_once_equals_adding_one_by_one(
            first in prop::collection::vec((-1.0f64..1e6, 0u64..500), 0..20),
            values in prop::collection::vec(
                (prop_oneof![-1.0f64..1e6, 0.0f64..1e-5, Just(f64::NAN)], 0u64..500),
                0..40,
            ),
        ) {
            let (mut one_by_one, mut at_once) = (Sketch::default(), Sketch::default());
            for (value, weight) in &first {
                one_by_one.add(*value, *weight);
                at_once.add(*value, *weight);
            }
            for (value, weight) in &values {
                one_by_one.add(*value, *weight);
            }
            at_once.add_all(&values);
            prop_assert_eq!(at_once, one_by_one);
        }

        #[test]
        fn every_quantile_is_within_the_relative_error(
            values in prop::collection::vec((0.0f64..1e6, 1u64..500), 1..300),
            per_mille in 1u32..=1000,
        ) {
            let mut s = Sketch::default();
            for (value, weight) in &values {
                s.add(*value, *weight);
            }
            let truth = exact(&values, per_mille);
            let estimate = s.quantile(per_mille).unwrap();
            prop_assert!(close(estimate, truth), "p{per_mille}: {estimate} vs exact {truth}");
        }
    }
}
