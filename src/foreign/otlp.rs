//! OTLP metrics (an `ExportMetricsServiceRequest`, from protobuf or OTLP/JSON) → API and host
//! readings. The receivers (`crate::api::otlp`) decode, call [`Converter::convert`], make the
//! readings durable, and answer with the [`Rejections`] as `partial_success`.
//!
//! What becomes what (the README's "Sending OpenTelemetry metrics" has the full table):
//! - **service** ← resource `service.name` (`unknown_service` when absent, as the OTel SDKs
//!   default); **instance** ← `service.instance.id`, else `host.name`, else the peer's IP;
//! - `http.server.request.duration` (s) and `http.server.duration` (ms) histograms, explicit or
//!   exponential → API readings ([`requests`]), one per non-empty bucket, through the shared
//!   [`DurationHistogram`] mapping (sum kept, every request inside its own bucket);
//! - `system.cpu.utilization`, `system.memory.usage|limit`, `system.filesystem.usage|limit`,
//!   `process.memory.usage` → host gauges ([`host`]);
//! - every resource that reports gets one host reading per request with `available = true` (and
//!   its host gauges, if any): availability is "this resource reported in this interval";
//! - anything else is rejected by data point, counted per metric ([`Rejections`]).
//!
//! Temporality: delta points are counted as sent, and a resend of a point already seen (same
//! stream, start and end time as one of its last few points) is dropped ([`resends`]);
//! cumulative points become deltas per stream
//! (resource + scope + metric + point attributes) with the shared [`Tracker`], resets detected
//! from `start_time_unix_nano` and from decreases. The first cumulative point of a stream counts
//! whole only if the stream started after this process did: a stream already running when
//! timebucket (re)started only primes its tracker, so nothing is counted twice, at the cost of
//! that stream's one interval before its first point after a restart.
//!
//! Invariant: a conversion's tracker changes are undone ([`Converter::undo`]) when its readings
//! are not made durable, so the exporter's retry counts them again.

pub mod attrs;
pub mod host;
pub mod rejections;
pub mod requests;
pub mod resends;

use std::net::IpAddr;
use std::sync::Mutex;

use opentelemetry_proto::tonic::metrics::v1::{metric::Data, Metric};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

pub use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
pub use rejections::Rejections;

use self::attrs::{StreamHasher, StreamKey};
use self::host::{HostMetric, HostSample};
use self::resends::{Added, Resends};
use super::cumulative::{Delta, FirstPoint, Tracker, Undo};
use super::histogram::DurationHistogram;
use crate::ingest::rules;
use crate::ingest::Window;
use crate::model::{HostReading, InstanceName, Reading, ReadingId, ServiceName, TimestampMs};

/// Streams remembered per temporality (about 0.5 KiB each for a cumulative histogram, so at most
/// ~50 MiB); past it the stream seen longest ago is forgotten.
pub const MAX_STREAMS: usize = 100_000;
/// A stream silent this long (ms) is forgotten.
const IDLE_STREAM_MS: i64 = 60 * 60 * 1000;
/// How often (ms) idle streams are looked for.
const SWEEP_EVERY_MS: i64 = 60 * 1000;

/// The service name OTel SDKs use when none is configured.
const UNKNOWN_SERVICE: &str = "unknown_service";

/// A request body that is not an `ExportMetricsServiceRequest`.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not valid protobuf for the message.
    #[error("not a valid OTLP protobuf ExportMetricsServiceRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// Not valid OTLP/JSON for the message.
    #[error("not a valid OTLP/JSON ExportMetricsServiceRequest: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes a protobuf-encoded request.
pub fn decode_protobuf(body: &[u8]) -> Result<ExportMetricsServiceRequest, DecodeError> {
    Ok(ExportMetricsServiceRequest::decode(body)?)
}

/// Decodes an OTLP/JSON request (the protobuf JSON mapping: lowerCamelCase names, 64-bit
/// integers as strings, enums as numbers; the published types' serde support reads it).
pub fn decode_json(body: &[u8]) -> Result<ExportMetricsServiceRequest, DecodeError> {
    Ok(serde_json::from_slice(body)?)
}

/// The answer to a request with these rejections.
pub fn response(rejected: &Rejections) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: rejected.partial_success(),
    }
}

/// The streams seen, by temporality.
struct Streams {
    cumulative: Tracker<StreamKey, DurationHistogram>,
    delta: Resends,
    last_sweep: TimestampMs,
}

enum StreamUndo {
    Cumulative(Undo<StreamKey, DurationHistogram>),
    Delta(Added),
}

/// The tracker changes of one conversion, to undo if its readings are not kept.
#[must_use = "undo it when the readings could not be made durable"]
pub struct Pending(Vec<StreamUndo>);

/// What one request became.
pub struct Conversion {
    /// The readings, each valid by the ingest rules.
    pub readings: Vec<Reading>,
    /// The data points that did not become readings, and why.
    pub rejected: Rejections,
    /// The tracker changes, for [`Converter::undo`].
    pub pending: Pending,
}

/// Converts OTLP requests, remembering the cumulative streams between them.
pub struct Converter {
    streams: Mutex<Streams>,
}

impl Converter {
    /// A converter for a process that started at `started`: cumulative streams that began
    /// before it are primed, not counted whole (see the module doc).
    pub fn new(started: TimestampMs) -> Self {
        Self {
            streams: Mutex::new(Streams {
                cumulative: Tracker::new(MAX_STREAMS, FirstPoint::CountIfStartedAfter(started)),
                delta: Resends::new(MAX_STREAMS),
                last_sweep: started,
            }),
        }
    }

    /// Converts `request`, received from `peer`, with times checked against `window`.
    pub fn convert(
        &self,
        request: &ExportMetricsServiceRequest,
        peer: IpAddr,
        window: &Window,
    ) -> Conversion {
        // A panic elsewhere while holding the lock leaves the trackers usable: at worst one
        // stream's state is a point behind, which the next point corrects.
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.sweep(window.now);
        let mut ctx = Context {
            streams: &mut streams,
            window,
            readings: Vec::new(),
            rejected: Rejections::default(),
            undo: Vec::new(),
            latest: None,
        };
        for resource in &request.resource_metrics {
            let metrics = || resource.scope_metrics.iter().flat_map(|s| s.metrics.iter());
            let origin = match Origin::of(resource.resource.as_ref(), peer) {
                Ok(origin) => origin,
                Err(reason) => {
                    for m in metrics() {
                        ctx.rejected
                            .reject(&m.name, point_count(m), || reason.clone());
                    }
                    continue;
                }
            };
            let attributes = resource
                .resource
                .as_ref()
                .map_or(&[][..], |r| &r.attributes);
            let resource_key = StreamHasher::new().attributes(attributes);
            // With the semconv opt-in `http/dup`, instrumentations send both histograms for the
            // same requests: the stable one is used, the legacy one would count them twice.
            let has_stable = metrics().any(|m| m.name == requests::STABLE);
            ctx.latest = None;
            let mut host = HostSample::default();
            for scope_metrics in &resource.scope_metrics {
                let scope = scope_metrics.scope.as_ref();
                let scope_key = resource_key
                    .clone()
                    .name(scope.map_or("", |s| s.name.as_str()))
                    .name(scope.map_or("", |s| s.version.as_str()))
                    .attributes(scope.map_or(&[][..], |s| &s.attributes));
                for metric in &scope_metrics.metrics {
                    let name = metric.name.as_str();
                    if requests::default_unit_ms(name).is_some() {
                        if !(name == requests::LEGACY && has_stable) {
                            requests::convert(&mut ctx, &origin, &scope_key, metric);
                        }
                    } else if let Some(kind) = HostMetric::named(name) {
                        host.add(&mut ctx, kind, metric);
                    } else {
                        ctx.rejected.reject(name, point_count(metric), || {
                            "not a metric timebucket maps (it reads http.server.request.duration, \
                             http.server.duration, system.cpu.utilization, system.memory.usage, \
                             system.memory.limit, system.filesystem.usage, \
                             system.filesystem.limit and process.memory.usage)"
                                .into()
                        });
                    }
                }
            }
            let mut gauges = host.into_gauges();
            gauges.available = Some(true);
            ctx.readings.push(Reading::Host(HostReading {
                id: ReadingId::new(),
                service: origin.service,
                instance: origin.instance,
                timestamp: ctx.latest.unwrap_or(window.now),
                gauges,
            }));
        }
        Conversion {
            readings: ctx.readings,
            rejected: ctx.rejected,
            pending: Pending(ctx.undo),
        }
    }

    /// Undoes the tracker changes of a conversion whose readings were not made durable.
    pub fn undo(&self, pending: Pending) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        for undo in pending.0.into_iter().rev() {
            match undo {
                StreamUndo::Cumulative(u) => streams.cumulative.undo(u),
                StreamUndo::Delta(u) => streams.delta.undo(u),
            }
        }
    }
}

impl Streams {
    fn sweep(&mut self, now: TimestampMs) {
        if now.millis() - self.last_sweep.millis() < SWEEP_EVERY_MS {
            return;
        }
        self.last_sweep = now;
        let cutoff = TimestampMs::from_millis(now.millis() - IDLE_STREAM_MS);
        self.cumulative.forget_idle(cutoff);
        self.delta.forget_idle(cutoff);
    }
}

/// The resource a metric came from, as readings name it.
pub struct Origin {
    /// `service.name`.
    pub service: ServiceName,
    /// `service.instance.id`, `host.name` or the peer's IP.
    pub instance: InstanceName,
}

impl Origin {
    fn of(resource: Option<&Resource>, peer: IpAddr) -> Result<Self, String> {
        let attributes = resource.map_or(&[][..], |r| &r.attributes);
        let service = attrs::text(attributes, &["service.name"]);
        let service = ServiceName::parse(service.as_deref().unwrap_or(UNKNOWN_SERVICE))
            .map_err(|e| format!("resource attribute service.name {e}"))?;
        let instance = match attrs::text(attributes, &["service.instance.id", "host.name"]) {
            Some(name) => InstanceName::parse(&name)
                .map_err(|e| format!("resource attribute service.instance.id / host.name {e}"))?,
            None => InstanceName::parse(&peer.to_string()).map_err(|e| e.to_string())?,
        };
        Ok(Self { service, instance })
    }
}

/// The state one conversion works on.
pub struct Context<'a> {
    streams: &'a mut Streams,
    window: &'a Window,
    readings: Vec<Reading>,
    rejected: Rejections,
    undo: Vec<StreamUndo>,
    /// The latest point time of the resource being converted.
    latest: Option<TimestampMs>,
}

impl Context<'_> {
    /// A point's time in ms, if within the ingest window.
    fn point_time(&self, ns: u64) -> Result<TimestampMs, String> {
        if ns == 0 {
            return Err("a data point without time_unix_nano".into());
        }
        let at = nanos_to_ms(ns);
        rules::timestamp(at, self.window, || rules::describe_millis(at))
    }

    /// The current resource reported a point at `at`.
    fn reported(&mut self, at: TimestampMs) {
        self.latest = self.latest.max(Some(at));
    }

    /// Whether a delta point is new (not a resend of one already counted).
    fn delta_point(&mut self, key: StreamKey, start_ns: u64, time_ns: u64) -> bool {
        let now = self.window.now;
        let added = self.streams.delta.observe(key, start_ns, time_ns, now);
        let new = added.is_some();
        self.undo.extend(added.map(StreamUndo::Delta));
        new
    }

    /// What a cumulative point adds to its stream, if anything.
    fn cumulative_point(
        &mut self,
        key: StreamKey,
        start: Option<TimestampMs>,
        total: DurationHistogram,
        at: TimestampMs,
    ) -> Option<DurationHistogram> {
        let (delta, undo) = self
            .streams
            .cumulative
            .observe_undoable(&key, start, total, at);
        self.undo.extend(undo.map(StreamUndo::Cumulative));
        match delta {
            Delta::Increase(h) | Delta::Reset(h) => Some(h),
            Delta::Primed | Delta::Stale => None,
        }
    }
}

/// Data points in a metric, whatever its kind.
pub fn point_count(metric: &Metric) -> u64 {
    let n = match &metric.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    };
    n as u64
}

/// Epoch nanoseconds → epoch milliseconds (rounded down).
pub fn nanos_to_ms(ns: u64) -> TimestampMs {
    TimestampMs::from_millis(i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
