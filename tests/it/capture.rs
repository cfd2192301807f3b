//! The capture layer on a real axum app, pushing to a real `timebucket serve` (in-process, on the
//! CQL node under test).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use timebucket::capture::{Capture, CaptureConfig, CaptureStats, Mode, RetryPolicy};
use tokio::net::TcpListener;

use crate::support::{eventually_stored, session, spawn_app, wait_flushed, AppOptions, StoredApi};

const WAIT: Duration = Duration::from_secs(30);
/// How long `/slow` takes, ms.
const SLOW_MS: u64 = 5;

/// The app under test: a fast templated route, a slow one, a created and a failing one; anything
/// else is axum's 404 fallback (no template: the normaliser names it).
fn app() -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|Path(id): Path<u64>| async move { format!("user {id}") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(SLOW_MS)).await;
                "done"
            }),
        )
        .route("/orders", post(|| async { StatusCode::CREATED }))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
}

/// Serves `router` on a free port until the returned guard drops.
async fn serve(router: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, task)
}

fn config(push_url: &str, mode: Mode) -> CaptureConfig {
    let mut config = CaptureConfig::new("shop", "i-1", push_url).unwrap();
    config.mode = mode;
    config.interval = Duration::from_millis(200);
    config
}

/// Sends `(method, path)` requests, 8 at a time; returns each path with the time its client
/// waited, ms.
async fn drive(base: &str, requests: Vec<(&'static str, String)>) -> Vec<(String, f64)> {
    let client = reqwest::Client::new();
    futures::stream::iter(requests)
        .map(|(method, path)| {
            let request = match method {
                "POST" => client.post(format!("{base}{path}")),
                _ => client.get(format!("{base}{path}")),
            };
            async move {
                let start = Instant::now();
                request.send().await.unwrap();
                (path, start.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await
}

/// Per `(method, path, code)`: requests, total duration (ms) and the slowest (ms).
fn series(rows: &[StoredApi]) -> BTreeMap<(String, String, i32), (i64, f64, f64)> {
    let mut out = BTreeMap::new();
    for r in rows {
        let e = out
            .entry((r.method.clone(), r.path.clone(), r.code))
            .or_insert((0, 0.0, 0.0_f64));
        e.0 += i64::from(r.count);
        e.1 += r.duration_ms * f64::from(r.count);
        e.2 = e.2.max(r.duration_ms);
    }
    out
}

fn key(method: &str, path: &str, code: i32) -> (String, String, i32) {
    (method.into(), path.into(), code)
}

fn count_of(rows: &[StoredApi]) -> i64 {
    rows.iter().map(|r| i64::from(r.count)).sum()
}

#[tokio::test]
async fn aggregated_readings_match_what_the_app_saw() {
    let collector = spawn_app(AppOptions::default()).await;
    let capture = Capture::start(config(&collector.url, Mode::Aggregate)).unwrap();
    let (url, _app) = serve(app().layer(capture.layer())).await;
    let mut requests = Vec::new();
    requests.extend((0..40).map(|i| ("GET", format!("/users/{i}"))));
    requests.extend((0..20).map(|_| ("GET", "/slow".to_owned())));
    requests.extend((0..25).map(|_| ("POST", "/orders".to_owned())));
    requests.extend((0..15).map(|_| ("GET", "/fail".to_owned())));
    requests.extend((0..10).map(|i| ("GET", format!("/things/{}", 1000 + i))));
    let seen = drive(&url, requests).await;
    let client_ms = |prefix: &str| -> f64 {
        seen.iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|s| s.1)
            .sum()
    };

    let stats = capture.shutdown(WAIT).await;
    assert_eq!(
        (stats.requests, stats.delivered, stats.dropped()),
        (110, 110, 0),
        "{stats:?}"
    );
    let rows = eventually_stored(
        &session().await,
        &collector.keyspace,
        WAIT,
        "110 requests stored",
        |rows| count_of(rows) == 110,
    )
    .await;
    // The series index too.
    wait_flushed(&collector, rows.len() as f64).await;
    let got = series(&rows);
    let counts: BTreeMap<_, _> = got.iter().map(|(k, v)| (k.clone(), v.0)).collect();
    let want = BTreeMap::from([
        (key("GET", "/users/{id}", 200), 40),
        (key("GET", "/slow", 200), 20),
        (key("POST", "/orders", 201), 25),
        (key("GET", "/fail", 500), 15),
        (key("GET", "/things/{id}", 404), 10),
    ]);
    assert_eq!(counts, want);
    let (_, slow_total, slow_max) = got[&key("GET", "/slow", 200)];
    assert!(slow_max >= SLOW_MS as f64, "max {slow_max}");
    assert!(slow_total >= 20.0 * SLOW_MS as f64, "total {slow_total}");
    for (prefix, k) in [
        ("/slow", key("GET", "/slow", 200)),
        ("/users/", key("GET", "/users/{id}", 200)),
    ] {
        let (_, server_total, _) = got[&k];
        assert!(
            server_total <= client_ms(prefix),
            "{prefix}: the app's {server_total} ms cannot exceed what clients waited, {} ms",
            client_ms(prefix)
        );
    }
    assert!(rows
        .iter()
        .all(|r| r.service_name == "shop" && r.instance == "i-1"));

    let now = chrono::Utc::now().timestamp_millis();
    let series_url = format!(
        "{}/v1/series?service=shop&from={}&to={now}",
        collector.url,
        now - 3_600_000
    );
    let series: serde_json::Value = reqwest::get(series_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(series["instances"][0]["instance"], "i-1", "{series}");
    let methods: BTreeSet<(String, String)> = series["instances"][0]["methods"]
        .as_array()
        .unwrap_or_else(|| panic!("no methods in {series}"))
        .iter()
        .map(|m| {
            (
                m["method"].as_str().unwrap().into(),
                m["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: BTreeSet<_> = want.into_keys().map(|(m, p, _)| (m, p)).collect();
    assert_eq!(methods, want, "/v1/series lists the app's methods");
}

#[tokio::test]
async fn raw_mode_sends_one_reading_per_request() {
    let collector = spawn_app(AppOptions::default()).await;
    let capture = Capture::start(config(&collector.url, Mode::Raw)).unwrap();
    let (url, _app) = serve(app().layer(capture.layer())).await;
    let before = chrono::Utc::now();
    drive(&url, (0..12).map(|_| ("GET", "/slow".to_owned())).collect()).await;
    let after = chrono::Utc::now();
    let stats = capture.shutdown(WAIT).await;
    assert_eq!((stats.requests, stats.delivered), (12, 12), "{stats:?}");
    let rows = eventually_stored(
        &session().await,
        &collector.keyspace,
        WAIT,
        "12 readings",
        |rows| rows.len() == 12,
    )
    .await;
    for row in rows {
        assert_eq!((row.path.as_str(), row.count, row.code), ("/slow", 1, 200));
        assert!(row.duration_ms >= SLOW_MS as f64, "{row:?}");
        let slack = chrono::Duration::milliseconds(5);
        assert!(
            row.timestamp >= before - slack && row.timestamp <= after + slack,
            "{row:?}"
        );
    }
}

#[tokio::test]
async fn a_thousand_ids_make_one_series() {
    let collector = spawn_app(AppOptions::default()).await;
    let capture = Capture::start(config(&collector.url, Mode::Aggregate)).unwrap();
    let (url, _app) = serve(app().layer(capture.layer())).await;
    let mut requests: Vec<_> = (0..1000).map(|i| ("GET", format!("/users/{i}"))).collect();
    requests.extend((0..1000).map(|_| ("GET", format!("/files/{}", uuid::Uuid::new_v4()))));
    drive(&url, requests).await;
    let stats = capture.shutdown(WAIT).await;
    assert_eq!((stats.requests, stats.delivered), (2000, 2000), "{stats:?}");
    let rows = eventually_stored(
        &session().await,
        &collector.keyspace,
        WAIT,
        "2000 requests",
        |rows| count_of(rows) == 2000,
    )
    .await;
    let counts: BTreeMap<_, _> = series(&rows).into_iter().map(|(k, v)| (k, v.0)).collect();
    assert_eq!(
        counts,
        BTreeMap::from([
            (key("GET", "/files/{uuid}", 404), 1000),
            (key("GET", "/users/{id}", 200), 1000),
        ])
    );
}

#[tokio::test]
async fn a_dropped_capture_records_until_the_last_layer_goes() {
    let collector = spawn_app(AppOptions::default()).await;
    let capture = Capture::start(config(&collector.url, Mode::Aggregate)).unwrap();
    let (url, app) = serve(app().layer(capture.layer())).await;
    drop(capture);
    drive(
        &url,
        (0..20).map(|i| ("GET", format!("/users/{i}"))).collect(),
    )
    .await;
    app.abort();
    eventually_stored(
        &session().await,
        &collector.keyspace,
        WAIT,
        "20 requests",
        |rows| count_of(rows) == 20,
    )
    .await;
}

/// A collector that accepts connections and never answers: the worst kind of down.
async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (url, task)
}

fn percentile(mut ms: Vec<f64>, p: f64) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test]
async fn a_dead_collector_neither_slows_the_app_nor_goes_unnoticed() {
    let (dead, _hole) = black_hole().await;
    let mut config = config(&dead, Mode::Aggregate);
    config.interval = Duration::from_millis(50);
    config.timeout = Duration::from_secs(2);
    config.max_pending_batches = 1;
    config.retry = RetryPolicy {
        attempts: 2,
        initial: Duration::from_millis(10),
        max: Duration::from_millis(10),
    };
    let capture = Capture::start(config).unwrap();
    let (with, _a) = serve(app().layer(capture.layer())).await;
    let (without, _b) = serve(app()).await;
    let client = reqwest::Client::new();
    let (mut with_ms, mut without_ms) = (Vec::new(), Vec::new());
    for i in 0..300 {
        for (base, out) in [(&with, &mut with_ms), (&without, &mut without_ms)] {
            let start = Instant::now();
            let response = client
                .get(format!("{base}/users/{i}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            out.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let (p50_with, p50_without) = (
        percentile(with_ms.clone(), 0.5),
        percentile(without_ms, 0.5),
    );
    let slowest = percentile(with_ms, 1.0);
    assert!(
        p50_with <= p50_without * 1.5 + 0.5,
        "median {p50_with:.3} ms with capture vs {p50_without:.3} ms without"
    );
    assert!(
        slowest < 1000.0,
        "a request waited {slowest:.1} ms: as if for the 2 s push timeout"
    );

    let stats: CaptureStats = capture.shutdown(Duration::from_millis(200)).await;
    assert_eq!(stats.requests, 300, "{stats:?}");
    assert_eq!(stats.delivered, 0, "{stats:?}");
    assert_eq!(
        stats.dropped(),
        300,
        "every request is accounted for as dropped: {stats:?}"
    );
    assert_eq!(stats.in_flight, 0, "{stats:?}");
}
