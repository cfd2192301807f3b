//! The PromQL engine's limits and lookback, and their defaults (the `serve` flags that set them
//! are in [`crate::cli`]).
//!
//! Every query is bounded four ways: the points of a range query per series (`max_steps`, like
//! Prometheus' 11,000), the series one selector or one intermediate result may hold
//! (`max_series`), the samples it loads plus the points it computes (`max_samples`), and its
//! run time (`timeout`). The reads below it are also bounded by the query layer's
//! `--query-max-scan-rows`. Each refusal is an error naming its flag, never a partial answer.

use std::time::Duration;

/// The validated engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// How far back an instant selector looks for a sample, milliseconds.
    pub lookback_ms: i64,
    /// Most points per series of a range query (steps).
    pub max_steps: usize,
    /// Most series one selector or one intermediate vector may hold.
    pub max_series: usize,
    /// Most samples loaded plus points computed by one query.
    pub max_samples: usize,
    /// Longest run of one query.
    pub timeout: Duration,
}

impl EngineConfig {
    /// Default lookback: Prometheus' 5 minutes.
    pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(5 * 60);
    /// Default most steps per series: Prometheus' 11,000.
    pub const DEFAULT_MAX_STEPS: usize = 11_000;
    /// Default most series per selector or intermediate result.
    pub const DEFAULT_MAX_SERIES: usize = 10_000;
    /// Default most samples per query (about 16 bytes each: some 320 MB).
    pub const DEFAULT_MAX_SAMPLES: usize = 20_000_000;
    /// Default longest run of one query.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            lookback_ms: Self::DEFAULT_LOOKBACK.as_millis() as i64,
            max_steps: Self::DEFAULT_MAX_STEPS,
            max_series: Self::DEFAULT_MAX_SERIES,
            max_samples: Self::DEFAULT_MAX_SAMPLES,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}
