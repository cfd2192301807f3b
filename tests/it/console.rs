//! The web console in a real browser (headless Chromium, `console/browser.rs`), on both stores.
//!
//! The real binary serves (`console/served.rs`), seeded through `POST /v1/metrics`; then each
//! page is loaded as a person would and every figure it shows is compared with what the JSON API answers for the same range
//! (`/v1/stats`, `/v1/stats/host`, `/v1/latest`, `/v1/readings`), both the raw number a cell
//! carries and the text with its unit. The tests click through overview → service → readings,
//! page with the cursor, change the range with the picker, wait for an auto-refresh, check that
//! markup in a service name or path stays text, and fail on any JavaScript error or browser log
//! error. Screenshots of every page, light and dark, at 1280 px and at phone width, are written
//! to `target/console-screenshots/<store>/` for review; with `TIMEBUCKET_UPDATE_SCREENSHOTS=1`
//! the service page also replaces `docs/console-service.png` (the README's picture).

mod browser;
mod checks;
mod seed;
mod served;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{drop_keyspace, migrated_keyspace};
use browser::{Chromium, Tab, View};
use served::Served;

/// The range every compared page shows: a fixed hour ending at the newest reading.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub from: i64,
    pub to: i64,
}

impl Range {
    /// `from=…&to=…` as the console reads them (RFC 3339, exact to the millisecond).
    pub fn query(&self) -> String {
        format!(
            "from={}&to={}",
            rfc3339(self.from).replace(':', "%3A"),
            rfc3339(self.to).replace(':', "%3A")
        )
    }

    /// `/v1/stats` parameters of the totals over the range (one step holding all of it, as
    /// the console asks).
    pub fn whole(&self, service: &str) -> Vec<(&'static str, String)> {
        vec![
            ("service", service.to_owned()),
            ("from", self.from.to_string()),
            ("to", self.to.to_string()),
            ("step", format!("{}ms", self.to + 1)),
        ]
    }

    /// The same with the chart step of an hour: one minute.
    pub fn per_minute(&self, service: &str) -> Vec<(&'static str, String)> {
        let mut params = self.whole(service);
        params[3].1 = "60s".to_owned();
        params
    }

    /// The start of every chart step.
    pub fn steps(&self) -> Vec<i64> {
        let first = self.from.div_euclid(60_000) * 60_000;
        (0..)
            .map(|i| first + i * 60_000)
            .take_while(|t| *t <= self.to)
            .collect()
    }
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A JSON answer of the API; fails on anything but a 200.
pub async fn api(base: &str, path: &str, params: &[(&str, String)]) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .query(params)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{path} {params:?}: {body}");
    body
}

/// Where a page's screenshots go: `target/console-screenshots/<store>/`.
fn screenshot_dir(store: &str) -> PathBuf {
    // The test binary is target/<profile>/deps/it-…: three levels up is the target directory.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    target.join("console-screenshots").join(store)
}

/// Light and dark, desktop and phone: `NAME-desktop.png`, `NAME-desktop-dark.png`, ….
pub async fn screenshots(tab: &Tab, store: &str, name: &str) {
    let dir = screenshot_dir(store);
    for (view, suffix) in [
        (View::DESKTOP, "desktop"),
        (View::DESKTOP_DARK, "desktop-dark"),
        (View::PHONE, "phone"),
        (View::PHONE_DARK, "phone-dark"),
    ] {
        tab.screenshot(view, &dir.join(format!("{name}-{suffix}.png")))
            .await;
    }
}

/// The README's picture of the service page, when asked for.
pub async fn update_readme_screenshot(tab: &Tab) {
    if std::env::var("TIMEBUCKET_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console-service.png");
        tab.screenshot(View::DESKTOP, &path).await;
    }
}

async fn check_console(base: &str, store: &str) {
    let now = chrono::Utc::now().timestamp_millis();
    let end = now - 5_000;
    seed::seed(base, end).await;
    let range = Range {
        from: end - 3_600_000,
        to: end,
    };
    let chromium = Chromium::start().await;
    let tab = chromium.tab().await;
    checks::overview(&tab, base, range, store).await;
    checks::service(&tab, base, range, store).await;
    checks::readings(&tab, base, range, store).await;
    checks::markup_stays_text(&tab, base, range).await;
    checks::paging_and_sorting(&tab, base, range).await;
    checks::picker_and_refresh(&tab, base).await;
    checks::alerts(&tab, base, store).await;
    let errors = tab.errors();
    assert!(
        errors.is_empty(),
        "the browser reported errors:\n{}",
        errors.join("\n")
    );
    drop(tab);
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_what_the_api_answers_on_the_embedded_store() {
    browser::executable(); // fails first, saying how to install it, when Chromium is missing
    let served = Served::start(None).await;
    check_console(&served.url, "embedded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_what_the_api_answers_on_cql() {
    browser::executable();
    let keyspace = migrated_keyspace().await;
    let node = crate::support::cql_node();
    let served = Served::start(Some((&node, keyspace.as_str()))).await;
    check_console(&served.url, "cql").await;
    drop(served);
    drop_keyspace(&keyspace).await;
}

/// Pages answer a bad address with the status the API would, naming the parameter; the
/// stylesheet and script are served from the binary; pages forbid inline and foreign scripts.
#[tokio::test]
async fn pages_name_what_is_wrong_and_carry_their_security_headers() {
    let served = Served::start(None).await;
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{}{path}", served.url)).send();
    for (path, status, names) in [
        ("/?range=2h", 400, "range"),
        ("/?from=yesterday&to=1", 400, "from"),
        ("/?refresh=1s", 400, "refresh"),
        ("/services/nobody", 400, "unknown service `nobody`"),
        ("/services/nobody/readings?order=up", 400, "order"),
        (
            "/?range=custom&from=0&to=864000000",
            400,
            "more than the 7days",
        ),
    ] {
        let response = get(path).await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        let html = response.text().await.unwrap();
        assert!(html.contains(names), "{path}: {html}");
    }
    let page = get("/").await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("No service has sent readings in this range"));
    for (asset, content_type) in [
        ("console.css", "text/css"),
        ("console.js", "text/javascript"),
    ] {
        let response = get(&format!("/assets/{asset}")).await.unwrap();
        assert_eq!(response.status(), 200);
        let header = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(header.starts_with(content_type), "{asset}: {header}");
        assert!(
            html.contains(&format!("/assets/{asset}?v=")),
            "the page links {asset}"
        );
    }
    assert_eq!(get("/assets/other.js").await.unwrap().status(), 404);
}
