//! Whole-range page streams for other engines (the PromQL engine): every page of every
//! partition a range read touches, and the list of known services.
//!
//! Pages are the store's, unfiltered and in no particular order (the unordered [`scan`]); a
//! filter only pins the shard when it names a whole series key. The caller filters rows and
//! counts them against `max_scan_rows`.

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::fanout::{scan, ApiRows, HostRows};
use super::params::{ApiFilter, TimeRange};
use super::plan::{api_shard, host_shard};
use super::Queries;
use crate::model::{ApiReading, HostReading, InstanceName, ServiceName};
use crate::store::{Store, StoreError};

impl<S: Store> Queries<S> {
    /// Every page of API readings of `service` in `range`, of the one shard `filter` pins or
    /// of all.
    pub fn api_pages(
        &self,
        service: &ServiceName,
        range: TimeRange,
        filter: &ApiFilter,
    ) -> BoxStream<'static, Result<Vec<ApiReading>, StoreError>> {
        let shard = api_shard(filter, self.store.settings().shards);
        let partitions = self.all_partitions(service, range, shard);
        scan::<S, ApiRows>(&self.reads(), partitions)
    }

    /// Every page of host readings of `service` in `range`, of one instance's shard or of all.
    pub fn host_pages(
        &self,
        service: &ServiceName,
        range: TimeRange,
        instance: Option<&InstanceName>,
    ) -> BoxStream<'static, Result<Vec<HostReading>, StoreError>> {
        let shard = host_shard(instance, self.store.settings().shards);
        let partitions = self.all_partitions(service, range, shard);
        scan::<S, HostRows>(&self.reads(), partitions)
    }

    /// Every service with a row in a latest table, i.e. that sent anything within the
    /// retention; sorted.
    pub async fn services(&self) -> Result<Vec<ServiceName>, StoreError> {
        let store = &*self.store;
        let shards: Vec<_> = store.settings().latest_shards.all().collect();
        let concurrency = self.limits.concurrency;
        let api: Vec<ServiceName> = stream::iter(shards.clone())
            .map(|shard| store.read_latest_api(shard, None))
            .buffer_unordered(concurrency)
            .map_ok(|rows| rows.into_iter().map(|r| r.service).collect::<Vec<_>>())
            .try_concat()
            .await?;
        let host: Vec<ServiceName> = stream::iter(shards)
            .map(|shard| store.read_latest_host(shard, None))
            .buffer_unordered(concurrency)
            .map_ok(|rows| rows.into_iter().map(|r| r.service).collect::<Vec<_>>())
            .try_concat()
            .await?;
        let mut services: Vec<ServiceName> = api.into_iter().chain(host).collect();
        services.sort_unstable();
        services.dedup();
        Ok(services)
    }
}
