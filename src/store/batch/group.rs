//! The grouping behind [`WriteBatch::build`](super::WriteBatch::build), shared by both kinds of
//! reading.
//!
//! Readings move into their partitions first; the newest reading and the buckets of each series
//! are then found with keys that borrow from those rows, so names are cloned only for what the
//! batch keeps. Lookups by borrowed key rely on the borrowed and owned key types hashing alike:
//! both derive `Hash` over the same fields in the same order (`&T` hashes as `T`).

use hashbrown::{Equivalent, HashMap};

use super::{Partition, PartitionKey, SeriesEntry, SeriesSeen};
use crate::model::{
    ApiPath, ApiReading, HostReading, HttpMethod, InstanceName, ReadingId, Seq, ServiceName,
    Settings, TimeBucket, TimestampMs,
};

/// What grouping needs from a reading of either kind.
pub(super) trait Row: Clone {
    /// The series the reading belongs to.
    fn series(&self) -> SeriesRef<'_>;
    /// The order in which readings of one series replace each other as latest.
    fn recency(&self) -> (TimestampMs, ReadingId);
    /// The reading's bucket and shard.
    fn place(&self, settings: &Settings) -> (TimeBucket, Seq);
}

impl Row for ApiReading {
    fn series(&self) -> SeriesRef<'_> {
        SeriesRef {
            service: &self.service,
            instance: &self.instance,
            method: Some(&self.method),
            path: Some(&self.path),
        }
    }

    fn recency(&self) -> (TimestampMs, ReadingId) {
        (self.timestamp, self.id)
    }

    fn place(&self, settings: &Settings) -> (TimeBucket, Seq) {
        (
            self.bucket(settings.bucket_width),
            self.seq(settings.shards),
        )
    }
}

impl Row for HostReading {
    fn series(&self) -> SeriesRef<'_> {
        SeriesRef {
            service: &self.service,
            instance: &self.instance,
            method: None,
            path: None,
        }
    }

    fn recency(&self) -> (TimestampMs, ReadingId) {
        (self.timestamp, self.id)
    }

    fn place(&self, settings: &Settings) -> (TimeBucket, Seq) {
        (
            self.bucket(settings.bucket_width),
            self.seq(settings.shards),
        )
    }
}

/// A series, borrowed from one of its readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct SeriesRef<'a> {
    service: &'a ServiceName,
    instance: &'a InstanceName,
    method: Option<&'a HttpMethod>,
    path: Option<&'a ApiPath>,
}

/// A [`PartitionKey`], borrowed. Fields in `PartitionKey`'s order, so the hashes agree.
#[derive(Hash)]
struct PartitionKeyRef<'a> {
    service: &'a ServiceName,
    bucket: TimeBucket,
    seq: Seq,
}

impl Equivalent<PartitionKey> for PartitionKeyRef<'_> {
    fn equivalent(&self, key: &PartitionKey) -> bool {
        *self.service == key.service && self.bucket == key.bucket && self.seq == key.seq
    }
}

/// A [`SeriesEntry`], borrowed. Fields in `SeriesEntry`'s order, so the hashes agree.
#[derive(Hash)]
pub(super) struct SeriesEntryRef<'a> {
    service: &'a ServiceName,
    bucket: TimeBucket,
    instance: &'a InstanceName,
    method: Option<&'a HttpMethod>,
    path: Option<&'a ApiPath>,
}

impl Equivalent<SeriesEntry> for SeriesEntryRef<'_> {
    fn equivalent(&self, entry: &SeriesEntry) -> bool {
        *self.service == entry.service
            && self.bucket == entry.bucket
            && *self.instance == entry.instance
            && self.method == entry.method.as_ref()
            && self.path == entry.path.as_ref()
    }
}

impl SeriesEntryRef<'_> {
    fn to_owned(&self) -> SeriesEntry {
        SeriesEntry {
            service: self.service.clone(),
            bucket: self.bucket,
            instance: self.instance.clone(),
            method: self.method.cloned(),
            path: self.path.cloned(),
        }
    }
}

/// Readings of one kind grouped by partition, in order of first appearance.
pub(super) struct Partitions<R> {
    partitions: Vec<Partition<R>>,
    index: HashMap<PartitionKey, usize>,
}

impl<R> Default for Partitions<R> {
    fn default() -> Self {
        Self {
            partitions: Vec::new(),
            index: HashMap::new(),
        }
    }
}

/// One series within a flush: where its newest reading is and the buckets it appears in.
struct SeriesInFlush {
    newest: (usize, usize),
    buckets: Vec<TimeBucket>,
}

impl<R: Row> Partitions<R> {
    /// Adds `row` to its partition.
    pub(super) fn push(&mut self, row: R, settings: &Settings) {
        let (bucket, seq) = row.place(settings);
        let service = row.series().service;
        let key = PartitionKeyRef {
            service,
            bucket,
            seq,
        };
        let at = match self.index.get(&key) {
            Some(&at) => at,
            None => {
                let at = self.partitions.len();
                let key = PartitionKey {
                    service: service.clone(),
                    bucket,
                    seq,
                };
                self.index.insert(key.clone(), at);
                self.partitions.push(Partition {
                    key,
                    rows: Vec::new(),
                });
                at
            }
        };
        self.partitions[at].rows.push(row);
    }

    /// The newest reading of each series, and the series entries `seen` does not know yet.
    pub(super) fn latest_and_series(&self, seen: &SeriesSeen) -> (Vec<R>, Vec<SeriesEntry>) {
        let mut series: HashMap<SeriesRef<'_>, SeriesInFlush> = HashMap::new();
        for (p, partition) in self.partitions.iter().enumerate() {
            let bucket = partition.key.bucket;
            for (r, row) in partition.rows.iter().enumerate() {
                let found = series.entry(row.series()).or_insert(SeriesInFlush {
                    newest: (p, r),
                    buckets: Vec::new(),
                });
                if row.recency() > self.row(found.newest).recency() {
                    found.newest = (p, r);
                }
                if !found.buckets.contains(&bucket) {
                    found.buckets.push(bucket);
                }
            }
        }
        let mut latest = Vec::with_capacity(series.len());
        let mut entries = Vec::new();
        for (key, in_flush) in series {
            latest.push(self.row(in_flush.newest).clone());
            for bucket in in_flush.buckets {
                let entry = SeriesEntryRef {
                    service: key.service,
                    bucket,
                    instance: key.instance,
                    method: key.method,
                    path: key.path,
                };
                if !seen.contains(&entry) {
                    entries.push(entry.to_owned());
                }
            }
        }
        (latest, entries)
    }

    /// The partitions, for the batch.
    pub(super) fn into_partitions(self) -> Vec<Partition<R>> {
        self.partitions
    }

    fn row(&self, (p, r): (usize, usize)) -> &R {
        &self.partitions[p].rows[r]
    }
}
