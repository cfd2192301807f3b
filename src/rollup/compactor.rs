//! The compaction job `serve` runs: every `--rollup-compaction-interval` ([`INTERVAL`] by default), the closed slots of the recent rollup
//! partitions of every service are compacted ([`compact`]) for this replica's writer, up to its
//! WAL's confirmed position.
//!
//! Recent means the minute partitions of the last [`MINUTE_LOOKBACK_MS`] and the hour
//! partitions of the last [`HOUR_LOOKBACK_MS`]; closed means a slot ended [`GRACE_MS`] ago.
//! Partials of older slots (very late readings) stay partials: readers merge them as before.
//! A failed run is logged and retried at the next interval: compaction only saves reads.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::compact::{self, COMPACTED_SEGMENT};
use super::rebuild::services;
use super::{Resolution, RollupRequest, RollupRow};
use crate::model::{ApiReading, HostReading, ReadingKind, TimestampMs};
use crate::store::{RollupKey, RollupPageRequest, Store, StoreError};
use crate::telemetry::Metrics;
use crate::wal::{Position, Wal};

/// Default time between two runs (`serve --rollup-compaction-interval`).
pub const INTERVAL: Duration = Duration::from_secs(10 * 60);
/// How long after its end a slot counts as closed, ms.
pub const GRACE_MS: i64 = 2 * 60_000;
/// How far back minute partitions are compacted, ms.
pub const MINUTE_LOOKBACK_MS: i64 = 3 * 3_600_000;
/// How far back hour partitions are compacted, ms.
pub const HOUR_LOOKBACK_MS: i64 = 2 * 86_400_000;

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Compacted rows written.
    pub written: usize,
    /// Rows deleted.
    pub deleted: usize,
}

/// The read requests (both kinds) of the slots of `resolution` from the one holding `since`
/// to the last one ending at or before `closed`.
pub fn requests(
    service: &crate::model::ServiceName,
    resolution: Resolution,
    since: i64,
    closed: i64,
) -> Vec<RollupRequest> {
    let width_ms = resolution.partition_seconds() * 1000;
    let last_slot = resolution
        .slot_of(TimestampMs::from_millis(closed))
        .millis()
        - resolution.step_ms();
    let mut partition =
        resolution.partition_of(resolution.slot_of(TimestampMs::from_millis(since)));
    let mut out = Vec::new();
    while partition * 1000 <= last_slot {
        for kind in [ApiReading::INFO.index, HostReading::INFO.index] {
            out.push(RollupRequest {
                service: service.clone(),
                kind,
                resolution,
                partition,
                from: TimestampMs::from_millis(partition * 1000),
                to: TimestampMs::from_millis((partition * 1000 + width_ms - 1).min(last_slot)),
            });
        }
        partition += resolution.partition_seconds();
    }
    out
}

/// Compacts the closed recent slots of every service for `writer`, up to `upto` (at most its
/// confirmed WAL position), as of `now`.
pub async fn run_once<S: Store>(
    store: &S,
    writer: Uuid,
    upto: Position,
    now: TimestampMs,
) -> Result<Compacted, StoreError> {
    debug_assert!(upto.segment.0 < COMPACTED_SEGMENT);
    let closed = now.millis() - GRACE_MS;
    let mut done = Compacted::default();
    for service in services(store).await? {
        let mut reads = requests(
            &service,
            Resolution::Minute,
            now.millis() - MINUTE_LOOKBACK_MS,
            closed,
        );
        reads.extend(requests(
            &service,
            Resolution::Hour,
            now.millis() - HOUR_LOOKBACK_MS,
            closed,
        ));
        let one = compact_partitions(store, writer, upto, reads, PAGE_ROWS).await?;
        done.written += one.written;
        done.deleted += one.deleted;
    }
    Ok(done)
}

/// Rows read per page, and rows of finished endpoints held before their compaction is written.
/// With a dense sketch (~4 KiB) a page is ~2 MiB; memory does not grow with the series of a slot.
pub const PAGE_ROWS: u32 = 512;

/// Compacts the rows `reads` ask for (see [`requests`]) for `writer` up to `upto`, slot by slot
/// and, within a slot, endpoint by endpoint: the rows of one endpoint (every code) in one slot
/// are contiguous in a page read ([`crate::store::RollupKey`]), so at most a page of
/// `page_rows` rows, the current endpoint's rows and `page_rows` planned rows are held at once
/// ([`PAGE_ROWS`] in `serve`).
pub async fn compact_partitions<S: Store>(
    store: &S,
    writer: Uuid,
    upto: Position,
    reads: Vec<RollupRequest>,
    page_rows: u32,
) -> Result<Compacted, StoreError> {
    let page_rows = page_rows.max(1);
    let mut done = Compacted::default();
    for request in reads.iter().flat_map(slots_of) {
        let mut slot = SlotCompaction::new(store, writer, upto, page_rows as usize);
        let mut page = RollupPageRequest {
            rows: request,
            after: None,
            limit: page_rows,
        };
        loop {
            let rows = store.read_rollup_page(&page).await?;
            let last = rows.len() < page_rows as usize;
            page.after = rows.last().map(RollupKey::of);
            for row in rows {
                slot.add(row).await?;
            }
            if last {
                break;
            }
        }
        let one = slot.finish().await?;
        done.written += one.written;
        done.deleted += one.deleted;
    }
    Ok(done)
}

/// The compaction of one slot, fed its rows in key order.
struct SlotCompaction<'a, S> {
    store: &'a S,
    writer: Uuid,
    upto: Position,
    /// The writer's rows of the current endpoint (every code of it).
    endpoint: Vec<RollupRow>,
    /// Planned and not yet applied.
    planned: compact::Compaction,
    /// Planned rows past which they are applied.
    apply_at: usize,
    done: Compacted,
}

impl<'a, S: Store> SlotCompaction<'a, S> {
    fn new(store: &'a S, writer: Uuid, upto: Position, apply_at: usize) -> Self {
        Self {
            store,
            writer,
            upto,
            endpoint: Vec::new(),
            planned: compact::Compaction::default(),
            apply_at,
            done: Compacted::default(),
        }
    }

    /// Takes the next row; a row of another endpoint ends the current one.
    async fn add(&mut self, row: RollupRow) -> Result<(), StoreError> {
        if row.piece.writer != self.writer {
            return Ok(());
        }
        if self
            .endpoint
            .first()
            .is_some_and(|s| !s.series.same_endpoint(&row.series))
        {
            self.end_endpoint().await?;
        }
        self.endpoint.push(row);
        Ok(())
    }

    /// Plans the current endpoint, and applies what is planned once it reaches `apply_at` rows
    /// (an endpoint's rows are always applied together: `compact::plan`).
    async fn end_endpoint(&mut self) -> Result<(), StoreError> {
        let plan = compact::plan(std::mem::take(&mut self.endpoint), self.writer, self.upto);
        self.planned.write.extend(plan.write);
        self.planned.delete.extend(plan.delete);
        if self.planned.write.len() + self.planned.delete.len() >= self.apply_at {
            self.apply().await?;
        }
        Ok(())
    }

    /// Writes the planned rows, then deletes what they hold (the order `compact` requires).
    async fn apply(&mut self) -> Result<(), StoreError> {
        let plan = std::mem::take(&mut self.planned);
        if !plan.write.is_empty() {
            let batch = crate::store::WriteBatch {
                rollups: plan.write,
                ..Default::default()
            };
            self.store.write(&batch).await?;
            self.done.written += batch.rollups.len();
        }
        if !plan.delete.is_empty() {
            self.store.delete_rollups(&plan.delete).await?;
            self.done.deleted += plan.delete.len();
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<Compacted, StoreError> {
        if !self.endpoint.is_empty() {
            self.end_endpoint().await?;
        }
        self.apply().await?;
        Ok(self.done)
    }
}

/// `request` as one read per slot. A slot is what [`compact::plan`] merges, and a slot's rows are
/// all it needs; a whole partition is not something to hold at once: a day of hour slots holds a
/// partial per flush for each series, and reading one took the embedded store's service from
/// 240 to 614 MiB at 50 M readings (BENCHMARKS.md, "Embedded store at scale").
fn slots_of(request: &RollupRequest) -> impl Iterator<Item = RollupRequest> + '_ {
    let step = request.resolution.step_ms();
    let held = request.resolution.slot_of(request.from).millis();
    // The first slot that starts within the request.
    let first = if held < request.from.millis() {
        held + step
    } else {
        held
    };
    (first..=request.to.millis())
        .step_by(usize::try_from(step).expect("a slot is a positive number of ms"))
        .map(move |slot| RollupRequest {
            from: TimestampMs::from_millis(slot),
            to: TimestampMs::from_millis(slot),
            ..request.clone()
        })
}

/// Runs [`run_once`] every `interval` for the writer of `wal`, until the task is aborted, and
/// counts each run in `metrics`. The writer id is the flusher's: read, never created here
/// (until the flusher has created it there is nothing of this writer to compact).
pub async fn run<S: Store>(store: Arc<S>, wal: Wal, interval: Duration, metrics: Arc<Metrics>) {
    loop {
        tokio::time::sleep(interval).await;
        let dir = wal.dir().to_path_buf();
        let writer = tokio::task::spawn_blocking(move || super::writer_id::load(&dir))
            .await
            .expect("rollup writer id task panicked");
        let writer = match writer {
            Ok(Some(writer)) => writer,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, "rollup compaction skipped: cannot read the writer id");
                metrics.rollup.record("failed", 0, 0);
                continue;
            }
        };
        match run_once(&*store, writer, wal.confirmed(), TimestampMs::now()).await {
            Ok(done) => {
                if done.written > 0 {
                    tracing::info!(
                        written = done.written,
                        deleted = done.deleted,
                        "rollups compacted"
                    );
                }
                metrics.rollup.record("ok", done.written, done.deleted);
            }
            Err(error) => {
                tracing::warn!(%error, "rollup compaction failed; retried later");
                metrics.rollup.record("failed", 0, 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_closed_slots_of_recent_partitions_are_read() {
        let service = crate::model::ServiceName::parse("svc").unwrap();
        let h = 3_600_000;
        let list = requests(&service, Resolution::Minute, 10 * h + 5, 12 * h + 90_000);
        let spans: Vec<(i64, i64, i64)> = list
            .iter()
            .step_by(2)
            .map(|r| (r.partition, r.from.millis(), r.to.millis()))
            .collect();
        assert_eq!(
            spans,
            [
                (36_000, 10 * h, 11 * h - 1),
                (39_600, 11 * h, 12 * h - 1),
                (43_200, 12 * h, 12 * h)
            ]
        );
    }

    #[test]
    fn a_partition_is_read_slot_by_slot() {
        let service = crate::model::ServiceName::parse("svc").unwrap();
        let h = 3_600_000;
        let partition = RollupRequest {
            service,
            kind: 0,
            resolution: Resolution::Hour,
            partition: 0,
            from: TimestampMs::from_millis(h - 1),
            to: TimestampMs::from_millis(4 * h),
        };
        let slots: Vec<(i64, i64)> = slots_of(&partition)
            .map(|r| (r.from.millis(), r.to.millis()))
            .collect();
        assert_eq!(
            slots,
            [(h, h), (2 * h, 2 * h), (3 * h, 3 * h), (4 * h, 4 * h)]
        );
    }
}
