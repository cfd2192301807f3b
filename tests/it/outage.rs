//! `serve` started while the CQL cluster is unreachable (a real process behind a proxy that is
//! cut, so the shared node never stops): it accepts ingest into the WAL at once, `/readyz` says
//! why it is not ready, and once the cluster is reachable every accepted reading is stored exactly
//! once. A restart during a second outage starts with the settings cached in the data dir.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::crash::{free_port, wait_healthy};
use crate::proxy::Proxy;
use crate::support::{cql_node, eventually_stored, migrated_keyspace, session};

/// The service process; killed if the test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(proxy: &Proxy, keyspace: &str, data_dir: &std::path::Path, port: u16) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_timebucket"))
        .env_remove("TIMEBUCKET_CQL_NODES")
        .args(["serve", "--keyspace", keyspace])
        .args(["--cql-nodes", &proxy.addr.to_string()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--wal-segment-bytes",
            "262144",
            "--max-body-bytes",
            "131072",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Running(child)
}

/// Posts `count` readings, one body of 10 each, paths `/{tag}/{n}`; every post must get 202.
async fn post_readings(url: &str, tag: &str, count: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let t = chrono::Utc::now().timestamp_millis();
    let paths: Vec<String> = (0..count).map(|n| format!("/{tag}/{n}")).collect();
    for chunk in paths.chunks(10) {
        let readings: Vec<_> = chunk
            .iter()
            .map(|p| json!({"service": "outage", "instance": "i", "method": "GET", "path": p, "code": 200, "duration_ms": 1, "timestamp": t}))
            .collect();
        let response = client
            .post(format!("{url}/v1/metrics"))
            .json(&json!({ "api": readings }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::ACCEPTED,
            "ingest during the outage"
        );
    }
    paths
}

/// `/readyz` is 503 and says the store is not connected.
async fn not_ready_for_the_store(url: &str) {
    let response = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.unwrap();
    let problems = body["problems"].to_string();
    assert!(
        problems.contains("the store does not answer") && problems.contains("not connected yet"),
        "{body}"
    );
}

fn stop_gracefully(Running(child): &mut Running) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "serve exited with {exit} on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_and_accepts_while_the_cluster_is_unreachable() {
    let keyspace = migrated_keyspace().await;
    let proxy = Proxy::start(cql_node()).await;
    proxy.cut();
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");

    // First start, no cached settings: HTTP and ingest work while nothing can be reached.
    let mut child = start(&proxy, keyspace.as_str(), data_dir.path(), port);
    wait_healthy(&url).await;
    not_ready_for_the_store(&url).await;
    let mut acked = post_readings(&url, "first", 50).await;
    let query = reqwest::get(format!("{url}/v1/latest?service=outage"))
        .await
        .unwrap();
    assert_eq!(query.status(), StatusCode::SERVICE_UNAVAILABLE);
    proxy.restore();
    let session = session().await;
    let stored_all = |acked: &[String]| {
        let acked = acked.to_vec();
        move |rows: &[crate::support::StoredApi]| {
            let stored: std::collections::HashSet<&str> =
                rows.iter().map(|r| r.path.as_str()).collect();
            acked.iter().all(|p| stored.contains(p.as_str()))
        }
    };
    eventually_stored(
        &session,
        &keyspace,
        Duration::from_secs(60),
        "readings accepted before the cluster was reachable",
        stored_all(&acked),
    )
    .await;
    stop_gracefully(&mut child);
    assert!(
        data_dir.path().join("cql-settings.json").exists(),
        "the keyspace's settings are cached in the data dir"
    );

    // A restart during a second outage starts on the cached settings and accepts again.
    proxy.cut();
    let mut child = start(&proxy, keyspace.as_str(), data_dir.path(), port);
    wait_healthy(&url).await;
    not_ready_for_the_store(&url).await;
    acked.extend(post_readings(&url, "second", 30).await);
    proxy.restore();
    let rows = eventually_stored(
        &session,
        &keyspace,
        Duration::from_secs(60),
        "readings accepted during the second outage",
        stored_all(&acked),
    )
    .await;
    stop_gracefully(&mut child);

    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for row in &rows {
        *counts.entry(row.path.as_str()).or_default() += 1;
    }
    assert_eq!(rows.len(), acked.len(), "each reading stored exactly once");
    assert!(counts.values().all(|&n| n == 1), "duplicates: {counts:?}");
}
