//! The small lookups: the series index (`/v1/series`), the latest readings (`/v1/latest`) and
//! whether a service is known at all.
//!
//! The series index is kept per bucket, so `/v1/series` answers with every series seen in a
//! bucket that overlaps `[from, to]`: at bucket granularity, by design of the index (one small
//! partition per bucket instead of scanning readings).
//!
//! A service is known when a latest table has a row of it; the latest tables hold every series
//! for the retention, so "unknown" means nothing arrived from it within the retention. Known
//! services are remembered for [`KNOWN_FOR`] so that a dashboard's queries cost no extra reads.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{stream, StreamExt, TryStreamExt};

use super::answer::{InstanceSeries, LatestAnswer, MethodPath, ReadingOut, SeriesAnswer};
use super::params::ParamErrors;
use super::requests::{LatestRequest, SeriesRequest};
use super::{Queries, QueryError};
use crate::model::{
    ApiReading, HostReading, InstanceName, ReadingKind, Seq, ServiceName, TimeBucket,
};
use crate::store::Store;

/// How long a service seen in the latest tables stays known without a new look.
pub const KNOWN_FOR: Duration = Duration::from_secs(60);
/// Most services remembered; past this the memory is cleared (a re-check is one small read).
const MAX_REMEMBERED: usize = 10_000;

/// Services recently found in the latest tables.
#[derive(Debug, Default)]
pub struct KnownServices {
    seen: Mutex<HashMap<ServiceName, Instant>>,
}

impl KnownServices {
    fn recently_seen(&self, service: &ServiceName) -> bool {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.get(service).is_some_and(|at| at.elapsed() < KNOWN_FOR)
    }

    fn remember(&self, service: &ServiceName) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
        seen.insert(service.clone(), Instant::now());
    }
}

fn unknown_service(service: &ServiceName) -> QueryError {
    QueryError::Params(ParamErrors::one(
        "service",
        format!("unknown service `{service}`: nothing has arrived from it within the retention"),
    ))
}

impl<S: Store> Queries<S> {
    fn latest_shards(&self) -> Vec<Seq> {
        self.store.settings().latest_shards.all().collect()
    }

    /// Fails with a 400 on `service` unless it has a row in a latest table.
    pub(super) async fn known_service(&self, service: &ServiceName) -> Result<(), QueryError> {
        if self.known.recently_seen(service) {
            return Ok(());
        }
        let known = self.has_latest::<ApiReading>(service).await?
            || self.has_latest::<HostReading>(service).await?;
        if !known {
            return Err(unknown_service(service));
        }
        self.known.remember(service);
        Ok(())
    }

    /// Whether `service` has a latest reading of kind `K` (stops at the first shard with one).
    async fn has_latest<K: ReadingKind>(&self, service: &ServiceName) -> Result<bool, QueryError> {
        let store = &*self.store;
        let found = stream::iter(self.latest_shards())
            .map(|shard| store.read_latest::<K>(shard, Some(service)))
            .buffer_unordered(self.limits.concurrency)
            .try_filter(|rows| futures::future::ready(!rows.is_empty()));
        let mut found = std::pin::pin!(found);
        Ok(found.try_next().await?.is_some())
    }

    /// The latest reading of kind `K` of every series (of one service, or all), sorted by
    /// service and series.
    async fn all_latest<K: ReadingKind>(
        &self,
        service: Option<&ServiceName>,
    ) -> Result<Vec<ReadingOut<K>>, QueryError> {
        let store = &*self.store;
        let mut rows: Vec<K> = stream::iter(self.latest_shards())
            .map(|shard| store.read_latest::<K>(shard, service))
            .buffer_unordered(self.limits.concurrency)
            .try_concat()
            .await?;
        rows.sort_by(|a, b| a.series().cmp(&b.series()));
        Ok(rows.into_iter().map(ReadingOut).collect())
    }

    /// `GET /v1/series`: the instances of a service in `[from, to]` (bucket granularity) and
    /// each one's API methods.
    pub async fn series(&self, request: &SeriesRequest) -> Result<SeriesAnswer, QueryError> {
        self.known_service(&request.service).await?;
        let store = &*self.store;
        let width = store.settings().bucket_width;
        let buckets = TimeBucket::covering(request.range.from, request.range.to, width);
        let entries: Vec<_> = stream::iter(buckets)
            .map(|bucket| store.read_series(&request.service, bucket))
            .buffer_unordered(self.limits.concurrency)
            .try_concat()
            .await?;
        let mut instances: BTreeMap<InstanceName, BTreeSet<MethodPath>> = BTreeMap::new();
        for entry in entries {
            let methods = instances.entry(entry.instance).or_default();
            if let (Some(method), Some(path)) = (entry.method, entry.path) {
                methods.insert(MethodPath {
                    method: method.to_string(),
                    path: path.to_string(),
                });
            }
        }
        Ok(SeriesAnswer {
            service: request.service.to_string(),
            instances: instances
                .into_iter()
                .map(|(instance, methods)| InstanceSeries {
                    instance: instance.to_string(),
                    methods: methods.into_iter().collect(),
                })
                .collect(),
        })
    }

    /// `GET /v1/latest`: the latest API reading of every series and host reading of every
    /// instance, of one service or all.
    pub async fn latest(&self, request: &LatestRequest) -> Result<LatestAnswer, QueryError> {
        let service = request.service.as_ref();
        let api = self.all_latest::<ApiReading>(service).await?;
        let host = self.all_latest::<HostReading>(service).await?;
        if let Some(service) = service {
            if api.is_empty() && host.is_empty() {
                return Err(unknown_service(service));
            }
            self.known.remember(service);
        }
        Ok(LatestAnswer { api, host })
    }
}
