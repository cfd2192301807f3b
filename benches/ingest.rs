//! Ingest benchmark: the real `timebucket` binary against a real CQL node, compared
//! with the best a plain driver client achieves on the same node in the same run.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench ingest
//! ```
//!
//! Phases:
//! 1. **Baseline**: in a fresh migrated keyspace, the same readings are written straight through
//!    the driver into `metric_readings` (prepared INSERT, token-aware session, rows grouped by
//!    partition exactly like the service, unlogged single-partition batches) for each
//!    `BASELINE` configuration; the best rows/s is the baseline. It writes only the reading
//!    rows; the service also keeps `latest_api_readings` and `series_by_bucket` up to date, and
//!    that extra work counts against it.
//! 2. **End to end**: in another fresh keyspace, `timebucket serve` (the release binary, default
//!    flags) takes the readings over HTTP from `CLIENTS` concurrent posters (`BATCH` readings per
//!    request, bodies serialized before timing). Reported: accepted readings/s and ack latency
//!    p50/p99 while posting, stored readings/s from the first post until the service's own
//!    `timebucket_readings_flushed_total` reaches the total, and the server's peak RSS. Then the
//!    keyspace is scanned: every posted reading must be stored exactly once (compared by content,
//!    as a multiset), or the bench fails.
//!    There are `ROUNDS` rounds, each an end-to-end run followed by a trial of the best baseline
//!    configuration, so both sides see the same conditions on a shared machine; the best round
//!    is compared with the best of those paired trials (noise only ever slows a step down):
//!    the same number of samples on each side. Phase 1's trials only choose the configuration:
//!    the best of them is the best of more draws, picked for being the best, so comparing with
//!    it measured the node's noise as much as the service (the node's CPU per row varies by
//!    ±10% from trial to trial). That comparison is still printed, for runs before this rule.
//!    Every trial and round gets a fresh keyspace and starts once the node has gone quiet.
//! 3. **Acceptance only** (single node only): the binary is started through a TCP proxy to the
//!    node, which is then cut, so the flusher cannot write (it backs off and retries) and
//!    acceptance into the WAL is measured without the flusher or Cassandra competing for the
//!    CPU: `ACCEPT_READINGS` readings, cycling through the same bodies (the service gives every
//!    reading a new id), with `--max-backlog-bytes` raised so nothing is refused. Reported:
//!    accepted readings/s, ack latency, and RSS with the resulting WAL backlog. Then the proxy is restored and the
//!    flusher drains that backlog for `DRAIN_SECONDS` while RSS is watched (the catch-up after
//!    an outage is when a flusher that buffered too much would blow up). The process is then
//!    killed and its WAL discarded.
//!
//! Options (environment variables):
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `TIMEBUCKET_BENCH_CQL` | `127.0.0.1:9042` | the CQL contact points, comma-separated; with more than one (a cluster: `$(scripts/cassandra cluster nodes)`), phase 3 is left out and the figures go to the `ingest-cluster` section of BENCHMARKS.md |
//! | `REPLICATION` | `SimpleStrategy:1` | the keyspaces' replication, as `migrate up --replication` takes it (`NetworkTopologyStrategy:datacenter1=3` on the local cluster) |
//! | `CONSISTENCY` | `LOCAL_QUORUM` | the write consistency of the baseline and of the service (`--write-consistency`) |
//! | `READINGS` | 1000000 | readings posted end to end (and written by each baseline trial) |
//! | `BATCH` | 1000 | readings per request |
//! | `SERVICES` | 8 | services in the generated fleet |
//! | `INSTANCES` | 6 | instances per service |
//! | `PATHS` | 20 | endpoints (method + path) per service |
//! | `CLIENTS` | 8 | concurrent HTTP posters |
//! | `ROUNDS` | 3 | end-to-end rounds (each followed by a baseline trial) |
//! | `ACCEPT_READINGS` | 5000000 | readings posted in phase 3 |
//! | `BASELINE` | `256x32,128x64,512x16` | baseline trials, `ROWS_PER_BATCH x BATCHES_IN_FLIGHT` |
//! | `SETTLE_SECONDS` | 2 | pause before each step; then, if the node's pid is known, wait until it uses < 0.2 cores (its memtable flushes and compactions of the previous step are done) ... |
//! | `SETTLE_MAX_SECONDS` | 30 | ... for at most this long |
//! | `DRAIN_SECONDS` | 15 | how long phase 3 watches the backlog drain once the store is back |
//! | `SEED` | 42 | seed of the generated data |
//! | `TIMEBUCKET_BENCH_BIN` | the `timebucket` built by cargo for this bench | binary to run |
//! | `TIMEBUCKET_BENCH_CQL_PID` | from `scripts/cassandra`'s pid files | pids of the CQL nodes (comma-separated), to report their CPU |
//! | `BENCH_WRITE_MD` | 1 | 0: do not update BENCHMARKS.md |
//!
//! The generated fleet: `SERVICES` services × `INSTANCES` instances × `PATHS` endpoints with a
//! Zipf-like popularity, status codes mostly 2xx with some 3xx/4xx/5xx, log-normal durations
//! around a per-endpoint median (5xx slower), 5% of readings summarising 2-50 requests, and
//! timestamps spread over the last five minutes. Each body mixes readings of every service, as
//! a central collector would send them.
//!
//! Keyspaces (`tb_bench_*`), the server processes and temporary directories are removed at the
//! end, also when a phase fails.

mod support;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use scylla::client::execution_profile::ExecutionProfileHandle;
use scylla::client::session::Session;
use scylla::statement::Consistency;
use timebucket::migrate::Replication;
use timebucket::store::cql::session::{level_name, parse_level, Purpose};
use timebucket::store::cql::{Keyspace, SessionConfig};

use support::cpu::{Snapshot, Usage};
use support::cql::{self as db, BaselineConfig};
use support::data::{Dataset, Shape};
use support::disk::Footprint;
use support::load::{post_all, LoadOutcome};
use support::options::env_or;
use support::proxy::Proxy;
use support::report::{
    best_step, Acceptance, Posting, Report, Round, Step, StepKind, PAIRED_OR_SELECTION,
};
use support::server::{scrape, scrape_all, Sampler, Server};

/// The parsed options.
struct Options {
    cql: Vec<String>,
    replication: Replication,
    consistency: Consistency,
    readings: usize,
    batch: usize,
    shape: Shape,
    clients: usize,
    accept_readings: usize,
    baseline: Vec<BaselineConfig>,
    rounds: usize,
    settle: Duration,
    settle_max: Duration,
    drain: Duration,
    write_md: bool,
}

impl Options {
    fn from_env() -> anyhow::Result<Options> {
        let positive = |name: &str, default: usize| -> anyhow::Result<usize> {
            let n = env_or(name, default)?;
            if n == 0 {
                bail!("{name} must be at least 1");
            }
            Ok(n)
        };
        let baseline = std::env::var("BASELINE").unwrap_or_else(|_| "256x32,128x64,512x16".into());
        let cql = std::env::var("TIMEBUCKET_BENCH_CQL").unwrap_or_else(|_| "127.0.0.1:9042".into());
        let replication =
            std::env::var("REPLICATION").unwrap_or_else(|_| "SimpleStrategy:1".into());
        let consistency = std::env::var("CONSISTENCY")
            .unwrap_or_else(|_| level_name(SessionConfig::DEFAULT_WRITE_CONSISTENCY).into());
        Ok(Options {
            cql: cql.split(',').map(|n| n.trim().to_owned()).collect(),
            replication: replication
                .parse()
                .map_err(|e| anyhow::anyhow!("REPLICATION={replication}: {e}"))?,
            consistency: parse_level(&consistency, Purpose::Write)
                .map_err(|e| anyhow::anyhow!("CONSISTENCY={consistency}: {e}"))?,
            readings: positive("READINGS", 1_000_000)?,
            batch: positive("BATCH", 1000)?,
            shape: Shape {
                services: positive("SERVICES", 8)?,
                instances: positive("INSTANCES", 6)?,
                paths: positive("PATHS", 20)?,
                spread_seconds: 300,
                seed: env_or("SEED", 42u64)?,
            },
            clients: positive("CLIENTS", 8)?,
            accept_readings: positive("ACCEPT_READINGS", 5_000_000)?,
            baseline: baseline
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?,
            rounds: positive("ROUNDS", 3)?,
            settle: Duration::from_secs(env_or("SETTLE_SECONDS", 2u64)?),
            settle_max: Duration::from_secs(env_or("SETTLE_MAX_SECONDS", 30u64)?),
            drain: Duration::from_secs(env_or("DRAIN_SECONDS", 15u64)?),
            write_md: env_or("BENCH_WRITE_MD", 1u8)? != 0,
        })
    }

    /// A cluster rather than one node: phase 3 cannot cut it, and its figures have their own
    /// section.
    fn cluster(&self) -> bool {
        self.cql.len() > 1
    }

    /// The service's and the baseline's session settings.
    fn session(&self) -> SessionConfig {
        SessionConfig {
            write_consistency: self.consistency,
            ..SessionConfig::default()
        }
    }

    fn parameters(&self, data: &Dataset) -> Vec<(String, String)> {
        let per_reading = data.body_bytes() as f64 / data.readings.len() as f64;
        [
            ("READINGS", data.readings.len().to_string()),
            ("BATCH", self.batch.to_string()),
            ("SERVICES", self.shape.services.to_string()),
            ("INSTANCES", self.shape.instances.to_string()),
            ("PATHS", self.shape.paths.to_string()),
            ("CLIENTS", self.clients.to_string()),
            ("ROUNDS", self.rounds.to_string()),
            ("ACCEPT_READINGS", self.accept_readings.to_string()),
            ("DRAIN_SECONDS", self.drain.as_secs().to_string()),
            (
                "BASELINE",
                self.baseline
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("REPLICATION", self.replication.to_string()),
            ("CONSISTENCY", level_name(self.consistency).to_owned()),
            ("series", data.series().to_string()),
            ("JSON bytes/reading", format!("{per_reading:.0}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs bench targets without it,
    // and a test run must not start a multi-minute benchmark against a database.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ingest bench: skipped (not run by `cargo bench`)");
        return ExitCode::SUCCESS;
    }
    let options = match Options::from_env() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ningest bench FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let data = Dataset::generate(&options.shape, options.readings, options.batch, now_ms);
    println!(
        "generated {} readings in {} bodies ({:.1} MiB of JSON, {} series) in {:.1} s",
        data.readings.len(),
        data.bodies.len(),
        data.body_bytes() as f64 / 1048576.0,
        data.series(),
        started.elapsed().as_secs_f64()
    );
    let (session, writes) = db::session_with(&options.cql, &options.session()).await?;
    let session = Arc::new(session);
    let mut keyspaces = Vec::new();
    let outcome = phases(&options, &session, &writes, &data, &mut keyspaces).await;
    if options.cluster() {
        // See `done_with`: the nodes finish their writes and hints first.
        support::cpu::settle(options.settle, options.settle_max, 0.2).await;
    }
    for keyspace in &keyspaces {
        if let Err(e) = db::drop_keyspace(&session, keyspace).await {
            eprintln!("warning: {e:#}");
        }
    }
    let report = outcome?;
    let section = report.markdown();
    println!("\n{section}");
    if options.write_md {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        let name = if options.cluster() {
            "ingest-cluster"
        } else {
            "ingest"
        };
        support::sections::write_section(&path, name, &section)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!("total bench time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// A fresh migrated keyspace, remembered for the final cleanup, after a pause that lets the node
/// finish the background work of the previous phase.
async fn fresh_keyspace(
    options: &Options,
    session: &Session,
    role: &str,
    keyspaces: &mut Vec<Keyspace>,
) -> anyhow::Result<Keyspace> {
    let keyspace = db::migrated_keyspace_with(session, role, options.replication.clone()).await?;
    keyspaces.push(keyspace.clone());
    let waited = support::cpu::settle(options.settle, options.settle_max, 0.2).await;
    if waited > options.settle + Duration::from_secs(2) {
        println!(
            "  (waited {:.0} s for the node to go quiet)",
            waited.as_secs_f64()
        );
    }
    Ok(keyspace)
}

/// Which baseline trial to run, and how it counts.
struct Trial {
    config: BaselineConfig,
    label: String,
    kind: StepKind,
}

/// One baseline trial in its own keyspace.
async fn baseline_trial(
    options: &Options,
    session: &Arc<Session>,
    writes: &ExecutionProfileHandle,
    data: &Dataset,
    Trial {
        config,
        label,
        kind,
    }: Trial,
    keyspaces: &mut Vec<Keyspace>,
) -> anyhow::Result<Step> {
    let keyspace = fresh_keyspace(options, session, "base", keyspaces).await?;
    let settings = db::settings(session, &keyspace).await?;
    let before = Snapshot::take(None);
    let elapsed = db::write_baseline(session, writes, &keyspace, &settings, data, config).await?;
    let usage = before.until(&Snapshot::take(None));
    let total = data.readings.len();
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "  {label}: {total} rows in {:.2} s = {rate:.0} rows/s\n    CPU: {}",
        elapsed.as_secs_f64(),
        usage.describe()
    );
    done_with(options, session, &keyspace).await?;
    Ok(Step {
        label,
        kind,
        rate,
        elapsed,
        cpu: usage,
    })
}

/// A step's keyspace is no longer needed: dropped now on a single node; on a cluster, left to
/// the end of the run (in `keyspaces`). Dropping a keyspace while the slowest replica still
/// receives its writes (or hints of writes that timed out on it) trips a race in Cassandra 5.0
/// ("Unknown CF" while the commit log is recycled) that leaves that node announcing a stale
/// schema version, and every later schema change waits for an agreement that never comes.
async fn done_with(
    options: &Options,
    session: &Session,
    keyspace: &Keyspace,
) -> anyhow::Result<()> {
    if options.cluster() {
        return Ok(());
    }
    db::drop_keyspace(session, keyspace).await
}

/// One end-to-end round in its own keyspace, checked row by row at the end; with `measure`, its
/// keyspace is then flushed, compacted and measured on disk.
async fn end_to_end(
    options: &Options,
    session: &Arc<Session>,
    data: &Dataset,
    label: String,
    measure: bool,
    keyspaces: &mut Vec<Keyspace>,
) -> anyhow::Result<(Step, Round, Option<Footprint>)> {
    let total = data.readings.len();
    let keyspace = fresh_keyspace(options, session, "e2e", keyspaces).await?;
    let dir = tempfile::Builder::new().prefix("tb-bench-e2e").tempdir()?;
    let nodes = options.cql.join(",");
    let consistency = level_name(options.consistency);
    let mut server = Server::start(
        Some((&nodes, keyspace.as_str())),
        dir.path(),
        &["--write-consistency", consistency],
    )
    .await?;
    let sampler = Sampler::start(server.pid(), server.url.clone());
    let bodies = Arc::new(data.bodies.clone());
    let before = Snapshot::take(Some(server.pid()));
    let load = post_all(
        &server.url,
        bodies,
        options.batch,
        data.bodies.len(),
        options.clients,
    )
    .await?;
    let posted = Snapshot::take(Some(server.pid()));
    println!(
        "  {label}: accepted {} readings in {:.2} s = {:.0}/s; ack p50 {:.1} ms, p99 {:.1} ms",
        load.accepted,
        load.elapsed().as_secs_f64(),
        load.rate(),
        load.quantile(0.5).as_secs_f64() * 1000.0,
        load.quantile(0.99).as_secs_f64() * 1000.0
    );
    let stored_after =
        wait_stored(&mut server, &load, total as f64, Duration::from_secs(900)).await?;
    let usage = before.until(&Snapshot::take(Some(server.pid())));
    let posting_cpu = before.until(&posted);
    let peak_rss = server.peak_rss()?;
    let (max_rss, max_backlog) = sampler.finish().await;
    let client = reqwest::Client::new();
    let [flushes, flush_seconds, pieces, partial_rows] = scrape_all(
        &client,
        &server.url,
        [
            "timebucket_flush_duration_seconds_count",
            "timebucket_flush_duration_seconds_sum",
            "timebucket_rollup_pieces_total",
            "timebucket_rollup_partial_rows_total",
        ],
    )
    .await?;
    let (pieces, partial_rows) = (pieces as u64, partial_rows as u64);
    let warnings = server.log_warnings();
    for line in warnings.iter().take(3) {
        println!("    service log: {line}");
    }
    let rate = total as f64 / stored_after.as_secs_f64();
    println!(
        "    all stored {:.2} s after the first post = {rate:.0} readings/s; peak RSS {:.1} MiB; {} flushes, mean {:.1} ms; {pieces} rollup pieces, {partial_rows} rollup partials; {} WARN/ERROR lines in the service log\n    CPU posting: {}\n    CPU first post -> all stored: {}",
        stored_after.as_secs_f64(),
        peak_rss.max(max_rss) as f64 / 1048576.0,
        flushes,
        flush_seconds / flushes.max(1.0) * 1000.0,
        warnings.len(),
        posting_cpu.describe(),
        usage.describe()
    );
    server.stop(Duration::from_secs(15)).await?;
    drop(dir);
    let verdict = db::verify(session, &keyspace, data).await?;
    db::require_exact(&verdict, total)?;
    println!(
        "    verified: {} rows, each posted reading exactly once",
        verdict.stored
    );
    let footprint = if measure {
        let keyspace = keyspace.to_string();
        let nodes = options.cql.len();
        let before = Snapshot::take(None);
        let mut footprint =
            tokio::task::spawn_blocking(move || support::disk::measure(&keyspace, nodes)).await??;
        let usage = before.until(&Snapshot::take(None));
        if let Some(f) = footprint.as_mut() {
            // The nodes' own work (memtable flushes, the major compaction), not nodetool's JVMs.
            f.compaction_cpu_seconds = usage.node.map(|cores| cores * usage.wall.as_secs_f64());
        }
        match &footprint {
            Some(f) => println!(
                "    on disk after flush + compaction: {:.1} bytes/reading per replica (keyspace), compression {:.2}; Cassandra CPU for them {:.1} s",
                f.keyspace_bytes as f64 / f.nodes as f64 / total as f64,
                f.compression_ratio,
                f.compaction_cpu_seconds.unwrap_or(f64::NAN)
            ),
            None => println!("    on disk: not measured (the nodes' data is not in this checkout)"),
        }
        footprint
    } else {
        None
    };
    done_with(options, session, &keyspace).await?;
    let step = Step {
        label,
        kind: StepKind::EndToEnd,
        rate,
        elapsed: stored_after,
        cpu: usage,
    };
    let round = Round {
        posting: posting(&load, peak_rss, max_rss, max_backlog, posting_cpu),
        stored_rate: rate,
        stored_after,
        flushes: flushes as u64,
        flush_mean: Duration::from_secs_f64(flush_seconds / flushes.max(1.0)),
        pieces,
        partial_rows,
        warnings: warnings.len(),
        verified: verdict.stored,
    };
    Ok((step, round, footprint))
}

async fn phases(
    options: &Options,
    session: &Arc<Session>,
    writes: &ExecutionProfileHandle,
    data: &Dataset,
    keyspaces: &mut Vec<Keyspace>,
) -> anyhow::Result<Report> {
    let cassandra = cassandra_version(session, options).await;
    let total = data.readings.len();

    // Phase 1: which baseline configuration is best here, each in its own keyspace.
    let phase_started = Instant::now();
    println!("\n== phase 1: driver baseline configurations, {total} rows per trial");
    let mut timeline = Vec::new();
    for config in &options.baseline {
        let step = baseline_trial(
            options,
            session,
            writes,
            data,
            Trial {
                config: *config,
                label: format!("baseline {config}"),
                kind: StepKind::Selection,
            },
            keyspaces,
        )
        .await?;
        timeline.push(step);
    }
    let best_config = options.baseline[(0..timeline.len())
        .max_by(|a, b| timeline[*a].rate.total_cmp(&timeline[*b].rate))
        .context("BASELINE lists no configuration")?];
    println!(
        "  best: {best_config} ({:.0} s)",
        phase_started.elapsed().as_secs_f64()
    );

    // Phase 2: end-to-end rounds, each followed by the best baseline configuration again, so
    // both sides see the same conditions; the best of each side is compared.
    let mut rounds = Vec::new();
    let mut disk = None;
    for round in 1..=options.rounds {
        let phase_started = Instant::now();
        println!(
            "\n== phase 2, round {round}/{}: end to end, {total} readings, {} clients; then baseline {best_config}",
            options.rounds, options.clients
        );
        let (step, result, footprint) = end_to_end(
            options,
            session,
            data,
            format!("end to end, round {round}"),
            round == options.rounds,
            keyspaces,
        )
        .await?;
        timeline.push(step);
        rounds.push(result);
        disk = disk.or(footprint);
        let step = baseline_trial(
            options,
            session,
            writes,
            data,
            Trial {
                config: best_config,
                label: format!("baseline {best_config}, round {round}"),
                kind: StepKind::Paired,
            },
            keyspaces,
        )
        .await?;
        timeline.push(step);
        println!("  ({:.0} s)", phase_started.elapsed().as_secs_f64());
    }
    let best = |kinds: &[StepKind]| best_step(&timeline, kinds).map_or(0.0, |s| s.rate);
    let (e2e, baseline) = (best(&[StepKind::EndToEnd]), best(&[StepKind::Paired]));
    let all = best(&PAIRED_OR_SELECTION);
    println!(
        "  best end to end {e2e:.0} readings/s / best baseline trial of the rounds {baseline:.0} rows/s = {:.2} \
         (against the best of every trial, {all:.0} rows/s: {:.2})",
        e2e / baseline,
        e2e / all
    );

    // Phase 3: acceptance only, the store cut off (one node only: a proxy in front of one node
    // of a cluster cuts nothing, the driver reaches the others directly).
    let accept = if options.cluster() {
        println!("\n== phase 3: not run on a cluster");
        None
    } else {
        Some(acceptance(options, session, data, keyspaces).await?)
    };

    Ok(Report {
        title: if options.cluster() {
            format!("Ingest benchmark on a {}-node cluster", options.cql.len())
        } else {
            "Ingest benchmark".into()
        },
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        command: command_line(),
        revision: revision(),
        machine: machine(),
        cassandra,
        parameters: options.parameters(data),
        timeline,
        rounds,
        accept,
        disk,
    })
}

/// Phase 3: acceptance only, the store cut off; then the store back, draining the backlog.
async fn acceptance(
    options: &Options,
    session: &Arc<Session>,
    data: &Dataset,
    keyspaces: &mut Vec<Keyspace>,
) -> anyhow::Result<Acceptance> {
    let phase_started = Instant::now();
    let posts = options.accept_readings.div_ceil(options.batch);
    println!(
        "\n== phase 3: acceptance with the store cut, {} readings, {} clients",
        posts * options.batch,
        options.clients
    );
    let keyspace = fresh_keyspace(options, session, "accept", keyspaces).await?;
    let proxy = Proxy::start(options.cql[0].clone()).await;
    let dir = tempfile::Builder::new()
        .prefix("tb-bench-accept")
        .tempdir()?;
    let mut server = Server::start(
        Some((&proxy.addr.to_string(), keyspace.as_str())),
        dir.path(),
        &["--max-backlog-bytes", "1000000000000"],
    )
    .await?;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sampler = Sampler::start(server.pid(), server.url.clone());
    let bodies = Arc::new(data.bodies.clone());
    let before = Snapshot::take(Some(server.pid()));
    let load = post_all(&server.url, bodies, options.batch, posts, options.clients).await?;
    let accept_cpu = before.until(&Snapshot::take(Some(server.pid())));
    server.check_alive()?;
    let client = reqwest::Client::new();
    let [flushed, backlog] = scrape_all(
        &client,
        &server.url,
        [
            "timebucket_readings_flushed_total",
            "timebucket_wal_backlog_bytes",
        ],
    )
    .await?;
    let backlog = backlog as u64;
    let peak_rss = server.peak_rss()?;
    let (max_rss, max_backlog) = sampler.finish().await;
    println!(
        "  accepted {} readings in {:.2} s = {:.0}/s; ack p50 {:.1} ms, p99 {:.1} ms; WAL backlog {:.1} MiB; peak RSS {:.1} MiB; flushed meanwhile: {flushed}\n    CPU: {}",
        load.accepted,
        load.elapsed().as_secs_f64(),
        load.rate(),
        load.quantile(0.5).as_secs_f64() * 1000.0,
        load.quantile(0.99).as_secs_f64() * 1000.0,
        backlog as f64 / 1048576.0,
        peak_rss as f64 / 1048576.0,
        accept_cpu.describe()
    );
    if flushed != 0.0 {
        bail!("the store was cut, yet the service reports {flushed} readings flushed");
    }
    let posting = posting(
        &load,
        peak_rss,
        max_rss,
        max_backlog.max(backlog),
        accept_cpu,
    );

    // The store comes back: the flusher works through the large backlog for a while.
    println!(
        "  store restored: draining the backlog for {} s",
        options.drain.as_secs()
    );
    let sampler = Sampler::start(server.pid(), server.url.clone());
    proxy.restore();
    tokio::time::sleep(options.drain).await;
    server.check_alive()?;
    let drained = scrape(&client, &server.url, "timebucket_readings_flushed_total").await?;
    let drain_peak = server.peak_rss()?;
    let (drain_max_rss, _) = sampler.finish().await;
    println!(
        "  drained {drained} readings in {} s; peak RSS since start {:.1} MiB, max sampled while draining {:.1} MiB ({:.0} s)",
        options.drain.as_secs(),
        drain_peak as f64 / 1048576.0,
        drain_max_rss as f64 / 1048576.0,
        phase_started.elapsed().as_secs_f64()
    );
    drop(server); // SIGKILL: its WAL is discarded with the directory.
    drop(proxy);
    drop(dir);
    db::drop_keyspace(session, &keyspace).await?;

    Ok(Acceptance {
        posting,
        backlog_bytes: backlog,
        batch: options.batch,
        drain: options.drain,
        drained: drained as u64,
        drain_peak_rss: drain_peak.max(drain_max_rss),
    })
}

fn posting(
    load: &LoadOutcome,
    peak_rss: u64,
    max_rss: u64,
    max_backlog: u64,
    cpu: Usage,
) -> Posting {
    Posting {
        readings: load.accepted,
        posting: load.elapsed(),
        accepted_rate: load.rate(),
        p50: load.quantile(0.5),
        p99: load.quantile(0.99),
        max_latency: load.quantile(1.0),
        busy: load.busy,
        backlog_refusals: load.backlog,
        peak_rss,
        max_sampled_rss: max_rss,
        max_backlog,
        cpu,
    }
}

/// Polls the service's flushed counter until it reaches `total`; returns the time since the
/// first post.
async fn wait_stored(
    server: &mut Server,
    load: &LoadOutcome,
    total: f64,
    within: Duration,
) -> anyhow::Result<Duration> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        let flushed = scrape(&client, &server.url, "timebucket_readings_flushed_total").await?;
        if flushed >= total {
            return Ok(load.started.elapsed());
        }
        server.check_alive()?;
        if Instant::now() > deadline {
            bail!(
                "only {flushed} of {total} readings stored after {within:?}; server log:\n{}",
                server.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn cassandra_version(session: &Session, options: &Options) -> String {
    let version = async {
        let rows = session
            .query_unpaged("SELECT release_version FROM system.local", ())
            .await?
            .into_rows_result()?;
        let (v,): (String,) = rows.first_row()?;
        Ok::<_, anyhow::Error>(v)
    };
    let shape = if options.cluster() {
        format!("{} nodes on the same machine", options.cql.len())
    } else {
        "single node on the same machine".to_owned()
    };
    let how = format!(
        "{}, writes at {}",
        options.replication,
        level_name(options.consistency)
    );
    match version.await {
        Ok(v) => format!("Cassandra {v}, {shape}, {how}"),
        Err(_) => format!("unknown CQL node, {how}"),
    }
}

fn command_line() -> String {
    let mut env: Vec<String> = [
        "TIMEBUCKET_BENCH_CQL",
        "REPLICATION",
        "CONSISTENCY",
        "READINGS",
        "BATCH",
        "SERVICES",
        "INSTANCES",
        "PATHS",
        "CLIENTS",
        "ACCEPT_READINGS",
        "BASELINE",
        "ROUNDS",
        "SETTLE_SECONDS",
        "SETTLE_MAX_SECONDS",
        "DRAIN_SECONDS",
        "SEED",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}")))
    .collect();
    env.push("CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench ingest".into());
    env.join(" ")
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn revision() -> String {
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    match git(&["status", "--porcelain", "--", "src", "migrations"]) {
        Some(changes) if !changes.is_empty() => {
            format!("{head} plus uncommitted changes to src/ or migrations/ (working tree)")
        }
        _ => head,
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} cores ({model}), shared with the CQL node and the load generator")
}
