//! Pipeline benchmark: the service's own CPU per reading, stage by stage, with no store and no
//! network, on one thread.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench pipeline
//! ```
//!
//! On 2 cores the ingest bench's end-to-end ratio is set by how much CPU the service takes from
//! the Cassandra node, but its service figure (CPU-seconds per million readings) moves by ±15%
//! with the machine's load. This bench measures the same work in-process, each stage timed
//! alone over the ingest bench's data (`SERVICES` × `INSTANCES` × `PATHS` endpoints,
//! timestamps over five minutes, `BATCH` readings per JSON body):
//!
//! 1. **parse**: a JSON body into validated readings (`ingest::parse_json`), ids fixed;
//! 2. **WAL encode**: the readings into a WAL payload (`ingest::record::encode`);
//! 3. **WAL decode**: the payload back into readings (`ingest::record::decode`), as the flusher
//!    reads it;
//! 4. **group**: `FLUSH_READINGS` decoded readings into a write batch (partitions, newest
//!    reading per series, series entries: `WriteBatch::build`);
//! 5. **rollups**: each batch's readings into its piece's minute cells, and a piece's cells
//!    into partial rows of both levels every `PIECE_BATCHES` batches (`rollup::partial::Cells`).
//!
//! Not measured here: HTTP, the WAL's file writes, the CQL driver's serialization and I/O.
//!
//! The baseline, timed in the same rounds: serde_json reading the same bodies into a plain
//! struct of borrowed strings and numbers, with no validation: the cheapest typed read of those
//! bytes. Each stage is reported in nanoseconds per reading (the median of `ROUNDS` rounds) and
//! as a ratio to that baseline, which is what to compare between runs.
//!
//! Options (environment variables):
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `READINGS` | 1000000 | readings per round |
//! | `BATCH` | 1000 | readings per JSON body |
//! | `FLUSH_READINGS` | 40000 | readings per write batch (a default 1 MiB WAL read holds about that many) |
//! | `PIECE_BATCHES` | 4 | batches per rollup piece (16 MiB of WAL; the flusher's pieces now run up to a 64 MiB chunk, so this makes more partials per reading than it does) |
//! | `ROUNDS` | 5 | timed rounds, after one warm-up round |
//! | `SERVICES`, `INSTANCES`, `PATHS`, `SEED` | 8, 6, 20, 42 | the generated fleet |
//! | `BENCH_WRITE_MD` | 1 | 0: do not update BENCHMARKS.md |

mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context;
use timebucket::ingest::record::{decode, encode, Accepted};
use timebucket::ingest::{parse_json, Window};
use timebucket::model::{Reading, Settings, TimestampMs};
use timebucket::rollup::partial::{Cells, Piece};
use timebucket::store::batch::{SeriesSeen, WriteBatch};

use support::data::{Dataset, JsonBody, Shape};
use support::options::env_or;

/// The stages, in pipeline order, after the baseline.
const STAGES: [&str; 6] = [
    "baseline: serde_json into a plain struct",
    "parse and validate",
    "WAL encode",
    "WAL decode",
    "group into a write batch",
    "rollup cells and rows",
];

struct Options {
    readings: usize,
    batch: usize,
    flush_readings: usize,
    piece_batches: usize,
    rounds: usize,
}

fn main() -> anyhow::Result<()> {
    let options = Options {
        readings: env_or("READINGS", 1_000_000)?,
        batch: env_or("BATCH", 1000)?,
        flush_readings: env_or("FLUSH_READINGS", 40_000)?,
        piece_batches: env_or("PIECE_BATCHES", 4)?,
        rounds: env_or("ROUNDS", 5)?,
    };
    let now = TimestampMs::now();
    let shape = Shape::from_env(8, 300)?;
    let data = Dataset::generate(&shape, options.readings, options.batch, now.millis());
    let total = data.readings.len();
    println!(
        "generated {total} readings in {} bodies ({} series)",
        data.bodies.len(),
        data.series()
    );
    let warm_up = one_round(&data, &options, now)?;
    println!("  warm-up: {}", per_reading(&warm_up, total).join(", "));
    let mut rounds: Vec<[Duration; STAGES.len()]> = Vec::new();
    for round in 1..=options.rounds {
        let times = one_round(&data, &options, now)?;
        println!("  round {round}: {}", per_reading(&times, total).join(", "));
        rounds.push(times);
    }
    let medians: Vec<Duration> = (0..STAGES.len())
        .map(|stage| {
            let times: Vec<Duration> = rounds.iter().map(|r| r[stage]).collect();
            support::load::quantile(&times, 0.5)
        })
        .collect();
    let section = markdown(&options, &data, &medians, total);
    println!("\n{section}");
    if env_or("BENCH_WRITE_MD", 1)? != 0 {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        support::sections::write_section(&path, "pipeline", &section)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("updated {}", path.display());
    }
    Ok(())
}

/// Times every stage once over the whole data set.
fn one_round(
    data: &Dataset,
    options: &Options,
    now: TimestampMs,
) -> anyhow::Result<[Duration; STAGES.len()]> {
    let window = Window::at(now, 7 * 24 * 3_600_000);
    let settings = Settings::default();
    let mut times = [Duration::ZERO; STAGES.len()];

    let (plain, took) = timed(|| {
        data.bodies
            .iter()
            .map(|body| serde_json::from_slice::<JsonBody>(body).map(|b| b.api.len()))
            .sum::<Result<usize, _>>()
    });
    anyhow::ensure!(
        plain? == data.readings.len(),
        "the baseline read every reading"
    );
    times[0] = took;

    let (parsed, took) = timed(|| {
        data.bodies
            .iter()
            .map(|body| parse_json(body, &window))
            .collect::<Result<Vec<Vec<Reading>>, _>>()
    });
    let parsed = parsed.map_err(|e| anyhow::anyhow!("a generated body was refused: {e:?}"))?;
    times[1] = took;

    let (payloads, took) = timed(|| {
        parsed
            .into_iter()
            .map(|readings| encode(&Accepted { at: now, readings }))
            .collect::<Vec<Vec<u8>>>()
    });
    times[2] = took;

    let (decoded, took) = timed(|| {
        payloads
            .iter()
            .map(|payload| decode(payload).map(|accepted| accepted.readings))
            .collect::<Result<Vec<Vec<Reading>>, _>>()
    });
    times[3] = took;

    let seen = SeriesSeen::new(100_000);
    let mut decoded = decoded?.into_iter().flatten();
    let flushes: Vec<Vec<Reading>> = std::iter::from_fn(|| {
        let flush: Vec<Reading> = decoded.by_ref().take(options.flush_readings).collect();
        (!flush.is_empty()).then_some(flush)
    })
    .collect();
    let (batches, took) = timed(|| {
        flushes
            .into_iter()
            .map(|flush| WriteBatch::build(flush, &settings, &seen))
            .collect::<Vec<WriteBatch>>()
    });
    times[4] = took;

    let (rows, took) = timed(|| {
        let mut rows = 0;
        for (i, piece) in batches.chunks(options.piece_batches).enumerate() {
            let mut cells = Cells::default();
            for batch in piece {
                cells.add_batch(batch, TimestampMs::from_millis(0));
            }
            let piece = Piece {
                writer: uuid::Uuid::nil(),
                segment: i as u64,
                start: 0,
                last: 0,
            };
            rows += cells.into_rows(piece).len();
        }
        rows
    });
    anyhow::ensure!(rows > 0, "the pieces made no rollup rows");
    times[5] = took;
    Ok(times)
}

/// Runs `work`, returning what it made and how long it took.
fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let made = std::hint::black_box(work());
    (made, start.elapsed())
}

fn nanos_per_reading(time: Duration, total: usize) -> f64 {
    time.as_secs_f64() * 1e9 / total as f64
}

fn per_reading(times: &[Duration], total: usize) -> Vec<String> {
    times
        .iter()
        .zip(STAGES)
        .map(|(time, stage)| format!("{stage} {:.0} ns", nanos_per_reading(*time, total)))
        .collect()
}

fn markdown(options: &Options, data: &Dataset, medians: &[Duration], total: usize) -> String {
    let baseline = nanos_per_reading(medians[0], total);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Pipeline benchmark (the service's own CPU) — latest run\n"
    );
    let _ = writeln!(
        out,
        "- date: {} UTC; code: {}; load average at the end: {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
        support::sections::revision(),
        support::sections::load_average()
    );
    let _ = writeln!(
        out,
        "- command: `CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench pipeline`; one thread, no store, no network"
    );
    let _ = writeln!(
        out,
        "- data: {total} readings of {} series in bodies of {} ({:.0} bytes of JSON per reading); write batches of {} readings; rollup pieces of {} batches; median of {} rounds after a warm-up\n",
        data.series(),
        options.batch,
        data.body_bytes() as f64 / total as f64,
        options.flush_readings,
        options.piece_batches,
        options.rounds,
    );
    let _ = writeln!(out, "| stage | ns per reading | against the baseline |");
    let _ = writeln!(out, "| --- | --- | --- |");
    for (stage, time) in STAGES.iter().zip(medians) {
        let nanos = nanos_per_reading(*time, total);
        let _ = writeln!(out, "| {stage} | {nanos:.0} | {:.2} |", nanos / baseline);
    }
    let pipeline: Duration = medians[1..].iter().sum();
    let nanos = nanos_per_reading(pipeline, total);
    let _ = writeln!(
        out,
        "| **the stages together** | **{nanos:.0}** | **{:.2}** |",
        nanos / baseline
    );
    out
}
