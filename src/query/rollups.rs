//! Reading rollups for the stats endpoints and the PromQL engine: every partition of a level
//! over a span of whole slots, read concurrently, partials reduced to the maximal pieces
//! (`rollup::merge`).

use futures::stream::{self, StreamExt, TryStreamExt};

use super::params::{ApiFilter, TimeRange};
use super::{Queries, QueryError};
use crate::model::{ApiReading, ReadingKind, ServiceName, TimestampMs};
use crate::rollup::{merge, Resolution, RollupRequest, RollupRow, RollupSeries};
use crate::store::Store;

/// True when an API rollup series passes every filter.
pub fn matches(filter: &ApiFilter, series: &RollupSeries) -> bool {
    filter
        .instance
        .as_ref()
        .is_none_or(|i| *i == series.instance)
        && filter
            .method
            .as_ref()
            .is_none_or(|m| series.method.as_ref() == Some(m))
        && filter
            .path
            .as_ref()
            .is_none_or(|p| series.path.as_ref() == Some(p))
        && filter.code.is_none_or(|c| series.code == Some(c))
}

/// The read requests of every partition of `resolution` holding slots of `range` (whole
/// slots: `range` starts and ends on slot boundaries).
fn requests(
    service: &ServiceName,
    kind: usize,
    resolution: Resolution,
    range: TimeRange,
) -> Vec<RollupRequest> {
    let first_slot = resolution.slot_of(range.from);
    let last_slot = resolution.slot_of(range.to);
    let width_ms = resolution.partition_seconds() * 1000;
    let mut partition = resolution.partition_of(first_slot);
    let mut out = Vec::new();
    while partition * 1000 <= last_slot.millis() {
        let start = crate::model::TimestampMs::from_millis(partition * 1000);
        let end = crate::model::TimestampMs::from_millis(partition * 1000 + width_ms - 1);
        out.push(RollupRequest {
            service: service.clone(),
            kind,
            resolution,
            partition,
            from: first_slot.max(start),
            to: last_slot.min(end),
        });
        partition += resolution.partition_seconds();
    }
    out
}

impl<S: Store> Queries<S> {
    /// The merged partials of kind `kind` of `service` at `resolution` in `range`, counted
    /// against `max_scan_rows` in `scanned`.
    pub(super) async fn rollup_rows(
        &self,
        service: &ServiceName,
        kind: usize,
        resolution: Resolution,
        range: TimeRange,
        scanned: &mut u64,
    ) -> Result<Vec<RollupRow>, QueryError> {
        let store = &*self.store;
        let mut reads = stream::iter(requests(service, kind, resolution, range))
            .map(|request| async move { store.read_rollups(&request).await })
            .buffer_unordered(self.limits.concurrency);
        let mut rows = Vec::new();
        while let Some(mut page) = reads.try_next().await? {
            *scanned += page.len() as u64;
            if *scanned > self.limits.max_scan_rows {
                return Err(self.too_many_rows());
            }
            rows.append(&mut page);
        }
        Ok(merge::maximal(rows))
    }

    /// From when `service` has complete rollups (`rollup::coverage`).
    pub async fn rollups_complete_since(
        &self,
        service: &ServiceName,
    ) -> Result<TimestampMs, QueryError> {
        Ok(self.store.rollups_since(service).await?)
    }

    /// The merged API rollup rows of `service` at `resolution` in `range` (whole slots) whose
    /// series pass `filter`, bounded by `max_scan_rows`: the PromQL engine's read.
    pub async fn api_rollups(
        &self,
        service: &ServiceName,
        resolution: Resolution,
        range: TimeRange,
        filter: &ApiFilter,
    ) -> Result<Vec<RollupRow>, QueryError> {
        let kind = ApiReading::INFO.index;
        let mut scanned = 0;
        let mut rows = self
            .rollup_rows(service, kind, resolution, range, &mut scanned)
            .await?;
        rows.retain(|row| matches(filter, &row.series));
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_clamped_to_the_range() {
        let service = ServiceName::parse("svc").unwrap();
        let h = 3_600_000;
        let range = TimeRange {
            from: TimestampMs::from_millis(10 * h + 60_000),
            to: TimestampMs::from_millis(12 * h - 1),
        };
        let list = requests(&service, 0, Resolution::Minute, range);
        let spans: Vec<(i64, i64, i64)> = list
            .iter()
            .map(|r| (r.partition, r.from.millis(), r.to.millis()))
            .collect();
        assert_eq!(
            spans,
            [
                (36_000, 10 * h + 60_000, 11 * h - 1),
                (39_600, 11 * h, 12 * h - 60_000)
            ]
        );
    }
}
