//! Hostile and unusual bodies over HTTP: each is either read whole or refused whole with a 400
//! that names what is wrong, and none costs more than its size. On the embedded store (the
//! parsing does not depend on the store).

use std::io::Write;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{embedded_config, spawn_with, TestApp};

async fn app() -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let config = embedded_config(data_dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_with(config, data_dir, listener).await
}

fn reading(path: &str) -> Value {
    json!({"service": "bodies", "instance": "i-1", "method": "GET", "path": path,
           "code": 200, "duration_ms": 1.5})
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

async fn post(app: &TestApp, content_type: &str, gzip: bool, body: Vec<u8>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/metrics", app.url))
        .header("content-type", content_type)
        .timeout(Duration::from_secs(60))
        .body(body);
    if gzip {
        request = request.header("content-encoding", "gzip");
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The `(field, problem)` pairs of a 400's details.
fn details(answer: &Value) -> Vec<(String, String)> {
    answer["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details in {answer}"))
        .iter()
        .map(|d| {
            (
                d["field"].as_str().unwrap().to_owned(),
                d["problem"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_gzip_member_is_read_and_trailing_bytes_are_refused() {
    let app = app().await;
    let line = |path: &str| {
        let mut r = reading(path);
        r["kind"] = json!("api");
        format!("{r}\n")
    };
    // `cat a.gz b.gz`: two members, one reading each.
    let two = [gzip(line("/a").as_bytes()), gzip(line("/b").as_bytes())].concat();
    let (status, answer) = post(&app, "application/x-ndjson", true, two.clone()).await;
    assert_eq!(
        (status, answer),
        (StatusCode::ACCEPTED, json!({"accepted": 2}))
    );
    let trailing = [two, b"tail".to_vec()].concat();
    let (status, answer) = post(&app, "application/x-ndjson", true, trailing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("after the end"),
        "{answer}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn repeated_keys_bad_timestamps_and_deceptive_names_are_refused_by_name() {
    let app = app().await;
    let one = reading("/one").to_string();
    let cases: Vec<(&str, String, (&str, &str))> = vec![
        (
            "a list given twice",
            format!(r#"{{"api": [{one}], "api": [{one}]}}"#),
            ("api", "given more than once"),
        ),
        (
            "a field given twice",
            format!(
                r#"{{"api": [{}]}}"#,
                one.replacen('{', r#"{"service": "shadow", "#, 1)
            ),
            ("service", "given more than once"),
        ),
        (
            "the largest epoch ms",
            json!({"api": [{"timestamp": i64::MAX, "service": "bodies", "instance": "i-1",
                            "method": "GET", "path": "/t", "code": 200, "duration_ms": 1}]})
            .to_string(),
            (
                "timestamp",
                "9223372036854775807 (epoch ms) is too far in the future",
            ),
        ),
        (
            "a right-to-left override",
            json!({"api": [{"service": "checkout\u{202E}", "instance": "i-1", "method": "GET",
                            "path": "/t", "code": 200, "duration_ms": 1}]})
            .to_string(),
            ("service", "direction-changing"),
        ),
        (
            "a zero-width space",
            json!({"api": [{"service": "check\u{200B}out", "instance": "i-1", "method": "GET",
                            "path": "/t", "code": 200, "duration_ms": 1}]})
            .to_string(),
            ("service", "invisible"),
        ),
    ];
    for (name, body, (field, problem)) in cases {
        let (status, answer) = post(&app, "application/json", false, body.into_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {answer}");
        assert!(
            details(&answer)
                .iter()
                .any(|(f, p)| f == field && p.contains(problem)),
            "{name}: {answer}"
        );
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn bodies_that_would_cost_far_more_than_their_size_are_refused_cheaply() {
    let app = app().await;
    // Two million bad readings (4 MB): the answer lists 100 of them and counts the rest.
    let zeros = format!("{{\"api\": [{}0]}}", "0,".repeat(1_999_999));
    let (status, answer) = post(&app, "application/json", false, zeros.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(details(&answer).len(), 100);
    assert_eq!(
        answer["error"],
        "2000000 invalid field(s) (100 listed, 1999900 more not); nothing was accepted"
    );
    // An object of 200,000 keys: refused at the 65th, not checked pairwise.
    let keys: Vec<String> = (0..200_000).map(|i| format!("\"k{i}\": 0")).collect();
    let wide = format!("{{\"api\": [{{{}}}]}}", keys.join(","));
    let (status, answer) = post(&app, "application/json", false, wide.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("more than 64 keys"),
        "{answer}"
    );
    // Still serving.
    let good = json!({"api": [reading("/fine")]}).to_string();
    let (status, _) = post(&app, "application/json", false, good.into_bytes()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.stop().await.unwrap();
}
