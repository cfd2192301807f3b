//! The real `timebucket serve` binary as a child process, on the embedded store in a temp
//! directory or on a fresh keyspace of the CQL node under test: the console is tested as a
//! person starts it, from the command line.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `timebucket serve`; killed when dropped.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    _data_dir: tempfile::TempDir,
}

impl Served {
    /// Starts the binary (`cql`: a contact point and keyspace; `None`: the embedded store) on a
    /// free port and waits until `/healthz` answers.
    pub async fn start(cql: Option<(&str, &str)>) -> Served {
        // The port is free now; the child binds it at once (the bench support does the same).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data_dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_timebucket"));
        // Only the flags below: no TIMEBUCKET_* setting of the caller leaks in.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TIMEBUCKET_") {
                command.env_remove(name);
            }
        }
        command.arg("serve");
        if let Some((node, keyspace)) = cql {
            command.args(["--cql-nodes", node, "--keyspace", keyspace]);
        }
        let child = command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting timebucket serve");
        let mut served = Served {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _data_dir: data_dir,
        };
        served.wait_until_up().await;
        served
    }

    async fn wait_until_up(&mut self) {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("timebucket serve exited during start: {status}");
            }
            if let Ok(r) = client.get(format!("{}/healthz", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timebucket serve at {} did not come up", self.url);
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
