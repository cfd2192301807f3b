//! The embedded store's read path: every read is one range or prefix scan over keys laid out
//! by `codec`, so a partition's rows come back in `(timestamp, reading_id)` order (reversed for
//! descending reads) exactly as from CQL.
//!
//! These are blocking calls; the [`Store`](crate::store::Store) impl runs them on the blocking
//! pool. A bucket whose window keyspace does not exist (never written, or dropped by retention)
//! simply has no rows.

use super::codec::{self, SERIES};
use super::{embedded, EmbeddedStore};
use crate::model::{
    ApiPath, HttpMethod, InstanceName, ReadingKind, Seq, ServiceName, TimeBucket, TimestampMs,
};
use crate::store::{expired, PageRequest, SeriesEntry, Store, StoreError};

fn bad(what: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::decode(what, reason)
}

impl EmbeddedStore {
    /// See [`Store::read_page`]: from the blocks.
    pub(super) fn page<K: ReadingKind>(&self, request: &PageRequest) -> Result<Vec<K>, StoreError> {
        self.inner.blocks.page(request)
    }

    /// See [`Store::read_series`].
    pub(super) fn series_of(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        const WHAT: &str = "reading the series index";
        let settings = self.settings();
        if expired(
            bucket.end(settings.bucket_width),
            settings.ttl_seconds,
            TimestampMs::now(),
        ) {
            return Ok(Vec::new());
        }
        let Some(keyspace) = self.existing_window_of(bucket) else {
            return Ok(Vec::new());
        };
        let mut prefix = vec![SERIES];
        codec::push_text(&mut prefix, service.as_str());
        codec::push_i64(&mut prefix, bucket.epoch_seconds());
        keyspace
            .prefix(&prefix)
            .map(|guard| {
                let key = guard.key().map_err(embedded(WHAT))?;
                let rest = std::str::from_utf8(&key[prefix.len()..]).map_err(|e| bad(WHAT, e))?;
                let mut parts = rest.split('\0');
                let (Some(instance), Some(method), Some(path)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad(WHAT, "a series key has fewer than three parts"));
                };
                // Host-only instances are recorded with an empty method and path.
                let api = !method.is_empty();
                Ok(SeriesEntry {
                    service: service.clone(),
                    bucket,
                    instance: InstanceName::parse(instance).map_err(|e| bad(WHAT, e))?,
                    method: api
                        .then(|| HttpMethod::parse(method).map_err(|e| bad(WHAT, e)))
                        .transpose()?,
                    path: api
                        .then(|| ApiPath::parse(path).map_err(|e| bad(WHAT, e)))
                        .transpose()?,
                })
            })
            .collect()
    }

    /// See [`Store::read_latest`]: every latest row of kind `K` in `shard` (of one service, or
    /// all) whose reading is within the retention.
    pub(super) fn latest_of<K: ReadingKind>(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<K>, StoreError> {
        const WHAT: &str = "reading latest readings";
        let parts: Vec<&str> = service.iter().map(|s| s.as_str()).collect();
        let prefix = codec::latest_key(K::INFO.tag, shard.get(), &parts);
        let (ttl, now) = (self.settings().ttl_seconds, TimestampMs::now());
        let mut rows = Vec::new();
        for guard in self.inner.latest.prefix(&prefix) {
            let value = guard.value().map_err(embedded(WHAT))?;
            let reading: K = codec::decode(&value).map_err(|e| bad(WHAT, e))?;
            if !expired(reading.timestamp(), ttl, now) {
                rows.push(reading);
            }
        }
        Ok(rows)
    }
}
