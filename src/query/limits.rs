//! The limits that bound one query's time and memory, and their defaults (the `serve` flags
//! that set them are in [`crate::cli`]).
//!
//! Every query is bounded three ways: its time range (`max_range_ms`), the rows it may read
//! from the store (`max_scan_rows`), and the size of its answer (`max_limit` readings, series
//! or latest entries per page, `max_points` stats points). A request over a limit is a 400 naming the parameter, never a
//! slow or memory-hungry answer.

use std::time::Duration;

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
    /// Longest run of one query endpoint request; past it the answer is a 503 naming
    /// `--query-request-timeout`, so a stalled store never holds a client longer.
    pub request_timeout: Duration,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_range_ms: Self::DEFAULT_MAX_RANGE.as_millis() as i64,
            max_limit: Self::DEFAULT_MAX_LIMIT,
            max_points: Self::DEFAULT_MAX_POINTS,
            max_scan_rows: Self::DEFAULT_MAX_SCAN_ROWS,
            concurrency: Self::DEFAULT_CONCURRENCY,
            page_rows: PAGE_ROWS,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl QueryLimits {
    /// Default longest range: seven days, the default retention.
    pub const DEFAULT_MAX_RANGE: Duration = Duration::from_secs(7 * 24 * 3600);
    /// Default largest `limit` of one readings page.
    pub const DEFAULT_MAX_LIMIT: u32 = 10_000;
    /// Default most points of one stats answer.
    pub const DEFAULT_MAX_POINTS: usize = 10_000;
    /// Default most rows one query reads from the store.
    pub const DEFAULT_MAX_SCAN_ROWS: u64 = 5_000_000;
    /// Default partition reads in flight for one query.
    pub const DEFAULT_CONCURRENCY: usize = 32;
    /// Default longest run of one query request: within common HTTP client and proxy
    /// timeouts (30 s or more), shorter than the CQL driver's own request timeout.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

    /// The default page size of `/v1/readings`, within `max_limit`.
    pub fn default_limit(&self) -> u32 {
        DEFAULT_LIMIT.min(self.max_limit)
    }

    /// The default page size of `/v1/series` and `/v1/latest`, within `max_limit`.
    pub fn default_lookup_limit(&self) -> u32 {
        DEFAULT_LOOKUP_LIMIT.min(self.max_limit)
    }
}
