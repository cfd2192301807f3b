//! The flushing half of ingest: reads the WAL in order and writes it to the store.
//!
//! The WAL is the queue. The flusher reads up to `max_read_bytes` of records at a time from disk,
//! groups them ([`WriteBatch`]), writes them, and only then confirms their WAL position, so a
//! crash or a store outage at any point leaves the readings in the WAL to be written again.
//! Writes are idempotent, so writing a record twice is harmless.
//!
//! A failed write is retried with capped exponential backoff, for as long as it takes: data is
//! never dropped. Shutdown: after [`FlusherHandle::drain`], the flusher stops once it has caught
//! up with the WAL; the caller bounds that with a deadline and may simply drop the task, since
//! nothing unconfirmed is lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::record::{decode, RecordError};
use crate::model::{Reading, TimestampMs};
use crate::store::{SeriesSeen, Store, StoreError, WriteBatch};
use crate::telemetry::Metrics;
use crate::wal::{Position, Wal, WalError};

/// Series-bucket entries remembered as written (about 100 bytes each).
const SERIES_SEEN_CAPACITY: usize = 100_000;

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

impl Default for FlusherConfig {
    fn default() -> Self {
        Self {
            max_read_bytes: 4 * 1024 * 1024,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// Why the flusher stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// Reading or confirming the WAL failed.
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
    seen: SeriesSeen,
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
            seen: SeriesSeen::new(SERIES_SEEN_CAPACITY),
            drain,
            store_healthy,
        };
        (flusher, FlusherHandle { drain: drain_tx })
    }

    /// Runs until drained (Ok) or until the WAL fails (Err).
    pub async fn run(mut self) -> Result<(), FlushError> {
        let mut reader = Some(self.wal.reader(self.wal.confirmed()));
        let mut durable = self.wal.durable_end();
        let max_bytes = self.config.max_read_bytes;
        loop {
            // Blocking file reads run off the async workers.
            let mut taken = reader.take().expect("reader is put back after each read");
            let (back, records) = tokio::task::spawn_blocking(move || {
                let records = taken.next_batch(max_bytes);
                (taken, records)
            })
            .await
            .expect("WAL reader thread panicked");
            reader = Some(back);
            let records = records?;
            let Some(last) = records.last().map(|record| record.next) else {
                self.metrics.flush_lag_seconds.set(0.0);
                if *self.drain.borrow() {
                    return Ok(());
                }
                tokio::select! {
                    _ = durable.changed() => {}
                    _ = self.drain.changed() => {}
                }
                continue;
            };
            let mut readings: Vec<Reading> = Vec::new();
            let mut oldest: Option<TimestampMs> = None;
            for record in records {
                let accepted = decode(&record.payload).map_err(|source| FlushError::Record {
                    position: record.position,
                    source,
                })?;
                oldest = Some(oldest.map_or(accepted.at, |o| o.min(accepted.at)));
                readings.extend(accepted.readings);
            }
            let batch = WriteBatch::build(readings, self.store.settings(), &self.seen);
            self.write_until_stored(&batch, oldest).await;
            self.seen.remember(&batch.series);
            let wal = self.wal.clone();
            // Confirming fsyncs the checkpoint: keep it off the async workers.
            tokio::task::spawn_blocking(move || wal.confirm(last))
                .await
                .expect("WAL confirm thread panicked")?;
            self.metrics
                .readings_flushed
                .inc_by(batch.readings() as u64);
        }
    }

    /// Writes `batch`, retrying with backoff until the store takes it.
    async fn write_until_stored(&self, batch: &WriteBatch, oldest: Option<TimestampMs>) {
        let mut delay = self.config.retry_initial;
        loop {
            if let Some(at) = oldest {
                let lag_ms = (TimestampMs::now().millis() - at.millis()).max(0);
                self.metrics.flush_lag_seconds.set(lag_ms as f64 / 1000.0);
            }
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
        tracing::warn!(%error, retry_in = ?delay, "flush failed; the readings stay in the WAL and will be retried");
    }
}
