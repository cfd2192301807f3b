//! The read requests every backend answers: one partition at a time, one page at a time.
//!
//! Reads are deliberately small and partition-level so that any ordered key-value store can
//! answer them (CQL with a clustering-key slice, an LSM-tree with a range scan): the fan-out over
//! buckets and shards, the merge and the aggregation live in `crate::query`, above the store.
//!
//! Invariant: within a partition, rows are ordered by [`ReadingKey`] — `(timestamp, reading_id)`
//! — in both backends. Reading ids are UUIDv7 (see [`ReadingId::new`]) or, in the embedded store,
//! UUIDv8 derived from the WAL ([`ReadingId::from_wal`]), for which CQL's `uuid` order (version
//! first, then the bytes unsigned) and plain byte order agree, so a key taken from
//! one page resumes exactly after that row, and keys from different partitions compare the same
//! way the partitions are sorted.

use uuid::Uuid;

use super::batch::PartitionKey;
use crate::model::{ReadingId, ReadingKind, TimestampMs};
use crate::rollup::{Piece, RollupRequest, RollupRow, RollupSeries};

/// A row's position in its partition: the clustering key `(timestamp, reading_id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReadingKey {
    /// The reading's time.
    pub timestamp: TimestampMs,
    /// The reading's id: unique, so two keys are equal only for the same reading.
    pub id: ReadingId,
}

impl ReadingKey {
    /// The key of `reading`'s row.
    pub fn of<K: ReadingKind>(reading: &K) -> Self {
        Self {
            timestamp: reading.timestamp(),
            id: reading.id(),
        }
    }

    /// A key before every reading at `at` (the nil UUID sorts first in both orders).
    pub fn before_all_at(at: TimestampMs) -> Self {
        Self {
            timestamp: at,
            id: ReadingId::from_uuid(Uuid::nil()),
        }
    }

    /// A key after every reading at `at` (the max UUID sorts last in both orders).
    pub fn after_all_at(at: TimestampMs) -> Self {
        Self {
            timestamp: at,
            id: ReadingId::from_uuid(Uuid::max()),
        }
    }
}

/// The direction of a range read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Order {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

impl Order {
    /// The start of a `[from, to]` read in this direction: just outside the range's first end.
    pub fn start_of(self, from: TimestampMs, to: TimestampMs) -> ReadingKey {
        match self {
            Order::Asc => ReadingKey::before_all_at(from),
            Order::Desc => ReadingKey::after_all_at(to),
        }
    }

    /// The far end of a `[from, to]` read in this direction.
    pub fn end_of(self, from: TimestampMs, to: TimestampMs) -> TimestampMs {
        match self {
            Order::Asc => to,
            Order::Desc => from,
        }
    }

    /// `a` before `b` in this direction.
    pub fn cmp(self, a: &ReadingKey, b: &ReadingKey) -> std::cmp::Ordering {
        match self {
            Order::Asc => a.cmp(b),
            Order::Desc => b.cmp(a),
        }
    }
}

/// One page of one partition's readings.
///
/// Rows come strictly after `after` in `order` (ascending: greater keys, descending: smaller),
/// never beyond `until` (inclusive), at most `limit` of them. A page with fewer than `limit`
/// rows is the partition's last in that range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The partition `(service, bucket, seq)`.
    pub partition: PartitionKey,
    /// The resume point, exclusive.
    pub after: ReadingKey,
    /// The far end of the range, inclusive: the newest time (ascending) or the oldest (descending).
    pub until: TimestampMs,
    /// The direction.
    pub order: Order,
    /// Most rows to return; at least 1.
    pub limit: u32,
}

impl PageRequest {
    /// The request for the page after a row with key `last`.
    pub fn next_after(&self, last: ReadingKey) -> Self {
        Self {
            after: last,
            ..self.clone()
        }
    }
}

/// Where a rollup row sits in its partition: the clustering key after the partition. Both
/// backends order rows by slot, then instance, method and path, so the rows of one endpoint
/// (every code) in one slot are contiguous; then the embedded store by code, writer, segment
/// and piece start, and CQL, which keeps an endpoint's codes in one stored row, by writer,
/// segment and piece start, then code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupKey {
    /// The slot.
    pub slot: TimestampMs,
    /// The series.
    pub series: RollupSeries,
    /// The piece (its `last` is not part of the key).
    pub piece: Piece,
}

impl RollupKey {
    /// The key of `row`.
    pub fn of(row: &RollupRow) -> Self {
        Self {
            slot: row.slot,
            series: row.series.clone(),
            piece: row.piece,
        }
    }
}

/// One page of the rollup rows of some slots of one partition, in key order ([`RollupKey`]):
/// what the compactor reads, so that it holds one page and one endpoint at a time, never a
/// whole slot.
///
/// Rows come strictly after `after` (from the request's first slot when `None`), never beyond
/// the request's last slot, at most `limit` stored rows of them; a store that keeps several
/// rows in one stored row (CQL: an endpoint's codes) returns a stored row's rows together, and
/// resumes after the stored row holding `after`. A page with fewer than `limit` rows is the
/// last one.
/// Rows past their level's retention are returned until the store removes them (unlike
/// [`super::Store::read_rollups`]): filtering them would make a short page ambiguous, and
/// writes of such slots are dropped anyway.
#[derive(Debug, Clone)]
pub struct RollupPageRequest {
    /// The partition and the slots.
    pub rows: RollupRequest,
    /// The resume point, exclusive.
    pub after: Option<RollupKey>,
    /// Most rows to return; at least 1.
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_keys_bracket_every_reading_at_the_same_time() {
        let at = TimestampMs::from_millis(1_000);
        let real = ReadingKey {
            timestamp: at,
            id: ReadingId::new(),
        };
        assert!(ReadingKey::before_all_at(at) < real);
        assert!(real < ReadingKey::after_all_at(at));
        let earlier = ReadingKey::after_all_at(TimestampMs::from_millis(999));
        assert!(earlier < ReadingKey::before_all_at(at));
    }

    #[test]
    fn descending_order_reverses_keys() {
        let a = ReadingKey::before_all_at(TimestampMs::from_millis(1));
        let b = ReadingKey::before_all_at(TimestampMs::from_millis(2));
        assert_eq!(Order::Asc.cmp(&a, &b), std::cmp::Ordering::Less);
        assert_eq!(Order::Desc.cmp(&a, &b), std::cmp::Ordering::Greater);
    }
}
