//! API stats: readings folded into one cell per (group, step).
//!
//! Per cell, exactly: `count` is the sum of the readings' `count`; `rate = count / step
//! seconds`; `error_rate` and `client_error_rate` are the shares of those requests answered
//! 5xx and 4xx; `mean_ms = Σ(duration × count) / count`; `max_ms` the longest duration. The
//! percentiles come from a [`Sketch`] (request-weighted, relative error ≤ 1%).
//!
//! Cells are kept by [`StepCells`] (aligned steps, at most `max_points` cells, in any order of
//! arrival). The first and last step may be only partly inside `[from, to]` and hold only the
//! readings that are, while their rate is still per full step.

use super::answer::{GroupKeyOut, StatsAnswer, StatsGroup, StatsPoint};
use super::cells::StepCells;
use super::params::{ApiFilter, ParamErrors, Step};
use super::requests::GroupBy;
use super::sketch::Sketch;
#[cfg(test)]
use crate::model::ApiReading;
use crate::model::{ApiPath, HttpMethod, InstanceName, StatusCode, TimestampMs};
use crate::rollup::{ApiAgg, RollupSeries};
use crate::store::ApiSeriesColumns;

/// The grouped fields of a reading; ungrouped ones are `None`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct GroupKey {
    instance: Option<InstanceName>,
    method: Option<HttpMethod>,
    path: Option<ApiPath>,
    code: Option<StatusCode>,
}

/// The running totals of one (group, step).
#[derive(Debug, Default)]
struct Cell {
    count: u64,
    server_errors: u64,
    client_errors: u64,
    duration_sum: f64,
    sketch: Sketch,
}

/// The rows of one step of one series, by code (a handful at most).
type Run = Vec<(StatusCode, Vec<(f64, u64)>)>;

/// Folds readings into stats.
#[derive(Debug)]
pub struct ApiStats {
    group_by: GroupBy,
    cells: StepCells<GroupKey, Cell>,
    /// [`ApiStats::add_columns`]' buffer, kept between calls (emptied, not dropped) so that a
    /// scan of thousands of series entries does not allocate and grow one per entry.
    run: Run,
}

impl ApiStats {
    /// An empty aggregation.
    pub fn new(step: Step, group_by: GroupBy, max_points: usize) -> Self {
        Self {
            group_by,
            cells: StepCells::new(step, max_points),
            run: Run::new(),
        }
    }

    /// Adds one reading; fails when it would open more than `max_points` cells. The
    /// row-at-a-time reference [`ApiStats::add_columns`] is tested against.
    #[cfg(test)]
    pub fn add(&mut self, r: &ApiReading) -> Result<(), ParamErrors> {
        let g = self.group_by;
        let key = GroupKey {
            instance: g.instance.then(|| r.instance.clone()),
            method: g.method.then(|| r.method.clone()),
            path: g.path.then(|| r.path.clone()),
            code: g.code.then_some(r.code),
        };
        let (max_points, group_by) = (self.cells.max_points(), self.group_by);
        let cell = self
            .cells
            .cell(key, r.timestamp)
            .ok_or_else(|| too_many_points(max_points, group_by))?;
        let count = u64::from(r.count);
        cell.count += count;
        if r.code.is_server_error() {
            cell.server_errors += count;
        } else if r.code.is_client_error() {
            cell.client_errors += count;
        }
        cell.duration_sum += r.duration_ms * count as f64;
        cell.sketch.add(r.duration_ms, count);
        Ok(())
    }

    /// Adds the rows of one series that pass `filter`, as [`ApiStats::add`] would add each as
    /// a reading, with the same cells and totals; fails like it. The series' names are
    /// compared and grouped once, and each cell is looked up once per run of rows of the same
    /// step and code rather than once per row.
    pub fn add_columns(
        &mut self,
        series: &ApiSeriesColumns,
        filter: &ApiFilter,
    ) -> Result<(), ParamErrors> {
        if !filter.matches_series(&series.instance, &series.method, &series.path) {
            return Ok(());
        }
        let g = self.group_by;
        let base = GroupKey {
            instance: g.instance.then(|| series.instance.clone()),
            method: g.method.then(|| series.method.clone()),
            path: g.path.then(|| series.path.clone()),
            code: None,
        };
        let step = self.cells.step();
        // The rows of the current step, by code; emptied, not dropped, between steps and
        // between calls so that their room is reused.
        let mut run = std::mem::take(&mut self.run);
        let folded = self.fold_series(series, filter, &base, step, &mut run);
        // A failed fold may leave rows behind; they belong to no later series.
        run.iter_mut().for_each(|(_, rows)| rows.clear());
        self.run = run;
        folded
    }

    /// The body of [`ApiStats::add_columns`], with its run buffer.
    fn fold_series(
        &mut self,
        series: &ApiSeriesColumns,
        filter: &ApiFilter,
        base: &GroupKey,
        step: Step,
        run: &mut Run,
    ) -> Result<(), ParamErrors> {
        let mut run_step: Option<i64> = None;
        for i in 0..series.len() {
            let code = series.codes[i];
            if !filter.matches_code(code) {
                continue;
            }
            let at = series.timestamps[i];
            let start = step.start_of(at).millis();
            if run_step != Some(start) {
                if let Some(t) = run_step {
                    self.add_run(base, t, run)?;
                }
                run_step = Some(start);
            }
            let row = (series.durations_ms[i], u64::from(series.counts[i]));
            match run.iter_mut().find(|(c, _)| *c == code) {
                Some((_, rows)) => rows.push(row),
                None => run.push((code, vec![row])),
            }
        }
        if let Some(t) = run_step {
            self.add_run(base, t, run)?;
        }
        Ok(())
    }

    /// Adds the rows of one step (starting at `t`) of one series, by code, to their cells.
    fn add_run(
        &mut self,
        base: &GroupKey,
        t: i64,
        run: &mut [(StatusCode, Vec<(f64, u64)>)],
    ) -> Result<(), ParamErrors> {
        let (max_points, group_by) = (self.cells.max_points(), self.group_by);
        for (code, rows) in run.iter_mut().filter(|(_, rows)| !rows.is_empty()) {
            let code = *code;
            let key = GroupKey {
                code: group_by.code.then_some(code),
                ..base.clone()
            };
            let cell = self
                .cells
                .cell(key, TimestampMs::from_millis(t))
                .ok_or_else(|| too_many_points(max_points, group_by))?;
            let count: u64 = rows.iter().map(|(_, c)| c).sum();
            cell.count += count;
            if code.is_server_error() {
                cell.server_errors += count;
            } else if code.is_client_error() {
                cell.client_errors += count;
            }
            for (duration, count) in rows.iter() {
                cell.duration_sum += duration * *count as f64;
            }
            cell.sketch.add_all(rows);
            rows.clear();
        }
        Ok(())
    }

    /// Adds a rollup aggregate of `series` in the slot starting at `slot` (the slot lies in
    /// one step); fails like [`ApiStats::add`].
    pub fn add_rollup(
        &mut self,
        series: &RollupSeries,
        slot: TimestampMs,
        agg: &ApiAgg,
    ) -> Result<(), ParamErrors> {
        let g = self.group_by;
        let key = GroupKey {
            instance: g.instance.then(|| series.instance.clone()),
            method: g.method.then(|| series.method.clone()).flatten(),
            path: g.path.then(|| series.path.clone()).flatten(),
            code: g.code.then_some(series.code).flatten(),
        };
        let (max_points, group_by) = (self.cells.max_points(), self.group_by);
        let cell = self
            .cells
            .cell(key, slot)
            .ok_or_else(|| too_many_points(max_points, group_by))?;
        cell.count += agg.count;
        cell.server_errors += agg.server_errors;
        cell.client_errors += agg.client_errors;
        cell.duration_sum += agg.duration_sum;
        cell.sketch.merge(&agg.sketch);
        Ok(())
    }

    /// The answer: groups sorted by key, points by time.
    pub fn finish(self) -> StatsAnswer {
        let step_ms = self.cells.step().millis();
        let step_seconds = step_ms as f64 / 1000.0;
        let groups = self
            .cells
            .into_groups()
            .into_iter()
            .map(|(key, cells)| StatsGroup {
                key: GroupKeyOut {
                    instance: key.instance.map(|i| i.to_string()),
                    method: key.method.map(|m| m.to_string()),
                    path: key.path.map(|p| p.to_string()),
                    code: key.code.map(StatusCode::get),
                },
                points: cells
                    .iter()
                    .map(|(t, cell)| point(*t, cell, step_seconds))
                    .collect(),
            })
            .collect();
        StatsAnswer {
            step_ms,
            groups,
            source: None,
        }
    }
}

fn too_many_points(max_points: usize, group_by: GroupBy) -> ParamErrors {
    let problem = format!(
        "the answer would hold more than {max_points} points (groups × steps, \
         --query-max-points); use a larger step, fewer groups or filters"
    );
    let field = if group_by.any() { "group_by" } else { "step" };
    ParamErrors::one(field, problem)
}

fn point(t: i64, cell: &Cell, step_seconds: f64) -> StatsPoint {
    let count = cell.count as f64;
    let quantile = |per_mille| cell.sketch.quantile(per_mille).unwrap_or(0.0);
    StatsPoint {
        t: TimestampMs::from_millis(t).to_rfc3339(),
        count: cell.count,
        rate: count / step_seconds,
        error_rate: cell.server_errors as f64 / count,
        client_error_rate: cell.client_errors as f64 / count,
        mean_ms: cell.duration_sum / count,
        p50_ms: quantile(500),
        p90_ms: quantile(900),
        p99_ms: quantile(990),
        max_ms: cell.sketch.max().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ReadingId, ServiceName};

    fn reading(path: &str, code: i64, duration_ms: f64, count: u32, at_ms: i64) -> ApiReading {
        ApiReading {
            id: ReadingId::new(),
            service: ServiceName::parse("svc").unwrap(),
            instance: InstanceName::parse("i-1").unwrap(),
            method: HttpMethod::parse("GET").unwrap(),
            path: ApiPath::parse(path).unwrap(),
            code: StatusCode::parse(code).unwrap(),
            duration_ms,
            count,
            timestamp: TimestampMs::from_millis(at_ms),
        }
    }

    #[test]
    fn counts_rates_and_error_shares_are_exact_per_group_and_step() {
        let group_by = GroupBy::parse("path").unwrap();
        let mut stats = ApiStats::new(Step::parse("1m").unwrap(), group_by, 100);
        stats.add(&reading("/a", 200, 10.0, 3, 0)).unwrap();
        stats.add(&reading("/a", 503, 30.0, 1, 59_999)).unwrap();
        stats.add(&reading("/a", 404, 1.0, 1, 60_000)).unwrap();
        stats.add(&reading("/b", 200, 5.0, 2, 1)).unwrap();
        let answer = stats.finish();
        assert_eq!(answer.step_ms, 60_000);
        assert_eq!(answer.groups.len(), 2);
        let a = &answer.groups[0];
        assert_eq!(a.key.path.as_deref(), Some("/a"));
        assert_eq!(a.key.instance, None);
        let first = &a.points[0];
        assert_eq!(first.t, "1970-01-01T00:00:00.000Z");
        assert_eq!((first.count, first.rate), (4, 4.0 / 60.0));
        assert_eq!(first.error_rate, 0.25);
        assert_eq!(first.mean_ms, 15.0);
        assert_eq!(first.max_ms, 30.0);
        assert_eq!(a.points[1].client_error_rate, 1.0);
    }

    /// Readings of 6 series (2 instances × 3 paths), mixed codes and counts, 1 ms to 3 min
    /// apart.
    fn mixed(n: usize) -> Vec<ApiReading> {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut at = 1_000_000;
        (0..n)
            .map(|i| {
                at += rng.i64(1..180_000);
                let code = [200, 200, 200, 201, 404, 500, 503][rng.usize(0..7)];
                let path = ["/a", "/b", "/c"][i % 3];
                ApiReading {
                    instance: InstanceName::parse(&format!("i-{}", i % 2)).unwrap(),
                    ..reading(path, code, rng.f64() * 900.0, rng.u32(1..4), at)
                }
            })
            .collect()
    }

    /// `readings` as the projected read gives them: grouped by series, in no set order.
    fn by_series(readings: &[ApiReading]) -> Vec<ApiSeriesColumns> {
        let mut out: Vec<ApiSeriesColumns> = Vec::new();
        for r in readings.iter().rev() {
            let at = out.iter().position(|s| {
                (&s.instance, &s.method, &s.path) == (&r.instance, &r.method, &r.path)
            });
            let at = at.unwrap_or_else(|| {
                let series =
                    ApiSeriesColumns::new(r.instance.clone(), r.method.clone(), r.path.clone());
                out.push(series);
                out.len() - 1
            });
            out[at].push(r.timestamp, r.code, r.duration_ms, r.count);
        }
        out
    }

    #[test]
    fn the_columnar_fold_answers_as_one_reading_at_a_time() {
        let readings = mixed(2_000);
        let series = by_series(&readings);
        let filters = [
            ApiFilter::default(),
            ApiFilter {
                code: Some(StatusCode::parse(200).unwrap()),
                ..ApiFilter::default()
            },
            ApiFilter {
                instance: Some(InstanceName::parse("i-1").unwrap()),
                path: Some(ApiPath::parse("/b").unwrap()),
                ..ApiFilter::default()
            },
        ];
        for group_by in [
            None,
            Some("path"),
            Some("path,code"),
            Some("instance,method,path,code"),
        ] {
            for step in ["1m", "1h"] {
                for filter in &filters {
                    let group_by =
                        group_by.map_or_else(GroupBy::default, |g| GroupBy::parse(g).unwrap());
                    let step = Step::parse(step).unwrap();
                    let mut one = ApiStats::new(step, group_by, 100_000);
                    for r in readings.iter().filter(|r| filter.matches(r)) {
                        one.add(r).unwrap();
                    }
                    let mut columnar = ApiStats::new(step, group_by, 100_000);
                    for s in &series {
                        columnar.add_columns(s, filter).unwrap();
                    }
                    let (one, columnar) = (one.finish(), columnar.finish());
                    assert_eq!(one.groups.len(), columnar.groups.len());
                    assert!(!one.groups.is_empty());
                    for (a, b) in one.groups.iter().zip(&columnar.groups) {
                        assert_eq!(a.key, b.key);
                        assert_eq!(a.points.len(), b.points.len());
                        for (p, q) in a.points.iter().zip(&b.points) {
                            let exact = (&p.t, p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms);
                            assert_eq!(
                                exact,
                                (&q.t, q.count, q.p50_ms, q.p90_ms, q.p99_ms, q.max_ms)
                            );
                            assert_eq!((p.rate, p.error_rate), (q.rate, q.error_rate));
                            assert_eq!(p.client_error_rate, q.client_error_rate);
                            // Sums of the same terms in another order: equal up to rounding.
                            let tolerance = 1e-9 * p.mean_ms.abs().max(1.0);
                            assert!((p.mean_ms - q.mean_ms).abs() <= tolerance, "{p:?} {q:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_columnar_fold_stops_at_max_points_like_the_reference() {
        let readings = mixed(200);
        let series = by_series(&readings);
        let step = Step::parse("1m").unwrap();
        let mut columnar = ApiStats::new(step, GroupBy::default(), 5);
        let failed = series
            .iter()
            .map(|s| columnar.add_columns(s, &ApiFilter::default()))
            .find_map(Result::err)
            .expect("more than 5 steps");
        assert_eq!(failed.0[0].field, "step");
    }

    #[test]
    fn too_many_cells_name_the_parameter_to_change() {
        let mut stats = ApiStats::new(Step::parse("1s").unwrap(), GroupBy::default(), 2);
        stats.add(&reading("/a", 200, 1.0, 1, 0)).unwrap();
        stats.add(&reading("/a", 200, 1.0, 1, 1000)).unwrap();
        stats.add(&reading("/a", 200, 1.0, 1, 1500)).unwrap();
        let error = stats.add(&reading("/a", 200, 1.0, 1, 2000)).unwrap_err();
        assert_eq!(error.0[0].field, "step");
    }
}
