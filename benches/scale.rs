//! Embedded store at scale: the memory and the disk of one long-running `timebucket serve` as its
//! embedded store grows to tens of millions of readings, measured on what the service itself
//! does (no compaction call from outside, unlike the backends bench).
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench scale
//! ```
//!
//! 1. `timebucket serve` (release, the embedded store in a temp `--data-dir`), default flags but
//!    `--rollup-compaction-interval` (`COMPACTION_SECONDS`): the rollup compactor runs while
//!    the store grows, not only once at its default 10 minutes.
//! 2. `CLIENTS` concurrent posters send `READINGS` API readings, `BATCH` per request. The bodies
//!    are generated on demand by the posters (`support::data::Stream`: the fleet and mix of the
//!    other benches), so the generator holds nothing and every reading is distinct. Time moves
//!    forward with the posts, as in a live fleet: the last `SPREAD_HOURS` are cut into one slice
//!    per request, in order.
//! 3. While it runs, at every `CHECKPOINT` readings stored: the service's RSS and peak RSS
//!    (`VmRSS`, `VmHWM`) and the store's size on disk, to show whether memory follows the store.
//! 4. Once everything is stored: `IDLE_SECONDS` idle and at least one compactor run that
//!    started after the last reading was stored (its `/metrics` counters), then RSS and the
//!    store on disk as the running service left it; then a 1 h `/v1/stats` (1 m step, by path)
//!    for one service over HTTP (median of three; also measured right after the last reading
//!    was stored, before those compactor runs), and RSS after it.
//! 5. SIGTERM (clean stop), then the data directory on disk: the store (fjall's journal and its
//!    compressed tables apart) and the WAL; bytes per reading.
//! 6. `serve` again on the same directory: time until `/healthz` answers (journal replay) and the
//!    RSS then.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `READINGS` | 50000000 | readings posted |
//! | `BATCH` | 5000 | readings per request |
//! | `CLIENTS` | 8 | concurrent HTTP posters |
//! | `CHECKPOINT` | 10000000 | readings between memory/disk samples |
//! | `SERVICES` / `INSTANCES` / `PATHS` | 4 / 6 / 20 | the generated fleet |
//! | `SPREAD_HOURS` | 48 | timestamps over the last this many hours |
//! | `IDLE_SECONDS` | 15 | idle time before the after-ingest sample |
//! | `COMPACTION_SECONDS` | 60 | `serve --rollup-compaction-interval` |
//! | `SEED` | 42 | seed of the generated data |
//! | `TIMEBUCKET_BENCH_BIN` | the `timebucket` built by cargo for this bench | binary to run |
//! | `BENCH_WRITE_MD` | 1 | 0: do not update BENCHMARKS.md |

mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use support::data::{Shape, Stream};
use support::disk::du;
use support::load::{post_from, BodySource};
use support::options::env_or;
use support::server::{exposition, metric, proc_status_kib, scrape, Server};

struct Options {
    readings: usize,
    batch: usize,
    clients: usize,
    checkpoint: usize,
    shape: Shape,
    idle: Duration,
    compaction: Duration,
}

/// Memory and disk at one moment.
struct Sample {
    stored: u64,
    rss: u64,
    peak_rss: u64,
    store_bytes: u64,
}

/// The store directory split as fjall lays it out.
struct StoreDisk {
    journal: u64,
    tables: u64,
    other: u64,
}

struct Outcome {
    /// Readings acknowledged with 202.
    readings: u64,
    accepted_rate: f64,
    stored_rate: f64,
    busy: u64,
    backlog: u64,
    dropped: u64,
    samples: Vec<Sample>,
    idle: Sample,
    /// Compactor runs (all, then those after the last reading was stored), rows written and
    /// rows deleted, as `/metrics` counted them.
    compactions: Compactions,
    /// Time from the last reading stored to the idle sample, s.
    idle_seconds: u64,
    stats_latency: Duration,
    /// The same query right after the last reading was stored, before the compactor's runs.
    stats_before_compaction: Duration,
    stats_requests: u64,
    rss_after_stats: u64,
    stopped: StoreDisk,
    wal_bytes: u64,
    restart: Duration,
    restart_rss: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options {
        readings: env_or("READINGS", 50_000_000)?,
        batch: env_or("BATCH", 5000)?,
        clients: env_or("CLIENTS", 8)?,
        checkpoint: env_or("CHECKPOINT", 10_000_000)?,
        shape: Shape::from_env(4, env_or::<i64>("SPREAD_HOURS", 48)? * 3600)?,
        idle: Duration::from_secs(env_or("IDLE_SECONDS", 15)?),
        compaction: Duration::from_secs(env_or("COMPACTION_SECONDS", 60)?),
    };
    let temp = tempfile::tempdir()?;
    let outcome = run(&options, temp.path()).await?;
    let section = markdown(&options, &outcome);
    println!("{section}");
    if env_or("BENCH_WRITE_MD", 1)? != 0 {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        support::sections::write_section(&path, "scale", &section)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("updated {}", path.display());
    }
    Ok(())
}

async fn run(options: &Options, dir: &Path) -> anyhow::Result<Outcome> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let posts = options.readings.div_ceil(options.batch);
    let stream = Arc::new(Stream::new(&options.shape, now_ms, posts));
    let total = (posts * options.batch) as u64;
    let store_dir = dir.join("data/store");
    let interval = format!("{}s", options.compaction.as_secs());
    let mut server = Server::start(None, dir, &["--rollup-compaction-interval", &interval]).await?;
    let pid = server.pid();
    let client = reqwest::Client::new();

    let batch = options.batch;
    let bodies: BodySource = {
        let stream = stream.clone();
        Arc::new(move |i| stream.body(i, batch))
    };
    let load = tokio::spawn({
        let url = server.url.clone();
        let clients = options.clients;
        async move { post_from(&url, bodies, batch, posts, clients).await }
    });

    let mut samples = Vec::new();
    let mut next_checkpoint = options.checkpoint as u64;
    let mut started_waiting = Instant::now();
    let mut load = Some(load);
    let mut posted = None;
    let stored_at = loop {
        server.check_alive()?;
        if load.as_ref().is_some_and(|l| l.is_finished()) {
            let outcome = load.take().expect("checked").await??;
            started_waiting = Instant::now();
            posted = Some(outcome);
        }
        // Once posting is over, what the 202s acknowledged (a dropped connection may have
        // been accepted too, hence `>=`).
        let target = posted.as_ref().map_or(total, |p| p.accepted);
        let stored =
            scrape(&client, &server.url, "timebucket_readings_flushed_total").await? as u64;
        if stored >= next_checkpoint.min(target) {
            let sample = sample(pid, stored, &store_dir)?;
            println!(
                "stored {stored}: RSS {} MiB, peak {} MiB, store {} MiB",
                sample.rss >> 20,
                sample.peak_rss >> 20,
                sample.store_bytes >> 20
            );
            samples.push(sample);
            next_checkpoint += options.checkpoint as u64;
        }
        if posted.is_some() && stored >= target {
            break Instant::now();
        }
        if posted.is_some() && started_waiting.elapsed() > Duration::from_secs(1800) {
            bail!("only {stored} of {target} acknowledged readings stored 30 minutes after the last post");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let load = posted.expect("posting finished");
    let total = load.accepted;
    let stored_rate = total as f64 / (stored_at - load.started).as_secs_f64();

    let query = StatsQuery {
        service: stream.service_name(0).to_owned(),
        to: chrono::DateTime::from_timestamp_millis(now_ms).context("now")?,
    };
    let (stats_before_compaction, _) = stats(&client, &server.url, &query).await?;
    let runs_when_stored = compactions(&client, &server.url).await?.runs;
    let idle_until = Instant::now() + options.idle;
    let compactions = loop {
        server.check_alive()?;
        let now = compactions(&client, &server.url).await?;
        // One run may have been under way when the last reading was stored: two more.
        if now.runs >= runs_when_stored + 2 && Instant::now() >= idle_until {
            break Compactions {
                after_stored: now.runs - runs_when_stored,
                ..now
            };
        }
        if stored_at.elapsed() > 4 * options.compaction + options.idle + Duration::from_secs(600) {
            bail!("the rollup compactor did not run after the last reading was stored: {now:?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let idle = sample(pid, total, &store_dir)?;
    let idle_seconds = stored_at.elapsed().as_secs();

    let (stats_latency, stats_requests) = stats(&client, &server.url, &query).await?;
    let rss_after_stats = proc_status_kib(pid, "VmRSS:")? * 1024;

    server.stop(Duration::from_secs(300)).await?;
    let stopped = store_disk(&store_dir)?;
    let wal_bytes = du(&dir.join("data/wal")).unwrap_or(0);

    let restarted = Instant::now();
    let server = Server::start(None, dir, &[]).await?;
    let restart = restarted.elapsed();
    let restart_rss = proc_status_kib(server.pid(), "VmRSS:")? * 1024;
    server.stop(Duration::from_secs(120)).await?;

    Ok(Outcome {
        accepted_rate: load.rate(),
        stored_rate,
        readings: total,
        busy: load.busy,
        backlog: load.backlog,
        dropped: load.dropped,
        samples,
        idle,
        compactions,
        idle_seconds,
        stats_latency,
        stats_before_compaction,
        stats_requests,
        rss_after_stats,
        stopped,
        wal_bytes,
        restart,
        restart_rss,
    })
}

fn sample(pid: u32, stored: u64, store_dir: &Path) -> anyhow::Result<Sample> {
    Ok(Sample {
        stored,
        rss: proc_status_kib(pid, "VmRSS:")? * 1024,
        peak_rss: proc_status_kib(pid, "VmHWM:")? * 1024,
        store_bytes: live_du(store_dir)?,
    })
}

/// [`du`] of a directory that the running service changes underneath (files of a flush or a
/// compaction come and go): retried until one walk sees a consistent tree.
fn live_du(dir: &Path) -> anyhow::Result<u64> {
    let mut last = None;
    for _ in 0..20 {
        match du(dir) {
            Ok(bytes) => return Ok(bytes),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(last.expect("tried"))
}

/// fjall's journal files (`*.jnl`), its tables (`keyspaces/`) and the rest.
fn store_disk(store_dir: &Path) -> anyhow::Result<StoreDisk> {
    let mut disk = StoreDisk {
        journal: 0,
        tables: 0,
        other: 0,
    };
    for entry in std::fs::read_dir(store_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = if entry.metadata()?.is_dir() {
            du(&entry.path())?
        } else {
            entry.metadata()?.len()
        };
        if name.ends_with(".jnl") || name == "journals" {
            disk.journal += bytes;
        } else if name == "keyspaces" || name == "partitions" {
            disk.tables += bytes;
        } else {
            disk.other += bytes;
        }
    }
    Ok(disk)
}

/// Requests counted by a `/v1/stats` answer, over all its groups and steps.
fn requests_in(answer: &serde_json::Value) -> u64 {
    answer["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["points"].as_array().into_iter().flatten())
        .filter_map(|p| p["count"].as_u64())
        .sum()
}

/// The 1 h `/v1/stats` query of the bench: one service, up to the bench's start time.
struct StatsQuery {
    service: String,
    to: chrono::DateTime<chrono::Utc>,
}

/// The median latency of three runs of `query`, and the requests its answer counts.
async fn stats(
    client: &reqwest::Client,
    url: &str,
    query: &StatsQuery,
) -> anyhow::Result<(Duration, u64)> {
    let from = query.to - chrono::Duration::hours(1);
    let mut latencies = Vec::new();
    let mut requests = 0;
    for _ in 0..3 {
        let asked = Instant::now();
        let response = client
            .get(format!("{url}/v1/stats"))
            .query(&[
                ("service", query.service.as_str()),
                ("from", &from.to_rfc3339()),
                ("to", &query.to.to_rfc3339()),
                ("step", "60s"),
                ("group_by", "path"),
            ])
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("GET /v1/stats answered {status}: {text}");
        }
        latencies.push(asked.elapsed());
        let answer: serde_json::Value = serde_json::from_str(&text)?;
        requests = requests_in(&answer);
        if requests == 0 {
            bail!(
                "the 1 h stats of {} counted no request: {answer}",
                query.service
            );
        }
    }
    latencies.sort();
    Ok((latencies[1], requests))
}

/// The rollup compactor's counters.
#[derive(Debug, Clone, Copy)]
struct Compactions {
    runs: u64,
    failed: u64,
    after_stored: u64,
    written: u64,
    deleted: u64,
}

async fn compactions(client: &reqwest::Client, url: &str) -> anyhow::Result<Compactions> {
    let text = exposition(client, url).await?;
    // A counter of a labelled family appears once its label has been seen.
    let read = |name: &str| metric(&text, name).unwrap_or(0.0) as u64;
    Ok(Compactions {
        runs: read("timebucket_rollup_compactions_total{outcome=\"ok\"}"),
        failed: read("timebucket_rollup_compactions_total{outcome=\"failed\"}"),
        after_stored: 0,
        written: read("timebucket_rollup_compacted_rows_total"),
        deleted: read("timebucket_rollup_deleted_rows_total"),
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

fn markdown(options: &Options, o: &Outcome) -> String {
    let total = o.readings as f64;
    let per = |bytes: u64| format!("{:.1}", bytes as f64 / total);
    let mut s = String::new();
    let _ = writeln!(s, "## Embedded store at scale — latest run\n");
    let _ = writeln!(
        s,
        "- date: {}\n- command: `CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench scale`",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let _ = writeln!(
        s,
        "- data: {} API readings ({} services × {} instances × {} paths), timestamps over the last {} h advancing with the requests, {} per request, {} concurrent posters generating the bodies as they post\n- service: `timebucket serve` (release), default flags, embedded store in a temp `--data-dir`\n",
        total as u64,
        options.shape.services,
        options.shape.instances,
        options.shape.paths,
        options.shape.spread_seconds / 3600,
        options.batch,
        options.clients
    );
    let _ = writeln!(
        s,
        "| readings stored | RSS | peak RSS (VmHWM) | store on disk | bytes/reading on disk |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- |");
    for x in o.samples.iter().chain(std::iter::once(&o.idle)) {
        let _ = writeln!(
            s,
            "| {}{} | {} | {} | {} | {:.1} |",
            x.stored,
            if std::ptr::eq(x, &o.idle) {
                format!(
                    " (+{} s idle, {} compactor runs after)",
                    o.idle_seconds, o.compactions.after_stored
                )
            } else {
                String::new()
            },
            mib(x.rss),
            mib(x.peak_rss),
            mib(x.store_bytes),
            x.store_bytes as f64 / x.stored.max(1) as f64
        );
    }
    let stopped = &o.stopped;
    let store = stopped.journal + stopped.tables + stopped.other;
    let _ = writeln!(s);
    let _ = writeln!(s, "| figure | value |\n| --- | --- |");
    let _ = writeln!(
        s,
        "| accepted / stored readings/s | {:.0} / {:.0} |",
        o.accepted_rate, o.stored_rate
    );
    let _ = writeln!(
        s,
        "| 429 / 503 answers, connections dropped before an answer (all retried) | {} / {} / {} |",
        o.busy, o.backlog, o.dropped
    );
    let _ = writeln!(
        s,
        "| 1 h `/v1/stats` of one service (1 m step, by path), median of 3: latency before / after the compactor's last runs, requests counted | {} / {} ms, {} |",
        o.stats_before_compaction.as_millis(),
        o.stats_latency.as_millis(),
        o.stats_requests
    );
    let _ = writeln!(s, "| RSS after that query | {} |", mib(o.rss_after_stats));
    let c = &o.compactions;
    let _ = writeln!(
        s,
        "| rollup compactor (every {} s): runs (failed), compacted rows written, partials deleted | {} ({} after the last reading was stored; {} failed), {}, {} |",
        options.compaction.as_secs(),
        c.runs,
        c.after_stored,
        c.failed,
        c.written,
        c.deleted
    );
    let _ = writeln!(
        s,
        "| after a clean stop: store, bytes/reading | {} ({} bytes/reading): journal {}, tables {}, other {} |",
        mib(store),
        per(store),
        mib(stopped.journal),
        mib(stopped.tables),
        mib(stopped.other)
    );
    let _ = writeln!(s, "| after a clean stop: WAL | {} |", mib(o.wal_bytes));
    let _ = writeln!(
        s,
        "| restart on that directory: until `/healthz`, RSS then | {} ms, {} |",
        o.restart.as_millis(),
        mib(o.restart_rss)
    );
    let _ = writeln!(s);
    s
}
