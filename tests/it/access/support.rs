//! Fixtures of the access tests: `serve` in this process on the embedded store (no CQL node
//! needed) with a tokens file, both OTLP receivers, and a token of each kind.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use timebucket::access::{
    tokens_file, AccessConfig, Scopes, TlsFiles, Token, TokenLimits, TokenSpec,
};
use timebucket::model::ServiceName;

use crate::support::embedded_config;

/// One token of each kind the tests need.
pub struct Keys {
    /// write, every service
    pub writer: Token,
    /// write, checkout only
    pub checkout_writer: Token,
    /// read, every service
    pub reader: Token,
    /// read, checkout only
    pub checkout_reader: Token,
    /// admin
    pub admin: Token,
    /// A token no one configured.
    pub stranger: Token,
    /// write, limited: 1 reading per second (burst 6), 2 series per service per bucket
    pub limited: Token,
}

impl Keys {
    fn new() -> Self {
        let token = || Token::generate().unwrap();
        Self {
            writer: token(),
            checkout_writer: token(),
            reader: token(),
            checkout_reader: token(),
            admin: token(),
            stranger: token(),
            limited: token(),
        }
    }

    fn specs(&self) -> Vec<TokenSpec> {
        let checkout = || Some([ServiceName::parse("checkout").unwrap()].into());
        let spec = |name: &str, token: &Token, scope: &str| TokenSpec {
            name: name.into(),
            scopes: Scopes::parse([scope]).unwrap(),
            services: None,
            hash: token.hash(),
            limits: TokenLimits::default(),
        };
        vec![
            spec("writer", &self.writer, "write"),
            TokenSpec {
                services: checkout(),
                ..spec("checkout-writer", &self.checkout_writer, "write")
            },
            spec("reader", &self.reader, "read"),
            TokenSpec {
                services: checkout(),
                ..spec("checkout-reader", &self.checkout_reader, "read")
            },
            spec("admin", &self.admin, "admin"),
            TokenSpec {
                limits: TokenLimits {
                    readings_per_second: std::num::NonZeroU32::new(1),
                    burst: std::num::NonZeroU32::new(6),
                    max_series_per_bucket: std::num::NonZeroU32::new(2),
                },
                ..spec("limited", &self.limited, "write")
            },
        ]
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `serve` with tokens, in this process.
pub struct SecuredApp {
    /// `http://127.0.0.1:PORT` of the API.
    pub api: String,
    /// `http://127.0.0.1:PORT` of OTLP/HTTP.
    pub otlp_http: String,
    /// `http://127.0.0.1:PORT` of OTLP/gRPC.
    pub otlp_grpc: String,
    /// The tokens file (the running tokens come from it).
    pub tokens_file: PathBuf,
    /// The tokens.
    pub keys: Keys,
    /// A client that trusts its certificate (any client without TLS).
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), timebucket::server::ServeError>>>,
}

impl SecuredApp {
    /// Starts it and waits until `/healthz` answers.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts it, over TLS with `tls` (the files and a client that trusts them), and waits
    /// until `/healthz` answers.
    pub async fn start_with(tls: Option<(TlsFiles, reqwest::Client)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::new();
        let tokens_file = dir.path().join("tokens.toml");
        let text: Vec<String> = keys.specs().iter().map(tokens_file::render).collect();
        std::fs::write(&tokens_file, text.join("\n")).unwrap();
        let mut config = embedded_config(dir.path());
        let (files, client) = match tls {
            Some((files, client)) => (Some(files), client),
            None => (None, reqwest::Client::new()),
        };
        let scheme = if files.is_some() { "https" } else { "http" };
        config.access = AccessConfig {
            tokens_file: Some(tokens_file.clone()),
            tokens: tokens_file::load(&tokens_file).unwrap(),
            tls: files,
            ..AccessConfig::default()
        };
        let (http, grpc) = (free_port(), free_port());
        config.otlp = timebucket::server::OtlpListen {
            http: Some(SocketAddr::from(([127, 0, 0, 1], http))),
            grpc: Some(SocketAddr::from(([127, 0, 0, 1], grpc))),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("{scheme}://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(timebucket::server::run(config, listener, async {
            let _ = stopped.await;
        }));
        let app = Self {
            api,
            otlp_http: format!("{scheme}://127.0.0.1:{http}"),
            otlp_grpc: format!("{scheme}://127.0.0.1:{grpc}"),
            tokens_file,
            keys,
            client: client.clone(),
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
        };
        for _ in 0..200 {
            assert!(
                !app.task.as_ref().unwrap().is_finished(),
                "serve stopped during start"
            );
            let up = client.get(format!("{}/healthz", app.api)).send().await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return app;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service did not come up");
    }

    /// Stops it.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }

    /// `timebucket_readings_accepted_total`, read with the reader token.
    pub async fn accepted(&self) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.api))
            .bearer_auth(self.keys.reader.reveal())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metric(&text, "timebucket_readings_accepted_total").unwrap_or(0.0)
    }
}

impl Drop for SecuredApp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The value of the first sample of `metrics` whose line starts with `prefix`.
pub fn metric(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A JSON ingest body: one host reading for each of `services`, now.
pub fn body(services: &[&str]) -> Value {
    let host: Vec<Value> = services
        .iter()
        .map(|s| json!({"service": s, "instance": "i-1", "cpu_percent": 12.5, "available": true}))
        .collect();
    json!({ "host": host })
}

/// An OTLP/JSON export: one resource of `service` (which becomes one host reading).
pub fn otlp_json(service: &str) -> Value {
    json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeMetrics": []
    }]})
}

/// The same export as a gRPC message frame (protobuf, uncompressed).
pub fn otlp_grpc_frame(service: &str) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value as Any, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(Any::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }],
    };
    let message = request.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&message);
    frame
}

/// The gRPC status of an OTLP/gRPC Export call with `token`, when the server answered
/// trailers-only (every refusal is); `None` for an answer with a body (success).
pub async fn grpc_export(url: &str, token: Option<&str>, service: &str) -> Option<String> {
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    grpc_export_with(&client, url, token, service).await
}

/// [`grpc_export`] with `client` (one speaking HTTP/2: with prior knowledge, or over TLS).
pub async fn grpc_export_with(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    service: &str,
) -> Option<String> {
    let mut request = client
        .post(format!(
            "{url}/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(otlp_grpc_frame(service));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "gRPC answers HTTP 200");
    let status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    // Read the body to its end, so the call completes.
    let _ = response.bytes().await;
    status
}
