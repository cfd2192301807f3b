//! Query benchmark: the query planner's fan-out against a plain sequential reader, on
//! the same node, the same rows, in the same run.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench query
//! ```
//!
//! A fresh migrated keyspace (default settings: 1 h buckets, 4 shards) is seeded with `READINGS`
//! API readings of one service spread over 24 hours (through the store's driver write path).
//! Then, for the last 1 h, 6 h and 24 h of the data (ranges that do not start on a bucket
//! boundary, so 1 h touches two buckets), each of these reads every reading of the range, in
//! turn, `ITERATIONS` times after one warm-up round (the order rotates every round):
//!
//! - **baseline**: one plain paged query per partition (`timestamp >= ? AND timestamp <= ?`,
//!   page size 1,000 rows), partitions one after another, each row decoded into owned values;
//! - **fan-out**: the planner (`query::plan`) and the ordered merge (`query::fanout`), what
//!   `/v1/readings` pages through: all partitions of the range in flight together (up to 32),
//!   keyset pages of 1,000 rows, rows validated into readings and merged in
//!   `(timestamp, reading_id)` order;
//! - **stats**: `Queries::stats` with a 1-minute step, in process: the unordered fan-out plus
//!   the per-step aggregation and percentile sketches.
//!
//! Every read must return exactly the readings seeded in its range (the bench fails otherwise).
//! Reported: p50 and p99 latency of each, and the baseline / fan-out ratio. The keyspace is
//! dropped at the end.
//!
//! Options (environment variables):
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `TIMEBUCKET_BENCH_CQL` | `127.0.0.1:9042` | the CQL node |
//! | `READINGS` | 240000 | readings seeded over 24 h (10,000 an hour) |
//! | `INSTANCES` | 6 | instances of the service |
//! | `PATHS` | 20 | paths (× 6 methods) |
//! | `ITERATIONS` | `40,30,20` | measured rounds for 1 h, 6 h, 24 h (a p50 of ten rounds moved by ±0.1x between runs) |
//! | `PAGE_ROWS` | 1000 | rows per page, for both readers |
//! | `CONCURRENCY` | 32 | the fan-out's partition reads in flight |
//! | `SEED` | 42 | seed of the generated data |
//! | `BENCH_WRITE_MD` | 1 | 0: do not update BENCHMARKS.md |

#[path = "query/cpu.rs"]
mod cpu;
#[path = "query/data.rs"]
mod data;
#[path = "query/report.rs"]
mod report;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use support::options::env_or;
use support::{range_reads, sections};
use timebucket::model::{ApiReading, ServiceName, TimeBucket, TimestampMs};
use timebucket::query::params::TimeRange;
use timebucket::query::{limits::PAGE_ROWS, Queries, QueryLimits};
use timebucket::store::cql::{self, CqlStore};
use timebucket::store::Store;

const HOUR_MS: i64 = 3_600_000;
const SERVICE: &str = "checkout";

/// One way of reading a range.
#[derive(Debug, Clone, Copy)]
enum Reader {
    Baseline,
    FanOut,
    Stats,
}

/// The fan-out's ordered merge over every partition of `range`.
async fn fan_out(
    store: &Arc<CqlStore>,
    limits: &QueryLimits,
    service: &ServiceName,
    range: TimeRange,
) -> anyhow::Result<Vec<ApiReading>> {
    let mut merge = range_reads::ordered_merge(store, limits, service, range);
    let mut rows = Vec::new();
    while let Some(row) = merge.next().await? {
        rows.push(row);
    }
    Ok(rows)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let node: String = env_or("TIMEBUCKET_BENCH_CQL", "127.0.0.1:9042".to_owned())?;
    let session = cql::connect(std::slice::from_ref(&node))
        .await
        .with_context(|| {
            format!("cannot reach {node}; start a node with `scripts/cassandra start`")
        })?;
    let keyspace = data::migrated_keyspace(&session).await?;
    let outcome = run(&node, &keyspace).await;
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
        .await
        .with_context(|| format!("dropping {keyspace}"))?;
    outcome
}

async fn run(node: &str, keyspace: &cql::Keyspace) -> anyhow::Result<()> {
    let readings_total: usize = env_or("READINGS", 240_000)?;
    let instances: usize = env_or("INSTANCES", 6)?;
    let paths: usize = env_or("PATHS", 20)?;
    let seed: u64 = env_or("SEED", 42)?;
    let iterations = range_reads::rounds_per_range(&env_or("ITERATIONS", "40,30,20".to_owned())?)?;

    let load = report::load_average();
    let store = Arc::new(CqlStore::open(&[node.to_owned()], keyspace).await?);
    // The data ends 13 minutes before an hour boundary, so no range starts on a bucket.
    let end = TimestampMs::now().millis() / HOUR_MS * HOUR_MS - 13 * 60_000;
    let start = end - 24 * HOUR_MS;
    let readings = data::readings(
        SERVICE,
        start,
        24 * HOUR_MS,
        readings_total,
        instances,
        paths,
        seed,
    );
    let seeding = Instant::now();
    data::seed(&store, &readings).await?;
    let seeding = seeding.elapsed();
    println!("seeded {readings_total} readings in {seeding:.1?}");

    let limits = QueryLimits {
        page_rows: env_or("PAGE_ROWS", PAGE_ROWS)?,
        concurrency: env_or("CONCURRENCY", QueryLimits::default().concurrency)?,
        ..QueryLimits::default()
    };
    let queries = Queries::new(store.clone(), limits);
    let baseline = data::prepare_baseline(store.session(), keyspace, limits.page_rows).await?;
    let service = ServiceName::parse(SERVICE).map_err(anyhow::Error::msg)?;
    let node_pid = cpu::node_pid();
    let mut results = Vec::new();
    for ((label, hours), rounds) in [("1 h", 1), ("6 h", 6), ("24 h", 24)]
        .into_iter()
        .zip(iterations)
    {
        let (from, to) = (end - hours * HOUR_MS, end);
        let range = TimeRange {
            from: TimestampMs::from_millis(from),
            to: TimestampMs::from_millis(to),
        };
        let inside: Vec<&ApiReading> = readings
            .iter()
            .filter(|r| range.contains(r.timestamp))
            .collect();
        let requests: u64 = inside.iter().map(|r| u64::from(r.count)).sum();
        let stats_request = range_reads::stats_request(&service, range, range_reads::Source::Raw)?;
        let mut samples: [Vec<Duration>; 3] = Default::default();
        let mut spent: [cpu::Spent; 3] = Default::default();
        let readers = [Reader::Baseline, Reader::FanOut, Reader::Stats];
        for round in 0..=rounds {
            for k in 0..3 {
                let reader = readers[(round + k) % 3];
                let cpu_before = cpu::Sample::now(node_pid.as_deref());
                let started = Instant::now();
                let (rows, total) = match reader {
                    Reader::Baseline => {
                        let rows = data::sequential(
                            store.session(),
                            &baseline,
                            SERVICE,
                            store.settings(),
                            (from, to),
                        )
                        .await?;
                        let total: u64 = rows.iter().map(|r| u64::try_from(r.7).unwrap_or(0)).sum();
                        (rows.len(), total)
                    }
                    Reader::FanOut => {
                        let rows = fan_out(&store, &limits, &service, range).await?;
                        if !rows
                            .windows(2)
                            .all(|w| (w[0].timestamp, w[0].id) < (w[1].timestamp, w[1].id))
                        {
                            bail!("the fan-out's rows are out of order");
                        }
                        (rows.len(), rows.iter().map(|r| u64::from(r.count)).sum())
                    }
                    Reader::Stats => {
                        let answer = queries.stats(&stats_request).await?;
                        (inside.len(), range_reads::requests_counted(&answer))
                    }
                };
                let elapsed = started.elapsed();
                let cpu_after = cpu::Sample::now(node_pid.as_deref());
                if rows != inside.len() || total != requests {
                    bail!("{reader:?} over {label} read {rows} readings / {total} requests, seeded {} / {requests}", inside.len());
                }
                if round > 0 {
                    samples[reader as usize].push(elapsed);
                    spent[reader as usize].add(cpu_before, cpu_after, elapsed);
                }
            }
        }
        let partitions = TimeBucket::covering(range.from, range.to, store.settings().bucket_width)
            .len()
            * usize::from(store.settings().shards.get());
        let result = report::RangeResult::new(label, partitions, inside.len(), samples, spent);
        println!("{}", result.line());
        results.push(result);
    }
    let section = report::section(&report::Run {
        readings: readings_total,
        instances,
        paths,
        seeding,
        results,
        cassandra: report::cassandra_version(store.session()).await,
        page_rows: limits.page_rows,
        concurrency: limits.concurrency,
        load,
    });
    println!("{section}");
    if env_or("BENCH_WRITE_MD", 1)? != 0 {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        sections::write_section(&path, "query", &section)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("updated {}", path.display());
    }
    Ok(())
}
