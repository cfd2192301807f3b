//! PromQL benchmark (issue 14): a Grafana-like refresh of `examples/grafana-dashboard.json` —
//! its six panels (seven queries) over the last 24 hours at a 60 s step, run together as
//! Grafana does — on the embedded store and on Cassandra.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench promql
//! ```
//!
//! The same generated readings go into a fresh embedded store (temp dir) and a fresh migrated
//! keyspace, through each store's write path with their rollups: `READINGS` API readings of `svc-0` (plus a fifth
//! as many of `svc-1`, which the dashboard must skip) spread over 24 hours, 4 instances × 10
//! paths × 3 codes, and a host sample of each instance every 30 s. Then, in process, the
//! engine over `Queries` (what `/api/v1/query_range` runs) evaluates the dashboard's queries
//! (`$service` = `svc-0`, `$__rate_interval` = `5m`) concurrently, one warm-up refresh and
//! `ITERATIONS` measured ones. Reported: refresh latency p50 / p99 (all seven answered) and each
//! query's p50. The keyspace and the temp dir are removed at the end.
//!
//! Options (environment variables):
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `TIMEBUCKET_BENCH_CQL` | `127.0.0.1:9042` | the CQL node |
//! | `READINGS` | 100000 | API readings of the dashboard's service |
//! | `ITERATIONS` | 10 | measured refreshes per store |
//! | `BENCH_WRITE_MD` | 1 | 0: do not update BENCHMARKS.md |

mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timebucket::model::{
    ApiPath, ApiReading, HostGauges, HostReading, HttpMethod, InstanceName, Reading, ReadingId,
    ServiceName, StatusCode, TimestampMs,
};
use timebucket::promql::source::queries::QueriesSource;
use timebucket::promql::{Engine, EngineConfig, Query};
use timebucket::query::{Queries, QueryLimits};
use timebucket::store::cql::CqlStore;
use timebucket::store::embedded::EmbeddedStore;
use timebucket::store::{SeriesSeen, Store, WriteBatch};

use support::load::quantile;
use support::options::env_or;

const DAY_MS: i64 = 86_400_000;

/// The readings of the run, ending now.
fn generate(readings: usize, now: i64) -> Vec<Reading> {
    let mut rng = fastrand::Rng::with_seed(14);
    let mut out = Vec::with_capacity(readings * 2);
    let total = readings + readings / 5;
    for n in 0..total {
        let service = if n < readings { "svc-0" } else { "svc-1" };
        out.push(Reading::Api(ApiReading {
            id: ReadingId::new(),
            service: ServiceName::parse(service).unwrap(),
            instance: InstanceName::parse(&format!("i-{}", rng.usize(0..4))).unwrap(),
            method: HttpMethod::parse("GET").unwrap(),
            path: ApiPath::parse(&format!("/api/{}", rng.usize(0..10))).unwrap(),
            code: StatusCode::parse([200, 404, 500][rng.usize(0..3)]).unwrap(),
            duration_ms: (rng.f64() * 9.0).exp() * 0.2,
            count: rng.u32(1..=5),
            timestamp: TimestampMs::from_millis(now - rng.i64(0..DAY_MS)),
        }));
    }
    for instance in 0..4 {
        for k in 0..DAY_MS / 30_000 {
            out.push(Reading::Host(HostReading {
                id: ReadingId::new(),
                service: ServiceName::parse("svc-0").unwrap(),
                instance: InstanceName::parse(&format!("i-{instance}")).unwrap(),
                timestamp: TimestampMs::from_millis(now - k * 30_000),
                gauges: HostGauges {
                    cpu_percent: Some(rng.f64() * 100.0),
                    mem_used_bytes: Some(rng.i64(1 << 28..1 << 30)),
                    mem_total_bytes: Some(1 << 31),
                    available: Some(rng.u8(0..20) != 0),
                    ..HostGauges::default()
                },
            }));
        }
    }
    out
}

/// Writes `readings` with their partial rollups, as the flusher does (the engine reads
/// rollups where they serve a query exactly), each chunk a piece of its own.
async fn write<S: Store>(store: &S, readings: &[Reading]) -> anyhow::Result<()> {
    let writer = uuid::Uuid::new_v4();
    for (i, chunk) in readings.chunks(2_000).enumerate() {
        let piece = timebucket::rollup::Piece {
            writer,
            segment: i as u64,
            start: 0,
            last: 0,
        };
        let mut batch = WriteBatch::build(chunk.to_vec(), store.settings(), &SeriesSeen::new(0));
        batch.rollups = timebucket::rollup::partials(
            chunk,
            piece,
            timebucket::model::TimestampMs::from_millis(0),
        );
        store.write(&batch).await?;
    }
    Ok(())
}

/// The dashboard's queries, variables filled in.
fn dashboard() -> anyhow::Result<Vec<(String, Query)>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            let filled = expr
                .replace("$service", "svc-0")
                .replace("$__rate_interval", "5m");
            let name = format!(
                "{} {}",
                panel["title"].as_str().unwrap_or_default(),
                target["refId"].as_str().unwrap_or_default()
            );
            out.push((
                name,
                Query::parse(&filled).map_err(|e| anyhow::anyhow!("{filled}: {e}"))?,
            ));
        }
    }
    Ok(out)
}

/// Refresh latencies and per-query latencies over `iterations` refreshes (after a warm-up).
async fn refreshes<S: Store>(
    store: Arc<S>,
    queries: &[(String, Query)],
    now: i64,
    iterations: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Vec<Duration>>)> {
    let engine = Engine::new(
        QueriesSource::new(Queries::new(store, QueryLimits::default())),
        EngineConfig::default(),
    );
    let end = TimestampMs::from_millis(now.div_euclid(60_000) * 60_000);
    let start = TimestampMs::from_millis(end.millis() - DAY_MS);
    let mut total = Vec::new();
    let mut each = vec![Vec::new(); queries.len()];
    for round in 0..=iterations {
        let began = Instant::now();
        let runs = queries.iter().map(|(name, q)| {
            let engine = engine.clone();
            async move {
                let began = Instant::now();
                let value = engine.range(q, start, end, Duration::from_secs(60)).await;
                value.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                Ok::<_, anyhow::Error>(began.elapsed())
            }
        });
        let times = futures::future::try_join_all(runs).await?;
        if round > 0 {
            total.push(began.elapsed());
            for (i, t) in times.into_iter().enumerate() {
                each[i].push(t);
            }
        }
    }
    Ok((total, each))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let readings = env_or("READINGS", 100_000usize)?;
    let iterations = env_or("ITERATIONS", 10usize)?;
    let node = std::env::var("TIMEBUCKET_BENCH_CQL").unwrap_or_else(|_| "127.0.0.1:9042".into());
    let now = TimestampMs::now().millis();
    let data = generate(readings, now);
    let queries = dashboard()?;
    println!(
        "{} readings, {} queries, {iterations} refreshes per store",
        data.len(),
        queries.len()
    );

    let dir = tempfile::tempdir()?;
    let embedded = Arc::new(EmbeddedStore::open(dir.path())?);
    write(&*embedded, &data).await?;
    let embedded_run = refreshes(embedded, &queries, now, iterations).await?;

    let session = support::cql::session(&node).await?;
    let keyspace = support::cql::migrated_keyspace(&session, "promql").await?;
    let outcome = async {
        let store = Arc::new(CqlStore::open(std::slice::from_ref(&node), &keyspace).await?);
        write(&*store, &data).await?;
        refreshes(store, &queries, now, iterations).await
    }
    .await;
    support::cql::drop_keyspace(&session, &keyspace).await?;
    let cql_run = outcome?;

    let mut md = String::new();
    writeln!(md, "## PromQL dashboard refresh — latest run\n")?;
    writeln!(
        md,
        "`cargo bench --bench promql`: `examples/grafana-dashboard.json` (6 panels, {} queries, run \
         together), last 24 h at a 60 s step (1,441 points per series), {readings} API readings of \
         the service (+{} of another) and {} host samples; {iterations} refreshes after a warm-up, \
         in process through the engine over `Queries`.\n",
        queries.len(),
        readings / 5,
        4 * DAY_MS / 30_000,
    )?;
    writeln!(md, "| store | refresh p50 | refresh p99 |")?;
    writeln!(md, "| --- | ---: | ---: |")?;
    for (name, (total, _)) in [("embedded", &embedded_run), ("Cassandra", &cql_run)] {
        writeln!(
            md,
            "| {name} | {} | {} |",
            ms(quantile(total, 0.5)),
            ms(quantile(total, 0.99))
        )?;
    }
    writeln!(
        md,
        "\nEach query's p50 (they run concurrently, so they share the 2 cores):\n"
    )?;
    writeln!(md, "| query | embedded | Cassandra |")?;
    writeln!(md, "| --- | ---: | ---: |")?;
    for (i, (name, _)) in queries.iter().enumerate() {
        writeln!(
            md,
            "| {name} | {} | {} |",
            ms(quantile(&embedded_run.1[i], 0.5)),
            ms(quantile(&cql_run.1[i], 0.5))
        )?;
    }
    println!("{md}");
    if env_or("BENCH_WRITE_MD", 1u8)? == 1 {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        support::sections::write_section(&path, "promql", &md)?;
    }
    Ok(())
}
