//! `examples/grafana-dashboard.json`, query by query: each target's expression (with the
//! dashboard's variables as Grafana would fill them: `$service` = `shop`, `$__rate_interval` =
//! `5m`) through `/api/v1/query_range`, against the answer computed from the seed.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::seed::{
    buckets, histogram_quantile, histogram_quantile_past_boundary, Seed, MINUTE, PATHS,
};
use super::{assert_same_or, path_key, range, steps};
use crate::support::TestApp;

type Answer = BTreeMap<String, BTreeMap<i64, f64>>;

/// The targets of the dashboard: `(panel title, refId, expression)`.
pub fn targets() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grafana-dashboard.json"),
    )
    .unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            out.push((
                panel["title"].as_str().unwrap().to_owned(),
                target["refId"].as_str().unwrap().to_owned(),
                target["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

/// An expression with the dashboard variables filled in.
pub fn filled(expr: &str) -> String {
    expr.replace("$service", "shop")
        .replace("$__rate_interval", "5m")
}

/// The answer of one target, and the alternative values a histogram quantile may take at a
/// bucket boundary.
fn want(seed: &Seed, title: &str, ref_id: &str, start: i64) -> (Answer, Answer) {
    let mut out: Answer = BTreeMap::new();
    let mut alternative: Answer = BTreeMap::new();
    let window = |t: i64| (t - 5 * MINUTE, t);
    let host = |instance: &str| {
        json!({"instance": instance, "job": "shop", "service": "shop"}).to_string()
    };
    for t in steps(start) {
        match title {
            "Request rate" => {
                for path in PATHS {
                    if let Some(n) = seed.requests(window(t), |r| r.path.as_str() == path) {
                        out.entry(path_key(path)).or_default().insert(t, n / 300.0);
                    }
                }
            }
            "Errors (5xx)" => {
                if let Some(all) = seed.requests(window(t), |_| true) {
                    let errors = seed
                        .requests(window(t), |r| r.code.get() >= 500)
                        .unwrap_or(0.0);
                    out.entry("{}".into())
                        .or_default()
                        .insert(t, 100.0 * errors / all);
                }
            }
            "Latency p50 / p99 per path" => {
                let q = if ref_id == "A" { 0.5 } else { 0.99 };
                for path in PATHS {
                    let of_path = |r: &timebucket::model::ApiReading| r.path.as_str() == path;
                    if seed.requests(window(t), of_path).is_some() {
                        let b = buckets(seed.shop_in(window(t), of_path));
                        out.entry(path_key(path))
                            .or_default()
                            .insert(t, histogram_quantile(q, &b));
                        if let Some(alt) = histogram_quantile_past_boundary(q, &b) {
                            alternative
                                .entry(path_key(path))
                                .or_default()
                                .insert(t, alt);
                        }
                    }
                }
            }
            "Host CPU" => {
                for instance in ["i-1", "i-2"] {
                    if let Some(h) = seed.host_at(instance, t) {
                        let labels = json!({ "instance": instance }).to_string();
                        out.entry(labels)
                            .or_default()
                            .insert(t, h.gauges.cpu_percent.unwrap());
                    }
                }
            }
            "Host memory used" => {
                for instance in ["i-1", "i-2"] {
                    if let Some(h) = seed.host_at(instance, t) {
                        let g = &h.gauges;
                        let v = 100.0 * g.mem_used_bytes.unwrap() as f64
                            / g.mem_total_bytes.unwrap() as f64;
                        out.entry(host(instance)).or_default().insert(t, v);
                    }
                }
            }
            "Availability" => {
                for instance in ["i-1", "i-2"] {
                    let samples = seed.host_in(instance, window(t));
                    if !samples.is_empty() {
                        let up = samples
                            .iter()
                            .filter(|h| h.gauges.available == Some(true))
                            .count();
                        out.entry(host(instance))
                            .or_default()
                            .insert(t, up as f64 / samples.len() as f64);
                    }
                }
            }
            other => panic!("no reference answer for the panel {other:?}: add one here"),
        }
    }
    (out, alternative)
}

/// Runs every query of the dashboard and compares it with the seed.
pub async fn check_dashboard(app: &TestApp, seed: &Seed) {
    let start = seed.t0 + 50 * MINUTE + 3_000;
    let targets = targets();
    assert_eq!(targets.len(), 7, "six panels, one with p50 and p99");
    for (title, ref_id, expr) in targets {
        let got = range(app, &filled(&expr), start).await;
        assert!(!got.is_empty(), "{title}: empty answer");
        let (want, alternative) = want(seed, &title, &ref_id, start);
        assert_same_or(&format!("{title} {ref_id}"), &got, &want, &alternative);
    }
}
