//! Byte layouts of the embedded store's keys and values.
//!
//! Keys are built so that byte order is the order queries need: every number is big-endian, and
//! signed numbers have their sign bit flipped, so a range scan over a key prefix walks a partition
//! in `(timestamp, reading_id)` order. Text parts end with a NUL byte, which validated names never
//! contain, so no name is a prefix-collision of another.
//!
//! ```text
//! window keyspace "w<window start>":
//!   row      tag service 0x00 bucket:i64 seq:i32 timestamp:i64 reading_id:16  -> fields (see `fields`)
//!            (the row format of readings before blocks: only `convert` reads it, tests write it)
//!   series   's' service 0x00 bucket:i64 instance 0x00 method 0x00 path       -> (empty)
//! keyspace "latest":
//!   latest   tag shard:u16 service 0x00 series names (0x00-terminated)        -> the reading (postcard)
//! ```
//!
//! `tag` is the kind's [`KindInfo::tag`](crate::model::kind::KindInfo::tag) (`a` for API
//! readings, `h` for host readings); the series names are the instance, then method and path
//! for API series.

use serde::{Deserialize, Serialize};

use crate::model::{ReadingId, SeriesRef, TimestampMs};
#[cfg(test)]
use crate::store::batch::PartitionKey;

/// Tag of series index rows.
pub const SERIES: u8 = b's';

/// Appends a signed number so that byte order equals numeric order.
pub fn push_i64(key: &mut Vec<u8>, value: i64) {
    key.extend_from_slice(&((value as u64) ^ (1 << 63)).to_be_bytes());
}
#[cfg(test)]
fn push_i32(key: &mut Vec<u8>, value: i32) {
    key.extend_from_slice(&((value as u32) ^ (1 << 31)).to_be_bytes());
}

/// Appends text and its NUL terminator.
pub fn push_text(key: &mut Vec<u8>, text: &str) {
    key.extend_from_slice(text.as_bytes());
    key.push(0);
}

#[cfg(test)]
/// The key prefix shared by every row of one partition of the kind tagged `tag`.
pub fn partition_prefix(tag: u8, partition: &PartitionKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    key.push(tag);
    push_text(&mut key, partition.service.as_str());
    push_i64(&mut key, partition.bucket.epoch_seconds());
    push_i32(&mut key, partition.seq.get());
    key
}

#[cfg(test)]
/// The key of one row: the partition prefix, then its time and id.
pub fn row_key(prefix: &[u8], at: TimestampMs, id: ReadingId) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 24);
    key.extend_from_slice(prefix);
    push_i64(&mut key, at.millis());
    key.extend_from_slice(id.uuid().as_bytes());
    key
}

/// Splits the `(timestamp, reading_id)` suffix off a row key.
pub fn row_suffix(key: &[u8]) -> Option<(TimestampMs, ReadingId)> {
    let suffix = key.get(key.len().checked_sub(24)?..)?;
    let (time, id) = suffix.split_at(8);
    let millis = (u64::from_be_bytes(time.try_into().ok()?) ^ (1 << 63)) as i64;
    let id = uuid::Uuid::from_slice(id).ok()?;
    Some((TimestampMs::from_millis(millis), ReadingId::from_uuid(id)))
}

/// The key of a latest row: tag, shard, then the service and the series' names (a prefix of
/// it — the tag, shard and service alone — selects one service's rows).
pub fn latest_key(tag: u8, shard: i32, parts: &[&str]) -> Vec<u8> {
    let mut key = vec![tag];
    key.extend_from_slice(&u16::try_from(shard).unwrap_or(u16::MAX).to_be_bytes());
    for part in parts {
        push_text(&mut key, part);
    }
    key
}

/// The key of the latest row of `series` in latest shard `shard`.
pub fn series_latest_key(tag: u8, shard: i32, series: &SeriesRef<'_>) -> Vec<u8> {
    let (parts, len) = series.latest_key();
    latest_key(tag, shard, &parts[..len])
}

/// Serializes a value (postcard).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain data into a Vec cannot fail.
    postcard::to_stdvec(value).expect("value serializes")
}

/// Deserializes a value written by [`encode`].
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::{ServiceName, ShardCount, TimeBucket};

    fn partition(service: &str, bucket: i64) -> PartitionKey {
        PartitionKey {
            service: ServiceName::parse(service).unwrap(),
            bucket: TimeBucket::from_epoch_seconds(bucket),
            seq: ShardCount::new(4).unwrap().shard_of(&["i-1"]),
        }
    }

    proptest! {
        #[test]
        fn key_order_is_time_order(a in -4_000_000_000_000i64..4_000_000_000_000, b in -4_000_000_000_000i64..4_000_000_000_000) {
            let prefix = partition_prefix(b'a', &partition("svc", 3600));
            let id = ReadingId::new();
            let (ka, kb) = (row_key(&prefix, TimestampMs::from_millis(a), id), row_key(&prefix, TimestampMs::from_millis(b), id));
            prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
            prop_assert_eq!(row_suffix(&ka), Some((TimestampMs::from_millis(a), id)));
        }
    }

    #[test]
    fn a_service_name_is_never_a_prefix_of_another_partition() {
        let short = partition_prefix(b'a', &partition("ab", 0));
        let long = partition_prefix(b'a', &partition("abc", 0));
        assert!(!long.starts_with(&short));
    }
}
