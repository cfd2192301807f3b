//! Column-projected reads: what the API stats scan needs of a partition's readings — per series
//! `(instance, method, path)` the rows' time, code, duration and count — without building a
//! whole, validated [`ApiReading`] per row.
//!
//! [`Store::read_api_columns`] answers an [`ApiColumnsRequest`]. Its default implementation,
//! [`from_pages`], builds the answer from [`Store::read_page`] (the CQL store uses it: its rows
//! come whole anyway); the embedded store decodes only the columns wanted from its blocks and
//! parses each series' names once per block.
//!
//! Contract of an answer: every API reading of the partition with its time in `[from, to]`
//! (both inclusive), each exactly once, grouped by series; a series may appear in more than one
//! entry (one per block that holds it), and rows are in no particular order. A store may stop
//! early, but only once the answer holds more than `max_rows` rows: the caller refuses such a
//! scan, so the rows left out never matter, and no answer holds much more than the budget.

use crate::model::{ApiPath, ApiReading, HttpMethod, InstanceName, StatusCode, TimestampMs};
use crate::store::{Order, PageRequest, PartitionKey, ReadingKey, Store, StoreError};

/// One partition's API readings within a time range, projected (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiColumnsRequest {
    /// The partition `(service, bucket, seq)`.
    pub partition: PartitionKey,
    /// The oldest time wanted, inclusive.
    pub from: TimestampMs,
    /// The newest time wanted, inclusive.
    pub to: TimestampMs,
    /// Rows per page, for a store that reads pages (at least 1).
    pub page_rows: u32,
    /// The scan's row budget left: a store may stop once the answer holds more rows.
    pub max_rows: u64,
}

/// The rows of one series: four columns of equal length.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSeriesColumns {
    /// The series' instance.
    pub instance: InstanceName,
    /// The series' method.
    pub method: HttpMethod,
    /// The series' path.
    pub path: ApiPath,
    /// Each row's time.
    pub timestamps: Vec<TimestampMs>,
    /// Each row's status code.
    pub codes: Vec<StatusCode>,
    /// Each row's duration (the mean, for a summary), ms.
    pub durations_ms: Vec<f64>,
    /// How many requests each row stands for.
    pub counts: Vec<u32>,
}

impl ApiSeriesColumns {
    /// A series without rows yet.
    pub fn new(instance: InstanceName, method: HttpMethod, path: ApiPath) -> Self {
        Self {
            instance,
            method,
            path,
            timestamps: Vec::new(),
            codes: Vec::new(),
            durations_ms: Vec::new(),
            counts: Vec::new(),
        }
    }

    /// Makes room for `additional` more rows in each column, so that a reader that knows a
    /// series' row count allocates its columns once rather than growing them row by row.
    pub fn reserve(&mut self, additional: usize) {
        self.timestamps.reserve(additional);
        self.codes.reserve(additional);
        self.durations_ms.reserve(additional);
        self.counts.reserve(additional);
    }

    /// Adds one row.
    pub fn push(&mut self, timestamp: TimestampMs, code: StatusCode, duration_ms: f64, count: u32) {
        self.timestamps.push(timestamp);
        self.codes.push(code);
        self.durations_ms.push(duration_ms);
        self.counts.push(count);
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }
}

/// The answer to an [`ApiColumnsRequest`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiColumns {
    /// The series, each with its rows.
    pub series: Vec<ApiSeriesColumns>,
}

impl ApiColumns {
    /// How many rows in all.
    pub fn rows(&self) -> u64 {
        self.series.iter().map(|s| s.len() as u64).sum()
    }
}

/// The answer built from whole readings, page by page: [`Store::read_api_columns`]' default.
pub async fn from_pages<S: Store + ?Sized>(
    store: &S,
    request: &ApiColumnsRequest,
) -> Result<ApiColumns, StoreError> {
    use std::collections::hash_map::Entry;
    use std::collections::HashMap;
    let mut page_request = PageRequest {
        partition: request.partition.clone(),
        after: ReadingKey::before_all_at(request.from),
        until: request.to,
        order: Order::Asc,
        limit: request.page_rows.max(1),
    };
    let mut of_series: HashMap<(InstanceName, HttpMethod, ApiPath), usize> = HashMap::new();
    let mut answer = ApiColumns::default();
    let mut rows = 0u64;
    loop {
        let page = store.read_page::<ApiReading>(&page_request).await?;
        let full = page.len() >= page_request.limit as usize;
        let last = page.last().map(ReadingKey::of);
        rows += page.len() as u64;
        for r in page {
            // The names move into the map; they are cloned once per series, not per row.
            let at = match of_series.entry((r.instance, r.method, r.path)) {
                Entry::Occupied(known) => *known.get(),
                Entry::Vacant(new) => {
                    let (instance, method, path) = new.key().clone();
                    answer
                        .series
                        .push(ApiSeriesColumns::new(instance, method, path));
                    *new.insert(answer.series.len() - 1)
                }
            };
            answer.series[at].push(r.timestamp, r.code, r.duration_ms, r.count);
        }
        match last {
            Some(last) if full && rows <= request.max_rows => {
                page_request = page_request.next_after(last);
            }
            _ => return Ok(answer),
        }
    }
}
