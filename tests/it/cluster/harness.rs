//! The processes of the cluster tests: the Cassandra cluster (through `scripts/cassandra
//! cluster`), `timebucket serve` replicas and HAProxy, each with its log kept for failures.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use scylla::client::session::Session;
use timebucket::store::cql::{self, Keyspace};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::crash::free_port;
use crate::support::timebucket_command;

/// Names the addresses of the local cluster (as `CASSANDRA_CLUSTER_ADDRESSES` does for
/// `scripts/cassandra cluster`); `scripts/cluster-test` sets it.
const CLUSTER_VARIABLE: &str = "TIMEBUCKET_TEST_CLUSTER";
/// The data center of the local cluster (scripts/cassandra.d/cassandra-rackdc.properties).
pub const REPLICATION: &str = "NetworkTopologyStrategy:datacenter1=3";

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The local 3-node cluster.
pub struct Cluster {
    /// The nodes' addresses, comma-separated, as `scripts/cassandra cluster` takes them.
    addresses: String,
    /// `address:9042` of each node, node 1 first.
    pub nodes: Vec<String>,
}

impl Cluster {
    /// The cluster with every node up. A node that an earlier (failed) test left down is started
    /// again; a cluster that is not running at all fails the test, saying how to start it.
    pub async fn up() -> Cluster {
        let Ok(addresses) = std::env::var(CLUSTER_VARIABLE) else {
            panic!(
                "the cluster tests need the local 3-node Cassandra cluster, and {CLUSTER_VARIABLE} \
                 names none. Run them with `scripts/cluster-test` (it starts the cluster on \
                 127.0.0.1-3 and HAProxy, runs them, stops it; with the single node on \
                 127.0.0.1:9042 running, `CASSANDRA_CLUSTER_ADDRESSES=127.0.0.11,127.0.0.12,\
                 127.0.0.13 scripts/cluster-test`), or start it with `scripts/cassandra cluster \
                 start` and set {CLUSTER_VARIABLE} to its addresses, e.g. \
                 {CLUSTER_VARIABLE}=127.0.0.1,127.0.0.2,127.0.0.3"
            )
        };
        let nodes: Vec<String> = addresses.split(',').map(|a| format!("{a}:9042")).collect();
        let cluster = Cluster { addresses, nodes };
        let (ok, status) = cluster.script(&["cluster", "status"]).await;
        if !ok {
            if !status.contains(" up ") {
                panic!(
                    "the cluster tests need the local 3-node Cassandra cluster on {}, and none of \
                     its nodes is up:\n{status}\nStart it with `CASSANDRA_CLUSTER_ADDRESSES={} \
                     scripts/cassandra cluster start`, or run `scripts/cluster-test`, which also \
                     does the rest",
                    cluster.addresses, cluster.addresses
                );
            }
            eprintln!("a node is down (left by an earlier test?):\n{status}starting it again");
            cluster.run(&["cluster", "start"]).await;
        }
        cluster
    }

    /// The contact points, comma-separated, as `--cql-nodes` takes them.
    pub fn contact_points(&self) -> String {
        self.nodes.join(",")
    }

    /// A driver session to the cluster (reads and writes at `LOCAL_QUORUM`).
    pub async fn session(&self) -> Session {
        cql::connect(&self.nodes)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the cluster at {:?}: {e}", self.nodes))
    }

    /// A fresh keyspace replicated to all three nodes, made by the real `migrate up`.
    pub async fn keyspace(&self) -> Keyspace {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let keyspace: Keyspace = format!("tb_cluster_{}", &id[..12]).parse().unwrap();
        let output = timebucket_command()
            .args(["migrate", "up", "--cql-nodes", &self.contact_points()])
            .args([
                "--keyspace",
                keyspace.as_str(),
                "--replication",
                REPLICATION,
            ])
            .arg("--migrations-dir")
            .arg(repository().join("migrations"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "migrate up --replication {REPLICATION} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        keyspace
    }

    /// Drops a test's keyspace (scripts/cluster-test also sweeps leftovers of failed tests).
    pub async fn drop_keyspace(&self, session: &Session, keyspace: &Keyspace) {
        if let Err(e) = session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
            .await
        {
            eprintln!("cannot drop {keyspace}: {e}");
        }
    }

    /// `kill -9` of node `n` (1-based).
    pub async fn kill(&self, n: usize) {
        self.run(&["cluster", "kill", &n.to_string()]).await;
    }

    /// Starts node `n` again and waits until every node sees it up.
    pub async fn restart(&self, n: usize) {
        self.run(&["cluster", "restart", &n.to_string()]).await;
    }

    async fn run(&self, args: &[&str]) {
        let (ok, output) = self.script(args).await;
        assert!(ok, "scripts/cassandra {} failed:\n{output}", args.join(" "));
    }

    /// Runs `scripts/cassandra ARGS` on this cluster's addresses; whether it succeeded, and
    /// what it printed.
    async fn script(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(repository().join("scripts/cassandra"))
            .args(args)
            .env("CASSANDRA_CLUSTER_ADDRESSES", &self.addresses)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("scripts/cassandra runs");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    }
}

/// Polls `check` every 100 ms until it holds, or fails saying `what` after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not true after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One `timebucket serve` process over the cluster, on a fixed port and data directory, so it
/// can be killed and started again as the same replica.
pub struct Replica {
    /// `127.0.0.1:PORT`, what HAProxy points at.
    pub address: String,
    args: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
    starts: usize,
}

impl Replica {
    /// Starts a replica writing to `keyspace` with `extra` flags, and waits until it answers.
    pub async fn start(cluster: &Cluster, keyspace: &Keyspace, extra: &[&str]) -> Replica {
        let address = format!("127.0.0.1:{}", free_port());
        let dir = tempfile::Builder::new()
            .prefix("tb-replica")
            .tempdir()
            .unwrap();
        let mut args: Vec<String> = ["serve", "--cql-nodes", &cluster.contact_points()]
            .into_iter()
            .chain(["--keyspace", keyspace.as_str(), "--listen", &address])
            .map(str::to_owned)
            .collect();
        args.push("--data-dir".into());
        args.push(dir.path().join("data").display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut replica = Replica {
            address,
            args,
            dir,
            child: None,
            starts: 0,
        };
        replica.launch().await;
        replica
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Starts the process (again, after [`Replica::kill`] or [`Replica::terminate`]) on the
    /// same port and data directory, and waits until `/healthz` answers.
    pub async fn launch(&mut self) {
        assert!(self.child.is_none(), "the replica is already running");
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).unwrap();
        let child = Command::from(timebucket_command())
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "replica {} exited at start ({status}):\n{}",
                    self.address,
                    self.log()
                );
            }
            if let Ok(r) = client.get(format!("{}/healthz", self.url())).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "replica {} did not answer within 60 s:\n{}",
                self.address,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`: no shutdown, whatever is in its WAL stays there.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("the replica is running");
        child.kill().await.unwrap();
    }

    /// SIGTERM, and waits for a clean exit (requests in progress answered, the flusher
    /// stopped within the shutdown deadline).
    pub async fn terminate(&mut self) {
        let mut child = self.child.take().expect("the replica is running");
        let pid = child.id().expect("a pid").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("the replica stops within 30 s of SIGTERM")
            .unwrap();
        assert!(
            exit.success(),
            "replica {} exited with {exit}:\n{}",
            self.address,
            self.log()
        );
    }

    /// One unlabelled sample of its `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{} does not expose {name}", self.address))
    }

    /// `GET path`: the status and the JSON answer.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = reqwest::get(format!("{}{path}", self.url())).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Waits until everything it accepted is in the store.
    pub async fn drained(&self, within: Duration) {
        let what = format!("the WAL backlog of replica {} drains", self.address);
        eventually(within, &what, || async {
            self.metric("timebucket_wal_backlog_bytes").await == 0.0
        })
        .await;
    }

    fn log_path(&self, start: usize) -> PathBuf {
        self.dir.path().join(format!("serve-{start}.log"))
    }

    /// The tail of the log of every start so far.
    pub fn log(&self) -> String {
        let mut all = String::new();
        for start in 1..=self.starts {
            let text = std::fs::read_to_string(self.log_path(start)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            all.push_str(&format!("--- start {start} ---\n"));
            all.push_str(&lines[lines.len().saturating_sub(15)..].join("\n"));
            all.push('\n');
        }
        all
    }
}

/// HAProxy running `deploy/haproxy.cfg` in front of two replicas.
pub struct Haproxy {
    /// `http://127.0.0.1:PORT`, where clients push.
    pub url: String,
    admin: String,
    child: Child,
    log_file: tempfile::NamedTempFile,
}

impl Haproxy {
    /// Starts HAProxy in the foreground and waits until both replicas pass its health check.
    pub async fn start(replicas: [&Replica; 2]) -> Haproxy {
        let binary = ["haproxy", "/usr/sbin/haproxy"]
            .into_iter()
            .find(|b| std::process::Command::new(b).arg("-v").output().is_ok())
            .unwrap_or_else(|| {
                panic!("HAProxy is not installed: run `scripts/tools haproxy` (or `scripts/cluster-test`)")
            });
        let listen = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(repository().join("deploy/haproxy.cfg"))
            .env("TIMEBUCKET_LB_LISTEN", &listen)
            .env("TIMEBUCKET_LB_ADMIN", &admin)
            .env("TIMEBUCKET_REPLICA_1", &replicas[0].address)
            .env("TIMEBUCKET_REPLICA_2", &replicas[1].address)
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let haproxy = Haproxy {
            url: format!("http://{listen}"),
            admin,
            child,
            log_file: log,
        };
        for server in ["replica1", "replica2"] {
            haproxy.wait_status(server, "UP").await;
        }
        haproxy
    }

    /// One command on the admin socket; its answer.
    pub async fn admin(&self, command: &str) -> String {
        self.try_admin(command)
            .await
            .unwrap_or_else(|e| panic!("HAProxy's admin socket: {e}\n{}", self.log()))
    }

    async fn try_admin(&self, command: &str) -> std::io::Result<String> {
        let mut stream = tokio::net::TcpStream::connect(&self.admin).await?;
        stream.write_all(format!("{command}\n").as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer)
    }

    /// A field of `server`'s line in `show stat` (`status`, `scur`, ...).
    pub async fn stat(&self, server: &str, field: &str) -> String {
        self.try_stat(server, field)
            .await
            .unwrap_or_else(|e| panic!("HAProxy's admin socket: {e}\n{}", self.log()))
    }

    async fn try_stat(&self, server: &str, field: &str) -> std::io::Result<String> {
        let csv = self.try_admin("show stat").await?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = header
            .iter()
            .position(|h| *h == field)
            .unwrap_or_else(|| panic!("no {field} in show stat: {csv}"));
        Ok(lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|row| row.first() == Some(&"replicas") && row.get(1) == Some(&server))
            .and_then(|row| row.get(column).map(|v| v.to_string()))
            .unwrap_or_else(|| panic!("no server {server} in show stat: {csv}")))
    }

    /// Waits until HAProxy reports `server` with `status` (`UP`, `DOWN`, `MAINT`, `DRAIN`);
    /// while it starts, its admin socket may not answer yet.
    pub async fn wait_status(&self, server: &str, status: &str) {
        let what = format!("HAProxy reports {server} {status}");
        eventually(Duration::from_secs(30), &what, || async {
            matches!(self.try_stat(server, "status").await, Ok(s) if s == status)
        })
        .await;
    }

    /// HAProxy's own log (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file.path()).unwrap_or_default()
    }

    /// Whether HAProxy is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}
