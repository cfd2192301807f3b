//! [`Source`] over the query layer: the planner and the fan-out of [`Queries`] (buckets ×
//! shards, reads in parallel, `--query-concurrency` in flight).
//!
//! The whole adapter: it filters the store's pages and counts the rows it reads against the
//! query layer's `max_scan_rows`, so a PromQL read is bounded like any other query.
//!
//! Depends on exactly: `Queries::{api_pages, host_pages, services, limits}`, `ApiFilter::matches`.

use futures::stream::{StreamExt, TryStreamExt};

use super::{Pages, Source, SourceError};
use crate::model::{ApiReading, HostReading, InstanceName, ServiceName};
use crate::query::params::{ApiFilter, TimeRange};
use crate::query::Queries;
use crate::store::Store;

/// The engine's source over a store's queries.
pub struct QueriesSource<S> {
    queries: Queries<S>,
}

impl<S> QueriesSource<S> {
    /// A source reading through `queries`.
    pub fn new(queries: Queries<S>) -> Self {
        Self { queries }
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

impl<S: Store> Source for QueriesSource<S> {
    async fn services(&self) -> Result<Vec<ServiceName>, SourceError> {
        Ok(self.queries.services().await?)
    }

    fn api_readings(
        &self,
        service: &ServiceName,
        range: TimeRange,
        filter: &ApiFilter,
    ) -> Pages<ApiReading> {
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
        let pages = self.queries.host_pages(service, range, instance);
        let instance = instance.cloned();
        bounded(pages, self.queries.limits().max_scan_rows, move |r| {
            instance.as_ref().is_none_or(|i| *i == r.instance)
        })
    }
}
