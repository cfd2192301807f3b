//! Instance health from `/v1/stats/host`: one heartbeat per chart step, and whether an instance
//! is up at the end of the range.
//!
//! A step is *silent* when the instance sent nothing in it (the host stats fill such steps with
//! `samples: 0`, or leave them out past `--query-max-points`: both are silence). An instance is
//! **up** when the newest heard step among the range's last two says so: the last step is
//! usually still running, and an agent that reports every 10 s may not have spoken in it yet.
//! A step "says up" when its samples reported available more often than not; samples that do
//! not report `available` at all are a heartbeat, which counts as up. A silent step that is
//! still running (it ends after now) is *waiting*, not yet a gap.

use std::collections::HashMap;

use super::chart::Beat;
use crate::model::TimestampMs;
use crate::query::answer::{HostPoint, HostSeries};

fn beat(point: &HostPoint) -> Beat {
    if point.samples == 0 {
        return Beat::Silent;
    }
    match point.availability {
        None => Beat::Up,
        Some(share) if share >= 1.0 => Beat::Up,
        Some(share) if share <= 0.0 => Beat::Down,
        Some(share) => Beat::Partly(share),
    }
}

/// One beat per step of `steps` (step starts, ms, `step_ms` wide), from an instance's host
/// points, as seen at `now`.
pub fn beats(series: &HostSeries, steps: &[i64], step_ms: i64, now: TimestampMs) -> Vec<Beat> {
    let by_start: HashMap<i64, &HostPoint> = series
        .points
        .iter()
        .filter_map(|p| Some((TimestampMs::parse(&p.t).ok()?.millis(), p)))
        .collect();
    steps
        .iter()
        .map(|t| match by_start.get(t).map(|p| beat(p)) {
            Some(Beat::Silent) | None if t + step_ms > now.millis() => Beat::Waiting,
            Some(beat) => beat,
            None => Beat::Silent,
        })
        .collect()
}

/// Whether the instance is up at the end of the range (see the module note).
pub fn is_up(beats: &[Beat]) -> bool {
    let last_two = &beats[beats.len().saturating_sub(2)..];
    let heard = |b: &&Beat| !matches!(b, Beat::Silent | Beat::Waiting);
    match last_two.iter().rev().find(heard) {
        Some(Beat::Up) => true,
        Some(Beat::Partly(share)) => *share >= 0.5,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: i64, samples: u64, availability: Option<f64>) -> HostPoint {
        HostPoint {
            t: TimestampMs::from_millis(t).to_rfc3339(),
            samples,
            availability,
            cpu_percent: None,
            mem_used_bytes: None,
            mem_total_bytes: None,
            disk_used_bytes: None,
            disk_total_bytes: None,
            heap_bytes: None,
            allocated_bytes: None,
            freed_bytes: None,
        }
    }

    #[test]
    fn silence_is_not_up_and_the_running_step_may_be_quiet() {
        let series = HostSeries {
            instance: "i-1".into(),
            points: vec![
                point(0, 3, Some(1.0)),
                point(60_000, 0, Some(0.0)),
                point(120_000, 2, Some(0.5)),
                point(180_000, 1, None),
                point(240_000, 2, Some(0.0)),
            ],
        };
        let steps: Vec<i64> = (0..8).map(|i| i * 60_000).collect();
        let now = TimestampMs::from_millis(7 * 60_000 + 10);
        let beats = beats(&series, &steps, 60_000, now);
        assert_eq!(
            beats,
            [
                Beat::Up,
                Beat::Silent,
                Beat::Partly(0.5),
                Beat::Up,
                Beat::Down,
                Beat::Silent,
                Beat::Silent,
                Beat::Waiting
            ]
        );
        assert!(!is_up(&beats[..7]), "two silent steps at the end");
        assert!(!is_up(&beats), "silent, then the running step");
        assert!(is_up(&beats[..4]), "the newest heard step said up");
        assert!(is_up(&beats[..3]), "half available counts as up");
        assert!(!is_up(&beats[..5]), "the newest heard step said down");
        assert!(
            is_up(&[Beat::Up, Beat::Waiting]),
            "the last step is still running"
        );
        assert!(
            is_up(&[Beat::Up, Beat::Silent]),
            "one silent step is not yet down"
        );
        assert!(!is_up(&[]));
    }
}
