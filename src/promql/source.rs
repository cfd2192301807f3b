//! Where the engine's data comes from: a narrow trait, so that the engine can be tested over
//! readings held in memory and does not depend on how the store pages its partitions.
//!
//! [`queries::QueriesSource`] implements it over the query layer's planner and fan-out; tests
//! implement it over a `Vec` of readings. Pages come in no particular order: the engine sorts
//! what it keeps.
//!
//! Rollups are optional for a source: by default it records none ([`Source::rollups_since`]
//! is never), and the engine reads raw readings only.

pub mod queries;

use std::future::Future;

use futures::stream::BoxStream;

use crate::model::{ApiReading, HostReading, InstanceName, ServiceName, TimestampMs};
use crate::query::params::{ApiFilter, TimeRange};
use crate::rollup::{Resolution, RollupRow};
use crate::store::StoreError;

/// Pages of readings, in no particular order.
pub type Pages<R> = BoxStream<'static, Result<Vec<R>, SourceError>>;

/// The reads the engine needs.
pub trait Source: Send + Sync + 'static {
    /// Every service that sent anything within the retention.
    fn services(&self) -> impl Future<Output = Result<Vec<ServiceName>, SourceError>> + Send;

    /// The API readings of `service` with a timestamp in `range` (both ends included) that pass
    /// `filter`.
    fn api_readings(
        &self,
        service: &ServiceName,
        range: TimeRange,
        filter: &ApiFilter,
    ) -> Pages<ApiReading>;

    /// The host readings of `service` in `range`, of one instance or all.
    fn host_readings(
        &self,
        service: &ServiceName,
        range: TimeRange,
        instance: Option<&InstanceName>,
    ) -> Pages<HostReading>;

    /// From when `service` has complete rollups (`rollup::coverage`); by default never.
    fn rollups_since(
        &self,
        _service: &ServiceName,
    ) -> impl Future<Output = Result<TimestampMs, SourceError>> + Send {
        async { Ok(TimestampMs::from_millis(i64::MAX)) }
    }

    /// The API rollup rows of `service` at `resolution` with a slot in `range` (whole slots)
    /// whose series pass `filter`, partials already reduced (`rollup::merge::maximal`); by
    /// default none.
    fn api_rollups(
        &self,
        _service: &ServiceName,
        _resolution: Resolution,
        _range: TimeRange,
        _filter: &ApiFilter,
    ) -> impl Future<Output = Result<Vec<RollupRow>, SourceError>> + Send {
        async { Ok(Vec::new()) }
    }
}

/// Why reading failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The store failed.
    #[error("reading from the store failed: {0}")]
    Store(#[from] StoreError),
    /// One read would go past the query layer's row budget.
    #[error(
        "the query reads more than {limit} readings of one service, the most one query may read \
         (--query-max-scan-rows); narrow the time range or add label matchers"
    )]
    TooManyRows {
        /// The budget.
        limit: u64,
    },
}

impl SourceError {
    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SourceError::Store(e) if e.is_retryable())
    }

    /// True when a limit refused the read.
    pub fn is_limit(&self) -> bool {
        matches!(self, SourceError::TooManyRows { .. })
    }
}
