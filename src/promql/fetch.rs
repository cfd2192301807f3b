//! Runs the reads a query needs, once each for the whole range, and keeps the readings in a
//! compact form: per service, per API series `(instance, method, path, code)` the events
//! `(time, count, seconds)`, per host instance its samples — each sorted by time.
//!
//! Invariant: every reading kept is charged against the query's sample budget, so memory is
//! bounded by `--query-max-samples` whatever the range.

use std::collections::{BTreeMap, HashMap};

use futures::stream::{self, StreamExt, TryStreamExt};
use futures::FutureExt;

use super::error::PromqlError;
use super::families::Kind;
use super::plan::{ReadKey, ReadSpec};
use super::source::Source;
use crate::model::{
    ApiPath, HostGauges, HttpMethod, InstanceName, ServiceName, StatusCode, TimestampMs,
};
use crate::query::params::TimeRange;

/// Reads of one query running at once (each fans out over its partitions by itself).
const READS_IN_FLIGHT: usize = 4;

/// The identity of an API series within a service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKey {
    /// The instance.
    pub instance: InstanceName,
    /// The method.
    pub method: HttpMethod,
    /// The path.
    pub path: ApiPath,
    /// The status code.
    pub code: StatusCode,
}

/// One API reading, as the families need it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiEvent {
    /// Time, ms.
    pub t: i64,
    /// Requests it stands for.
    pub count: u32,
    /// Their (mean) duration, seconds.
    pub seconds: f64,
}

/// One host reading.
#[derive(Debug, Clone, PartialEq)]
pub struct HostEvent {
    /// Time, ms.
    pub t: i64,
    /// Its gauges.
    pub gauges: HostGauges,
}

/// The readings of one service.
#[derive(Debug, Default)]
pub struct ServiceData {
    /// API events per series, sorted by time.
    pub api: HashMap<ApiKey, Vec<ApiEvent>>,
    /// Host events per instance, sorted by time.
    pub host: HashMap<InstanceName, Vec<HostEvent>>,
}

/// Every reading a query needs.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Per service.
    pub services: BTreeMap<ServiceName, ServiceData>,
}

/// Counts readings against the sample budget.
struct Budget {
    max: usize,
    used: usize,
}

impl Budget {
    fn charge(&mut self, n: usize) -> Result<(), PromqlError> {
        self.used += n;
        if self.used > self.max {
            return Err(too_many_samples(self.max));
        }
        Ok(())
    }
}

/// The refusal past `--query-max-samples`.
pub fn too_many_samples(max: usize) -> PromqlError {
    PromqlError::Limit(format!(
        "query processing would load too many samples into memory (more than {max}, \
         --query-max-samples); narrow the time range, use a larger step or add label matchers"
    ))
}

/// What one read brought back.
enum Part {
    Api(HashMap<ApiKey, Vec<ApiEvent>>),
    Host(HashMap<InstanceName, Vec<HostEvent>>),
}

async fn read_one<S: Source>(
    source: &S,
    key: &ReadKey,
    spec: &ReadSpec,
    max_samples: usize,
) -> Result<(Part, usize), PromqlError> {
    let range = TimeRange {
        from: TimestampMs::from_millis(spec.from),
        to: TimestampMs::from_millis(spec.to),
    };
    let mut rows = 0usize;
    match key.kind {
        Kind::Api => {
            let mut pages = source.api_readings(&key.service, range, &spec.api);
            let mut series: HashMap<ApiKey, Vec<ApiEvent>> = HashMap::new();
            while let Some(page) = pages.try_next().await? {
                rows += page.len();
                if rows > max_samples {
                    return Err(too_many_samples(max_samples));
                }
                for r in page {
                    let key = ApiKey {
                        instance: r.instance,
                        method: r.method,
                        path: r.path,
                        code: r.code,
                    };
                    series.entry(key).or_default().push(ApiEvent {
                        t: r.timestamp.millis(),
                        count: r.count,
                        seconds: r.duration_ms / 1000.0,
                    });
                }
            }
            for events in series.values_mut() {
                events.sort_by_key(|e| e.t);
            }
            Ok((Part::Api(series), rows))
        }
        Kind::Host => {
            let mut pages = source.host_readings(&key.service, range, spec.instance.as_ref());
            let mut series: HashMap<InstanceName, Vec<HostEvent>> = HashMap::new();
            while let Some(page) = pages.try_next().await? {
                rows += page.len();
                if rows > max_samples {
                    return Err(too_many_samples(max_samples));
                }
                for r in page {
                    series.entry(r.instance).or_default().push(HostEvent {
                        t: r.timestamp.millis(),
                        gauges: r.gauges,
                    });
                }
            }
            for events in series.values_mut() {
                // Stable: readings of one instant keep the store's order (by reading id).
                events.sort_by_key(|e| e.t);
            }
            Ok((Part::Host(series), rows))
        }
    }
}

/// Runs every read, a few at a time; fails past `max_samples` readings.
pub async fn fetch<S: Source>(
    source: &S,
    reads: BTreeMap<ReadKey, ReadSpec>,
    max_samples: usize,
) -> Result<(Fetched, usize), PromqlError> {
    let mut budget = Budget {
        max: max_samples,
        used: 0,
    };
    let mut fetched = Fetched::default();
    // Boxed futures over owned reads keep the stream `Send` for any lifetime of `source`.
    let mut parts = stream::iter(reads)
        .map(|(key, spec)| {
            async move {
                let part = read_one(source, &key, &spec, max_samples).await?;
                Ok::<_, PromqlError>((key, part))
            }
            .boxed()
        })
        .buffer_unordered(READS_IN_FLIGHT);
    while let Some((key, (part, rows))) = parts.try_next().await? {
        budget.charge(rows)?;
        let data = fetched.services.entry(key.service.clone()).or_default();
        match part {
            Part::Api(series) => data.api = series,
            Part::Host(series) => data.host = series,
        }
    }
    Ok((fetched, budget.used))
}
