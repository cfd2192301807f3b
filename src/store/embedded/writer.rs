//! The embedded store's write path: a [`WriteBatch`] encoded to keys and values on the async
//! side, then applied in one atomic fjall batch on a blocking thread.

use super::codec::{self, ApiValue, HostValue, API, HOST, SERIES};
use super::{embedded, EmbeddedStore};
use crate::model::{ApiReading, HostReading, ReadingId, TimeBucket, TimestampMs};
use crate::store::{StoreError, WriteBatch};

/// A latest-row candidate: written only if newer than what is stored.
pub struct LatestCandidate {
    key: Vec<u8>,
    at: (TimestampMs, ReadingId),
    value: Vec<u8>,
}

/// A write batch as raw keys and values.
pub struct EncodedBatch {
    /// `(bucket, key, value)` of readings and series rows, for the bucket's window keyspace.
    rows: Vec<(TimeBucket, Vec<u8>, Vec<u8>)>,
    /// Latest rows.
    latest: Vec<LatestCandidate>,
}

impl EncodedBatch {
    /// Encodes every row of `batch`.
    pub fn encode(batch: &WriteBatch) -> Self {
        let mut rows = Vec::with_capacity(batch.readings() + batch.series.len());
        for partition in &batch.api {
            let prefix = codec::partition_prefix(API, &partition.key);
            for r in &partition.rows {
                let value = ApiValue {
                    instance: r.instance.as_str().to_owned(),
                    method: r.method.as_str().to_owned(),
                    path: r.path.as_str().to_owned(),
                    code: r.code.get(),
                    duration_ms: r.duration_ms,
                    count: r.count,
                };
                rows.push((
                    partition.key.bucket,
                    codec::row_key(&prefix, r.timestamp, r.id),
                    codec::encode(&value),
                ));
            }
        }
        for partition in &batch.host {
            let prefix = codec::partition_prefix(HOST, &partition.key);
            for r in &partition.rows {
                let value = HostValue {
                    instance: r.instance.as_str().to_owned(),
                    gauges: r.gauges.clone(),
                };
                rows.push((
                    partition.key.bucket,
                    codec::row_key(&prefix, r.timestamp, r.id),
                    codec::encode(&value),
                ));
            }
        }
        for entry in &batch.series {
            let mut key = vec![SERIES];
            codec::push_text(&mut key, entry.service.as_str());
            codec::push_i64(&mut key, entry.bucket.epoch_seconds());
            codec::push_text(&mut key, entry.instance.as_str());
            codec::push_text(&mut key, entry.method.as_ref().map_or("", |m| m.as_str()));
            codec::push_text(&mut key, entry.path.as_ref().map_or("", |p| p.as_str()));
            rows.push((entry.bucket, key, Vec::new()));
        }
        Self {
            rows,
            latest: Vec::new(),
        }
    }

    /// Adds the latest-row candidates, keyed by the store's latest shards.
    pub fn with_latest(
        mut self,
        api: &[ApiReading],
        host: &[HostReading],
        shards: crate::model::ShardCount,
    ) -> Self {
        for r in api {
            let shard = shards.shard_of(&[
                r.service.as_str(),
                r.instance.as_str(),
                r.method.as_str(),
                r.path.as_str(),
            ]);
            let key = latest_key(
                API,
                shard.get(),
                &[
                    r.service.as_str(),
                    r.instance.as_str(),
                    r.method.as_str(),
                    r.path.as_str(),
                ],
            );
            self.latest.push(LatestCandidate {
                key,
                at: (r.timestamp, r.id),
                value: codec::encode(r),
            });
        }
        for r in host {
            let shard = shards.shard_of(&[r.service.as_str(), r.instance.as_str()]);
            let key = latest_key(
                HOST,
                shard.get(),
                &[r.service.as_str(), r.instance.as_str()],
            );
            self.latest.push(LatestCandidate {
                key,
                at: (r.timestamp, r.id),
                value: codec::encode(r),
            });
        }
        self
    }
}

/// The key of a latest row: tag, shard, then the series' names.
pub fn latest_key(tag: u8, shard: i32, parts: &[&str]) -> Vec<u8> {
    let mut key = vec![tag];
    key.extend_from_slice(&u16::try_from(shard).unwrap_or(u16::MAX).to_be_bytes());
    for part in parts {
        codec::push_text(&mut key, part);
    }
    key
}

/// `(timestamp, id)` of a stored latest row, decoded by its tag.
fn stored_at(tag: u8, value: &[u8]) -> Option<(TimestampMs, ReadingId)> {
    if tag == API {
        codec::decode::<ApiReading>(value)
            .ok()
            .map(|r| (r.timestamp, r.id))
    } else {
        codec::decode::<HostReading>(value)
            .ok()
            .map(|r| (r.timestamp, r.id))
    }
}

impl EmbeddedStore {
    /// Applies an encoded batch atomically, then syncs the journal.
    pub(super) fn apply(&self, encoded: EncodedBatch) -> Result<(), StoreError> {
        self.drop_expired_windows(TimestampMs::now())?;
        let mut batch = self.inner.db.batch();
        for (bucket, key, value) in encoded.rows {
            batch.insert(&self.window_of(bucket)?, key, value);
        }
        for candidate in encoded.latest {
            let tag = candidate.key[0];
            let stored = self
                .inner
                .latest
                .get(&candidate.key)
                .map_err(embedded("reading a latest row"))?;
            let newer = stored
                .as_deref()
                .and_then(|v| stored_at(tag, v))
                .is_none_or(|at| candidate.at > at);
            if newer {
                batch.insert(&self.inner.latest, candidate.key, candidate.value);
            }
        }
        batch.commit().map_err(embedded("writing a batch"))?;
        self.persist()
    }
}
