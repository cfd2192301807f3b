//! Time buckets and shards: how a reading's time and identity map to a partition.
//!
//! A reading at time `t` belongs to the bucket `floor(t / width) * width` (epoch seconds), and to
//! the shard `seq = crc32c(series key) % shards`. Both are pure functions of the reading, so a WAL
//! replay lands every row in the partition it was first written to.

use serde::{Deserialize, Serialize};

use super::reading::TimestampMs;

/// The width of a time bucket, in whole seconds (at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketWidth(u32);

impl BucketWidth {
    /// A width of `seconds`; zero is refused.
    pub fn from_seconds(seconds: u32) -> Result<Self, String> {
        if seconds == 0 {
            return Err("bucket width must be at least one second".into());
        }
        Ok(Self(seconds))
    }

    /// The width in seconds.
    pub fn seconds(self) -> u32 {
        self.0
    }

    /// The width in milliseconds.
    pub fn millis(self) -> i64 {
        i64::from(self.0) * 1000
    }
}

/// The start of a time bucket, in epoch seconds: the `time_bucket` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimeBucket(i64);

impl TimeBucket {
    /// The bucket holding the instant `at`.
    pub fn containing(at: TimestampMs, width: BucketWidth) -> Self {
        let seconds = at.millis().div_euclid(1000);
        let width = i64::from(width.seconds());
        Self(seconds.div_euclid(width) * width)
    }

    /// Every bucket that overlaps `[from, to]`, oldest first; empty when `from > to`.
    pub fn covering(from: TimestampMs, to: TimestampMs, width: BucketWidth) -> Vec<Self> {
        if from > to {
            return Vec::new();
        }
        let first = Self::containing(from, width).0;
        let last = Self::containing(to, width).0;
        let step = i64::from(width.seconds());
        (0..)
            .map(|i| first + i * step)
            .take_while(|start| *start <= last)
            .map(Self)
            .collect()
    }

    /// Wraps a bucket start read back from the store.
    pub fn from_epoch_seconds(seconds: i64) -> Self {
        Self(seconds)
    }

    /// The bucket start in epoch seconds.
    pub fn epoch_seconds(self) -> i64 {
        self.0
    }

    /// The instant the bucket ends (exclusive): when the last reading it can hold is newer than
    /// it by less than a millisecond.
    pub fn end(self, width: BucketWidth) -> TimestampMs {
        TimestampMs::from_millis((self.0 + i64::from(width.seconds())) * 1000)
    }
}

/// How many shards (`seq` values) each service bucket is split into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCount(u16);

impl ShardCount {
    /// Between 1 and 256 shards: more would make every range query fan out too wide.
    pub fn new(count: u16) -> Result<Self, String> {
        if (1..=256).contains(&count) {
            Ok(Self(count))
        } else {
            Err(format!("shard count must be from 1 to 256, got {count}"))
        }
    }

    /// The number of shards.
    pub fn get(self) -> u16 {
        self.0
    }

    /// Every shard number, `0..count`.
    pub fn all(self) -> impl Iterator<Item = Seq> {
        (0..i32::from(self.0)).map(Seq)
    }

    /// The shard of a series, from a stable hash of its key parts (joined by a NUL, which no
    /// validated name contains, so `("ab", "c")` and `("a", "bc")` differ).
    pub fn shard_of(self, key_parts: &[&str]) -> Seq {
        let mut crc = 0u32;
        for (i, part) in key_parts.iter().enumerate() {
            if i > 0 {
                crc = crc32c::crc32c_append(crc, &[0]);
            }
            crc = crc32c::crc32c_append(crc, part.as_bytes());
        }
        Seq((crc % u32::from(self.0)) as i32)
    }
}

/// A shard number within a bucket: the `seq` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Seq(i32);

impl Seq {
    /// The shard number as stored (CQL `int`).
    pub fn get(self) -> i32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn width(seconds: u32) -> BucketWidth {
        BucketWidth::from_seconds(seconds).unwrap()
    }

    #[test]
    fn the_design_notes_example_touches_two_buckets() {
        // 2014-09-27T18:15:00Z .. 19:15:00Z with one-hour buckets.
        let from = TimestampMs::from_millis(1_411_841_700_000);
        let to = TimestampMs::from_millis(1_411_845_300_000);
        let buckets = TimeBucket::covering(from, to, width(3600));
        let starts: Vec<i64> = buckets.iter().map(|b| b.epoch_seconds()).collect();
        assert_eq!(starts, vec![1_411_840_800, 1_411_844_400]);
    }

    #[test]
    fn an_instant_on_a_boundary_starts_the_next_bucket() {
        let at = TimestampMs::from_millis(1_411_844_400_000);
        assert_eq!(
            TimeBucket::containing(at, width(3600)).epoch_seconds(),
            1_411_844_400
        );
        let just_before = TimestampMs::from_millis(1_411_844_399_999);
        assert_eq!(
            TimeBucket::containing(just_before, width(3600)).epoch_seconds(),
            1_411_840_800
        );
    }

    #[test]
    fn shard_keys_are_separated() {
        let shards = ShardCount::new(256).unwrap();
        assert_ne!(shards.shard_of(&["ab", "c"]), shards.shard_of(&["a", "bc"]));
    }

    proptest! {
        #[test]
        fn a_bucket_contains_its_instant(ms in 0i64..4_102_444_800_000, w in 1u32..86_400) {
            let at = TimestampMs::from_millis(ms);
            let bucket = TimeBucket::containing(at, width(w));
            let start_ms = bucket.epoch_seconds() * 1000;
            prop_assert!(start_ms <= ms && ms < start_ms + width(w).millis());
            prop_assert_eq!(bucket.epoch_seconds() % i64::from(w), 0);
        }

        #[test]
        fn covering_is_contiguous_and_complete(
            from in 0i64..4_000_000_000_000, span in 0i64..864_000_000, w in 60u32..86_400
        ) {
            let (a, b) = (TimestampMs::from_millis(from), TimestampMs::from_millis(from + span));
            let buckets = TimeBucket::covering(a, b, width(w));
            prop_assert_eq!(buckets.first().copied(), Some(TimeBucket::containing(a, width(w))));
            prop_assert_eq!(buckets.last().copied(), Some(TimeBucket::containing(b, width(w))));
            for pair in buckets.windows(2) {
                prop_assert_eq!(pair[1].epoch_seconds() - pair[0].epoch_seconds(), i64::from(w));
            }
        }

        #[test]
        fn shards_stay_in_range(key in ".{0,40}", n in 1u16..=256) {
            let seq = ShardCount::new(n).unwrap().shard_of(&[&key]);
            prop_assert!(seq.get() >= 0 && seq.get() < i32::from(n));
        }
    }
}
