//! The Prometheus query API against seeded stores: every answer is compared with one computed
//! from the seed by plain loops (`promql/seed.rs`), on the embedded store and on Cassandra;
//! the dashboard in `examples/` is run query by query; a Python client nobody here wrote
//! parses our answers.

mod client;
mod dashboard;
mod seed;

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;
use serde_json::Value;
use timebucket::store::cql::CqlStore;
use timebucket::store::embedded::EmbeddedStore;

use crate::support::{cql_node, drop_keyspace, spawn_app, spawn_embedded_app, AppOptions, TestApp};
use seed::{
    buckets, exact_quantile, histogram_quantile, histogram_quantile_past_boundary, Seed, HOUR, LE,
    MINUTE, PATHS,
};

/// A service over a fresh embedded store holding the seed.
pub async fn embedded_app(seed: &Seed) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(&dir.path().join("store")).unwrap();
        seed.write(&store).await;
    }
    spawn_embedded_app(dir).await
}

/// GETs `path` with `params`: status and body.
pub async fn get(app: &TestApp, path: &str, params: &[(&str, String)]) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", app.url))
        .query(params)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// `/api/v1/query_range` of `query` at `start + k × 60 s` for two hours: `labels → {ms → value}`.
pub async fn range(app: &TestApp, query: &str, start: i64) -> BTreeMap<String, BTreeMap<i64, f64>> {
    let params = [
        ("query", query.to_owned()),
        ("start", seconds(start)),
        ("end", seconds(start + 2 * HOUR)),
        ("step", "60".to_owned()),
    ];
    let (status, body) = get(app, "/api/v1/query_range", &params).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "matrix");
    let mut out = BTreeMap::new();
    for series in body["data"]["result"].as_array().unwrap() {
        let labels = series["metric"].to_string();
        let points = series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                (t, p[1].as_str().unwrap().parse::<f64>().unwrap())
            })
            .collect();
        assert!(
            out.insert(labels, points).is_none(),
            "{query}: a label set twice"
        );
    }
    out
}

/// Epoch milliseconds as Prometheus' fractional seconds.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The evaluation times of [`range`].
pub fn steps(start: i64) -> impl Iterator<Item = i64> {
    (0..=120).map(move |k| start + k * MINUTE)
}

/// Asserts `got` and `want` hold the same series, steps and values (relative error 1e-9).
pub fn assert_same(
    what: &str,
    got: &BTreeMap<String, BTreeMap<i64, f64>>,
    want: &BTreeMap<String, BTreeMap<i64, f64>>,
) {
    assert_same_or(what, got, want, &BTreeMap::new());
}

/// Like [`assert_same`], a point also passing when it equals the one in `alternative`.
pub fn assert_same_or(
    what: &str,
    got: &BTreeMap<String, BTreeMap<i64, f64>>,
    want: &BTreeMap<String, BTreeMap<i64, f64>>,
    alternative: &BTreeMap<String, BTreeMap<i64, f64>>,
) {
    let keys = |m: &BTreeMap<String, BTreeMap<i64, f64>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(got), keys(want), "{what}: series differ");
    for (labels, want_points) in want {
        let got_points = &got[labels];
        let times = |m: &BTreeMap<i64, f64>| m.keys().copied().collect::<Vec<_>>();
        assert_eq!(
            times(got_points),
            times(want_points),
            "{what} {labels}: steps differ"
        );
        for (t, w) in want_points {
            let g = got_points[t];
            let close =
                |w: f64| (g - w).abs() <= 1e-9 * w.abs().max(1.0) || (g.is_nan() && w.is_nan());
            let alt = alternative.get(labels).and_then(|a| a.get(t)).copied();
            assert!(
                close(*w) || alt.is_some_and(close),
                "{what} {labels} at {t}: got {g}, want {w} (or {alt:?})"
            );
        }
    }
}

/// `{"path": p}` as the answers print it.
pub fn path_key(path: &str) -> String {
    serde_json::json!({ "path": path }).to_string()
}

async fn check_counters(app: &TestApp, seed: &Seed) {
    // Not aligned to the step: evaluation times are start + k × step exactly.
    let start = seed.t0 + 30 * MINUTE + 17_250;
    let got = range(
        app,
        "sum by (path) (increase(http_server_request_duration_seconds_count{service=\"shop\"}[5m]))",
        start,
    )
    .await;
    let mut want: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for path in PATHS {
        for t in steps(start) {
            if let Some(n) = seed.requests((t - 5 * MINUTE, t), |r| r.path.as_str() == path) {
                want.entry(path_key(path)).or_default().insert(t, n);
            }
        }
    }
    assert_same("increase by path", &got, &want);

    // Regular expressions on non-ASCII paths; one series per (instance, method, path, code).
    let got = range(
        app,
        "rate(http_server_request_duration_seconds_count{job=\"shop\", path=~\"/(用户|café)/.+\"}[3m])",
        start,
    )
    .await;
    let mut want: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for t in steps(start) {
        for r in seed.shop_in((t - 3 * MINUTE, t), |r| !r.path.as_str().is_ascii()) {
            let labels = serde_json::json!({
                "code": r.code.get().to_string(), "instance": r.instance.as_str(),
                "job": "shop", "method": r.method.as_str(), "path": r.path.as_str(),
                "service": "shop",
            })
            .to_string();
            *want.entry(labels).or_default().entry(t).or_default() += f64::from(r.count) / 180.0;
        }
    }
    assert_same("rate on unicode paths", &got, &want);
}

async fn check_histograms(app: &TestApp, seed: &Seed) {
    let start = seed.t0 + 40 * MINUTE;
    for q in [0.5, 0.99] {
        let query = format!(
            "histogram_quantile({q}, sum by (le, path) (rate(http_server_request_duration_seconds_bucket{{service=\"shop\"}}[30m])))"
        );
        let got = range(app, &query, start).await;
        let mut want: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
        let mut alternative: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
        for path in PATHS {
            for t in steps(start) {
                let window = (t - 30 * MINUTE, t);
                let of_path = |r: &timebucket::model::ApiReading| r.path.as_str() == path;
                if seed.requests(window, of_path).is_none() {
                    continue;
                }
                let b = buckets(seed.shop_in(window, of_path));
                let estimate = histogram_quantile(q, &b);
                // The estimate lies in the bucket holding the exact percentile.
                let exact = exact_quantile(q, seed.shop_in(window, of_path));
                let upper = LE.iter().copied().find(|&le| exact <= le).unwrap();
                let lower = LE
                    .iter()
                    .copied()
                    .rev()
                    .find(|&le| le < exact)
                    .unwrap_or(0.0);
                assert!(
                    lower <= estimate && estimate <= upper,
                    "p{q} of {path} at {t}: {estimate} outside ({lower}, {upper}] of exact {exact}"
                );
                want.entry(path_key(path)).or_default().insert(t, estimate);
                if let Some(alt) = histogram_quantile_past_boundary(q, &b) {
                    alternative
                        .entry(path_key(path))
                        .or_default()
                        .insert(t, alt);
                }
            }
        }
        assert_same_or(&query, &got, &want, &alternative);
    }
}

async fn check_host(app: &TestApp, seed: &Seed) {
    let start = seed.t0 + 20 * MINUTE + 500;
    let got = range(
        app,
        "avg_over_time(host_cpu_percent{service=\"shop\"}[2m])",
        start,
    )
    .await;
    let mut want: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for instance in ["i-1", "i-2"] {
        for t in steps(start) {
            let samples = seed.host_in(instance, (t - 2 * MINUTE, t));
            if !samples.is_empty() {
                let sum: f64 = samples.iter().map(|h| h.gauges.cpu_percent.unwrap()).sum();
                let labels =
                    serde_json::json!({"instance": instance, "job": "shop", "service": "shop"});
                want.entry(labels.to_string())
                    .or_default()
                    .insert(t, sum / samples.len() as f64);
            }
        }
    }
    assert_same("avg_over_time cpu", &got, &want);
    // The instant selector: the newest sample within 5 minutes; i-2's silent hour is a gap.
    let got = range(app, "host_available{service=\"shop\"}", start).await;
    let mut want: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for instance in ["i-1", "i-2"] {
        for t in steps(start) {
            if let Some(h) = seed.host_at(instance, t) {
                let labels = serde_json::json!({"__name__": "host_available", "instance": instance, "job": "shop", "service": "shop"});
                let v = f64::from(u8::from(h.gauges.available.unwrap()));
                want.entry(labels.to_string()).or_default().insert(t, v);
            }
        }
    }
    assert!(
        want.values().any(|p| p.len() < 121),
        "i-2 disappears for a while"
    );
    assert_same("host_available", &got, &want);
}

async fn check_metadata_and_errors(app: &TestApp, seed: &Seed) {
    let (start, end) = (seed.t0 / 1000, (seed.t0 + 3 * HOUR) / 1000);
    let times = [("start", start.to_string()), ("end", end.to_string())];
    let mut params = times.to_vec();
    params.push((
        "match[]",
        "http_server_request_duration_seconds_count{service=\"shop\"}".into(),
    ));
    let (status, body) = get(app, "/api/v1/series", &params).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got: BTreeSet<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let want: BTreeSet<String> = seed
        .shop_in((seed.t0 - 1, seed.t0 + 3 * HOUR), |_| true)
        .map(|r| {
            serde_json::json!({
                "__name__": "http_server_request_duration_seconds_count",
                "code": r.code.get().to_string(), "instance": r.instance.as_str(), "job": "shop",
                "method": r.method.as_str(), "path": r.path.as_str(), "service": "shop",
            })
            .to_string()
        })
        .collect();
    assert_eq!(got, want);
    let (_, body) = get(app, "/api/v1/label/path/values", &times).await;
    let mut paths: Vec<&str> = PATHS.to_vec();
    paths.sort_unstable();
    assert_eq!(body["data"], serde_json::json!(paths));
    let (_, body) = get(app, "/api/v1/label/service/values", &times).await;
    assert_eq!(body["data"], serde_json::json!(["other", "shop"]));
    let (_, body) = get(app, "/api/v1/labels", &times).await;
    assert_eq!(
        body["data"],
        serde_json::json!([
            "__name__", "code", "instance", "job", "le", "method", "path", "service"
        ])
    );

    for (query, named) in [("stddev(host_cpu_percent)", "stddev"), ("sum(", "query")] {
        let (status, body) = get(app, "/api/v1/query", &[("query", query.to_owned())]).await;
        assert_eq!(status.as_u16(), 400, "{query}: {body}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["errorType"], "bad_data");
        assert!(body["error"].as_str().unwrap().contains(named), "{body}");
    }
    let ambiguous = "host_cpu_percent + on (service) host_available".to_owned();
    let at = ((seed.t0 + HOUR / 2) / 1000).to_string();
    let (status, body) = get(app, "/api/v1/query", &[("query", ambiguous), ("time", at)]).await;
    assert_eq!(status.as_u16(), 422, "{body}");
    assert_eq!(body["errorType"], "execution");
    assert!(
        body["error"].as_str().unwrap().contains("many-to-many"),
        "{body}"
    );
    let (status, body) = get(
        app,
        "/api/v1/query_range",
        &[
            ("query", "1".into()),
            ("start", "10".into()),
            ("end", "5".into()),
            ("step", "1".into()),
        ],
    )
    .await;
    assert_eq!(
        (status.as_u16(), &body["errorType"]),
        (400, &serde_json::json!("bad_data"))
    );
}

/// `source=raw|rollup|auto`: the same data whichever serves it, the `source` member says which,
/// and `source=rollup` refuses a query rollups cannot serve.
async fn check_sources(app: &TestApp, seed: &Seed) {
    let hour = |query: &str, source: &str| {
        vec![
            ("query", query.to_owned()),
            ("start", seconds(seed.t0 + HOUR)),
            ("end", seconds(seed.t0 + 3 * HOUR)),
            ("step", "3600".to_owned()),
            ("source", source.to_owned()),
        ]
    };
    for (query, levels) in [
        (
            "sum by (path) (increase(http_server_request_duration_seconds_count{service=\"shop\"}[1h]))",
            ["1h"],
        ),
        (
            "histogram_quantile(0.9, sum by (le) (rate(http_server_request_duration_seconds_bucket{service=\"shop\"}[30m])))",
            ["1m"],
        ),
    ] {
        let (status, raw) = get(app, "/api/v1/query_range", &hour(query, "raw")).await;
        assert_eq!(status, StatusCode::OK, "{raw}");
        assert_eq!(raw["source"]["levels"], serde_json::json!(["raw"]));
        for source in ["rollup", "auto"] {
            let (status, rolled) = get(app, "/api/v1/query_range", &hour(query, source)).await;
            assert_eq!(status, StatusCode::OK, "{rolled}");
            assert_eq!(rolled["source"]["used"], "rollup", "{query}");
            assert_eq!(rolled["source"]["levels"], serde_json::json!(levels));
            // Integer counts and sums of them: equal to the last bit.
            assert_eq!(rolled["data"], raw["data"], "{query}");
        }
    }
    let irate = "irate(http_server_request_duration_seconds_count{service=\"shop\"}[5m])";
    let (status, body) = get(app, "/api/v1/query_range", &hour(irate, "rollup")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errorType"], "bad_data");
    assert!(
        body["error"].as_str().unwrap().contains("source=rollup"),
        "{body}"
    );
    let (status, body) = get(app, "/api/v1/query_range", &hour(irate, "auto")).await;
    assert_eq!(
        (status, &body["source"]["levels"]),
        (StatusCode::OK, &serde_json::json!(["raw"]))
    );
    let (status, body) = get(app, "/api/v1/query", &hour(irate, "cache")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("\"source\""),
        "{body}"
    );
}

/// Every check, on one service.
pub async fn check_all(app: &TestApp, seed: &Seed) {
    check_sources(app, seed).await;
    check_counters(app, seed).await;
    check_histograms(app, seed).await;
    check_host(app, seed).await;
    check_metadata_and_errors(app, seed).await;
    dashboard::check_dashboard(app, seed).await;
}

#[tokio::test]
async fn promql_answers_match_the_seed_on_the_embedded_store() {
    let seed = Seed::generate();
    let app = embedded_app(&seed).await;
    check_all(&app, &seed).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn promql_answers_match_the_seed_on_cassandra() {
    let seed = Seed::generate();
    let app = spawn_app(AppOptions::default()).await;
    let store = CqlStore::open(&[cql_node()], &app.keyspace).await.unwrap();
    seed.write(&store).await;
    check_all(&app, &seed).await;
    let keyspace = app.keyspace.clone();
    app.stop().await.unwrap();
    drop_keyspace(&keyspace).await;
}
