//! Stats answers laid out on a page's chart steps: one value per step, in step order, so every
//! chart and trend line of a page has the same columns.
//!
//! A step the stats answer leaves out had no requests: its rate is zero, while its shares and
//! percentiles do not exist (a gap in the line, not a zero).

use std::collections::HashMap;

use crate::model::TimestampMs;
use crate::query::answer::{StatsAnswer, StatsPoint};

fn by_start(answer: &StatsAnswer) -> HashMap<i64, &StatsPoint> {
    answer
        .groups
        .iter()
        .flat_map(|g| &g.points)
        .filter_map(|p| Some((TimestampMs::parse(&p.t).ok()?.millis(), p)))
        .collect()
}

/// Requests per second in each step (an ungrouped answer), zero where the answer has no point.
pub fn rate(answer: &StatsAnswer, steps: &[i64]) -> Vec<f64> {
    let points = by_start(answer);
    steps
        .iter()
        .map(|t| points.get(t).map_or(0.0, |p| p.rate))
        .collect()
}

/// One figure of each step (an ungrouped answer), `None` where the step had no requests.
pub fn figure(
    answer: &StatsAnswer,
    steps: &[i64],
    pick: fn(&StatsPoint) -> f64,
) -> Vec<Option<f64>> {
    let points = by_start(answer);
    steps
        .iter()
        .map(|t| points.get(t).map(|p| pick(p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::answer::{GroupKeyOut, StatsGroup};

    fn point(t: i64, rate: f64) -> StatsPoint {
        StatsPoint {
            t: TimestampMs::from_millis(t).to_rfc3339(),
            count: 1,
            rate,
            error_rate: 0.5,
            client_error_rate: 0.0,
            mean_ms: 1.0,
            p50_ms: 1.0,
            p90_ms: 2.0,
            p99_ms: 3.0,
            max_ms: 3.0,
        }
    }

    #[test]
    fn missing_steps_are_zero_requests_but_no_figures() {
        let answer = StatsAnswer {
            step_ms: 1000,
            groups: vec![StatsGroup {
                key: GroupKeyOut::default(),
                points: vec![point(1000, 0.5), point(3000, 2.0)],
            }],
            source: None,
        };
        let steps = [0, 1000, 2000, 3000];
        assert_eq!(rate(&answer, &steps), [0.0, 0.5, 0.0, 2.0]);
        assert_eq!(
            figure(&answer, &steps, |p| p.p99_ms),
            [None, Some(3.0), None, Some(3.0)]
        );
    }
}
