//! The embedded store's write path: a [`WriteBatch`] encoded to keys and values (and its
//! readings copied out) on the async side, then applied on a blocking thread: the readings
//! written as parts (see `blocks`), then everything else and the parts' manifest entries in one
//! atomic fjall batch.
//!
//! Latest rows and series entries already past the retention are left out, as the CQL store
//! leaves them out (it could only write them with a TTL of zero).

use super::blocks::Staged;
use super::codec::{self, SERIES};
use super::{embedded, EmbeddedStore};
use crate::model::kind::{EachKind, EachKindMut, Family, PerKind};
use crate::model::{ReadingId, ReadingKind, Settings, TimeBucket, TimestampMs};
use crate::store::batch::{Batches, KindBatch};
use crate::store::{expired, PartitionKey, StoreError, WriteBatch};

/// A kind's readings by partition, owned.
pub enum Owned {}

impl Family for Owned {
    type Of<K: ReadingKind> = Vec<(PartitionKey, Vec<K>)>;
}

/// A latest-row candidate: written only if newer than what is stored.
pub struct LatestCandidate {
    key: Vec<u8>,
    at: (TimestampMs, ReadingId),
    value: Vec<u8>,
    /// The `(timestamp, id)` of a stored latest row of the same kind.
    stored_at: fn(&[u8]) -> Option<(TimestampMs, ReadingId)>,
}

/// A write batch as raw keys and values.
pub struct EncodedBatch {
    /// The readings of each kind.
    readings: PerKind<Owned>,
    /// The newest WAL record `(segment, offset)` among the readings' ids.
    newest: Option<(u64, u64)>,
    /// `(bucket, key, value)` of series rows, for the bucket's window keyspace.
    rows: Vec<(TimeBucket, Vec<u8>, Vec<u8>)>,
    /// Latest rows.
    latest: Vec<LatestCandidate>,
    /// Partial rollup rows.
    rollups: Vec<super::rollup::EncodedRollup>,
}

/// Encodes each kind's rows and latest candidates.
struct Encode<'s> {
    settings: &'s Settings,
    now: TimestampMs,
    out: EncodedBatch,
}

impl EachKind<'_, Batches> for Encode<'_> {
    fn each<K: ReadingKind>(&mut self, batch: &KindBatch<K>) {
        let tag = K::INFO.tag;
        let owned = self.out.readings.get_mut::<K>();
        for partition in &batch.partitions {
            for r in &partition.rows {
                if let Some(record) = r.id().wal_record() {
                    self.out.newest = self.out.newest.max(Some(record));
                }
            }
            owned.push((partition.key.clone(), partition.rows.clone()));
        }
        let ttl = self.settings.ttl_seconds;
        for r in batch
            .latest
            .iter()
            .filter(|r| !expired(r.timestamp(), ttl, self.now))
        {
            let series = r.series();
            let shard = series.latest_shard(self.settings.latest_shards).get();
            self.out.latest.push(LatestCandidate {
                key: codec::series_latest_key(tag, shard, &series),
                at: (r.timestamp(), r.id()),
                value: codec::encode(r),
                stored_at: stored_at::<K>,
            });
        }
    }
}

impl EncodedBatch {
    /// Encodes every row of `batch`, as of `now`.
    pub fn encode(batch: &WriteBatch, settings: &Settings, now: TimestampMs) -> Self {
        let rows = Vec::with_capacity(batch.series.len());
        let mut encode = Encode {
            settings,
            now,
            out: Self {
                readings: PerKind::default(),
                newest: None,
                rows,
                latest: Vec::new(),
                rollups: super::rollup::encode(&batch.rollups, settings, now),
            },
        };
        batch.kinds.each(&mut encode);
        let mut out = encode.out;
        let (width, ttl) = (settings.bucket_width, settings.ttl_seconds);
        for entry in &batch.series {
            if expired(entry.bucket.end(width), ttl, now) {
                continue;
            }
            let mut key = vec![SERIES];
            codec::push_text(&mut key, entry.service.as_str());
            codec::push_i64(&mut key, entry.bucket.epoch_seconds());
            codec::push_text(&mut key, entry.instance.as_str());
            codec::push_text(&mut key, entry.method.as_ref().map_or("", |m| m.as_str()));
            codec::push_text(&mut key, entry.path.as_ref().map_or("", |p| p.as_str()));
            out.rows.push((entry.bucket, key, Vec::new()));
        }
        out
    }
}

/// `(timestamp, id)` of a stored latest row of kind `K`.
fn stored_at<K: ReadingKind>(value: &[u8]) -> Option<(TimestampMs, ReadingId)> {
    codec::decode::<K>(value)
        .ok()
        .map(|r| (r.timestamp(), r.id()))
}

impl EmbeddedStore {
    /// Applies an encoded batch atomically, then syncs the journal.
    pub(super) fn apply(&self, encoded: EncodedBatch) -> Result<(), StoreError> {
        let now = TimestampMs::now();
        self.drop_expired_windows(now)?;
        self.drop_expired_rollup_windows(now)?;
        self.inner.blocks.keep_up(&self.inner.db, now);
        let mut stage = Stage {
            store: self,
            staged: Vec::new(),
            failed: None,
        };
        let mut readings = encoded.readings;
        readings.each_mut(&mut stage);
        let staged = stage.staged;
        if let Some(error) = stage.failed {
            self.inner.blocks.discard(staged);
            return Err(error);
        }
        match self.commit(
            encoded.rows,
            encoded.latest,
            encoded.rollups,
            &staged,
            encoded.newest,
        ) {
            Ok(()) => {
                self.inner.blocks.publish(staged, encoded.newest);
                Ok(())
            }
            Err(error) => {
                self.inner.blocks.discard(staged);
                Err(error)
            }
        }
    }

    /// Commits everything but the readings, and the manifest entries of their parts, in one
    /// batch, and syncs it.
    fn commit(
        &self,
        rows: Vec<(TimeBucket, Vec<u8>, Vec<u8>)>,
        latest: Vec<LatestCandidate>,
        rollups: Vec<super::rollup::EncodedRollup>,
        staged: &[Staged],
        newest: Option<(u64, u64)>,
    ) -> Result<(), StoreError> {
        let mut batch = self.inner.db.batch();
        self.inner.blocks.record(&mut batch, staged, newest);
        self.add_rollups(&mut batch, rollups)?;
        for (bucket, key, value) in rows {
            batch.insert(&self.window_of(bucket)?, key, value);
        }
        for candidate in latest {
            let stored = self
                .inner
                .latest
                .get(&candidate.key)
                .map_err(embedded("reading a latest row"))?;
            let newer = stored
                .as_deref()
                .and_then(candidate.stored_at)
                .is_none_or(|at| candidate.at > at);
            if newer {
                batch.insert(&self.inner.latest, candidate.key, candidate.value);
            }
        }
        batch.commit().map_err(embedded("writing a batch"))?;
        self.persist()
    }
}

/// Writes each kind's readings as a part.
struct Stage<'s> {
    store: &'s EmbeddedStore,
    staged: Vec<Staged>,
    failed: Option<StoreError>,
}

impl EachKindMut<Owned> for Stage<'_> {
    fn each<K: ReadingKind>(&mut self, partitions: &mut Vec<(PartitionKey, Vec<K>)>) {
        if self.failed.is_some() || partitions.is_empty() {
            return;
        }
        match self.store.inner.blocks.stage(std::mem::take(partitions)) {
            Ok(staged) => self.staged.extend(staged),
            Err(error) => self.failed = Some(error),
        }
    }
}
