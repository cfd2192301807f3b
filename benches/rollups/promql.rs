//! The PromQL half of the rollups benchmark: the engine the Prometheus API runs
//! (`Engine::range_answer`, in process: no HTTP or JSON) over 24 h at a 1-hour step, read from
//! raw readings (`source=raw`) and from rollups (`source=auto`) alternately in the same run.
//!
//! The range ends at the last whole hour, so every window `(t − 1h, t]` is whole hours and the
//! hourly rollups serve it. Both answers must be equal (sums to 1e-9 relative, the rest
//! exactly): the bench fails otherwise.

use std::time::{Duration, Instant};

use anyhow::bail;
use timebucket::model::TimestampMs;
use timebucket::promql::source::queries::QueriesSource;
use timebucket::promql::{Answer, Engine, EngineConfig, Query, QueryValue};
use timebucket::query::source::Source as Sources;
use timebucket::query::Queries;
use timebucket::store::embedded::EmbeddedStore;

use super::{median, HOUR_MS, SERVICE};

/// One measured query.
pub struct Measured {
    /// What it computes.
    pub label: &'static str,
    /// The query.
    pub query: String,
    /// Median raw answer.
    pub raw: Duration,
    /// Median rollup answer.
    pub rollup: Duration,
    /// Levels the rollup answer read.
    pub levels: Vec<String>,
    /// Points in the answer.
    pub points: usize,
}

/// The queries, over the benchmark's service.
fn cases() -> [(&'static str, String); 2] {
    [
        (
            "requests per path and hour",
            format!(
                "sum by (path) (increase(http_server_request_duration_seconds_count{{service=\"{SERVICE}\"}}[1h]))"
            ),
        ),
        (
            "p99 per hour",
            format!(
                "histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{{service=\"{SERVICE}\"}}[1h])))"
            ),
        ),
    ]
}

fn points(value: &QueryValue) -> Vec<(String, i64, f64)> {
    match value {
        QueryValue::Matrix(series) => series
            .iter()
            .flat_map(|s| {
                s.points
                    .iter()
                    .map(|(t, v)| (s.labels.to_string(), t.millis(), *v))
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn same(a: &QueryValue, b: &QueryValue) -> bool {
    let (a, b) = (points(a), points(b));
    a.len() == b.len()
        && a.iter().zip(&b).all(|(p, q)| {
            p.0 == q.0
                && p.1 == q.1
                && (p.2 == q.2 || (p.2 - q.2).abs() <= 1e-9 * p.2.abs().max(q.2.abs()))
        })
}

/// Runs every query `rounds` times each way (after one warm-up) over 24 h ending at the last
/// whole hour before `now`.
pub async fn measure(
    queries: &Queries<EmbeddedStore>,
    now: i64,
    (raw_rounds, rollup_rounds): (usize, usize),
) -> anyhow::Result<Vec<Measured>> {
    let config = EngineConfig {
        // The raw answer loads every reading of the day, fifteen times for the buckets.
        max_samples: usize::MAX,
        timeout: Duration::from_secs(3600),
        ..EngineConfig::default()
    };
    let engine = Engine::new(QueriesSource::new(queries.clone()), config);
    let end = TimestampMs::from_millis(now / HOUR_MS * HOUR_MS);
    let start = TimestampMs::from_millis(end.millis() - 23 * HOUR_MS);
    let step = Duration::from_millis(HOUR_MS as u64);
    let mut out = Vec::new();
    for (label, text) in cases() {
        let query = Query::parse(&text).map_err(|e| anyhow::anyhow!("{text}: {e}"))?;
        let run = |sources| {
            let engine = engine.with_sources(sources);
            let query = query.clone();
            async move {
                let started = Instant::now();
                let answer: Answer = engine.range_answer(&query, start, end, step).await?;
                anyhow::Ok((started.elapsed(), answer))
            }
        };
        let (mut raw, mut rollup) = (Vec::new(), Vec::new());
        let (mut raw_answer, mut rollup_answer) = (None, None);
        for round in 0..=raw_rounds.max(rollup_rounds) {
            if round <= rollup_rounds {
                let (took, answer) = run(Sources::Auto).await?;
                if round > 0 {
                    rollup.push(took);
                }
                rollup_answer = Some(answer);
            }
            if round <= raw_rounds {
                let (took, answer) = run(Sources::Raw).await?;
                if round > 0 {
                    raw.push(took);
                }
                raw_answer = Some(answer);
            }
        }
        let (raw_answer, rollup_answer) = (raw_answer.expect("ran"), rollup_answer.expect("ran"));
        if !same(&raw_answer.value, &rollup_answer.value) {
            bail!("PromQL {label}: the rollup answer differs from the raw one");
        }
        let measured = Measured {
            label,
            query: text,
            raw: median(raw),
            rollup: median(rollup),
            levels: rollup_answer.source.levels.clone(),
            points: points(&rollup_answer.value).len(),
        };
        println!(
            "PromQL {label}: raw {:.1?}, rollups {:.1?} ({:.1}x), levels {:?}",
            measured.raw,
            measured.rollup,
            measured.raw.as_secs_f64() / measured.rollup.as_secs_f64(),
            measured.levels
        );
        out.push(measured);
    }
    Ok(out)
}

/// The PromQL table of the report.
pub fn section(results: &[Measured], rounds: (usize, usize)) -> String {
    let mut s = format!(
        "\nPromQL (`Engine::range_answer` in process, what `/api/v1/query_range` runs without HTTP): 24 h ending at the last whole hour, 1-hour step, `source=raw` and `source=auto` alternating, medians of {} raw and {} rollup rounds after one warm-up; the answers are equal (the bench fails otherwise).\n\n",
        rounds.0, rounds.1
    );
    s.push_str("| what | query | raw p50 | rollups p50 | raw / rollups | levels read | points |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    for r in results {
        s.push_str(&format!(
            "| {} | `{}` | {} | {} | {:.1}x | {} | {} |\n",
            r.label,
            r.query,
            super::ms(r.raw),
            super::ms(r.rollup),
            r.raw.as_secs_f64() / r.rollup.as_secs_f64(),
            r.levels.join(", "),
            r.points
        ));
    }
    s
}
