//! Fixtures: the CQL node under test and a fresh keyspace per test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use scylla::client::session::Session;
use timebucket::migrate::{self, Replication, SettingsRequest, UpOptions};
use timebucket::store::cql::{self, Keyspace};

/// The `host:port` of the node under test. A missing node fails the test with instructions; it
/// never skips.
pub fn cql_node() -> String {
    std::env::var("TIMEBUCKET_TEST_CQL").unwrap_or_else(|_| {
        panic!(
            "TIMEBUCKET_TEST_CQL is not set. These tests need a real Cassandra or Scylla node: \
             run `scripts/test` (it starts one with `scripts/cassandra start`), or start a node \
             yourself and set TIMEBUCKET_TEST_CQL=127.0.0.1:9042"
        )
    })
}

/// A session to the node under test.
pub async fn session() -> Session {
    let node = cql_node();
    cql::connect(std::slice::from_ref(&node)).await.unwrap_or_else(|e| {
        panic!("cannot reach the CQL node at {node} ({e}). Start one with `scripts/cassandra start`")
    })
}

/// A keyspace name no other test uses.
pub fn fresh_keyspace() -> Keyspace {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("tb_test_{}", &id[..12])
        .parse()
        .expect("valid keyspace")
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

/// The service's configuration for tests: WAL and store under `data_dir`, fast retries, the
/// default limits and no settings flags. Empty `cql_nodes` means the embedded store.
pub fn serve_config(
    cql_nodes: Vec<String>,
    keyspace: Keyspace,
    data_dir: &Path,
) -> timebucket::server::ServeConfig {
    timebucket::server::ServeConfig {
        cql_nodes,
        keyspace,
        data_dir: data_dir.to_path_buf(),
        wal_segment_bytes: 1 << 20,
        wal_repair: false,
        accept: timebucket::server::AcceptLimits {
            max_body_bytes: 8 << 20,
            max_backlog_bytes: 1 << 30,
            max_concurrent: 8,
        },
        flusher: timebucket::ingest::FlusherConfig {
            retry_initial: Duration::from_millis(50),
            retry_max: Duration::from_millis(500),
            ..Default::default()
        },
        shutdown_deadline: Duration::from_secs(10),
        query: Default::default(),
        settings: SettingsRequest::default(),
    }
}

/// Starts the service in-process and waits until it answers.
pub async fn spawn_app(options: AppOptions) -> TestApp {
    let keyspace = match options.keyspace {
        Some(k) => k,
        None => migrated_keyspace().await,
    };
    let data_dir = tempfile::tempdir().unwrap();
    let config = timebucket::server::ServeConfig {
        accept: timebucket::server::AcceptLimits {
            max_body_bytes: options.max_body_bytes,
            max_backlog_bytes: options.max_backlog_bytes,
            max_concurrent: 8,
        },
        query: options.query,
        ..serve_config(vec![options.cql_node], keyspace.clone(), data_dir.path())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
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
