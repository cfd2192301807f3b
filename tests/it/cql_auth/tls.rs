//! TLS to a real node: `migrate` and `serve` (the binary) with `--cql-tls --cql-ca-file` and the
//! node's CA get in, ingest and read back over connections the node reports as TLS; with another
//! CA, or with the system's CAs (which know nothing of the node's throwaway CA), the certificate
//! is refused and `/readyz` says so, naming TLS and the flag that decides trust; a port without
//! TLS (a stand-in listener here) is named as such.
//!
//! The node's port also takes plain text (so the other tests and cqlsh need no TLS): the refusals
//! and the node's own list of TLS clients are what show that TLS is really in use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use timebucket::store::cql;

use super::{auth_node, login};
use crate::support::timebucket_command;

/// The PEM of the CA that signed the node's certificate; a missing one fails the test saying
/// how to get it.
fn node_ca() -> PathBuf {
    let path = std::env::var("TIMEBUCKET_TEST_CQL_TLS_CA").unwrap_or_else(|_| {
        panic!(
            "TIMEBUCKET_TEST_CQL_TLS_CA is not set: these tests need a CQL node that speaks TLS \
             and the PEM of its CA. Run scripts/cql-auth-test (it makes both and runs them)"
        )
    });
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "TIMEBUCKET_TEST_CQL_TLS_CA={}: no such file (run scripts/cql-auth-test)",
        path.display()
    );
    path
}

/// A fresh keyspace name of these tests.
fn keyspace_name() -> String {
    format!(
        "tb_tls_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// `timebucket serve` on `node` with `args`, its WAL and log in `dir`; returns it once it
/// listens, with its HTTP base URL.
fn serve(dir: &Path, node: &str, keyspace: &str, args: &[&str]) -> (Child, String) {
    let log = dir.join("log");
    let mut child = timebucket_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--cql-nodes", node])
        .args(["--keyspace", keyspace, "--data-dir"])
        .arg(dir.join("data"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let port = text
            .lines()
            .find(|l| l.contains("timebucket::server: listening"))
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.trim().parse::<u16>().ok());
        if let Some(port) = port {
            return (child, format!("http://127.0.0.1:{port}"));
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("serve ended ({status}) before listening:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    panic!("serve did not listen:\n{text}");
}

/// SIGTERM, then the exit status and the whole log.
fn stop(mut child: Child, dir: &Path) -> (std::process::ExitStatus, String) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    (status, std::fs::read_to_string(dir.join("log")).unwrap())
}

/// The `--cql-username` / `--cql-password-file` flags of user `cassandra`.
fn login_flags(password_file: &Path) -> Vec<String> {
    vec![
        "--cql-username".into(),
        "cassandra".into(),
        "--cql-password-file".into(),
        password_file.to_str().unwrap().into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_serve_over_tls_with_the_node_ca_store_and_read_back() {
    let node = auth_node();
    let ca = node_ca();
    let dir = tempfile::tempdir().unwrap();
    let (password_file, security) = login(dir.path(), "cassandra");
    let keyspace = keyspace_name();
    let mut flags = login_flags(&password_file);
    flags.extend(["--cql-tls".into(), "--cql-ca-file".into()]);
    flags.push(ca.to_str().unwrap().into());

    let migrated = timebucket_command()
        .args([
            "migrate",
            "up",
            "--cql-nodes",
            &node,
            "--keyspace",
            &keyspace,
        ])
        .args(&flags)
        .env(
            "TIMEBUCKET_MIGRATIONS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
        )
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );

    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (child, url) = serve(dir.path(), &node, &keyspace, &args);
    let client = reqwest::Client::new();
    let body = json!({"host": [{"service": "tls", "instance": "i-1", "available": true}]});
    let posted = client
        .post(format!("{url}/v1/metrics"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let latest = client
            .get(format!("{url}/v1/latest?service=tls"))
            .send()
            .await
            .unwrap();
        if latest.status() == 200 && latest.text().await.unwrap().contains("\"tls\"") {
            break;
        }
        assert!(Instant::now() < deadline, "never stored over TLS");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = client.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());

    // The node's own view (over a plain-text session of this test): serve's connections are
    // TLS ones. No other test here keeps a TLS connection open.
    let session = cql::connect_as(std::slice::from_ref(&node), &security)
        .await
        .unwrap();
    let rows = session
        .query_unpaged(
            "SELECT ssl_enabled, ssl_protocol FROM system_views.clients",
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let tls: Vec<String> = rows
        .rows::<(Option<bool>, Option<String>)>()
        .unwrap()
        .filter_map(|row| match row.unwrap() {
            (Some(true), protocol) => Some(protocol.unwrap_or_default()),
            _ => None,
        })
        .collect();
    assert!(!tls.is_empty(), "the node sees no TLS client");
    assert!(tls.iter().all(|p| p.starts_with("TLS")), "{tls:?}");

    let (status, log) = stop(child, dir.path());
    assert!(status.success(), "{log}");
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
        .await
        .unwrap();
}

/// `serve ARGS` (with the login) against `node`; returns the last `/readyz` answer once it
/// names the store's connection error (or after a minute), and stops serve.
async fn refused(node: &str, args: &[&str]) -> (u16, String) {
    let dir = tempfile::tempdir().unwrap();
    let (password_file, _) = login(dir.path(), "cassandra");
    let mut all = login_flags(&password_file);
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    // Never migrated: a connection that got through would fail on the keyspace instead.
    let (child, url) = serve(dir.path(), node, &keyspace_name(), &all);
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let ready = reqwest::get(format!("{url}/readyz")).await.unwrap();
        let answer = (ready.status().as_u16(), ready.text().await.unwrap());
        if answer.1.contains("connecting") || Instant::now() >= deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (status, log) = stop(child, dir.path());
    assert!(status.success(), "{log}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_ca_is_refused_naming_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let args = ["--cql-tls", "--cql-ca-file", other_ca.to_str().unwrap()];
    let (status, body) = refused(&auth_node(), &args).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("TLS: the node's certificate is refused"),
        "{body}"
    );
    assert!(body.contains("UnknownIssuer"), "{body}");
    assert!(body.contains("--cql-ca-file must name the CA"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_cas_do_not_vouch_for_the_node() {
    let (status, body) = refused(&auth_node(), &["--cql-tls"]).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("TLS: the node's certificate is refused"),
        "{body}"
    );
    assert!(body.contains("UnknownIssuer"), "{body}");
    assert!(body.contains("--cql-ca-file must name the CA"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_tls_on_its_port_is_named_as_such() {
    // What a CQL port without TLS does with a ClientHello: answers bytes that are no TLS record.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = listener.local_addr().unwrap().to_string();
    let plain = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut hello = [0u8; 512];
            let _ = socket.read(&mut hello).await;
            let _ = socket.write_all(b"\x84\0\0\0\0\0\0\0\x08not tls!").await;
        }
    });
    let ca = node_ca();
    let (status, body) = refused(&node, &["--cql-ca-file", ca.to_str().unwrap()]).await;
    plain.abort();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("the TLS handshake with the node failed"),
        "{body}"
    );
    assert!(body.contains("client_encryption_options"), "{body}");
}
