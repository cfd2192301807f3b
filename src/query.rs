//! Queries: time-range reads that fan out over buckets and shards, and the answers built on them.
//!
//! ```text
//!  query string ──requests──► typed request (limits checked, cursor verified)
//!                                   │
//!                  plan: buckets covering [from, to] × shards (or the one shard a filter pins)
//!                                   │
//!        fanout: partition pages, ≤ concurrency in flight ──► ordered merge  ──► /v1/readings
//!                                                        └──► unordered scan ──► /v1/stats[/host]
//!  rollups (whole minutes / hours of the range, `source`) ──► merged partials ─┘
//!  series index (one partition per bucket) ──────────────────────────────────► /v1/series
//!  latest tables (latest_shard_count partitions) ────────────────────────────► /v1/latest
//! ```
//!
//! Everything here is backend-independent: it reads through the partition-level, paged
//! [`Store`] read methods only, and knows nothing of HTTP (the handlers are in `api::query`).
//!
//! Invariants: no query reads more than `max_scan_rows` rows or holds more than a window of
//! pages (readings) or `max_points` cells (stats) in memory; a service is "unknown" when neither
//! latest table has a row of it, i.e. nothing arrived from it within the retention.

pub mod answer;
mod cells;
pub mod cli;
pub mod cursor;
pub mod fanout;
mod host_stats;
pub mod limits;
mod lookup;
mod pages;
pub mod params;
pub mod plan;
mod readings;
pub mod requests;
pub(crate) mod rollups;
pub mod sketch;
pub mod source;
mod stats;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use futures::TryStreamExt;

pub use limits::QueryLimits;
pub use params::{ParamErrors, ParamProblem};

use answer::{HostStatsAnswer, StatsAnswer};
use fanout::{scan, scan_api_columns, Reads};
use lookup::KnownServices;
use plan::{api_shard, host_shard, plan, RangeRead};
use requests::{HostStatsRequest, StatsRequest};

use crate::model::{
    ApiReading, HostReading, InstanceName, ReadingKind, Seq, ServiceName, TimestampMs,
};
use crate::rollup::Agg;
use crate::store::{ApiColumnsRequest, ApiSeriesColumns, Order, PageRequest, Store, StoreError};
use answer::SourceUsed;
use params::TimeRange;
use source::Level;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request is wrong; each problem names its parameter.
    #[error(transparent)]
    Params(#[from] ParamErrors),
    /// The store failed.
    #[error("reading from the store failed: {0}")]
    Store(#[from] StoreError),
}

/// The query side of the service, over one store.
pub struct Queries<S> {
    store: Arc<S>,
    limits: QueryLimits,
    known: Arc<KnownServices>,
}

impl<S> Clone for Queries<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            limits: self.limits,
            known: self.known.clone(),
        }
    }
}

impl<S: Store> Queries<S> {
    /// Queries over `store`, bounded by `limits`.
    pub fn new(store: Arc<S>, limits: QueryLimits) -> Self {
        Self {
            store,
            limits,
            known: Arc::new(KnownServices::default()),
        }
    }

    /// The limits requests are checked against.
    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// A fresh concurrency budget for one query.
    fn reads(&self) -> Reads<S> {
        Reads::new(self.store.clone(), self.limits.concurrency)
    }

    /// The first page request of every partition of a full range read, in any order.
    fn all_partitions(
        &self,
        service: &ServiceName,
        range: TimeRange,
        shard: Option<Seq>,
    ) -> Vec<PageRequest> {
        let read = RangeRead {
            service,
            range,
            order: Order::Asc,
            resume: None,
            shard,
            page_rows: self.limits.page_rows,
        };
        plan(&read, self.store.settings())
            .into_iter()
            .flatten()
            .collect()
    }

    fn too_many_rows(&self) -> QueryError {
        QueryError::Params(ParamErrors::one(
            "from",
            format!(
                "[from, to] holds more than {} readings, the most one query may read \
                 (--query-max-scan-rows); narrow the range or filter to one series",
                self.limits.max_scan_rows
            ),
        ))
    }

    /// Every reading of kind `K` of `service` in `range` (of one shard, when given), handed to
    /// `add` in no particular order: the raw scan behind both stats endpoints. Fails once more
    /// than `max_scan_rows` rows were read in all (`scanned` counts across the spans of a query).
    async fn fold<K: ReadingKind>(
        &self,
        service: &ServiceName,
        range: TimeRange,
        shard: Option<Seq>,
        scanned: &mut u64,
        mut add: impl FnMut(&K) -> Result<(), ParamErrors>,
    ) -> Result<(), QueryError> {
        let partitions = self.all_partitions(service, range, shard);
        let mut pages = scan::<S, K>(&self.reads(), partitions);
        while let Some(page) = pages.try_next().await? {
            *scanned += page.len() as u64;
            if *scanned > self.limits.max_scan_rows {
                return Err(self.too_many_rows());
            }
            for reading in &page {
                add(reading)?;
            }
        }
        Ok(())
    }

    /// Folds the projected API columns (`store::projected`) of every partition of `service` in
    /// `range` into `add`, series by series, counting rows against `max_scan_rows` as
    /// [`Queries::fold`] does.
    async fn fold_api_columns(
        &self,
        service: &ServiceName,
        range: TimeRange,
        shard: Option<Seq>,
        scanned: &mut u64,
        mut add: impl FnMut(&ApiSeriesColumns) -> Result<(), ParamErrors>,
    ) -> Result<(), QueryError> {
        let budget = self.limits.max_scan_rows.saturating_sub(*scanned);
        let requests = self
            .all_partitions(service, range, shard)
            .into_iter()
            .map(|page| ApiColumnsRequest {
                partition: page.partition,
                from: range.from,
                to: range.to,
                page_rows: page.limit,
                max_rows: budget,
            })
            .collect();
        let mut partitions = scan_api_columns(&self.reads(), requests);
        while let Some(columns) = partitions.try_next().await? {
            *scanned += columns.rows();
            if *scanned > self.limits.max_scan_rows {
                return Err(self.too_many_rows());
            }
            for series in &columns.series {
                add(series)?;
            }
        }
        Ok(())
    }

    /// From when `service` has complete rollups, as `source` needs it (raw reads nothing).
    async fn rollups_since(
        &self,
        service: &ServiceName,
        source: source::Source,
    ) -> Result<TimestampMs, QueryError> {
        Ok(match source {
            source::Source::Raw => TimestampMs::from_millis(i64::MAX),
            source::Source::Rollup | source::Source::Auto => {
                self.store.rollups_since(service).await?
            }
        })
    }

    /// `GET /v1/stats`: API readings per step and group, from rollups and raw readings as
    /// [`source::plan`] splits the range.
    pub async fn stats(&self, request: &StatsRequest) -> Result<StatsAnswer, QueryError> {
        self.known_service(&request.service).await?;
        let shard = api_shard(&request.filter, self.store.settings().shards);
        let mut stats =
            stats::ApiStats::new(request.step, request.group_by, self.limits.max_points);
        let filter = &request.filter;
        let since = self.rollups_since(&request.service, request.source).await?;
        let spans = source::plan(request.range, request.step, request.source, since);
        let mut scanned = 0;
        for span in &spans {
            match span.level {
                Level::Raw => {
                    let add = |series: &ApiSeriesColumns| stats.add_columns(series, filter);
                    let service = &request.service;
                    self.fold_api_columns(service, span.range, shard, &mut scanned, add)
                        .await?;
                }
                Level::Rollup(resolution) => {
                    let kind = ApiReading::INFO.index;
                    let rows = self
                        .rollup_rows(&request.service, kind, resolution, span.range, &mut scanned)
                        .await?;
                    for row in &rows {
                        if let Agg::Api(agg) = &row.agg {
                            if rollups::matches(filter, &row.series) {
                                stats.add_rollup(&row.series, row.slot, agg)?;
                            }
                        }
                    }
                }
            }
        }
        let mut answer = stats.finish();
        answer.source = Some(SourceUsed::of(&spans, since_shown(request.source, since)));
        Ok(answer)
    }

    /// `GET /v1/stats/host`: host gauges per instance and step, from rollups and raw readings
    /// as [`source::plan`] splits the range.
    pub async fn host_stats(
        &self,
        request: &HostStatsRequest,
    ) -> Result<HostStatsAnswer, QueryError> {
        self.known_service(&request.service).await?;
        let shard = host_shard(request.instance.as_ref(), self.store.settings().shards);
        let mut stats =
            host_stats::HostStats::new(request.step, request.range, self.limits.max_points);
        let wanted = |i: &InstanceName| request.instance.as_ref().is_none_or(|w| w == i);
        let since = self.rollups_since(&request.service, request.source).await?;
        let spans = source::plan(request.range, request.step, request.source, since);
        let mut scanned = 0;
        for span in &spans {
            match span.level {
                Level::Raw => {
                    let add = |r: &HostReading| {
                        if wanted(&r.instance) {
                            stats.add(r)
                        } else {
                            Ok(())
                        }
                    };
                    let service = &request.service;
                    self.fold::<HostReading>(service, span.range, shard, &mut scanned, add)
                        .await?;
                }
                Level::Rollup(resolution) => {
                    let kind = HostReading::INFO.index;
                    let rows = self
                        .rollup_rows(&request.service, kind, resolution, span.range, &mut scanned)
                        .await?;
                    for row in &rows {
                        if let Agg::Host(agg) = &row.agg {
                            if wanted(&row.series.instance) {
                                stats.add_rollup(&row.series.instance, row.slot, agg)?;
                            }
                        }
                    }
                }
            }
        }
        let mut answer = stats.finish();
        answer.source = Some(SourceUsed::of(&spans, since_shown(request.source, since)));
        Ok(answer)
    }
}

/// The *since* an answer shows: none when raw readings were asked for.
fn since_shown(source: source::Source, since: TimestampMs) -> Option<TimestampMs> {
    (source != source::Source::Raw).then_some(since)
}
