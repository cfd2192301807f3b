//! node-exporter and process metrics of an exposition → the scrape's host reading.
//!
//! | gauge | from |
//! | --- | --- |
//! | `available` | `true`: the scrape succeeded (a failed scrape records `false`, see `crate::scrape`) |
//! | `cpu_percent` | `node_cpu_seconds_total`: 100 × CPUs × Δbusy / Δall modes (busy = all but `idle` and `iowait`), as the host agent reports it (up to 100 × cores); without it, `process_cpu_seconds_total`: 100 × Δcpu seconds / Δwall seconds |
//! | `mem_total_bytes`, `mem_used_bytes` | `node_memory_MemTotal_bytes`, and that less `node_memory_MemAvailable_bytes` |
//! | `disk_total_bytes`, `disk_used_bytes` | `node_filesystem_size_bytes`, and that less `node_filesystem_avail_bytes`, of the job's mount point (default `/`) |
//! | `heap_bytes` | `process_resident_memory_bytes` (the RSS, as the host agent reports it) |
//!
//! CPU figures are rates of running totals: the first scrape primes them, and a total that went
//! down (a reboot, a restarted process) skips one scrape's figure rather than report the
//! average since the restart.

use std::collections::BTreeSet;

use super::parse::Exposition;
use super::Origin;
use crate::foreign::cumulative::{Cumulative, Delta, FirstPoint, Tracker};
use crate::model::{HostGauges, HostReading, ReadingId, TimestampMs};

/// Host options of a job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostOptions {
    /// The mount point whose filesystem is reported as the disk.
    pub mountpoint: String,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            mountpoint: "/".to_owned(),
        }
    }
}

/// Busy and total CPU seconds, every CPU summed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuTimes {
    busy: f64,
    all: f64,
}

impl Cumulative for CpuTimes {
    fn since(&self, earlier: &Self) -> Option<Self> {
        (self.busy >= earlier.busy && self.all >= earlier.all).then_some(CpuTimes {
            busy: self.busy - earlier.busy,
            all: self.all - earlier.all,
        })
    }
}

/// CPU seconds of a process, and when they were read.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Timed {
    seconds: f64,
    at_ms: f64,
}

impl Cumulative for Timed {
    fn since(&self, earlier: &Self) -> Option<Self> {
        (self.seconds >= earlier.seconds).then_some(Timed {
            seconds: self.seconds - earlier.seconds,
            at_ms: self.at_ms - earlier.at_ms,
        })
    }
}

/// The last CPU totals of a target.
#[derive(Debug, Clone)]
pub struct HostState {
    node_cpu: Tracker<(), CpuTimes>,
    process_cpu: Tracker<(), Timed>,
}

impl Default for HostState {
    fn default() -> Self {
        Self::new()
    }
}

impl HostState {
    /// No totals yet.
    pub fn new() -> Self {
        Self {
            node_cpu: Tracker::new(1, FirstPoint::Prime),
            process_cpu: Tracker::new(1, FirstPoint::Prime),
        }
    }

    /// Forgets totals not seen since `cutoff`.
    pub fn forget_idle(&mut self, cutoff: TimestampMs) {
        self.node_cpu.forget_idle(cutoff);
        self.process_cpu.forget_idle(cutoff);
    }

    /// The host reading of a successful scrape; marks the samples it used in `used`.
    pub fn convert(
        &mut self,
        exposition: &Exposition<'_>,
        at: TimestampMs,
        origin: &Origin,
        options: &HostOptions,
        used: &mut [bool],
    ) -> HostReading {
        let mut gauges = HostGauges {
            available: Some(true),
            ..HostGauges::default()
        };
        let mut cpus = BTreeSet::new();
        let mut node_cpu: Option<CpuTimes> = None;
        let (mut mem_total, mut mem_available) = (None, None);
        let (mut fs_size, mut fs_avail) = (None, None);
        let mut process_cpu = None;
        for (i, sample) in exposition.samples.iter().enumerate() {
            let v = sample.value;
            let on_mount = || sample.label("mountpoint") == Some(options.mountpoint.as_str());
            match sample.name {
                "node_cpu_seconds_total" if v.is_finite() => {
                    let times = node_cpu.get_or_insert(CpuTimes {
                        busy: 0.0,
                        all: 0.0,
                    });
                    times.all += v;
                    if !matches!(sample.label("mode"), Some("idle" | "iowait")) {
                        times.busy += v;
                    }
                    cpus.extend(sample.label("cpu"));
                }
                "node_memory_MemTotal_bytes" => mem_total = bytes(v),
                "node_memory_MemAvailable_bytes" => mem_available = bytes(v),
                "node_filesystem_size_bytes" if on_mount() => {
                    fs_size = fs_size.or(bytes(v));
                }
                "node_filesystem_avail_bytes" if on_mount() => {
                    fs_avail = fs_avail.or(bytes(v));
                }
                "process_resident_memory_bytes" => gauges.heap_bytes = bytes(v),
                "process_cpu_seconds_total" if v.is_finite() => process_cpu = Some(v),
                _ => continue,
            }
            used[i] = true;
        }
        gauges.mem_total_bytes = mem_total;
        gauges.mem_used_bytes = mem_total.zip(mem_available).map(|(t, a)| (t - a).max(0));
        gauges.disk_total_bytes = fs_size;
        gauges.disk_used_bytes = fs_size.zip(fs_avail).map(|(s, a)| (s - a).max(0));
        gauges.cpu_percent = self.node_cpu_percent(node_cpu, cpus.len(), at);
        let process_percent = self.process_cpu_percent(process_cpu, at);
        gauges.cpu_percent = gauges.cpu_percent.or(process_percent);
        HostReading {
            id: ReadingId::new(),
            service: origin.service.clone(),
            instance: origin.instance.clone(),
            timestamp: at,
            gauges,
        }
    }

    fn node_cpu_percent(
        &mut self,
        times: Option<CpuTimes>,
        cpus: usize,
        at: TimestampMs,
    ) -> Option<f64> {
        match self.node_cpu.observe(&(), None, times?, at) {
            Delta::Increase(d) if d.all > 0.0 => Some(100.0 * cpus.max(1) as f64 * d.busy / d.all),
            _ => None,
        }
    }

    fn process_cpu_percent(&mut self, seconds: Option<f64>, at: TimestampMs) -> Option<f64> {
        let point = Timed {
            seconds: seconds?,
            at_ms: at.millis() as f64,
        };
        match self.process_cpu.observe(&(), None, point, at) {
            Delta::Increase(d) if d.at_ms > 0.0 => Some(100.0 * d.seconds * 1000.0 / d.at_ms),
            _ => None,
        }
    }
}

/// A byte gauge as a whole, non-negative number.
fn bytes(value: f64) -> Option<i64> {
    (value.is_finite() && value >= 0.0 && value < i64::MAX as f64).then(|| value.round() as i64)
}
