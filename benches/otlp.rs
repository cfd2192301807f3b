//! OTLP acceptance benchmark (issue 12): OTLP/HTTP protobuf next to our JSON ingest, the same
//! requests in both encodings, through the real `timebucket` binary in the same run.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench otlp
//! ```
//!
//! The ingest benchmark's generated fleet (`READINGS` readings: request durations of many
//! services, instances and endpoints, 5% of them summaries of 2-50 requests) is encoded twice,
//! `BATCH` readings per body:
//! - **JSON**: the bodies `POST /v1/metrics` takes, one reading per generated reading;
//! - **OTLP, same batches**: each body's readings as one `ExportMetricsServiceRequest`, as a
//!   Collector batching many apps sends it: a resource per (service, instance), and per (method,
//!   route, status) one delta `http.server.request.duration` histogram point with the semantic
//!   conventions' bucket bounds, holding exactly those readings' requests (count, sum, min, max).
//!   The fleet has ~1,000 series, so a body of 1,000 readings makes ~550 points of ~2 requests
//!   each: the worst case for OTLP, whose points are meant to summarise an interval;
//! - **OTLP, export intervals**: the readings of `INTERVAL_BODIES` bodies (one export interval of
//!   the whole fleet) as one request, one point per series: what SDKs and Collectors send.
//!
//! All three represent the same requests. One `timebucket serve` (default flags, both OTLP
//! receivers on) runs against the CQL node through a proxy that is then cut, so the flusher cannot
//! write and only acceptance (decode, convert, validate, WAL append + fsync) is measured, as in
//! phase 3 of the ingest benchmark. `ROUNDS` rounds alternate a JSON phase and an OTLP phase on
//! that server from `CLIENTS` concurrent posters; the best round of each is reported: bodies/s,
//! data points (OTLP) or readings (JSON) per second, requests represented per second, and the
//! service's CPU per request represented. The issue's target: OTLP costs no more CPU per request
//! represented than JSON. Every OTLP answer must be a full success (no partial success).
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `TIMEBUCKET_BENCH_CQL` | `127.0.0.1:9042` | the CQL node |
//! | `READINGS` | 400000 | generated readings (rounded up to whole batches) |
//! | `BATCH` | 1000 | readings per body |
//! | `SERVICES` / `INSTANCES` / `PATHS` | 8 / 6 / 20 | the generated fleet |
//! | `CLIENTS` | 8 | concurrent posters |
//! | `INTERVAL_BODIES` | 20 | bodies of readings per OTLP request in the export-interval encoding |
//! | `ROUNDS` | 3 | rounds, each a JSON phase then the two OTLP phases |
//! | `SEED` | 42 | seed of the generated data |
//! | `TIMEBUCKET_BENCH_BIN` | the `timebucket` built by cargo for this bench | binary to run |
//! | `BENCH_WRITE_MD` | 1 | 0: do not update BENCHMARKS.md |

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value as Any, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use support::cpu::{Snapshot, Usage};
use support::data::{Dataset, Shape};
use support::load::quantile;
use support::options::env_or;
use support::proxy::Proxy;
use support::server::Server;

/// The bucket bounds the HTTP semantic conventions advise, seconds.
const BOUNDS_S: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

struct Options {
    cql: String,
    readings: usize,
    batch: usize,
    shape: Shape,
    clients: usize,
    interval_bodies: usize,
    rounds: usize,
    write_md: bool,
}

impl Options {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            cql: env_or("TIMEBUCKET_BENCH_CQL", "127.0.0.1:9042".to_owned())?,
            readings: env_or("READINGS", 400_000)?,
            batch: env_or("BATCH", 1000)?,
            shape: Shape::from_env(8, 300)?,
            clients: env_or("CLIENTS", 8)?,
            interval_bodies: env_or("INTERVAL_BODIES", 20)?,
            rounds: env_or("ROUNDS", 3)?,
            write_md: env_or("BENCH_WRITE_MD", 1)? != 0,
        })
    }
}

/// One encoding of the generated requests.
struct Encoding {
    name: &'static str,
    content_type: &'static str,
    /// The endpoint's base URL is the server's (JSON) or its OTLP/HTTP receiver's.
    otlp: bool,
    bodies: Arc<Vec<Bytes>>,
    /// Readings (JSON) or histogram data points (OTLP) over all bodies.
    items: u64,
    /// Requests the bodies represent (the same for both encodings).
    requests: u64,
}

/// What one phase measured.
#[derive(Clone, Copy)]
struct Phase {
    wall: Duration,
    cpu: Usage,
    p50: Duration,
    p99: Duration,
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("otlp bench failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let options = Options::from_env()?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let data = Dataset::generate(&options.shape, options.readings, options.batch, now_ms);
    let json = Encoding {
        name: "JSON",
        content_type: "application/json",
        otlp: false,
        bodies: Arc::new(data.bodies.clone()),
        items: data.readings.len() as u64,
        requests: data.readings.iter().map(|r| u64::from(r.count)).sum(),
    };
    let batches = otlp_encoding(&data, options.batch, "OTLP, same batches", now_ms);
    let intervals = otlp_encoding(
        &data,
        options.batch * options.interval_bodies.max(1),
        "OTLP, export intervals",
        now_ms,
    );
    for e in [&json, &batches, &intervals] {
        if e.requests != json.requests {
            bail!(
                "{} represents {} requests, JSON {}",
                e.name,
                e.requests,
                json.requests
            );
        }
        println!(
            "{}: {} bodies, {} items, {:.1} MiB, {} requests",
            e.name,
            e.bodies.len(),
            e.items,
            mib(&e.bodies),
            e.requests
        );
    }

    let session = support::cql::session(&options.cql).await?;
    let keyspace = support::cql::migrated_keyspace(&session, "otlp").await?;
    let proxy = Proxy::start(options.cql.clone()).await;
    let dir = tempfile::Builder::new().prefix("tb-bench-otlp").tempdir()?;
    let otlp_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let otlp_url = format!("http://127.0.0.1:{otlp_port}");
    let outcome = async {
        let mut server = Server::start(
            Some((&proxy.addr.to_string(), keyspace.as_str())),
            dir.path(),
            &[
                "--max-backlog-bytes",
                "1000000000000",
                "--otlp-http-listen",
                &format!("127.0.0.1:{otlp_port}"),
            ],
        )
        .await?;
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut best: BTreeMap<&str, Phase> = BTreeMap::new();
        for round in 1..=options.rounds {
            for encoding in [&json, &batches, &intervals] {
                let url = if encoding.otlp { &otlp_url } else { &server.url };
                let before = Snapshot::take(Some(server.pid()));
                let (wall, latencies) = post_all(url, encoding, options.clients).await?;
                let cpu = before.until(&Snapshot::take(Some(server.pid())));
                server.check_alive()?;
                let phase = Phase {
                    wall,
                    cpu,
                    p50: quantile(&latencies, 0.5),
                    p99: quantile(&latencies, 0.99),
                };
                println!(
                    "  round {round} {}: {:.2} s, {:.0} requests represented/s, service CPU {:.2} µs per request\n    CPU: {}",
                    encoding.name,
                    wall.as_secs_f64(),
                    encoding.requests as f64 / wall.as_secs_f64(),
                    cpu_per_request_us(&phase, encoding),
                    cpu.describe()
                );
                let slot = best.entry(encoding.name).or_insert(phase);
                if phase.wall < slot.wall {
                    *slot = phase;
                }
            }
        }
        let flushed = support::server::scrape(
            &reqwest::Client::new(),
            &server.url,
            "timebucket_readings_flushed_total",
        )
        .await?;
        if flushed != 0.0 {
            bail!("the store was cut, yet {flushed} readings were flushed");
        }
        drop(server); // SIGKILL: its WAL goes with the directory.
        Ok::<_, anyhow::Error>(best)
    }
    .await;
    drop(proxy);
    support::cql::drop_keyspace(&session, &keyspace).await?;
    let best = outcome?;
    let section = report(&options, &[&json, &batches, &intervals], &best);
    print!("\n{section}");
    if options.write_md {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        support::sections::write_section(&path, "otlp", &section)?;
        println!("BENCHMARKS.md updated");
    }
    Ok(())
}

fn mib(bodies: &[Bytes]) -> f64 {
    bodies.iter().map(Bytes::len).sum::<usize>() as f64 / 1048576.0
}

fn cpu_per_request_us(phase: &Phase, encoding: &Encoding) -> f64 {
    phase.cpu.server * phase.wall.as_secs_f64() * 1e6 / encoding.requests as f64
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Any::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// Requests (duration in s, how many) per resource (service, instance) and series (method,
/// route, status).
type Resources<'a> =
    BTreeMap<(&'a str, &'a str), BTreeMap<(&'a str, &'a str, u16), Vec<(f64, u32)>>>;

/// The OTLP encoding of the same readings, body for body (see the module doc).
fn otlp_encoding(data: &Dataset, batch: usize, name: &'static str, now_ms: i64) -> Encoding {
    let mut points = 0u64;
    let mut requests = 0u64;
    let bodies = data
        .readings
        .chunks(batch)
        .enumerate()
        .map(|(i, chunk)| {
            // Distinct end times per body, so no point is taken for a resend of another.
            let time_ns = (now_ms - 60_000) as u64 * 1_000_000 + i as u64 * 1000;
            let mut resources: Resources = BTreeMap::new();
            for r in chunk {
                let (service, instance, method, path) = data.names(r);
                resources
                    .entry((service, instance))
                    .or_default()
                    .entry((method, path, r.code))
                    .or_default()
                    .push((r.duration_ms / 1000.0, r.count));
            }
            let resource_metrics = resources
                .into_iter()
                .map(|((service, instance), series)| {
                    let data_points: Vec<HistogramDataPoint> = series
                        .into_iter()
                        .map(|((method, path, code), requests_s)| {
                            let point = histogram_point(method, path, code, &requests_s, time_ns);
                            points += 1;
                            requests += point.count;
                            point
                        })
                        .collect();
                    ResourceMetrics {
                        resource: Some(Resource {
                            attributes: vec![
                                kv("service.name", service),
                                kv("service.instance.id", instance),
                            ],
                            ..Default::default()
                        }),
                        scope_metrics: vec![ScopeMetrics {
                            metrics: vec![Metric {
                                name: "http.server.request.duration".into(),
                                unit: "s".into(),
                                data: Some(Data::Histogram(Histogram {
                                    data_points,
                                    aggregation_temporality: 1,
                                })),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }
                })
                .collect();
            Bytes::from(ExportMetricsServiceRequest { resource_metrics }.encode_to_vec())
        })
        .collect();
    Encoding {
        name,
        content_type: "application/x-protobuf",
        otlp: true,
        bodies: Arc::new(bodies),
        items: points,
        requests,
    }
}

/// One delta histogram point holding `requests` (duration in s, how many at it).
fn histogram_point(
    method: &str,
    path: &str,
    code: u16,
    requests: &[(f64, u32)],
    time_ns: u64,
) -> HistogramDataPoint {
    let mut counts = vec![0u64; BOUNDS_S.len() + 1];
    let (mut sum, mut min, mut max) = (0.0, f64::INFINITY, 0.0f64);
    for &(seconds, n) in requests {
        let bucket = BOUNDS_S
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BOUNDS_S.len());
        counts[bucket] += u64::from(n);
        sum += seconds * f64::from(n);
        min = min.min(seconds);
        max = max.max(seconds);
    }
    HistogramDataPoint {
        attributes: vec![
            kv("http.request.method", method),
            kv("http.route", path),
            KeyValue {
                key: "http.response.status_code".into(),
                value: Some(AnyValue {
                    value: Some(Any::IntValue(i64::from(code))),
                }),
                ..Default::default()
            },
        ],
        start_time_unix_nano: time_ns - 10_000_000_000,
        time_unix_nano: time_ns,
        count: counts.iter().sum(),
        sum: Some(sum),
        bucket_counts: counts,
        explicit_bounds: BOUNDS_S.to_vec(),
        min: Some(min),
        max: Some(max),
        ..Default::default()
    }
}

/// Posts every body of `encoding` once from `clients` connections; the wall time and every
/// acknowledgement's latency. 429 and 503 are retried; anything else but success fails the run.
async fn post_all(
    url: &str,
    encoding: &Encoding,
    clients: usize,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .tcp_nodelay(true)
        .build()?;
    let endpoint = format!("{url}/v1/metrics");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, endpoint, next) = (client.clone(), endpoint.clone(), next.clone());
        let (bodies, content_type, otlp) = (
            encoding.bodies.clone(),
            encoding.content_type,
            encoding.otlp,
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                loop {
                    let sent = Instant::now();
                    let response = client
                        .post(&endpoint)
                        .header("content-type", content_type)
                        .body(body.clone())
                        .send()
                        .await
                        .context("posting a body")?;
                    let status = response.status().as_u16();
                    let answer = response.bytes().await.context("reading the answer")?;
                    match status {
                        200 | 202 => {
                            latencies.push(sent.elapsed());
                            if otlp {
                                let answer = ExportMetricsServiceResponse::decode(answer)?;
                                if let Some(partial) = answer.partial_success {
                                    bail!("partial success: {}", partial.error_message);
                                }
                            }
                            break;
                        }
                        429 | 503 => tokio::time::sleep(Duration::from_millis(20)).await,
                        other => bail!("{endpoint} answered {other}"),
                    }
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok((started.elapsed(), latencies))
}

fn report(options: &Options, encodings: &[&Encoding], best: &BTreeMap<&str, Phase>) -> String {
    let mut s = String::new();
    let revision = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let json = encodings[0];
    let _ = writeln!(s, "## OTLP/HTTP protobuf vs JSON ingest (issue 12)\n");
    let _ = writeln!(
        s,
        "Run {} at revision `{revision}`: {} readings ({} requests represented; {} services × {} \
         instances × {} endpoints), JSON in bodies of {}, {} clients, best of {} rounds each, \
         acceptance only (the store cut off), one service process for all phases. \
         `cargo bench --bench otlp`; see `benches/otlp.rs` for the encodings.\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        json.items,
        json.requests,
        options.shape.services,
        options.shape.instances,
        options.shape.paths,
        options.batch,
        options.clients,
        options.rounds
    );
    let _ = writeln!(
        s,
        "| encoding | bodies | body MiB | items | items/s | requests represented/s | ack p50 / p99 ms | service CPU (cores) | service CPU µs per request represented |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for e in encodings {
        let p = &best[e.name];
        let secs = p.wall.as_secs_f64();
        let items = if e.otlp { "data points" } else { "readings" };
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {} {items} | {:.0} | {:.0} | {:.1} / {:.1} | {:.2} | {:.2} |",
            e.name,
            e.bodies.len(),
            mib(&e.bodies),
            e.items,
            e.items as f64 / secs,
            e.requests as f64 / secs,
            p.p50.as_secs_f64() * 1000.0,
            p.p99.as_secs_f64() * 1000.0,
            p.cpu.server,
            cpu_per_request_us(p, e)
        );
    }
    let json_cpu = cpu_per_request_us(&best[json.name], json);
    let _ = writeln!(s);
    for e in &encodings[1..] {
        let ratio = cpu_per_request_us(&best[e.name], e) / json_cpu;
        let _ = writeln!(
            s,
            "- {} / JSON, service CPU per request represented: **{ratio:.2}** (target: at most 1)",
            e.name
        );
    }
    let _ = writeln!(s);
    s
}
