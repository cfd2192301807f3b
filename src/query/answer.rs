//! The JSON answers of the query endpoints, as the API contract fixes them (fields may be added,
//! none renamed). The same types serialize on the server and deserialize in the CLI client.
//!
//! Times are RFC 3339 with milliseconds, in UTC (`2024-03-01T10:00:00.000Z`).

use serde::{Deserialize, Serialize};

use crate::model::{ApiReading, HostReading};

/// An API reading: the ingest fields, plus the id fixed at acceptance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiReadingOut {
    /// The reading's id.
    pub id: uuid::Uuid,
    /// The service.
    pub service: String,
    /// The instance.
    pub instance: String,
    /// The request method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The status code.
    pub code: u16,
    /// Duration in ms (for a summary, the mean).
    pub duration_ms: f64,
    /// Requests the reading stands for.
    pub count: u32,
    /// When the request (or the summarised interval) ended.
    pub timestamp: String,
}

impl From<&ApiReading> for ApiReadingOut {
    fn from(r: &ApiReading) -> Self {
        Self {
            id: r.id.uuid(),
            service: r.service.to_string(),
            instance: r.instance.to_string(),
            method: r.method.to_string(),
            path: r.path.to_string(),
            code: r.code.get(),
            duration_ms: r.duration_ms,
            count: r.count,
            timestamp: r.timestamp.to_rfc3339(),
        }
    }
}

/// A host reading: the gauges it carried, absent ones left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostReadingOut {
    /// The reading's id.
    pub id: uuid::Uuid,
    /// The service.
    pub service: String,
    /// The instance.
    pub instance: String,
    /// When the sample was taken.
    pub timestamp: String,
    /// CPU usage, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Memory in use, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_used_bytes: Option<i64>,
    /// Memory installed, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_total_bytes: Option<i64>,
    /// Disk in use, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_used_bytes: Option<i64>,
    /// Disk size, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_total_bytes: Option<i64>,
    /// Whether the instance considered itself available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<bool>,
    /// Heap of the watched process, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_bytes: Option<i64>,
    /// Bytes allocated since the previous sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_bytes: Option<i64>,
    /// Bytes freed since the previous sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freed_bytes: Option<i64>,
}

impl From<&HostReading> for HostReadingOut {
    fn from(r: &HostReading) -> Self {
        let g = &r.gauges;
        Self {
            id: r.id.uuid(),
            service: r.service.to_string(),
            instance: r.instance.to_string(),
            timestamp: r.timestamp.to_rfc3339(),
            cpu_percent: g.cpu_percent,
            mem_used_bytes: g.mem_used_bytes,
            mem_total_bytes: g.mem_total_bytes,
            disk_used_bytes: g.disk_used_bytes,
            disk_total_bytes: g.disk_total_bytes,
            available: g.available,
            heap_bytes: g.heap_bytes,
            allocated_bytes: g.allocated_bytes,
            freed_bytes: g.freed_bytes,
        }
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
    /// CPU usage, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<GaugeStats>,
    /// Memory in use, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_used_bytes: Option<GaugeStats>,
    /// Memory installed, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_total_bytes: Option<GaugeStats>,
    /// Disk in use, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_used_bytes: Option<GaugeStats>,
    /// Disk size, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_total_bytes: Option<GaugeStats>,
    /// Heap, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_bytes: Option<GaugeStats>,
    /// Bytes allocated since the previous sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_bytes: Option<GaugeStats>,
    /// Bytes freed since the previous sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freed_bytes: Option<GaugeStats>,
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
}
