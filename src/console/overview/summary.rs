//! The overview's figures per service, gathered in two passes so that a page costs queries for
//! the rows it shows, not for every service:
//!
//! 1. every candidate's totals over the range (one `/v1/stats` query each, a whole-range step):
//!    what the default sorts (5xx share, rate, p99, name) and the totals line need. A candidate
//!    without requests is kept only if it has host readings in the range (one host-stats query
//!    for those few). Sorting by instances up needs every service's instances: then they are
//!    asked for here too.
//! 2. for the rows on the page: the rate per chart step (the trend line) and, if not known yet,
//!    the instances up (host stats).
//!
//! A service over a query limit keeps its line, with the limit's message instead of figures.

use futures::{stream, StreamExt, TryStreamExt};

use crate::console::data::{ConsoleData, Filters, Steps};
use crate::console::range::PageRange;
use crate::console::{status, steps};
use crate::model::TimestampMs;
use crate::query::QueryError;
use crate::store::Store;

/// Services asked about at once (each query fans out over partitions itself).
const CONCURRENT_SERVICES: usize = 8;

/// Instances up at the end of the range, of those heard in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instances {
    /// Up at the end of the range.
    pub up: usize,
    /// Sent host readings in the range.
    pub total: usize,
}

/// One service's line of the overview.
#[derive(Debug, Clone, Default)]
pub struct ServiceRow {
    /// The service.
    pub name: String,
    /// Requests in the range.
    pub requests: u64,
    /// Requests per second over the range.
    pub rate: f64,
    /// 5xx share; `None` without requests.
    pub errors: Option<f64>,
    /// p99 over the range; `None` without requests.
    pub p99_ms: Option<f64>,
    /// Rate per chart step (pass 2).
    pub trend: Option<Vec<f64>>,
    /// Instances (pass 2, or pass 1 when sorting by them).
    pub instances: Option<Instances>,
    /// Why figures are missing (a query limit), when they are.
    pub problem: Option<String>,
}

impl ServiceRow {
    /// Up instances as a share, for sorting; `None` without host readings.
    pub fn up_share(&self) -> Option<f64> {
        let i = self.instances?;
        (i.total > 0).then(|| i.up as f64 / i.total as f64)
    }

    /// Keeps a query-limit problem on the line; other errors end the page.
    fn absorb<T>(&mut self, outcome: Result<T, QueryError>) -> Result<Option<T>, QueryError> {
        match outcome {
            Ok(value) => Ok(Some(value)),
            Err(QueryError::Params(problems)) => {
                let text: Vec<&str> = problems.0.iter().map(|p| p.problem.as_str()).collect();
                self.problem = Some(text.join("; "));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Every service whose newest reading (API or host) is not older than `from`, by name.
async fn candidates<S: Store>(
    data: &ConsoleData<S>,
    range: &PageRange,
) -> Result<Vec<String>, QueryError> {
    let latest = data.latest(None).await?;
    let heard = latest
        .api
        .iter()
        .map(|r| (&r.service, &r.timestamp))
        .chain(latest.host.iter().map(|r| (&r.service, &r.timestamp)));
    let mut names: Vec<String> = heard
        .filter(|(_, at)| TimestampMs::parse(at).is_ok_and(|at| at >= range.from))
        .map(|(service, _)| service.clone())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

async fn instances<S: Store>(
    data: &ConsoleData<S>,
    row: &mut ServiceRow,
    range: &PageRange,
) -> Result<(), QueryError> {
    let host = data.host_stats(&row.name, range).await;
    let Some(host) = row.absorb(host)? else {
        return Ok(());
    };
    let steps: Vec<i64> = range.step_starts().collect();
    let now = TimestampMs::now();
    let up = host
        .instances
        .iter()
        .filter(|series| status::is_up(&status::beats(series, &steps, range.step_ms, now)))
        .count();
    row.instances = Some(Instances {
        up,
        total: host.instances.len(),
    });
    Ok(())
}

async fn totals<S: Store>(
    data: &ConsoleData<S>,
    name: String,
    range: &PageRange,
    with_instances: bool,
) -> Result<ServiceRow, QueryError> {
    let mut row = ServiceRow {
        name,
        ..ServiceRow::default()
    };
    let none = Filters::default();
    let whole = data
        .stats(&row.name, range, Steps::Whole, None, &none)
        .await;
    if let Some(whole) = row.absorb(whole)? {
        if let Some(total) = whole.groups.first().and_then(|g| g.points.first()) {
            row.requests = total.count;
            row.rate = total.count as f64 * 1000.0 / range.span_ms() as f64;
            row.errors = Some(total.error_rate);
            row.p99_ms = Some(total.p99_ms);
        }
    }
    if (with_instances || row.requests == 0) && row.problem.is_none() {
        instances(data, &mut row, range).await?;
    }
    Ok(row)
}

/// Pass 1: every service seen in the range with its totals (see the module note).
pub async fn gather<S: Store>(
    data: &ConsoleData<S>,
    range: &PageRange,
    with_instances: bool,
) -> Result<Vec<ServiceRow>, QueryError> {
    let rows: Vec<ServiceRow> = stream::iter(candidates(data, range).await?)
        .map(|name| totals(data, name, range, with_instances))
        .buffered(CONCURRENT_SERVICES)
        .try_collect()
        .await?;
    Ok(rows
        .into_iter()
        .filter(|r| {
            r.requests > 0 || r.problem.is_some() || r.instances.is_some_and(|i| i.total > 0)
        })
        .collect())
}

async fn complete_one<S: Store>(
    data: &ConsoleData<S>,
    mut row: ServiceRow,
    range: &PageRange,
) -> Result<ServiceRow, QueryError> {
    if row.problem.is_some() {
        return Ok(row);
    }
    let none = Filters::default();
    let chart = data
        .stats(&row.name, range, Steps::Chart, None, &none)
        .await;
    if let Some(chart) = row.absorb(chart)? {
        let steps: Vec<i64> = range.step_starts().collect();
        row.trend = Some(steps::rate(&chart, &steps));
    }
    if row.instances.is_none() && row.problem.is_none() {
        instances(data, &mut row, range).await?;
    }
    Ok(row)
}

/// Pass 2: the trend and instances of the rows shown, in their order.
pub async fn complete<S: Store>(
    data: &ConsoleData<S>,
    shown: Vec<ServiceRow>,
    range: &PageRange,
) -> Result<Vec<ServiceRow>, QueryError> {
    stream::iter(shown)
        .map(|row| complete_one(data, row, range))
        .buffered(CONCURRENT_SERVICES)
        .try_collect()
        .await
}
