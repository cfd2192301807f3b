//! The bucket archive's metrics (`serve --archive-dir`): what was exported, what failed, and how
//! far behind it is — on CQL, where retention cannot wait for the archive, these are what tells
//! an operator that buckets risk expiring unarchived.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The archive's metrics.
#[derive(Default)]
pub struct ArchiveMetrics {
    /// Bucket files written (one per kind and service of a bucket with readings).
    pub exported: Counter,
    /// Buckets exported whole (every service and kind), so the archive moved past them.
    pub buckets: Counter,
    /// Attempts to export a bucket that failed (each is retried).
    pub failures: Counter,
    /// When a bucket was last exported, seconds since the epoch.
    pub last_success: Gauge<f64, AtomicU64>,
    /// How long the oldest complete bucket not yet exported has been due, seconds (0 when
    /// nothing is due).
    pub lag_seconds: Gauge<f64, AtomicU64>,
    /// Time left before the oldest bucket not yet exported starts to pass the retention,
    /// seconds (negative once it has): on CQL its readings then expire unarchived.
    pub expiry_margin_seconds: Gauge<f64, AtomicU64>,
}

impl ArchiveMetrics {
    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "archive_files",
            "Archive files written (one per kind, service and bucket)",
            self.exported.clone(),
        );
        registry.register(
            "archive_buckets",
            "Buckets archived whole",
            self.buckets.clone(),
        );
        registry.register(
            "archive_failures",
            "Failed attempts to archive a bucket (each is retried)",
            self.failures.clone(),
        );
        registry.register(
            "archive_last_success_timestamp_seconds",
            "When a bucket was last archived",
            self.last_success.clone(),
        );
        registry.register(
            "archive_lag_seconds",
            "How long the oldest complete bucket not yet archived has been due",
            self.lag_seconds.clone(),
        );
        registry.register(
            "archive_expiry_margin_seconds",
            "Time before the oldest bucket not yet archived passes the retention",
            self.expiry_margin_seconds.clone(),
        );
    }
}
