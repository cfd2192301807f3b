//! Fixtures of the scrape tests: the real `timebucket serve` as a child process, targets served
//! by the official Python client, and small in-test targets that misbehave on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use serde::de::DeserializeOwned;
use timebucket::query::answer::{LatestAnswer, StatsAnswer};
use timebucket::scrape::status::TargetsAnswer;
use tokio::net::TcpListener;

/// How long any condition may take to become true.
pub const WAIT: Duration = Duration::from_secs(60);

/// A running `timebucket serve --scrape-config` (embedded store); killed when dropped.
pub struct Collector {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Collector {
    /// Writes `config` as the scrape config and starts the binary with `extra` flags.
    pub async fn start(config: &str, extra: &[&str]) -> Collector {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("scrape.yml"), config).unwrap();
        Self::start_in(dir, extra).await
    }

    /// Starts the binary on a scrape config already written to `dir/scrape.yml`.
    pub async fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Collector {
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_timebucket"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TIMEBUCKET_") {
                command.env_remove(name);
            }
        }
        let child = command
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--scrape-config")
            .arg(dir.path().join("scrape.yml"))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut collector = Collector {
            child,
            url: String::new(),
            dir,
            client: reqwest::Client::new(),
        };
        collector.url = format!("http://{}", collector.wait_for_address());
        collector
    }

    /// The address from the "listening" log line.
    fn wait_for_address(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("timebucket exited ({status}); its log:\n{}", self.log());
            }
            for line in self.log().lines() {
                let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                if entry["fields"]["message"] == "listening" {
                    return entry["fields"]["address"].as_str().unwrap().to_owned();
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "timebucket did not start listening; its log:\n{}",
            self.log()
        )
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// The scrape config file it reads.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("scrape.yml")
    }

    /// Its folder (config, target files, data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// GETs `path` and decodes the JSON answer; `None` unless 200.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Option<T> {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .ok()?;
        if response.status() != StatusCode::OK {
            return None;
        }
        Some(response.json().await.unwrap())
    }

    /// `GET /v1/targets`.
    pub async fn targets(&self) -> TargetsAnswer {
        self.get("/v1/targets").await.expect("/v1/targets answers")
    }

    /// Polls `/v1/targets` until `check` holds.
    pub async fn wait_targets(
        &self,
        what: &str,
        check: impl Fn(&TargetsAnswer) -> bool,
    ) -> TargetsAnswer {
        let deadline = Instant::now() + WAIT;
        loop {
            let answer = self.targets().await;
            if check(&answer) {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not true after {WAIT:?}: {answer:#?}\nlog:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every target of `job` has completed `n` more scrapes than now.
    pub async fn wait_scrapes(&self, job: &str, n: u64) {
        let now = self.targets().await;
        let base: BTreeMap<String, u64> = now
            .active_targets
            .iter()
            .filter(|t| t.job == job)
            .map(|t| (t.url.clone(), t.scrapes_total))
            .collect();
        self.wait_targets(&format!("{n} more scrapes of job {job}"), |a| {
            a.active_targets
                .iter()
                .filter(|t| t.job == job)
                .all(|t| t.scrapes_total >= base.get(&t.url).copied().unwrap_or(0) + n)
        })
        .await;
    }

    /// Requests per `(method, path, code)` stored for `service` in the last hour.
    pub async fn counts(&self, service: &str) -> BTreeMap<(String, String, u16), (u64, f64)> {
        let to = timebucket::model::TimestampMs::now().millis() + 60_000;
        let from = to - 3_600_000;
        let path = format!(
            "/v1/stats?service={service}&from={from}&to={to}&step=2h&group_by=method,path,code"
        );
        let Some(answer) = self.get::<StatsAnswer>(&path).await else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for group in answer.groups {
            let key = (
                group.key.method.unwrap_or_default(),
                group.key.path.unwrap_or_default(),
                group.key.code.unwrap_or_default(),
            );
            let count: u64 = group.points.iter().map(|p| p.count).sum();
            let weighted: f64 = group
                .points
                .iter()
                .map(|p| p.mean_ms * p.count as f64)
                .sum();
            out.insert(key, (count, weighted / count.max(1) as f64));
        }
        out
    }

    /// Polls the stored counts of `service` until they equal `want` (counts only).
    pub async fn wait_counts(
        &self,
        service: &str,
        want: &[((&str, &str, u16), u64)],
    ) -> BTreeMap<(String, String, u16), (u64, f64)> {
        let want: BTreeMap<(String, String, u16), u64> = want
            .iter()
            .map(|((m, p, c), n)| (((*m).to_owned(), (*p).to_owned(), *c), *n))
            .collect();
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.counts(service).await;
            let counts: BTreeMap<_, _> = got.iter().map(|(k, v)| (k.clone(), v.0)).collect();
            if counts == want {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "stored counts of {service}: {counts:?}, want {want:?}\nlog:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /v1/latest?service=...`.
    pub async fn latest(&self, service: &str) -> Option<LatestAnswer> {
        self.get(&format!("/v1/latest?service={service}")).await
    }

    /// Polls until the latest host reading of `service`/`instance` says `available == up`.
    pub async fn wait_available(&self, service: &str, instance: &str, up: bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let latest = self.latest(service).await;
            let available = latest.as_ref().and_then(|l| {
                l.host
                    .iter()
                    .find(|h| h.instance == instance)
                    .and_then(|h| h.gauges.available)
            });
            if available == Some(up) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{service}/{instance} available={up}: got {latest:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Sends SIGHUP.
    pub fn sighup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `POST /-/reload`: the status and the body.
    pub async fn post_reload(&self) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(format!("{}/-/reload", self.url))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the `/metrics` sample `name{labels}` (labels as written, in order), or 0.
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A target served by the official Python client (`tests/scrape/target.py`).
pub struct PyTarget {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Its port.
    pub port: u16,
}

impl PyTarget {
    /// Starts the script on `port` (0: any) exposing `families` (comma-separated of
    /// histogram, counter, summary).
    pub fn start(port: u16, families: &str) -> PyTarget {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let python = root.join(".tools/venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/tools python (it installs prometheus-client into .tools/venv)",
            python.display()
        );
        let mut child = Command::new(python)
            .arg(root.join("tests/scrape/target.py"))
            .args([port.to_string(), families.to_owned()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line
            .strip_prefix("port ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("target.py did not start: {line:?}"));
        PyTarget {
            child,
            stdin,
            stdout,
            port,
        }
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Records `n` requests of `seconds` each.
    pub fn request(&mut self, method: &str, path: &str, code: u16, seconds: f64, n: u32) {
        writeln!(self.stdin, "request {method} {path} {code} {seconds} {n}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ok");
    }
}

impl Drop for PyTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `router` on a free port; returns `host:port`.
pub async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

/// A target that accepts connections and never answers; returns `host:port`.
pub async fn hanging_target() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    address
}

/// A target answering every request with `status` and `body`.
pub async fn fixed_target(status: StatusCode, body: &'static str) -> String {
    serve(Router::new().route("/metrics", get(move || async move { (status, body) }))).await
}

/// Who scraped a target: the User-Agent of every request.
pub type Scrapers = Arc<Mutex<Vec<String>>>;

/// A target serving `text` and recording who scraped it.
pub async fn recording_target(text: &'static str) -> (String, Scrapers) {
    let seen: Scrapers = Arc::default();
    let log = seen.clone();
    let router = Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let log = log.clone();
            async move {
                let agent = headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                log.lock().unwrap().push(agent);
                text
            }
        }),
    );
    (serve(router).await, seen)
}

/// The distinct scrapers of a recording target.
pub fn distinct(seen: &Scrapers) -> BTreeSet<String> {
    seen.lock().unwrap().iter().cloned().collect()
}
