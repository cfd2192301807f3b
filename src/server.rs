//! `timebucket serve`: wires the WAL, the store, the flusher and the HTTP API together, and
//! shuts them down in the order that loses nothing.
//!
//! Shutdown order: stop accepting HTTP (in-flight requests finish, so every 202 already sent is
//! in the WAL) → let the flusher catch up → stop it (whatever it had not confirmed is still in
//! the WAL and is replayed at the next start) → close the WAL. `shutdown_deadline` bounds the
//! HTTP drain and the flusher's catch-up together: at the deadline, connections still open are
//! closed (their requests get no answer, and nothing is acknowledged that is not in the WAL)
//! and the flusher is stopped.
//!
//! The HTTP listener ending by itself (a broken listener, a panic) ends `serve` with an error
//! after the same orderly stop, so the process exits non-zero instead of running deaf.

pub mod http;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinError;
use tokio::time::Instant;

use crate::api::{self, AppState, Health};
use crate::ingest::{AcceptConfig, Acceptor, Flusher, FlusherConfig};
use crate::migrate::{MigrateError, SettingsRequest};
use crate::model::Settings;
use crate::query::{Queries, QueryLimits};
use crate::store::cql::{CqlStore, Keyspace};
use crate::store::embedded::EmbeddedStore;
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
use crate::wal::{Wal, WalConfig, WalError, DEFAULT_MAX_RECORD_BYTES};
pub use http::HttpLimits;

/// How often the store is pinged for readiness.
const PING_EVERY: Duration = Duration::from_secs(5);

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// CQL contact points; empty means the embedded store in `<data_dir>/store`.
    pub cql_nodes: Vec<String>,
    /// The CQL keyspace.
    pub keyspace: Keyspace,
    /// WAL (and embedded store) directory.
    pub data_dir: PathBuf,
    /// WAL segment size, bytes.
    pub wal_segment_bytes: u64,
    /// Start on a corrupt WAL by dropping the damaged records instead of refusing to start.
    pub wal_repair: bool,
    /// Limits of the accepting side.
    pub accept: AcceptLimits,
    /// Flusher tuning.
    pub flusher: FlusherConfig,
    /// How long shutdown waits for requests in progress and then the flusher, together.
    pub shutdown_deadline: Duration,
    /// Bounds of the HTTP listener.
    pub http: HttpLimits,
    /// Limits of the query endpoints.
    pub query: QueryLimits,
    /// Requested deployment settings: recorded when the embedded store is created, otherwise
    /// checked against the recorded ones.
    pub settings: SettingsRequest,
}

/// The ingest limits that do not depend on the store's settings.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    /// Largest decompressed body, bytes.
    pub max_body_bytes: usize,
    /// WAL backlog past which ingest answers 503, bytes.
    pub max_backlog_bytes: u64,
    /// Bodies read and decoded at once.
    pub max_concurrent: usize,
    /// Longest time a body may take to arrive.
    pub body_read_timeout: Duration,
}

/// Why `serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The WAL could not be opened or failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The flusher stopped on an error it cannot retry.
    #[error("the flusher stopped: {0}")]
    Flusher(#[from] crate::ingest::flusher::FlushError),
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Http(#[from] std::io::Error),
    /// The HTTP server panicked.
    #[error("HTTP server panicked: {0}")]
    HttpPanicked(String),
    /// A settings flag is invalid or disagrees with the store's recorded settings.
    #[error("{0}")]
    Settings(String),
}

/// Runs the service on `listener` until `shutdown` resolves.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // A record must fit in an empty segment (16-byte header + 8-byte frame header).
    let max_record_bytes = config
        .wal_segment_bytes
        .saturating_sub(24)
        .min(u64::from(DEFAULT_MAX_RECORD_BYTES));
    let wal = Wal::open(WalConfig {
        segment_bytes: config.wal_segment_bytes,
        max_record_bytes: u32::try_from(max_record_bytes).unwrap_or(DEFAULT_MAX_RECORD_BYTES),
        repair: config.wal_repair,
        count_readings: crate::ingest::record::reading_count,
        ..WalConfig::new(config.data_dir.join("wal"))
    })?;
    let wal_dir = config.data_dir.join("wal");
    if config.cql_nodes.is_empty() {
        let dir = config.data_dir.join("store");
        let fresh = config
            .settings
            .resolve_fresh()
            .map_err(|e| ServeError::Settings(e.to_string()))?;
        let store = Arc::new(EmbeddedStore::open_with(&dir, fresh)?);
        check_settings(
            &config.settings,
            store.settings(),
            &format!("the embedded store at {}", dir.display()),
            "when the store is first opened",
        )?;
        tracing::info!(backend = "embedded", store = %dir.display(), wal = %wal_dir.display(),
            settings = ?store.settings(), "store opened (no --cql-nodes: using the embedded store)");
        serve_with(store, wal, &config, listener, shutdown).await
    } else {
        let store = Arc::new(CqlStore::open(&config.cql_nodes, &config.keyspace).await?);
        check_settings(
            &config.settings,
            store.settings(),
            &format!("keyspace {}", config.keyspace),
            "by the first `migrate up`",
        )?;
        tracing::info!(backend = "cql", nodes = %config.cql_nodes.join(","), keyspace = %config.keyspace,
            settings = ?store.settings(), wal = %wal_dir.display(), "store opened");
        serve_with(store, wal, &config, listener, shutdown).await
    }
}

/// Refuses to serve when a settings flag disagrees with what `store` recorded.
fn check_settings(
    request: &SettingsRequest,
    recorded: &Settings,
    store: &str,
    fixed: &str,
) -> Result<(), ServeError> {
    request.check_against(recorded).map_err(|e| match e {
        MigrateError::SettingsConflict {
            name,
            recorded,
            requested,
        } => ServeError::Settings(format!(
            "setting {name} is recorded as {recorded} in {store} and cannot change (asked for \
             {requested}); settings are fixed {fixed}"
        )),
        other => ServeError::Settings(other.to_string()),
    })
}

async fn serve_with<S: Store>(
    store: Arc<S>,
    wal: Wal,
    config: &ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::new());
    let (flush_ok_tx, flush_ok) = watch::channel(true);
    let (reachable_tx, store_reachable) = watch::channel(true);
    let (flusher, flusher_handle) = Flusher::new(
        wal.clone(),
        store.clone(),
        metrics.clone(),
        config.flusher,
        flush_ok_tx,
    );
    let mut flusher_task = tokio::spawn(flusher.run());
    let pinger = tokio::spawn(ping_forever(store.clone(), reachable_tx));

    let retention_ms = i64::from(store.settings().ttl_seconds) * 1000;
    let acceptor = Acceptor::new(
        wal.clone(),
        AcceptConfig {
            max_body_bytes: config.accept.max_body_bytes,
            max_backlog_bytes: config.accept.max_backlog_bytes,
            max_concurrent: config.accept.max_concurrent,
            body_read_timeout: config.accept.body_read_timeout,
            retention_ms,
        },
        metrics.clone(),
    );
    let state = AppState {
        acceptor,
        wal: wal.clone(),
        metrics,
        health: Health {
            store_reachable,
            flush_ok,
        },
        queries: Queries::new(store.clone(), config.query),
    };
    tracing::info!(address = %listener.local_addr()?, "listening");
    let (stop_tx, stop_rx) = oneshot::channel::<Instant>();
    // A dropped sender (an early return) stops the listener with no drain.
    let stop = async move { stop_rx.await.unwrap_or_else(|_| Instant::now()) };
    let mut http_task = tokio::spawn(http::serve(listener, api::router(state), config.http, stop));
    // The shutdown signal, the flusher failing and the HTTP listener ending each stop the rest.
    tokio::pin!(shutdown);
    let ended = tokio::select! {
        () = &mut shutdown => Ended::Signal,
        outcome = &mut flusher_task => Ended::Flusher(outcome),
        outcome = &mut http_task => Ended::Http(outcome),
    };
    let deadline = Instant::now() + config.shutdown_deadline;
    tracing::info!("shutting down: no new requests");
    let (http_outcome, flusher_failed) = match ended {
        Ended::Http(outcome) => {
            let outcome = http_outcome(outcome).and_then(|()| {
                Err(ServeError::Http(std::io::Error::other(
                    "the HTTP listener stopped unasked",
                )))
            });
            (outcome, None)
        }
        Ended::Flusher(outcome) => {
            let _ = stop_tx.send(deadline);
            (http_outcome(http_task.await), Some(outcome))
        }
        Ended::Signal => {
            let _ = stop_tx.send(deadline);
            (http_outcome(http_task.await), None)
        }
    };
    if let Err(error) = &http_outcome {
        tracing::error!(%error, "the HTTP server failed; stopping");
    }
    pinger.abort();
    if let Some(outcome) = flusher_failed {
        outcome.expect("flusher panicked")?;
        return http_outcome;
    }
    flusher_handle.drain();
    match tokio::time::timeout_at(deadline, &mut flusher_task).await {
        Ok(outcome) => outcome.expect("flusher panicked")?,
        Err(_) => {
            flusher_task.abort();
            let backlog_bytes = wal.stats().backlog_bytes;
            if backlog_bytes > 0 {
                tracing::warn!(
                    backlog_bytes,
                    "shutdown deadline passed; the rest stays in the WAL for the next start"
                );
            }
        }
    }
    if let Err(error) = wal.close() {
        tracing::warn!(%error, "closing the WAL");
    }
    tracing::info!("stopped");
    http_outcome
}

/// What started the shutdown.
enum Ended {
    /// The shutdown signal.
    Signal,
    /// The flusher stopped (on an error it cannot retry).
    Flusher(Result<Result<(), crate::ingest::flusher::FlushError>, JoinError>),
    /// The HTTP listener ended by itself.
    Http(Result<std::io::Result<()>, JoinError>),
}

/// How the HTTP task ended, as `serve`'s outcome.
fn http_outcome(outcome: Result<std::io::Result<()>, JoinError>) -> Result<(), ServeError> {
    match outcome {
        Ok(result) => Ok(result?),
        Err(error) if error.is_panic() => Err(ServeError::HttpPanicked(error.to_string())),
        Err(error) => Err(ServeError::Http(std::io::Error::other(error))),
    }
}

async fn ping_forever<S: Store>(store: Arc<S>, reachable: watch::Sender<bool>) {
    loop {
        let ok = match tokio::time::timeout(PING_EVERY, store.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(%error, "store ping failed");
                false
            }
            Err(_) => false,
        };
        reachable.send_replace(ok);
        tokio::time::sleep(PING_EVERY).await;
    }
}
