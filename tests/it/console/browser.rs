//! Headless Chromium driven over the DevTools protocol with `chromiumoxide`: the console is
//! tested in the browser people use, not by parsing HTML.
//!
//! Why `chromiumoxide`: it is async on tokio like the rest of the tests (the service under test
//! runs in the same runtime), it launches a given executable (Debian's `chromium`) and never
//! downloads a browser unless its `fetcher` feature is asked for, and it exposes the whole
//! protocol (device metrics, media emulation, Runtime and Log events). `headless_chrome` is
//! blocking and thread-based, and would need its own threads beside tokio.
//!
//! Chromium is started with exactly the flags that work on a closed network (no background
//! connections, no component updates, no QUIC) and a fresh profile per browser. Every page
//! records JavaScript exceptions, `console.error` calls and browser log errors (a refused
//! script, a 404 resource), so a test can assert there were none. Shared with the console bench
//! (`benches/console.rs`), hence no dependency on the test support module.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::{
    ClearDeviceMetricsOverrideParams, MediaFeature, SetDeviceMetricsOverrideParams,
};
use chromiumoxide::cdp::browser_protocol::log::{EventEntryAdded, LogEntryLevel};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures::StreamExt;
use serde::de::DeserializeOwned;

/// The flags the brief for this machine requires (closed network: without the networking
/// flags Chromium's own connections are refused and slow every start).
const FLAGS: [&str; 6] = [
    "disable-gpu",
    "disable-quic",
    "no-first-run",
    "disable-background-networking",
    "disable-component-update",
    "disable-sync",
];

/// How to install the browser, in every failure message.
const INSTALL: &str = "install it with `scripts/tools chromium` (Debian's `chromium` package, \
                       `apt-get install chromium`), or set TIMEBUCKET_TEST_CHROMIUM to a \
                       Chromium or Chrome binary";

/// The Chromium binary: `TIMEBUCKET_TEST_CHROMIUM`, else `chromium` or `chromium-browser` on
/// the `PATH`. A missing browser fails the test with instructions; it never skips.
pub fn executable() -> PathBuf {
    if let Some(path) = std::env::var_os("TIMEBUCKET_TEST_CHROMIUM") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "TIMEBUCKET_TEST_CHROMIUM={} is not a file; {INSTALL}",
            path.display()
        );
        return path;
    }
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("Chromium is not installed: the console's browser tests need it; {INSTALL}")
        })
}

/// A running headless Chromium with its own fresh profile.
pub struct Chromium {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts the browser.
    pub async fn start() -> Chromium {
        let exe = executable();
        let profile = tempfile::tempdir().expect("profile dir");
        let config = BrowserConfig::builder()
            .chrome_executable(&exe)
            .disable_default_args()
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(1280, 900)
            .viewport(None)
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(60))
            .args(FLAGS)
            .build()
            .expect("browser config");
        let (browser, mut events) = Browser::launch(config).await.unwrap_or_else(|e| {
            panic!(
                "cannot start Chromium at {} ({e}); {INSTALL}",
                exe.display()
            )
        });
        let handler = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                // Messages of newer protocol versions the crate does not know are not fatal.
                let _ = event;
            }
        });
        Chromium {
            browser,
            handler,
            _profile: profile,
        }
    }

    /// A new tab recording errors.
    pub async fn tab(&self) -> Tab {
        let page = self.browser.new_page("about:blank").await.expect("new tab");
        page.enable_log().await.expect("Log.enable");
        let errors = Arc::new(Mutex::new(Vec::new()));
        let mut listeners = Vec::new();
        let mut exceptions = page.event_listener::<EventExceptionThrown>().await.unwrap();
        let sink = errors.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(e) = exceptions.next().await {
                let d = &e.exception_details;
                let what = d.exception.as_ref().and_then(|x| x.description.clone());
                sink.lock().unwrap().push(format!(
                    "exception: {} {}",
                    d.text,
                    what.unwrap_or_default()
                ));
            }
        }));
        let mut console = page
            .event_listener::<EventConsoleApiCalled>()
            .await
            .unwrap();
        let sink = errors.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(e) = console.next().await {
                if matches!(
                    e.r#type,
                    ConsoleApiCalledType::Error | ConsoleApiCalledType::Assert
                ) {
                    let args: Vec<String> = e
                        .args
                        .iter()
                        .map(|a| {
                            a.value
                                .as_ref()
                                .map(|v| v.to_string())
                                .or(a.description.clone())
                                .unwrap_or_default()
                        })
                        .collect();
                    sink.lock()
                        .unwrap()
                        .push(format!("console.error: {}", args.join(" ")));
                }
            }
        }));
        let mut log = page.event_listener::<EventEntryAdded>().await.unwrap();
        let sink = errors.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(e) = log.next().await {
                if matches!(e.entry.level, LogEntryLevel::Error | LogEntryLevel::Warning) {
                    sink.lock().unwrap().push(format!(
                        "log {:?}: {} ({})",
                        e.entry.level,
                        e.entry.text,
                        e.entry.url.clone().unwrap_or_default()
                    ));
                }
            }
        }));
        Tab {
            page,
            errors,
            listeners,
        }
    }

    /// Closes the browser.
    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// One tab.
pub struct Tab {
    page: Page,
    errors: Arc<Mutex<Vec<String>>>,
    listeners: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Tab {
    fn drop(&mut self) {
        for listener in &self.listeners {
            listener.abort();
        }
    }
}

/// Screen sizes and colour schemes of the screenshots.
#[derive(Debug, Clone, Copy)]
pub struct View {
    /// CSS pixels.
    pub width: i64,
    /// The viewport's height (the screenshot holds the whole page).
    pub height: i64,
    /// A phone: touch, mobile viewport.
    pub mobile: bool,
    /// `prefers-color-scheme: dark`.
    pub dark: bool,
}

impl View {
    /// A 1280 px desktop window, light.
    pub const DESKTOP: View = View {
        width: 1280,
        height: 900,
        mobile: false,
        dark: false,
    };
    /// A 1280 px desktop window, dark.
    pub const DESKTOP_DARK: View = View {
        dark: true,
        ..View::DESKTOP
    };
    /// A 390 px phone, light.
    pub const PHONE: View = View {
        width: 390,
        height: 844,
        mobile: true,
        dark: false,
    };
    /// A 390 px phone, dark.
    pub const PHONE_DARK: View = View {
        dark: true,
        ..View::PHONE
    };
}

impl Tab {
    /// Loads `url` and waits until the document is complete.
    pub async fn open(&self, url: &str) {
        self.page
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("loading {url}: {e}"));
        self.wait_loaded(|_| true).await;
    }

    /// Waits until the document is complete and its URL satisfies `url_ok`; the URL.
    pub async fn wait_loaded(&self, url_ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // During a navigation the old context may vanish under the evaluation: retry.
            let state: Option<(String, String)> = self
                .page
                .evaluate("[document.readyState, location.href]")
                .await
                .ok()
                .and_then(|r| r.into_value().ok());
            if let Some((ready, href)) = &state {
                if ready == "complete" && url_ok(href) {
                    return href.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "the page did not finish loading: {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of a JavaScript expression (JSON-serialisable).
    pub async fn eval<T: DeserializeOwned>(&self, expression: &str) -> T {
        self.page
            .evaluate(expression)
            .await
            .unwrap_or_else(|e| panic!("evaluating {expression}: {e}"))
            .into_value()
            .unwrap_or_else(|e| panic!("the value of {expression}: {e}"))
    }

    /// The value of an expression, or `None` while the page is between documents.
    pub async fn try_eval<T: DeserializeOwned>(&self, expression: &str) -> Option<T> {
        self.page.evaluate(expression).await.ok()?.into_value().ok()
    }

    /// Clicks the element `selector` (as a person would: scrolled into view, a mouse click at
    /// its centre) and waits for the page it leads to, whose URL must satisfy `url_ok`.
    pub async fn click_to(&self, selector: &str, url_ok: impl Fn(&str) -> bool) -> String {
        let before: String = self.eval("location.href").await;
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("no element {selector}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
        self.wait_loaded(|href| href != before && url_ok(href))
            .await
    }

    /// Every error the tab recorded so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    /// A PNG of the whole page as `view` shows it, written to `path`.
    pub async fn screenshot(&self, view: View, path: &Path) {
        let scheme = if view.dark { "dark" } else { "light" };
        self.page
            .emulate_media_features(vec![MediaFeature {
                name: "prefers-color-scheme".into(),
                value: scheme.into(),
            }])
            .await
            .unwrap();
        let metrics = |height: i64| {
            SetDeviceMetricsOverrideParams::builder()
                .width(view.width)
                .height(height)
                .device_scale_factor(1.0)
                .mobile(view.mobile)
                .build()
                .unwrap()
        };
        self.page.execute(metrics(view.height)).await.unwrap();
        let height: i64 = self
            .eval("Math.ceil(document.documentElement.scrollHeight)")
            .await;
        self.page
            .execute(metrics(height.max(view.height)))
            .await
            .unwrap();
        let png = self
            .page
            .screenshot(
                ScreenshotParams::builder()
                    .format(CaptureScreenshotFormat::Png)
                    .build(),
            )
            .await
            .unwrap();
        self.page
            .execute(ClearDeviceMetricsOverrideParams {})
            .await
            .unwrap();
        self.page
            .emulate_media_features(vec![MediaFeature {
                name: "prefers-color-scheme".into(),
                value: "light".into(),
            }])
            .await
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}
