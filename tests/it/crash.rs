//! `kill -9` in the middle of ingest: every reading that got a 202 is stored exactly once.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{cql_node, eventually_stored, migrated_keyspace, session};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The store the service under test writes to.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Cql,
    Embedded,
}

pub fn start(backend: Backend, keyspace: &str, data_dir: &std::path::Path, port: u16) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_timebucket"));
    command.args(["serve", "--keyspace", keyspace]);
    if let Backend::Cql = backend {
        command.args(["--cql-nodes", &cql_node()]);
    }
    command
        .env_remove("TIMEBUCKET_CQL_NODES")
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
        .unwrap()
}

pub async fn wait_healthy(url: &str) {
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
async fn every_acknowledged_reading_survives_kill_9_exactly_once_on_cql() {
    kill_9_mid_stream(Backend::Cql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_reading_survives_kill_9_exactly_once_on_the_embedded_store() {
    kill_9_mid_stream(Backend::Embedded).await;
}

async fn kill_9_mid_stream(backend: Backend) {
    let keyspace = match backend {
        Backend::Cql => migrated_keyspace().await,
        Backend::Embedded => "unused".parse().unwrap(),
    };
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = start(backend, keyspace.as_str(), data_dir.path(), port);
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

    let mut child = start(backend, keyspace.as_str(), data_dir.path(), port);
    wait_healthy(&url).await;
    let paths = match backend {
        Backend::Cql => {
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
            rows.into_iter().map(|r| r.path).collect::<Vec<_>>()
        }
        Backend::Embedded => {
            // The store is locked while the service runs: wait for the replay to drain the WAL,
            // stop the service gracefully, then open the store and read it back.
            wait_for_empty_backlog(&url).await;
            stop_gracefully(&mut child);
            let store =
                timebucket::store::embedded::EmbeddedStore::open(&data_dir.path().join("store"))
                    .unwrap();
            let (from, to) = (
                timebucket::model::TimestampMs::from_millis(t - 1),
                timebucket::model::TimestampMs::from_millis(t + 1),
            );
            let readings = crate::conformance::read_all(&store, "crash", from, to).await;
            // `serve` (through every store wrapper) gives readings the ids of their WAL place,
            // before and after the restart: the same WAL.
            let random = readings.iter().filter(|r| r.id.wal_record().is_none());
            assert_eq!(random.count(), 0, "readings stored with acceptance ids");
            readings.into_iter().map(|r| r.path.to_string()).collect()
        }
    };

    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for path in &paths {
        *counts.entry(path.as_str()).or_default() += 1;
    }
    let missing: Vec<&String> = acked
        .iter()
        .filter(|p| !counts.contains_key(p.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{backend:?}: {} acknowledged readings lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "{backend:?}: readings stored more than once: {duplicated:?}"
    );
    assert!(acked.len() >= 2_000);
}

/// Polls the service's own metrics until its WAL backlog is empty.
pub async fn wait_for_empty_backlog(url: &str) {
    for _ in 0..900 {
        if let Ok(response) = reqwest::get(format!("{url}/metrics")).await {
            let text = response.text().await.unwrap_or_default();
            if text.lines().any(|l| l == "timebucket_wal_backlog_bytes 0") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the WAL backlog at {url} never drained");
}

/// SIGTERM, then wait for the process to exit.
pub fn stop_gracefully(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "serve exited with {exit} on SIGTERM");
}
