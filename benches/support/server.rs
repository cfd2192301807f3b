//! The real `timebucket` binary as a child process, its `/metrics` and its memory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

/// The binary under test: `TIMEBUCKET_BENCH_BIN`, else the one cargo built for this bench.
pub fn binary() -> PathBuf {
    std::env::var_os("TIMEBUCKET_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_timebucket")))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A running `timebucket serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl Server {
    /// Starts `timebucket serve` with the defaults of a real deployment plus `extra` flags, and
    /// waits until `/healthz` answers. `cql` is `(contact point, keyspace)`; `None` runs the
    /// embedded store in the data directory.
    pub async fn start(
        cql: Option<(&str, &str)>,
        data_dir: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let log = data_dir.join("server.log");
        let log_file = std::fs::File::create(&log)?;
        let mut command = Command::new(binary());
        // Only the flags below: no TIMEBUCKET_* setting (or config file) of the caller leaks in.
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
            .arg(data_dir.join("data"))
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", binary().display()))?;
        let mut server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        server.wait_healthy().await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "timebucket exited during start ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(r) = client.get(format!("{}/healthz", self.url)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "timebucket did not answer /healthz in 30 s; its log:\n{}",
            self.log_tail()
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "timebucket exited ({status}); its log:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of the server's stderr.
    pub fn log_tail(&self) -> String {
        tail_of(&self.log)
    }

    /// Lines of the server log at WARN or above.
    pub fn log_warnings(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .map(str::to_owned)
            .collect()
    }

    /// `VmHWM` (peak resident set) of the process, bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        proc_status_kib(self.pid(), "VmHWM:").map(|k| k * 1024)
    }

    /// SIGTERM and a successful exit within `grace` (the flusher finished, the embedded store
    /// released its lock), else an error with the log's tail; killed if still running.
    pub async fn stop(self, grace: Duration) -> anyhow::Result<()> {
        let log = self.log.clone();
        match self.terminate(grace).await? {
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!(
                "timebucket exited with {status}; its log:\n{}",
                tail_of(&log)
            ),
            None => bail!(
                "timebucket did not stop within {grace:?} of SIGTERM; its log:\n{}",
                tail_of(&log)
            ),
        }
    }

    /// SIGTERM; the exit status, or `None` when it had to be killed after `grace`.
    async fn terminate(mut self, grace: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(None)
    }
}

/// The last 30 lines of a log file.
fn tail_of(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `key: N kB` line of `/proc/<pid>/status`, in KiB.
pub fn proc_status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

/// Reads one sample (no labels) from a Prometheus text exposition.
pub fn metric(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let value = rest.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The service's `/metrics` exposition.
pub async fn exposition(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    Ok(client
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

/// Scrapes `/metrics` and reads `name`, failing if it is not exposed.
pub async fn scrape(client: &reqwest::Client, url: &str, name: &str) -> anyhow::Result<f64> {
    let [value] = scrape_all(client, url, [name]).await?;
    Ok(value)
}

/// Scrapes `/metrics` once and reads each of `names` from that one exposition (so they are
/// of the same instant), failing if one is not exposed.
pub async fn scrape_all<const N: usize>(
    client: &reqwest::Client,
    url: &str,
    names: [&str; N],
) -> anyhow::Result<[f64; N]> {
    let text = exposition(client, url).await?;
    let mut values = [0.0; N];
    for (value, name) in values.iter_mut().zip(names) {
        *value =
            metric(&text, name).with_context(|| format!("{url}/metrics does not expose {name}"))?;
    }
    Ok(values)
}

/// Samples the server's RSS (every 20 ms) and WAL backlog (every 250 ms) until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    pub max_rss: Arc<AtomicU64>,
    pub max_backlog: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(pid: u32, url: String) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max_rss = Arc::new(AtomicU64::new(0));
        let max_backlog = Arc::new(AtomicU64::new(0));
        let (s, r, b) = (stop.clone(), max_rss.clone(), max_backlog.clone());
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut tick = 0u64;
            while !s.load(Ordering::Relaxed) {
                if let Ok(kib) = proc_status_kib(pid, "VmRSS:") {
                    r.fetch_max(kib * 1024, Ordering::Relaxed);
                }
                if tick.is_multiple_of(12) {
                    if let Ok(v) = scrape(&client, &url, "timebucket_wal_backlog_bytes").await {
                        b.fetch_max(v as u64, Ordering::Relaxed);
                    }
                }
                tick += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Sampler {
            stop,
            max_rss,
            max_backlog,
            task,
        }
    }

    /// Stops sampling; returns (max RSS, max WAL backlog), bytes.
    pub async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        (
            self.max_rss.load(Ordering::Relaxed),
            self.max_backlog.load(Ordering::Relaxed),
        )
    }
}
