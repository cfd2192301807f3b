//! Scraping at fleet scale (issue 13): the real `timebucket serve --scrape-config` scraping
//! `TARGETS` local targets of `SERIES` samples each every `INTERVAL`; the CPU it spends per
//! scraped sample and how late scrapes start after their slots.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench scrape
//! ```
//!
//! The targets are axum servers in this process, one listener each. Each serves groups of 20
//! samples: an HTTP-server histogram (`http_request_duration_seconds`, 14 bounds + `+Inf`,
//! `_sum`, `_count`), a `http_requests_total` counter of the same requests and two gauges. Every
//! scrape of a target finds 3 more requests per group (1 fast, 2 slower), so each scrape turns
//! into API readings (deltas) and one host reading, through the WAL into the embedded store, as
//! in production.
//!
//! After one unmeasured interval (every target's first scrape only primes its series), the run
//! measures `ROUNDS` intervals:
//! - **CPU per sample**: the service process's CPU time (`/proc/<pid>/stat`) over the window,
//!   divided by the samples it read (`timebucket_scrape_samples_total`);
//! - **lateness**: for every scrape a target received, its arrival time minus the slot it
//!   belongs to (the target's stable offset in the interval, `scrape::shard::offset`), as the
//!   target sees it: scheduling, connection and request time included.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `TARGETS` | 1000 | targets |
//! | `SERIES` | 200 | samples per target (rounded down to a multiple of 20) |
//! | `INTERVAL` | 15s | `scrape_interval` |
//! | `ROUNDS` | 4 | measured intervals |
//! | `BENCH_WRITE_MD` | 1 | 0: do not update BENCHMARKS.md |

#[allow(dead_code)]
#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/options.rs"]
mod options;
#[allow(dead_code)]
#[path = "support/sections.rs"]
mod sections;
#[allow(dead_code)]
#[path = "support/server.rs"]
mod server;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::extract::State;
use axum::http::header::USER_AGENT;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use timebucket::scrape::shard;

/// Samples per group: 15 buckets, sum, count, a counter, two gauges.
const GROUP: usize = 20;
/// Histogram bounds, seconds.
const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const JOB: &str = "bench";

/// Every scrape any target received: (target, ns since the epoch).
type Arrivals = Arc<Mutex<Vec<(usize, u128)>>>;

struct TargetState {
    index: usize,
    groups: usize,
    scrapes: AtomicU64,
    arrivals: Arrivals,
}

/// The exposition of a target's `k`-th scrape: every group has seen `3k` requests.
fn exposition(groups: usize, k: u64) -> String {
    let mut out = String::with_capacity(groups * GROUP * 90);
    out.push_str("# TYPE http_request_duration_seconds histogram\n");
    for g in 0..groups {
        let labels = format!("method=\"GET\",handler=\"/route/{g}/{{id}}\",code=\"200\"");
        for le in BOUNDS {
            // 1 request of 8 ms and 2 of 40 ms per scrape.
            let below = if le >= 0.05 {
                3 * k
            } else if le >= 0.01 {
                k
            } else {
                0
            };
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {below}"
            );
        }
        let _ = writeln!(
            out,
            "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            3 * k
        );
        let _ = writeln!(
            out,
            "http_request_duration_seconds_sum{{{labels}}} {}",
            k as f64 * 0.088
        );
        let _ = writeln!(
            out,
            "http_request_duration_seconds_count{{{labels}}} {}",
            3 * k
        );
    }
    out.push_str("# TYPE http_requests_total counter\n");
    for g in 0..groups {
        let _ = writeln!(
            out,
            "http_requests_total{{method=\"GET\",handler=\"/route/{g}/{{id}}\",code=\"200\"}} {}",
            3 * k
        );
    }
    out.push_str("# TYPE app_queue_depth gauge\n");
    for g in 0..groups {
        let _ = writeln!(out, "app_queue_depth{{queue=\"q{g}\"}} {}", k % 7);
        let _ = writeln!(out, "app_inflight{{queue=\"q{g}\"}} {}", k % 3);
    }
    out
}

async fn metrics(
    State(target): State<Arc<TargetState>>,
    headers: HeaderMap,
) -> Result<String, StatusCode> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Other processes on this shared machine may reach a target's port (one they had just
    // freed, say): only the service's scrapes count.
    let agent = headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
    if !agent.is_some_and(|a| a.starts_with("timebucket/")) {
        return Err(StatusCode::NOT_FOUND);
    }
    target
        .arrivals
        .lock()
        .unwrap()
        .push((target.index, now.as_nanos()));
    let k = target.scrapes.fetch_add(1, Ordering::Relaxed) + 1;
    Ok(exposition(target.groups, k))
}

/// Starts `n` targets; their `host:port` addresses.
async fn start_targets(
    n: usize,
    groups: usize,
    arrivals: &Arrivals,
) -> anyhow::Result<Vec<String>> {
    let mut addresses = Vec::with_capacity(n);
    for index in 0..n {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addresses.push(listener.local_addr()?.to_string());
        let state = Arc::new(TargetState {
            index,
            groups,
            scrapes: AtomicU64::new(0),
            arrivals: arrivals.clone(),
        });
        let app = Router::new()
            .route("/metrics", get(metrics))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    Ok(addresses)
}

/// The sum of the `/metrics` samples named `name`, whatever their labels.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once('}')?.1,
                None => rest,
            };
            value.trim().parse::<f64>().ok()
        })
        .sum()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

struct Outcome {
    samples: f64,
    readings: f64,
    flushed: f64,
    usage: cpu::Usage,
    lateness_ms: Vec<f64>,
    per_target: (usize, usize),
    load: String,
}

async fn run(
    targets: usize,
    groups: usize,
    interval: Duration,
    rounds: u32,
) -> anyhow::Result<Outcome> {
    let arrivals: Arrivals = Arc::default();
    let addresses = start_targets(targets, groups, &arrivals).await?;
    let dir = tempfile::tempdir()?;
    let list: Vec<String> = addresses.iter().map(|a| format!("'{a}'")).collect();
    let timeout = interval.min(Duration::from_secs(10));
    let config = format!(
        "scrape_configs:\n  - job_name: {JOB}\n    scrape_interval: {}ms\n    scrape_timeout: {}ms\n    static_configs:\n      - targets: [{}]\n",
        interval.as_millis(),
        timeout.as_millis(),
        list.join(", ")
    );
    let config_path = dir.path().join("scrape.yml");
    std::fs::write(&config_path, config)?;
    let config_arg = config_path.to_string_lossy().into_owned();
    let mut service =
        server::Server::start(None, dir.path(), &["--scrape-config", &config_arg]).await?;
    let client = reqwest::Client::new();
    let metrics_url = format!("{}/metrics", service.url);
    let metrics_text =
        || async { anyhow::Ok(client.get(&metrics_url).send().await?.text().await?) };
    // Every target's first scrape primes its series: leave one whole interval out.
    tokio::time::sleep(interval + Duration::from_secs(2)).await;
    service.check_alive()?;
    let (m0, c0) = (
        metrics_text().await?,
        cpu::Snapshot::take(Some(service.pid())),
    );
    let window_start = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    tokio::time::sleep(interval * rounds).await;
    let (m1, c1) = (
        metrics_text().await?,
        cpu::Snapshot::take(Some(service.pid())),
    );
    let window_end = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    service.check_alive()?;
    let delta = |name: &str| metric(&m1, name) - metric(&m0, name);
    let offsets: Vec<u128> = addresses
        .iter()
        .map(|a| shard::offset(JOB, &format!("http://{a}/metrics"), interval).as_nanos())
        .collect();
    let interval_ns = interval.as_nanos();
    let mut lateness_ms = Vec::new();
    let mut per_target = vec![0usize; targets];
    for &(index, at) in arrivals.lock().unwrap().iter() {
        if at < window_start || at > window_end {
            continue;
        }
        per_target[index] += 1;
        let mut late = ((at + interval_ns - offsets[index] % interval_ns) % interval_ns) as f64;
        // A slot a hair after the arrival is the monotonic and wall clocks disagreeing: early.
        if late > interval_ns as f64 / 2.0 {
            late -= interval_ns as f64;
        }
        lateness_ms.push(late / 1e6);
    }
    lateness_ms.sort_by(f64::total_cmp);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let outcome = Outcome {
        samples: delta("timebucket_scrape_samples_total"),
        readings: delta("timebucket_scrape_readings_total"),
        flushed: delta("timebucket_readings_flushed_total"),
        usage: c0.until(&c1),
        lateness_ms,
        per_target: (
            per_target.iter().copied().min().unwrap_or(0),
            per_target.iter().copied().max().unwrap_or(0),
        ),
        load: load
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    };
    service
        .stop(Duration::from_secs(30))
        .await
        .context("stopping the service")?;
    Ok(outcome)
}

fn report(o: &Outcome, targets: usize, series: usize, interval: Duration, rounds: u32) -> String {
    let cpu_seconds = o.usage.server * o.usage.wall.as_secs_f64();
    let per_sample_us = cpu_seconds / o.samples.max(1.0) * 1e6;
    let expected = targets as f64 * series as f64 * f64::from(rounds);
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let l = &o.lateness_ms;
    let mut md = String::new();
    let _ = writeln!(md, "## Scrape benchmark — latest run\n");
    let _ = writeln!(md, "- date: {date}");
    let _ = writeln!(md, "- command: `CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench scrape` (what it measures: top of `benches/scrape.rs`)");
    let _ = writeln!(md, "- code: {revision}");
    let _ = writeln!(md, "- machine: 2 cores, shared with other work (load average at the end: {}); targets served by this bench process on the same cores", o.load);
    let _ = writeln!(md, "- parameters: TARGETS={targets}, SERIES={series}, INTERVAL={}s, ROUNDS={rounds}; embedded store\n", interval.as_secs_f64());
    let _ = writeln!(md, "| measure | value |\n| --- | --- |");
    let _ = writeln!(
        md,
        "| samples scraped in the window | {:.0} (expected {expected:.0}) |",
        o.samples
    );
    let _ = writeln!(
        md,
        "| scrapes per target in the window | {} to {} (expected {rounds}) |",
        o.per_target.0, o.per_target.1
    );
    let _ = writeln!(
        md,
        "| service CPU | {cpu_seconds:.2} s over {:.1} s ({:.3} cores) |",
        o.usage.wall.as_secs_f64(),
        o.usage.server
    );
    let _ = writeln!(
        md,
        "| **CPU per scraped sample** | **{per_sample_us:.2} µs** |"
    );
    let _ = writeln!(
        md,
        "| **scrape lateness p99** | **{:.1} ms** (p50 {:.1} ms, max {:.1} ms; {} scrapes) |",
        percentile(l, 0.99),
        percentile(l, 0.5),
        l.last().copied().unwrap_or(f64::NAN),
        l.len()
    );
    let _ = writeln!(
        md,
        "| readings made durable / written to the store | {:.0} / {:.0} |",
        o.readings, o.flushed
    );
    let _ = writeln!(md, "\nWhere the CPU went: {}.", o.usage.describe());
    md
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_writer(std::io::stderr)
        .init();
    let targets: usize = options::env_or("TARGETS", 1000)?;
    let series: usize = options::env_or("SERIES", 200)?;
    let interval = humantime::parse_duration(&options::env_or("INTERVAL", "15s".to_owned())?)?;
    let rounds: u32 = options::env_or("ROUNDS", 4)?;
    let write_md: u32 = options::env_or("BENCH_WRITE_MD", 1)?;
    let groups = (series / GROUP).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(run(targets, groups, interval, rounds))?;
    let md = report(&outcome, targets, groups * GROUP, interval, rounds);
    println!("{md}");
    if write_md != 0 {
        sections::write_section(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md"),
            "scrape",
            &md,
        )?;
    }
    Ok(())
}
