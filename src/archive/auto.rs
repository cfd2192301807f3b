//! Automatic archiving (`serve --archive-dir DIR`): every bucket is exported once it is
//! complete, oldest first, before retention drops it.
//!
//! A bucket is complete once its end plus `--archive-grace` has passed: ingest accepts readings
//! of any time within the retention, so "complete" is a choice — the grace covers clients that
//! push late and the WAL backlog. A reading that arrives after its bucket was archived is in the
//! store but not in the archive; `timebucket archive export` over that range exports the bucket
//! again (its count grew).
//!
//! Progress is one instant, the manifest's `archived_until`: every bucket before it has been
//! exported, for every service the store knew then. It only moves forward, one bucket at a
//! time, after that bucket's files and manifest are durable. A failed bucket is retried with
//! backoff (`--archive-*` below, `/metrics`), never skipped.
//!
//! Retention: on the embedded store `archived_until` is a [`RetentionHold`]: loaded before the
//! store opens (whose first expiry pass runs at open) and moved forward with each bucket, so a
//! compaction window is dropped only once every bucket in it is archived, however far behind
//! the archive is (its disk then grows). CQL writes each row's TTL when it writes the row, so no
//! hold is possible there: the archive runs `--archive-grace` after a bucket ends, far ahead
//! of the retention, and `timebucket_archive_expiry_margin_seconds` says how much time is left
//! before the oldest bucket not yet archived starts to expire.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::manifest::{ArchiveLock, Manifest};
use super::{ArchiveError, Exporter};
use crate::model::{TimeBucket, TimestampMs};
use crate::store::{RetentionHold, Store};
use crate::telemetry::Metrics;

/// Settings of automatic archiving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// The archive's directory.
    pub dir: PathBuf,
    /// How long after its end a bucket is archived.
    pub grace: Duration,
    /// First wait after a failure; doubled after each further one.
    pub retry_initial: Duration,
    /// Longest wait after a failure.
    pub retry_max: Duration,
    /// Longest sleep between two looks at the clock.
    pub poll: Duration,
}

impl ArchiveConfig {
    /// Default `grace`: an hour past a bucket's end covers agents and replicas that push late
    /// and a WAL backlog of a brief outage, and is far shorter than any retention.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);
    /// Default `retry_initial`.
    pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(5);
    /// Default `retry_max`.
    pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);
    /// Default `poll`.
    pub const DEFAULT_POLL: Duration = Duration::from_secs(30);

    /// The defaults, archiving into `dir`.
    pub fn in_dir(dir: PathBuf) -> Self {
        Self {
            dir,
            grace: Self::DEFAULT_GRACE,
            retry_initial: Self::DEFAULT_RETRY_INITIAL,
            retry_max: Self::DEFAULT_RETRY_MAX,
            poll: Self::DEFAULT_POLL,
        }
    }
}

/// Automatic archiving, prepared before the store opens: the archive locked (a second process
/// archiving there stops `serve` at once) and the hold its progress puts on retention.
#[derive(Debug)]
pub struct Prepared {
    config: ArchiveConfig,
    lock: ArchiveLock,
    hold: RetentionHold,
}

impl Prepared {
    /// Locks the archive in `config.dir` and reads its progress.
    pub fn new(config: ArchiveConfig) -> Result<Self, ArchiveError> {
        let lock = ArchiveLock::take(&config.dir)?;
        let until = Manifest::load(&config.dir)?.and_then(|m| m.archived_until);
        // Without progress yet, nothing may go before the first pass has archived it.
        let hold = match until {
            Some(seconds) => RetentionHold::until(TimestampMs::from_millis(seconds * 1000)),
            None => RetentionHold::keep_all(),
        };
        Ok(Self { config, lock, hold })
    }

    /// The hold to open the embedded store with.
    pub fn hold(&self) -> &RetentionHold {
        &self.hold
    }
}

/// Archives every complete bucket of `store`, for ever (the caller aborts it at shutdown: a
/// file being written is then left under its temporary name and written again next time).
pub async fn run<S: Store>(store: Arc<S>, prepared: Prepared, metrics: Arc<Metrics>) {
    store.connected().await;
    let Prepared { config, lock, hold } = prepared;
    let mut exporter = match Exporter::open_locked(store.clone(), &config.dir, lock) {
        Ok(exporter) => exporter,
        Err(error) => {
            // The manifest cannot be used (another bucket width, damage): nothing to retry
            // until an operator acts, and serving goes on (retention stays held).
            metrics.archive.failures.inc();
            tracing::error!(%error, dir = %config.dir.display(), "automatic archiving is off");
            return;
        }
    };
    let mut backoff = config.retry_initial;
    let settings = *store.settings();
    let (width, ttl_ms) = (
        settings.bucket_width,
        i64::from(settings.ttl_seconds) * 1000,
    );
    let window_ms = i64::from(settings.compaction_window_seconds) * 1000;
    let grace_ms = i64::try_from(config.grace.as_millis()).unwrap_or(i64::MAX);
    if grace_ms + width.millis() >= ttl_ms {
        tracing::warn!(grace = ?config.grace, retention = ?settings.retention(),
            "--archive-grace plus a bucket is not shorter than the retention: on CQL buckets \
             expire before they are archived");
    }
    // Where to start: the archive's progress, or the oldest bucket the store may still hold.
    let mut next = match exporter.manifest().archived_until {
        Some(seconds) => TimeBucket::from_epoch_seconds(seconds),
        None => TimeBucket::containing(
            TimestampMs::from_millis(TimestampMs::now().millis() - ttl_ms - window_ms),
            width,
        ),
    };
    loop {
        let now = TimestampMs::now().millis();
        let due_at = next.end(width).millis().saturating_add(grace_ms);
        let start_ms = next.epoch_seconds() * 1000;
        metrics
            .archive
            .lag_seconds
            .set((now - due_at).max(0) as f64 / 1000.0);
        metrics
            .archive
            .expiry_margin_seconds
            .set((start_ms + ttl_ms - now) as f64 / 1000.0);
        if due_at > now {
            let wait = Duration::from_millis((due_at - now) as u64).min(config.poll);
            tokio::time::sleep(wait).await;
            continue;
        }
        match archive_bucket(&mut exporter, next).await {
            Ok(files) => {
                let after = TimeBucket::from_epoch_seconds(next.end(width).millis() / 1000);
                if let Err(error) = exporter.set_archived_until(after) {
                    fail(&metrics, &error, next, &mut backoff, &config).await;
                    continue;
                }
                hold.release_until(next.end(width));
                metrics.archive.exported.inc_by(files);
                metrics.archive.buckets.inc();
                metrics
                    .archive
                    .last_success
                    .set(TimestampMs::now().millis() as f64 / 1000.0);
                backoff = config.retry_initial;
                next = after;
            }
            Err(error) => fail(&metrics, &error, next, &mut backoff, &config).await,
        }
    }
}

/// Exports every service's share of `bucket`; returns the files written.
async fn archive_bucket<S: Store>(
    exporter: &mut Exporter<S>,
    bucket: TimeBucket,
) -> Result<u64, ArchiveError> {
    let mut files = 0;
    for service in exporter.services().await? {
        files += exporter.export_bucket(&service, bucket).await?.written;
    }
    Ok(files)
}

/// Counts and logs a failed attempt, then waits before the next (doubling the wait).
async fn fail(
    metrics: &Metrics,
    error: &ArchiveError,
    bucket: TimeBucket,
    backoff: &mut Duration,
    config: &ArchiveConfig,
) {
    metrics.archive.failures.inc();
    tracing::warn!(%error, bucket = bucket.epoch_seconds(), retryable = error.is_retryable(),
        retry_in = ?backoff, "archiving a bucket failed; it is retried");
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(config.retry_max);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archives_progress_holds_retention_and_no_progress_holds_everything() {
        let dir = tempfile::tempdir().unwrap();
        let config = ArchiveConfig::in_dir(dir.path().to_path_buf());
        let fresh = Prepared::new(config.clone()).unwrap();
        assert!(!fresh.hold().may_drop(TimestampMs::from_millis(0)));
        drop(fresh);
        let mut manifest = Manifest::new(3600);
        manifest.archived_until = Some(7200);
        manifest.save(dir.path()).unwrap();
        let prepared = Prepared::new(config.clone()).unwrap();
        assert!(prepared
            .hold()
            .may_drop(TimestampMs::from_millis(7_200_000)));
        assert!(!prepared
            .hold()
            .may_drop(TimestampMs::from_millis(7_200_001)));
        // A second process archiving there is refused while this one holds it.
        assert!(matches!(
            Prepared::new(config),
            Err(ArchiveError::ArchiveInUse { .. })
        ));
    }
}
