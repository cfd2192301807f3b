//! One check per page: what the page shows against what the API answers.

use std::collections::BTreeMap;

use serde_json::Value;
use timebucket::console::format;

use super::seed::{EVIL_PATH, EVIL_SERVICE, SERVICES, WIDE_PATHS, WIDE_SERVICE};
use super::{api, screenshots, update_readme_screenshot, Range, Tab};

/// A figure as a cell shows it: the number it carries and its text.
fn figure(cell: &Value) -> (f64, String) {
    let value = cell["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no number in {cell}"))
        .parse::<f64>()
        .unwrap();
    (value, cell["text"].as_str().unwrap().to_owned())
}

/// The page shows `want` in `cell`, as a number and formatted by `fmt`. The API's JSON number
/// and the page's attribute are both shortest round-trip text of the same f64; only the JSON
/// parser's last-bit rounding may differ.
fn assert_shows(cell: &Value, want: f64, fmt: fn(f64) -> String, what: &str) {
    let (value, text) = figure(cell);
    let tolerance = 1e-12 * want.abs().max(1.0);
    assert!(
        (value - want).abs() <= tolerance,
        "{what}: the page has {value}, the API {want}"
    );
    assert_eq!(text, fmt(want), "{what}: text");
}

fn count_text(n: f64) -> String {
    format::count(n as u64)
}

/// The totals point of a whole-range `/v1/stats` answer (`None` without requests).
fn total(answer: &Value) -> Option<&Value> {
    answer["groups"].get(0).map(|g| &g["points"][0])
}

/// Up at the end of the range, by the console's rule (newest heard step of the last two says
/// available for at least half its samples, or does not say), computed here from the answer.
fn expected_up(points: &[Value], steps: &[i64]) -> bool {
    let by_t: BTreeMap<i64, &Value> = points
        .iter()
        .map(|p| {
            let t = chrono::DateTime::parse_from_rfc3339(p["t"].as_str().unwrap()).unwrap();
            (t.timestamp_millis(), p)
        })
        .collect();
    steps[steps.len() - 2..]
        .iter()
        .rev()
        .filter_map(|t| by_t.get(t))
        .find(|p| p["samples"].as_u64().unwrap() > 0)
        .is_some_and(|p| p["availability"].as_f64().is_none_or(|a| a >= 0.5))
}

const OVERVIEW_ROWS: &str = r#"[...document.querySelectorAll('#services tbody tr')].map(tr => {
    const v = c => { const e = tr.querySelector(`[data-col="${c}"]`);
        return e ? {value: e.dataset.value ?? null, text: e.textContent.trim()} : null; };
    const up = tr.querySelector('[data-col="up"]');
    return {service: tr.dataset.service, rate: v('rate'), errors: v('errors'), p99: v('p99'),
            up: Number(up.dataset.up), instances: Number(up.dataset.instances)};
})"#;

/// `/`: every seeded service with the API's totals, sorted by 5xx share.
pub async fn overview(tab: &Tab, base: &str, range: Range, store: &str) {
    tab.open(&format!("{base}/?{}", range.query())).await;
    let rows: Vec<Value> = tab.eval(OVERVIEW_ROWS).await;
    let mut shown: Vec<&str> = rows
        .iter()
        .map(|r| r["service"].as_str().unwrap())
        .collect();
    shown.sort();
    let mut seeded = SERVICES.to_vec();
    seeded.sort();
    assert_eq!(shown, seeded, "the services on the overview");
    let span = (range.to - range.from) as f64;
    let mut errors = Vec::new();
    for row in &rows {
        let service = row["service"].as_str().unwrap();
        let stats = api(base, "/v1/stats", &range.whole(service)).await;
        let t = total(&stats).unwrap();
        let count = t["count"].as_f64().unwrap();
        assert_shows(&row["rate"], count * 1000.0 / span, format::rate, service);
        let error_rate = t["error_rate"].as_f64().unwrap();
        assert_shows(&row["errors"], error_rate, format::percent, service);
        assert_shows(
            &row["p99"],
            t["p99_ms"].as_f64().unwrap(),
            format::duration_ms,
            service,
        );
        errors.push(error_rate);
        let host = api(base, "/v1/stats/host", &range.per_minute(service)).await;
        let instances = host["instances"].as_array().unwrap();
        let up = instances
            .iter()
            .filter(|i| expected_up(i["points"].as_array().unwrap(), &range.steps()))
            .count();
        assert_eq!(row["instances"], instances.len(), "{service}: instances");
        assert_eq!(row["up"], up, "{service}: instances up");
    }
    assert!(
        errors.windows(2).all(|w| w[0] >= w[1]),
        "sorted by 5xx share, largest first: {errors:?}"
    );
    // Of auth's two instances, auth-2 said unavailable at the end.
    let auth = rows.iter().find(|r| r["service"] == "auth").unwrap();
    assert_eq!(
        (auth["up"].as_u64(), auth["instances"].as_u64()),
        (Some(1), Some(2))
    );
    screenshots(tab, store, "overview").await;
}

const KPIS: &str = r#"Object.fromEntries([...document.querySelectorAll('dd[data-kpi]')].map(d =>
    [d.dataset.kpi, {value: d.dataset.value ?? null, text: d.textContent.trim()}]))"#;

const PATH_ROWS: &str = r#"[...document.querySelectorAll('#paths-table tbody tr')].map(tr => {
    const cells = Object.fromEntries([...tr.querySelectorAll('[data-col]')].map(e =>
        [e.dataset.col, {value: e.dataset.value ?? null, text: e.textContent.trim()}]));
    return {method: tr.dataset.method, path: tr.dataset.path,
            shown_path: tr.querySelector('code').textContent, cells};
})"#;

const CHART_STEPS: &str = r#"Object.fromEntries(['rate', 'errors', 'latency'].map(id =>
    [id, [...document.querySelectorAll(`#chart-${id} rect.hit`)].map(r =>
        [Number(r.dataset.t), r.querySelector('title').textContent])]))"#;

const INSTANCE_ROWS: &str = r#"[...document.querySelectorAll('#instances-table tbody tr')].map(tr => {
    const cpu = tr.querySelector('[data-col="cpu"]');
    const mem = tr.querySelector('[data-col="mem"]');
    return {instance: tr.dataset.instance, up: tr.dataset.up ?? null,
            cpu: cpu ? Number(cpu.dataset.value) : null,
            mem: mem ? Number(mem.dataset.value) : null,
            mem_text: mem ? mem.textContent.trim() : null,
            strip: [...tr.querySelectorAll('.strip span')].map(s => s.className)};
})"#;

/// `/services/checkout`, reached by clicking it on the overview.
pub async fn service(tab: &Tab, base: &str, range: Range, store: &str) {
    tab.open(&format!("{base}/?{}", range.query())).await;
    let href = tab
        .click_to(r#"#services tr[data-service="checkout"] a"#, |h| {
            h.contains("/services/checkout?")
        })
        .await;
    assert!(href.contains("from=") && href.contains("to="), "{href}");
    let name: String = tab
        .eval("document.querySelector('#service-name').textContent")
        .await;
    assert_eq!(name, "checkout");

    let stats = api(base, "/v1/stats", &range.whole("checkout")).await;
    let t = total(&stats).unwrap();
    let kpis: Value = tab.eval(KPIS).await;
    let count = t["count"].as_f64().unwrap();
    assert_shows(&kpis["count"], count, count_text, "requests");
    let span = (range.to - range.from) as f64;
    assert_shows(&kpis["rate"], count * 1000.0 / span, format::rate, "rate");
    for (key, fmt) in [
        ("error_rate", format::percent as fn(f64) -> String),
        ("client_error_rate", format::percent),
        ("p50_ms", format::duration_ms),
        ("p90_ms", format::duration_ms),
        ("p99_ms", format::duration_ms),
    ] {
        assert_shows(&kpis[key], t[key].as_f64().unwrap(), fmt, key);
    }

    let mut params = range.whole("checkout");
    params.push(("group_by", "method,path".to_owned()));
    let per_path = api(base, "/v1/stats", &params).await;
    let groups = per_path["groups"].as_array().unwrap();
    let rows: Vec<Value> = tab.eval(PATH_ROWS).await;
    assert_eq!(rows.len(), groups.len(), "one row per method and path");
    for group in groups {
        let (method, path) = (&group["key"]["method"], &group["key"]["path"]);
        let row = rows
            .iter()
            .find(|r| r["method"] == *method && r["path"] == *path)
            .unwrap_or_else(|| panic!("no row for {method} {path}"));
        assert_eq!(row["shown_path"], *path, "the path is shown as text");
        let p = &group["points"][0];
        let what = format!("{method} {path}");
        assert_shows(
            &row["cells"]["count"],
            p["count"].as_f64().unwrap(),
            count_text,
            &what,
        );
        let rate = p["count"].as_f64().unwrap() * 1000.0 / span;
        assert_shows(&row["cells"]["rate"], rate, format::rate, &what);
        for (key, fmt) in [
            ("error_rate", format::percent as fn(f64) -> String),
            ("client_error_rate", format::percent),
            ("p50_ms", format::duration_ms),
            ("p90_ms", format::duration_ms),
            ("p99_ms", format::duration_ms),
        ] {
            assert_shows(&row["cells"][key], p[key].as_f64().unwrap(), fmt, &what);
        }
    }

    // The charts: one column per minute, each titled with the step's figures.
    let steps = range.steps();
    let charts: BTreeMap<String, Vec<(i64, String)>> = tab.eval(CHART_STEPS).await;
    let per_minute = api(base, "/v1/stats", &range.per_minute("checkout")).await;
    let points: BTreeMap<i64, &Value> = per_minute["groups"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let t = chrono::DateTime::parse_from_rfc3339(p["t"].as_str().unwrap()).unwrap();
            (t.timestamp_millis(), p)
        })
        .collect();
    for (chart, columns) in &charts {
        let starts: Vec<i64> = columns.iter().map(|(t, _)| *t).collect();
        assert_eq!(starts, steps, "{chart}: one column per step");
    }
    for ((t, rate_title), (_, latency_title)) in charts["rate"].iter().zip(&charts["latency"]) {
        match points.get(t) {
            Some(p) => {
                let rate = format::rate(p["rate"].as_f64().unwrap());
                assert!(
                    rate_title.ends_with(&format!("requests/s {rate}")),
                    "{rate_title}"
                );
                for q in ["p50", "p90", "p99"] {
                    let v = format::duration_ms(p[format!("{q}_ms")].as_f64().unwrap());
                    assert!(
                        latency_title.contains(&format!("{q} {v}")),
                        "{latency_title}"
                    );
                }
            }
            None => {
                assert!(rate_title.ends_with("requests/s 0/s"), "{rate_title}");
                assert!(latency_title.contains("p99 no data"), "{latency_title}");
            }
        }
    }

    // Instances: gauges from /v1/latest, status and strip from /v1/stats/host.
    let latest = api(base, "/v1/latest", &[("service", "checkout".to_owned())]).await;
    let host = api(base, "/v1/stats/host", &range.per_minute("checkout")).await;
    let rows: Vec<Value> = tab.eval(INSTANCE_ROWS).await;
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["instance"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["checkout-1", "checkout-2", "checkout-3"]);
    for row in &rows {
        let instance = row["instance"].as_str().unwrap();
        let reading = latest["host"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["instance"] == instance)
            .unwrap();
        let cpu = reading["cpu_percent"].as_f64().unwrap();
        assert!(
            (row["cpu"].as_f64().unwrap() - cpu).abs() <= 1e-9,
            "{instance}: cpu"
        );
        let mem = reading["mem_used_bytes"].as_f64().unwrap();
        assert_eq!(row["mem"].as_f64(), Some(mem), "{instance}: memory");
        assert!(
            row["mem_text"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{} / 2 GiB", format::bytes(mem))),
            "{row}"
        );
        let series = host["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance"] == instance)
            .unwrap();
        let points = series["points"].as_array().unwrap();
        let up = expected_up(points, &steps);
        assert_eq!(row["up"], up.to_string(), "{instance}: status");
        let by_t: BTreeMap<i64, &Value> = points
            .iter()
            .map(|p| {
                let t = chrono::DateTime::parse_from_rfc3339(p["t"].as_str().unwrap()).unwrap();
                (t.timestamp_millis(), p)
            })
            .collect();
        let want: Vec<&str> = steps
            .iter()
            .map(|t| match by_t.get(t) {
                Some(p) if p["samples"].as_u64().unwrap() > 0 => match p["availability"].as_f64() {
                    None => "up",
                    Some(a) if a >= 1.0 => "up",
                    Some(a) if a > 0.0 => "part",
                    Some(_) => "down",
                },
                _ => "down",
            })
            .collect();
        // A silent step still running shows grey ("wait"): not heard, like "down".
        let shown: Vec<&str> = row["strip"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| match c.as_str().unwrap() {
                "wait" => "down",
                other => other,
            })
            .collect();
        assert_eq!(shown, want, "{instance}: availability strip");
    }
    let silent = rows[1]["strip"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| *c == "down")
        .count();
    assert!(
        silent >= 8,
        "checkout-2 was silent for ten minutes: {silent} red steps"
    );
    screenshots(tab, store, "service").await;
    update_readme_screenshot(tab).await;
}

const READING_IDS: &str =
    "[...document.querySelectorAll('#readings tbody tr')].map(tr => tr.dataset.id)";

fn ids(answer: &Value) -> Vec<String> {
    answer["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `/services/checkout/readings`, reached from the service page, paged with the cursor.
pub async fn readings(tab: &Tab, base: &str, range: Range, store: &str) {
    tab.open(&format!("{base}/services/checkout?{}", range.query()))
        .await;
    tab.click_to("#readings-link", |h| {
        h.contains("/services/checkout/readings?")
    })
    .await;
    let mut params = range.whole("checkout");
    params.truncate(3);
    params.extend([("order", "desc".to_owned()), ("limit", "50".to_owned())]);
    let first = api(base, "/v1/readings", &params).await;
    let shown: Vec<String> = tab.eval(READING_IDS).await;
    assert_eq!(shown, ids(&first), "the first page, newest first");
    screenshots(tab, store, "readings").await;

    tab.click_to("#next-page", |h| h.contains("cursor=")).await;
    params.push(("cursor", first["next_cursor"].as_str().unwrap().to_owned()));
    let second = api(base, "/v1/readings", &params).await;
    let shown: Vec<String> = tab.eval(READING_IDS).await;
    assert_eq!(shown, ids(&second), "the second page, after the cursor");
    tab.click_to("#first-page", |h| !h.contains("cursor="))
        .await;
    let shown: Vec<String> = tab.eval(READING_IDS).await;
    assert_eq!(shown, ids(&first), "back to the first page");
}

/// A service and a path made of markup are shown as text, on every page they appear on.
pub async fn markup_stays_text(tab: &Tab, base: &str, range: Range) {
    let pwned = "[window.__pwned === undefined, document.scripts.length]";
    tab.open(&format!("{base}/?{}", range.query())).await;
    let link = format!(
        r#"#services tr[data-service="{}"] a"#,
        EVIL_SERVICE.replace('"', "\\\"")
    );
    let shown: String = tab
        .eval(&format!("document.querySelector({link:?}).textContent"))
        .await;
    assert_eq!(shown, EVIL_SERVICE);
    tab.click_to(&link, |h| h.contains("/services/evil")).await;
    let name: String = tab
        .eval("document.querySelector('#service-name').textContent")
        .await;
    assert_eq!(name, EVIL_SERVICE);
    assert_eq!(
        tab.eval::<(bool, u32)>(pwned).await,
        (true, 1),
        "no script ran"
    );

    tab.open(&format!("{base}/services/search?{}", range.query()))
        .await;
    let shown: String = tab
        .eval(&format!(
            "document.querySelector('#paths-table tr[data-path={:?}] code').textContent",
            EVIL_PATH
        ))
        .await;
    assert_eq!(shown, EVIL_PATH);
    assert_eq!(
        tab.eval::<(bool, u32)>(pwned).await,
        (true, 1),
        "no script ran"
    );

    let mut query = range.query();
    query.push_str("&path=");
    query.extend(percent_encoding::utf8_percent_encode(
        EVIL_PATH,
        percent_encoding::NON_ALPHANUMERIC,
    ));
    tab.open(&format!("{base}/services/search/readings?{query}"))
        .await;
    let paths: Vec<String> = tab
        .eval("[...document.querySelectorAll('#readings tbody td code')].map(c => c.textContent)")
        .await;
    assert!(!paths.is_empty(), "readings of the markup path");
    assert!(paths.iter().all(|p| p == EVIL_PATH), "{paths:?}");
    assert_eq!(
        tab.eval::<(bool, u32)>(pwned).await,
        (true, 1),
        "no script ran"
    );
}

/// A table longer than a page is paged; a header click sorts it.
pub async fn paging_and_sorting(tab: &Tab, base: &str, range: Range) {
    tab.open(&format!(
        "{base}/services/{WIDE_SERVICE}?{}&sort=path&dir=asc",
        range.query()
    ))
    .await;
    let paths =
        "[...document.querySelectorAll('#paths-table tbody tr')].map(tr => tr.dataset.path)";
    let first: Vec<String> = tab.eval(paths).await;
    let want: Vec<String> = (0..50).map(|n| format!("/items/{n:02}")).collect();
    assert_eq!(first, want, "the first 50 paths, by path");
    tab.click_to("#paths a[rel=next]", |h| h.contains("page=2"))
        .await;
    let second: Vec<String> = tab.eval(paths).await;
    let want: Vec<String> = (50..WIDE_PATHS).map(|n| format!("/items/{n:02}")).collect();
    assert_eq!(second, want, "the rest on page 2");

    tab.open(&format!("{base}/?{}", range.query())).await;
    tab.click_to(r#"#services th a[href*="sort=p99"]"#, |h| {
        h.contains("sort=p99")
    })
    .await;
    let p99: Vec<f64> = tab
        .eval(r#"[...document.querySelectorAll('#services [data-col="p99"]')].map(c => Number(c.dataset.value))"#)
        .await;
    assert!(
        p99.windows(2).all(|w| w[0] >= w[1]),
        "largest p99 first: {p99:?}"
    );
    // Sorting by instances up needs every service's instances, asked for before paging.
    tab.click_to(r#"#services th a[href*="sort=up"]"#, |h| {
        h.contains("sort=up")
    })
    .await;
    let up: Vec<f64> = tab
        .eval(r#"[...document.querySelectorAll('#services [data-col="up"]')].map(c => Number(c.dataset.up) / Number(c.dataset.instances))"#)
        .await;
    assert_eq!(up.len(), SERVICES.len());
    assert!(up.windows(2).all(|w| w[0] >= w[1]), "most up first: {up:?}");
}

/// The range picker's presets and auto-refresh.
pub async fn picker_and_refresh(tab: &Tab, base: &str) {
    tab.open(&format!("{base}/?range=1h")).await;
    let permalink: String = tab
        .eval("document.querySelector('a.permalink').getAttribute('href')")
        .await;
    assert!(
        permalink.contains("from=") && permalink.contains("to="),
        "{permalink}"
    );
    tab.eval::<bool>(
        "(() => { const s = document.querySelector('select[name=range]'); s.value = '6h'; \
         s.dispatchEvent(new Event('change')); return true; })()",
    )
    .await;
    tab.wait_loaded(|h| h.contains("range=6h")).await;
    let shown: String = tab
        .eval("document.querySelector('select[name=range]').value")
        .await;
    assert_eq!(shown, "6h");
    let rows: usize = tab
        .eval("document.querySelectorAll('#services tbody tr').length")
        .await;
    assert_eq!(rows, SERVICES.len());
    // "Custom" shows the date fields instead of reloading.
    let custom_shown: bool = tab
        .eval(
            "(() => { const s = document.querySelector('select[name=range]'); s.value = 'custom'; \
             s.dispatchEvent(new Event('change')); \
             return !document.querySelector('form.picker .custom').hidden; })()",
        )
        .await;
    assert!(custom_shown);

    tab.open(&format!("{base}/?range=15m&refresh=10s")).await;
    tab.eval::<bool>("(window.__before_refresh = true)").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Until the reload, the marker is there; while reloading, there is no document to ask.
    while tab
        .try_eval::<bool>("window.__before_refresh === true")
        .await
        .unwrap_or(true)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the page did not refresh itself"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    tab.wait_loaded(|h| h.contains("refresh=10s")).await;
}

/// `/alerts` without an evaluator.
pub async fn alerts(tab: &Tab, base: &str, store: &str) {
    tab.open(&format!("{base}/alerts")).await;
    let text: String = tab
        .eval("document.querySelector('#alerts-not-configured h2').textContent")
        .await;
    assert_eq!(text, "Alerting is not configured");
    screenshots(tab, store, "alerts").await;
}
