//! A flush's worth of readings, grouped the way every backend writes them.
//!
//! Grouping is backend-independent, pure and the same for every kind: readings by partition
//! `(service, bucket, seq)`, the newest reading per series for the latest tables, and the
//! series-bucket entries not written yet. Each kind's share is a typed [`KindBatch`], so a
//! backend binds a reading's fields without copying it.

mod group;
mod latest;

use hashbrown::HashSet;

use crate::model::kind::{EachKind, Family, PerKind};
use crate::model::{
    ApiPath, HttpMethod, InstanceName, Reading, ReadingKind, Seq, ServiceName, Settings, TimeBucket,
};
use crate::rollup::RollupRow;
use group::{Grouping, SeriesEntryRef};
pub use latest::LatestRows;

/// A partition of a kind's readings table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    /// The service.
    pub service: ServiceName,
    /// The bucket start.
    pub bucket: TimeBucket,
    /// The shard.
    pub seq: Seq,
}

/// Rows of one partition, in the order they were accepted.
#[derive(Debug, Clone)]
pub struct Partition<R> {
    /// Where the rows go.
    pub key: PartitionKey,
    /// The rows.
    pub rows: Vec<R>,
}

/// One row of the series index: a series seen in a bucket. Host-only instances have an empty
/// method and path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesEntry {
    /// The service.
    pub service: ServiceName,
    /// The bucket in which the series was seen.
    pub bucket: TimeBucket,
    /// The instance.
    pub instance: InstanceName,
    /// The API method, or `None` for a host-only entry.
    pub method: Option<HttpMethod>,
    /// The API path, or `None` for a host-only entry.
    pub path: Option<ApiPath>,
}

/// One kind's share of a flush.
#[derive(Debug)]
pub struct KindBatch<K> {
    /// The readings by partition, partitions in order of first appearance.
    pub partitions: Vec<Partition<K>>,
    /// The newest reading of each series in this flush (the flusher moves them out and
    /// writes them once per piece: [`LatestRows`]).
    pub latest: Vec<K>,
}

impl<K> Default for KindBatch<K> {
    fn default() -> Self {
        Self {
            partitions: Vec::new(),
            latest: Vec::new(),
        }
    }
}

/// [`KindBatch`] per kind.
#[derive(Debug)]
pub enum Batches {}

impl Family for Batches {
    type Of<K: ReadingKind> = KindBatch<K>;
}

/// Everything one flush writes.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// The readings and latest readings of each kind.
    pub kinds: PerKind<Batches>,
    /// Series-bucket entries not yet known to be written.
    pub series: Vec<SeriesEntry>,
    /// Partial rollup rows of these readings (the flusher adds them, see `crate::rollup`).
    pub rollups: Vec<RollupRow>,
}

/// [`WriteBatch::build`] one reading at a time, so the flusher groups readings as it decodes
/// them instead of gathering a piece's readings in one list first (at tens of thousands of
/// readings per flush, that list was the largest block of the flusher's memory).
pub struct WriteBatchBuilder<'s>(Grouping<'s>);

impl<'s> WriteBatchBuilder<'s> {
    /// An empty batch, grouped with `settings`.
    pub fn new(settings: &'s Settings) -> Self {
        Self(Grouping::new(settings))
    }

    /// Adds `reading` to its partition.
    pub fn push(&mut self, reading: Reading) {
        reading.into_kind(&mut self.0);
    }

    /// The batch; `seen` filters out series entries already written.
    pub fn finish(self, seen: &SeriesSeen) -> WriteBatch {
        self.0.finish(seen)
    }
}

/// Remembers series entries already written, so each is written once per bucket. Bounded: past
/// `capacity` it forgets everything (rewriting an entry is harmless, only wasted work).
#[derive(Debug)]
pub struct SeriesSeen {
    seen: HashSet<SeriesEntry>,
    capacity: usize,
}

impl SeriesSeen {
    /// Remembers up to `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            capacity,
        }
    }

    /// Marks entries as written: stored, or certain to be stored before any later batch is
    /// confirmed (the flusher writes batches in order and retries each until it succeeds).
    pub fn remember(&mut self, entries: &[SeriesEntry]) {
        if self.seen.len() + entries.len() > self.capacity {
            self.seen.clear();
        }
        self.seen.extend(entries.iter().cloned());
    }

    fn contains(&self, entry: &SeriesEntryRef<'_>) -> bool {
        self.seen.contains(entry)
    }
}

impl WriteBatch {
    /// Groups `readings`; `seen` filters out series entries already written.
    ///
    /// Names are cloned once per partition, per series kept as latest and per new series entry,
    /// not once per reading: the flusher groups tens of thousands of readings per flush.
    pub fn build(readings: Vec<Reading>, settings: &Settings, seen: &SeriesSeen) -> Self {
        let mut builder = WriteBatchBuilder::new(settings);
        for reading in readings {
            builder.push(reading);
        }
        builder.finish(seen)
    }

    /// Kind `K`'s share.
    pub fn of<K: ReadingKind>(&self) -> &KindBatch<K> {
        self.kinds.get::<K>()
    }

    /// How many readings the batch holds.
    pub fn readings(&self) -> usize {
        struct Count(usize);
        impl EachKind<'_, Batches> for Count {
            fn each<K: ReadingKind>(&mut self, batch: &KindBatch<K>) {
                self.0 += batch.partitions.iter().map(|p| p.rows.len()).sum::<usize>();
            }
        }
        let mut count = Count(0);
        self.kinds.each(&mut count);
        count.0
    }

    /// Copies of every reading the batch holds, for a quarantine file.
    pub fn to_readings(&self) -> Vec<Reading> {
        struct Readings(Vec<Reading>);
        impl EachKind<'_, Batches> for Readings {
            fn each<K: ReadingKind>(&mut self, batch: &KindBatch<K>) {
                let rows = batch.partitions.iter().flat_map(|p| &p.rows);
                self.0.extend(rows.map(|r| r.clone().into_reading()));
            }
        }
        let mut copy = Readings(Vec::with_capacity(self.readings()));
        self.kinds.each(&mut copy);
        copy.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reading::sample;
    use crate::model::{ApiReading, HostGauges, HostReading, TimestampMs};

    /// An API reading of `instance` at `at_ms`.
    pub(super) fn api(instance: &str, at_ms: i64) -> Reading {
        Reading::Api(ApiReading {
            instance: InstanceName::parse(instance).unwrap(),
            timestamp: TimestampMs::from_millis(at_ms),
            ..sample::api()
        })
    }

    #[test]
    fn groups_by_partition_and_keeps_the_newest_per_series() {
        let settings = Settings::default();
        let hour = 3_600_000;
        let readings = vec![
            api("a", 10 * hour + 5),
            api("a", 10 * hour + 1),
            api("a", 11 * hour),
            api("b", 10 * hour),
        ];
        let batch = WriteBatch::build(readings, &settings, &SeriesSeen::new(10));
        assert_eq!(batch.readings(), 4);
        let latest: Vec<i64> = batch
            .of::<ApiReading>()
            .latest
            .iter()
            .filter(|r| r.instance.as_str() == "a")
            .map(|r| r.timestamp.millis())
            .collect();
        assert_eq!(latest, [11 * hour]);
        // a in two buckets, b in one.
        assert_eq!(batch.series.len(), 3);
        for partition in &batch.of::<ApiReading>().partitions {
            for row in &partition.rows {
                assert_eq!(row.bucket(settings.bucket_width), partition.key.bucket);
                assert_eq!(row.seq(settings.shards), partition.key.seq);
            }
        }
    }

    #[test]
    fn series_already_written_are_left_out() {
        let settings = Settings::default();
        let mut seen = SeriesSeen::new(10);
        let first = WriteBatch::build(vec![api("a", 0)], &settings, &seen);
        seen.remember(&first.series);
        let second = WriteBatch::build(vec![api("a", 1)], &settings, &seen);
        assert!(second.series.is_empty());
    }

    #[test]
    fn readings_of_one_partition_share_it_and_the_newest_wins_whatever_the_order() {
        let settings = Settings::default();
        let readings: Vec<Reading> = [5, 9, 1, 7].iter().map(|&at| api("a", at)).collect();
        let batch = WriteBatch::build(readings, &settings, &SeriesSeen::new(10));
        let api = batch.of::<ApiReading>();
        assert_eq!(api.partitions.len(), 1);
        assert_eq!(api.partitions[0].rows.len(), 4);
        assert_eq!(api.latest.len(), 1);
        assert_eq!(api.latest[0].timestamp.millis(), 9);
        assert_eq!(batch.series.len(), 1);
    }

    #[test]
    fn host_readings_group_with_host_only_series_entries() {
        let settings = Settings::default();
        let host = |at_ms: i64| {
            Reading::Host(HostReading {
                instance: InstanceName::parse("i-1").unwrap(),
                timestamp: TimestampMs::from_millis(at_ms),
                gauges: HostGauges {
                    cpu_percent: Some(1.0),
                    ..HostGauges::default()
                },
                ..sample::host()
            })
        };
        let mut seen = SeriesSeen::new(10);
        let first = WriteBatch::build(vec![host(3), host(8), api("i-1", 5)], &settings, &seen);
        let hosts = first.of::<HostReading>();
        assert_eq!(hosts.partitions.len(), 1);
        assert_eq!(hosts.partitions[0].rows.len(), 2);
        assert_eq!(hosts.latest.len(), 1);
        assert_eq!(hosts.latest[0].timestamp.millis(), 8);
        let host_only: Vec<_> = first.series.iter().filter(|e| e.method.is_none()).collect();
        assert_eq!(host_only.len(), 1);
        assert!(host_only[0].path.is_none());
        assert_eq!(
            first.series.len(),
            2,
            "the API series of the same instance is its own entry"
        );
        seen.remember(&first.series);
        let second = WriteBatch::build(vec![host(9), api("i-1", 10)], &settings, &seen);
        assert!(second.series.is_empty());
    }
}
