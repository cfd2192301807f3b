//! The CQL node as a container, for `TIMEBUCKET_TEST_CONTAINERS=1`: started through the
//! `testcontainers` crate the first time a test asks for the node, shared by every test of the
//! binary (each works in its own keyspace), and removed when the test binary exits.
//!
//! The image is `TIMEBUCKET_TEST_CQL_IMAGE` (default [`DEFAULT_IMAGE`]); Scylla images run
//! laptop-sized (one shard, 1 GiB), like `docker-compose.yml` runs them. Where no registry can be
//! reached, `timebucket/cassandra:5.0` (built by `scripts/docker-images`) stands in. Only the CQL
//! port is published, on a free port of the engine's host: of 127.0.0.1 for a local engine (the
//! node is not offered to the network, and the developer's own 9042 stays free), of every address
//! for a `tcp://` `DOCKER_HOST` (the tests reach it through that host). The node is told to give
//! clients that host as its address: the driver pairs the address a node tells with the port it
//! first connected to.
//!
//! A [`GenericImage`] rather than `testcontainers-modules`: that crate's ScyllaDB module pins
//! its own tag and runs Scylla with its defaults (every core, most of the memory), and it has no
//! Cassandra module; either image needs only its CQL port published and a readiness check. The
//! check is the same for both (their log lines differ): the node is ready once a CQL session
//! connects.
//!
//! Removal: the container's handle lives in a static, and statics are never dropped, so a small
//! watchdog process (`sh`, holding the read end of a pipe whose write end only this process
//! holds) runs `docker rm -f -v` once the test binary is gone, however it ends, even killed.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// The image started when `TIMEBUCKET_TEST_CQL_IMAGE` is not set: Scylla, as users run it.
pub const DEFAULT_IMAGE: &str = "scylladb/scylla:6.2";
/// The local stand-in for Scylla made by `scripts/docker-images`.
const LOCAL_IMAGE: &str = "timebucket/cassandra:5.0";
/// How long the node may take to answer CQL after its container started.
const READY_WITHIN: Duration = Duration::from_secs(240);
/// Scylla's arguments for a small machine: one shard, 1 GiB, polite to other processes.
const SCYLLA_ARGS: [&str; 8] = [
    "--smp",
    "1",
    "--memory",
    "1G",
    "--overprovisioned",
    "1",
    "--developer-mode",
    "1",
];
/// CQL's port inside the container.
const CQL_PORT: u16 = 9042;
/// Where a local engine publishes the CQL port.
const LOOPBACK: &str = "127.0.0.1";

/// Whether the tests get their CQL node from a container (`TIMEBUCKET_TEST_CONTAINERS=1`).
pub fn enabled() -> bool {
    std::env::var("TIMEBUCKET_TEST_CONTAINERS").is_ok_and(|v| v == "1")
}

/// The node's `host:port`, the container started on the first call. A container that cannot
/// be started fails every test that needs it, with the reason and what to do.
pub fn node() -> String {
    static NODE: OnceLock<Result<String, String>> = OnceLock::new();
    let started = NODE.get_or_init(|| {
        // A runtime of its own on a thread of its own: callers may be inside a test's runtime.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("no runtime to start the container: {e}"))?
                .block_on(start())
        })
        .join()
        .unwrap_or_else(|_| Err("starting the container panicked".to_owned()))
    });
    match started {
        Ok(node) => node.clone(),
        Err(why) => panic!(
            "TIMEBUCKET_TEST_CONTAINERS=1, but the CQL node's container did not start: {why}. \
             A Docker engine must be running (scripts/docker-images installs and starts one). \
             Where no image registry is reachable, build the local Cassandra image with \
             scripts/docker-images and set TIMEBUCKET_TEST_CQL_IMAGE={LOCAL_IMAGE}."
        ),
    }
}

/// The node's address if its container has been started (the keyspace dropper's question: it
/// must not start one).
pub fn started_node() -> Option<String> {
    RUNNING
        .lock()
        .ok()?
        .as_ref()
        .map(|running| running.node.clone())
}

/// The started container, kept for the life of the test binary.
struct Running {
    node: String,
    _container: ContainerAsync<GenericImage>,
    _watchdog: Option<Watchdog>,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

async fn start() -> Result<String, String> {
    let reference =
        std::env::var("TIMEBUCKET_TEST_CQL_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_owned());
    let (name, tag) = split_reference(&reference);
    let mut request = GenericImage::new(name, tag)
        .with_exposed_port(CQL_PORT.tcp())
        .with_wait_for(WaitFor::Nothing)
        .with_label("org.timebucket.test", "cql-node");
    // The driver reaches every node at the address the node tells (system.local's rpc_address)
    // and the port it first connected to: the node must tell the published side.
    let remote = remote_engine_host();
    let host = remote.clone().unwrap_or_else(|| LOOPBACK.to_owned());
    if remote.is_none() {
        request = request.with_host_config_modifier(publish_cql_on_loopback);
    }
    if name.contains("scylla") {
        request = request.with_cmd(
            SCYLLA_ARGS
                .into_iter()
                .chain(["--broadcast-rpc-address", &host]),
        );
    } else {
        request = request.with_env_var("CASSANDRA_BROADCAST_RPC_ADDRESS", &host);
    }
    let container = request
        .start()
        .await
        .map_err(|e| format!("image {reference}: {e}"))?;
    let watchdog = Watchdog::spawn(container.id());
    let port = container
        .get_host_port_ipv4(CQL_PORT)
        .await
        .map_err(|e| format!("the container's CQL port: {e}"))?;
    let node = format!("{host}:{port}");
    wait_for_cql(&node).await.map_err(|why| {
        format!(
            "{reference} (container {}) at {node}: {why}",
            container.id()
        )
    })?;
    eprintln!(
        "CQL node: {reference} in container {} at {node}",
        container.id()
    );
    *RUNNING.lock().map_err(|e| e.to_string())? = Some(Running {
        node: node.clone(),
        _container: container,
        _watchdog: watchdog,
    });
    Ok(node)
}

/// Publishes only the CQL port, on a free port of 127.0.0.1. (testcontainers publishes every
/// port the image exposes, on every address: Scylla's image exposes its inter-node and admin
/// ports too.)
fn publish_cql_on_loopback(config: &mut HostConfig) {
    config.publish_all_ports = Some(false);
    config.port_bindings = Some(HashMap::from([(
        format!("{CQL_PORT}/tcp"),
        Some(vec![PortBinding {
            host_ip: Some(LOOPBACK.to_owned()),
            // Empty: the engine picks a free port.
            host_port: Some(String::new()),
        }]),
    )]));
}

/// The host of a `tcp://` `DOCKER_HOST`, where that engine publishes ports; `None` for a local
/// engine (its socket). (Not testcontainers' `get_host()`: inside any container, `/.dockerenv`,
/// it answers the bridge's gateway, which the node could not tell before it starts.)
fn remote_engine_host() -> Option<String> {
    std::env::var("DOCKER_HOST").ok().and_then(|url| {
        let rest = url
            .strip_prefix("tcp://")
            .or_else(|| url.strip_prefix("http://"))
            .or_else(|| url.strip_prefix("https://"))?;
        let authority = rest.split('/').next()?;
        Some(
            authority
                .rsplit_once(':')
                .map_or(authority, |(h, _)| h)
                .to_owned(),
        )
    })
}

/// `(name, tag)` of `name[:tag]`; a `:` in the registry's `host:port` is not a tag.
fn split_reference(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (reference, "latest"),
    }
}

/// Waits until a CQL session to `node` connects.
async fn wait_for_cql(node: &str) -> Result<(), String> {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        match timebucket::store::cql::connect(&[node.to_owned()]).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(format!("no CQL answer within {READY_WITHIN:?}: {e}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// A process that removes the container when this one has gone: it waits for end-of-file on a
/// pipe whose write end is this process's alone (Rust opens pipes close-on-exec), which the
/// kernel closes however the process ends.
struct Watchdog {
    _process: Child,
    _pipe: ChildStdin,
}

impl Watchdog {
    /// `None` when `TESTCONTAINERS_COMMAND=keep` asks to keep containers (to look into them), or
    /// when no shell can be started (then it says how to remove the container).
    fn spawn(container_id: &str) -> Option<Self> {
        if std::env::var("TESTCONTAINERS_COMMAND").is_ok_and(|c| c == "keep") {
            return None;
        }
        let removal = "cat >/dev/null; docker rm -f -v \"$0\" >/dev/null 2>&1";
        let spawned = Command::new("sh")
            .args(["-c", removal, container_id])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A group of its own: Ctrl-C in the terminal stops the tests, not the watchdog.
            .process_group(0)
            .spawn();
        let mut process = match spawned {
            Ok(process) => process,
            Err(e) => {
                eprintln!(
                    "no watchdog for container {container_id} ({e}): \
                     remove it with `docker rm -f -v {container_id}`"
                );
                return None;
            }
        };
        let pipe = process.stdin.take()?;
        Some(Self {
            _process: process,
            _pipe: pipe,
        })
    }
}
