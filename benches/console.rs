//! Console benchmark (issue 16): the web console's heaviest pages, with 200 services and a
//! service of 1,000 paths, timed at the server and in a real browser.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench console
//! ```
//!
//! The real binary (`timebucket serve`, the embedded store in a temp `--data-dir`, or CQL with
//! `BACKEND=cql`) receives, through `POST /v1/metrics`, an hour of readings ending now:
//! `SERVICES` services of `INSTANCES` instances and 5 paths each (`READINGS` API readings per
//! service, a host reading per instance per minute), and one service `wide` with `PATHS` paths
//! (`WIDE_READINGS` readings per path). Once every reading is flushed, each page is fetched
//! `ITERATIONS` times after two warm-ups:
//!
//! - **server**: the whole HTML answer over HTTP (queries through the query layer + rendering);
//! - **browser**: headless Chromium (the console tests' driver, `tests/it/console/browser.rs`)
//!   loads the page; the time is the navigation's `loadEventEnd` (request, answer, parsing,
//!   styles, layout and the script: the page is complete and usable).
//!
//! Pages: the overview of the last hour (200 services, 50 a page; sorted by 5xx share, which needs
//! every service's totals, and by instances up, which also needs every service's host stats),
//! the `wide` service (1,000 paths, 50 a page), the same sorted by p99 on its last page, an
//! ordinary service, and its readings explorer. Reported: p50 / p99 of both times, the answer's size, and the rows in the
//! page's main table. The target (issue 16): every page usable and rendered in under a second.
//! Each backend has its own section in BENCHMARKS.md (`console`, `console-cql`).
//!
//! Options (environment variables):
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `BACKEND` | `embedded` | `embedded`, or `cql` (then `TIMEBUCKET_BENCH_CQL`, default `127.0.0.1:9042`, and a fresh keyspace) |
//! | `SERVICES` | 200 | ordinary services |
//! | `INSTANCES` | 3 | instances per ordinary service |
//! | `READINGS` | 300 | API readings per ordinary service |
//! | `PATHS` | 1000 | paths of the `wide` service |
//! | `WIDE_READINGS` | 5 | readings per path of `wide` |
//! | `ITERATIONS` | 20 | measured loads per page and way |
//! | `BENCH_WRITE_MD` | 1 | 0: do not update BENCHMARKS.md |

#[allow(dead_code)]
#[path = "../tests/it/console/browser.rs"]
mod browser;
mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use support::options::env_or;
use support::server::{scrape, Server};

const MINUTE: i64 = 60_000;

struct Options {
    backend: String,
    node: String,
    services: usize,
    instances: usize,
    readings: usize,
    paths: usize,
    wide_readings: usize,
    iterations: usize,
}

/// One page's figures.
struct PageFigures {
    label: &'static str,
    path: String,
    server: Vec<Duration>,
    browser: Vec<Duration>,
    bytes: usize,
    rows: usize,
}

fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The readings: `SERVICES` ordinary services and `wide`, as one body per service.
fn bodies(o: &Options, end: i64) -> Vec<Value> {
    let mut rng = fastrand::Rng::with_seed(16);
    let codes = [200, 200, 200, 200, 200, 201, 404, 500];
    let mut out = Vec::new();
    for s in 0..o.services {
        let service = format!("svc-{s:03}");
        let api: Vec<Value> = (0..o.readings)
            .map(|_| {
                json!({"service": service, "instance": format!("i-{}", rng.usize(0..o.instances)),
                       "method": "GET", "path": format!("/p{}", rng.usize(0..5)),
                       "code": codes[rng.usize(0..codes.len())],
                       "duration_ms": (rng.f64() * 5.0).exp(), "timestamp": end - rng.i64(0..60 * MINUTE)})
            })
            .collect();
        let host: Vec<Value> = (0..o.instances)
            .flat_map(|i| (0..60).map(move |m| (i, m)))
            .map(|(i, m)| {
                json!({"service": service, "instance": format!("i-{i}"), "timestamp": end - m * MINUTE,
                       "cpu_percent": 40.0, "mem_used_bytes": 1i64 << 29, "mem_total_bytes": 1i64 << 31,
                       "available": true})
            })
            .collect();
        out.push(json!({"api": api, "host": host}));
    }
    let api: Vec<Value> = (0..o.paths)
        .flat_map(|p| (0..o.wide_readings).map(move |k| (p, k)))
        .map(|(p, _)| {
            json!({"service": "wide", "instance": "w-1", "method": "GET", "path": format!("/items/{p:04}"),
                   "code": codes[rng.usize(0..codes.len())], "duration_ms": (rng.f64() * 5.0).exp(),
                   "timestamp": end - rng.i64(0..60 * MINUTE)})
        })
        .collect();
    out.push(json!({"api": api}));
    out
}

async fn seed(client: &reqwest::Client, url: &str, o: &Options) -> anyhow::Result<u64> {
    let end = chrono::Utc::now().timestamp_millis() - 1000;
    let mut accepted = 0u64;
    for body in bodies(o, end) {
        let answer: Value = client
            .post(format!("{url}/v1/metrics"))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        accepted += answer["accepted"].as_u64().context("accepted")?;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while scrape(client, url, "timebucket_readings_flushed_total").await? < accepted as f64 {
        if Instant::now() > deadline {
            bail!("readings not flushed after 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(accepted)
}

async fn measure(
    client: &reqwest::Client,
    tab: &browser::Tab,
    url: &str,
    label: &'static str,
    (path, table): (String, &str),
    iterations: usize,
) -> anyhow::Result<PageFigures> {
    let full = format!("{url}{path}");
    let mut figures = PageFigures {
        label,
        path,
        server: Vec::new(),
        browser: Vec::new(),
        bytes: 0,
        rows: 0,
    };
    for round in 0..iterations + 2 {
        let started = Instant::now();
        let response = client.get(&full).send().await?;
        if !response.status().is_success() {
            bail!("{full}: {}", response.status());
        }
        let html = response.text().await?;
        let took = started.elapsed();
        tab.open(&full).await;
        let load: f64 = tab
            .eval("performance.getEntriesByType('navigation')[0].loadEventEnd")
            .await;
        if round >= 2 {
            figures.server.push(took);
            figures.browser.push(Duration::from_secs_f64(load / 1000.0));
        }
        figures.bytes = html.len();
    }
    figures.rows = tab
        .eval(&format!(
            "document.querySelectorAll('#{table} tbody tr').length"
        ))
        .await;
    let errors = tab.errors();
    if !errors.is_empty() {
        bail!("the browser reported errors on {full}: {errors:?}");
    }
    Ok(figures)
}

fn markdown(o: &Options, readings: u64, pages: &[PageFigures]) -> String {
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let mut revision = git(&["rev-parse", "--short", "HEAD"]);
    if !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        revision.push_str(" plus uncommitted changes");
    }
    let mut s = String::new();
    let _ = writeln!(s, "## Console benchmark ({}) — latest run\n", o.backend);
    let _ = writeln!(
        s,
        "- date: {date}; code: {revision}; load average (1 min) at the end: {load}"
    );
    let prefix = if o.backend == "cql" {
        "BACKEND=cql "
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "- command: `{prefix}CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench console`"
    );
    let _ = writeln!(
        s,
        "- store: {}; `timebucket serve` (release) with default flags, on the same 2-core machine as the browser",
        if o.backend == "cql" { "Cassandra (one local node), fresh keyspace" } else { "embedded, temp data dir" }
    );
    let _ = writeln!(
        s,
        "- data: the last hour, {readings} readings: {} services × {} instances, {} API readings each over 5 paths and a host reading per instance per minute; service `wide` with {} paths × {} readings",
        o.services, o.instances, o.readings, o.paths, o.wide_readings
    );
    let _ = writeln!(
        s,
        "- {} loads per page and way after two warm-ups; server = the whole HTML answer over HTTP; browser = headless Chromium's `loadEventEnd` (answer, parse, style, layout, script)\n",
        o.iterations
    );
    let _ = writeln!(s, "| page | rows shown | HTML | server p50 / p99 | browser p50 / p99 | target: rendered < 1 s (browser p99) |");
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- |");
    for p in pages {
        let p99 = quantile(&p.browser, 0.99);
        let _ = writeln!(
            s,
            "| {} (`{}`) | {} | {:.0} KiB | {} / {} | {} / {} | {} |",
            p.label,
            p.path,
            p.rows,
            p.bytes as f64 / 1024.0,
            ms(quantile(&p.server, 0.5)),
            ms(quantile(&p.server, 0.99)),
            ms(quantile(&p.browser, 0.5)),
            ms(p99),
            if p99 < Duration::from_secs(1) {
                "PASS"
            } else {
                "FAIL"
            }
        );
    }
    let _ = writeln!(
        s,
        "\nThe server time is almost all queries: the overview asks every service's totals (one stats query each, eight services at a time), then the trend and host stats of the 50 rows it shows (sorting by instances up asks every service's host stats first); the `wide` page groups 1,000 paths in one stats query and sends 50 of them. Tables page at 50 rows, so the browser's share stays small whatever the number of services or paths."
    );
    s
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = Options {
        backend: env_or("BACKEND", "embedded".to_owned())?,
        node: env_or("TIMEBUCKET_BENCH_CQL", "127.0.0.1:9042".to_owned())?,
        services: env_or("SERVICES", 200)?,
        instances: env_or("INSTANCES", 3)?,
        readings: env_or("READINGS", 300)?,
        paths: env_or("PATHS", 1000)?,
        wide_readings: env_or("WIDE_READINGS", 5)?,
        iterations: env_or("ITERATIONS", 20)?,
    };
    let dir = tempfile::tempdir()?;
    // CQL: a fresh keyspace, dropped at the end whatever happens.
    let cql = match o.backend.as_str() {
        "embedded" => None,
        "cql" => {
            let session = support::cql::session(&o.node).await?;
            let keyspace = support::cql::migrated_keyspace(&session, "console").await?;
            Some((session, keyspace))
        }
        other => bail!("BACKEND={other}: use embedded or cql"),
    };
    let outcome = run(&o, dir.path(), cql.as_ref().map(|(_, k)| k.to_string())).await;
    if let Some((session, keyspace)) = &cql {
        support::cql::drop_keyspace(session, keyspace).await?;
    }
    let (readings, figures) = outcome?;
    let section = markdown(&o, readings, &figures);
    println!("{section}");
    if env_or("BENCH_WRITE_MD", 1u8)? == 1 {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        // One section per backend, so a CQL run does not replace the embedded one.
        let name = if o.backend == "cql" {
            "console-cql"
        } else {
            "console"
        };
        support::sections::write_section(&path, name, &section)?;
    }
    Ok(())
}

/// Starts the server, seeds it and measures every page.
async fn run(
    o: &Options,
    dir: &std::path::Path,
    keyspace: Option<String>,
) -> anyhow::Result<(u64, Vec<PageFigures>)> {
    let cql = keyspace.as_deref().map(|k| (o.node.as_str(), k));
    let server = Server::start(cql, dir, &[]).await?;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let readings = seed(&client, &server.url, o).await?;
    println!(
        "seeded {readings} readings in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let chromium = browser::Chromium::start().await;
    let tab = chromium.tab().await;
    // Each page, and the id of its main table (whose rows are counted).
    let pages = [
        ("overview, all services", "/?range=1h", "services"),
        (
            "overview by instances up",
            "/?range=1h&sort=up&dir=asc",
            "services",
        ),
        (
            "service with 1,000 paths",
            "/services/wide?range=1h",
            "paths-table",
        ),
        (
            "same, by p99, last page",
            "/services/wide?range=1h&sort=p99&dir=desc&page=20",
            "paths-table",
        ),
        (
            "ordinary service",
            "/services/svc-000?range=1h",
            "paths-table",
        ),
        (
            "readings explorer",
            "/services/svc-000/readings?range=1h",
            "readings",
        ),
    ];
    let mut figures = Vec::new();
    for (label, path, table) in pages {
        let page = measure(
            &client,
            &tab,
            &server.url,
            label,
            (path.to_owned(), table),
            o.iterations,
        )
        .await?;
        println!(
            "{label}: server p50 {} browser p50 {} ({} rows, {} bytes)",
            ms(quantile(&page.server, 0.5)),
            ms(quantile(&page.browser, 0.5)),
            page.rows,
            page.bytes
        );
        figures.push(page);
    }
    drop(tab);
    chromium.close().await;
    server.stop(Duration::from_secs(10)).await?;
    Ok((readings, figures))
}
