//! Hostile clients at the HTTP edge: connections that never finish a request, bodies that stop
//! arriving, a shutdown while clients hold half-sent requests, and a listener that breaks.
//! These run on the embedded store (no CQL node needed): the edge does not depend on the store.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::crash::{free_port, wait_healthy};
use crate::support::{embedded_config, spawn_with, TestApp};

/// Far longer than any bound under test: reaching it means the bound does not work.
const NEVER: Duration = Duration::from_secs(60);

fn reading(path: &str) -> Value {
    json!({"service": "edge", "instance": "i-1", "method": "GET", "path": path,
           "code": 200, "duration_ms": 1.5})
}

/// Opens a connection and sends `bytes`, which are not a whole request.
async fn half_sent(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads until the server closes the connection; what it sent before closing, or `None` if it
/// kept the connection open for `within`.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&seen).into_owned())
}

async fn post(url: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/metrics"))
        .json(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap()
}

/// The service in-process on the embedded store, with `configure` applied to its config.
async fn embedded_app(configure: impl FnOnce(&mut timebucket::server::ServeConfig)) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(data_dir.path());
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_with(config, data_dir, listener).await
}

/// `timebucket serve` on the embedded store with at most `max_fds` open files and `flags`.
fn serve_binary(data_dir: &std::path::Path, port: u16, max_fds: u32, flags: &[&str]) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {max_fds} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_timebucket"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .args(flags)
        .env_remove("TIMEBUCKET_CQL_NODES")
        .env_remove("TIMEBUCKET_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// SIGTERM, then the exit status, or `None` if the process still runs after `within`.
async fn terminate(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_connections_beyond_the_cap_are_closed_and_the_service_stays_up() {
    // The attack of the report: 300 half-sent requests at a 256-descriptor limit.
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("http://{addr}");
    let mut child = serve_binary(
        data_dir.path(),
        port,
        256,
        &[
            "--max-connections",
            "64",
            "--header-read-timeout",
            "2s",
            "--wal-segment-bytes",
            "65536",
            "--max-body-bytes",
            "32768",
        ],
    );
    wait_healthy(&url).await;

    let mut attackers = Vec::new();
    for _ in 0..300 {
        attackers.push(half_sent(&addr, b"POST /v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n").await);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health = client.get(format!("{url}/healthz")).send().await;
    assert_eq!(
        health.map(|r| r.status()).ok(),
        Some(StatusCode::OK),
        "/healthz did not answer under 300 half-sent connections"
    );
    // Ingest still works, across several new WAL segments (each needs a descriptor).
    for batch in 0..20 {
        let readings: Vec<Value> = (0..50)
            .map(|i| reading(&format!("/b{batch}/{i}")))
            .collect();
        let response = post(&url, &json!({ "api": readings })).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "batch {batch}");
    }
    // Every half-sent connection is closed: the oldest when the cap needed room, the rest
    // after the header timeout.
    for (i, stream) in attackers.iter_mut().enumerate() {
        assert!(
            until_closed(stream, NEVER).await.is_some(),
            "half-sent connection {i} is still open"
        );
    }
    let status = terminate(&mut child, NEVER).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_while_clients_hold_half_sent_requests() {
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("http://{addr}");
    // Timeouts far beyond the test: only the shutdown deadline can end these requests.
    let mut child = serve_binary(
        data_dir.path(),
        port,
        1024,
        &[
            "--header-read-timeout",
            "1h",
            "--body-read-timeout",
            "1h",
            "--shutdown-deadline",
            "2s",
        ],
    );
    wait_healthy(&url).await;
    let mut half_body = half_sent(
        &addr,
        b"POST /v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"api\": [",
    )
    .await;
    let mut half_head = half_sent(&addr, b"GET /healthz HTTP/1.1\r\nHo").await;
    let mut idle = half_sent(&addr, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    // Let the server see the half-sent body's request (it waits for the rest).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let status = terminate(&mut child, NEVER).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "serve did not finish after SIGTERM: {status:?}"
    );
    for (name, stream) in [
        ("half-sent body", &mut half_body),
        ("half-sent head", &mut half_head),
        ("idle", &mut idle),
    ] {
        assert!(
            until_closed(stream, NEVER).await.is_some(),
            "{name} still open"
        );
    }
}

#[tokio::test]
async fn slow_bodies_hold_the_ingest_slots_and_others_are_told_to_retry() {
    let app = embedded_app(|c| {
        c.accept.max_concurrent = 2;
        c.accept.body_read_timeout = Duration::from_secs(300);
    })
    .await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let head = b"POST /v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 8000000\r\n\r\n{\"api\": [";
    let slow = [half_sent(&addr, head).await, half_sent(&addr, head).await];

    // Once both slow bodies hold a slot, a small complete body is refused, not buffered.
    let body = json!({"api": [reading("/probe")]});
    let mut refused = None;
    for _ in 0..10 {
        let response = post(&app.url, &body).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let refused = refused.expect("bodies beyond --max-concurrent-ingest were taken in");
    assert!(refused.headers().get("retry-after").is_some());

    // The slow clients leave: their slots are free again.
    drop(slow);
    let mut status = StatusCode::TOO_MANY_REQUESTS;
    for _ in 0..10 {
        status = post(&app.url, &body).await.status();
        if status == StatusCode::ACCEPTED {
            break;
        }
    }
    assert_eq!(status, StatusCode::ACCEPTED);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_408_and_its_slot_freed() {
    let app = embedded_app(|c| {
        c.accept.max_concurrent = 1;
        c.accept.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut slow = half_sent(
        &addr,
        b"POST /v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"api\"",
    )
    .await;
    let answer = until_closed(&mut slow, NEVER)
        .await
        .expect("a body that stopped arriving kept its connection open");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("--body-read-timeout"), "{answer}");
    let response = post(&app.url, &json!({"api": [reading("/after")]})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_listener_that_breaks_ends_serve_with_an_error() {
    use std::os::fd::AsRawFd;

    let data_dir = tempfile::tempdir().unwrap();
    let config = embedded_config(data_dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fd = listener.as_raw_fd();
    let mut app = spawn_with(config, data_dir, listener).await;
    // The listening socket stops listening under the server: every accept now fails.
    // SAFETY: `fd` is the listener's, open for as long as the service runs.
    assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_RDWR) }, 0);
    match app.ended_within(NEVER).await {
        Some(Err(timebucket::server::ServeError::Http(error))) => {
            assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{error}")
        }
        other => panic!("serve went on without a listener: {other:?}"),
    }
}
