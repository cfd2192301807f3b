//! The flushing half of ingest: reads the WAL in order and writes it to the store.
//!
//! The WAL is the queue. The flusher reads up to `max_read_bytes` of records at a time from disk,
//! groups them ([`WriteBatch`], one batch ahead of the write in progress), writes them, and only
//! then confirms their WAL position, so a
//! crash or a store outage at any point leaves the readings in the WAL to be written again.
//! Writes are idempotent, so writing a record twice is harmless.
//!
//! A failed write is retried with capped exponential backoff, for as long as it takes: data is
//! never dropped. So is a WAL read or confirm that fails with a retryable error (a full disk,
//! no free file descriptor): see `wal_retry`. Shutdown: after [`FlusherHandle::drain`], the
//! flusher stops once it has caught up with the WAL; the caller bounds that with a deadline
//! and may simply drop the task, since nothing unconfirmed is lost.

mod prepare;
mod wal_retry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::record::RecordError;
use crate::model::TimestampMs;
use crate::store::{Store, StoreError, WriteBatch};
use crate::telemetry::Metrics;
use crate::wal::{Position, Wal, WalError};
use prepare::{Prepared, Preparer};
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
}

impl FlusherConfig {
    /// Default `max_read_bytes`: 4 MiB, a few thousand readings per flush.
    pub const DEFAULT_MAX_READ_BYTES: usize = 4 * 1024 * 1024;
    /// Smallest `max_read_bytes` worth flushing with: below 64 KiB a flush carries so few
    /// readings that the store's round trips, not the data, set the pace.
    pub const MIN_MAX_READ_BYTES: usize = 64 * 1024;
}

impl Default for FlusherConfig {
    fn default() -> Self {
        Self {
            max_read_bytes: Self::DEFAULT_MAX_READ_BYTES,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// Why the flusher stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// Reading or confirming the WAL failed with an error that waiting cannot fix.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A record's CRC matched but its payload cannot be decoded: a bug or a foreign file.
    #[error("WAL record at {position} cannot be decoded: {source}")]
    Record {
        /// Position of the record.
        position: Position,
        /// Why.
        #[source]
        source: RecordError,
    },
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
}

impl<S: Store> Flusher<S> {
    /// A flusher and the handle that stops it. `store_healthy` is set after each write attempt.
    pub fn new(
        wal: Wal,
        store: Arc<S>,
        metrics: Arc<Metrics>,
        config: FlusherConfig,
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
        };
        (flusher, FlusherHandle { drain: drain_tx })
    }

    /// Runs until drained (Ok) or until the WAL fails (Err).
    ///
    /// Two stages overlap: a [`Preparer`] task reads, decodes and groups the next batch while this
    /// one writes the current batch, so the store is not left idle between flushes. At most one
    /// batch waits between them, which bounds memory to about three batches.
    pub async fn run(self) -> Result<(), FlushError> {
        let (ready_tx, ready) = mpsc::channel(1);
        let retry = WalRetry::new(&self.config, self.metrics.clone());
        let preparer = Preparer {
            wal: self.wal.clone(),
            settings: *self.store.settings(),
            max_read_bytes: self.config.max_read_bytes,
            drain: self.drain.clone(),
            retry: retry.clone(),
        };
        let mut preparing = AbortOnDrop(tokio::spawn(preparer.run(ready_tx)));
        let written = self.write_in_order(ready, &retry).await;
        let prepared = (&mut preparing.0)
            .await
            .expect("WAL preparer task panicked");
        prepared.and(written)
    }

    /// Writes each prepared batch until stored, then confirms its WAL position. A batch's
    /// confirmation (an fsync) overlaps the next batch's write; confirmations stay in order.
    async fn write_in_order(
        &self,
        mut ready: mpsc::Receiver<Prepared>,
        retry: &WalRetry,
    ) -> Result<(), FlushError> {
        let mut confirming: Option<JoinHandle<Result<(), WalError>>> = None;
        while let Some(prepared) = ready.recv().await {
            self.write_until_stored(&prepared.batch, prepared.oldest)
                .await;
            if ready.is_empty() {
                self.metrics.flush_lag_seconds.set(0.0);
            }
            if let Some(previous) = confirming.take() {
                previous.await.expect("WAL confirm thread panicked")?;
            }
            let confirm = retry.clone().confirm(self.wal.clone(), prepared.end);
            confirming = Some(tokio::spawn(confirm));
            self.metrics
                .readings_flushed
                .inc_by(prepared.batch.readings() as u64);
        }
        if let Some(last) = confirming {
            last.await.expect("WAL confirm thread panicked")?;
        }
        Ok(())
    }

    /// Writes `batch`, retrying with backoff until the store takes it.
    async fn write_until_stored(&self, batch: &WriteBatch, oldest: TimestampMs) {
        let mut delay = self.config.retry_initial;
        loop {
            let lag_ms = (TimestampMs::now().millis() - oldest.millis()).max(0);
            self.metrics.flush_lag_seconds.set(lag_ms as f64 / 1000.0);
            let started = Instant::now();
            match self.store.write(batch).await {
                Ok(()) => {
                    self.metrics
                        .flush_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.store_healthy.send_replace(true);
                    return;
                }
                Err(error) => self.record_failure(&error, delay),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.config.retry_max);
        }
    }

    fn record_failure(&self, error: &StoreError, delay: Duration) {
        self.store_healthy.send_replace(false);
        self.metrics.flush_retries.inc();
        self.metrics
            .store_errors
            .get_or_create(&[("cause", error.cause())])
            .inc();
        tracing::warn!(%error, retry_in = %humantime::format_duration(delay), "flush failed; the readings stay in the WAL and will be retried");
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
