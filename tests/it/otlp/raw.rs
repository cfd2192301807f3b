//! OTLP bodies built here with the published protobuf types (or written as OTLP/JSON): bad
//! input, partial success, OTLP/JSON, and backpressure with a retried export.

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value as Any, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use reqwest::StatusCode;
use serde_json::{json, Value};
use timebucket::query::answer::StatsAnswer;

use super::counter;
use super::sdk::{python, script, Collector, Ports};
use crate::proxy::Proxy;
use crate::support::{cql_node, migrated_keyspace};

fn kv(key: &str, value: Any) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn now_ns() -> u64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64
}

/// A cumulative `http.server.request.duration` point of `service` (buckets ≤10 ms, ≤100 ms,
/// above), plus `extra` metrics.
fn request(
    service: &str,
    start_ns: u64,
    counts: [u64; 3],
    sum_s: f64,
    extra: Vec<Metric>,
) -> ExportMetricsServiceRequest {
    let point = HistogramDataPoint {
        attributes: vec![
            kv("http.request.method", Any::StringValue("GET".into())),
            kv("http.route", Any::StringValue("/items".into())),
            kv("http.response.status_code", Any::IntValue(200)),
        ],
        start_time_unix_nano: start_ns,
        time_unix_nano: now_ns(),
        count: counts.iter().sum(),
        sum: Some(sum_s),
        bucket_counts: counts.to_vec(),
        explicit_bounds: vec![0.01, 0.1],
        ..Default::default()
    };
    let histogram = Metric {
        name: "http.server.request.duration".into(),
        unit: "s".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![point],
            aggregation_temporality: 2,
        })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Any::StringValue(service.into()))],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: [vec![histogram], extra].concat(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn post(
    url: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/v1/metrics"))
        .header("content-type", content_type)
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    request.send().await.unwrap()
}

/// Sends `message` as a gRPC Export with Python's grpcio; its answer as JSON.
async fn grpc_raw(port: u16, message: &[u8]) -> Value {
    let hex: String = message.iter().map(|b| format!("{b:02x}")).collect();
    let out = tokio::process::Command::new(python())
        .arg(script("raw_grpc.py"))
        .arg(format!("127.0.0.1:{port}"))
        .arg(hex)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn count_of(collector: &Collector, service: &str) -> u64 {
    collector.flushed().await;
    let now = chrono::Utc::now().timestamp_millis();
    let query = format!(
        "/v1/stats?service={service}&from={}&to={}&step=100000d",
        now - 3_600_000,
        now + 600_000
    );
    let answer: StatsAnswer = serde_json::from_value(collector.get(&query).await).unwrap();
    answer
        .groups
        .iter()
        .flat_map(|g| &g.points)
        .map(|p| p.count)
        .sum()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// (case, Content-Type, Content-Encoding, body, status, what the message says)
type BadCase = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    StatusCode,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_clearly_over_both_transports_and_the_receiver_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), Ports::free()).await;
    let url = collector.ports.http_url();
    let truncated = {
        let full = gzip(&request("x", 1, [1, 0, 0], 0.001, vec![]).encode_to_vec());
        full[..full.len() / 2].to_vec()
    };
    let cases: [BadCase; 5] = [
        (
            "bad protobuf",
            "application/x-protobuf",
            None,
            vec![0xff; 9],
            StatusCode::BAD_REQUEST,
            "not a valid OTLP protobuf",
        ),
        (
            "bad JSON",
            "application/json",
            None,
            b"{\"resourceMetrics\": [".to_vec(),
            StatusCode::BAD_REQUEST,
            "not a valid OTLP/JSON",
        ),
        (
            "truncated gzip",
            "application/x-protobuf",
            Some("gzip"),
            truncated,
            StatusCode::BAD_REQUEST,
            "gzip",
        ),
        (
            "text",
            "text/plain",
            None,
            b"hello".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
        ),
        (
            "brotli",
            "application/x-protobuf",
            Some("br"),
            vec![1],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Encoding",
        ),
    ];
    for (name, content_type, encoding, body, status, says) in cases {
        let response = post(&url, content_type, encoding, body).await;
        assert_eq!(response.status(), status, "{name}");
        let json = content_type == "application/json";
        let bytes = response.bytes().await.unwrap();
        let message = if json {
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(body["code"], 3, "{name}: INVALID_ARGUMENT");
            body["message"].as_str().unwrap().to_owned()
        } else {
            tonic_types::pb::Status::decode(&bytes[..]).unwrap().message
        };
        assert!(message.contains(says), "{name}: {message}");
    }
    let answer = grpc_raw(collector.ports.grpc, &[0xff; 9]).await;
    assert_eq!(answer["code"], "INVALID_ARGUMENT", "{answer}");
    assert!(answer["details"]
        .as_str()
        .unwrap()
        .contains("not a valid OTLP protobuf"));

    // Still serving, both ways.
    let good = request("steady", now_ns(), [1, 1, 0], 0.03, vec![]).encode_to_vec();
    assert_eq!(
        post(&url, "application/x-protobuf", None, good)
            .await
            .status(),
        StatusCode::OK
    );
    let good = request("steady", now_ns(), [0, 0, 2], 0.5, vec![]).encode_to_vec();
    assert_eq!(
        grpc_raw(collector.ports.grpc, &good).await,
        json!({"code": "OK"})
    );
    assert_eq!(count_of(&collector, "steady").await, 4);
    let metrics = collector.metrics().await;
    assert_eq!(
        counter(
            &metrics,
            "timebucket_otlp_requests_total{transport=\"http\",status=\"400\"}"
        ),
        Some(3.0)
    );
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_and_protobuf_answer_partial_success_for_what_is_not_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), Ports::free()).await;
    let url = collector.ports.http_url();

    // OTLP/JSON as the specification writes it: 64-bit integers as strings, enums as numbers.
    let now = now_ns();
    let body = json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "jsonapp"}}]},
        "scopeMetrics": [{"scope": {"name": "manual"}, "metrics": [{
            "name": "http.server.request.duration", "unit": "s",
            "histogram": {"aggregationTemporality": 1, "dataPoints": [{
                "startTimeUnixNano": (now - 60_000_000_000).to_string(),
                "timeUnixNano": now.to_string(),
                "count": "5", "sum": 0.25,
                "bucketCounts": ["2", "3", "0"], "explicitBounds": [0.01, 0.1],
                "attributes": [
                    {"key": "http.request.method", "value": {"stringValue": "PUT"}},
                    {"key": "http.route", "value": {"stringValue": "/items/{id}"}},
                    {"key": "http.response.status_code", "value": {"intValue": "204"}}]}]}}]}]}]});
    let response = post(
        &url,
        "application/json",
        None,
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer.get("partialSuccess").is_none_or(Value::is_null),
        "{answer}"
    );
    assert_eq!(count_of(&collector, "jsonapp").await, 5);

    // The specification's own example request: four metrics, none of them a convention we map.
    let example = include_str!("../../../src/foreign/otlp/testdata/metrics.json")
        .replace("1544712660300000000", &now_ns().to_string());
    let response = post(&url, "application/json", None, example.into_bytes()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    let partial = &answer["partialSuccess"];
    assert_eq!(
        partial["rejectedDataPoints"].to_string().trim_matches('"'),
        "4",
        "{answer}"
    );
    assert!(partial["errorMessage"]
        .as_str()
        .unwrap()
        .contains("metric `my.counter`"));

    // Protobuf: the histogram is taken, the unknown gauge is counted as rejected.
    let gauge = Metric {
        name: "queue.depth".into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: now_ns(),
                value: Some(number_data_point::Value::AsInt(12)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let body = request("protoapp", now_ns(), [3, 0, 0], 0.006, vec![gauge]).encode_to_vec();
    let response = post(&url, "application/x-protobuf", Some("identity"), body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer = ExportMetricsServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("metric `queue.depth`"),
        "{}",
        partial.error_message
    );
    assert_eq!(count_of(&collector, "protoapp").await, 3);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_export_is_counted_exactly_once_when_the_exporter_retries() {
    let proxy = Proxy::start(cql_node()).await;
    let keyspace = migrated_keyspace().await;
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_with(dir.path(), Ports::free(), |config| {
        config.store = timebucket::server::StoreTarget::Cql {
            nodes: vec![proxy.addr.to_string()],
            keyspace,
        };
        config.accept.max_backlog_bytes = 1;
    })
    .await;
    let url = collector.ports.http_url();
    let started = now_ns();
    let first = request("retried", started, [2, 1, 0], 0.07, vec![]).encode_to_vec();
    assert_eq!(
        post(&url, "application/x-protobuf", None, first)
            .await
            .status(),
        StatusCode::OK
    );
    collector.flushed().await;

    // The store goes away; one accepted body puts the WAL past its (1-byte) backlog limit.
    proxy.cut();
    let filler = request("filler", now_ns(), [1, 0, 0], 0.001, vec![]).encode_to_vec();
    assert_eq!(
        post(&url, "application/x-protobuf", None, filler)
            .await
            .status(),
        StatusCode::OK
    );
    let second = request("retried", started, [5, 3, 1], 1.2, vec![]).encode_to_vec();
    let refused = post(&url, "application/x-protobuf", None, second.clone()).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "5");
    let status = tonic_types::pb::Status::decode(refused.bytes().await.unwrap()).unwrap();
    assert!(status.message.contains("behind"), "{}", status.message);
    let answer = grpc_raw(collector.ports.grpc, &second).await;
    assert_eq!(answer["code"], "UNAVAILABLE", "{answer}");
    assert_eq!(answer["retry_delay_s"], 5, "{answer}");

    // The store is back: the exporter's retry of the same point counts what was refused, once.
    proxy.restore();
    collector.flushed().await;
    let retried = post(&url, "application/x-protobuf", None, second.clone()).await;
    assert_eq!(retried.status(), StatusCode::OK);
    collector.flushed().await;
    let resent = post(&url, "application/x-protobuf", None, second).await;
    assert_eq!(
        resent.status(),
        StatusCode::OK,
        "a resend is acknowledged ..."
    );
    assert_eq!(
        count_of(&collector, "retried").await,
        9,
        "... and not counted again"
    );
    collector.stop().await;
}
