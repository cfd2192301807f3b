//! The PromQL engine's limits and lookback, and the `serve` flags that set them.
//!
//! Every query is bounded four ways: the points of a range query per series (`max_steps`, like
//! Prometheus' 11,000), the series one selector or one intermediate result may hold
//! (`max_series`), the samples it loads plus the points it computes (`max_samples`), and its
//! run time (`timeout`). The reads below it are also bounded by the query layer's
//! `--query-max-scan-rows`. Each refusal is an error naming its flag, never a partial answer.

use std::time::Duration;

use clap::Args;

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

impl Default for EngineConfig {
    /// 5 minutes of lookback, 11,000 steps, 10,000 series, 20 million samples, 2 minutes.
    fn default() -> Self {
        Self {
            lookback_ms: 5 * 60 * 1000,
            max_steps: 11_000,
            max_series: 10_000,
            max_samples: 20_000_000,
            timeout: Duration::from_secs(120),
        }
    }
}

/// `timebucket serve` flags of the Prometheus query API.
#[derive(Debug, Clone, Args)]
pub struct PromqlArgs {
    /// How far back a PromQL instant selector looks for the latest sample.
    #[arg(long, env = "TIMEBUCKET_QUERY_LOOKBACK", default_value = "5m", value_parser = humantime::parse_duration)]
    pub query_lookback: Duration,
    /// Most points per series in one PromQL range query ((end - start) / step + 1).
    #[arg(long, env = "TIMEBUCKET_QUERY_MAX_STEPS", default_value_t = 11_000)]
    pub query_max_steps: usize,
    /// Most series one PromQL selector or intermediate result may hold.
    #[arg(long, env = "TIMEBUCKET_QUERY_MAX_SERIES", default_value_t = 10_000)]
    pub query_max_series: usize,
    /// Most samples one PromQL query may load and compute (about 16 bytes each).
    #[arg(
        long,
        env = "TIMEBUCKET_QUERY_MAX_SAMPLES",
        default_value_t = 20_000_000
    )]
    pub query_max_samples: usize,
    /// Longest run of one PromQL query (a request's `timeout` may only shorten it).
    #[arg(long, env = "TIMEBUCKET_QUERY_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub query_timeout: Duration,
}

impl PromqlArgs {
    /// Validates the flags: every limit at least 1, the lookback and timeout at least 1 ms.
    pub fn config(&self) -> Result<EngineConfig, String> {
        let lookback_ms = i64::try_from(self.query_lookback.as_millis())
            .map_err(|_| "--query-lookback is too long".to_owned())?;
        if lookback_ms < 1 {
            return Err("--query-lookback must be at least 1ms".into());
        }
        if self.query_timeout.as_millis() < 1 {
            return Err("--query-timeout must be at least 1ms".into());
        }
        for (name, value) in [
            ("query-max-steps", self.query_max_steps),
            ("query-max-series", self.query_max_series),
            ("query-max-samples", self.query_max_samples),
        ] {
            if value == 0 {
                return Err(format!("--{name} must be at least 1"));
            }
        }
        Ok(EngineConfig {
            lookback_ms,
            max_steps: self.query_max_steps,
            max_series: self.query_max_series,
            max_samples: self.query_max_samples,
            timeout: self.query_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> PromqlArgs {
        PromqlArgs {
            query_lookback: Duration::from_secs(300),
            query_max_steps: 11_000,
            query_max_series: 10_000,
            query_max_samples: 20_000_000,
            query_timeout: Duration::from_secs(120),
        }
    }

    #[test]
    fn the_flag_defaults_are_the_default_config_and_zeros_are_refused() {
        assert_eq!(args().config().unwrap(), EngineConfig::default());
        let zero = PromqlArgs {
            query_max_series: 0,
            ..args()
        };
        assert!(zero.config().unwrap_err().contains("query-max-series"));
        let no_lookback = PromqlArgs {
            query_lookback: Duration::ZERO,
            ..args()
        };
        assert!(no_lookback.config().unwrap_err().contains("lookback"));
    }
}
