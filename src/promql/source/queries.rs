//! [`Source`] over the query layer: the planner and the fan-out of [`Queries`] (buckets ×
//! shards, reads in parallel, `--query-concurrency` in flight).
//!
//! The whole adapter: it filters the store's pages and counts the rows it reads against the
//! query layer's `max_scan_rows`, so a PromQL read is bounded like any other query.
//!
//! A source may be limited to some services ([`QueriesSource::only`], for a token limited to
//! them): the others are neither listed nor read, so no query can reach their readings.
//!
//! Depends on exactly: `Queries::{api_pages, host_pages, services, limits, api_rollups,
//! rollups_complete_since}`, `ApiFilter::matches`.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::stream::{StreamExt, TryStreamExt};

use super::{Pages, Source, SourceError};
use crate::model::{ApiReading, HostReading, InstanceName, ServiceName, TimestampMs};
use crate::query::params::{ApiFilter, TimeRange};
use crate::query::{Queries, QueryError};
use crate::rollup::{Resolution, RollupRow};
use crate::store::Store;

/// The engine's source over a store's queries.
pub struct QueriesSource<S> {
    queries: Queries<S>,
    /// The only services visible; `None`: all.
    only: Option<Arc<BTreeSet<ServiceName>>>,
}

impl<S> QueriesSource<S> {
    /// A source reading through `queries`.
    pub fn new(queries: Queries<S>) -> Self {
        Self {
            queries,
            only: None,
        }
    }

    /// This source limited to `services`.
    pub fn only(self, services: BTreeSet<ServiceName>) -> Self {
        Self {
            only: Some(Arc::new(services)),
            ..self
        }
    }

    fn visible(&self, service: &ServiceName) -> bool {
        self.only.as_ref().is_none_or(|s| s.contains(service))
    }
}

/// Keeps the rows passing `keep`, failing once more than `limit` rows were read.
fn bounded<R: Send + 'static>(
    pages: futures::stream::BoxStream<'static, Result<Vec<R>, crate::store::StoreError>>,
    limit: u64,
    keep: impl Fn(&R) -> bool + Send + 'static,
) -> Pages<R> {
    let mut read = 0u64;
    pages
        .map_err(SourceError::from)
        .and_then(move |mut page| {
            read += page.len() as u64;
            let outcome = if read > limit {
                Err(SourceError::TooManyRows { limit })
            } else {
                page.retain(&keep);
                Ok(page)
            };
            futures::future::ready(outcome)
        })
        .boxed()
}

impl<S: Store> QueriesSource<S> {
    /// A query layer's failure as the engine's: its one parameter error is the row budget.
    fn failed(&self, error: QueryError) -> SourceError {
        match error {
            QueryError::Store(e) => SourceError::Store(e),
            QueryError::Params(_) => SourceError::TooManyRows {
                limit: self.queries.limits().max_scan_rows,
            },
        }
    }
}

impl<S: Store> Source for QueriesSource<S> {
    async fn services(&self) -> Result<Vec<ServiceName>, SourceError> {
        let mut services = self.queries.services().await?;
        services.retain(|s| self.visible(s));
        Ok(services)
    }

    fn api_readings(
        &self,
        service: &ServiceName,
        range: TimeRange,
        filter: &ApiFilter,
    ) -> Pages<ApiReading> {
        if !self.visible(service) {
            return futures::stream::empty().boxed();
        }
        let pages = self.queries.api_pages(service, range, filter);
        let filter = filter.clone();
        bounded(pages, self.queries.limits().max_scan_rows, move |r| {
            filter.matches(r)
        })
    }

    fn host_readings(
        &self,
        service: &ServiceName,
        range: TimeRange,
        instance: Option<&InstanceName>,
    ) -> Pages<HostReading> {
        if !self.visible(service) {
            return futures::stream::empty().boxed();
        }
        let pages = self.queries.host_pages(service, range, instance);
        let instance = instance.cloned();
        bounded(pages, self.queries.limits().max_scan_rows, move |r| {
            instance.as_ref().is_none_or(|i| *i == r.instance)
        })
    }

    async fn rollups_since(&self, service: &ServiceName) -> Result<TimestampMs, SourceError> {
        self.queries
            .rollups_complete_since(service)
            .await
            .map_err(|e| self.failed(e))
    }

    async fn api_rollups(
        &self,
        service: &ServiceName,
        resolution: Resolution,
        range: TimeRange,
        filter: &ApiFilter,
    ) -> Result<Vec<RollupRow>, SourceError> {
        if !self.visible(service) {
            return Ok(Vec::new());
        }
        self.queries
            .api_rollups(service, resolution, range, filter)
            .await
            .map_err(|e| self.failed(e))
    }
}
