//! The planner: which partitions `(service, bucket, seq)` a range read touches, and the first
//! page request of each.
//!
//! Buckets come from the deployment settings recorded in the store (never from flags), so the
//! reader looks exactly where the writer wrote. Partitions are grouped by bucket, in the read's
//! order: buckets never overlap in time, so an ordered read is the buckets one after another,
//! each a merge of its shards. When a filter pins the whole shard key (instance, method and path
//! for API readings; the instance for host readings) only that shard is read.

use super::params::{ApiFilter, TimeRange};
use crate::model::{InstanceName, Seq, ServiceName, Settings, ShardCount, TimeBucket};
use crate::store::{Order, PageRequest, PartitionKey, ReadingKey};

/// The shard every matching API reading is in, when the filter names its whole series key.
pub fn api_shard(filter: &ApiFilter, shards: ShardCount) -> Option<Seq> {
    let (Some(instance), Some(method), Some(path)) =
        (&filter.instance, &filter.method, &filter.path)
    else {
        return None;
    };
    Some(shards.shard_of(&[instance.as_str(), method.as_str(), path.as_str()]))
}

/// The shard of an instance's host readings.
pub fn host_shard(instance: Option<&InstanceName>, shards: ShardCount) -> Option<Seq> {
    instance.map(|i| shards.shard_of(&[i.as_str()]))
}

/// A range read to plan.
#[derive(Debug, Clone)]
pub struct RangeRead<'a> {
    /// The service.
    pub service: &'a ServiceName,
    /// The inclusive range.
    pub range: TimeRange,
    /// The direction.
    pub order: Order,
    /// Resume strictly after this key instead of at the range's start.
    pub resume: Option<ReadingKey>,
    /// Read only this shard.
    pub shard: Option<Seq>,
    /// Rows per request.
    pub page_rows: u32,
}

/// The first page request of every partition, grouped by bucket in read order.
pub fn plan(read: &RangeRead<'_>, settings: &Settings) -> Vec<Vec<PageRequest>> {
    let TimeRange { from, to } = read.range;
    let after = read.resume.unwrap_or_else(|| read.order.start_of(from, to));
    // A resumed read skips the buckets already behind the cursor.
    let (first, last) = match read.order {
        Order::Asc => (after.timestamp.max(from), to),
        Order::Desc => (from, after.timestamp.min(to)),
    };
    let mut buckets = TimeBucket::covering(first, last, settings.bucket_width);
    if read.order == Order::Desc {
        buckets.reverse();
    }
    let seqs: Vec<Seq> = match read.shard {
        Some(seq) => vec![seq],
        None => settings.shards.all().collect(),
    };
    let until = read.order.end_of(from, to);
    buckets
        .into_iter()
        .map(|bucket| {
            seqs.iter()
                .map(|&seq| PageRequest {
                    partition: PartitionKey {
                        service: read.service.clone(),
                        bucket,
                        seq,
                    },
                    after,
                    until,
                    order: read.order,
                    limit: read.page_rows,
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiPath, HttpMethod, ReadingId, TimestampMs};

    const HOUR_MS: i64 = 3_600_000;

    fn read(service: &ServiceName, from: i64, to: i64, order: Order) -> RangeRead<'_> {
        RangeRead {
            service,
            range: TimeRange {
                from: TimestampMs::from_millis(from),
                to: TimestampMs::from_millis(to),
            },
            order,
            resume: None,
            shard: None,
            page_rows: 10,
        }
    }

    fn buckets(plan: &[Vec<PageRequest>]) -> Vec<i64> {
        plan.iter()
            .map(|b| b[0].partition.bucket.epoch_seconds())
            .collect()
    }

    #[test]
    fn bucket_boundaries_are_inclusive_at_both_ends() {
        let s = ServiceName::parse("svc").unwrap();
        let settings = Settings::default();
        // [10:00, 11:00] includes a reading at exactly 11:00, which is in the 11:00 bucket.
        let plan = plan(&read(&s, 10 * HOUR_MS, 11 * HOUR_MS, Order::Asc), &settings);
        assert_eq!(buckets(&plan), [36_000, 39_600]);
        assert!(plan.iter().all(|b| b.len() == 4));
        // One millisecond less stays in one bucket.
        let plan = super::plan(
            &read(&s, 10 * HOUR_MS, 11 * HOUR_MS - 1, Order::Asc),
            &settings,
        );
        assert_eq!(buckets(&plan), [36_000]);
    }

    #[test]
    fn descending_reads_start_at_the_newest_bucket_and_resume_skips_buckets() {
        let s = ServiceName::parse("svc").unwrap();
        let settings = Settings::default();
        let mut r = read(&s, 0, 5 * HOUR_MS, Order::Desc);
        let p = plan(&r, &settings);
        assert_eq!(buckets(&p), [18_000, 14_400, 10_800, 7_200, 3_600, 0]);
        assert_eq!(p[0][0].until.millis(), 0);
        assert_eq!(
            p[0][0].after,
            ReadingKey::after_all_at(TimestampMs::from_millis(5 * HOUR_MS))
        );
        let cursor = ReadingKey {
            timestamp: TimestampMs::from_millis(2 * HOUR_MS),
            id: ReadingId::new(),
        };
        r.resume = Some(cursor);
        let p = plan(&r, &settings);
        assert_eq!(buckets(&p), [7_200, 3_600, 0]);
        assert!(p.iter().flatten().all(|req| req.after == cursor));
        r.order = Order::Asc;
        assert_eq!(
            buckets(&plan(&r, &settings)),
            [7_200, 10_800, 14_400, 18_000]
        );
    }

    #[test]
    fn a_full_series_key_pins_one_shard() {
        let shards = ShardCount::new(4).unwrap();
        let mut filter = ApiFilter {
            instance: Some(InstanceName::parse("i-1").unwrap()),
            method: Some(HttpMethod::parse("GET").unwrap()),
            ..ApiFilter::default()
        };
        assert_eq!(api_shard(&filter, shards), None);
        filter.path = Some(ApiPath::parse("/cart").unwrap());
        assert_eq!(
            api_shard(&filter, shards),
            Some(shards.shard_of(&["i-1", "GET", "/cart"]))
        );
    }
}
