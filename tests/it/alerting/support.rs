//! Fixtures of the alerting tests: a real Alertmanager (built by `scripts/tools alertmanager`),
//! an in-test webhook receiver, and a service whose evaluation clock the test moves.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use timebucket::alerting::clock::ManualClock;
use timebucket::alerting::{AlertingConfig, NotifyConfig, RetryPolicy};
use timebucket::model::TimestampMs;
use timebucket::server::ServeConfig;

use crate::support::{embedded_config, spawn_with, TestApp};
pub use crate::support::{metric, seed};

/// How long any condition may take to become true.
pub const WAIT: Duration = Duration::from_secs(60);
/// The groups' interval in `examples/rules.yml`, ms.
pub const STEP_MS: i64 = 30_000;
/// A minute, ms.
pub const MINUTE: i64 = 60_000;

/// The Alertmanager binary `scripts/tools alertmanager` builds.
fn alertmanager_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/alertmanager-v0.35.0");
    assert!(
        path.exists(),
        "{} is missing: run `scripts/tools alertmanager` (it builds Alertmanager v0.35.0 from \
         its Go module, about 3 minutes, then caches it)",
        path.display()
    );
    path
}

/// A free port on the loopback (bound and released; Alertmanager binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real Alertmanager on the loopback, without clustering; killed when dropped.
pub struct Alertmanager {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts one and waits until it is ready.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: nobody\n  group_wait: 1s\nreceivers:\n  - name: nobody\n",
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let child = Command::new(alertmanager_binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut am = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = am.child.try_wait().unwrap() {
                panic!("alertmanager exited ({status}): {}", am.log());
            }
            if let Ok(r) = reqwest::get(format!("{}/-/ready", am.url)).await {
                if r.status().is_success() {
                    return am;
                }
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager not ready: {}",
                am.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("alertmanager.log")).unwrap_or_default()
    }

    /// Its active alerts (`GET /api/v2/alerts`), as it answers them.
    pub async fn alerts(&self) -> Vec<Value> {
        reqwest::get(format!("{}/api/v2/alerts", self.url))
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
    }

    /// Polls until `check` holds for its alerts named `alertname`.
    pub async fn wait(
        &self,
        alertname: &str,
        what: &str,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let alerts: Vec<Value> = self
                .alerts()
                .await
                .into_iter()
                .filter(|a| a["labels"]["alertname"] == alertname)
                .collect();
            if check(&alerts) {
                return alerts;
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager: {what}; it has {alerts:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A webhook receiver that keeps every payload posted to it.
#[derive(Clone)]
pub struct Webhook {
    /// Its URL.
    pub url: String,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    /// Starts one on a free port.
    pub async fn start() -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let keep = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let keep = keep.clone();
                async move {
                    keep.lock().unwrap().push(body);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, received }
    }

    /// Every payload so far.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// `(status, alerts' statuses and instance/service/path labels)` of each message about
    /// `alertname`, in arrival order.
    pub fn messages(&self, alertname: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|m| m["groupLabels"]["alertname"] == alertname)
            .collect()
    }

    /// Polls until `check` holds for the messages about `alertname`.
    pub async fn wait(
        &self,
        alertname: &str,
        what: &str,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let messages = self.messages(alertname);
            if check(&messages) {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "webhook: {what}; it has {messages:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The alerting part of a test service's config: `rules`, 30 s default interval, a resend delay
/// of 5 m (so a firing alert's `endsAt` lies 20 m ahead and Alertmanager keeps it active while
/// the test clock lags real time), fast webhook retries.
pub fn alerting_config(
    data_dir: &Path,
    rules: &[&str],
    clock: &ManualClock,
    alertmanager: Option<&str>,
    webhook: Option<&str>,
) -> AlertingConfig {
    AlertingConfig {
        rule_files: rules.iter().map(|r| (*r).to_owned()).collect(),
        default_interval: Duration::from_secs(30),
        resend_delay: Duration::from_secs(300),
        lease_ttl: Duration::from_secs(15),
        external_url: Some("http://timebucket.test:8080".into()),
        notify: NotifyConfig {
            alertmanagers: alertmanager.into_iter().map(str::to_owned).collect(),
            webhooks: webhook.into_iter().map(str::to_owned).collect(),
            queue_capacity: 1000,
            timeout: Duration::from_secs(5),
            retry: RetryPolicy {
                first: Duration::from_millis(50),
                max: Duration::from_millis(500),
                attempts: 10,
            },
        },
        state_dir: data_dir.join("alerting"),
        clock: Arc::new(clock.clone()),
    }
}

/// `examples/rules.yml`.
pub fn example_rules() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/rules.yml")
        .display()
        .to_string()
}

/// The embedded-store service on `data_dir` with `alerting`.
pub fn service_config(data_dir: &Path, alerting: AlertingConfig) -> ServeConfig {
    ServeConfig {
        alerting,
        ..embedded_config(data_dir)
    }
}

/// Starts the service and waits until it is the evaluator (so the first slot is evaluated).
pub async fn start(config: ServeConfig, data_dir: tempfile::TempDir) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = spawn_with(config, data_dir, listener).await;
    let deadline = Instant::now() + WAIT;
    while metric(&app.url, "timebucket_alert_evaluator_leader").await != Some(1.0) {
        assert!(Instant::now() < deadline, "never became the evaluator");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app
}

/// The `data` of a Prometheus API answer at `url` + `path`.
pub async fn prom_data(url: &str, path: &str) -> Value {
    let body: Value = reqwest::get(format!("{url}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "success", "{path}: {body}");
    body["data"].clone()
}

/// RFC 3339 → epoch ms.
pub fn ms(rfc3339: &Value) -> i64 {
    TimestampMs::parse(rfc3339.as_str().unwrap())
        .unwrap()
        .millis()
}

/// Moves the clock to `at` and waits until every group has evaluated its last slot up to it.
pub async fn step_to(app: &TestApp, clock: &ManualClock, at: i64) {
    clock.set(TimestampMs::from_millis(at));
    let deadline = Instant::now() + WAIT;
    loop {
        let groups = prom_data(&app.url, "/api/v1/rules").await["groups"].clone();
        let done = groups.as_array().unwrap().iter().all(|g| {
            let interval = (g["interval"].as_f64().unwrap() * 1000.0) as i64;
            ms(&g["lastEvaluation"]) > at - interval
        });
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the groups did not evaluate up to {at}: {groups:#}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The alerts of `/api/v1/alerts` named `alertname`.
pub async fn alerts(app: &TestApp, alertname: &str) -> Vec<Value> {
    prom_data(&app.url, "/api/v1/alerts").await["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == alertname)
        .cloned()
        .collect()
}

/// Readings to post: API readings `(ms, path, code, duration_ms, count)` of `service` on
/// instance `i-1`, host readings as JSON objects.
pub fn api(service: &str, at: i64, path: &str, code: u16, duration_ms: f64, count: u32) -> Value {
    json!({"service": service, "instance": "i-1", "method": "GET", "path": path, "code": code,
           "duration_ms": duration_ms, "count": count, "timestamp": at})
}

/// The start of the test's time line: 20 minutes ago, on a whole minute, so every reading is
/// in the past (Alertmanager runs on real time) and within the accepted window.
pub fn twenty_minutes_ago() -> i64 {
    TimestampMs::now().millis().div_euclid(MINUTE) * MINUTE - 20 * MINUTE
}
