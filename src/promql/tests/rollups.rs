//! Rollups serve PromQL exactly: on random readings (many exactly on minute and hour
//! boundaries, on bucket bounds, late, from two writers) every query answers the same read
//! raw and read from rollups, and says which it read.

use super::*;
use crate::model::Reading;
use crate::promql::Answer;
use crate::query::source::Source as Sources;
use crate::rollup::{merge, partials, Agg, Piece, Resolution, RollupRow};

const HOUR: i64 = 3_600_000;

/// Rollups of a [`Memory`]'s API readings, as the flusher would write them.
#[derive(Clone)]
pub struct Rollups {
    /// Complete from here on.
    pub since: TimestampMs,
    /// Rows of slots before this instant (ms) as a version without the PromQL parts wrote them.
    pub old_before: i64,
}

impl Rollups {
    /// The merged rows of `service` at `resolution` in `range`: the readings split in pieces of
    /// two writers, in the order they arrived (so late readings share pieces with new ones).
    pub fn rows(
        &self,
        readings: &[ApiReading],
        service: &ServiceName,
        resolution: Resolution,
        range: TimeRange,
        filter: &ApiFilter,
    ) -> Vec<RollupRow> {
        let mut rows = Vec::new();
        for (i, batch) in readings.chunks(7).enumerate() {
            let batch: Vec<Reading> = batch.iter().cloned().map(Reading::Api).collect();
            let piece = Piece {
                writer: if i % 2 == 0 {
                    uuid::Uuid::nil()
                } else {
                    uuid::Uuid::max()
                },
                segment: 1,
                start: 16 + 100 * i as u64,
                last: 16 + 100 * i as u64 + 50,
            };
            rows.extend(partials(&batch, piece, self.since));
        }
        rows.retain(|r| {
            r.resolution == resolution && r.service == *service && range.contains(r.slot)
        });
        let mut rows = merge::maximal(rows);
        rows.retain(|r| crate::query::rollups::matches(filter, &r.series));
        for row in rows
            .iter_mut()
            .filter(|r| r.slot.millis() < self.old_before)
        {
            if let Agg::Api(api) = &mut row.agg {
                api.prom = None;
            }
        }
        rows
    }
}

/// Random readings of two services over three hours from `DAY`, a third of them exactly on a
/// minute or an hour, with durations on bucket bounds, in random (late) order.
fn readings(seed: u64) -> Vec<ApiReading> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let durations = [
        5.0, 5.000_001, 10.0, 99.0, 100.0, 250.0, 1000.0, 10_000.0, 12_000.0,
    ];
    (0..400)
        .map(|_| {
            let at = match rng.u8(0..6) {
                0 => DAY + rng.i64(0..4) * HOUR,
                1 => DAY + rng.i64(0..180) * MIN,
                2 => DAY + rng.i64(0..180) * MIN + 1,
                _ => DAY + rng.i64(0..3 * HOUR + 1),
            };
            let duration = if rng.bool() {
                durations[rng.usize(0..durations.len())]
            } else {
                rng.f64() * 3000.0
            };
            api(
                ["shop", "pay"][rng.usize(0..2)],
                ["i-1", "i-2"][rng.usize(0..2)],
                ["/cart", "/buy"][rng.usize(0..2)],
                [200, 500][rng.usize(0..2)],
                duration,
                rng.u32(1..5),
                at,
            )
        })
        .collect()
}

fn memory(api: Vec<ApiReading>, rollups: Option<Rollups>) -> Memory {
    Memory {
        api,
        rollups,
        ..Memory::default()
    }
}

async fn answer(
    e: &Engine<Memory>,
    query: &str,
    (start, end, step): (i64, i64, i64),
    sources: Sources,
) -> Result<Answer, PromqlError> {
    let query = Query::parse(query)?;
    let e = e.with_sources(sources);
    if step == 0 {
        e.instant_answer(&query, TimestampMs::from_millis(start))
            .await
    } else {
        e.range_answer(
            &query,
            TimestampMs::from_millis(start),
            TimestampMs::from_millis(end),
            Duration::from_millis(step as u64),
        )
        .await
    }
}

/// The values of two answers are equal: same series and times, values equal up to rounding.
fn assert_same(query: &str, raw: &QueryValue, rolled: &QueryValue) {
    let close = |a: f64, b: f64| a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
    match (raw, rolled) {
        (QueryValue::Matrix(a), QueryValue::Matrix(b)) => {
            assert_eq!(a.len(), b.len(), "{query}: {a:?}\n{b:?}");
            for (a, b) in a.iter().zip(b) {
                assert_eq!(a.labels, b.labels, "{query}");
                assert_eq!(a.points.len(), b.points.len(), "{query}: {a:?}\n{b:?}");
                for (p, q) in a.points.iter().zip(&b.points) {
                    assert!(p.0 == q.0 && close(p.1, q.1), "{query}: {p:?} vs {q:?}");
                }
            }
        }
        (QueryValue::Vector(a), QueryValue::Vector(b)) => {
            assert_eq!(a.len(), b.len(), "{query}: {a:?}\n{b:?}");
            for (a, b) in a.iter().zip(b) {
                assert!(
                    a.labels == b.labels && close(a.v, b.v),
                    "{query}: {a:?} vs {b:?}"
                );
            }
        }
        _ => panic!("{query}: {raw:?} vs {rolled:?}"),
    }
}

/// A query, its timeline `(start, end, step)` (an instant query when the step is 0) and the
/// levels that must serve it.
type Case = (&'static str, (i64, i64, i64), &'static [&'static str]);

/// Queries with the levels that must serve them (with rollups complete from `DAY`).
const CASES: [Case; 8] = [
    (
        "sum by (path) (increase(http_server_request_duration_seconds_count{service=\"shop\"}[1h]))",
        (DAY + HOUR, DAY + 3 * HOUR, HOUR),
        &["1h"],
    ),
    (
        "histogram_quantile(0.9, sum by (le) (rate(http_server_request_duration_seconds_bucket[1h])))",
        (DAY + HOUR, DAY + 4 * HOUR, HOUR),
        &["1h"],
    ),
    (
        "rate(http_server_request_duration_seconds_sum[5m])",
        // The first window starts before the rollups do.
        (DAY, DAY + 3 * HOUR, 5 * MIN),
        &["1m", "raw"],
    ),
    (
        "increase(http_server_request_duration_seconds_bucket{le=\"0.1\"}[10m] offset 5m)",
        (DAY + 20 * MIN, DAY + 3 * HOUR, 15 * MIN),
        &["1m"],
    ),
    (
        "sum(increase(http_server_request_duration_seconds_count[2h]))",
        (DAY + 2 * HOUR, 0, 0),
        &["1h"],
    ),
    (
        "sum by (code) (increase(http_server_request_duration_seconds_bucket{path=\"/cart\"}[1m]))",
        (DAY + 61 * MIN, 0, 0),
        &["1m"],
    ),
    // Not aligned on minutes: raw, the same answer.
    (
        "increase(http_server_request_duration_seconds_count[90s])",
        (DAY + HOUR, DAY + 2 * HOUR, 90_000),
        &["raw"],
    ),
    // irate needs the readings' times: raw.
    (
        "irate(http_server_request_duration_seconds_count[1h])",
        (DAY + HOUR, DAY + 3 * HOUR, HOUR),
        &["raw"],
    ),
];

#[tokio::test]
async fn rollups_answer_as_raw_readings_do() {
    for seed in 0..12 {
        let data = readings(seed);
        let raw = engine(memory(data.clone(), None));
        let rolled = engine(memory(
            data.clone(),
            Some(Rollups {
                since: TimestampMs::from_millis(DAY),
                old_before: i64::MIN,
            }),
        ));
        for (query, timeline, levels) in CASES {
            let a = answer(&raw, query, timeline, Sources::Auto).await.unwrap();
            let b = answer(&rolled, query, timeline, Sources::Auto)
                .await
                .unwrap();
            assert_same(query, &a.value, &b.value);
            assert_eq!(a.source.levels, ["raw"], "{query}");
            assert_eq!(b.source.levels, levels, "seed {seed}: {query}");
            // Asked for raw readings, the rollups are not read.
            let c = answer(&rolled, query, timeline, Sources::Raw)
                .await
                .unwrap();
            assert_eq!((c.source.used.as_str(), c.value), ("raw", a.value));
        }
    }
}

/// The `Sources::Auto` answer of `query` over `timeline` on `data` with `rollups`.
async fn auto(
    data: &[ApiReading],
    rollups: Option<Rollups>,
    query: &str,
    timeline: (i64, i64, i64),
) -> Answer {
    answer(
        &engine(memory(data.to_vec(), rollups)),
        query,
        timeline,
        Sources::Auto,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn before_the_rollups_start_and_over_old_rows_raw_readings_serve() {
    let data = readings(99);
    let query = CASES[0].0;
    let timeline = (DAY + HOUR, DAY + 3 * HOUR, HOUR);
    let raw = auto(&data, None, query, timeline).await;
    // Rollups complete from DAY + 1h: the first window (DAY, DAY + 1h] is read raw.
    let late = Rollups {
        since: TimestampMs::from_millis(DAY + HOUR),
        old_before: i64::MIN,
    };
    let b = auto(&data, Some(late), query, timeline).await;
    assert_same(query, &raw.value, &b.value);
    assert_eq!(b.source.levels, ["1h", "raw"]);
    assert_eq!(
        b.source.rollups_since.as_deref(),
        Some(TimestampMs::from_millis(DAY + HOUR).to_rfc3339().as_str())
    );
    // Rows written before they had the PromQL parts: raw readings, the same answer.
    let old = Rollups {
        since: TimestampMs::from_millis(DAY),
        old_before: i64::MAX,
    };
    let c = auto(&data, Some(old), query, timeline).await;
    assert_same(query, &raw.value, &c.value);
    assert_eq!(c.source.levels, ["raw"]);
    // Old rows in the first two hours only (an upgrade): those read raw, the rest from rollups.
    let upgraded = Rollups {
        since: TimestampMs::from_millis(DAY),
        old_before: DAY + 2 * HOUR,
    };
    for (query, timeline) in [(query, timeline), (CASES[2].0, CASES[2].1)] {
        let raw = auto(&data, None, query, timeline).await;
        let d = auto(&data, Some(upgraded.clone()), query, timeline).await;
        assert_same(query, &raw.value, &d.value);
        assert_eq!(d.source.used, "rollup", "{query}");
        assert!(d.source.levels.contains(&"raw".to_owned()), "{query}");
    }
}

#[tokio::test]
async fn source_rollup_refuses_what_rollups_cannot_serve_naming_the_selector() {
    let rolled = engine(memory(
        readings(1),
        Some(Rollups {
            since: TimestampMs::from_millis(DAY),
            old_before: i64::MIN,
        }),
    ));
    let served = answer(&rolled, CASES[0].0, CASES[0].1, Sources::Rollup)
        .await
        .unwrap();
    assert_eq!(served.source.used, "rollup");
    for (query, timeline, why) in [
        (CASES[6].0, CASES[6].1, "whole minutes"),
        (CASES[7].0, CASES[7].1, "only rate() and increase()"),
        (
            "http_server_request_duration_seconds_count",
            (DAY + HOUR, 0, 0),
            "only rate() and increase()",
        ),
    ] {
        let error = answer(&rolled, query, timeline, Sources::Rollup)
            .await
            .unwrap_err();
        assert_eq!(
            error.error_type(),
            crate::promql::ErrorType::BadData,
            "{query}"
        );
        let text = error.to_string();
        assert!(
            text.contains("http_server_request_duration_seconds_count"),
            "{text}"
        );
        assert!(text.contains(why), "{text}");
    }
}
