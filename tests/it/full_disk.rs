//! A full WAL disk: appends fail with 503 and readiness says why, confirming still frees the
//! disk, and the WAL (and the service) opens on a full disk, then recovers on its own.
//!
//! The disk is a small tmpfs mounted for the test, which needs root (or CAP_SYS_ADMIN): the
//! tests fail saying so rather than skip.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use timebucket::server::ServeConfig;
use timebucket::wal::{Wal, WalConfig, WalError};

use crate::proxy::Proxy;
use crate::support::{cql_node, eventually_stored, migrated_keyspace, serve_config, session};

/// A tmpfs of a given size on a fresh temp dir, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status();
        match mounted {
            Ok(status) if status.success() => SmallDisk { dir },
            other => panic!(
                "this test fills a small disk, a tmpfs it mounts, which needs root (or \
                 CAP_SYS_ADMIN): run the tests as root. `mount` answered {other:?}"
            ),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.dir.path()).status();
        if !unmounted.is_ok_and(|status| status.success()) {
            // Something still has a file open there: detach it now, it goes when closed.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

fn is_disk_full(err: &WalError) -> bool {
    matches!(err, WalError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
}

/// Appends `payload(i)` for i = `from..` until the disk is full; returns the next i.
fn fill(wal: &Wal, runtime: &tokio::runtime::Runtime, from: usize) -> usize {
    for i in from.. {
        match runtime.block_on(wal.append(payload(i))) {
            Ok(_) => {}
            Err(err) => {
                assert!(is_disk_full(&err) && err.is_retryable(), "{err}");
                return i;
            }
        }
    }
    unreachable!("the range is endless")
}

/// Takes whatever space is left on the disk with a file of its own, so that the WAL cannot
/// find a single free page, whatever a failed write of its own had freed again.
fn take_the_rest(dir: &Path, name: &str) {
    let mut filler = std::fs::File::create(dir.join(name)).unwrap();
    loop {
        if let Err(err) = std::io::Write::write_all(&mut filler, &[7; 4096]) {
            assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
            return;
        }
    }
}

fn payload(i: usize) -> Vec<u8> {
    format!("record {i:08}").into_bytes().repeat(300)
}

fn read_all(wal: &Wal) -> Vec<Vec<u8>> {
    let mut reader = wal.reader(wal.confirmed());
    let mut payloads = Vec::new();
    loop {
        let batch = reader.next_batch(1 << 20).unwrap();
        if batch.is_empty() {
            return payloads;
        }
        payloads.extend(batch.into_iter().map(|r| r.payload));
    }
}

#[test]
fn a_full_wal_disk_is_freed_by_confirming_and_the_wal_reopens_on_it() {
    let disk = SmallDisk::mount(256 * 1024);
    let config = WalConfig {
        segment_bytes: 16 * 1024,
        max_record_bytes: 8000,
        ..WalConfig::new(disk.path().join("wal"))
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let wal = Wal::open(config.clone()).unwrap();
    let full_at = fill(&wal, &runtime, 0);
    assert!(full_at > 10, "only {full_at} records fit");
    take_the_rest(disk.path(), "filler-1");
    let problem = wal.append_problem().expect("the WAL says why appends fail");
    assert!(problem.contains("No space left on device"), "{problem}");

    // Everything is in the store: confirming it must work on the full disk, and free it.
    let end = *wal.durable_end().borrow();
    wal.confirm(end).unwrap();
    assert!(wal.stats().segments_on_disk <= 1, "{:?}", wal.stats());
    runtime.block_on(wal.append(payload(full_at))).unwrap();
    assert_eq!(wal.append_problem(), None);

    // Fill it again and restart on the full disk: the log opens and replays.
    let refill_from = full_at + 1;
    let full_again_at = fill(&wal, &runtime, refill_from);
    take_the_rest(disk.path(), "filler-2");
    wal.close().unwrap();
    let wal = Wal::open(config).unwrap();
    let expected: Vec<_> = (full_at..full_again_at).map(payload).collect();
    assert!(
        read_all(&wal) == expected,
        "replay after a restart on a full disk"
    );
    let err = runtime.block_on(wal.append(payload(0))).unwrap_err();
    assert!(is_disk_full(&err), "{err}");
    assert!(wal.append_problem().is_some());

    // Once the replayed records are confirmed, their segments go and appends work again.
    let end = *wal.durable_end().borrow();
    wal.confirm(end).unwrap();
    runtime.block_on(wal.append(payload(0))).unwrap();
    assert_eq!(wal.append_problem(), None);
}

/// A service running in this process, stopped with [`App::stop`].
struct App {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), timebucket::server::ServeError>>,
}

impl App {
    async fn start(config: ServeConfig) -> App {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(timebucket::server::run(config, listener, async {
            let _ = stopped.await;
        }));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if task.is_finished() {
                panic!("the service stopped during start: {:?}", task.await);
            }
            if let Ok(r) = reqwest::get(format!("{url}/healthz")).await {
                if r.status().is_success() {
                    return App { url, stop, task };
                }
            }
            assert!(Instant::now() < deadline, "the service did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Posts one batch of readings with the given paths.
async fn post(client: &reqwest::Client, url: &str, paths: &[String]) -> reqwest::Response {
    let t = chrono::Utc::now().timestamp_millis();
    let readings: Vec<Value> = paths
        .iter()
        .map(|p| json!({"service": "full", "instance": "i", "method": "GET", "path": p, "code": 200, "duration_ms": 1, "timestamp": t}))
        .collect();
    client
        .post(format!("{url}/v1/metrics"))
        .json(&json!({ "api": readings }))
        .send()
        .await
        .unwrap()
}

fn batch_paths(batch: usize) -> Vec<String> {
    (0..200).map(|i| format!("/b{batch}/r{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_cql_a_full_wal_disk_answers_503_says_why_in_readyz_and_recovers_after_a_restart() {
    let disk = SmallDisk::mount(1 << 20);
    let keyspace = migrated_keyspace().await;
    let proxy = Proxy::start(cql_node()).await;
    let base = serve_config(vec![proxy.addr.to_string()], keyspace.clone(), disk.path());
    let config = ServeConfig {
        wal: WalConfig {
            segment_bytes: 64 * 1024,
            max_record_bytes: WalConfig::largest_record_in(64 * 1024) as u32,
            ..base.wal.clone()
        },
        shutdown_deadline: Duration::from_secs(1),
        ..base
    };
    let app = App::start(config.clone()).await;
    let client = reqwest::Client::new();

    // With the store cut off nothing is confirmed, so the WAL fills the disk.
    proxy.cut();
    let mut acked = Vec::new();
    let mut batch = 0;
    let refused = loop {
        let paths = batch_paths(batch);
        batch += 1;
        let response = post(&client, &app.url, &paths).await;
        match response.status() {
            StatusCode::ACCEPTED => acked.extend(paths),
            _ => break response,
        }
        assert!(batch < 1000, "the disk never filled up");
    };
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(!acked.is_empty());
    let ready = reqwest::get(format!("{}/readyz", app.url)).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problems = ready.json::<Value>().await.unwrap()["problems"].to_string();
    assert!(
        problems.contains("the WAL cannot be written") && problems.contains("No space left"),
        "{problems}"
    );

    // A restart on the full disk: the service starts, replays, and confirming frees the disk.
    app.stop().await;
    proxy.restore();
    let app = App::start(config).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let paths = batch_paths(batch);
        batch += 1;
        if post(&client, &app.url, &paths).await.status() == StatusCode::ACCEPTED {
            acked.extend(paths);
            break;
        }
        assert!(Instant::now() < deadline, "ingest never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let ready = reqwest::get(format!("{}/readyz", app.url)).await.unwrap();
        if ready.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready again: {}",
            ready.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let session = session().await;
    eventually_stored(
        &session,
        &keyspace,
        Duration::from_secs(60),
        "every acknowledged reading",
        |rows| {
            let stored: std::collections::HashSet<&str> =
                rows.iter().map(|r| r.path.as_str()).collect();
            acked.iter().all(|p| stored.contains(p.as_str()))
        },
    )
    .await;
    app.stop().await;
}

/// Readings `/{tag}/{n}` for the embedded-store test, one body.
fn embedded_body(tag: &str, n: usize) -> (Vec<String>, Value) {
    let t = chrono::Utc::now().timestamp_millis();
    let paths: Vec<String> = (0..10).map(|i| format!("/{tag}/{n}/{i}")).collect();
    let readings: Vec<Value> = paths
        .iter()
        .map(|p| json!({"service": "fulldisk", "instance": "i", "method": "GET", "path": p, "code": 200, "duration_ms": 1, "timestamp": t}))
        .collect();
    (paths, json!({ "api": readings }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_recovers_from_a_full_disk_and_ingest_waits_for_it() {
    use timebucket::server::StoreTarget;
    let disk = SmallDisk::mount(16 * 1024 * 1024);
    let data_dir = tempfile::tempdir().unwrap();
    let store_dir = disk.path().join("store");
    let config = ServeConfig {
        store: StoreTarget::Embedded {
            dir: store_dir.clone(),
        },
        ..crate::support::embedded_config(data_dir.path())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = crate::support::spawn_with(config, data_dir, listener).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/metrics", app.url);
    let mut acked = Vec::new();
    let mut n = 1;

    // A first body is stored, so the window's keyspace exists and the failure below is in
    // fjall's journal, the write that poisons it.
    let (paths, body) = embedded_body("first", 0);
    let response = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    acked.extend(paths);
    backlog_drained(&client, &app.url).await;

    // The store's disk fills (the WAL's does not): ingest is refused once the store fails.
    take_the_rest(disk.path(), "filler");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (paths, body) = embedded_body("full", n);
        n += 1;
        let response = client.post(&url).json(&body).send().await.unwrap();
        match response.status() {
            StatusCode::ACCEPTED => acked.extend(paths),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                let body: Value = response.json().await.unwrap();
                let error = body["error"].as_str().unwrap();
                assert!(error.contains("the embedded store cannot write"), "{error}");
                break;
            }
            other => panic!("unexpected {other}"),
        }
        assert!(
            Instant::now() < deadline,
            "ingest never stopped on the full store disk"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // readyz says why. A write that still fits (a retry of the flusher)
    // clears the problem until the next one fails, so it is polled, as a balancer polls it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready: Value = client
            .get(format!("{}/readyz", app.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["problems"]
            .to_string()
            .contains("embedded store cannot write")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readyz never said the store cannot write: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Space frees: the store is reopened, writes the backlog, and ingest resumes by itself.
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (paths, body) = embedded_body("after", n);
        n += 1;
        let response = client.post(&url).json(&body).send().await.unwrap();
        if response.status() == StatusCode::ACCEPTED {
            acked.extend(paths);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ingest never resumed after space freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    backlog_drained(&client, &app.url).await;
    app.stop().await.unwrap();

    let store = timebucket::store::embedded::EmbeddedStore::open(&store_dir).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let rows = crate::conformance::read_all(
        &store,
        "fulldisk",
        timebucket::model::TimestampMs::from_millis(now - 3_600_000),
        timebucket::model::TimestampMs::from_millis(now + 60_000),
    )
    .await;
    let mut stored: Vec<String> = rows.into_iter().map(|r| r.path.to_string()).collect();
    stored.sort();
    acked.sort();
    assert_eq!(stored, acked, "every accepted reading stored exactly once");
}

/// Waits until the service's WAL backlog is empty (everything accepted is in the store).
async fn backlog_drained(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = client
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics
            .lines()
            .any(|l| l == "timebucket_wal_backlog_bytes 0")
        {
            return;
        }
        assert!(Instant::now() < deadline, "the backlog never drained");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
