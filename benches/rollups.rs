//! Rollups benchmark: `/v1/stats` answered from rollups against the same answer from raw
//! readings, in the same run, on the embedded store.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench rollups
//! ```
//!
//! A new embedded store is loaded with `READINGS` API readings of one service spread over the
//! last `HOURS` hours, written straight through the store API (not HTTP: ten million readings
//! through the service would take most of an hour on this machine) in time order, in batches
//! of 20,000, each with its partial rollups as the flusher computes them (`rollup::partials`).
//! Then the compaction `serve` runs every ten minutes (`rollup::compactor`) merges the
//! partials of every closed slot, as it would have by then, and the rollup keyspaces are
//! major-compacted (the deleted partials dropped, as fjall's own compaction does over time;
//! `EmbeddedStore::compact_rollup_windows`). Before those hours, `EXTRA_DAYS`
//! days get only generated hourly rollups (from `EXTRA_PER_HOUR` readings an hour, never
//! stored raw), so a 7-day range has rollups all along and raw readings for its last `HOURS`
//! hours only.
//!
//! Then `Queries::stats` (what `/v1/stats` runs, in process: no HTTP or JSON) answers the last
//! 1 h (1-minute step), 24 h (1-hour step, and 5-minute step: minute rollups only) and 7 d
//! (1-hour step), each with `source=raw` and `source=auto` in alternation, after one warm-up.
//! The ranges end now, so their edges are not whole minutes: the plan reads hours, minutes
//! and raw edges. For 1 h and 24 h both answers must hold the same counts point for point (the
//! bench fails otherwise); for 7 d the raw answer only covers the raw hours.
//!
//! Then the PromQL engine answers two queries over the last 24 whole hours at a 1-hour step
//! from raw readings and from rollups (`rollups/promql.rs`), answers compared.
//!
//! Options (environment variables):
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `READINGS` | 10000000 | raw readings over `HOURS` |
//! | `HOURS` | 48 | hours of raw readings, ending now |
//! | `EXTRA_DAYS` | 5 | days of generated hourly rollups before them |
//! | `EXTRA_PER_HOUR` | 20000 | readings aggregated per generated hour |
//! | `INSTANCES` | 6 | instances; series = instances × 8 paths × 2 methods × 3 codes |
//! | `RAW_ROUNDS` | 3 | measured rounds of each raw query |
//! | `ROLLUP_ROUNDS` | 10 | measured rounds of each rollup query |
//! | `SEED` | 42 | seed of the generated data |
//! | `BENCH_WRITE_MD` | 1 | 0: do not update BENCHMARKS.md |

#[path = "rollups/promql.rs"]
mod promql;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use support::options::env_or;
use support::sections;
use timebucket::model::{
    ApiPath, ApiReading, HttpMethod, InstanceName, Reading, ReadingId, ServiceName, StatusCode,
    TimestampMs,
};
use timebucket::query::answer::StatsAnswer;
use timebucket::query::requests::StatsRequest;
use timebucket::query::{Queries, QueryLimits};
use timebucket::rollup::{compactor, partials, Piece, Resolution};
use timebucket::store::embedded::EmbeddedStore;
use timebucket::store::{SeriesSeen, Store, WriteBatch};

const HOUR_MS: i64 = 3_600_000;
const SERVICE: &str = "checkout";
const BATCH: usize = 20_000;

/// Readings of one hour (or part of it), `n` of them in `[start, start + span)`.
struct Generator {
    rng: fastrand::Rng,
    service: ServiceName,
    instances: Vec<InstanceName>,
    paths: Vec<ApiPath>,
    methods: [HttpMethod; 2],
    codes: [StatusCode; 3],
}

impl Generator {
    fn new(instances: usize, seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            service: ServiceName::parse(SERVICE).expect("valid"),
            instances: (0..instances)
                .map(|i| InstanceName::parse(&format!("{SERVICE}-{i}")).expect("valid"))
                .collect(),
            paths: (0..8)
                .map(|p| ApiPath::parse(&format!("/api/v1/resource{p}/{{id}}")).expect("valid"))
                .collect(),
            methods: ["GET", "POST"].map(|m| HttpMethod::parse(m).expect("valid")),
            codes: [200, 404, 503].map(|c| StatusCode::parse(c).expect("valid")),
        }
    }

    fn readings(&mut self, start: i64, span: i64, n: usize) -> Vec<Reading> {
        (0..n)
            .map(|_| {
                let rng = &mut self.rng;
                let code = match rng.u8(..100) {
                    0..=89 => 0,
                    90..=97 => 1,
                    _ => 2,
                };
                Reading::Api(ApiReading {
                    id: ReadingId::new(),
                    service: self.service.clone(),
                    instance: self.instances[rng.usize(..self.instances.len())].clone(),
                    method: self.methods[rng.usize(..2)].clone(),
                    path: self.paths[rng.usize(..self.paths.len())].clone(),
                    code: self.codes[code],
                    duration_ms: (rng.f64() * 2.0 + rng.f64() * 2.0).exp(),
                    count: if rng.u8(..10) == 0 {
                        rng.u32(2..=50)
                    } else {
                        1
                    },
                    timestamp: TimestampMs::from_millis(start + rng.i64(0..span)),
                })
            })
            .collect()
    }
}

/// What loading cost.
struct Load {
    elapsed: Duration,
    partials: Duration,
    rollup_rows: usize,
    extra_rows: usize,
    compaction: Duration,
    compacted: timebucket::rollup::compactor::Compacted,
}

/// Loads the raw hours with their rollups, then the generated hourly rollups before them.
async fn load(
    store: &EmbeddedStore,
    generator: &mut Generator,
    (start, hours, readings): (i64, i64, usize),
    (extra_days, extra_per_hour): (i64, usize),
) -> anyhow::Result<Load> {
    let started = Instant::now();
    let settings = *store.settings();
    let mut seen = SeriesSeen::new(100_000);
    let writer = uuid::Uuid::new_v4();
    let (mut partial_time, mut rollup_rows, mut piece) = (Duration::ZERO, 0, 0u64);
    let per_hour = readings / hours as usize;
    for hour in 0..hours {
        let mut left = per_hour;
        while left > 0 {
            let n = left.min(BATCH);
            left -= n;
            // Time-ordered, as live traffic reaches the flusher: a batch spans minutes.
            let offset = ((per_hour - left - n) as i64 * HOUR_MS) / per_hour as i64;
            let span = (n as i64 * HOUR_MS / per_hour as i64).max(1);
            let batch = generator.readings(start + hour * HOUR_MS + offset, span, n);
            piece += 1;
            let took = Instant::now();
            let rollups = partials(&batch, piece_of(writer, piece), TimestampMs::from_millis(0));
            partial_time += took.elapsed();
            rollup_rows += rollups.len();
            let mut batch = WriteBatch::build(batch, &settings, &seen);
            seen.remember(&batch.series);
            batch.rollups = rollups;
            store.write(&batch).await.context("loading")?;
        }
        if hour % 8 == 7 {
            println!(
                "loaded {} of {hours} hours in {:.1?}",
                hour + 1,
                started.elapsed()
            );
        }
    }
    let elapsed = started.elapsed();
    let mut extra_rows = 0;
    for hour in 1..=extra_days * 24 {
        let at = start - hour * HOUR_MS;
        let batch = generator.readings(at, HOUR_MS, extra_per_hour);
        piece += 1;
        let mut rows = partials(&batch, piece_of(writer, piece), TimestampMs::from_millis(0));
        rows.retain(|r| r.resolution == Resolution::Hour);
        extra_rows += rows.len();
        let batch = WriteBatch {
            rollups: rows,
            ..WriteBatch::default()
        };
        store
            .write(&batch)
            .await
            .context("generating hourly rollups")?;
    }
    // What the compactor would have done by now: every closed slot of every partition.
    let compacting = Instant::now();
    let service = ServiceName::parse(SERVICE).expect("valid");
    let upto = timebucket::wal::Position {
        segment: timebucket::wal::SegmentId(piece + 1),
        offset: 0,
    };
    let closed = TimestampMs::now().millis() - compactor::GRACE_MS;
    let mut reads = compactor::requests(&service, Resolution::Minute, start, closed);
    reads.extend(compactor::requests(
        &service,
        Resolution::Hour,
        start,
        closed,
    ));
    let compacted =
        compactor::compact_partitions(store, writer, upto, reads, compactor::PAGE_ROWS).await?;
    // And what fjall's own compaction reaches over time: the deleted partials gone from disk.
    store.compact_rollup_windows()?;
    Ok(Load {
        elapsed,
        partials: partial_time,
        rollup_rows,
        extra_rows,
        compaction: compacting.elapsed(),
        compacted,
    })
}

fn piece_of(writer: uuid::Uuid, n: u64) -> Piece {
    Piece {
        writer,
        segment: n,
        start: 0,
        last: 0,
    }
}

/// One measured query: a range ending now, a step, both sources.
struct Case {
    label: &'static str,
    hours: i64,
    step: &'static str,
    /// Raw and rollup answers must agree (the range has raw readings all along).
    compare: bool,
}

struct Measured {
    case: Case,
    raw: Duration,
    rollup: Duration,
    levels: Vec<String>,
    points: usize,
    requests: (u64, u64),
}

fn request(
    queries: &Queries<EmbeddedStore>,
    from: i64,
    to: i64,
    step: &str,
    source: &str,
) -> anyhow::Result<StatsRequest> {
    let pairs = [
        ("service", SERVICE.to_owned()),
        ("from", from.to_string()),
        ("to", to.to_string()),
        ("step", step.to_owned()),
        ("source", source.to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    StatsRequest::parse(&pairs, queries.limits()).map_err(|e| anyhow::anyhow!("{e:?}"))
}

fn counts(answer: &StatsAnswer) -> Vec<(String, u64)> {
    answer
        .groups
        .iter()
        .flat_map(|g| g.points.iter().map(|p| (p.t.clone(), p.count)))
        .collect()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[(samples.len() - 1) / 2]
}

async fn measure(
    queries: &Queries<EmbeddedStore>,
    case: Case,
    end: i64,
    (raw_rounds, rollup_rounds): (usize, usize),
) -> anyhow::Result<Measured> {
    let from = end - case.hours * HOUR_MS;
    let raw_request = request(queries, from, end, case.step, "raw")?;
    let auto_request = request(queries, from, end, case.step, "auto")?;
    let (mut raw, mut rollup) = (Vec::new(), Vec::new());
    let (mut raw_answer, mut auto_answer) = (None, None);
    for round in 0..=raw_rounds.max(rollup_rounds) {
        if round <= rollup_rounds {
            let started = Instant::now();
            let answer = queries.stats(&auto_request).await?;
            if round > 0 {
                rollup.push(started.elapsed());
            }
            auto_answer = Some(answer);
        }
        if round <= raw_rounds {
            let started = Instant::now();
            let answer = queries.stats(&raw_request).await?;
            if round > 0 {
                raw.push(started.elapsed());
            }
            raw_answer = Some(answer);
        }
    }
    let (raw_answer, auto_answer) = (raw_answer.expect("ran"), auto_answer.expect("ran"));
    let total = |a: &StatsAnswer| counts(a).iter().map(|(_, c)| c).sum::<u64>();
    if case.compare && counts(&raw_answer) != counts(&auto_answer) {
        bail!(
            "{}: the rollup answer's counts differ from the raw one's",
            case.label
        );
    }
    let levels = auto_answer
        .source
        .as_ref()
        .map(|s| s.levels.clone())
        .unwrap_or_default();
    let measured = Measured {
        raw: median(raw),
        rollup: median(rollup),
        levels,
        points: counts(&auto_answer).len(),
        requests: (total(&raw_answer), total(&auto_answer)),
        case,
    };
    println!(
        "{} step {}: raw {:.1?}, rollups {:.1?} ({:.1}x), levels {:?}",
        measured.case.label,
        measured.case.step,
        measured.raw,
        measured.rollup,
        ratio(measured.raw, measured.rollup),
        measured.levels
    );
    Ok(measured)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let readings: usize = env_or("READINGS", 10_000_000)?;
    let hours: i64 = env_or("HOURS", 48)?;
    let extra_days: i64 = env_or("EXTRA_DAYS", 5)?;
    let extra_per_hour: usize = env_or("EXTRA_PER_HOUR", 20_000)?;
    let instances: usize = env_or("INSTANCES", 6)?;
    let raw_rounds: usize = env_or("RAW_ROUNDS", 3)?;
    let rollup_rounds: usize = env_or("ROLLUP_ROUNDS", 10)?;
    let seed: u64 = env_or("SEED", 42)?;

    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path())?;
    let now = TimestampMs::now().millis();
    let start = (now / HOUR_MS - hours + 1) * HOUR_MS;
    let end = now;
    let mut generator = Generator::new(instances, seed);
    let loaded = load(
        &store,
        &mut generator,
        (start, hours, readings),
        (extra_days, extra_per_hour),
    )
    .await?;
    println!(
        "loaded {readings} readings in {:.1?} ({:.1?} of it computing partials); compaction {:.1?}: {:?}",
        loaded.elapsed, loaded.partials, loaded.compaction, loaded.compacted
    );
    let limits = QueryLimits {
        max_scan_rows: u64::MAX,
        max_range_ms: 8 * 24 * HOUR_MS,
        ..QueryLimits::default()
    };
    let queries = Queries::new(Arc::new(store), limits);
    let rounds = (raw_rounds, rollup_rounds);
    let cases = [
        Case {
            label: "1 h",
            hours: 1,
            step: "1m",
            compare: true,
        },
        Case {
            label: "24 h",
            hours: 24,
            step: "1h",
            compare: true,
        },
        Case {
            label: "24 h",
            hours: 24,
            step: "5m",
            compare: true,
        },
        Case {
            label: "7 d",
            hours: 7 * 24,
            step: "1h",
            compare: false,
        },
    ];
    let mut results = Vec::new();
    for mut case in cases {
        // Answers agree only where raw readings cover the whole range.
        case.compare &= case.hours <= hours;
        results.push(measure(&queries, case, end, rounds).await?);
    }
    let promql = promql::measure(&queries, end, rounds).await?;
    let mut section = section(
        &Params {
            readings,
            hours,
            extra_days,
            extra_per_hour,
            series: instances * 8 * 2 * 3,
            rounds,
        },
        &loaded,
        &results,
    );
    section.push_str(&promql::section(&promql, rounds));
    println!("{section}");
    if env_or("BENCH_WRITE_MD", 1)? != 0 {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        sections::write_section(&path, "rollups", &section)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("updated {}", path.display());
    }
    Ok(())
}

struct Params {
    readings: usize,
    hours: i64,
    extra_days: i64,
    extra_per_hour: usize,
    series: usize,
    rounds: (usize, usize),
}

fn section(p: &Params, loaded: &Load, results: &[Measured]) -> String {
    let code = support::sections::revision();
    let load = support::sections::load_average();
    let mut s = String::new();
    s.push_str("## Rollups benchmark (embedded) — latest run\n\n");
    s.push_str(&format!(
        "- date: {} UTC\n- command: `CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench rollups`\n- code: {code}\n- machine: 2 cores, shared (load average when the report was written: {load})\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M")
    ));
    s.push_str(&format!(
        "- data: {} API readings of one service ({} series) over the last {} h, written straight through the store API (not HTTP) in batches of {BATCH} with their partial rollups, as the flusher computes them; before them {} days of generated hourly rollups only ({} readings aggregated per hour, {} rows)\n",
        p.readings, p.series, p.hours, p.extra_days, p.extra_per_hour, loaded.extra_rows
    ));
    s.push_str(&format!(
        "- load: {:.1} s for the raw readings and their rollups ({:.0} readings/s); computing the partials took {:.1} s of it ({:.0}%), {} rollup rows (both levels) for {} readings\n",
        loaded.elapsed.as_secs_f64(),
        p.readings as f64 / loaded.elapsed.as_secs_f64(),
        loaded.partials.as_secs_f64(),
        100.0 * loaded.partials.as_secs_f64() / loaded.elapsed.as_secs_f64(),
        loaded.rollup_rows,
        p.readings
    ));
    s.push_str(&format!(
        "- compaction (what `serve` does every 10 min, for every closed slot at once), then a major compaction of the rollup keyspaces: {:.1} s, {} partials merged into {} rows\n",
        loaded.compaction.as_secs_f64(),
        loaded.compacted.deleted,
        loaded.compacted.written
    ));
    s.push_str(&format!(
        "- queries: `Queries::stats` in process (what `/v1/stats` runs, without HTTP), ranges ending now, `source=raw` and `source=auto` alternating, medians of {} raw and {} rollup rounds after one warm-up\n\n",
        p.rounds.0, p.rounds.1
    ));
    s.push_str("| range | step | raw p50 | rollups p50 | raw / rollups | levels read | points | requests counted (raw / rollups) |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for r in results {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.1}x | {} | {} | {} / {}{} |\n",
            r.case.label,
            r.case.step,
            ms(r.raw),
            ms(r.rollup),
            ratio(r.raw, r.rollup),
            r.levels.join(", "),
            r.points,
            r.requests.0,
            r.requests.1,
            if r.case.compare {
                " (equal point for point)"
            } else {
                " (raw readings cover the last hours only)"
            }
        ));
    }
    let day = results
        .iter()
        .find(|r| r.case.hours == 24 && r.case.step == "1h");
    if let Some(day) = day {
        s.push_str(&format!(
            "\nTargets (24 h, 1-hour step): rollups ≥ 20x faster than raw — measured {:.1}x; 24 h answer under 100 ms — measured {}.\n",
            ratio(day.raw, day.rollup),
            ms(day.rollup)
        ));
    }
    s
}
