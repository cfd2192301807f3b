//! Whole-range page streams for other engines (the PromQL engine): every page of every
//! partition a range read touches, and the list of known services.
//!
//! Pages are the store's, unfiltered and in no particular order (the unordered [`scan`]); a
//! filter only pins the shard when it names a whole series key. The caller filters rows and
//! counts them against `max_scan_rows`.

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::fanout::scan;
use super::params::{ApiFilter, TimeRange};
use super::plan::{api_shard, host_shard};
use super::Queries;
use crate::model::{ApiReading, HostReading, InstanceName, ReadingKind, ServiceName};
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
        scan::<S, ApiReading>(&self.reads(), partitions)
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
        scan::<S, HostReading>(&self.reads(), partitions)
    }

    /// Every service with a row in a latest table, i.e. that sent anything within the
    /// retention; sorted.
    pub async fn services(&self) -> Result<Vec<ServiceName>, StoreError> {
        let mut services = self.services_of::<ApiReading>().await?;
        services.extend(self.services_of::<HostReading>().await?);
        services.sort_unstable();
        services.dedup();
        Ok(services)
    }

    /// The services of every latest row of kind `K`, unsorted.
    async fn services_of<K: ReadingKind>(&self) -> Result<Vec<ServiceName>, StoreError> {
        let store = &*self.store;
        let shards: Vec<_> = store.settings().latest_shards.all().collect();
        stream::iter(shards)
            .map(|shard| store.read_latest::<K>(shard, None))
            .buffer_unordered(self.limits.concurrency)
            .map_ok(|rows| rows.iter().map(|r| r.service().clone()).collect::<Vec<_>>())
            .try_concat()
            .await
    }
}
