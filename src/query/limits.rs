//! The limits that bound one query's time and memory, and the `serve` flags that set them.
//!
//! Every query is bounded three ways: its time range (`max_range_ms`), the rows it may read
//! from the store (`max_scan_rows`), and the size of its answer (`max_limit` readings, series
//! or latest entries per page, `max_points` stats points). A request over a limit is a 400 naming the parameter, never a
//! slow or memory-hungry answer.

use std::time::Duration;

use clap::Args;

/// Readings per `/v1/readings` page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// Entries per `/v1/series` or `/v1/latest` page when `limit` is not given: a dashboard's worth
/// in one answer (about 200 KB of JSON), a cursor beyond.
pub const DEFAULT_LOOKUP_LIMIT: u32 = 1000;
/// Rows per partition read request: large enough that a partition of an hour of a busy service
/// takes a handful of round trips, small enough that a bucket window of pages stays a few MB.
pub const PAGE_ROWS: u32 = 1000;

/// The validated query limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Longest `[from, to]` span, milliseconds.
    pub max_range_ms: i64,
    /// Largest `limit` of one `/v1/readings`, `/v1/series` or `/v1/latest` page.
    pub max_limit: u32,
    /// Most points (groups × steps) in one stats answer.
    pub max_points: usize,
    /// Most rows one query (a readings page, a stats answer) may read from the store.
    pub max_scan_rows: u64,
    /// Partition reads in flight at once for one query.
    pub concurrency: usize,
    /// Rows per partition read request.
    pub page_rows: u32,
}

impl Default for QueryLimits {
    /// Seven days (the default retention), 10,000 readings per page, 10,000 points, 5 million
    /// rows read, 32 partition reads in flight.
    fn default() -> Self {
        Self {
            max_range_ms: 7 * 24 * 3600 * 1000,
            max_limit: 10_000,
            max_points: 10_000,
            max_scan_rows: 5_000_000,
            concurrency: 32,
            page_rows: PAGE_ROWS,
        }
    }
}

impl QueryLimits {
    /// The default page size of `/v1/readings`, within `max_limit`.
    pub fn default_limit(&self) -> u32 {
        DEFAULT_LIMIT.min(self.max_limit)
    }

    /// The default page size of `/v1/series` and `/v1/latest`, within `max_limit`.
    pub fn default_lookup_limit(&self) -> u32 {
        DEFAULT_LOOKUP_LIMIT.min(self.max_limit)
    }
}

/// `timebucket serve` flags for queries.
#[derive(Debug, Clone, Args)]
pub struct QueryLimitArgs {
    /// Longest time range one query may cover.
    #[arg(long, env = "TIMEBUCKET_QUERY_MAX_RANGE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub query_max_range: Duration,
    /// Largest `limit` (entries per page) of GET /v1/readings, /v1/series and /v1/latest.
    #[arg(long, env = "TIMEBUCKET_QUERY_MAX_LIMIT", default_value_t = 10_000)]
    pub query_max_limit: u32,
    /// Most points (groups × steps) in one stats answer.
    #[arg(long, env = "TIMEBUCKET_QUERY_MAX_POINTS", default_value_t = 10_000)]
    pub query_max_points: usize,
    /// Most rows one query may read from the store.
    #[arg(
        long,
        env = "TIMEBUCKET_QUERY_MAX_SCAN_ROWS",
        default_value_t = 5_000_000
    )]
    pub query_max_scan_rows: u64,
    /// Partition reads in flight at once for one query.
    #[arg(long, env = "TIMEBUCKET_QUERY_CONCURRENCY", default_value_t = 32)]
    pub query_concurrency: usize,
}

impl QueryLimitArgs {
    /// Validates the flags: every limit at least 1, the range at least a second.
    pub fn limits(&self) -> Result<QueryLimits, String> {
        let max_range_ms = i64::try_from(self.query_max_range.as_millis())
            .map_err(|_| "--query-max-range is too long".to_owned())?;
        if max_range_ms < 1000 {
            return Err("--query-max-range must be at least 1s".into());
        }
        let positive = |name: &str, value: u64| {
            if value == 0 {
                Err(format!("--{name} must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive("query-max-limit", u64::from(self.query_max_limit))?;
        positive("query-max-points", self.query_max_points as u64)?;
        positive("query-max-scan-rows", self.query_max_scan_rows)?;
        positive("query-concurrency", self.query_concurrency as u64)?;
        Ok(QueryLimits {
            max_range_ms,
            max_limit: self.query_max_limit,
            max_points: self.query_max_points,
            max_scan_rows: self.query_max_scan_rows,
            concurrency: self.query_concurrency,
            page_rows: PAGE_ROWS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> QueryLimitArgs {
        QueryLimitArgs {
            query_max_range: Duration::from_secs(7 * 24 * 3600),
            query_max_limit: 10_000,
            query_max_points: 10_000,
            query_max_scan_rows: 5_000_000,
            query_concurrency: 32,
        }
    }

    #[test]
    fn the_flag_defaults_are_the_default_limits() {
        assert_eq!(args().limits().unwrap(), QueryLimits::default());
    }

    #[test]
    fn zero_limits_are_refused() {
        let zero = QueryLimitArgs {
            query_concurrency: 0,
            ..args()
        };
        assert!(zero.limits().unwrap_err().contains("query-concurrency"));
        let short = QueryLimitArgs {
            query_max_range: Duration::from_millis(10),
            ..args()
        };
        assert!(short.limits().is_err());
    }
}
