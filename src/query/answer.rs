//! The JSON answers of the query endpoints, as the API contract fixes them (fields may be added,
//! none renamed). The same types serialize on the server and deserialize in the CLI client.
//!
//! Times are RFC 3339 with milliseconds, in UTC (`2024-03-01T10:00:00.000Z`).

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use super::source::SourceUsed;
use crate::model::kind::{FieldType, Head, Value, Values};
use crate::model::{ApiReading, HostReading, ReadingId, ReadingKind, ServiceName, TimestampMs};

/// A reading as the query endpoints answer it: `id`, `service`, every field of its kind that is
/// present (absent gauges are left out), and `timestamp` in RFC 3339. Read back (by the CLI)
/// through the kind's own checks.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingOut<K>(pub K);

/// An answer's reading reads as the reading itself.
impl<K> std::ops::Deref for ReadingOut<K> {
    type Target = K;

    fn deref(&self) -> &K {
        &self.0
    }
}

/// An API reading: the ingest fields, plus the id fixed at acceptance.
pub type ApiReadingOut = ReadingOut<ApiReading>;

/// A host reading: the gauges it carried, absent ones left out.
pub type HostReadingOut = ReadingOut<HostReading>;

impl<K: ReadingKind> From<&K> for ReadingOut<K> {
    fn from(reading: &K) -> Self {
        Self(reading.clone())
    }
}

impl<K: ReadingKind> Serialize for ReadingOut<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = &self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &r.id().uuid())?;
        map.serialize_entry("service", r.service().as_str())?;
        for (name, value) in r.present_fields() {
            map.serialize_entry(name, &value)?;
        }
        map.serialize_entry("timestamp", &r.timestamp().to_rfc3339())?;
        map.end()
    }
}

impl<'de, K: ReadingKind> Deserialize<'de> for ReadingOut<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde_json::Value as Json;
        let map = serde_json::Map::<String, Json>::deserialize(deserializer)?;
        let text = |name: &str| match map.get(name) {
            Some(Json::String(text)) => Ok(text.as_str()),
            _ => Err(D::Error::custom(format!("`{name}` must be a string"))),
        };
        let id = uuid::Uuid::parse_str(text("id")?).map_err(D::Error::custom)?;
        let head = Head {
            id: ReadingId::from_uuid(id),
            service: ServiceName::parse(text("service")?).map_err(D::Error::custom)?,
            timestamp: TimestampMs::parse(text("timestamp")?).map_err(D::Error::custom)?,
        };
        let mut values = Values::default();
        for field in K::INFO.fields {
            let value = match (field.ty, map.get(field.name)) {
                (_, None | Some(Json::Null)) => Some(Value::Absent),
                (FieldType::Text, Some(Json::String(text))) => Some(Value::Text(text)),
                (FieldType::Int | FieldType::BigInt, Some(n)) => n.as_i64().map(Value::Int),
                (FieldType::Double, Some(n)) => n.as_f64().map(Value::Double),
                (FieldType::Bool, Some(b)) => b.as_bool().map(Value::Bool),
                _ => None,
            };
            let value = value.ok_or_else(|| {
                D::Error::custom(format!("`{}` must be {}", field.name, field.ty.cql()))
            })?;
            values.push(value);
        }
        K::from_values(head, &values)
            .map(ReadingOut)
            .map_err(D::Error::custom)
    }
}

/// `GET /v1/readings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadingsAnswer {
    /// This page, in the requested order.
    pub readings: Vec<ApiReadingOut>,
    /// Pass as `cursor` (with the same parameters) for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// A method and path of an instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MethodPath {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
}

/// One instance and its API methods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSeries {
    /// The instance.
    pub instance: String,
    /// Its method + path pairs, sorted; empty for an instance seen only in host readings.
    pub methods: Vec<MethodPath>,
}

/// `GET /v1/series`: one page of the series, sorted by instance, method, path. An instance
/// whose methods do not all fit in a page continues on the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesAnswer {
    /// The service.
    pub service: String,
    /// Its instances, sorted.
    pub instances: Vec<InstanceSeries>,
    /// Pass as `cursor` (with the same parameters) for the next page; `null` at the end.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `GET /v1/latest`: one page of latest readings, API readings first, then host readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestAnswer {
    /// The latest reading of every API series, sorted by service, instance, method, path.
    pub api: Vec<ApiReadingOut>,
    /// The latest reading of every instance, sorted by service, instance.
    pub host: Vec<HostReadingOut>,
    /// Pass as `cursor` (with the same parameters) for the next page; `null` at the end.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// The key of a stats group: only the grouped fields are present.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupKeyOut {
    /// The instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

/// One step of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsPoint {
    /// The step's start.
    pub t: String,
    /// Requests (the sum of `count`).
    pub count: u64,
    /// Requests per second over the step.
    pub rate: f64,
    /// Share of requests answered 5xx.
    pub error_rate: f64,
    /// Share of requests answered 4xx.
    pub client_error_rate: f64,
    /// Mean duration, ms, weighted by count.
    pub mean_ms: f64,
    /// Median duration, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Longest duration, ms.
    pub max_ms: f64,
}

/// One group's points, oldest first; steps without requests are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsGroup {
    /// The group.
    pub key: GroupKeyOut,
    /// Its points.
    pub points: Vec<StatsPoint>,
}

/// `GET /v1/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsAnswer {
    /// The step, ms.
    pub step_ms: i64,
    /// The groups, sorted by key.
    pub groups: Vec<StatsGroup>,
    /// Which sources served the answer (raw readings, rollups of which levels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceUsed>,
}

/// Mean and maximum of a gauge over a step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaugeStats {
    /// Mean of the samples that carried the gauge.
    pub mean: f64,
    /// Largest sample.
    pub max: f64,
}

/// One step of one instance's host readings; gauges no sample carried are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostPoint {
    /// The step's start.
    pub t: String,
    /// Host readings in the step.
    pub samples: u64,
    /// Share of the samples reporting `available` that said true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<f64>,
    /// Mean and maximum of every numeric gauge of the host kind that a sample of the step
    /// carried, by gauge name (`cpu_percent`, `mem_used_bytes`, …); gauges no sample carried are
    /// left out.
    #[serde(flatten)]
    pub gauges: BTreeMap<String, GaugeStats>,
}

/// One instance's host points, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSeries {
    /// The instance.
    pub instance: String,
    /// Its points.
    pub points: Vec<HostPoint>,
}

/// `GET /v1/stats/host`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostStatsAnswer {
    /// The step, ms.
    pub step_ms: i64,
    /// The instances, sorted.
    pub instances: Vec<HostSeries>,
    /// Which sources served the answer (raw readings, rollups of which levels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceUsed>,
}
