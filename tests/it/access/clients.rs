//! The clients against a service with tokens and TLS: the capture layer, the host agent and
//! `timebucket query` reach it over https:// with a CA file and their token, and are refused
//! (saying why) without it.

use std::time::{Duration, Instant};

use axum::http::Method;
use timebucket::access::TlsFiles;
use timebucket::agent::{self, AgentConfig};
use timebucket::capture::{Capture, CaptureConfig, RequestRecord, RoutePath};
use timebucket::client::auth::ClientAuth;
use timebucket::model::ServiceName;

use super::support::SecuredApp;
use crate::support::timebucket_command;

/// A service over TLS with a self-signed certificate, and the CA file that certificate is.
async fn tls_app(dir: &std::path::Path) -> (SecuredApp, std::path::PathBuf) {
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    std::fs::write(&files.cert, made.cert.pem()).unwrap();
    std::fs::write(&files.key, made.key_pair.serialize_pem()).unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let app = SecuredApp::start_with(Some((files.clone(), client))).await;
    (app, files.cert)
}

async fn wait_for_accepted(app: &SecuredApp, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.accepted().await < at_least {
        assert!(
            Instant::now() < deadline,
            "fewer than {at_least} readings arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_capture_layer_and_the_agent_push_over_tls_with_their_token() {
    let dir = tempfile::tempdir().unwrap();
    let (app, ca) = tls_app(dir.path()).await;
    let writer = ClientAuth::new(Some(app.keys.writer.reveal()), None, Some(&ca)).unwrap();

    let mut config = CaptureConfig::new("checkout", "pod-1", &app.api).unwrap();
    config.auth = writer.clone();
    config.interval = Duration::from_millis(200);
    let capture = Capture::start(config).unwrap();
    for _ in 0..3 {
        capture.recorder().record(RequestRecord {
            method: Method::GET,
            route: RoutePath::Template("/cart/{id}"),
            status: 200,
            elapsed: Duration::from_millis(4),
            ended: std::time::Instant::now(),
        });
    }
    let stats = capture.shutdown(Duration::from_secs(10)).await;
    assert_eq!((stats.requests, stats.delivered), (3, 3), "{stats:?}");

    let agent = AgentConfig {
        service: ServiceName::parse("checkout").unwrap(),
        instance: None,
        push: app.api.clone(),
        interval: Duration::from_millis(200),
        pid: None,
        disk: dir.path().to_owned(),
        auth: writer,
    };
    let stats = agent::run(agent, tokio::time::sleep(Duration::from_millis(1500)))
        .await
        .unwrap();
    assert!(
        stats.delivered >= 1 && stats.failed_pushes == 0,
        "{stats:?}"
    );
    wait_for_accepted(&app, 1.0 + stats.delivered as f64).await;

    // Without the token (or with a reader's), nothing is delivered, and the agent says why.
    let mut refused = CaptureConfig::new("checkout", "pod-2", &app.api).unwrap();
    refused.auth = ClientAuth::new(Some(app.keys.reader.reveal()), None, Some(&ca)).unwrap();
    refused.interval = Duration::from_millis(200);
    let capture = Capture::start(refused).unwrap();
    capture.recorder().record(RequestRecord {
        method: Method::GET,
        route: RoutePath::Template("/cart/{id}"),
        status: 200,
        elapsed: Duration::from_millis(4),
        ended: std::time::Instant::now(),
    });
    let stats = capture.shutdown(Duration::from_secs(5)).await;
    assert_eq!((stats.delivered, stats.dropped_unsent), (0, 1), "{stats:?}");
    app.stop().await;
}

#[tokio::test]
async fn timebucket_query_asks_over_tls_with_the_token_of_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (app, ca) = tls_app(dir.path()).await;
    let written = app
        .client
        .post(format!("{}/v1/metrics", app.api))
        .bearer_auth(app.keys.writer.reveal())
        .json(&super::support::body(&["checkout"]))
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), 202);
    wait_for_accepted(&app, 1.0).await;
    // The service runs on this test's runtime: the binary is awaited, never waited for.
    let query = |token: Option<&str>| {
        let mut command = timebucket_command();
        command.args([
            "query",
            "latest",
            "--service",
            "checkout",
            "--url",
            &app.api,
            "--ca-file",
        ]);
        command.arg(&ca);
        if let Some(token) = token {
            command.env("TIMEBUCKET_TOKEN", token);
        }
        tokio::process::Command::from(command).output()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = query(Some(app.keys.reader.reveal())).await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() && stdout.contains("checkout") {
            break;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(Instant::now() < deadline, "query failed: {stdout}{stderr}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let output = query(None).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("401") && stderr.contains("a token is needed"),
        "{stderr}"
    );
    // Without the CA file the certificate is not trusted.
    let mut untrusting = timebucket_command();
    untrusting
        .args(["query", "latest", "--url", &app.api])
        .env("TIMEBUCKET_TOKEN", app.keys.reader.reveal());
    let output = tokio::process::Command::from(untrusting)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    app.stop().await;
}
