//! Host and process gauges (the `system.*` and `process.*` semantic conventions) → the gauges
//! of one host reading per resource and request.
//!
//! Each metric is read at its own latest time in the request (a Collector batch may hold
//! several samples; the newest wins, older ones are understood, not rejected):
//!
//! | metric | points used | gauge |
//! | --- | --- | --- |
//! | `system.cpu.utilization` (ratio) | every point whose `cpu.mode` is not `idle`, summed | `cpu_percent` = 100 × sum (per core summed when points are per core) |
//! | `system.memory.usage` | `system.memory.state` = `used` (or no state) | `mem_used_bytes` |
//! | `system.memory.limit` | all | `mem_total_bytes` |
//! | `system.filesystem.usage` / `.limit` | the filesystem mounted at `/`, else the largest | `disk_used_bytes` (state `used`) / `disk_total_bytes` (limit, else all states summed) |
//! | `process.memory.usage` | all | `heap_bytes` (the process's resident memory, as the agent's `--pid`) |
//!
//! Memory and filesystem usage are UpDownCounters: a cumulative (or gauge) point is the current
//! level; a delta point is a change, not a level, and is refused.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Metric, NumberDataPoint,
};

use super::attrs;
use super::Context;
use crate::model::{HostGauges, TimestampMs};

/// The host metrics we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMetric {
    /// `system.cpu.utilization`
    Cpu,
    /// `system.memory.usage`
    MemoryUsage,
    /// `system.memory.limit`
    MemoryLimit,
    /// `system.filesystem.usage`
    FilesystemUsage,
    /// `system.filesystem.limit`
    FilesystemLimit,
    /// `process.memory.usage`
    ProcessMemory,
}

impl HostMetric {
    /// The host metric named `name`, if we read it.
    pub fn named(name: &str) -> Option<Self> {
        Some(match name {
            "system.cpu.utilization" => Self::Cpu,
            "system.memory.usage" => Self::MemoryUsage,
            "system.memory.limit" => Self::MemoryLimit,
            "system.filesystem.usage" => Self::FilesystemUsage,
            "system.filesystem.limit" => Self::FilesystemLimit,
            "process.memory.usage" => Self::ProcessMemory,
            _ => return None,
        })
    }
}

const CPU_MODE: [&str; 3] = ["cpu.mode", "system.cpu.state", "state"];
const MEMORY_STATE: [&str; 2] = ["system.memory.state", "state"];
const FS_STATE: [&str; 2] = ["system.filesystem.state", "state"];
const FS_MOUNT: [&str; 2] = ["system.filesystem.mountpoint", "mountpoint"];
const FS_DEVICE: [&str; 2] = ["system.device", "device"];

/// One filesystem's figures, as far as the request tells them.
#[derive(Debug, Default, Clone, Copy)]
struct Filesystem {
    used: Option<f64>,
    states: f64,
    limit: Option<f64>,
}

impl Filesystem {
    fn total(&self) -> f64 {
        self.limit.unwrap_or(self.states)
    }
}

/// The host gauges of one resource, gathered over a request.
#[derive(Debug, Default)]
pub struct HostSample {
    gauges: HostGauges,
    /// Filesystems by (mountpoint, device).
    filesystems: BTreeMap<(String, String), Filesystem>,
}

impl HostSample {
    /// Reads every point of `metric` (a [`HostMetric`]) into the sample.
    pub fn add(&mut self, ctx: &mut Context<'_>, kind: HostMetric, metric: &Metric) {
        let name = metric.name.as_str();
        let points = match &metric.data {
            Some(Data::Gauge(g)) => &g.data_points,
            Some(Data::Sum(s))
                if s.aggregation_temporality != AggregationTemporality::Delta as i32 =>
            {
                &s.data_points
            }
            Some(Data::Sum(s)) => {
                return ctx.rejected.reject(name, s.data_points.len() as u64, || {
                    "a delta sum is a change, not a level: export it with cumulative temporality"
                        .into()
                });
            }
            _ => {
                return ctx.rejected.reject(name, super::point_count(metric), || {
                    "must be a gauge or a sum".into()
                });
            }
        };
        let mut latest: Option<TimestampMs> = None;
        let mut valid: Vec<(&NumberDataPoint, f64)> = Vec::with_capacity(points.len());
        for p in points {
            match value(p).and_then(|v| Ok((ctx.point_time(p.time_unix_nano)?, v))) {
                Ok((at, v)) => {
                    ctx.reported(at);
                    latest = latest.max(Some(at));
                    valid.push((p, v));
                }
                Err(reason) => ctx.rejected.reject(name, 1, || reason),
            }
        }
        let Some(latest) = latest else { return };
        let current = valid
            .into_iter()
            .filter(|(p, _)| super::nanos_to_ms(p.time_unix_nano) == latest);
        match kind {
            HostMetric::Cpu => {
                let busy: f64 = current
                    .filter(|(p, _)| {
                        attrs::text(&p.attributes, &CPU_MODE).as_deref() != Some("idle")
                    })
                    .map(|(_, v)| v)
                    .sum();
                self.gauges.cpu_percent = Some(busy * 100.0);
            }
            HostMetric::MemoryUsage => {
                let used = current
                    .filter(|(p, _)| {
                        attrs::text(&p.attributes, &MEMORY_STATE).is_none_or(|s| s == "used")
                    })
                    .map(|(_, v)| v)
                    .sum();
                self.gauges.mem_used_bytes = Some(bytes(used));
            }
            HostMetric::MemoryLimit => {
                self.gauges.mem_total_bytes = Some(bytes(current.map(|(_, v)| v).sum()));
            }
            HostMetric::ProcessMemory => {
                self.gauges.heap_bytes = Some(bytes(current.map(|(_, v)| v).sum()));
            }
            HostMetric::FilesystemUsage | HostMetric::FilesystemLimit => {
                for (p, v) in current {
                    let fs = self
                        .filesystems
                        .entry(filesystem(&p.attributes))
                        .or_default();
                    if kind == HostMetric::FilesystemLimit {
                        *fs.limit.get_or_insert(0.0) += v;
                        continue;
                    }
                    fs.states += v;
                    if attrs::text(&p.attributes, &FS_STATE).is_none_or(|s| s == "used") {
                        *fs.used.get_or_insert(0.0) += v;
                    }
                }
            }
        }
    }

    /// The gauges read (`available` is the caller's: the resource reported).
    pub fn into_gauges(mut self) -> HostGauges {
        let root = self.filesystems.iter().find(|((mount, _), _)| mount == "/");
        let chosen = root.or_else(|| {
            self.filesystems
                .iter()
                .max_by(|(_, a), (_, b)| a.total().total_cmp(&b.total()))
        });
        if let Some((_, fs)) = chosen {
            self.gauges.disk_used_bytes = fs.used.map(bytes);
            let total = fs.total();
            self.gauges.disk_total_bytes = (total > 0.0).then(|| bytes(total));
        }
        self.gauges
    }
}

fn filesystem(attributes: &[KeyValue]) -> (String, String) {
    let get = |keys: &[&str]| {
        attrs::text(attributes, keys)
            .unwrap_or_default()
            .into_owned()
    };
    (get(&FS_MOUNT), get(&FS_DEVICE))
}

/// A point's value: finite and not negative (the gauges we fill are never negative).
fn value(p: &NumberDataPoint) -> Result<f64, String> {
    let v = match p.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        Some(number_data_point::Value::AsInt(v)) => v as f64,
        None => return Err("a data point without a value".into()),
    };
    if !v.is_finite() {
        return Err(format!("{v} is not a finite number"));
    }
    if v < 0.0 {
        return Err(format!("{v} is negative"));
    }
    Ok(v)
}

/// Whole bytes (exporters may send byte counts as doubles).
fn bytes(v: f64) -> i64 {
    v.round() as i64
}
