//! The usual HTTP-server metrics of an exposition → API readings.
//!
//! Families read, best first (the first one a target exposes with at least one mappable series
//! is used; the others would count the same requests again, so they are left unmapped):
//!
//! | family | type | readings |
//! | --- | --- | --- |
//! | `http_server_request_duration_seconds` (OpenTelemetry) | histogram | per bucket: count, representative duration |
//! | `http_request_duration_seconds` | histogram | per bucket |
//! | `http_server_requests_seconds` (Micrometer) | histogram | per bucket |
//! | `http_request_duration_seconds` | summary | count and mean duration (`_sum / _count`) |
//! | `http_server_requests_seconds` (Micrometer) | summary | count and mean duration |
//! | `http_requests_total` | counter | count; duration 0 (the counter carries none) |
//!
//! Every value is a running total: a reading is the **delta** since the previous scrape of the
//! same series (its full label set), through a [`Tracker`] that treats a total that went down
//! as a counter reset (everything since the reset is new). The target's first scrape only
//! primes its series (what they counted before is not known to be new); a series that appears
//! in a later scrape did not exist at the previous one, so its whole total is counted (client
//! libraries create a labelled series at its first request). Histogram deltas become readings by [`DurationHistogram::to_readings`], the mapping
//! the OTLP receiver shares. Summary quantiles cannot be added across scrapes and are not used.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::parse::{Exposition, MetricType, Sample, Suffix};
use super::Origin;
use crate::foreign::cumulative::{Cumulative, Delta, FirstPoint, Tracker};
use crate::foreign::histogram::{ApiSeries, DurationHistogram};
use crate::ingest::rules::MAX_DURATION_MS;
use crate::model::{ApiPath, ApiReading, HttpMethod, ReadingId, StatusCode, TimestampMs};

/// Which labels carry method, path and code; for each, the first one a series has is read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiLabels {
    /// Method labels (default `method`, `http_request_method`).
    pub method: Vec<String>,
    /// Path labels (default `route`, `handler`, `path`, `uri`, `http_route`).
    pub path: Vec<String>,
    /// Status code labels (default `code`, `status`, `http_response_status_code`).
    pub code: Vec<String>,
}

impl Default for ApiLabels {
    fn default() -> Self {
        let list = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        Self {
            method: list(&["method", "http_request_method"]),
            path: list(&["route", "handler", "path", "uri", "http_route"]),
            code: list(&["code", "status", "http_response_status_code"]),
        }
    }
}

/// How a family's samples are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Histogram,
    Summary,
    Counter,
}

/// The families read, best first: name, shape, and ms per unit of its values.
const FAMILIES: [(&str, Shape); 6] = [
    ("http_server_request_duration_seconds", Shape::Histogram),
    ("http_request_duration_seconds", Shape::Histogram),
    ("http_server_requests_seconds", Shape::Histogram),
    ("http_request_duration_seconds", Shape::Summary),
    ("http_server_requests_seconds", Shape::Summary),
    ("http_requests_total", Shape::Counter),
];

/// The families are all in seconds.
const MS_PER_UNIT: f64 = 1000.0;

/// The most requests one series may add between two scrapes (a million per second for a day);
/// more is a broken exporter, and is not stored.
const MAX_DELTA: f64 = 86_400.0 * 1e6;

/// A summary's running totals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Totals {
    count: f64,
    sum_ms: f64,
}

impl Cumulative for Totals {
    fn since(&self, earlier: &Self) -> Option<Self> {
        (self.count >= earlier.count && self.sum_ms >= earlier.sum_ms).then_some(Totals {
            count: self.count - earlier.count,
            sum_ms: self.sum_ms - earlier.sum_ms,
        })
    }
}

/// One series of the chosen family, gathered from its samples.
#[derive(Debug, Default)]
struct Group<'s, 'a> {
    /// A sample of the series, for its labels.
    first: Option<&'s Sample<'a>>,
    /// Indexes of its samples in the exposition.
    samples: Vec<usize>,
    /// `(le, cumulative count)`, histograms.
    buckets: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
}

/// The last totals of every API series of a target.
#[derive(Debug, Clone)]
pub struct ApiState {
    histograms: Tracker<String, DurationHistogram>,
    summaries: Tracker<String, Totals>,
    counters: Tracker<String, f64>,
    /// How a series the trackers do not know is taken: primed at the target's first scrape
    /// (its past is unknown), counted whole afterwards (it did not exist at the previous
    /// scrape, so all of it is new).
    first: FirstPoint,
}

impl ApiState {
    /// Remembers at most `max_series` series of each shape.
    pub fn new(max_series: usize) -> Self {
        Self {
            histograms: Tracker::new(max_series, FirstPoint::Prime),
            summaries: Tracker::new(max_series, FirstPoint::Prime),
            counters: Tracker::new(max_series, FirstPoint::Prime),
            first: FirstPoint::Prime,
        }
    }

    /// Forgets series not seen since `cutoff`.
    pub fn forget_idle(&mut self, cutoff: TimestampMs) {
        self.histograms.forget_idle(cutoff);
        self.summaries.forget_idle(cutoff);
        self.counters.forget_idle(cutoff);
    }

    /// The API readings of `exposition`; marks the samples it used in `used`.
    pub fn convert(
        &mut self,
        exposition: &Exposition<'_>,
        at: TimestampMs,
        origin: &Origin,
        labels: &ApiLabels,
        used: &mut [bool],
    ) -> Vec<ApiReading> {
        // Each sample's family, looked up once for all the candidate families.
        let families: Vec<(&str, MetricType, Suffix)> = exposition
            .samples
            .iter()
            .map(|s| exposition.family_of(s.name))
            .collect();
        for (rank, &(family, shape)) in FAMILIES.iter().enumerate() {
            let groups = gather(exposition, &families, family, shape);
            let mapped: Vec<(String, ApiSeries, Group)> = groups
                .into_iter()
                .filter_map(|(key, group)| {
                    let series = series_of(group.first?, origin, labels)?;
                    Some((format!("{rank}\u{0}{key}"), series, group))
                })
                .collect();
            if mapped.is_empty() {
                continue;
            }
            let mut readings = Vec::new();
            let first = std::mem::replace(&mut self.first, FirstPoint::Count);
            for (key, series, group) in mapped {
                let made = match shape {
                    Shape::Histogram => self.histogram(&key, &series, &group, at, first),
                    Shape::Summary => self.summary(&key, &series, &group, at, first),
                    Shape::Counter => self.counter(&key, &series, &group, at, first),
                };
                if let Some(made) = made {
                    readings.extend(made);
                    for &i in &group.samples {
                        used[i] = true;
                    }
                }
            }
            return readings;
        }
        self.first = FirstPoint::Count;
        Vec::new()
    }

    fn histogram(
        &mut self,
        key: &String,
        series: &ApiSeries,
        group: &Group,
        at: TimestampMs,
        first: FirstPoint,
    ) -> Option<Vec<ApiReading>> {
        let mut buckets: Vec<(f64, f64)> = group
            .buckets
            .iter()
            .map(|&(le, count)| (le * MS_PER_UNIT, count))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let sum_ms = group.sum.map(|s| s * MS_PER_UNIT);
        let total = DurationHistogram::cumulative_le(&buckets, sum_ms).ok()?;
        Some(
            match self.histograms.observe_as(key, None, total, at, first) {
                Delta::Increase(d) | Delta::Reset(d) if d.count() as f64 <= MAX_DELTA => {
                    d.to_readings(series, at)
                }
                _ => Vec::new(),
            },
        )
    }

    fn summary(
        &mut self,
        key: &String,
        series: &ApiSeries,
        group: &Group,
        at: TimestampMs,
        first: FirstPoint,
    ) -> Option<Vec<ApiReading>> {
        let (count, sum) = (group.count?, group.sum?);
        if !(count.is_finite() && sum.is_finite() && count >= 0.0 && sum >= 0.0) {
            return None;
        }
        let total = Totals {
            count,
            sum_ms: sum * MS_PER_UNIT,
        };
        Some(
            match self.summaries.observe_as(key, None, total, at, first) {
                Delta::Increase(d) | Delta::Reset(d) => {
                    let count = d.count.round();
                    let mean = if count > 0.0 { d.sum_ms / count } else { 0.0 };
                    readings(series, count, mean, at)
                }
                Delta::Primed | Delta::Stale => Vec::new(),
            },
        )
    }

    fn counter(
        &mut self,
        key: &String,
        series: &ApiSeries,
        group: &Group,
        at: TimestampMs,
        first: FirstPoint,
    ) -> Option<Vec<ApiReading>> {
        let total = group.count.filter(|c| c.is_finite() && *c >= 0.0)?;
        Some(
            match self.counters.observe_as(key, None, total, at, first) {
                Delta::Increase(d) | Delta::Reset(d) => readings(series, d.round(), 0.0, at),
                Delta::Primed | Delta::Stale => Vec::new(),
            },
        )
    }
}

/// The series of `family` read as `shape`, by their label set (less `le` / `quantile`).
fn gather<'s, 'a>(
    exposition: &'s Exposition<'a>,
    families: &[(&str, MetricType, Suffix)],
    family: &str,
    shape: Shape,
) -> BTreeMap<String, Group<'s, 'a>> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for (index, sample) in exposition.samples.iter().enumerate() {
        let (name, kind, suffix) = families[index];
        let part = match shape {
            Shape::Counter => {
                let counter = matches!(kind, MetricType::Counter | MetricType::Unknown);
                if sample.name != family || !counter {
                    continue;
                }
                Suffix::Count
            }
            Shape::Histogram if name == family && kind == MetricType::Histogram => suffix,
            Shape::Summary if name == family && kind == MetricType::Summary => suffix,
            _ => continue,
        };
        let group = groups.entry(series_key(sample)).or_default();
        group.first.get_or_insert(sample);
        group.samples.push(index);
        match part {
            Suffix::Bucket => {
                if let Some(le) = sample.label("le").and_then(|le| le.parse::<f64>().ok()) {
                    group.buckets.push((le, sample.value));
                }
            }
            Suffix::Sum => group.sum = Some(sample.value),
            Suffix::Count => group.count = Some(sample.value),
            // Quantiles (not additive) and `_created` belong to the family but carry no count.
            Suffix::None | Suffix::Total | Suffix::Created => {}
        }
    }
    groups
}

/// A series' identity: its labels less `le` and `quantile`, sorted.
fn series_key(sample: &Sample<'_>) -> String {
    let mut labels: Vec<(&str, &Cow<str>)> = sample
        .labels
        .iter()
        .filter(|(n, _)| *n != "le" && *n != "quantile")
        .map(|(n, v)| (*n, v))
        .collect();
    labels.sort();
    let mut key = String::new();
    for (name, value) in labels {
        key.push_str(name);
        key.push('=');
        key.push_str(value);
        key.push('\u{0}');
    }
    key
}

/// The API series a sample's labels name, or `None` when method, path or code is missing or
/// not valid.
fn series_of(sample: &Sample<'_>, origin: &Origin, labels: &ApiLabels) -> Option<ApiSeries> {
    let first = |names: &[String]| names.iter().find_map(|n| sample.label(n));
    let method = HttpMethod::parse(first(&labels.method)?).ok()?;
    let path = ApiPath::parse(first(&labels.path)?).ok()?;
    let code = StatusCode::parse(first(&labels.code)?.parse::<i64>().ok()?).ok()?;
    Some(ApiSeries {
        service: origin.service.clone(),
        instance: origin.instance.clone(),
        method,
        path,
        code,
    })
}

/// Readings for `count` requests of mean `duration_ms` (split when over a reading's largest
/// count); none for a count below one, or past [`MAX_DELTA`].
fn readings(series: &ApiSeries, count: f64, duration_ms: f64, at: TimestampMs) -> Vec<ApiReading> {
    let most = f64::from(i32::MAX);
    if count > MAX_DELTA {
        return Vec::new();
    }
    let mut left = count;
    let mut out = Vec::new();
    while left >= 1.0 {
        let n = left.min(most);
        left -= n;
        out.push(ApiReading {
            id: ReadingId::new(),
            service: series.service.clone(),
            instance: series.instance.clone(),
            method: series.method.clone(),
            path: series.path.clone(),
            code: series.code,
            duration_ms: duration_ms.clamp(0.0, MAX_DURATION_MS),
            count: n as u32,
            timestamp: at,
        });
    }
    out
}

#[cfg(test)]
mod tests;
