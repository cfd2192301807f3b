//! The flusher's answer to WAL errors: retry what may work later, stop on the rest.
//!
//! A WAL read or confirm that fails with a retryable error ([`WalError::is_retryable`]: a
//! full disk, no free file descriptor, a passing I/O error) is retried with capped
//! exponential backoff for as long as it takes, counted in `timebucket_wal_retries_total`.
//! Retrying loses nothing: a failed read leaves the reader where it was, and a failed confirm
//! leaves the previous checkpoint, so the same records are read or confirmed again. Only
//! errors that no wait can fix (corruption found after open, a bug) stop the flusher.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::FlusherConfig;
use crate::telemetry::Metrics;
use crate::wal::{Position, Wal, WalError};

/// Backoff and bookkeeping shared by the flusher's WAL operations.
#[derive(Clone)]
pub(super) struct WalRetry {
    initial: Duration,
    max: Duration,
    metrics: Arc<Metrics>,
}

impl WalRetry {
    /// Retries with the flusher's own backoff settings.
    pub(super) fn new(config: &FlusherConfig, metrics: Arc<Metrics>) -> WalRetry {
        WalRetry {
            initial: config.retry_initial,
            max: config.retry_max,
            metrics,
        }
    }

    /// After failure number `failures` (counted up here) of `what`: waits and returns `Ok`
    /// when `error` is retryable, returns it otherwise.
    pub(super) async fn pause(
        &self,
        error: WalError,
        failures: &mut u32,
        what: &str,
    ) -> Result<(), WalError> {
        if !error.is_retryable() {
            return Err(error);
        }
        let delay = self
            .initial
            .saturating_mul(2_u32.saturating_pow(*failures))
            .min(self.max);
        *failures = failures.saturating_add(1);
        self.metrics.wal_retries.inc();
        tracing::warn!(%error, retry_in = ?delay, "{what} the WAL failed; retrying (nothing is lost)");
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// Runs `io` on the WAL's directory (blocking I/O, off the async workers), retrying while
    /// it fails with a retryable error.
    pub(super) async fn in_dir<T, F>(&self, wal: &Wal, what: &str, io: F) -> Result<T, WalError>
    where
        T: Send + 'static,
        F: Fn(&Path) -> std::io::Result<T> + Clone + Send + 'static,
    {
        let mut failures = 0;
        loop {
            let (dir, attempt) = (wal.dir().to_path_buf(), io.clone());
            let done = tokio::task::spawn_blocking(move || attempt(&dir))
                .await
                .expect("WAL directory task panicked");
            match done {
                Ok(value) => return Ok(value),
                Err(source) => {
                    let error = WalError::Io {
                        path: wal.dir().to_path_buf(),
                        source,
                    };
                    self.pause(error, &mut failures, what).await?;
                }
            }
        }
    }

    /// Confirms `upto` (blocking I/O, off the async workers), retrying while it fails with a
    /// retryable error.
    pub(super) async fn confirm(self, wal: Wal, upto: Position) -> Result<(), WalError> {
        let mut failures = 0;
        loop {
            let attempt = wal.clone();
            let confirmed = tokio::task::spawn_blocking(move || attempt.confirm(upto))
                .await
                .expect("WAL confirm thread panicked");
            match confirmed {
                Ok(()) => return Ok(()),
                Err(error) => self.pause(error, &mut failures, "confirming").await?,
            }
        }
    }
}
