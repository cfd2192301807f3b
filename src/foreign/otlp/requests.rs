//! HTTP server request durations (`http.server.request.duration`, `http.server.duration`) →
//! API readings, through the shared [`DurationHistogram`] mapping.
//!
//! Per data point: the series comes from the point's attributes (current convention names
//! first, then the pre-1.20 ones); the time is checked against the ingest window *before* the
//! point touches the stream trackers, so a refused point never moves a stream on; cumulative
//! points become deltas per stream, delta points are checked for resends; each non-empty bucket
//! of what is left becomes a reading at the point's `time_unix_nano`.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, AggregationTemporality, DataPointFlags, ExponentialHistogramDataPoint,
    HistogramDataPoint, Metric,
};

use super::attrs::{self, StreamHasher};
use super::{nanos_to_ms, Context, Origin};
use crate::capture::normalise;
use crate::foreign::histogram::{ApiSeries, DurationHistogram, Exponential};
use crate::model::{ApiPath, HttpMethod, StatusCode};

/// The stable HTTP server duration histogram (semantic conventions 1.20+), in seconds.
pub const STABLE: &str = "http.server.request.duration";
/// The older HTTP server duration histogram, in milliseconds.
pub const LEGACY: &str = "http.server.duration";

/// The unit a duration metric is in when its `unit` field is empty, as ms per unit.
pub fn default_unit_ms(name: &str) -> Option<f64> {
    match name {
        STABLE => Some(1000.0),
        LEGACY => Some(1.0),
        _ => None,
    }
}

const METHOD: [&str; 2] = ["http.request.method", "http.method"];
const ROUTE: [&str; 1] = ["http.route"];
const RAW_PATH: [&str; 2] = ["url.path", "http.target"];
const CODE: [&str; 2] = ["http.response.status_code", "http.status_code"];

/// Milliseconds per `unit` (UCUM, as OTel writes it).
fn unit_ms(unit: &str, default: f64) -> Result<f64, String> {
    match unit {
        "" => Ok(default),
        "s" => Ok(1000.0),
        "ms" => Ok(1.0),
        "us" => Ok(0.001),
        "ns" => Ok(0.000_001),
        other => Err(format!(
            "unit `{other}` is not a duration unit (s, ms, us, ns)"
        )),
    }
}

/// Converts every point of a duration histogram `metric` of one resource.
pub fn convert(ctx: &mut Context<'_>, origin: &Origin, scope: &StreamHasher, metric: &Metric) {
    let name = metric.name.as_str();
    let default = default_unit_ms(name).unwrap_or(1.0);
    let (points, temporality) = match &metric.data {
        Some(Data::Histogram(h)) => (h.data_points.len(), h.aggregation_temporality),
        Some(Data::ExponentialHistogram(h)) => (h.data_points.len(), h.aggregation_temporality),
        _ => {
            let points = super::point_count(metric);
            ctx.rejected.reject(name, points, || {
                "an HTTP server duration must be a histogram".into()
            });
            return;
        }
    };
    let unit = match unit_ms(&metric.unit, default) {
        Ok(unit) => unit,
        Err(reason) => {
            ctx.rejected.reject(name, points as u64, || reason);
            return;
        }
    };
    let stream = scope.clone().name(name);
    match &metric.data {
        Some(Data::Histogram(h)) => {
            for p in &h.data_points {
                let point = Point {
                    attributes: &p.attributes,
                    start_ns: p.start_time_unix_nano,
                    time_ns: p.time_unix_nano,
                    flags: p.flags,
                };
                let histogram = || explicit(p, unit);
                one_point(ctx, origin, &stream, name, temporality, point, histogram);
            }
        }
        Some(Data::ExponentialHistogram(h)) => {
            for p in &h.data_points {
                let point = Point {
                    attributes: &p.attributes,
                    start_ns: p.start_time_unix_nano,
                    time_ns: p.time_unix_nano,
                    flags: p.flags,
                };
                let histogram = || exponential(p, unit);
                one_point(ctx, origin, &stream, name, temporality, point, histogram);
            }
        }
        _ => {}
    }
}

/// What every histogram point has, whatever its bucket layout.
struct Point<'a> {
    attributes: &'a [KeyValue],
    start_ns: u64,
    time_ns: u64,
    flags: u32,
}

fn one_point(
    ctx: &mut Context<'_>,
    origin: &Origin,
    stream: &StreamHasher,
    name: &str,
    temporality: i32,
    point: Point<'_>,
    histogram: impl FnOnce() -> Result<DurationHistogram, String>,
) {
    // A point flagged "no recorded value" only says the stream went stale: nothing to count.
    if point.flags & DataPointFlags::NoRecordedValueMask as u32 != 0 {
        return;
    }
    let checked = (|| {
        let at = ctx.point_time(point.time_ns)?;
        let series = series(origin, point.attributes)?;
        Ok::<_, String>((at, series, histogram()?))
    })();
    let (at, series, histogram) = match checked {
        Ok(ok) => ok,
        Err(reason) => return ctx.rejected.reject(name, 1, || reason),
    };
    ctx.reported(at);
    let key = stream.clone().attributes(point.attributes).finish();
    let start = (point.start_ns > 0).then(|| nanos_to_ms(point.start_ns));
    let delta = if temporality == AggregationTemporality::Delta as i32 {
        ctx.delta_point(key, point.start_ns, point.time_ns)
            .then_some(histogram)
    } else if temporality == AggregationTemporality::Cumulative as i32 {
        ctx.cumulative_point(key, start, histogram, at)
    } else {
        return ctx.rejected.reject(name, 1, || {
            "aggregation temporality is unspecified (must be delta or cumulative)".into()
        });
    };
    if let Some(delta) = delta {
        let readings = delta.to_readings(&series, at);
        ctx.readings
            .extend(readings.into_iter().map(crate::model::Reading::Api));
    }
}

/// The series of a point: the resource's service and instance, the point's method, route and
/// status code.
fn series(origin: &Origin, attributes: &[KeyValue]) -> Result<ApiSeries, String> {
    let method = attrs::text(attributes, &METHOD)
        .ok_or("no http.request.method attribute")
        .map_err(String::from)
        .and_then(|m| HttpMethod::parse(&m).map_err(|e| format!("http.request.method {e}")))?;
    let code = match attrs::integer(attributes, &CODE) {
        Some(Ok(code)) => {
            StatusCode::parse(code).map_err(|e| format!("http.response.status_code {e}"))?
        }
        Some(Err(e)) => return Err(format!("http.response.status_code: {e}")),
        None => return Err("no http.response.status_code attribute (no response sent)".into()),
    };
    Ok(ApiSeries {
        service: origin.service.clone(),
        instance: origin.instance.clone(),
        method,
        path: path(attributes)?,
        code,
    })
}

/// `http.route`; else the raw path (query dropped) through the capture layer's normaliser, so
/// ids never become series; a route without its leading `/` (ASP.NET writes them so) gets one.
fn path(attributes: &[KeyValue]) -> Result<ApiPath, String> {
    if let Some(route) = attrs::text(attributes, &ROUTE) {
        let route = if route.starts_with('/') {
            route.into_owned()
        } else {
            format!("/{route}")
        };
        return ApiPath::parse(&route).map_err(|e| format!("http.route {e}"));
    }
    let raw = attrs::text(attributes, &RAW_PATH).ok_or("no http.route attribute (nor url.path)")?;
    let raw = raw.split(['?', '#']).next().unwrap_or_default();
    ApiPath::parse(&normalise::builtin(raw)).map_err(|e| format!("url.path {e}"))
}

fn scaled(v: Option<f64>, unit: f64) -> Option<f64> {
    v.map(|v| v * unit)
}

fn explicit(p: &HistogramDataPoint, unit: f64) -> Result<DurationHistogram, String> {
    let bounds: Vec<f64> = p.explicit_bounds.iter().map(|b| b * unit).collect();
    let counts: &[u64] = if p.bucket_counts.is_empty() {
        // Only count and sum: one unbounded bucket.
        std::slice::from_ref(&p.count)
    } else {
        &p.bucket_counts
    };
    let total: u64 = counts.iter().sum();
    if total != p.count {
        return Err(format!(
            "bucket counts add up to {total}, but count is {}",
            p.count
        ));
    }
    let bounds = if p.bucket_counts.is_empty() {
        &[][..]
    } else {
        &bounds[..]
    };
    DurationHistogram::explicit(
        bounds,
        counts,
        scaled(p.sum, unit),
        scaled(p.min, unit),
        scaled(p.max, unit),
    )
    .map_err(|e| e.to_string())
}

fn exponential(p: &ExponentialHistogramDataPoint, unit: f64) -> Result<DurationHistogram, String> {
    if p.negative
        .as_ref()
        .is_some_and(|n| n.bucket_counts.iter().any(|&c| c > 0))
    {
        return Err("negative durations cannot be request durations".into());
    }
    let (offset, counts) = p
        .positive
        .as_ref()
        .map_or((0, &[][..]), |b| (b.offset, &b.bucket_counts[..]));
    let total = p.zero_count + counts.iter().sum::<u64>();
    if total != p.count {
        return Err(format!(
            "bucket counts add up to {total}, but count is {}",
            p.count
        ));
    }
    let layout = Exponential {
        scale: p.scale,
        zero_count: p.zero_count,
        offset,
        counts,
    };
    DurationHistogram::exponential(
        &layout,
        unit,
        scaled(p.sum, unit),
        scaled(p.min, unit),
        scaled(p.max, unit),
    )
    .map_err(|e| e.to_string())
}
