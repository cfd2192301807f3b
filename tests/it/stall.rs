//! A CQL node that stops answering (a proxy that holds every byte, so the shared node never
//! stops): queries answer 503 naming `--query-request-timeout` instead of hanging for the
//! driver's timeout, `/readyz` reports the flush that hangs, and once the node answers again
//! every accepted reading is stored exactly once.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use timebucket::query::QueryLimits;
use timebucket::server::ServeConfig;

use crate::proxy::Proxy;
use crate::support::{
    cql_node, eventually_stored, migrated_keyspace, serve_config, session, spawn_with,
};

/// How long a client waits for any answer: well past the timeouts under test, well short of
/// the driver's 30 s request timeout a hanging request would otherwise wait for.
const CLIENT_PATIENCE: Duration = Duration::from_secs(12);

async fn post(client: &reqwest::Client, url: &str, tag: &str) -> Vec<String> {
    let t = chrono::Utc::now().timestamp_millis();
    let paths: Vec<String> = (0..10).map(|n| format!("/{tag}/{n}")).collect();
    let readings: Vec<_> = paths
        .iter()
        .map(|p| json!({"service": "stall", "instance": "i", "method": "GET", "path": p, "code": 200, "duration_ms": 1, "timestamp": t}))
        .collect();
    let response = client
        .post(format!("{url}/v1/metrics"))
        .json(&json!({ "api": readings }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_times_queries_out_and_shows_the_hung_flush() {
    let keyspace = migrated_keyspace().await;
    let proxy = Proxy::start(cql_node()).await;
    let data_dir = tempfile::tempdir().unwrap();
    let defaults = serve_config(
        vec![proxy.addr.to_string()],
        keyspace.clone(),
        data_dir.path(),
    );
    let config = ServeConfig {
        query: QueryLimits {
            request_timeout: Duration::from_secs(1),
            ..QueryLimits::default()
        },
        flush_stall_timeout: Duration::from_secs(1),
        ..defaults
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = spawn_with(config, data_dir, listener).await;
    let client = reqwest::Client::builder()
        .timeout(CLIENT_PATIENCE)
        .build()
        .unwrap();
    let mut acked = post(&client, &app.url, "before").await;
    let session = session().await;
    eventually_stored(
        &session,
        &keyspace,
        Duration::from_secs(30),
        "before the stall",
        |rows| rows.len() == 10,
    )
    .await;

    proxy.stall();
    acked.extend(post(&client, &app.url, "during").await);
    let query = client
        .get(format!("{}/v1/latest?service=stall", app.url))
        .send()
        .await
        .expect("a query on a stalled store is answered, not held");
    assert_eq!(query.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = query.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--query-request-timeout"),
        "{body}"
    );

    // The flush of the readings posted during the stall hangs; readiness says so.
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let ready = client
            .get(format!("{}/readyz", app.url))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = ready.json().await.unwrap();
        if body["problems"]
            .to_string()
            .contains("--flush-stall-timeout")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never reported the hung flush: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    proxy.restore();
    let rows = eventually_stored(
        &session,
        &keyspace,
        Duration::from_secs(60),
        "after the stall",
        |rows| rows.len() >= acked.len(),
    )
    .await;
    let mut paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    let mut expected: Vec<&str> = acked.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(
        paths, expected,
        "every accepted reading stored exactly once"
    );
    app.stop().await.unwrap();
}
