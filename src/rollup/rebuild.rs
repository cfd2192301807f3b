//! `timebucket rollup rebuild`: rollups recomputed from the raw readings, for the hours before
//! the flusher wrote any (readings stored before rollups existed, or written around the
//! flusher), hour by hour and service by service.
//!
//! Invariants:
//! - **Only hours before *written since*** (`coverage`): from there on the flusher's partials
//!   hold every reading, and a rebuilt row next to them would count readings twice. A range
//!   reaching past it is cut there, and the summary says so.
//! - **Only hours whose raw readings are all still kept**: from the first whole hour after
//!   `now - retention` plus one hour (the oldest hour expires while it is being read), so a
//!   rerun never replaces a row with one computed from fewer readings.
//! - **Idempotent**: each (service, kind, series, slot) gets one row, keyed by the fixed
//!   [`REBUILT`] piece, so a rerun rewrites the same rows — with the readings that arrived
//!   late since — and readers never see two rebuilt rows of one slot.
//! - Rollups are complete from `from` once every hour from it to the recorded *since* is
//!   rebuilt: then (and only then) *since* is lowered to `from`, for the one service rebuilt or
//!   for all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use uuid::Uuid;

use super::coverage::{ceil_hour, floor_hour};
use super::{partials, Piece};
use crate::model::kind::{EachKind, Kinds, KINDS};
use crate::model::{ApiReading, HostReading, Reading, ReadingKind, ServiceName, TimestampMs};
use crate::query::fanout::{scan, Reads};
use crate::query::params::TimeRange;
use crate::query::plan::{plan, RangeRead};
use crate::store::{Order, Store, StoreError, WriteBatch};

/// The piece every rebuilt row is keyed by: a writer id no WAL directory has.
pub const REBUILT: Piece = Piece {
    writer: Uuid::from_u128(0x7265_6275_696c_7400_0000_0000_0000_0000),
    segment: 0,
    start: 0,
    last: 0,
};

const HOUR_MS: i64 = 3_600_000;
/// Rows per partition read.
const PAGE_ROWS: u32 = 5_000;
/// Partition reads in flight.
const CONCURRENCY: usize = 8;

/// What to rebuild.
#[derive(Debug, Clone)]
pub struct RebuildRequest {
    /// The first instant (rounded down to its hour).
    pub from: TimestampMs,
    /// The last instant (its hour is rebuilt whole).
    pub to: TimestampMs,
    /// One service, or every service with readings within the retention.
    pub service: Option<ServiceName>,
}

/// The hours a rebuild covers, once cut to what may be rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildRange {
    /// The first hour.
    pub from: TimestampMs,
    /// The end (exclusive, a whole hour).
    pub until: TimestampMs,
    /// The requested start was before the oldest whole hour of kept raw readings.
    pub cut_by_retention: bool,
    /// The requested end was past the flusher's first hour.
    pub cut_by_flusher: bool,
}

impl RebuildRange {
    /// The whole hours of `request` that may be rebuilt in a store keeping raw readings
    /// `ttl_seconds` with flusher partials from `written_since`, as of `now`.
    pub fn of(
        request: &RebuildRequest,
        ttl_seconds: u32,
        written_since: TimestampMs,
        now: TimestampMs,
    ) -> Self {
        let oldest = ceil_hour(TimestampMs::from_millis(
            now.millis() - i64::from(ttl_seconds) * 1000,
        ));
        let oldest = TimestampMs::from_millis(oldest.millis() + HOUR_MS);
        let from = floor_hour(request.from);
        let until = ceil_hour(TimestampMs::from_millis(request.to.millis() + 1));
        Self {
            from: from.max(oldest),
            until: until.min(written_since),
            cut_by_retention: from < oldest,
            cut_by_flusher: until > written_since,
        }
    }

    /// The hours, oldest first.
    pub fn hours(&self) -> Vec<TimestampMs> {
        (self.from.millis()..self.until.millis())
            .step_by(HOUR_MS as usize)
            .map(TimestampMs::from_millis)
            .collect()
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildSummary {
    /// The hours rebuilt.
    pub range: RebuildRange,
    /// The services rebuilt.
    pub services: usize,
    /// Raw readings read.
    pub readings: u64,
    /// Rollup rows written (both levels).
    pub rows: u64,
    /// The recorded start of complete rollups afterwards, when the rebuild lowered it.
    pub since_lowered_to: Option<TimestampMs>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Rebuilds the rollups `request` asks for in `store`, calling `progress(done, total)` after
/// each (service, hour).
pub async fn rebuild<S: Store>(
    store: Arc<S>,
    request: &RebuildRequest,
    now: TimestampMs,
    mut progress: impl FnMut(u64, u64),
) -> Result<RebuildSummary, StoreError> {
    let started = Instant::now();
    let settings = *store.settings();
    let range = RebuildRange::of(
        request,
        settings.ttl_seconds,
        store.rollups_written_since(),
        now,
    );
    let services = match &request.service {
        Some(service) => vec![service.clone()],
        None => services(&*store).await?,
    };
    let hours = range.hours();
    let total = (hours.len() * services.len()) as u64;
    let (mut readings, mut rows, mut done) = (0, 0, 0);
    progress(0, total);
    for service in &services {
        for &hour in &hours {
            let span = TimeRange {
                from: hour,
                to: TimestampMs::from_millis(hour.millis() + HOUR_MS - 1),
            };
            let mut read = read_hour::<S, ApiReading>(&store, service, span).await?;
            read.extend(read_hour::<S, HostReading>(&store, service, span).await?);
            readings += read.len() as u64;
            let batch = WriteBatch {
                rollups: partials(&read, REBUILT, TimestampMs::from_millis(i64::MIN)),
                ..WriteBatch::default()
            };
            rows += batch.rollups.len() as u64;
            if !batch.rollups.is_empty() {
                store.write(&batch).await?;
            }
            done += 1;
            progress(done, total);
        }
    }
    let since_lowered_to = lower_since(&*store, request, &services, range).await?;
    Ok(RebuildSummary {
        range,
        services: services.len(),
        readings,
        rows,
        since_lowered_to,
        elapsed: started.elapsed(),
    })
}

/// Lowers the recorded *since* to the range's start when the range reaches it (so every hour
/// from the start on has complete rollups); returns the new value.
async fn lower_since<S: Store>(
    store: &S,
    request: &RebuildRequest,
    services: &[ServiceName],
    range: RebuildRange,
) -> Result<Option<TimestampMs>, StoreError> {
    if range.from >= range.until {
        return Ok(None);
    }
    let mut current = store.rollups_written_since();
    if !services.is_empty() {
        current = TimestampMs::from_millis(i64::MIN);
        for service in services {
            current = current.max(store.rollups_since(service).await?);
        }
    }
    if range.until < current {
        return Ok(None);
    }
    store
        .lower_rollups_since(request.service.as_ref(), range.from)
        .await?;
    Ok(Some(match services {
        [one] => store.rollups_since(one).await?,
        _ => range.from.min(current),
    }))
}

/// Every reading of kind `K` of `service` in `span`.
async fn read_hour<S: Store, K: ReadingKind>(
    store: &Arc<S>,
    service: &ServiceName,
    span: TimeRange,
) -> Result<Vec<Reading>, StoreError> {
    let read = RangeRead {
        service,
        range: span,
        order: Order::Asc,
        resume: None,
        shard: None,
        page_rows: PAGE_ROWS,
    };
    let partitions = plan(&read, store.settings())
        .into_iter()
        .flatten()
        .collect();
    let reads = Reads::new(store.clone(), CONCURRENCY);
    let mut pages = scan::<S, K>(&reads, partitions);
    let mut out = Vec::new();
    while let Some(page) = pages.try_next().await? {
        out.extend(page.into_iter().map(K::into_reading));
    }
    Ok(out)
}

/// Every service with a latest reading of any kind (one within the retention).
pub(crate) async fn services<S: Store>(store: &S) -> Result<Vec<ServiceName>, StoreError> {
    let mut names = std::collections::BTreeSet::new();
    for shard in store.settings().latest_shards.all() {
        let mut collect = Services {
            store,
            shard,
            futures: Vec::new(),
        };
        KINDS.each(&mut collect);
        for future in collect.futures {
            names.extend(future.await?);
        }
    }
    Ok(names.into_iter().collect())
}

type ServicesFuture<'a> = futures::future::BoxFuture<'a, Result<Vec<ServiceName>, StoreError>>;

/// The latest-table reads of one shard, one per kind.
struct Services<'a, S> {
    store: &'a S,
    shard: crate::model::Seq,
    futures: Vec<ServicesFuture<'a>>,
}

impl<'a, S: Store> EachKind<'_, Kinds> for Services<'a, S> {
    fn each<K: ReadingKind>(&mut self, _: &()) {
        let (store, shard) = (self.store, self.shard);
        self.futures.push(Box::pin(async move {
            let latest = store.read_latest::<K>(shard, None).await?;
            Ok(latest.iter().map(|r| r.service().clone()).collect())
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_is_whole_hours_within_retention_and_before_the_flusher() {
        let at = TimestampMs::from_millis;
        let day = 24 * HOUR_MS;
        let now = at(100 * day + 30 * 60_000);
        let written_since = at(100 * day + HOUR_MS);
        let request = RebuildRequest {
            from: at(99 * day + 90 * 60_000),
            to: at(100 * day + 5 * HOUR_MS),
            service: None,
        };
        let range = RebuildRange::of(&request, 7 * 24 * 3600, written_since, now);
        assert_eq!(range.from, at(99 * day + HOUR_MS));
        assert_eq!(range.until, written_since);
        assert!(range.cut_by_flusher && !range.cut_by_retention);
        assert_eq!(range.hours().len(), 24);
        // A day of retention: the oldest hour goes, the one before the next whole hour too.
        let range = RebuildRange::of(&request, 24 * 3600, written_since, now);
        assert_eq!(range.from, at(99 * day + 2 * HOUR_MS));
        assert!(range.cut_by_retention);
    }
}
