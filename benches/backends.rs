//! Backends benchmark: the ingest and query figures of the `ingest` and `query` benches for both
//! store backends, CQL and embedded (fjall), on the same generated data in one run, side by side.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-backends cargo bench --bench backends
//! ```
//!
//! For each backend in turn (CQL first, then embedded):
//! 1. **Ingest**, end to end through the real release binary: `timebucket serve` with
//!    `--cql-nodes` and a freshly migrated keyspace, or without it (the embedded store in a temp
//!    `--data-dir`). `CLIENTS` concurrent posters send the pre-serialized bodies (`BATCH`
//!    readings each). Reported: accepted readings/s and ack p50/p99 while posting, stored
//!    readings/s from the first post until `timebucket_readings_flushed_total` reaches the total,
//!    and the server's peak RSS (`VmHWM`). The server is then stopped with SIGTERM (the embedded
//!    store's directory is locked while it runs).
//! 2. **Query**, in process through `timebucket::query` over `CqlStore::open` /
//!    `EmbeddedStore::open` on the data just written: for one service, the last 1 h, 6 h and
//!    24 h, each read whole `ITERATIONS` times after one warm-up, with the ordered fan-out merge
//!    behind `/v1/readings` and with `Queries::stats` (1-minute step). Every read is checked
//!    against the generated readings.
//! 3. **Bytes on disk per reading**: CQL — `nodetool flush` and `nodetool compact` of the
//!    keyspace, then the size of the `metric_readings` table directory (and, separately, of the
//!    whole keyspace) divided by the readings. Embedded — `EmbeddedStore` exposes no compaction
//!    call, so this is after flush (SIGTERM shutdown, reopen) but before any major compaction:
//!    `disk_bytes()` of the reopened store, and `du` of `<data-dir>/store`.
//!
//! The generated fleet is the ingest bench's (`SERVICES` × `INSTANCES` × `PATHS`), with
//! timestamps spread over the last 24 hours so the queries have data for every range (the
//! ingest bench spreads them over 5 minutes: here a batch touches many more partitions).
//!
//! Options (environment variables):
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `TIMEBUCKET_BENCH_CQL` | `127.0.0.1:9042` | the CQL node |
//! | `READINGS` | 300000 | readings posted to each backend |
//! | `BATCH` | 1000 | readings per request |
//! | `SERVICES` | 4 | services in the generated fleet |
//! | `INSTANCES` | 6 | instances per service |
//! | `PATHS` | 20 | endpoints per service |
//! | `CLIENTS` | 8 | concurrent HTTP posters |
//! | `ITERATIONS` | `40,20,10` | measured query rounds for 1 h, 6 h, 24 h |
//! | `SEED` | 42 | seed of the generated data |
//! | `CASSANDRA_DATA` | `.cassandra/data/data` | the node's data directory |
//! | `TIMEBUCKET_BENCH_BIN` | the `timebucket` built by cargo for this bench | binary to run |
//! | `BENCH_WRITE_MD` | 1 | 0: do not update BENCHMARKS.md |
//!
//! The keyspace, the server processes and the temp directories are removed at the end.

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use timebucket::model::{ServiceName, TimestampMs};
use timebucket::query::params::TimeRange;
use timebucket::query::{Queries, QueryLimits};
use timebucket::store::cql::{CqlStore, Keyspace};
use timebucket::store::embedded::EmbeddedStore;
use timebucket::store::Store;

use support::data::{Dataset, Shape};
use support::disk::du;
use support::load::{post_all, quantile};
use support::options::env_or;
use support::range_reads;
use support::server::{scrape, Server};

const HOUR_MS: i64 = 3_600_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Cql,
    Embedded,
}

#[derive(Default, Clone)]
struct Ingest {
    accepted_rate: f64,
    stored_rate: f64,
    posting: Duration,
    stored_after: Duration,
    p50: Duration,
    p99: Duration,
    peak_rss: u64,
    busy: u64,
    backlog: u64,
}

#[derive(Default, Clone)]
struct QueryFigures {
    label: String,
    readings: usize,
    rounds: usize,
    merge: (Duration, Duration),
    stats: (Duration, Duration),
}

#[derive(Default, Clone)]
struct Disk {
    /// CQL: `metric_readings`; embedded: `du` of the whole store directory.
    readings_bytes: u64,
    /// CQL: every table of the keyspace; embedded: `disk_bytes()`.
    all_bytes: u64,
}

#[derive(Default, Clone)]
struct Figures {
    ingest: Ingest,
    queries: Vec<QueryFigures>,
    disk: Disk,
    note: String,
}

struct Options {
    node: String,
    readings: usize,
    batch: usize,
    clients: usize,
    iterations: Vec<usize>,
    shape: Shape,
    cassandra_data: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let iterations = range_reads::rounds_per_range(&env_or("ITERATIONS", "40,20,10".to_owned())?)?;
    let options = Options {
        node: env_or("TIMEBUCKET_BENCH_CQL", "127.0.0.1:9042".to_owned())?,
        readings: env_or("READINGS", 300_000)?,
        batch: env_or("BATCH", 1000)?,
        clients: env_or("CLIENTS", 8)?,
        iterations,
        shape: Shape::from_env(4, 24 * 3600)?,
        cassandra_data: env_or("CASSANDRA_DATA", root.join(".cassandra/data/data"))?,
    };
    let session = support::cql::session(&options.node).await?;
    drop_leftovers(&session, &options).await?;
    let keyspace = support::cql::migrated_keyspace(&session, "backends").await?;
    let temp = tempfile::Builder::new().prefix("tb-backends-").tempdir()?;
    let outcome = run(&options, &keyspace, temp.path()).await;
    if let Err(e) = support::cql::drop_keyspace(&session, &keyspace).await {
        eprintln!("warning: {e:#}");
    }
    // DROP KEYSPACE leaves a snapshot behind (auto_snapshot); best effort.
    let _ = nodetool(&["clearsnapshot", "--all", "--", keyspace.as_str()]);
    // Then only empty table directories are left: remove them too.
    let leftover = options.cassandra_data.join(keyspace.as_str());
    if du(&leftover).is_ok_and(|bytes| bytes == 0) {
        let _ = std::fs::remove_dir_all(&leftover);
    }
    drop(temp);
    let (cql, embedded, data) = outcome?;
    let section = markdown(&options, &cql, &embedded, &data, &session).await;
    println!("{section}");
    if env_or("BENCH_WRITE_MD", 1)? != 0 {
        let path = root.join("BENCHMARKS.md");
        support::sections::write_section(&path, "backends", &section)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("updated {}", path.display());
    }
    Ok(())
}

/// Drops `tb_bench_backends_*` keyspaces left by an earlier run that failed before its cleanup.
async fn drop_leftovers(
    session: &scylla::client::session::Session,
    options: &Options,
) -> anyhow::Result<()> {
    let rows = session
        .query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", ())
        .await?
        .into_rows_result()?;
    for row in rows.rows::<(String,)>()? {
        let (name,) = row?;
        if let Some(id) = name.strip_prefix("tb_bench_backends_") {
            if id.chars().all(|c| c.is_ascii_alphanumeric()) {
                println!("dropping {name}, left by an earlier run");
                session
                    .query_unpaged(format!("DROP KEYSPACE IF EXISTS {name}"), ())
                    .await?;
                let _ = nodetool(&["clearsnapshot", "--all", "--", &name]);
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(&options.cassandra_data) {
        for entry in entries.flatten() {
            let leftover = entry.path();
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("tb_bench_backends_")
                && du(&leftover).is_ok_and(|bytes| bytes == 0)
            {
                let _ = std::fs::remove_dir_all(&leftover);
            }
        }
    }
    Ok(())
}

struct DataInfo {
    readings: usize,
    body_bytes: usize,
    series: usize,
    service: String,
    generated: Duration,
}

async fn run(
    options: &Options,
    keyspace: &Keyspace,
    temp: &Path,
) -> anyhow::Result<(Figures, Figures, DataInfo)> {
    let now = TimestampMs::now().millis();
    let started = Instant::now();
    let data = Dataset::generate(&options.shape, options.readings, options.batch, now);
    let info = DataInfo {
        readings: data.readings.len(),
        body_bytes: data.body_bytes(),
        series: data.series(),
        service: data.fleet[0].name.clone(),
        generated: started.elapsed(),
    };
    println!(
        "generated {} readings ({} bodies, {:.1} MiB) in {:.1?}",
        info.readings,
        data.bodies.len(),
        info.body_bytes as f64 / 1048576.0,
        info.generated
    );
    let bodies = Arc::new(data.bodies.clone());

    // CQL.
    let cql_dir = temp.join("cql");
    std::fs::create_dir_all(&cql_dir)?;
    let mut cql = Figures {
        ingest: ingest(options, Backend::Cql, keyspace.as_str(), &cql_dir, &bodies).await?,
        ..Figures::default()
    };
    println!("cql ingest done");
    // Query once the node has finished the memtable flushes and compactions of the ingest.
    support::cpu::settle(Duration::from_secs(2), Duration::from_secs(30), 0.2).await;
    let store = Arc::new(CqlStore::open(std::slice::from_ref(&options.node), keyspace).await?);
    cql.queries = queries(options, &store, &data, now).await?;
    drop(store);
    cql.disk = cql_disk(options, keyspace)?;
    println!("cql done");

    // Embedded: let the node finish its compactions first.
    support::cpu::settle(Duration::from_secs(2), Duration::from_secs(30), 0.2).await;
    let embedded_dir = temp.join("embedded");
    std::fs::create_dir_all(&embedded_dir)?;
    let mut embedded = Figures {
        ingest: ingest(options, Backend::Embedded, "", &embedded_dir, &bodies).await?,
        ..Figures::default()
    };
    println!("embedded ingest done");
    let store_dir = embedded_dir.join("data/store");
    let store = Arc::new(EmbeddedStore::open(&store_dir)?);
    embedded.queries = queries(options, &store, &data, now).await?;
    store.compact()?;
    embedded.disk.all_bytes = store.disk_bytes()?;
    drop(store);
    embedded.disk.readings_bytes = du(&store_dir)?;
    let mut parts = Vec::new();
    let mut journal = 0;
    for entry in std::fs::read_dir(&store_dir)? {
        let entry = entry?;
        let bytes = if entry.metadata()?.is_dir() {
            du(&entry.path())?
        } else {
            entry.metadata()?.len()
        };
        if entry.file_name().to_string_lossy().ends_with(".jnl") {
            journal += bytes;
        }
        parts.push(format!(
            "`{}` {}",
            entry.file_name().to_string_lossy(),
            mib(bytes)
        ));
    }
    parts.sort();
    embedded.note = format!(
        "after a clean shutdown (SIGTERM), reopen, and `EmbeddedStore::compact` (memtables flushed, every keyspace major-compacted); {:.0}% of it is fjall's journal (`*.jnl`: {}), i.e. memtables not yet written as tables; store dir: {}",
        100.0 * journal as f64 / embedded.disk.readings_bytes.max(1) as f64,
        mib(journal),
        parts.join(", ")
    );
    println!("embedded done");
    Ok((cql, embedded, info))
}

async fn ingest(
    options: &Options,
    backend: Backend,
    keyspace: &str,
    dir: &Path,
    bodies: &Arc<Vec<bytes::Bytes>>,
) -> anyhow::Result<Ingest> {
    let cql = (backend == Backend::Cql).then_some((options.node.as_str(), keyspace));
    let service = Server::start(cql, dir, &[]).await?;
    let load = post_all(
        &service.url,
        bodies.clone(),
        options.batch,
        bodies.len(),
        options.clients,
    )
    .await?;
    let total = (bodies.len() * options.batch) as f64;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let stored_at = loop {
        let flushed = scrape(&client, &service.url, "timebucket_readings_flushed_total").await?;
        if flushed >= total {
            break Instant::now();
        }
        if Instant::now() > deadline {
            bail!("{backend:?}: only {flushed} of {total} readings stored after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let peak_rss = service.peak_rss()?;
    let stored_after = stored_at - load.started;
    let figures = Ingest {
        accepted_rate: load.rate(),
        stored_rate: total / stored_after.as_secs_f64(),
        posting: load.elapsed(),
        stored_after,
        p50: quantile(&load.latencies, 0.5),
        p99: quantile(&load.latencies, 0.99),
        peak_rss,
        busy: load.busy,
        backlog: load.backlog,
    };
    service.stop(Duration::from_secs(60)).await?;
    println!(
        "{backend:?}: accepted {:.0}/s, stored {:.0}/s, ack p50 {:?} p99 {:?}, peak RSS {:.1} MiB",
        figures.accepted_rate,
        figures.stored_rate,
        figures.p50,
        figures.p99,
        figures.peak_rss as f64 / 1048576.0
    );
    Ok(figures)
}

/// The fan-out's ordered merge over every partition of `range`; returns (rows, requests).
async fn merge<S: Store>(
    store: &Arc<S>,
    limits: &QueryLimits,
    service: &ServiceName,
    range: TimeRange,
) -> anyhow::Result<(usize, u64)> {
    let mut merge = range_reads::ordered_merge(store, limits, service, range);
    let (mut rows, mut requests) = (0usize, 0u64);
    let mut last = None;
    while let Some(row) = merge.next().await? {
        let key = (row.timestamp, row.id);
        if last.is_some_and(|l| l >= key) {
            bail!("the merge's rows are out of order");
        }
        last = Some(key);
        rows += 1;
        requests += u64::from(row.count);
    }
    Ok((rows, requests))
}

async fn queries<S: Store>(
    options: &Options,
    store: &Arc<S>,
    data: &Dataset,
    end: i64,
) -> anyhow::Result<Vec<QueryFigures>> {
    let limits = QueryLimits::default();
    let queries = Queries::new(store.clone(), limits);
    let name = &data.fleet[0].name;
    let service = ServiceName::parse(name).map_err(anyhow::Error::msg)?;
    let mut out = Vec::new();
    for ((label, hours), rounds) in [("1 h", 1), ("6 h", 6), ("24 h", 24)]
        .into_iter()
        .zip(options.iterations.iter().copied())
    {
        let range = TimeRange {
            from: TimestampMs::from_millis(end - hours * HOUR_MS),
            to: TimestampMs::from_millis(end),
        };
        let inside: Vec<_> = data
            .readings
            .iter()
            .filter(|r| r.service == 0 && range.contains(TimestampMs::from_millis(r.timestamp_ms)))
            .collect();
        let requests: u64 = inside.iter().map(|r| u64::from(r.count)).sum();
        let stats_request = range_reads::stats_request(&service, range, range_reads::Source::Raw)?;
        let (mut merge_samples, mut stats_samples) = (Vec::new(), Vec::new());
        for round in 0..=rounds {
            let started = Instant::now();
            let (rows, total) = merge(store, &limits, &service, range).await?;
            let elapsed = started.elapsed();
            if rows != inside.len() || total != requests {
                bail!(
                    "merge over {label} read {rows} readings / {total} requests, expected {} / {requests}",
                    inside.len()
                );
            }
            if round > 0 {
                merge_samples.push(elapsed);
            }
            let started = Instant::now();
            let answer = queries.stats(&stats_request).await?;
            let elapsed = started.elapsed();
            let total = range_reads::requests_counted(&answer);
            if total != requests {
                bail!("stats over {label} counted {total} requests, expected {requests}");
            }
            if round > 0 {
                stats_samples.push(elapsed);
            }
        }
        let figures = QueryFigures {
            label: label.into(),
            readings: inside.len(),
            rounds,
            merge: (
                quantile(&merge_samples, 0.5),
                quantile(&merge_samples, 0.99),
            ),
            stats: (
                quantile(&stats_samples, 0.5),
                quantile(&stats_samples, 0.99),
            ),
        };
        println!(
            "query {label}: {} readings, merge p50 {:?} p99 {:?}, stats p50 {:?} p99 {:?}",
            figures.readings, figures.merge.0, figures.merge.1, figures.stats.0, figures.stats.1
        );
        out.push(figures);
    }
    Ok(out)
}

fn nodetool(args: &[&str]) -> anyhow::Result<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cassandra");
    let output = Command::new(script)
        .arg("nodetool")
        .args(args)
        .output()
        .context("running scripts/cassandra nodetool")?;
    if !output.status.success() {
        bail!(
            "nodetool {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn cql_disk(options: &Options, keyspace: &Keyspace) -> anyhow::Result<Disk> {
    let ks: &str = keyspace.as_str();
    nodetool(&["flush", ks])?;
    nodetool(&["compact", ks])?;
    let dir = options.cassandra_data.join(ks);
    let mut disk = Disk::default();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let bytes = du(&entry.path())?;
        disk.all_bytes += bytes;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("metric_readings-")
        {
            disk.readings_bytes += bytes;
        }
    }
    Ok(disk)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

fn rate(r: f64) -> String {
    support::report::rate(r)
}

async fn markdown(
    options: &Options,
    cql: &Figures,
    embedded: &Figures,
    data: &DataInfo,
    session: &scylla::client::session::Session,
) -> String {
    let cassandra = match session
        .query_unpaged("SELECT release_version FROM system.local", ())
        .await
        .ok()
        .and_then(|r| r.into_rows_result().ok())
        .and_then(|rows| rows.single_row::<(String,)>().ok())
    {
        Some((v,)) => format!("Cassandra {v}"),
        None => "Cassandra (version unknown)".into(),
    };
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let n = data.readings as f64;
    let mut s = String::new();
    let _ = writeln!(s, "## Backends benchmark (CQL vs embedded) — latest run\n");
    let _ = writeln!(s, "- date: {date}");
    let _ = writeln!(
        s,
        "- command: `CARGO_TARGET_DIR=/tmp/target-backends cargo bench --bench backends`"
    );
    let _ = writeln!(
        s,
        "- machine: {cores} cores; the CQL node ({cassandra}, single node, RF 1, default settings: 1 h buckets, 4 shards, 6 h windows) runs on the same box; load average (1 min) when the report was written: {load}"
    );
    let _ = writeln!(
        s,
        "- data: {} API readings ({} services × {} instances × {} paths = {} series), timestamps over the last 24 h, {} per request ({:.1} MiB of JSON), {} concurrent posters; the same bodies to both backends",
        data.readings,
        options.shape.services,
        options.shape.instances,
        options.shape.paths,
        data.series,
        options.batch,
        data.body_bytes as f64 / 1048576.0,
        options.clients
    );
    let _ = writeln!(
        s,
        "- binary: `target/release/timebucket serve` with default flags; CQL: `--cql-nodes {}` and a freshly migrated keyspace; embedded: no `--cql-nodes`, a temp `--data-dir`",
        options.node
    );
    let _ = writeln!(
        s,
        "- queries: service `{}`, last 1 h / 6 h / 24 h, in process (`timebucket::query` over `CqlStore::open` / `EmbeddedStore::open`), default query limits; rounds {} after one warm-up\n",
        data.service,
        options
            .iterations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" / ")
    );
    let _ = writeln!(s, "| metric | CQL | embedded |");
    let _ = writeln!(s, "| --- | --- | --- |");
    let row = |s: &mut String, name: &str, a: String, b: String| {
        let _ = writeln!(s, "| {name} | {a} | {b} |");
    };
    let (c, e) = (&cql.ingest, &embedded.ingest);
    row(
        &mut s,
        "ingest: accepted readings/s",
        rate(c.accepted_rate),
        rate(e.accepted_rate),
    );
    row(
        &mut s,
        "ingest: stored readings/s (first post → all flushed)",
        rate(c.stored_rate),
        rate(e.stored_rate),
    );
    row(
        &mut s,
        "ingest: posting / stored after",
        format!(
            "{:.1} s / {:.1} s",
            c.posting.as_secs_f64(),
            c.stored_after.as_secs_f64()
        ),
        format!(
            "{:.1} s / {:.1} s",
            e.posting.as_secs_f64(),
            e.stored_after.as_secs_f64()
        ),
    );
    row(
        &mut s,
        "ingest: ack p50 / p99",
        format!("{} / {}", ms(c.p50), ms(c.p99)),
        format!("{} / {}", ms(e.p50), ms(e.p99)),
    );
    row(
        &mut s,
        "ingest: peak RSS (VmHWM)",
        mib(c.peak_rss),
        mib(e.peak_rss),
    );
    row(
        &mut s,
        "ingest: 429 / 503 answers (retried)",
        format!("{} / {}", c.busy, c.backlog),
        format!("{} / {}", e.busy, e.backlog),
    );
    for (q, r) in cql.queries.iter().zip(&embedded.queries) {
        row(
            &mut s,
            &format!(
                "query {} ({} readings, {} rounds): readings merge p50 / p99",
                q.label, q.readings, q.rounds
            ),
            format!("{} / {}", ms(q.merge.0), ms(q.merge.1)),
            format!("{} / {}", ms(r.merge.0), ms(r.merge.1)),
        );
        row(
            &mut s,
            &format!("query {}: stats (1 m step) p50 / p99", q.label),
            format!("{} / {}", ms(q.stats.0), ms(q.stats.1)),
            format!("{} / {}", ms(r.stats.0), ms(r.stats.1)),
        );
    }
    let (cd, ed) = (&cql.disk, &embedded.disk);
    row(
        &mut s,
        "disk: reading rows only, bytes/reading",
        format!(
            "{:.1} (`metric_readings`, {})",
            cd.readings_bytes as f64 / n,
            mib(cd.readings_bytes)
        ),
        "— (window keyspaces are not reachable one by one through `EmbeddedStore`)".into(),
    );
    row(
        &mut s,
        "disk: whole store, bytes/reading",
        format!(
            "{:.1} (all tables of the keyspace, {})",
            cd.all_bytes as f64 / n,
            mib(cd.all_bytes)
        ),
        format!(
            "{:.1} (`du` of `<data-dir>/store`, {}); `disk_bytes()`: {:.1} ({})",
            ed.readings_bytes as f64 / n,
            mib(ed.readings_bytes),
            ed.all_bytes as f64 / n,
            mib(ed.all_bytes)
        ),
    );
    row(
        &mut s,
        "disk: state when measured",
        "after `nodetool flush` + `nodetool compact`".into(),
        embedded.note.clone(),
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Notes: both backends ran on the same {cores}-core machine, one after the other, with the same readings. The Cassandra node runs on that machine during both runs (idle but resident during the embedded one; the embedded run starts once it has gone quiet), and during the CQL run it competes with the service and the load generator for the CPU, so the CQL figures are lower than on a dedicated node. Stored readings/s counts from the first post until the service's `timebucket_readings_flushed_total` reaches the total; peak RSS is the service process only (the Cassandra JVM's memory is not included). Query latencies are in process (no HTTP) and every read is checked against the generated readings; with few rounds p99 is close to the maximum. Timestamps spread over 24 h put each 1,000-reading batch across many partitions (the ingest bench uses 5 minutes), so the ingest figures are not comparable with the ingest section above. Disk sizes are apparent file sizes excluding snapshots. The CQL figure is after `nodetool flush` + `nodetool compact` (compressed SSTables). The embedded one is after `EmbeddedStore::compact` (every memtable written as LZ4-compressed tables, every keyspace major-compacted); whatever journal fjall still keeps is shown separately. Other processes (other benches, builds) may share the machine: see the load average above.\n"
    );
    s
}
