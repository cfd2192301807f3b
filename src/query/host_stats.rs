//! Host stats: host readings folded into one cell per (instance, step).
//!
//! Per cell: `samples` is the number of host readings; for each numeric gauge the host kind
//! declares, the mean and maximum over the samples that carried it (a gauge no sample carried
//! is left out); `availability` is the share of samples reporting `available` that reported
//! `true`. Cells are kept by [`StepCells`], as for API stats.

use std::collections::BTreeMap;

use super::answer::{GaugeStats, HostPoint, HostSeries, HostStatsAnswer};
use super::cells::StepCells;
use super::params::{ParamErrors, Step, TimeRange};
use crate::model::kind::{FieldType, MAX_FIELDS};
use crate::model::{HostReading, InstanceName, ReadingKind, TimestampMs};
use crate::rollup::HostAgg;

/// Mean and maximum of one gauge, accumulated.
#[derive(Debug, Clone, Copy, Default)]
struct Gauge {
    samples: u64,
    sum: f64,
    max: f64,
}

impl Gauge {
    fn add(&mut self, v: f64) {
        self.max = if self.samples == 0 {
            v
        } else {
            self.max.max(v)
        };
        self.samples += 1;
        self.sum += v;
    }

    fn stats(&self) -> Option<GaugeStats> {
        (self.samples > 0).then(|| GaugeStats {
            mean: self.sum / self.samples as f64,
            max: self.max,
        })
    }
}

/// Whether field `ty` is a gauge averaged over a step (a number).
fn is_gauge(ty: FieldType) -> bool {
    matches!(ty, FieldType::Double | FieldType::BigInt | FieldType::Int)
}

/// The running totals of one (instance, step).
#[derive(Debug, Default)]
struct Cell {
    samples: u64,
    /// By field index of the host kind; only numeric fields are used.
    gauges: [Gauge; MAX_FIELDS],
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
    /// The queried range: steps of it in which an instance sent nothing are reported as
    /// unavailable (silence is the absence of a heartbeat).
    range: TimeRange,
    cells: StepCells<InstanceName, Cell>,
}

impl HostStats {
    /// An empty aggregation.
    pub fn new(step: Step, range: TimeRange, max_points: usize) -> Self {
        Self {
            range,
            cells: StepCells::new(step, max_points),
        }
    }

    /// The cell of `instance` for the step holding `at`.
    fn cell(&mut self, instance: &InstanceName, at: TimestampMs) -> Result<&mut Cell, ParamErrors> {
        let max_points = self.cells.max_points();
        self.cells.cell(instance.clone(), at).ok_or_else(|| {
            ParamErrors::one(
                "step",
                format!(
                    "the answer would hold more than {max_points} points (instances × \
                     steps, --query-max-points); use a larger step or pick an instance"
                ),
            )
        })
    }

    /// Adds one host reading; fails when it would open more than `max_points` cells.
    pub fn add(&mut self, r: &HostReading) -> Result<(), ParamErrors> {
        let cell = self.cell(&r.instance, r.timestamp)?;
        for (i, field) in HostReading::INFO.fields.iter().enumerate() {
            if let Some(v) = r.value(i).number().filter(|_| is_gauge(field.ty)) {
                cell.gauges[i].add(v);
            }
        }
        cell.samples += 1;
        if let Some(available) = r.gauges.available {
            cell.reported += 1;
            cell.available += u64::from(available);
        }
        Ok(())
    }

    /// Adds a rollup aggregate of `instance` in the slot starting at `slot`; fails like
    /// [`HostStats::add`].
    pub fn add_rollup(
        &mut self,
        instance: &InstanceName,
        slot: TimestampMs,
        agg: &HostAgg,
    ) -> Result<(), ParamErrors> {
        let cell = self.cell(instance, slot)?;
        for (gauge, rolled) in cell.gauges.iter_mut().zip(&agg.gauges) {
            if rolled.samples > 0 {
                gauge.max = if gauge.samples == 0 {
                    rolled.max
                } else {
                    gauge.max.max(rolled.max)
                };
                gauge.samples += rolled.samples;
                gauge.sum += rolled.sum;
            }
        }
        cell.samples += agg.samples;
        cell.available += agg.available;
        cell.reported += agg.reported;
        Ok(())
    }

    /// The answer: instances sorted, points by time. Every step of the range in which an
    /// instance that was heard at all sent nothing gets a point with `samples: 0` and
    /// `availability: 0` — unless that would exceed `max_points`, then silent steps are absent.
    pub fn finish(self) -> HostStatsAnswer {
        let step = self.cells.step();
        let max_points = self.cells.max_points();
        let mut instances = self.cells.into_groups();
        let first = step.start_of(self.range.from).millis();
        let last = step.start_of(self.range.to).millis();
        let steps = usize::try_from((last - first) / step.millis() + 1).unwrap_or(usize::MAX);
        if steps.saturating_mul(instances.len()) <= max_points {
            for cells in instances.values_mut() {
                for i in 0..steps as i64 {
                    cells
                        .entry(first + i * step.millis())
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
            step_ms: step.millis(),
            instances,
            source: None,
        }
    }
}

fn point(t: i64, cell: &Cell) -> HostPoint {
    let gauges: BTreeMap<String, GaugeStats> = HostReading::INFO
        .fields
        .iter()
        .zip(&cell.gauges)
        .filter_map(|(field, gauge)| Some((field.name.to_owned(), gauge.stats()?)))
        .collect();
    HostPoint {
        t: TimestampMs::from_millis(t).to_rfc3339(),
        samples: cell.samples,
        availability: (cell.reported > 0).then(|| cell.available as f64 / cell.reported as f64),
        gauges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reading::sample;
    use crate::model::HostGauges;

    fn sample(at_ms: i64, cpu: Option<f64>, available: Option<bool>) -> HostReading {
        HostReading {
            timestamp: TimestampMs::from_millis(at_ms),
            gauges: HostGauges {
                cpu_percent: cpu,
                available,
                ..HostGauges::default()
            },
            ..sample::host()
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
            p.gauges.get("cpu_percent"),
            Some(&GaugeStats {
                mean: 20.0,
                max: 30.0
            })
        );
        assert_eq!(p.availability, Some(0.5));
        assert_eq!(p.gauges.get("heap_bytes"), None);
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
