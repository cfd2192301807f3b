//! The embedded store's read path: every read is one range or prefix scan over keys laid out
//! by `codec`, so a partition's rows come back in `(timestamp, reading_id)` order (reversed for
//! descending reads) exactly as from CQL.
//!
//! These are blocking calls; the [`Store`](crate::store::Store) impl runs them on the blocking
//! pool. A bucket whose window keyspace does not exist (never written, or dropped by retention)
//! simply has no rows.

use std::ops::Bound;

use uuid::Uuid;

use super::codec::{self, ApiValue, HostValue, API, HOST, SERIES};
use super::writer::latest_key;
use super::{embedded, EmbeddedStore};
use crate::model::{
    ApiPath, ApiReading, HostReading, HttpMethod, InstanceName, ReadingId, Seq, ServiceName,
    StatusCode, TimeBucket, TimestampMs,
};
use crate::store::{Order, PageRequest, SeriesEntry, StoreError};

fn bad(what: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::decode(what, reason)
}

impl EmbeddedStore {
    /// The `(time, id, value)` of up to `limit` rows of one partition, in the request's order.
    fn page_rows(
        &self,
        tag: u8,
        request: &PageRequest,
        what: &'static str,
    ) -> Result<Vec<(TimestampMs, ReadingId, fjall::UserValue)>, StoreError> {
        let Some(keyspace) = self.existing_window_of(request.partition.bucket) else {
            return Ok(Vec::new());
        };
        let prefix = codec::partition_prefix(tag, &request.partition);
        let after = codec::row_key(&prefix, request.after.timestamp, request.after.id);
        let limit = request.limit as usize;
        let rows: Box<dyn Iterator<Item = fjall::Guard>> = match request.order {
            Order::Asc => {
                let end = codec::row_key(&prefix, request.until, ReadingId::from_uuid(Uuid::max()));
                if after >= end {
                    return Ok(Vec::new());
                }
                Box::new(keyspace.range((Bound::Excluded(after), Bound::Included(end))))
            }
            Order::Desc => {
                let start =
                    codec::row_key(&prefix, request.until, ReadingId::from_uuid(Uuid::nil()));
                if start >= after {
                    return Ok(Vec::new());
                }
                Box::new(
                    keyspace
                        .range((Bound::Included(start), Bound::Excluded(after)))
                        .rev(),
                )
            }
        };
        rows.take(limit)
            .map(|guard| {
                let (key, value) = guard.into_inner().map_err(embedded(what))?;
                let (at, id) =
                    codec::row_suffix(&key).ok_or_else(|| bad(what, "a row key is too short"))?;
                Ok((at, id, value))
            })
            .collect()
    }

    /// See [`Store::read_api`](crate::store::Store::read_api).
    pub(super) fn api_page(&self, request: &PageRequest) -> Result<Vec<ApiReading>, StoreError> {
        const WHAT: &str = "reading API readings";
        self.page_rows(API, request, WHAT)?
            .into_iter()
            .map(|(timestamp, id, value)| {
                let v: ApiValue = codec::decode(&value).map_err(|e| bad(WHAT, e))?;
                Ok(ApiReading {
                    id,
                    service: request.partition.service.clone(),
                    instance: InstanceName::parse(&v.instance).map_err(|e| bad(WHAT, e))?,
                    method: HttpMethod::parse(&v.method).map_err(|e| bad(WHAT, e))?,
                    path: ApiPath::parse(&v.path).map_err(|e| bad(WHAT, e))?,
                    code: StatusCode::parse(i64::from(v.code)).map_err(|e| bad(WHAT, e))?,
                    duration_ms: v.duration_ms,
                    count: v.count,
                    timestamp,
                })
            })
            .collect()
    }

    /// See [`Store::read_host`](crate::store::Store::read_host).
    pub(super) fn host_page(&self, request: &PageRequest) -> Result<Vec<HostReading>, StoreError> {
        const WHAT: &str = "reading host readings";
        self.page_rows(HOST, request, WHAT)?
            .into_iter()
            .map(|(timestamp, id, value)| {
                let v: HostValue = codec::decode(&value).map_err(|e| bad(WHAT, e))?;
                Ok(HostReading {
                    id,
                    service: request.partition.service.clone(),
                    instance: InstanceName::parse(&v.instance).map_err(|e| bad(WHAT, e))?,
                    timestamp,
                    gauges: v.gauges,
                })
            })
            .collect()
    }

    /// See [`Store::read_series`](crate::store::Store::read_series).
    pub(super) fn series_of(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        const WHAT: &str = "reading the series index";
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

    /// Every latest row under `tag` in `shard` (of one service, or all), decoded as `T`.
    pub(super) fn latest_of<T: serde::de::DeserializeOwned>(
        &self,
        tag: u8,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<T>, StoreError> {
        const WHAT: &str = "reading latest readings";
        let parts: Vec<&str> = service.iter().map(|s| s.as_str()).collect();
        let prefix = latest_key(tag, shard.get(), &parts);
        self.inner
            .latest
            .prefix(&prefix)
            .map(|guard| {
                let value = guard.value().map_err(embedded(WHAT))?;
                codec::decode(&value).map_err(|e| bad(WHAT, e))
            })
            .collect()
    }
}
