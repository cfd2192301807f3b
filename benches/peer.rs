//! Peer benchmark: the embedded store (block format) against VictoriaMetrics single-node, fed the
//! same readings in the same run, interleaved.
//!
//! ```text
//! scripts/tools victoriametrics      # builds .tools/bin/victoria-metrics-v1.151.0 once
//! CARGO_TARGET_DIR=/tmp/target-blocks cargo bench --bench peer
//! ```
//!
//! Each round runs both systems, one after the other (the order alternates between rounds), on a
//! fresh data directory:
//! 1. **Ingest**: `CLIENTS` concurrent posters send the same readings in bodies of `BATCH`.
//!    timebucket: `POST /v1/metrics` (JSON), 202 once in the WAL. VictoriaMetrics: `POST
//!    /api/v1/import` (JSON lines, one sample per reading of
//!    `api_request_duration_ms{service,instance,method,path,code}`, value = the duration), 204.
//!    Accepted readings/s: readings over the posting time. Stored-and-queryable readings/s:
//!    from the first post until timebucket's `timebucket_readings_flushed_total` reaches the
//!    total, or until VictoriaMetrics' `count(count_over_time(...))`-style count query sees
//!    every sample (`-search.latencyOffset=0`). Server CPU seconds (utime + stime of the
//!    process, `/proc/PID/stat`) until then, per million readings; peak RSS (`VmHWM`).
//! 2. **Queries**, over HTTP, `QUERY_ROUNDS` after one warm-up, for one service over the last
//!    1 h and 24 h: per-path count and p99. timebucket: `/v1/stats?group_by=path` with one step
//!    over the whole range (`source=raw`: the block scan, not the rollups). VictoriaMetrics:
//!    `sum by (path) (count_over_time(m{service=S}[R]))` and `max by (path)
//!    (quantile_over_time(0.99, m{service=S}[R]))` with `-search.disableCache` (a cached answer
//!    would measure the cache).
//! 3. **Bytes on disk per reading**: timebucket: `du` of `<data-dir>/store` as the service
//!    leaves it after SIGTERM (its own compaction), then after `EmbeddedStore::compact` (every
//!    part compacted, fjall major-compacted). VictoriaMetrics: `/internal/force_flush`,
//!    `/internal/force_merge`, wait for merges to end, then `du` of `-storageDataPath`.
//!
//! Options: `READINGS` (1000000), `BATCH` (1000), `CLIENTS` (8), `ROUNDS` (3), `QUERY_ROUNDS`
//! (10), `SERVICES`/`INSTANCES`/`PATHS` (4/6/20), `SEED` (42), `VM_BIN` (the scripts/tools
//! build), `BENCH_WRITE_MD` (1; 0 leaves BENCHMARKS.md alone).

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use timebucket::store::embedded::EmbeddedStore;

use support::data::{Dataset, Shape};
use support::load::{post_all, quantile};
use support::options::env_or;
use support::server::{proc_status_kib, scrape, Server};

const HOUR_MS: i64 = 3_600_000;
const METRIC: &str = "api_request_duration_ms";

#[derive(Debug, Clone, Default)]
struct Run {
    accepted_rate: f64,
    stored_rate: f64,
    cpu_per_million: f64,
    peak_rss: u64,
    /// As the service left it (timebucket), or after flush + merge (VictoriaMetrics).
    disk_left: u64,
    /// After a forced compaction (timebucket); = `disk_left` for VictoriaMetrics.
    disk_compacted: u64,
    /// The block files alone, after the forced compaction (timebucket); = `disk_left` for
    /// VictoriaMetrics (its whole storage: samples and index).
    disk_blocks: u64,
    /// Median latency of the 1 h and 24 h queries (count + p99 per path).
    query_1h: Duration,
    query_24h: Duration,
}

struct Options {
    readings: usize,
    batch: usize,
    clients: usize,
    rounds: usize,
    query_rounds: usize,
    shape: Shape,
    vm_bin: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let options = Options {
        readings: env_or("READINGS", 1_000_000)?,
        batch: env_or("BATCH", 1000)?,
        clients: env_or("CLIENTS", 8)?,
        rounds: env_or("ROUNDS", 3)?,
        query_rounds: env_or("QUERY_ROUNDS", 10)?,
        shape: Shape::from_env(4, 24 * 3600)?,
        vm_bin: env_or("VM_BIN", root.join(".tools/bin/victoria-metrics-v1.151.0"))?,
    };
    if !options.vm_bin.exists() {
        bail!(
            "{} is missing: run `scripts/tools victoriametrics` first",
            options.vm_bin.display()
        );
    }
    let now = chrono::Utc::now().timestamp_millis();
    let data = Dataset::generate(&options.shape, options.readings, options.batch, now);
    let total = data.readings.len();
    let ours_bodies = Arc::new(data.bodies.clone());
    let vm_bodies = Arc::new(vm_bodies(&data, options.batch));
    let service = data.fleet[0].name.clone();
    println!("generated {total} readings; querying service {service}");
    let (mut ours, mut vm) = (Vec::new(), Vec::new());
    for round in 0..options.rounds {
        let temp = tempfile::Builder::new().prefix("tb-peer-").tempdir()?;
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_ours in order {
            support::cpu::settle(Duration::from_secs(2), Duration::from_secs(20), 0.3).await;
            if is_ours {
                let dir = temp.path().join("ours");
                std::fs::create_dir_all(&dir)?;
                let run = run_ours(&options, &ours_bodies, total, &service, now, &dir).await?;
                println!("round {round} timebucket: {run:?}");
                ours.push(run);
            } else {
                let dir = temp.path().join("vm");
                std::fs::create_dir_all(&dir)?;
                let run = run_vm(&options, &vm_bodies, total, &service, now, &dir).await?;
                println!("round {round} VictoriaMetrics: {run:?}");
                vm.push(run);
            }
        }
    }
    let section = markdown(&options, &data, &service, &ours, &vm);
    println!("{section}");
    if env_or("BENCH_WRITE_MD", 1)? != 0 {
        let path = root.join("BENCHMARKS.md");
        support::sections::write_section(&path, "peer", &section)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("updated {}", path.display());
    }
    Ok(())
}

/// The readings as VictoriaMetrics JSON lines, `batch` per body, in the same bodies.
fn vm_bodies(data: &Dataset, batch: usize) -> Vec<Bytes> {
    data.readings
        .chunks(batch)
        .map(|chunk| {
            let mut body = String::new();
            for r in chunk {
                let (service, instance, method, path) = data.names(r);
                let line = serde_json::json!({
                    "metric": {"__name__": METRIC, "service": service, "instance": instance,
                               "method": method, "path": path, "code": r.code.to_string()},
                    "values": [r.duration_ms],
                    "timestamps": [r.timestamp_ms],
                });
                body.push_str(&line.to_string());
                body.push('\n');
            }
            Bytes::from(body)
        })
        .collect()
}

/// Bytes allocated on disk under `path`, as `du` counts them (not apparent sizes: fjall's
/// journal is a preallocated 64 MiB file whatever it holds).
fn du(path: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            du(&entry.path())?
        } else {
            meta.blocks() * 512
        };
    }
    Ok(total)
}

async fn run_ours(
    options: &Options,
    bodies: &Arc<Vec<Bytes>>,
    total: usize,
    service: &str,
    now: i64,
    dir: &Path,
) -> anyhow::Result<Run> {
    let server = Server::start(None, dir, &[]).await?;
    let cpu0 = support::cpu::process_seconds(server.pid());
    let load = post_all(
        &server.url,
        bodies.clone(),
        options.batch,
        bodies.len(),
        options.clients,
    )
    .await?;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(900);
    let stored_at = loop {
        let flushed = scrape(&client, &server.url, "timebucket_readings_flushed_total").await?;
        if flushed >= total as f64 {
            break Instant::now();
        }
        if Instant::now() > deadline {
            bail!("timebucket: only {flushed} of {total} readings stored after 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cpu = support::cpu::process_seconds(server.pid()) - cpu0;
    let mut run = Run {
        accepted_rate: load.rate(),
        stored_rate: total as f64 / (stored_at - load.started).as_secs_f64(),
        cpu_per_million: cpu * 1e6 / total as f64,
        ..Run::default()
    };
    let mut latencies = [Vec::new(), Vec::new()];
    for round in 0..=options.query_rounds {
        for (i, hours) in [1, 24].into_iter().enumerate() {
            let (from, to) = (now - hours * HOUR_MS, now);
            let url = format!(
                "{}/v1/stats?service={service}&from={from}&to={to}&step={}h&group_by=path&source=raw",
                server.url, hours
            );
            let started = Instant::now();
            let response = client.get(&url).send().await?;
            if !response.status().is_success() {
                bail!("{url}: {}", response.text().await?);
            }
            let answer: serde_json::Value = response.json().await?;
            if round > 0 {
                latencies[i].push(started.elapsed());
            }
            if answer["groups"].as_array().is_none_or(Vec::is_empty) {
                bail!("{url}: no groups in {answer}");
            }
        }
    }
    run.query_1h = quantile(&latencies[0], 0.5);
    run.query_24h = quantile(&latencies[1], 0.5);
    run.peak_rss = server.peak_rss()?;
    server.stop(Duration::from_secs(120)).await?;
    let store_dir = dir.join("data/store");
    run.disk_left = du(&store_dir)?;
    let store = EmbeddedStore::open(&store_dir)?;
    store.compact()?;
    drop(store);
    run.disk_compacted = du(&store_dir)?;
    run.disk_blocks = du(&store_dir.join("blocks"))?;
    Ok(run)
}

/// A running VictoriaMetrics; killed when dropped.
struct Vm {
    child: Child,
    url: String,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn run_vm(
    options: &Options,
    bodies: &Arc<Vec<Bytes>>,
    total: usize,
    service: &str,
    now: i64,
    dir: &Path,
) -> anyhow::Result<Run> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let storage = dir.join("storage");
    let child = Command::new(&options.vm_bin)
        .arg(format!("-storageDataPath={}", storage.display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .args([
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting VictoriaMetrics")?;
    let mut vm = Vm {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.clients)
        .tcp_nodelay(true)
        .build()?;
    for _ in 0..600 {
        if client
            .get(format!("{}/health", vm.url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = vm.child.id();
    let cpu0 = support::cpu::process_seconds(pid);
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..options.clients {
        let (client, url, bodies, next) = (
            client.clone(),
            format!("{}/api/v1/import", vm.url),
            bodies.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    return Ok::<_, anyhow::Error>(());
                };
                let response = client.post(&url).body(body.clone()).send().await?;
                if !response.status().is_success() {
                    bail!("VictoriaMetrics import: {}", response.status());
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let posted = started.elapsed();
    let count_query = format!("sum(count_over_time({METRIC}[2d]))");
    let deadline = Instant::now() + Duration::from_secs(900);
    let (stored_at, seen) = loop {
        let seen = vm_scalar(&client, &vm.url, &count_query, now + 60_000).await?;
        if seen >= total as f64 {
            break (Instant::now(), seen);
        }
        if Instant::now() > deadline {
            bail!("VictoriaMetrics: only {seen} of {total} samples queryable after 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("VictoriaMetrics counts {seen} samples of {total}");
    let cpu = support::cpu::process_seconds(pid) - cpu0;
    let mut run = Run {
        accepted_rate: total as f64 / posted.as_secs_f64(),
        stored_rate: total as f64 / (stored_at - started).as_secs_f64(),
        cpu_per_million: cpu * 1e6 / total as f64,
        ..Run::default()
    };
    let mut latencies = [Vec::new(), Vec::new()];
    for round in 0..=options.query_rounds {
        for (i, hours) in [1, 24].into_iter().enumerate() {
            let selector = format!("{METRIC}{{service=\"{service}\"}}[{hours}h]");
            let started = Instant::now();
            for query in [
                format!("sum by (path) (count_over_time({selector}))"),
                format!("max by (path) (quantile_over_time(0.99, {selector}))"),
            ] {
                let response = client
                    .get(format!("{}/api/v1/query", vm.url))
                    .query(&[
                        ("query", query.as_str()),
                        ("time", &(now / 1000).to_string()),
                    ])
                    .send()
                    .await?;
                let answer: serde_json::Value = response.json().await?;
                if answer["data"]["result"]
                    .as_array()
                    .is_none_or(Vec::is_empty)
                {
                    bail!("{query}: no result in {answer}");
                }
            }
            if round > 0 {
                latencies[i].push(started.elapsed());
            }
        }
    }
    run.query_1h = quantile(&latencies[0], 0.5);
    run.query_24h = quantile(&latencies[1], 0.5);
    run.peak_rss = proc_status_kib(pid, "VmHWM:")? * 1024;
    client
        .get(format!("{}/internal/force_flush", vm.url))
        .send()
        .await?;
    client
        .get(format!("{}/internal/force_merge", vm.url))
        .send()
        .await?;
    // Merges run in the background: wait until none is active.
    let merge_deadline = Instant::now() + Duration::from_secs(300);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let metrics = client
            .get(format!("{}/metrics", vm.url))
            .send()
            .await?
            .text()
            .await?;
        let active: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("vm_active_merges"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if active == 0.0 || Instant::now() > merge_deadline {
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let _ = vm.child.wait();
    run.disk_left = du(&storage)?;
    run.disk_compacted = run.disk_left;
    run.disk_blocks = run.disk_left;
    Ok(run)
}

async fn vm_scalar(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    at_ms: i64,
) -> anyhow::Result<f64> {
    let answer: serde_json::Value = client
        .get(format!("{url}/api/v1/query"))
        .query(&[("query", query), ("time", &(at_ms / 1000).to_string())])
        .send()
        .await?
        .json()
        .await?;
    Ok(answer["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0))
}

/// min / median / max of `values`.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    (values[0], values[n / 2], values[n - 1])
}

fn markdown(options: &Options, data: &Dataset, service: &str, ours: &[Run], vm: &[Run]) -> String {
    let n = data.readings.len() as f64;
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let load = support::sections::load_average();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Embedded store (blocks) vs VictoriaMetrics — latest run\n"
    );
    let _ = writeln!(s, "- date: {date}; load average (1 min) at the end: {load}");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(|dir| format!("CARGO_TARGET_DIR={dir} "))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "- command: `scripts/tools victoriametrics && {target}cargo bench --bench peer`"
    );
    let _ = writeln!(s, "- code: {}", support::sections::revision());
    let _ = writeln!(
        s,
        "- data: {} API readings over the last 24 h ({} series), {} per request, {} concurrent posters; {} interleaved rounds (order alternating), queries on service `{service}`, median of {} rounds after a warm-up",
        data.readings.len(),
        data.series(),
        options.batch,
        options.clients,
        options.rounds,
        options.query_rounds
    );
    let _ = writeln!(
        s,
        "- VictoriaMetrics v1.151.0 single-node, `-search.latencyOffset=0s -search.disableCache`, JSON-line import of `{METRIC}{{service,instance,method,path,code}}` (value = duration); timebucket `serve` with default flags (embedded store)\n"
    );
    let _ = writeln!(s, "| metric | timebucket (min / median / max) | VictoriaMetrics (min / median / max) | ratio ours/VM (min / median / max) |");
    let _ = writeln!(s, "| --- | --- | --- | --- |");
    let mut row = |name: &str, f: &dyn Fn(&Run) -> f64, unit: &dyn Fn(f64) -> String| {
        let a = spread(ours.iter().map(f).collect());
        let b = spread(vm.iter().map(f).collect());
        let r = spread(ours.iter().zip(vm).map(|(o, v)| f(o) / f(v)).collect());
        let _ = writeln!(
            s,
            "| {name} | {} / {} / {} | {} / {} / {} | {:.2} / {:.2} / {:.2} |",
            unit(a.0),
            unit(a.1),
            unit(a.2),
            unit(b.0),
            unit(b.1),
            unit(b.2),
            r.0,
            r.1,
            r.2
        );
    };
    let rate = |v: f64| support::report::rate(v);
    let mib = |v: f64| format!("{:.0} MiB", v / 1048576.0);
    let secs = |v: f64| format!("{v:.1} s");
    let bytes = |v: f64| format!("{v:.1} B");
    let ms = |v: f64| format!("{:.1} ms", v * 1000.0);
    row("accepted readings/s", &|r| r.accepted_rate, &rate);
    row("stored-and-queryable readings/s", &|r| r.stored_rate, &rate);
    row(
        "server CPU-seconds per million readings (until stored)",
        &|r| r.cpu_per_million,
        &secs,
    );
    row("peak RSS (VmHWM)", &|r| r.peak_rss as f64, &mib);
    row(
        "bytes on disk per reading, as the service left it",
        &|r| r.disk_left as f64 / n,
        &bytes,
    );
    row(
        "bytes on disk per reading, after compaction / merge",
        &|r| r.disk_compacted as f64 / n,
        &bytes,
    );
    row(
        "bytes on disk per reading: readings only (timebucket's block files; VM's whole storage)",
        &|r| r.disk_blocks as f64 / n,
        &bytes,
    );
    row(
        "query 1 h: per-path count + p99, median latency",
        &|r| r.query_1h.as_secs_f64(),
        &ms,
    );
    row(
        "query 24 h: per-path count + p99, median latency",
        &|r| r.query_24h.as_secs_f64(),
        &ms,
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Not apples to apples: timebucket keeps every reading whole (count, code, method, path, instance, a stable id, exact duration) plus latest rows, the series index and rollups in the same directory, and acknowledges a request only once it is fsynced in its WAL; VictoriaMetrics keeps one float sample per reading (the `count` of summarised readings is dropped), acknowledges before its data is on disk (it buffers for about a second), and its p99 per path is the largest per-series p99, not the p99 of the path's readings (MetricsQL has no quantile across series over a range), while timebucket's is the p99 of the path's readings from a sketch. Disk figures are allocated bytes (as `du` counts them). VictoriaMetrics' disk figure is after `force_flush` + `force_merge`; timebucket's first disk figure is what the running service left (its own compaction), the second after a forced compaction of every part and every fjall keyspace, the third its block files alone (the readings; the rest of its directory is fjall: rollups, latest rows, series index and journal, which VictoriaMetrics has no counterpart of). CPU is the server process only, from the first post until every reading was queryable. Both ran on the same shared 2-core machine; other developers' builds and tests ran at the same time (see the load average), which is why only same-round ratios are reported.\n"
    );
    s
}
