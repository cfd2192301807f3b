//! The flushing half of ingest: reads the WAL in order and writes it to the store.
//!
//! The WAL is the queue. The flusher reads up to `max_read_bytes` of records at a time from disk,
//! groups them ([`WriteBatch`](crate::store::WriteBatch), one batch ahead of the write in progress), writes them, and only
//! then confirms their WAL position, so a
//! crash or a store outage at any point leaves the readings in the WAL to be written again.
//! Writes are idempotent, so writing a record twice is harmless.
//!
//! A write that fails with a retryable error ([`StoreError::is_retryable`]: the store is
//! unavailable) is retried with capped exponential backoff, for as long as it takes. So is a WAL
//! read or confirm that fails with a retryable error (a full disk, no free file descriptor): see
//! `wal_retry`. A batch the store refuses for good, and a WAL record that cannot be decoded, are
//! set aside in the [`quarantine`](super::quarantine) instead, so they never block ingest: data
//! is never dropped. Shutdown: after [`FlusherHandle::drain`], the flusher stops once it has
//! caught up with the WAL; the caller bounds that with a deadline and may simply drop the task,
//! since nothing unconfirmed is lost.

mod prepare;
mod wal_retry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::quarantine::{Header, Item, Quarantine, What};
use super::record::{encode, Accepted};
use crate::model::TimestampMs;
use crate::rollup::{open_piece, Cells, Piece, RollupRow};
use crate::store::{LatestRows, Store, StoreError, WriteBatch};
use crate::telemetry::Metrics;
use crate::wal::{Position, Wal, WalError};
use prepare::{PieceEnd, Prepared, Preparer, Ready};
use wal_retry::WalRetry;

/// Flusher tuning.
#[derive(Debug, Clone, Copy)]
pub struct FlusherConfig {
    /// Most WAL bytes read (and so held in memory) per flush.
    pub max_read_bytes: usize,
    /// First retry delay after a failed write.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// The cell budget of a piece ([`open_piece::MAX_PIECE_CELLS`] unless a test needs a small
    /// one). Never lower it between two runs over one WAL: a replay could then end a piece
    /// early that the crashed run had not recorded.
    pub max_piece_cells: usize,
    /// How old a piece must be to end where the reader caught up
    /// ([`Self::DEFAULT_MIN_PIECE_AGE`]; tests that want a piece per catch-up use zero).
    pub min_piece_age: Duration,
}

impl FlusherConfig {
    /// Default `max_read_bytes`: 1 MiB, some 45,000 readings per flush at the ~22 bytes a
    /// reading takes in a WAL record (`ingest::record`). It was 4 MiB when a reading took ~90:
    /// the readings a flush holds in memory stayed about the same.
    pub const DEFAULT_MAX_READ_BYTES: usize = 1024 * 1024;
    /// Smallest `max_read_bytes` worth flushing with: below 64 KiB a flush carries so few
    /// readings that the store's round trips, not the data, set the pace.
    pub const MIN_MAX_READ_BYTES: usize = 64 * 1024;
    /// Default `min_piece_age`: 1 s. Under a steady load the store keeps up with, a series
    /// then gets at most one partial row per minute and hour, and one latest row, per second,
    /// instead of one per batch; the rollups (and the flushed count) of the last second of a
    /// burst come that much later. A piece of a full batch (`max_read_bytes`) or more ends where
    /// the reader catches up whatever its age.
    pub const DEFAULT_MIN_PIECE_AGE: Duration = Duration::from_secs(1);
}

impl Default for FlusherConfig {
    fn default() -> Self {
        Self {
            max_read_bytes: Self::DEFAULT_MAX_READ_BYTES,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            max_piece_cells: open_piece::MAX_PIECE_CELLS,
            min_piece_age: Self::DEFAULT_MIN_PIECE_AGE,
        }
    }
}

/// Why the flusher stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// Reading or confirming the WAL failed with an error that waiting cannot fix.
    #[error(transparent)]
    Wal(#[from] WalError),
}

/// Asks a running flusher to stop once it has caught up.
#[derive(Debug, Clone)]
pub struct FlusherHandle {
    drain: watch::Sender<bool>,
}

impl FlusherHandle {
    /// Stop after the WAL is fully written to the store.
    pub fn drain(&self) {
        let _ = self.drain.send(true);
    }
}

/// Moves readings from the WAL to the store.
pub struct Flusher<S: Store> {
    wal: Wal,
    store: Arc<S>,
    metrics: Arc<Metrics>,
    config: FlusherConfig,
    drain: watch::Receiver<bool>,
    store_healthy: watch::Sender<bool>,
    /// Where what can never be written goes.
    quarantine: Quarantine,
}

impl<S: Store> Flusher<S> {
    /// A flusher and the handle that stops it. `store_healthy` is set after each write attempt;
    /// what can never be written goes to `quarantine`.
    pub fn new(
        wal: Wal,
        store: Arc<S>,
        metrics: Arc<Metrics>,
        config: FlusherConfig,
        quarantine: Quarantine,
        store_healthy: watch::Sender<bool>,
    ) -> (Self, FlusherHandle) {
        let (drain_tx, drain) = watch::channel(false);
        let flusher = Self {
            wal,
            store,
            metrics,
            config,
            drain,
            store_healthy,
            quarantine,
        };
        (flusher, FlusherHandle { drain: drain_tx })
    }

    /// Runs until drained (Ok) or until the WAL fails (Err).
    ///
    /// Two stages overlap: a [`Preparer`] task reads, decodes and groups the next batch while this
    /// one writes the current batch, so the store is not left idle between flushes. The preparer
    /// groups a batch only once the writer has taken the previous one, which bounds the
    /// flusher's memory to two batches (one being written, one ready), one WAL read and the
    /// rollup aggregates of the piece under way.
    pub async fn run(self) -> Result<(), FlushError> {
        let (ready_tx, ready) = mpsc::channel(1);
        let retry = WalRetry::new(&self.config, self.metrics.clone());
        let mut preparer = Preparer {
            wal: self.wal.clone(),
            settings: *self.store.settings(),
            wal_ids: false,
            max_read_bytes: self.config.max_read_bytes,
            min_piece_age: self.config.min_piece_age,
            drain: self.drain.clone(),
            quarantine: self.quarantine.clone(),
            metrics: self.metrics.clone(),
            retry: retry.clone(),
        };
        let writer = preparer.writer_id().await?;
        // Asked once the WAL's identity is known: a store gives WAL ids to one WAL only.
        preparer.wal_ids = self.store.wal_ids(writer);
        let mut preparing = AbortOnDrop(tokio::spawn(preparer.run(ready_tx)));
        let written = self.write_in_order(ready, &retry, writer).await;
        let prepared = (&mut preparing.0)
            .await
            .expect("WAL preparer task panicked");
        prepared.and(written)
    }

    /// Writes each prepared batch until stored; after the last batch of a piece (`writer`'s),
    /// writes the piece's partial rollups and latest rows (from the batches the store took)
    /// and confirms its WAL position. A piece ends where the preparer says it must, or early
    /// once its aggregates reach the cell budget; a piece that reached it is recorded before
    /// its partials are written (see `rollup::open_piece`). A confirmation (an fsync) overlaps
    /// the next batches' writes, not the next piece's rows; confirmations stay in order. A
    /// batch's readings count as flushed once stored and a later batch or the end of its piece
    /// came, the last batch of a piece's once the piece's rows are stored too, so the count
    /// reaching what was accepted means everything derived from it is stored.
    async fn write_in_order(
        &self,
        mut ready: mpsc::Receiver<Ready>,
        retry: &WalRetry,
        writer: Uuid,
    ) -> Result<(), FlushError> {
        let mut confirming: Option<JoinHandle<Result<(), WalError>>> = None;
        let mut piece = Cells::default();
        let mut open: Option<Extent> = None;
        let mut latest = LatestRows::default();
        // Stored readings of the open piece's latest batch, not counted yet.
        let mut held = 0u64;
        let since = self.store.rollups_written_since();
        while let Some(next) = ready.recv().await {
            let ends = match next {
                Ready::EndPiece => true,
                Ready::Batch(mut prepared) => {
                    let extent = open.get_or_insert(Extent::from(&*prepared));
                    (extent.last, extent.end) = (prepared.last, prepared.end);
                    let batch_latest = prepared.batch.take_latest();
                    if self.write_until_stored(&prepared).await {
                        piece.add_batch(&prepared.batch, since);
                        latest.append(batch_latest);
                    }
                    if ready.is_empty() {
                        self.metrics.flush_lag_seconds.set(0.0);
                    }
                    let stored = prepared.batch.readings() as u64;
                    self.metrics
                        .readings_flushed
                        .inc_by(std::mem::replace(&mut held, stored));
                    // A piece ends where the preparer says, or early once its aggregates are
                    // many.
                    match prepared.piece_end {
                        PieceEnd::Here => true,
                        PieceEnd::IfFull => self.full(&piece),
                        PieceEnd::NotYet => false,
                    }
                }
            };
            // A piece the writer ended at the cell budget leaves nothing for an `EndPiece`.
            let Some(extent) = open.take_if(|_| ends) else {
                continue;
            };
            let ended = Piece {
                writer,
                segment: extent.start.segment.0,
                start: extent.start.offset,
                last: extent.last.offset,
            };
            // The previous piece is confirmed before this one's rows are written, so a crash
            // leaves at most one piece with rows written and its end not confirmed: the one a
            // replay starts with (see `rollup::open_piece`).
            if let Some(previous) = confirming.take() {
                previous.await.expect("WAL confirm thread panicked")?;
            }
            if self.full(&piece) {
                // A replay could end it early elsewhere: it must end where this one does.
                retry
                    .in_dir(&self.wal, "recording a rollup piece in", move |dir| {
                        open_piece::record(dir, &ended)
                    })
                    .await?;
            }
            let rollups = std::mem::take(&mut piece).into_rows(ended);
            self.metrics.rollup.pieces.inc();
            self.metrics
                .rollup
                .partial_rows
                .inc_by(rollups.len() as u64);
            self.write_piece_rows(rollups, std::mem::take(&mut latest))
                .await;
            self.metrics
                .readings_flushed
                .inc_by(std::mem::take(&mut held));
            let confirm = retry.clone().confirm(self.wal.clone(), extent.end);
            confirming = Some(tokio::spawn(confirm));
        }
        if let Some(last) = confirming {
            last.await.expect("WAL confirm thread panicked")?;
        }
        Ok(())
    }

    /// Whether `piece`'s aggregates reached the cell budget.
    fn full(&self, piece: &Cells) -> bool {
        piece.cell_count() >= self.config.max_piece_cells
    }

    /// Writes a prepared batch, retrying with backoff while the store is unavailable, until the
    /// store takes it (true) or refuses it for good (false: the batch went to the quarantine).
    async fn write_until_stored(&self, prepared: &Prepared) -> bool {
        let lag_ms = (TimestampMs::now().millis() - prepared.oldest.millis()).max(0);
        self.metrics.flush_lag_seconds.set(lag_ms as f64 / 1000.0);
        match self.store_with_retries(&prepared.batch).await {
            Ok(took) => {
                self.metrics.flush_seconds.observe(took.as_secs_f64());
                true
            }
            Err(error) => {
                self.set_aside(prepared, &error).await;
                false
            }
        }
    }

    /// Writes the partial rollups and the latest rows of a piece. Both are derived from
    /// readings that are stored, so a refusal for good loses nothing raw: it is logged and
    /// counted; the latest rows are replaced by the next piece's, and the stats of those slots
    /// come out short until `timebucket rollup rebuild` recomputes them.
    async fn write_piece_rows(&self, rollups: Vec<RollupRow>, latest: LatestRows) {
        let batch = WriteBatch {
            rollups,
            ..latest.into_batch()
        };
        if batch.rollups.is_empty() && batch.latest_rows() == 0 {
            return;
        }
        if let Err(error) = self.store_with_retries(&batch).await {
            tracing::error!(%error, rollups = batch.rollups.len(), latest = batch.latest_rows(), "the store refused a piece's partial rollups and latest rows; rebuild the rollups of these slots with `timebucket rollup rebuild`");
        }
    }

    /// Writes `batch`, retrying with backoff while the store is unavailable: how long the
    /// write that succeeded took, or the error when the store refuses it for good.
    async fn store_with_retries(&self, batch: &WriteBatch) -> Result<Duration, StoreError> {
        let mut delay = self.config.retry_initial;
        loop {
            let started = Instant::now();
            match self.store.write(batch).await {
                Ok(()) => {
                    self.store_healthy.send_replace(true);
                    return Ok(started.elapsed());
                }
                Err(error) if error.is_retryable() => self.record_failure(&error, delay),
                Err(error) => return Err(error),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.config.retry_max);
        }
    }

    /// Puts a batch the store refused in the quarantine.
    async fn set_aside(&self, prepared: &Prepared, error: &StoreError) {
        self.count(error);
        let readings = prepared.batch.to_readings();
        let header = Header {
            what: What::Batch,
            at: TimestampMs::now().to_rfc3339(),
            wal: format!("{} to {}", prepared.first, prepared.end),
            readings: Some(readings.len()),
            reason: error.to_string(),
        };
        let payload = encode(&Accepted {
            at: prepared.oldest,
            readings,
        });
        let item = Item {
            header,
            payload,
            position: prepared.first,
        };
        self.quarantine.set_aside(item, &self.metrics).await;
    }

    fn count(&self, error: &StoreError) {
        self.metrics
            .store_errors
            .get_or_create(&[("cause", error.cause())])
            .inc();
    }

    fn record_failure(&self, error: &StoreError, delay: Duration) {
        self.store_healthy.send_replace(false);
        self.metrics.flush_retries.inc();
        self.count(error);
        tracing::warn!(%error, retry_in = %humantime::format_duration(delay), "flush failed; the readings stay in the WAL and will be retried");
    }
}

/// Where the open piece lies in the WAL.
struct Extent {
    /// Its first record.
    start: Position,
    /// Its last record so far.
    last: Position,
    /// The position after its last record: confirmed once the piece is stored.
    end: Position,
}

impl From<&Prepared> for Extent {
    fn from(prepared: &Prepared) -> Self {
        Self {
            start: prepared.first,
            last: prepared.last,
            end: prepared.end,
        }
    }
}

/// Aborts the task when dropped: the preparer must not outlive a flusher that was dropped at its
/// shutdown deadline.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
