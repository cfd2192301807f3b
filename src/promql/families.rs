//! The virtual metric families: how API and host readings look to PromQL.
//!
//! Names follow the OpenTelemetry-to-Prometheus conventions (`http.server.request.duration` in
//! seconds becomes the histogram `http_server_request_duration_seconds`), so dashboards written
//! for OpenTelemetry-instrumented services fit.
//!
//! | family | type | labels | one sample per |
//! | --- | --- | --- | --- |
//! | `http_server_request_duration_seconds_count` | counter | service, job, instance, method, path, code | API reading (its `count`) |
//! | `http_server_request_duration_seconds_sum` | counter | same | API reading (`count × duration_ms / 1000`) |
//! | `http_server_request_duration_seconds_bucket` | counter | same + `le` | API reading, in every `le` series (`count` where `duration ≤ le`, else 0) |
//! | `host_<gauge>` | gauge | service, job, instance | host reading carrying that gauge |
//!
//! Invariant: `job` always equals `service`; every API series has all six labels, every host
//! series has three; the `le` bounds are [`LE_SECONDS`] plus `+Inf`, the same for every series.

use crate::model::HostGauges;

/// The upper bounds of the duration buckets, seconds: OpenTelemetry's default boundaries for
/// `http.server.request.duration` (5 ms to 10 s). A `+Inf` bucket follows.
pub const LE_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The histogram's base name, as the metadata endpoint lists it.
pub const DURATION_HISTOGRAM: &str = "http_server_request_duration_seconds";

/// Which readings a family comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// API readings.
    Api,
    /// Host readings.
    Host,
}

/// One host gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostField {
    /// `cpu_percent`.
    Cpu,
    /// `mem_used_bytes`.
    MemoryUsed,
    /// `mem_total_bytes`.
    MemoryTotal,
    /// `disk_used_bytes`.
    DiskUsed,
    /// `disk_total_bytes`.
    DiskTotal,
    /// `available`, as 1 or 0.
    Available,
    /// `heap_bytes`.
    Heap,
    /// `allocated_bytes`.
    Allocated,
    /// `freed_bytes`.
    Freed,
}

impl HostField {
    /// The gauge's value in a host reading, when the reading carries it.
    pub fn value(self, g: &HostGauges) -> Option<f64> {
        let bytes = |v: Option<i64>| v.map(|b| b as f64);
        match self {
            HostField::Cpu => g.cpu_percent,
            HostField::MemoryUsed => bytes(g.mem_used_bytes),
            HostField::MemoryTotal => bytes(g.mem_total_bytes),
            HostField::DiskUsed => bytes(g.disk_used_bytes),
            HostField::DiskTotal => bytes(g.disk_total_bytes),
            HostField::Available => g.available.map(|a| f64::from(u8::from(a))),
            HostField::Heap => bytes(g.heap_bytes),
            HostField::Allocated => bytes(g.allocated_bytes),
            HostField::Freed => bytes(g.freed_bytes),
        }
    }
}

/// A virtual metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `http_server_request_duration_seconds_count`.
    RequestCount,
    /// `http_server_request_duration_seconds_sum`.
    RequestSum,
    /// `http_server_request_duration_seconds_bucket`.
    RequestBucket,
    /// `host_<gauge>`.
    Host(HostField),
}

/// The labels of API series (besides `__name__` and `le`).
pub const API_LABELS: [&str; 6] = ["code", "instance", "job", "method", "path", "service"];
/// The labels of host series (besides `__name__`).
pub const HOST_LABELS: [&str; 3] = ["instance", "job", "service"];

impl Family {
    /// Every family, in the order the metadata endpoint lists them.
    pub const ALL: [Family; 12] = [
        Family::RequestBucket,
        Family::RequestCount,
        Family::RequestSum,
        Family::Host(HostField::Allocated),
        Family::Host(HostField::Available),
        Family::Host(HostField::Cpu),
        Family::Host(HostField::DiskTotal),
        Family::Host(HostField::DiskUsed),
        Family::Host(HostField::Freed),
        Family::Host(HostField::Heap),
        Family::Host(HostField::MemoryTotal),
        Family::Host(HostField::MemoryUsed),
    ];

    /// The metric name.
    pub fn name(self) -> &'static str {
        match self {
            Family::RequestCount => "http_server_request_duration_seconds_count",
            Family::RequestSum => "http_server_request_duration_seconds_sum",
            Family::RequestBucket => "http_server_request_duration_seconds_bucket",
            Family::Host(field) => match field {
                HostField::Cpu => "host_cpu_percent",
                HostField::MemoryUsed => "host_memory_used_bytes",
                HostField::MemoryTotal => "host_memory_total_bytes",
                HostField::DiskUsed => "host_disk_used_bytes",
                HostField::DiskTotal => "host_disk_total_bytes",
                HostField::Available => "host_available",
                HostField::Heap => "host_heap_bytes",
                HostField::Allocated => "host_allocated_bytes",
                HostField::Freed => "host_freed_bytes",
            },
        }
    }

    /// The readings it is computed from.
    pub fn kind(self) -> Kind {
        match self {
            Family::Host(_) => Kind::Host,
            _ => Kind::Api,
        }
    }

    /// True for counters (the request families), false for gauges.
    pub fn is_counter(self) -> bool {
        self.kind() == Kind::Api
    }

    /// Its labels besides `__name__`.
    pub fn label_names(self) -> &'static [&'static str] {
        match self {
            Family::RequestBucket => {
                &["code", "instance", "job", "le", "method", "path", "service"]
            }
            Family::RequestCount | Family::RequestSum => &API_LABELS,
            Family::Host(_) => &HOST_LABELS,
        }
    }
}

/// What `/api/v1/metadata` says of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// The metric (for the histogram: its base name).
    pub metric: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// One sentence.
    pub help: &'static str,
    /// The unit, or `""`.
    pub unit: &'static str,
}

/// The metadata of every metric, sorted by name.
pub const METADATA: [Metadata; 10] = [
    Metadata {
        metric: "host_allocated_bytes",
        kind: "gauge",
        help: "Bytes the watched process allocated since the previous host sample (RSS growth).",
        unit: "bytes",
    },
    Metadata {
        metric: "host_available",
        kind: "gauge",
        help: "1 when the instance reported itself available in the host sample, else 0.",
        unit: "",
    },
    Metadata {
        metric: "host_cpu_percent",
        kind: "gauge",
        help: "CPU usage of the host, 0 to 100 per core summed.",
        unit: "percent",
    },
    Metadata {
        metric: "host_disk_total_bytes",
        kind: "gauge",
        help: "Size of the disk the agent reports.",
        unit: "bytes",
    },
    Metadata {
        metric: "host_disk_used_bytes",
        kind: "gauge",
        help: "Disk space in use.",
        unit: "bytes",
    },
    Metadata {
        metric: "host_freed_bytes",
        kind: "gauge",
        help: "Bytes the watched process freed since the previous host sample (RSS shrinking).",
        unit: "bytes",
    },
    Metadata {
        metric: "host_heap_bytes",
        kind: "gauge",
        help: "Resident memory of the watched process.",
        unit: "bytes",
    },
    Metadata {
        metric: "host_memory_total_bytes",
        kind: "gauge",
        help: "Memory installed on the host.",
        unit: "bytes",
    },
    Metadata {
        metric: "host_memory_used_bytes",
        kind: "gauge",
        help: "Memory in use on the host.",
        unit: "bytes",
    },
    Metadata {
        metric: DURATION_HISTOGRAM,
        kind: "histogram",
        help: "Duration of HTTP server requests, from the API readings (a reading of count n \
               counts n requests of its mean duration).",
        unit: "seconds",
    },
];

/// A bucket bound as the `le` label shows it (`0.005`, `1`, `+Inf`), formatted like Prometheus
/// client libraries do.
pub fn le_label(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".to_owned()
    } else {
        bound.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_le_labels_look_like_prometheus() {
        let mut names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Family::ALL.len());
        assert_eq!(le_label(1.0), "1");
        assert_eq!(le_label(0.005), "0.005");
        assert_eq!(le_label(f64::INFINITY), "+Inf");
        assert!(METADATA.windows(2).all(|w| w[0].metric < w[1].metric));
    }
}
