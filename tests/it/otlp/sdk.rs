//! Fixtures of the OTLP tests: `timebucket serve` in this process with both receivers on the
//! embedded store, and an app instrumented with the official OpenTelemetry Python SDK
//! (`tests/otlp/export.py`), configured only through the standard `OTEL_*` variables.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::support::{fresh_keyspace, serve_config};

/// The Python of the project's tools virtualenv; a missing one fails the test with the fix.
pub fn python() -> PathBuf {
    crate::support::tools_python("the OpenTelemetry SDK these tests drive")
}

/// A script of `tests/otlp/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/otlp")
        .join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The ports of one service: query API, OTLP/HTTP, OTLP/gRPC.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub api: u16,
    pub http: u16,
    pub grpc: u16,
}

impl Ports {
    pub fn free() -> Self {
        Self {
            api: free_port(),
            http: free_port(),
            grpc: free_port(),
        }
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }
}

/// `timebucket serve` on the embedded store in `data_dir`, with both OTLP receivers.
pub struct Collector {
    pub ports: Ports,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), timebucket::server::ServeError>>>,
}

impl Collector {
    pub async fn start(data_dir: &Path, ports: Ports) -> Self {
        Self::start_with(data_dir, ports, |_| {}).await
    }

    pub async fn start_with(
        data_dir: &Path,
        ports: Ports,
        adjust: impl FnOnce(&mut timebucket::server::ServeConfig),
    ) -> Self {
        let mut config = serve_config(Vec::new(), fresh_keyspace(), data_dir);
        config.otlp = timebucket::server::OtlpListen {
            http: Some(([127, 0, 0, 1], ports.http).into()),
            grpc: Some(([127, 0, 0, 1], ports.grpc).into()),
        };
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", ports.api))
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(timebucket::server::run(config, listener, async {
            let _ = stopped.await;
        }));
        let mut collector = Self {
            ports,
            stop: Some(stop),
            task: Some(task),
        };
        collector.wait_until_up().await;
        collector
    }

    async fn wait_until_up(&mut self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                let outcome = self.task.take().unwrap().await;
                panic!("the service stopped during start: {outcome:?}");
            }
            if let Ok(r) = client
                .get(format!("{}/healthz", self.ports.api_url()))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service did not come up");
    }

    /// Stops gracefully: every acknowledged export is in the WAL (and, within the shutdown
    /// deadline, in the store).
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }

    /// `GET path` on the query API, as JSON.
    pub async fn get(&self, path_and_query: &str) -> Value {
        let response = reqwest::get(format!("{}{path_and_query}", self.ports.api_url()))
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(status.is_success(), "{path_and_query}: {status} {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until every acknowledged reading is in the store (the WAL backlog is empty).
    pub async fn flushed(&self) {
        for _ in 0..600 {
            let metrics = self.metrics().await;
            if crate::otlp::counter(&metrics, "timebucket_wal_backlog_bytes ") == Some(0.0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the WAL backlog did not drain within 60 s");
    }

    /// The service's `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.ports.api_url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// An app instrumented with the Python SDK, one command at a time.
pub struct Sdk {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Sdk {
    /// Starts `export.py` with these `OTEL_*` variables (and no others of ours).
    pub fn start(env: &[(&str, String)]) -> Self {
        let mut command = Command::new(python());
        command.arg(script("export.py"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OTEL_") {
                command.env_remove(name);
            }
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            stdout,
        }
    }

    async fn send(&mut self, command: Value) -> Value {
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(120), self.stdout.next_line())
            .await
            .expect("the SDK did not answer within 120 s")
            .unwrap()
            .unwrap_or_else(|| panic!("the SDK exited after {command}"));
        serde_json::from_str(&answer).unwrap()
    }

    /// Records request durations (seconds) of one route in `http.server.request.duration`.
    pub async fn record(&mut self, method: &str, route: &str, code: u16, seconds: &[f64]) {
        let command = json!({"op": "record", "method": method, "route": route, "code": code,
                             "seconds": seconds});
        assert_eq!(self.send(command).await, json!({"ok": true}));
    }

    /// Sets what the host instruments report.
    pub async fn host(&mut self, host: Value) {
        let mut command = host;
        command["op"] = json!("host");
        assert_eq!(self.send(command).await, json!({"ok": true}));
    }

    /// Adds to a counter no convention maps.
    pub async fn count(&mut self, name: &str, value: u64) {
        let command = json!({"op": "count", "name": name, "value": value});
        assert_eq!(self.send(command).await, json!({"ok": true}));
    }

    /// Collects and exports now; panics unless the exporter reported success.
    pub async fn export(&mut self) {
        assert_eq!(
            self.send(json!({"op": "export"})).await,
            json!({"exported": true}),
            "the exporter reported a failed export"
        );
    }

    /// Shuts the SDK down (its final export included) and waits for the process.
    pub async fn exit(mut self) {
        assert_eq!(self.send(json!({"op": "exit"})).await, json!({"ok": true}));
        let status = self.child.wait().await.unwrap();
        assert!(status.success(), "export.py exited with {status}");
    }
}

/// The `OTEL_*` variables of an app `service`/`instance` exporting to `endpoint`.
pub fn otel_env(
    protocol: &str,
    endpoint: String,
    service: &str,
    instance: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_SERVICE_NAME", service.to_owned()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            format!("service.instance.id={instance},deployment.environment=test"),
        ),
    ]
}
