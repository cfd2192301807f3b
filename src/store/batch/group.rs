//! The grouping behind [`WriteBatch::build`](super::WriteBatch::build), one generic path for
//! every kind of reading.
//!
//! Readings move into their partitions first; the newest reading and the buckets of each series
//! are then found with keys that borrow from those rows, so names are cloned only for what the
//! batch keeps. Lookups by borrowed key rely on the borrowed and owned key types hashing alike:
//! both derive `Hash` over the same fields in the same order (`&T` hashes as `T`, and a tuple
//! hashes its elements in order).

use hashbrown::{Equivalent, HashMap};

use super::latest::recency;
use super::{Batches, KindBatch, Partition, PartitionKey, SeriesEntry, SeriesSeen, WriteBatch};
use crate::model::kind::{EachKindMut, PerKind, TakeKind};
use crate::model::{
    ApiPath, HttpMethod, InstanceName, ReadingKind, Seq, SeriesRef, ServiceName, Settings,
    TimeBucket,
};

/// A `(kind index, PartitionKey)`, borrowed. Fields in that order, so the hashes agree.
#[derive(Hash)]
struct PartitionKeyRef<'a> {
    kind: usize,
    service: &'a ServiceName,
    bucket: TimeBucket,
    seq: Seq,
}

impl Equivalent<(usize, PartitionKey)> for PartitionKeyRef<'_> {
    fn equivalent(&self, (kind, key): &(usize, PartitionKey)) -> bool {
        self.kind == *kind
            && *self.service == key.service
            && self.bucket == key.bucket
            && self.seq == key.seq
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

/// Readings of every kind grouped by partition, each kind's in order of first appearance.
pub(super) struct Grouping<'s> {
    settings: &'s Settings,
    kinds: PerKind<Batches>,
    /// Where each partition is in its kind's list.
    index: HashMap<(usize, PartitionKey), usize>,
}

impl<'s> Grouping<'s> {
    pub(super) fn new(settings: &'s Settings) -> Self {
        Self {
            settings,
            kinds: PerKind::default(),
            index: HashMap::new(),
        }
    }

    /// The batch: the newest reading of each series, and the series entries `seen` does not
    /// know yet.
    pub(super) fn finish(mut self, seen: &SeriesSeen) -> WriteBatch {
        let mut latest = LatestAndSeries {
            seen,
            series: Vec::new(),
        };
        self.kinds.each_mut(&mut latest);
        WriteBatch {
            kinds: self.kinds,
            series: latest.series,
            rollups: Vec::new(),
        }
    }
}

impl TakeKind for Grouping<'_> {
    /// Adds `reading` to its partition.
    fn take<K: ReadingKind>(&mut self, reading: K) {
        let series = reading.series();
        let bucket = reading.bucket_of(self.settings.bucket_width);
        let seq = series.seq(self.settings.shards);
        let partitions = &mut self.kinds.get_mut::<K>().partitions;
        let key = PartitionKeyRef {
            kind: K::INFO.index,
            service: series.service,
            bucket,
            seq,
        };
        let at = match self.index.get(&key) {
            Some(&at) => at,
            None => {
                let at = partitions.len();
                let key = PartitionKey {
                    service: series.service.clone(),
                    bucket,
                    seq,
                };
                self.index.insert((K::INFO.index, key.clone()), at);
                partitions.push(Partition {
                    key,
                    rows: Vec::new(),
                });
                at
            }
        };
        partitions[at].rows.push(reading);
    }
}

/// One series within a flush: where its newest reading is and the buckets it appears in.
struct SeriesInFlush {
    newest: (usize, usize),
    buckets: Vec<TimeBucket>,
}

/// Fills each kind's latest readings and collects the new series entries.
struct LatestAndSeries<'a> {
    seen: &'a SeriesSeen,
    series: Vec<SeriesEntry>,
}

impl EachKindMut<Batches> for LatestAndSeries<'_> {
    fn each<K: ReadingKind>(&mut self, batch: &mut KindBatch<K>) {
        // A partition's rows grew by doubling; the batch waits for its write (and may wait in
        // the flusher's queue first) holding only what it uses.
        for partition in &mut batch.partitions {
            partition.rows.shrink_to_fit();
        }
        let partitions = &batch.partitions;
        let row = |(p, r): (usize, usize)| &partitions[p].rows[r];
        let mut series: HashMap<SeriesRef<'_>, SeriesInFlush> = HashMap::new();
        for (p, partition) in partitions.iter().enumerate() {
            let bucket = partition.key.bucket;
            for (r, reading) in partition.rows.iter().enumerate() {
                let found = series.entry(reading.series()).or_insert(SeriesInFlush {
                    newest: (p, r),
                    buckets: Vec::new(),
                });
                if recency(reading) > recency(row(found.newest)) {
                    found.newest = (p, r);
                }
                if !found.buckets.contains(&bucket) {
                    found.buckets.push(bucket);
                }
            }
        }
        let mut latest = Vec::with_capacity(series.len());
        for (key, in_flush) in series {
            latest.push(row(in_flush.newest).clone());
            for bucket in in_flush.buckets {
                let entry = SeriesEntryRef {
                    service: key.service,
                    bucket,
                    instance: key.instance,
                    method: key.method,
                    path: key.path,
                };
                if !self.seen.contains(&entry) {
                    self.series.push(entry.to_owned());
                }
            }
        }
        batch.latest = latest;
    }
}
