//! What `GET /v1/targets` answers: every target with its last scrape, in the shape of
//! Prometheus' `/api/v1/targets` (active and dropped targets) in our JSON style (snake_case,
//! RFC 3339 times). The same types decode the answer in `timebucket query targets`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The answer of `GET /v1/targets`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetsAnswer {
    /// This process's share: `{"index": 0, "count": 1}`.
    pub replica: ReplicaInfo,
    /// The targets this replica scrapes, by job then URL.
    pub active_targets: Vec<TargetInfo>,
    /// Targets of the config that another replica scrapes.
    pub dropped_targets: Vec<DroppedTarget>,
}

/// `--replica-index` / `--replica-count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    /// This replica.
    pub index: u32,
    /// All replicas.
    pub count: u32,
}

impl Default for ReplicaInfo {
    /// A lone replica (what a service without `--scrape-config` reports).
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

/// `up` after a successful scrape, `down` after a failed one, `unknown` before the first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not scraped yet.
    #[default]
    Unknown,
    /// The last scrape succeeded.
    Up,
    /// The last scrape failed (its reading says `available: false`).
    Down,
}

/// One target this replica scrapes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// `job_name`.
    pub job: String,
    /// What is fetched.
    pub url: String,
    /// Service of its readings.
    pub service: String,
    /// Instance of its readings.
    pub instance: String,
    /// Labels of its target group.
    pub labels: BTreeMap<String, String>,
    /// Outcome of the last scrape.
    pub health: Health,
    /// When the last scrape started (RFC 3339), `null` before the first.
    pub last_scrape: Option<String>,
    /// How long the last scrape took, seconds.
    pub last_scrape_duration_seconds: Option<f64>,
    /// Why the last scrape failed, or was skipped; `null` when it succeeded.
    pub last_error: Option<String>,
    /// Samples in the last exposition.
    pub last_samples_read: u64,
    /// Readings the last scrape produced (API deltas and the host reading).
    pub last_readings_produced: u64,
    /// Samples of the last exposition that map to nothing.
    pub last_unmapped_samples: u64,
    /// Samples read since this target was started.
    pub samples_read_total: u64,
    /// Readings made durable since this target was started.
    pub readings_produced_total: u64,
    /// Scrapes attempted since this target was started.
    pub scrapes_total: u64,
    /// Of those, the failed ones.
    pub failures_total: u64,
    /// Scrapes skipped because ingest was refusing (WAL backlog over its limit).
    pub skipped_total: u64,
    /// `scrape_interval`, seconds.
    pub scrape_interval_seconds: f64,
    /// `scrape_timeout`, seconds.
    pub scrape_timeout_seconds: f64,
}

/// A target another replica scrapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedTarget {
    /// `job_name`.
    pub job: String,
    /// What is fetched.
    pub url: String,
    /// The replica that scrapes it.
    pub replica: u32,
}
