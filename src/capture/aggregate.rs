//! From recorded requests to API readings: one per request ([`Mode::Raw`](super::Mode::Raw)), or
//! per `(method, path, code)` per interval ([`Aggregator`]).
//!
//! An interval's summary of one series keeps count, total duration and the slowest request. The
//! reading format has no "max" field, so a series of `n > 1` requests is sent as two readings with
//! the same timestamp: the slowest request alone (`count 1`), and the other `n - 1` with their mean
//! duration. Count, total (so mean) and max are then all exact on the collector's side, which takes
//! a summary's `duration_ms` as the mean of its `count` requests.
//!
//! Invariants: every reading built here is one the collector accepts (the model's validated
//! types, a duration of at most [`MAX_DURATION_MS`], `1 <= count <= i32::MAX`); a request that
//! cannot be one is refused and the caller counts it as unrecordable. The number of series per
//! interval is capped, so a flood of distinct paths costs bounded memory. Readings are sent in
//! the ingest wire format (`client::wire`); their ids are the collector's to fix.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::Method;

use super::normalise::{self, PathNormaliser};
use super::recorder::RequestRecord;
use crate::model::reading::MAX_DURATION_MS;
use crate::model::{
    ApiPath, ApiReading, HttpMethod, InstanceName, ReadingId, ServiceName, StatusCode, TimestampMs,
};

/// Largest `count` of one reading (the collector stores it as a CQL `int`).
const MAX_COUNT: u32 = i32::MAX as u32;

/// The methods a reading may carry, with their static names.
const METHODS: [(Method, &str); 9] = [
    (Method::GET, "GET"),
    (Method::HEAD, "HEAD"),
    (Method::POST, "POST"),
    (Method::PUT, "PUT"),
    (Method::DELETE, "DELETE"),
    (Method::CONNECT, "CONNECT"),
    (Method::OPTIONS, "OPTIONS"),
    (Method::TRACE, "TRACE"),
    (Method::PATCH, "PATCH"),
];

/// One `POST /v1/metrics` body's worth of API readings.
#[derive(Debug)]
pub(crate) struct ApiBatch {
    /// The readings.
    pub readings: Vec<ApiReading>,
    /// The requests the readings stand for (the sum of their counts).
    pub requests: u64,
}

impl ApiBatch {
    /// Cuts `readings` into batches of at most `max_readings`.
    pub fn split(readings: Vec<ApiReading>, max_readings: usize) -> Vec<ApiBatch> {
        readings
            .chunks(max_readings.max(1))
            .map(|chunk| ApiBatch {
                requests: chunk.iter().map(|r| u64::from(r.count)).sum(),
                readings: chunk.to_vec(),
            })
            .collect()
    }
}

/// Maps monotonic instants to wall-clock epoch milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// A monotonic instant...
    anchor: Instant,
    /// ...and the wall-clock epoch ms read right after it.
    anchor_ms: i64,
}

impl Clock {
    /// Anchored now; re-anchor once per interval so wall-clock corrections are followed.
    pub fn now() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self {
            anchor: Instant::now(),
            anchor_ms: wall,
        }
    }

    /// Epoch milliseconds of `at`.
    pub fn millis_at(&self, at: Instant) -> i64 {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        match at.checked_duration_since(self.anchor) {
            Some(after) => self.anchor_ms.saturating_add(ms(after)),
            None => self.anchor_ms.saturating_sub(ms(self.anchor - at)),
        }
    }

    /// Epoch milliseconds at the anchor.
    pub fn anchor_ms(&self) -> i64 {
        self.anchor_ms
    }
}

/// Who the readings are from.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The service name.
    pub service: ServiceName,
    /// The instance name.
    pub instance: InstanceName,
    /// For paths that are not templates.
    pub normaliser: PathNormaliser,
}

impl Source {
    /// The method, status, path template and duration of `record`, or `None` if no reading can
    /// carry it.
    pub(crate) fn classify<'r>(
        &self,
        record: &'r RequestRecord,
    ) -> Option<(HttpMethod, StatusCode, Cow<'r, str>, f64)> {
        let name = METHODS.iter().find(|(m, _)| *m == record.method)?.1;
        let method = HttpMethod::parse(name).ok()?;
        let code = StatusCode::parse(i64::from(record.status)).ok()?;
        let path = if record.route.is_template() {
            Cow::Borrowed(record.route.as_str())
        } else {
            Cow::Owned(
                self.normaliser
                    .normalise(record.route.as_str())
                    .as_str()
                    .to_owned(),
            )
        };
        let duration_ms = (record.elapsed.as_secs_f64() * 1000.0).min(MAX_DURATION_MS);
        Some((method, code, path, duration_ms))
    }

    /// The reading of one request, timed by `clock`.
    pub fn reading(&self, record: &RequestRecord, clock: &Clock) -> Option<ApiReading> {
        let (method, code, path, duration_ms) = self.classify(record)?;
        Some(self.make_reading(
            method,
            code,
            valid_path(&path),
            duration_ms,
            1,
            clock.millis_at(record.ended),
        ))
    }

    fn make_reading(
        &self,
        method: HttpMethod,
        code: StatusCode,
        path: ApiPath,
        duration_ms: f64,
        count: u32,
        at_ms: i64,
    ) -> ApiReading {
        ApiReading {
            id: ReadingId::new(),
            service: self.service.clone(),
            instance: self.instance.clone(),
            method,
            path,
            code,
            duration_ms,
            count,
            timestamp: TimestampMs::from_millis(at_ms),
        }
    }
}

/// A template from a router made a valid reading path (routers' templates already are).
fn valid_path(template: &str) -> ApiPath {
    normalise::sanitise(template)
}

/// One series' requests in the current interval.
#[derive(Debug)]
struct Summary {
    /// The reading path (the lookup key made valid).
    path: ApiPath,
    /// Requests so far (at most `MAX_COUNT`).
    count: u32,
    /// Their summed duration, ms.
    total_ms: f64,
    /// The slowest of them, ms.
    max_ms: f64,
}

/// Sums requests per `(method, path, code)` until [`drain`](Self::drain).
#[derive(Debug)]
pub(crate) struct Aggregator {
    source: Source,
    /// Series of the interval, by method and code, then by template.
    series: HashMap<(HttpMethod, StatusCode), HashMap<Box<str>, Summary>>,
    /// How many series `series` holds.
    len: usize,
    /// Most series per interval.
    max_series: usize,
}

impl Aggregator {
    /// An empty aggregator holding at most `max_series` series per interval.
    pub fn new(source: Source, max_series: usize) -> Self {
        Self {
            source,
            series: HashMap::new(),
            len: 0,
            max_series,
        }
    }

    /// Adds one request; false if it cannot be counted (see the module notes).
    pub fn add(&mut self, record: &RequestRecord) -> bool {
        let Some((method, code, path, ms)) = self.source.classify(record) else {
            return false;
        };
        let by_path = self.series.entry((method, code)).or_default();
        if let Some(summary) = by_path.get_mut(path.as_ref()) {
            if summary.count == MAX_COUNT {
                return false;
            }
            summary.count += 1;
            summary.total_ms += ms;
            summary.max_ms = summary.max_ms.max(ms);
            return true;
        }
        if self.len >= self.max_series {
            return false;
        }
        self.len += 1;
        let summary = Summary {
            path: valid_path(&path),
            count: 1,
            total_ms: ms,
            max_ms: ms,
        };
        by_path.insert(path.into_owned().into_boxed_str(), summary);
        true
    }

    /// The readings of the interval ending at `at_ms` (epoch ms), emptying the aggregator.
    pub fn drain(&mut self, at_ms: i64) -> Vec<ApiReading> {
        let mut readings = Vec::with_capacity(self.len * 2);
        for ((method, code), by_path) in self.series.drain() {
            for summary in by_path.into_values() {
                let reading = |ms, count| {
                    let path = summary.path.clone();
                    let method = method.clone();
                    self.source
                        .make_reading(method, code, path, ms, count, at_ms)
                };
                readings.push(reading(summary.max_ms, 1));
                if summary.count > 1 {
                    let rest = summary.count - 1;
                    let mean = ((summary.total_ms - summary.max_ms) / f64::from(rest)).max(0.0);
                    readings.push(reading(mean.min(summary.max_ms), rest));
                }
            }
        }
        self.len = 0;
        readings
    }
}

#[cfg(test)]
mod tests;
