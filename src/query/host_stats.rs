//! Host stats: host readings folded into one cell per (instance, step).
//!
//! Per cell: `samples` is the number of host readings; for each gauge, the mean and maximum
//! over the samples that carried it (a gauge no sample carried is left out); `availability` is
//! the share of samples reporting `available` that reported `true`. Steps are aligned as for
//! API stats, and memory is bounded by `max_points` cells.

use std::collections::{BTreeMap, HashMap};

use super::answer::{GaugeStats, HostPoint, HostSeries, HostStatsAnswer};
use super::params::{ParamErrors, Step, TimeRange};
use crate::model::{HostReading, InstanceName, TimestampMs};

/// Mean and maximum of one gauge, accumulated.
#[derive(Debug, Clone, Copy, Default)]
struct Gauge {
    samples: u64,
    sum: f64,
    max: f64,
}

impl Gauge {
    fn add(&mut self, value: Option<f64>) {
        if let Some(v) = value {
            self.max = if self.samples == 0 {
                v
            } else {
                self.max.max(v)
            };
            self.samples += 1;
            self.sum += v;
        }
    }

    fn stats(&self) -> Option<GaugeStats> {
        (self.samples > 0).then(|| GaugeStats {
            mean: self.sum / self.samples as f64,
            max: self.max,
        })
    }
}

/// The gauges of a host reading in a fixed order.
const GAUGES: usize = 8;

/// The running totals of one (instance, step).
#[derive(Debug, Default)]
struct Cell {
    samples: u64,
    gauges: [Gauge; GAUGES],
    available: u64,
    reported: u64,
}

impl Cell {
    /// A step without any reading: nothing reported it available.
    fn silent() -> Self {
        Self {
            reported: 1,
            ..Self::default()
        }
    }
}

/// Folds host readings into per-instance stats.
#[derive(Debug)]
pub struct HostStats {
    step: Step,
    /// The queried range: steps of it in which an instance sent nothing are reported as
    /// unavailable (silence is the absence of a heartbeat).
    range: TimeRange,
    max_points: usize,
    cells: HashMap<(InstanceName, i64), Cell>,
}

impl HostStats {
    /// An empty aggregation.
    pub fn new(step: Step, range: TimeRange, max_points: usize) -> Self {
        Self {
            step,
            range,
            max_points,
            cells: HashMap::new(),
        }
    }

    /// Adds one host reading; fails when it would open more than `max_points` cells.
    pub fn add(&mut self, r: &HostReading) -> Result<(), ParamErrors> {
        let key = (r.instance.clone(), self.step.start_of(r.timestamp).millis());
        if self.cells.len() >= self.max_points && !self.cells.contains_key(&key) {
            return Err(ParamErrors::one(
                "step",
                format!(
                    "the answer would hold more than {} points (instances × steps, --query-max-points); \
                     use a larger step or pick an instance",
                    self.max_points
                ),
            ));
        }
        let cell = self.cells.entry(key).or_default();
        let g = &r.gauges;
        let bytes = |v: Option<i64>| v.map(|b| b as f64);
        let values = [
            g.cpu_percent,
            bytes(g.mem_used_bytes),
            bytes(g.mem_total_bytes),
            bytes(g.disk_used_bytes),
            bytes(g.disk_total_bytes),
            bytes(g.heap_bytes),
            bytes(g.allocated_bytes),
            bytes(g.freed_bytes),
        ];
        for (gauge, value) in cell.gauges.iter_mut().zip(values) {
            gauge.add(value);
        }
        cell.samples += 1;
        if let Some(available) = g.available {
            cell.reported += 1;
            cell.available += u64::from(available);
        }
        Ok(())
    }

    /// The answer: instances sorted, points by time. Every step of the range in which an
    /// instance that was heard at all sent nothing gets a point with `samples: 0` and
    /// `availability: 0` — unless that would exceed `max_points`, then silent steps are absent.
    pub fn finish(self) -> HostStatsAnswer {
        let mut instances: BTreeMap<InstanceName, BTreeMap<i64, Cell>> = BTreeMap::new();
        for ((instance, t), cell) in self.cells {
            instances.entry(instance).or_default().insert(t, cell);
        }
        let first = self.step.start_of(self.range.from).millis();
        let last = self.step.start_of(self.range.to).millis();
        let steps = usize::try_from((last - first) / self.step.millis() + 1).unwrap_or(usize::MAX);
        if steps.saturating_mul(instances.len()) <= self.max_points {
            for cells in instances.values_mut() {
                for i in 0..steps as i64 {
                    cells
                        .entry(first + i * self.step.millis())
                        .or_insert_with(Cell::silent);
                }
            }
        }
        let instances = instances
            .into_iter()
            .map(|(instance, cells)| HostSeries {
                instance: instance.to_string(),
                points: cells.iter().map(|(t, cell)| point(*t, cell)).collect(),
            })
            .collect();
        HostStatsAnswer {
            step_ms: self.step.millis(),
            instances,
        }
    }
}

fn point(t: i64, cell: &Cell) -> HostPoint {
    let [cpu, mem_used, mem_total, disk_used, disk_total, heap, allocated, freed] =
        cell.gauges.map(|g| g.stats());
    HostPoint {
        t: TimestampMs::from_millis(t).to_rfc3339(),
        samples: cell.samples,
        availability: (cell.reported > 0).then(|| cell.available as f64 / cell.reported as f64),
        cpu_percent: cpu,
        mem_used_bytes: mem_used,
        mem_total_bytes: mem_total,
        disk_used_bytes: disk_used,
        disk_total_bytes: disk_total,
        heap_bytes: heap,
        allocated_bytes: allocated,
        freed_bytes: freed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostGauges, ReadingId, ServiceName};

    fn sample(at_ms: i64, cpu: Option<f64>, available: Option<bool>) -> HostReading {
        HostReading {
            id: ReadingId::new(),
            service: ServiceName::parse("svc").unwrap(),
            instance: InstanceName::parse("i-1").unwrap(),
            timestamp: TimestampMs::from_millis(at_ms),
            gauges: HostGauges {
                cpu_percent: cpu,
                available,
                ..HostGauges::default()
            },
        }
    }

    #[test]
    fn gauges_average_over_the_samples_that_carry_them() {
        let range = TimeRange {
            from: TimestampMs::from_millis(0),
            to: TimestampMs::from_millis(59_999),
        };
        let mut stats = HostStats::new(Step::parse("1m").unwrap(), range, 10);
        stats.add(&sample(0, Some(10.0), Some(true))).unwrap();
        stats.add(&sample(1, Some(30.0), Some(false))).unwrap();
        stats.add(&sample(2, None, None)).unwrap();
        let answer = stats.finish();
        let p = &answer.instances[0].points[0];
        assert_eq!(p.samples, 3);
        assert_eq!(
            p.cpu_percent,
            Some(GaugeStats {
                mean: 20.0,
                max: 30.0
            })
        );
        assert_eq!(p.availability, Some(0.5));
        assert_eq!(p.heap_bytes, None);
    }

    #[test]
    fn a_silent_step_is_reported_unavailable() {
        let range = TimeRange {
            from: TimestampMs::from_millis(0),
            to: TimestampMs::from_millis(3 * 60_000 - 1),
        };
        let mut stats = HostStats::new(Step::parse("1m").unwrap(), range, 10);
        stats.add(&sample(1_000, Some(10.0), Some(true))).unwrap();
        stats
            .add(&sample(2 * 60_000, Some(10.0), Some(true)))
            .unwrap();
        let points = &stats.finish().instances[0].points;
        let summary: Vec<(u64, Option<f64>)> =
            points.iter().map(|p| (p.samples, p.availability)).collect();
        assert_eq!(summary, [(1, Some(1.0)), (0, Some(0.0)), (1, Some(1.0))]);
    }
}
