//! The query endpoints against the real node: every answer is compared with one computed here,
//! independently, from the seeded readings (`query/seed.rs`).

mod errors;
mod seed;

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;
use serde_json::{json, Value};
use timebucket::model::ApiReading;
use timebucket::query::QueryLimits;

use crate::support::{spawn_app, AppOptions, TestApp};
use seed::{
    api_json, as_parsed, finish, rfc3339, seeded_app, series_in, shop_in, t0, weighted_quantile,
    Seed, HOUR, MINUTE,
};

/// GETs `path` with `params`; the status and the JSON body.
pub async fn get(app: &TestApp, path: &str, params: &[(&str, String)]) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", app.url))
        .query(params)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Every page of `/v1/readings` for `params`, following the cursors.
async fn all_pages(app: &TestApp, params: &[(&str, String)], limit: usize) -> Vec<Value> {
    let mut readings = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let mut page_params = params.to_vec();
        page_params.push(("limit", limit.to_string()));
        page_params.extend(cursor.take().map(|c| ("cursor", c)));
        let (status, body) = get(app, "/v1/readings", &page_params).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = body["readings"].as_array().unwrap();
        assert!(
            page.len() <= limit,
            "a page of {} > limit {limit}",
            page.len()
        );
        readings.extend(page.iter().cloned());
        match &body["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            Value::Null => return readings,
            other => panic!("next_cursor is {other}"),
        }
    }
    panic!("the cursor never ended");
}

fn range(from: i64, to: i64) -> Vec<(&'static str, String)> {
    vec![
        ("service", "shop".to_owned()),
        ("from", rfc3339(from)),
        ("to", to.to_string()),
    ]
}

async fn check_pages(
    app: &TestApp,
    seed: &Seed,
    (from, to): (i64, i64),
    extra: &[(&'static str, &str)],
    keep: impl Fn(&ApiReading) -> bool,
    limit: usize,
) {
    let mut params = range(from, to);
    params.extend(extra.iter().map(|(n, v)| (*n, (*v).to_owned())));
    let mut want: Vec<Value> = shop_in(seed, from, to, keep)
        .into_iter()
        .map(api_json)
        .collect();
    if extra.contains(&("order", "desc")) {
        want.reverse();
    }
    assert!(!want.is_empty(), "the seed has readings for {extra:?}");
    let got = all_pages(app, &params, limit).await;
    assert_eq!(got.len(), want.len(), "{extra:?} limit {limit}");
    assert!(
        got == want,
        "{extra:?} limit {limit}: pages differ from the seed"
    );
}

#[tokio::test]
async fn readings_pages_are_exact_across_buckets_shards_and_filters() {
    let (app, seed) = seeded_app(QueryLimits::default()).await;
    let all = (t0(), t0() + 5 * HOUR);
    check_pages(&app, &seed, all, &[], |_| true, 23).await;
    check_pages(&app, &seed, all, &[("order", "desc")], |_| true, 50).await;
    // Both ends are inclusive, and both hold readings on a bucket boundary.
    let hour = (t0() + HOUR, t0() + 2 * HOUR);
    check_pages(&app, &seed, hour, &[], |_| true, 10_000).await;
    let one_instant = (t0() + 2 * HOUR + 777, t0() + 2 * HOUR + 777);
    check_pages(&app, &seed, one_instant, &[], |_| true, 1).await;
    let filtered = [("instance", "i-2"), ("path", "/pay")];
    let pay = |r: &ApiReading| r.instance.as_str() == "i-2" && r.path.as_str() == "/pay";
    check_pages(&app, &seed, all, &filtered, pay, 9).await;
    let one_series = [
        ("instance", "i-1"),
        ("method", "post"),
        ("path", "/cart"),
        ("order", "desc"),
    ];
    let cart = |r: &ApiReading| {
        (r.instance.as_str(), r.method.as_str(), r.path.as_str()) == ("i-1", "POST", "/cart")
    };
    check_pages(&app, &seed, all, &one_series, cart, 5).await;
    let errors = |r: &ApiReading| r.code.get() == 503;
    check_pages(&app, &seed, all, &[("code", "503")], errors, 11).await;

    // With a scan budget of 40 rows a page ends early, with a cursor; following it still
    // yields exactly the matching readings.
    let small = spawn_app(AppOptions {
        keyspace: Some(app.keyspace.clone()),
        query: QueryLimits {
            max_scan_rows: 40,
            ..QueryLimits::default()
        },
        ..AppOptions::default()
    })
    .await;
    let rare = |r: &ApiReading| r.code.get() == 500 && r.instance.as_str() == "i-3";
    let rare_params = [("code", "500"), ("instance", "i-3")];
    check_pages(&small, &seed, all, &rare_params, rare, 1000).await;
    small.stop().await.unwrap();
    finish(app).await;
}

#[tokio::test]
async fn series_are_the_exact_sets_of_the_covering_buckets() {
    let (app, seed) = seeded_app(QueryLimits::default()).await;
    for (from, to) in [
        (t0(), t0() + 5 * HOUR),
        (t0() + HOUR + 10 * MINUTE, t0() + 2 * HOUR + 5 * MINUTE),
        (t0() + 5 * HOUR, t0() + 5 * HOUR),
    ] {
        let (status, body) = get(&app, "/v1/series", &range(from, to)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let want: Vec<Value> = series_in(&seed, from, to)
            .into_iter()
            .map(|(instance, methods)| {
                let methods: Vec<Value> = methods
                    .into_iter()
                    .map(|(method, path)| json!({"method": method, "path": path}))
                    .collect();
                json!({"instance": instance, "methods": methods})
            })
            .collect();
        assert_eq!(
            body,
            json!({"service": "shop", "instances": want, "next_cursor": null})
        );
        // Page by page, with the cursors, the same answer.
        let mut instances: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut params = range(from, to);
            params.push(("limit", "2".into()));
            params.extend(cursor.take().map(|c| ("cursor", c)));
            let (status, page) = get(&app, "/v1/series", &params).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            for instance in page["instances"].as_array().unwrap() {
                match instances.last_mut() {
                    Some(last) if last["instance"] == instance["instance"] => last["methods"]
                        .as_array_mut()
                        .unwrap()
                        .extend(instance["methods"].as_array().unwrap().iter().cloned()),
                    _ => instances.push(instance.clone()),
                }
            }
            match &page["next_cursor"] {
                Value::String(next) => cursor = Some(next.clone()),
                _ => break,
            }
        }
        assert_eq!(instances, want, "paged by 2");
    }
    // The host-only instance is listed, with no API methods.
    let (_, body) = get(&app, "/v1/series", &range(t0(), t0() + HOUR)).await;
    let h9 = body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance"] == "h-9");
    assert_eq!(h9, Some(&json!({"instance": "h-9", "methods": []})));
    finish(app).await;
}

#[tokio::test]
async fn latest_is_the_newest_reading_even_when_an_older_one_arrives_late() {
    let (app, seed) = seeded_app(QueryLimits::default()).await;
    let mut newest: BTreeMap<(String, String, String), &ApiReading> = BTreeMap::new();
    for r in seed.api.iter().filter(|r| r.service.as_str() == "shop") {
        let key = (
            r.instance.to_string(),
            r.method.to_string(),
            r.path.to_string(),
        );
        let slot = newest.entry(key).or_insert(r);
        if r.timestamp > slot.timestamp {
            *slot = r;
        }
    }
    for (key, latest) in &newest {
        let ties = seed.api.iter().filter(|r| {
            r.timestamp == latest.timestamp
                && (r.instance.as_str(), r.method.as_str(), r.path.as_str())
                    == (key.0.as_str(), key.1.as_str(), key.2.as_str())
        });
        assert_eq!(
            ties.count(),
            1,
            "the seed must have one newest reading per series"
        );
    }
    let mut host: BTreeMap<String, &timebucket::model::HostReading> = BTreeMap::new();
    for h in &seed.host {
        let slot = host.entry(h.instance.to_string()).or_insert(h);
        if h.timestamp > slot.timestamp {
            *slot = h;
        }
    }
    let host_json: Vec<Value> = host
        .values()
        .map(|h| {
            let g = &h.gauges;
            let mut v = json!({
                "id": h.id.uuid().to_string(), "service": "shop", "instance": h.instance.as_str(),
                "timestamp": rfc3339(h.timestamp.millis()), "cpu_percent": g.cpu_percent,
                "mem_used_bytes": g.mem_used_bytes, "mem_total_bytes": g.mem_total_bytes,
            });
            if let Some(a) = g.available {
                v["available"] = json!(a);
            }
            if let Some(heap) = g.heap_bytes {
                v["heap_bytes"] = json!(heap);
            }
            as_parsed(v)
        })
        .collect();
    let api: Vec<Value> = newest.values().map(|r| api_json(r)).collect();
    let (status, body) = get(&app, "/v1/latest", &[("service", "shop".into())]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"api": api, "host": host_json, "next_cursor": null})
    );
    // Page by page, with the cursors, the same readings.
    let (mut paged_api, mut paged_host) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("service", "shop".to_owned()), ("limit", "3".into())];
        params.extend(cursor.take().map(|c| ("cursor", c)));
        let (status, page) = get(&app, "/v1/latest", &params).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page["api"].as_array().unwrap().len() + page["host"].as_array().unwrap().len() <= 3
        );
        paged_api.extend(page["api"].as_array().unwrap().iter().cloned());
        paged_host.extend(page["host"].as_array().unwrap().iter().cloned());
        match &page["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            _ => break,
        }
    }
    assert_eq!((paged_api, paged_host), (api.clone(), host_json.clone()));
    let late = seed.api.last().unwrap();
    assert!(body["api"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["id"] != late.id.uuid().to_string()));

    let (_, everything) = get(&app, "/v1/latest", &[]).await;
    let services: BTreeSet<&str> = everything["api"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, BTreeSet::from(["other", "shop"]));
    finish(app).await;
}

/// A JSON object as text with its keys sorted, whatever order the map keeps them in.
fn canonical(value: &Value) -> String {
    let sorted: BTreeMap<&String, &Value> = value.as_object().into_iter().flatten().collect();
    format!("{sorted:?}")
}

fn close(got: &Value, want: f64, relative: f64) -> bool {
    let got = got.as_f64().unwrap();
    (got - want).abs() <= relative * want.abs() + 1e-9
}

/// Compares one stats query with the seed: counts, rates and error shares exactly, the mean
/// to float rounding, percentiles within the sketch's 1%.
async fn check_stats(
    app: &TestApp,
    seed: &Seed,
    (from, to): (i64, i64),
    step: i64,
    extra: &[(&'static str, &str)],
    keep: impl Fn(&ApiReading) -> bool,
    key: impl Fn(&ApiReading) -> Value,
) {
    let mut params = range(from, to);
    params.push(("step", format!("{}s", step / 1000)));
    params.extend(extra.iter().map(|(n, v)| (*n, (*v).to_owned())));
    let (status, body) = get(app, "/v1/stats", &params).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["step_ms"], json!(step));
    let mut want: BTreeMap<String, BTreeMap<i64, Vec<&ApiReading>>> = BTreeMap::new();
    for r in shop_in(seed, from, to, keep) {
        let t = r.timestamp.millis().div_euclid(step) * step;
        want.entry(canonical(&key(r)))
            .or_default()
            .entry(t)
            .or_default()
            .push(r);
    }
    let groups = body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), want.len(), "{extra:?}");
    for group in groups {
        let cells = &want[&canonical(&group["key"])];
        let points = group["points"].as_array().unwrap();
        assert_eq!(points.len(), cells.len());
        for (point, (t, readings)) in points.iter().zip(cells) {
            let count: u64 = readings.iter().map(|r| u64::from(r.count)).sum();
            let of = |f: &dyn Fn(u16) -> bool| -> u64 {
                readings
                    .iter()
                    .filter(|r| f(r.code.get()))
                    .map(|r| u64::from(r.count))
                    .sum()
            };
            let weighted: f64 = readings
                .iter()
                .map(|r| r.duration_ms * f64::from(r.count))
                .sum();
            let max = readings
                .iter()
                .map(|r| r.duration_ms)
                .fold(f64::MIN, f64::max);
            assert_eq!(point["t"], json!(rfc3339(*t)));
            assert_eq!(point["count"], json!(count));
            let rate = count as f64 / (step as f64 / 1000.0);
            assert_eq!(point["rate"], as_parsed(json!(rate)));
            let server_errors = of(&|c| c >= 500) as f64 / count as f64;
            assert_eq!(point["error_rate"], as_parsed(json!(server_errors)));
            let client_errors = of(&|c| (400..500).contains(&c)) as f64 / count as f64;
            assert_eq!(point["client_error_rate"], as_parsed(json!(client_errors)));
            assert!(
                close(&point["mean_ms"], weighted / count as f64, 1e-9),
                "{point}"
            );
            assert_eq!(point["max_ms"], as_parsed(json!(max)));
            for (name, per_mille) in [("p50_ms", 500), ("p90_ms", 900), ("p99_ms", 990)] {
                let exact = weighted_quantile(readings, per_mille);
                assert!(
                    close(&point[name], exact, 0.01),
                    "{name}: {} vs {exact}",
                    point[name]
                );
            }
        }
    }
}

#[tokio::test]
async fn stats_match_the_seed_exactly_and_percentiles_within_one_percent() {
    let (app, seed) = seeded_app(QueryLimits::default()).await;
    let all = (t0(), t0() + 5 * HOUR);
    let path_code = |r: &ApiReading| json!({"path": r.path.as_str(), "code": r.code.get()});
    let group_by = [("group_by", "path,code")];
    check_stats(
        &app,
        &seed,
        all,
        10 * MINUTE,
        &group_by,
        |_| true,
        path_code,
    )
    .await;
    let partial = (t0() + 30 * MINUTE, t0() + 3 * HOUR);
    let get_only = |r: &ApiReading| r.method.as_str() == "GET";
    check_stats(
        &app,
        &seed,
        partial,
        HOUR,
        &[("method", "GET")],
        get_only,
        |_| json!({}),
    )
    .await;
    let by_instance =
        |r: &ApiReading| json!({"instance": r.instance.as_str(), "method": r.method.as_str()});
    let ok = |r: &ApiReading| r.code.get() == 200;
    let params = [("group_by", "instance,method"), ("code", "200")];
    check_stats(&app, &seed, all, 30 * MINUTE, &params, ok, by_instance).await;
    finish(app).await;
}

#[tokio::test]
async fn host_stats_match_the_samples() {
    let (app, seed) = seeded_app(QueryLimits::default()).await;
    let step = 30 * MINUTE;
    let mut params = range(t0(), t0() + 5 * HOUR);
    params.push(("step", "30m".into()));
    let (status, body) = get(&app, "/v1/stats/host", &params).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut want: BTreeMap<(String, i64), Vec<&timebucket::model::HostReading>> = BTreeMap::new();
    for h in &seed.host {
        let t = h.timestamp.millis().div_euclid(step) * step;
        want.entry((h.instance.to_string(), t)).or_default().push(h);
    }
    let mut seen = 0;
    for series in body["instances"].as_array().unwrap() {
        for point in series["points"].as_array().unwrap() {
            let instance = series["instance"].as_str().unwrap().to_owned();
            let t = chrono::DateTime::parse_from_rfc3339(point["t"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            if point["samples"] == json!(0) {
                // A step of the range the instance was silent in: reported unavailable.
                assert!(!want.contains_key(&(instance, t)), "{point}");
                assert_eq!(point["availability"], json!(0.0));
                continue;
            }
            let samples = &want[&(instance, t)];
            seen += 1;
            assert_eq!(point["samples"], json!(samples.len()));
            let cpu: Vec<f64> = samples
                .iter()
                .filter_map(|h| h.gauges.cpu_percent)
                .collect();
            let mean = cpu.iter().sum::<f64>() / cpu.len() as f64;
            assert!(close(&point["cpu_percent"]["mean"], mean, 1e-12));
            let max = cpu.iter().copied().fold(f64::MIN, f64::max);
            assert_eq!(point["cpu_percent"]["max"], as_parsed(json!(max)));
            assert_eq!(
                point["mem_total_bytes"],
                json!({"mean": 1073741824.0, "max": 1073741824.0})
            );
            let reported: Vec<bool> = samples.iter().filter_map(|h| h.gauges.available).collect();
            let up = reported.iter().filter(|a| **a).count();
            match reported.len() {
                0 => assert!(point.get("availability").is_none()),
                n => assert_eq!(
                    point["availability"],
                    as_parsed(json!(up as f64 / n as f64))
                ),
            }
            let heap = samples.iter().any(|h| h.gauges.heap_bytes.is_some());
            assert_eq!(point.get("heap_bytes").is_some(), heap);
        }
    }
    assert_eq!(seen, want.len());
    finish(app).await;
}
