//! Fixtures: the CQL node under test and a fresh keyspace per test, dropped when the test ends.

mod containers;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use scylla::client::session::Session;
use timebucket::ingest::AcceptLimits;
use timebucket::migrate::{self, Replication, SettingsRequest, UpOptions};
use timebucket::server::{ServeConfig, StoreTarget};
use timebucket::store::cql::{self, Keyspace};
use timebucket::wal::WalConfig;

/// The `host:port` of the node under test: a container started for this test binary when
/// `TIMEBUCKET_TEST_CONTAINERS=1` ([`containers`]), else `TIMEBUCKET_TEST_CQL`. A missing node
/// fails the test with instructions; it never skips.
pub fn cql_node() -> String {
    if containers::enabled() {
        return containers::node();
    }
    std::env::var("TIMEBUCKET_TEST_CQL").unwrap_or_else(|_| {
        panic!(
            "TIMEBUCKET_TEST_CQL is not set. These tests need a real Cassandra or Scylla node: \
             run `scripts/test` (it starts one with `scripts/cassandra start`), or start a node \
             yourself and set TIMEBUCKET_TEST_CQL=127.0.0.1:9042, or set \
             TIMEBUCKET_TEST_CONTAINERS=1 to have the tests start one in a container"
        )
    })
}

/// The node under test if one is known without starting anything.
fn known_cql_node() -> Option<String> {
    if containers::enabled() {
        containers::started_node()
    } else {
        std::env::var("TIMEBUCKET_TEST_CQL").ok()
    }
}

/// A session to the node under test.
pub async fn session() -> Session {
    let node = cql_node();
    cql::connect(std::slice::from_ref(&node)).await.unwrap_or_else(|e| {
        panic!("cannot reach the CQL node at {node} ({e}). Start one with `scripts/cassandra start`")
    })
}

/// A keyspace name no other test uses. The keyspace (if the test creates it) is dropped when the
/// test ends, passed or failed: every table costs the node heap, and hundreds of leftover
/// keyspaces starve a small node.
pub fn fresh_keyspace() -> Keyspace {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let keyspace: Keyspace = format!("tb_test_{}", &id[..12])
        .parse()
        .expect("valid keyspace");
    MADE_BY_THIS_TEST.with(|made| made.0.borrow_mut().push(keyspace.clone()));
    keyspace
}

thread_local! {
    /// The keyspaces named by the test running on this thread. libtest runs each test on a
    /// thread of its own and joins it, so this guard's destructor runs exactly when the test
    /// ends, before the test binary exits; tests keep plain [`Keyspace`] values.
    static MADE_BY_THIS_TEST: DropAtTestEnd = const { DropAtTestEnd(RefCell::new(Vec::new())) };
}

/// Drops its keyspaces when the test's thread ends.
struct DropAtTestEnd(RefCell<Vec<Keyspace>>);

impl Drop for DropAtTestEnd {
    fn drop(&mut self) {
        let keyspaces = self.0.take();
        if keyspaces.is_empty() {
            return;
        }
        let (done, finished) = std::sync::mpsc::channel();
        // The dropper may be gone (no CQL node: the test has failed already); then nothing to do.
        if keyspace_dropper().send((keyspaces, done)).is_ok() {
            let _ = finished.recv();
        }
    }
}

type DropRequest = (Vec<Keyspace>, std::sync::mpsc::Sender<()>);

/// One thread, with its own runtime and session, that drops keyspaces for every test: a test's
/// own runtime is already gone when its thread ends, and one session serves them all.
fn keyspace_dropper() -> &'static tokio::sync::mpsc::UnboundedSender<DropRequest> {
    static DROPPER: OnceLock<tokio::sync::mpsc::UnboundedSender<DropRequest>> = OnceLock::new();
    DROPPER.get_or_init(|| {
        let (requests, mut incoming) = tokio::sync::mpsc::unbounded_channel::<DropRequest>();
        std::thread::Builder::new()
            .name("keyspace-dropper".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the keyspace dropper");
                runtime.block_on(async move {
                    let Some(node) = known_cql_node() else {
                        return;
                    };
                    let session = match cql::connect(std::slice::from_ref(&node)).await {
                        Ok(session) => session,
                        Err(error) => {
                            eprintln!(
                                "test keyspaces are not dropped: cannot reach {node}: {error}"
                            );
                            return;
                        }
                    };
                    while let Some((keyspaces, done)) = incoming.recv().await {
                        for keyspace in keyspaces {
                            let statement = format!("DROP KEYSPACE IF EXISTS {keyspace}");
                            if let Err(error) = session.query_unpaged(statement, ()).await {
                                eprintln!("cannot drop test keyspace {keyspace}: {error}");
                            }
                        }
                        let _ = done.send(());
                    }
                });
            })
            .expect("the keyspace dropper thread");
        requests
    })
}

/// Drops a finished test's keyspace from the shared test node (leftover keyspaces weigh on its
/// heap).
pub async fn drop_keyspace(keyspace: &impl std::fmt::Display) {
    session()
        .await
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
        .await
        .unwrap();
}

/// The migrations shipped with the crate.
pub fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")
}

/// `up` options for `keyspace` with default settings.
pub fn up_options(keyspace: &Keyspace) -> UpOptions {
    UpOptions {
        keyspace: keyspace.clone(),
        replication: Replication::Simple(1),
        settings: SettingsRequest::default(),
        lock_wait: Duration::from_secs(120),
    }
}

/// A fresh keyspace with every shipped migration applied.
pub async fn migrated_keyspace() -> Keyspace {
    let keyspace = fresh_keyspace();
    let migrations = migrate::source::load_dir(&migrations_dir()).unwrap();
    migrate::up(&session().await, &migrations, &up_options(&keyspace))
        .await
        .unwrap();
    keyspace
}

/// A service running in this process on a free port, over its own keyspace and data dir.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The keyspace it writes to.
    pub keyspace: Keyspace,
    /// Its WAL directory, removed when the app is dropped.
    _data_dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), timebucket::server::ServeError>>>,
}

/// How to start a [`TestApp`].
#[derive(Clone)]
pub struct AppOptions {
    /// CQL contact point (the node under test, or a proxy in front of it).
    pub cql_node: String,
    /// Keyspace; a freshly migrated one when `None`.
    pub keyspace: Option<Keyspace>,
    /// WAL backlog limit, bytes.
    pub max_backlog_bytes: u64,
    /// Largest decompressed body, bytes.
    pub max_body_bytes: usize,
    /// Limits of the query endpoints.
    pub query: timebucket::query::QueryLimits,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            cql_node: cql_node(),
            keyspace: None,
            max_backlog_bytes: 1 << 30,
            max_body_bytes: 8 << 20,
            query: Default::default(),
        }
    }
}

/// The service's configuration for tests: WAL and store under `data_dir`, 1 MiB WAL segments,
/// fast retries, the default limits and no settings flags. Empty `cql_nodes` means the embedded
/// store.
pub fn serve_config(
    cql_nodes: Vec<String>,
    keyspace: Keyspace,
    data_dir: &Path,
) -> timebucket::server::ServeConfig {
    let store = if cql_nodes.is_empty() {
        StoreTarget::Embedded {
            dir: data_dir.join("store"),
        }
    } else {
        StoreTarget::Cql {
            nodes: cql_nodes,
            keyspace,
        }
    };
    let defaults = ServeConfig::with_defaults(store, data_dir);
    ServeConfig {
        wal: WalConfig {
            segment_bytes: 1 << 20,
            max_record_bytes: WalConfig::largest_record_in(1 << 20) as u32,
            ..defaults.wal.clone()
        },
        flusher: timebucket::ingest::FlusherConfig {
            retry_initial: Duration::from_millis(50),
            retry_max: Duration::from_millis(500),
            ..Default::default()
        },
        ..defaults
    }
}

/// Starts the service in-process and waits until it answers.
pub async fn spawn_app(options: AppOptions) -> TestApp {
    let keyspace = match options.keyspace {
        Some(k) => k,
        None => migrated_keyspace().await,
    };
    let data_dir = tempfile::tempdir().unwrap();
    let config = ServeConfig {
        accept: AcceptLimits {
            max_body_bytes: options.max_body_bytes,
            max_backlog_bytes: options.max_backlog_bytes,
            ..AcceptLimits::default()
        },
        query: options.query,
        ..serve_config(vec![options.cql_node], keyspace, data_dir.path())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_with(config, data_dir, listener).await
}

/// Starts the service in-process on `config` and `listener` and waits until it answers;
/// `data_dir` (the config's) lives as long as the app.
pub async fn spawn_with(
    config: timebucket::server::ServeConfig,
    data_dir: tempfile::TempDir,
    listener: tokio::net::TcpListener,
) -> TestApp {
    let url = format!("http://{}", listener.local_addr().unwrap());
    // An embedded app has no keyspace; its name is never used.
    let keyspace = match &config.store {
        StoreTarget::Cql { keyspace, .. } => keyspace.clone(),
        StoreTarget::Embedded { .. } => "embedded".parse().expect("a valid keyspace name"),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(timebucket::server::run(config, listener, async {
        let _ = stopped.await;
    }));
    let mut app = TestApp {
        url,
        keyspace,
        _data_dir: data_dir,
        stop: Some(stop),
        task: Some(task),
    };
    app.wait_until_up().await;
    app
}

/// The embedded-store service's configuration for tests, in `data_dir` (no CQL node needed).
pub fn embedded_config(data_dir: &Path) -> timebucket::server::ServeConfig {
    serve_config(Vec::new(), fresh_keyspace(), data_dir)
}

/// Starts the service in-process on the embedded store in `data_dir` (which may already hold a
/// store written by the test), with the default limits.
pub async fn spawn_embedded_app(data_dir: tempfile::TempDir) -> TestApp {
    let config = embedded_config(data_dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_with(config, data_dir, listener).await
}

impl TestApp {
    async fn wait_until_up(&mut self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                let outcome = self.task.take().unwrap().await;
                panic!("the service stopped during start: {outcome:?}");
            }
            if let Ok(r) = client.get(format!("{}/healthz", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service at {} did not come up", self.url);
    }

    /// Stops the service gracefully and returns how `serve` ended.
    pub async fn stop(mut self) -> Result<(), timebucket::server::ServeError> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }

    /// Stops the service gracefully and hands its data dir back, for a restart on it.
    pub async fn stop_keeping_data(
        mut self,
    ) -> (
        Result<(), timebucket::server::ServeError>,
        tempfile::TempDir,
    ) {
        let _ = self.stop.take().unwrap().send(());
        let outcome = self.task.take().unwrap().await.unwrap();
        let dir = std::mem::replace(&mut self._data_dir, tempfile::tempdir().unwrap());
        (outcome, dir)
    }

    /// How `serve` ended by itself (without being stopped), or `None` if it still runs after
    /// `within`.
    pub async fn ended_within(
        &mut self,
        within: Duration,
    ) -> Option<Result<(), timebucket::server::ServeError>> {
        let task = self.task.as_mut().unwrap();
        let outcome = tokio::time::timeout(within, task).await.ok()?;
        self.task = None;
        Some(outcome.unwrap())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One row of `metric_readings`, as the tests compare them.
#[derive(Debug, Clone, PartialEq, scylla::DeserializeRow)]
pub struct StoredApi {
    pub service_name: String,
    pub time_bucket: i64,
    pub seq: i32,
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub reading_id: uuid::Uuid,
    pub instance: String,
    pub method: String,
    pub path: String,
    pub code: i32,
    pub duration_ms: f64,
    pub count: i32,
}

/// Every API reading stored in `keyspace` (a full, paged scan: test keyspaces are small).
pub async fn stored_api_readings(session: &Session, keyspace: &Keyspace) -> Vec<StoredApi> {
    use futures::TryStreamExt;
    let text = format!(
        "SELECT service_name, time_bucket, seq, timestamp, reading_id, instance, method, path, code, duration_ms, count \
         FROM {keyspace}.metric_readings"
    );
    let prepared = session.prepare(text).await.unwrap();
    session
        .execute_iter(prepared, ())
        .await
        .unwrap()
        .rows_stream::<StoredApi>()
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// Polls until `check` holds for the stored API readings, or panics after `within`.
pub async fn eventually_stored(
    session: &Session,
    keyspace: &Keyspace,
    within: Duration,
    what: &str,
    check: impl Fn(&[StoredApi]) -> bool,
) -> Vec<StoredApi> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let rows = stored_api_readings(session, keyspace).await;
        if check(&rows) {
            return rows;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "{what}: not true after {within:?}; {} rows stored",
                rows.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `timebucket` binary cargo built, with no `TIMEBUCKET_*`, `RUST_LOG` or `NO_COLOR`
/// setting of the caller leaking in: a test sets what it means.
pub fn timebucket_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_timebucket"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("TIMEBUCKET_") || name == "RUST_LOG" || name == "NO_COLOR" {
            command.env_remove(name.as_ref());
        }
    }
    command
}

/// The Python of the project's tools virtualenv (`scripts/tools python` installs it, with the
/// packages of `scripts/tools.d/requirements.txt`); a missing one fails the test with the fix,
/// naming `what` the test needs from it.
pub fn tools_python(what: &str) -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/tools python (it installs {what} into .tools/venv)",
        python.display()
    );
    python
}

/// A sample of `/metrics` at `url` (see [`sample`]).
pub async fn metric(url: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    sample(&text, name)
}

/// A sample of Prometheus text: the first line starting with `name`, then a space or `{`.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| {
            l.starts_with(name)
                && l.as_bytes()
                    .get(name.len())
                    .is_some_and(|b| *b == b' ' || *b == b'{')
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Posts API and host readings (JSON objects, 500 per body) to `app` and waits until the store
/// has them all.
pub async fn seed(app: &TestApp, api: Vec<serde_json::Value>, host: Vec<serde_json::Value>) {
    let client = reqwest::Client::new();
    let before = metric(&app.url, FLUSHED).await.unwrap_or(0.0);
    let total = (api.len() + host.len()) as f64;
    for (kind, readings) in [("api", api), ("host", host)] {
        for chunk in readings.chunks(500) {
            let answer = client
                .post(format!("{}/v1/metrics", app.url))
                .json(&serde_json::json!({ kind: chunk }))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap());
        }
    }
    wait_flushed(app, before + total).await;
}

const FLUSHED: &str = "timebucket_readings_flushed_total";

/// Waits until `app` counts `readings` flushed in all (`timebucket_readings_flushed_total`).
/// The count includes a piece's last readings only once the piece's latest rows and rollups are
/// stored, so then every table has them; raw readings can be read before (a piece ends where
/// the flusher catches up once it is a second old).
pub async fn wait_flushed(app: &TestApp, readings: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while metric(&app.url, FLUSHED).await.unwrap_or(0.0) < readings {
        assert!(
            std::time::Instant::now() < deadline,
            "{readings} readings were not flushed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A CQL store on the node under test, in a freshly migrated keyspace (returned too, so a test
/// can drop it).
pub async fn cql_store() -> (cql::CqlStore, Keyspace) {
    let keyspace = migrated_keyspace().await;
    let store = cql::CqlStore::open(&[cql_node()], &keyspace).await.unwrap();
    (store, keyspace)
}

/// An embedded store in a new temp dir (returned too: the store lives as long as it).
pub fn embedded_store() -> (
    timebucket::store::embedded::EmbeddedStore,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = timebucket::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
    (store, dir)
}
