//! `kill -9` in the middle of ingest: every reading that got a 202 is stored exactly once.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{cql_node, eventually_stored, migrated_keyspace, session};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(keyspace: &str, data_dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_timebucket"))
        .args(["serve", "--cql-nodes", &cql_node(), "--keyspace", keyspace])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--wal-segment-bytes", "262144"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_healthy(url: &str) {
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(format!("{url}/healthz")).await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timebucket at {url} did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_reading_survives_kill_9_exactly_once() {
    let keyspace = migrated_keyspace().await;
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = start(keyspace.as_str(), data_dir.path(), port);
    wait_healthy(&url).await;

    // Eight writers post 20-reading batches, each reading with a unique path, until stopped.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let t = chrono::Utc::now().timestamp_millis();
    let mut writers = Vec::new();
    for writer in 0..8 {
        let (acked, stop, url) = (acked.clone(), stop.clone(), url.clone());
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut batch = 0;
            while !stop.load(Ordering::Relaxed) {
                let paths: Vec<String> = (0..20).map(|i| format!("/w{writer}/b{batch}/r{i}")).collect();
                let readings: Vec<_> = paths
                    .iter()
                    .map(|p| json!({"service": "crash", "instance": "i", "method": "PUT", "path": p, "code": 204, "duration_ms": 1, "timestamp": t}))
                    .collect();
                batch += 1;
                match client.post(format!("{url}/v1/metrics")).json(&json!({"api": readings})).send().await {
                    Ok(r) if r.status() == StatusCode::ACCEPTED => acked.lock().unwrap().extend(paths),
                    Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    // Let some batches through, then kill without warning mid-stream.
    while acked.lock().unwrap().len() < 2_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let mut child = start(keyspace.as_str(), data_dir.path(), port);
    wait_healthy(&url).await;
    let session = session().await;
    let rows = eventually_stored(
        &session,
        &keyspace,
        Duration::from_secs(90),
        "every acknowledged reading",
        |rows| {
            let stored: std::collections::HashSet<&str> =
                rows.iter().map(|r| r.path.as_str()).collect();
            acked.iter().all(|p| stored.contains(p.as_str()))
        },
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();

    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for row in &rows {
        *counts.entry(row.path.as_str()).or_default() += 1;
    }
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "readings stored more than once: {duplicated:?}"
    );
    assert!(acked.len() >= 2_000);
}
