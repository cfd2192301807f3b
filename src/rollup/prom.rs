//! What an API aggregate keeps for the PromQL engine beyond what the stats read: the requests
//! per duration bucket of the `_bucket` family, and, apart, the readings stamped exactly at the
//! slot's start.
//!
//! PromQL windows are left-open, right-closed: `(t − range, t]`. With `t` and `t − range` on
//! slot boundaries, a window holds the interiors `(s, s + slot)` of its slots plus the readings
//! at exactly its right edge, minus those at exactly its left edge. So a slot serves PromQL as
//! two events, its at-start part at `s` and the rest just after — that needs the at-start part
//! kept separately ([`PromParts::at_start`], usually absent: one byte).
//!
//! Encoding: the parts are a field of the API aggregate (see `rollup::aggregate` for the stored
//! form), their buckets dense or sparse like a sketch's. Rows written before the parts existed
//! decode with `prom: None`: such a row cannot serve PromQL, and the engine reads raw readings
//! instead.
//!
//! Invariant: a bucket index mirrors the engine's raw comparison exactly (a request of `d` ms is
//! in bucket `le` when `!(d / 1000 > le)`), so bucket counts served from rollups equal the raw
//! ones.

use serde::{Deserialize, Serialize};

use crate::promql::families::LE_SECONDS;
use crate::query::sketch::counts;

/// Duration buckets: the bounds of [`LE_SECONDS`] and `+Inf`.
pub const BUCKETS: usize = LE_SECONDS.len() + 1;

/// The first bucket a request of `duration_ms` falls in (the `_bucket` family is cumulative:
/// it counts in this bucket's `le` and every larger one).
pub fn bucket_of(duration_ms: f64) -> usize {
    let seconds = duration_ms / 1000.0;
    LE_SECONDS
        .iter()
        // `!(seconds > le)`, as the raw comparison (a NaN is in every bucket).
        .position(|&le| seconds.partial_cmp(&le) != Some(std::cmp::Ordering::Greater))
        .unwrap_or(LE_SECONDS.len())
}

/// Requests, their summed duration and their (non-cumulative) buckets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// Requests.
    pub count: u64,
    /// Σ duration × count, ms.
    pub duration_sum: f64,
    /// Requests per bucket of [`bucket_of`].
    #[serde(with = "counts::fixed")]
    pub buckets: [u64; BUCKETS],
}

impl Part {
    fn add(&mut self, duration_ms: f64, count: u64) {
        self.count += count;
        self.duration_sum += duration_ms * count as f64;
        self.buckets[bucket_of(duration_ms)] += count;
    }

    fn merge(&mut self, other: &Part) {
        self.count += other.count;
        self.duration_sum += other.duration_sum;
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }
}

/// The PromQL parts of an API aggregate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromParts {
    /// Requests per bucket, of every reading of the slot.
    #[serde(with = "counts::fixed")]
    pub buckets: [u64; BUCKETS],
    /// The readings stamped exactly at the slot's start, when there are any. Boxed: such
    /// readings are rare, and a piece holds the parts of every cell it aggregates, so an absent
    /// part costs a pointer rather than a whole [`Part`].
    pub at_start: Option<Box<Part>>,
}

impl PromParts {
    /// Adds `count` requests of `duration_ms`, at the slot's start or not.
    pub fn add(&mut self, duration_ms: f64, count: u64, at_start: bool) {
        self.buckets[bucket_of(duration_ms)] += count;
        if at_start {
            self.at_start
                .get_or_insert_with(Box::default)
                .add(duration_ms, count);
        }
    }

    /// Adds everything of `other`, the parts of the same slot.
    pub fn merge(&mut self, other: &PromParts) {
        self.merge_finer(other, true);
    }

    /// Adds everything of `other`, the parts of a slot within this one's: its readings at its
    /// slot's start are at this slot's start only when both slots start together (`same_start`);
    /// otherwise they are inside this slot, counted in its buckets only.
    pub fn merge_finer(&mut self, other: &PromParts, same_start: bool) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        if let (Some(theirs), true) = (&other.at_start, same_start) {
            self.at_start.get_or_insert_with(Box::default).merge(theirs);
        }
    }

    /// The slot split in its at-start part (when any) and the rest (when any), given the
    /// slot's totals: what the engine turns into its two events.
    pub fn split(&self, count: u64, duration_sum: f64) -> (Option<Part>, Option<Part>) {
        let Some(start) = &self.at_start else {
            let all = Part {
                count,
                duration_sum,
                buckets: self.buckets,
            };
            return (None, (count > 0).then_some(all));
        };
        let mut rest = Part {
            count: count - start.count,
            duration_sum: duration_sum - start.duration_sum,
            buckets: self.buckets,
        };
        for (r, s) in rest.buckets.iter_mut().zip(&start.buckets) {
            *r -= s;
        }
        let start = (start.count > 0).then(|| start.as_ref().clone());
        (start, (rest.count > 0).then_some(rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_mirror_the_raw_comparison() {
        assert_eq!(bucket_of(5.0), 0);
        assert_eq!(bucket_of(5.000001), 1);
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(10_000.0), LE_SECONDS.len() - 1);
        assert_eq!(bucket_of(10_000.5), LE_SECONDS.len());
        assert_eq!(bucket_of(f64::NAN), 0);
        for ms in [1.0, 7.5, 25.0, 99.9, 100.0, 750.0, 2500.0, 7_500.0, 1e9] {
            let i = bucket_of(ms);
            for (j, &le) in LE_SECONDS.iter().enumerate() {
                let raw_in_bucket = ms / 1000.0 <= le;
                assert_eq!(j >= i, raw_in_bucket, "{ms} ms, le {le}");
            }
        }
    }

    #[test]
    fn a_split_gives_the_at_start_part_and_the_rest() {
        let mut parts = PromParts::default();
        parts.add(3.0, 2, true);
        parts.add(300.0, 5, false);
        let (start, rest) = parts.split(7, 3.0 * 2.0 + 300.0 * 5.0);
        let (start, rest) = (start.unwrap(), rest.unwrap());
        assert_eq!((start.count, start.duration_sum), (2, 6.0));
        assert_eq!(start.buckets[0], 2);
        assert_eq!((rest.count, rest.duration_sum), (5, 1500.0));
        assert_eq!(rest.buckets[bucket_of(300.0)], 5);
        assert_eq!(rest.buckets.iter().sum::<u64>(), 5);
        let mut only_start = PromParts::default();
        only_start.add(3.0, 1, true);
        assert!(only_start.split(1, 3.0).1.is_none());
        assert!(PromParts::default().split(0, 0.0).0.is_none());
    }

    fn rows() -> Vec<crate::rollup::RollupRow> {
        use crate::model::{reading::sample, Reading};
        let mut at_start = sample::api();
        at_start.timestamp = crate::model::TimestampMs::from_millis(3_600_000);
        let readings = [Reading::Api(sample::api()), Reading::Api(at_start)];
        let piece = crate::rollup::Piece {
            writer: uuid::Uuid::nil(),
            segment: 1,
            start: 16,
            last: 20,
        };
        crate::rollup::partials(&readings, piece, crate::model::TimestampMs::from_millis(0))
    }

    #[test]
    fn rows_round_trip_with_their_parts_and_older_rows_still_read() {
        use crate::rollup::aggregate::legacy;
        use crate::rollup::{Agg, RollupRow};
        for row in rows() {
            let Agg::Api(api) = &row.agg else { continue };
            assert!(api.prom.is_some());
            assert_eq!(RollupRow::from_bytes(&row.to_bytes()).unwrap(), row);
            assert_eq!(Agg::from_bytes(&row.agg.to_bytes()).unwrap(), row.agg);
            // What the version before the sparse encoding wrote: a dense tag 0 aggregate with
            // its parts appended, alone or as a row's last bytes.
            let dense = legacy::encode(&row.agg);
            assert!(row.agg.to_bytes().len() < dense.len());
            assert_eq!(Agg::from_bytes(&dense).unwrap(), row.agg);
            let mut head = row.clone();
            head.agg = Agg::Host(Default::default());
            let mut old_row = postcard::to_allocvec(&head).unwrap();
            old_row.truncate(old_row.len() - head.agg.to_bytes().len());
            old_row.extend(&dense);
            assert_eq!(RollupRow::from_bytes(&old_row).unwrap(), row);
            // And what the version before the parts wrote: the aggregate alone, read without.
            let mut expected = api.clone();
            expected.prom = None;
            let no_parts = legacy::encode(&Agg::Api(expected.clone()));
            assert_eq!(
                Agg::from_bytes(&no_parts).unwrap(),
                Agg::Api(expected.clone())
            );
            // Such a row spoils the parts of a merge.
            let mut merged = api.clone();
            merged.merge(&expected);
            assert_eq!(merged.prom, None);
            assert_eq!(merged.count, 2 * api.count);
        }
    }
}
