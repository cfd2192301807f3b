//! The real binary: the default posture (no tokens beyond loopback: no start), the bootstrap
//! token of containers, and tokens kept out of the logs even at the most verbose level.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::support::timebucket_command;

/// `timebucket serve ARGS` on the embedded store in `dir`, its log in `dir/log`; returns it
/// once it listens, with the port it listens on.
fn serve(dir: &Path, args: &[&str], rust_log: &str) -> (Child, u16) {
    let log = dir.join("log");
    let mut child = timebucket_command()
        .args(["serve", "--data-dir"])
        .arg(dir.join("data"))
        .args(args)
        .env("RUST_LOG", rust_log)
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
            .and_then(|p| p.trim().parse().ok());
        if let Some(port) = port {
            return (child, port);
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

#[tokio::test]
async fn serving_beyond_loopback_without_tokens_needs_insecure_no_auth() {
    let dir = tempfile::tempdir().unwrap();
    let output = timebucket_command()
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let error: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(
        error[0].contains("refusing to serve on 0.0.0.0:"),
        "{stderr}"
    );
    assert!(error[0].contains("--insecure-no-auth"), "{stderr}");
    assert!(
        !dir.path().join("wal").exists(),
        "nothing may open on a refused start"
    );

    let (child, port) = serve(
        dir.path(),
        &["--listen", "0.0.0.0:0", "--insecure-no-auth"],
        "info",
    );
    let open = reqwest::get(format!("http://127.0.0.1:{port}/v1/latest"))
        .await
        .unwrap();
    assert_eq!(
        open.status(),
        200,
        "no token needed when the operator says so"
    );
    let (status, log) = stop(child, dir.path());
    assert!(status.success(), "{log}");
    assert!(
        log.contains("--insecure-no-auth: anyone who reaches the port"),
        "{log}"
    );
}

/// A token in any form a client may send it: the bearer token, Basic credentials, or their
/// base64.
fn forms(token: &str) -> Vec<String> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{token}"));
    vec![token.to_owned(), basic]
}

#[tokio::test]
async fn the_bootstrap_token_works_and_no_token_ever_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let token_file: PathBuf = dir.path().join("token");
    let args = [
        "--listen",
        "0.0.0.0:0",
        "--bootstrap-token-file",
        token_file.to_str().unwrap(),
    ];
    // Everything, at the most verbose level: our own lines and every library's.
    let (child, port) = serve(dir.path(), &args, "trace");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    let wrong = format!("{token}x");
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let client = reqwest::Client::new();
    let status =
        |request: reqwest::RequestBuilder| async move { request.send().await.unwrap().status() };
    assert_eq!(
        status(client.get(url("/v1/latest")).bearer_auth(&token)).await,
        200
    );
    assert_eq!(
        status(client.get(url("/v1/latest")).bearer_auth(&wrong)).await,
        401
    );
    assert_eq!(status(client.get(url("/v1/latest"))).await, 401);
    assert_eq!(
        status(client.get(url("/")).basic_auth("user", Some(&token))).await,
        200
    );
    let body = serde_json::json!({"host": [{"service": "s", "instance": "i", "available": true}]});
    let post = || client.post(url("/v1/metrics")).json(&body);
    assert_eq!(status(post().bearer_auth(&token)).await, 202);
    assert_eq!(status(post().bearer_auth(&wrong)).await, 401);
    assert_eq!(
        status(post().basic_auth("user", Some(&token))).await,
        401,
        "Basic is for reads"
    );
    assert_eq!(
        status(client.get(url("/nowhere")).bearer_auth(&wrong)).await,
        401
    );
    let (exit, log) = stop(child, dir.path());
    assert!(exit.success(), "{log}");
    assert!(log.contains("made the bootstrap token"), "{log}");
    for secret in forms(&token).into_iter().chain(forms(&wrong)) {
        assert!(!log.contains(&secret), "a token is in the log");
    }
    // The next start reads the same token back.
    let (child, port) = serve(dir.path(), &args, "info");
    let again = client.get(format!("http://127.0.0.1:{port}/v1/latest"));
    assert_eq!(status(again.bearer_auth(&token)).await, 200);
    stop(child, dir.path());
}
