//! OTLP receivers end to end, driven by the official OpenTelemetry Python SDK exporters
//! (`tests/otlp/export.py`), checked through `/v1/stats`, `/v1/latest`, `/v1/series` and
//! `/metrics`. Raw bodies (bad ones, OTLP/JSON, partial success) are in `otlp/raw.rs`.

mod raw;
mod sdk;

use serde_json::json;
use timebucket::query::answer::{LatestAnswer, SeriesAnswer, StatsAnswer};

use sdk::{otel_env, Collector, Ports, Sdk};

/// The bucket bounds, in ms, the SDK uses for `http.server.request.duration` (the conventions'
/// advice, see export.py).
const BOUNDS_MS: [f64; 14] = [
    5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// The requests of one route and code, over every interval, in seconds.
struct Route {
    method: &'static str,
    path: &'static str,
    code: u16,
    intervals: Vec<Vec<f64>>,
}

/// Three intervals of traffic on two routes, with a slow tail and some 503s.
fn traffic() -> Vec<Route> {
    let spread = |n: usize, base: f64, step: f64| -> Vec<f64> {
        (0..n).map(|i| base + step * (i % 37) as f64).collect()
    };
    vec![
        Route {
            method: "GET",
            path: "/cart/{id}",
            code: 200,
            intervals: vec![
                spread(120, 0.002, 0.0011),
                spread(200, 0.004, 0.0007),
                [spread(90, 0.003, 0.0013), vec![0.9, 1.7, 3.2]].concat(),
            ],
        },
        Route {
            method: "POST",
            path: "/pay",
            code: 503,
            intervals: vec![vec![0.31, 0.42], vec![], vec![0.27, 0.6, 0.8, 0.05]],
        },
    ]
}

/// Plays `routes` through `sdk`, exporting after each interval.
async fn play(sdk: &mut Sdk, routes: &[Route], intervals: std::ops::Range<usize>) {
    for i in intervals {
        for r in routes {
            if !r.intervals[i].is_empty() {
                sdk.record(r.method, r.path, r.code, &r.intervals[i]).await;
            }
        }
        sdk.export().await;
    }
}

/// One step covering everything: the stats of each (path, code) group.
async fn stats(collector: &Collector, service: &str) -> StatsAnswer {
    collector.flushed().await;
    let now = chrono::Utc::now().timestamp_millis();
    let query = format!(
        "/v1/stats?service={service}&from={}&to={}&step=100000d&group_by=path,code",
        now - 3_600_000,
        now + 600_000
    );
    serde_json::from_value(collector.get(&query).await).unwrap()
}

/// The point of the group `path`, `code`.
fn group<'a>(
    answer: &'a StatsAnswer,
    path: &str,
    code: u16,
) -> &'a timebucket::query::answer::StatsPoint {
    let group = answer
        .groups
        .iter()
        .find(|g| g.key.path.as_deref() == Some(path) && g.key.code == Some(code))
        .unwrap_or_else(|| panic!("no group {path} {code} in {answer:?}"));
    assert_eq!(group.points.len(), 1);
    &group.points[0]
}

/// Checks count and mean exactly and p99 within the documented bound (the bucket of the true
/// p99, widened by the sketch's 1%).
fn check_route(answer: &StatsAnswer, durations_s: &[f64], path: &str, code: u16) {
    let point = group(answer, path, code);
    let mut ms: Vec<f64> = durations_s.iter().map(|s| s * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    assert_eq!(point.count, ms.len() as u64, "{path} {code}: count");
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    assert!(
        (point.mean_ms - mean).abs() <= 1e-6 * mean,
        "{path} {code}: mean {} vs {mean}",
        point.mean_ms
    );
    let rank = (ms.len() * 99).div_ceil(100).max(1);
    let true_p99 = ms[rank - 1];
    let hi = BOUNDS_MS.iter().copied().find(|b| true_p99 <= *b).unwrap();
    let lo = BOUNDS_MS
        .iter()
        .copied()
        .rev()
        .find(|b| *b < true_p99)
        .unwrap_or(0.0);
    assert!(
        point.p99_ms >= lo * 0.99 && point.p99_ms <= hi * 1.01,
        "{path} {code}: p99 {} outside the bucket ({lo}, {hi}] of the true p99 {true_p99}",
        point.p99_ms
    );
}

fn all(route: &Route, intervals: &[usize]) -> Vec<f64> {
    intervals
        .iter()
        .flat_map(|i| route.intervals[*i].iter().copied())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_histograms_over_http_protobuf_gzip_reach_stats_series_and_latest() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), Ports::free()).await;
    let mut env = otel_env("http/protobuf", collector.ports.http_url(), "shop", "pod-1");
    env.push(("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()));
    let mut sdk = Sdk::start(&env);
    let routes = traffic();
    play(&mut sdk, &routes, 0..3).await;
    sdk.exit().await;

    let answer = stats(&collector, "shop").await;
    for r in &routes {
        check_route(&answer, &all(r, &[0, 1, 2]), r.path, r.code);
    }
    let now = chrono::Utc::now().timestamp_millis();
    let series: SeriesAnswer = serde_json::from_value(
        collector
            .get(&format!(
                "/v1/series?service=shop&from={}&to={}",
                now - 600_000,
                now
            ))
            .await,
    )
    .unwrap();
    assert_eq!(series.instances.len(), 1);
    assert_eq!(series.instances[0].instance, "pod-1");
    let methods: Vec<(&str, &str)> = series.instances[0]
        .methods
        .iter()
        .map(|m| (m.method.as_str(), m.path.as_str()))
        .collect();
    assert_eq!(methods, [("GET", "/cart/{id}"), ("POST", "/pay")]);
    // Every export was a heartbeat of the resource.
    let latest: LatestAnswer =
        serde_json::from_value(collector.get("/v1/latest?service=shop").await).unwrap();
    assert_eq!(latest.host.len(), 1);
    assert_eq!(latest.host[0].gauges.available, Some(true));
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_over_grpc_with_delta_exponential_histograms_host_gauges_and_an_unknown_metric() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), Ports::free()).await;
    let mut env = otel_env("grpc", collector.ports.grpc_url(), "billing", "vm-3");
    env.extend([
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            "delta".to_owned(),
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
            "base2_exponential_bucket_histogram".to_owned(),
        ),
    ]);
    let mut sdk = Sdk::start(&env);
    sdk.host(json!({"cpu": {"user": 0.30, "system": 0.15, "idle": 0.55},
                    "mem_used": 3_000_000_000i64, "mem_limit": 8_000_000_000i64,
                    "fs": {"used": 40_000_000_000i64, "free": 60_000_000_000i64},
                    "rss": 123_456_789}))
        .await;
    sdk.count("app.jobs.completed", 7).await;
    let routes = traffic();
    play(&mut sdk, &routes, 0..3).await;
    sdk.exit().await;

    let answer = stats(&collector, "billing").await;
    for r in &routes {
        let point = group(&answer, r.path, r.code);
        let ms: Vec<f64> = all(r, &[0, 1, 2]).iter().map(|s| s * 1000.0).collect();
        assert_eq!(point.count, ms.len() as u64, "{}: count", r.path);
        let mean = ms.iter().sum::<f64>() / ms.len() as f64;
        assert!(
            (point.mean_ms - mean).abs() <= 1e-6 * mean,
            "{}: mean",
            r.path
        );
        // The largest request is represented inside its exponential bucket, which at the
        // scale the SDK picks for these ranges is narrower than a factor of 1.25.
        let max = ms.iter().copied().fold(0.0, f64::max);
        assert!(point.max_ms <= max * 1.25 && point.max_ms >= max / 1.25);
    }
    let latest: LatestAnswer =
        serde_json::from_value(collector.get("/v1/latest?service=billing").await).unwrap();
    let host = &latest.host[0];
    assert_eq!(host.instance, "vm-3");
    assert!((host.gauges.cpu_percent.unwrap() - 45.0).abs() < 1e-9);
    assert_eq!(
        (host.gauges.mem_used_bytes, host.gauges.mem_total_bytes),
        (Some(3_000_000_000), Some(8_000_000_000))
    );
    assert_eq!(
        (host.gauges.disk_used_bytes, host.gauges.disk_total_bytes),
        (Some(40_000_000_000), Some(100_000_000_000))
    );
    assert_eq!(
        (host.gauges.heap_bytes, host.gauges.available),
        (Some(123_456_789), Some(true))
    );
    let metrics = collector.metrics().await;
    assert!(
        metrics.contains("timebucket_otlp_rejected_points_total{metric=\"app.jobs.completed\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("timebucket_otlp_requests_total{transport=\"grpc\",status=\"ok\"}"));
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_sdk_process_resets_its_cumulative_streams() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), Ports::free()).await;
    let env = otel_env(
        "http/protobuf",
        collector.ports.http_url(),
        "resets",
        "pod-9",
    );
    let routes = traffic();
    let mut first = Sdk::start(&env);
    play(&mut first, &routes, 0..2).await;
    first.exit().await;
    // The same resource, a new process: its cumulative totals start again from zero.
    let mut second = Sdk::start(&env);
    play(&mut second, &routes, 2..3).await;
    second.exit().await;

    let answer = stats(&collector, "resets").await;
    for r in &routes {
        check_route(&answer, &all(r, &[0, 1, 2]), r.path, r.code);
    }
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timebucket_restarting_under_a_running_exporter_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let routes = traffic();
    let collector = Collector::start(dir.path(), ports).await;
    let mut sdk = Sdk::start(&otel_env(
        "http/protobuf",
        ports.http_url(),
        "restarts",
        "pod-2",
    ));
    play(&mut sdk, &routes, 0..2).await;
    collector.stop().await;

    // The same data directory and ports; the app never stopped, its totals keep growing.
    let collector = Collector::start(dir.path(), ports).await;
    let gap = [vec![0.011, 0.012], vec![0.013]];
    sdk.record("GET", "/cart/{id}", 200, &gap[0]).await;
    sdk.record("POST", "/pay", 503, &gap[1]).await;
    // The first point of a stream that began before this start only primes: the requests
    // since the last point before the restart are the documented one-interval gap.
    sdk.export().await;
    play(&mut sdk, &routes, 2..3).await;
    sdk.exit().await;

    let answer = stats(&collector, "restarts").await;
    for r in &routes {
        check_route(&answer, &all(r, &[0, 1, 2]), r.path, r.code);
    }
    collector.stop().await;
}

/// `/metrics` value of a counter line starting with `prefix`.
pub fn counter(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_flags_and_config_keys_turn_the_receivers_on_in_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let config = dir.path().join("timebucket.toml");
    let grpc = format!("127.0.0.1:{}", ports.grpc);
    std::fs::write(&config, format!("[serve]\notlp_grpc_listen = \"{grpc}\"\n")).unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_timebucket"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TIMEBUCKET_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", &format!("127.0.0.1:{}", ports.api)])
        .args(["--otlp-http-listen", &format!("127.0.0.1:{}", ports.http)])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(format!("{}/healthz", ports.api_url())).await {
            up = r.status().is_success();
            if up {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "timebucket serve did not start");

    for (protocol, endpoint, instance) in [
        ("http/protobuf", ports.http_url(), "via-http"),
        ("grpc", ports.grpc_url(), "via-grpc"),
    ] {
        let mut sdk = Sdk::start(&otel_env(protocol, endpoint, "readme", instance));
        sdk.record("GET", "/", 200, &[0.004, 0.02]).await;
        sdk.export().await;
        sdk.exit().await;
    }
    let latest = async {
        for _ in 0..300 {
            let answer = reqwest::get(format!("{}/v1/latest?service=readme", ports.api_url()))
                .await
                .unwrap();
            if answer.status().is_success() {
                let latest: LatestAnswer = answer.json().await.unwrap();
                if latest.api.len() == 2 && latest.host.len() == 2 {
                    return latest;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the exports did not reach /v1/latest");
    }
    .await;
    let mut instances: Vec<&str> = latest.host.iter().map(|h| h.instance.as_str()).collect();
    instances.sort();
    assert_eq!(instances, ["via-grpc", "via-http"]);
    child.kill().await.unwrap();
}
