//! Self-observability: the service's own Prometheus metrics, served at `/metrics`.
//!
//! One [`Metrics`] value is shared by the API, the acceptor and the flusher. Gauges that describe
//! the WAL are refreshed from the WAL's own counters when `/metrics` is scraped, so they cannot
//! drift from the truth.

pub mod access;
pub mod alerting;
pub mod archive;
pub mod rollup;

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label set with one label.
pub type OneLabel = [(&'static str, &'static str); 1];
/// `{job}` of the scrape metrics (job names come from the scrape config).
pub type JobLabel = [(&'static str, String); 1];
/// `{job, outcome}` of `timebucket_scrapes_total`.
pub type JobOutcome = [(&'static str, String); 2];

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    /// Readings acknowledged with 202 (durable in the WAL).
    pub readings_accepted: Counter,
    /// Ingest requests by answer status.
    pub ingest_requests: Family<OneLabel, Counter>,
    /// Readings written to the store (replays included).
    pub readings_flushed: Counter,
    /// Flush attempts that failed and will be retried.
    pub flush_retries: Counter,
    /// Store errors, by class (`unavailable`, `rejected`, `decode`, `settings`).
    pub store_errors: Family<OneLabel, Counter>,
    /// Items set aside in the quarantine, by what they hold (`batch`, `record`).
    pub quarantined: Family<OneLabel, Counter>,
    /// Readings of the batches set aside in the quarantine.
    pub quarantined_readings: Counter,
    /// Time to write one flush batch to the store, seconds.
    pub flush_seconds: Histogram,
    /// Time from receiving a body to its WAL sync (the 202 latency), seconds.
    pub ack_seconds: Histogram,
    /// Age of the oldest accepted reading not yet in the store, seconds.
    pub flush_lag_seconds: Gauge<f64, AtomicU64>,
    /// Bytes of WAL segments on disk.
    pub wal_bytes: Gauge,
    /// WAL segment files on disk.
    pub wal_segments: Gauge,
    /// WAL bytes accepted but not yet confirmed in the store.
    pub wal_backlog_bytes: Gauge,
    /// WAL reads and confirms the flusher retried after a transient error.
    pub wal_retries: Counter,
    /// OTLP export requests by transport (`http`, `grpc`) and answer.
    pub otlp_requests: Family<[(&'static str, &'static str); 2], Counter>,
    /// OTLP data points rejected (partial success), by metric name.
    pub otlp_rejected_points: Family<[(&'static str, String); 1], Counter>,
    /// Scrapes by job and outcome (`ok`, `timeout`, `unreachable`, `http_error`, `bad_body`,
    /// `skipped`, `refused`).
    pub scrapes: Family<JobOutcome, Counter>,
    /// Samples read from scraped expositions, by job.
    pub scrape_samples: Family<JobLabel, Counter>,
    /// Scraped samples that map to no reading, by job.
    pub scrape_unmapped_samples: Family<JobLabel, Counter>,
    /// Readings made durable from scrapes, by job.
    pub scrape_readings: Family<JobLabel, Counter>,
    /// Time one scrape took (fetch, parse, convert), seconds.
    pub scrape_duration_seconds: Histogram,
    /// How late a scrape started after its slot, seconds.
    pub scrape_lateness_seconds: Histogram,
    /// Rule evaluation, alerts, notifications and the evaluator lease.
    pub alerting: alerting::AlertingMetrics,
    /// Requests refused by access control, and batches over a token's limits.
    pub access: access::AccessMetrics,
    /// The bucket archive (`serve --archive-dir`).
    pub archive: archive::ArchiveMetrics,
    /// The rollup compactor.
    pub rollup: rollup::RollupMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `timebucket_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("timebucket");
        let metrics = Self {
            readings_accepted: Counter::default(),
            ingest_requests: Family::default(),
            readings_flushed: Counter::default(),
            flush_retries: Counter::default(),
            store_errors: Family::default(),
            quarantined: Family::default(),
            quarantined_readings: Counter::default(),
            flush_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            ack_seconds: Histogram::new(exponential_buckets(0.0002, 2.0, 16)),
            flush_lag_seconds: Gauge::default(),
            wal_bytes: Gauge::default(),
            wal_segments: Gauge::default(),
            wal_backlog_bytes: Gauge::default(),
            wal_retries: Counter::default(),
            otlp_requests: Family::default(),
            otlp_rejected_points: Family::default(),
            scrapes: Family::default(),
            scrape_samples: Family::default(),
            scrape_unmapped_samples: Family::default(),
            scrape_readings: Family::default(),
            scrape_duration_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            scrape_lateness_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            alerting: alerting::AlertingMetrics::default(),
            access: access::AccessMetrics::default(),
            archive: archive::ArchiveMetrics::default(),
            rollup: rollup::RollupMetrics::default(),
            registry: Registry::default(),
        };
        registry.register(
            "readings_accepted",
            "Readings acknowledged (durable in the WAL)",
            metrics.readings_accepted.clone(),
        );
        registry.register(
            "ingest_requests",
            "Ingest requests by HTTP status",
            metrics.ingest_requests.clone(),
        );
        registry.register(
            "readings_flushed",
            "Readings written to the store",
            metrics.readings_flushed.clone(),
        );
        registry.register(
            "flush_retries",
            "Flush attempts that failed and are retried",
            metrics.flush_retries.clone(),
        );
        registry.register(
            "store_errors",
            "Store errors by class",
            metrics.store_errors.clone(),
        );
        registry.register(
            "quarantined",
            "Items the flusher set aside in the quarantine, by what they hold",
            metrics.quarantined.clone(),
        );
        registry.register(
            "quarantined_readings",
            "Readings of the batches set aside in the quarantine",
            metrics.quarantined_readings.clone(),
        );
        registry.register(
            "flush_duration_seconds",
            "Time to write one flush batch",
            metrics.flush_seconds.clone(),
        );
        registry.register(
            "ack_duration_seconds",
            "Time from body received to WAL sync",
            metrics.ack_seconds.clone(),
        );
        registry.register(
            "flush_lag_seconds",
            "Age of the oldest accepted reading not yet stored",
            metrics.flush_lag_seconds.clone(),
        );
        registry.register(
            "wal_bytes",
            "Bytes of WAL segments on disk",
            metrics.wal_bytes.clone(),
        );
        registry.register(
            "wal_segments",
            "WAL segment files on disk",
            metrics.wal_segments.clone(),
        );
        registry.register(
            "wal_backlog_bytes",
            "WAL bytes not yet confirmed in the store",
            metrics.wal_backlog_bytes.clone(),
        );
        registry.register(
            "wal_retries",
            "WAL reads and confirms retried by the flusher after a transient error",
            metrics.wal_retries.clone(),
        );
        registry.register(
            "otlp_requests",
            "OTLP export requests by transport and answer",
            metrics.otlp_requests.clone(),
        );
        registry.register(
            "otlp_rejected_points",
            "OTLP data points rejected (partial success) by metric name",
            metrics.otlp_rejected_points.clone(),
        );
        metrics.register_scrape(&mut registry);
        metrics.alerting.register(&mut registry);
        metrics.access.register(&mut registry);
        metrics.archive.register(&mut registry);
        metrics.rollup.register(&mut registry);
        Self {
            registry,
            ..metrics
        }
    }

    fn register_scrape(&self, registry: &mut Registry) {
        registry.register(
            "scrapes",
            "Scrapes by job and outcome",
            self.scrapes.clone(),
        );
        registry.register(
            "scrape_samples",
            "Samples read from scraped expositions",
            self.scrape_samples.clone(),
        );
        registry.register(
            "scrape_unmapped_samples",
            "Scraped samples that map to no reading",
            self.scrape_unmapped_samples.clone(),
        );
        registry.register(
            "scrape_readings",
            "Readings made durable from scrapes",
            self.scrape_readings.clone(),
        );
        registry.register(
            "scrape_duration_seconds",
            "Time one scrape took",
            self.scrape_duration_seconds.clone(),
        );
        registry.register(
            "scrape_lateness_seconds",
            "How late a scrape started after its slot",
            self.scrape_lateness_seconds.clone(),
        );
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        encode(&mut out, &self.registry).expect("encoding into a String");
        out
    }
}
