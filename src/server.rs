//! `timebucket serve`: wires the WAL, the store, the flusher and the HTTP API together, and
//! shuts them down in the order that loses nothing.
//!
//! Shutdown order: stop accepting HTTP (in-flight requests finish, so every 202 already sent is
//! in the WAL) → let the flusher catch up for at most `shutdown_deadline` → stop it (whatever it
//! had not confirmed is still in the WAL and is replayed at the next start) → close the WAL.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, AppState, Health};
use crate::ingest::quarantine::Quarantine;
use crate::ingest::{AcceptConfig, Acceptor, Flusher, FlusherConfig};
use crate::migrate::{MigrateError, SettingsRequest};
use crate::model::Settings;
use crate::query::{Queries, QueryLimits};
use crate::store::cql::{CqlStore, Keyspace};
use crate::store::embedded::EmbeddedStore;
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
use crate::wal::{Wal, WalConfig, WalError, DEFAULT_MAX_RECORD_BYTES};

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
    /// Truncate a corrupt WAL at the damage instead of refusing to start.
    pub wal_repair: bool,
    /// Limits of the accepting side.
    pub accept: AcceptLimits,
    /// Flusher tuning.
    pub flusher: FlusherConfig,
    /// How long shutdown waits for the flusher to catch up.
    pub shutdown_deadline: Duration,
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
    /// Bodies decoded at once.
    pub max_concurrent: usize,
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
    let quarantine = Quarantine::in_data_dir(&config.data_dir);
    quarantine.report();
    let (flusher, flusher_handle) = Flusher::new(
        wal.clone(),
        store.clone(),
        metrics.clone(),
        config.flusher,
        quarantine,
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
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let http = axum::serve(listener, api::router(state)).with_graceful_shutdown(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    });
    // The flusher failing is fatal; so is the shutdown signal. Either stops HTTP first.
    let http_task = tokio::spawn(async move { http.await });
    tokio::pin!(shutdown);
    let flusher_failed = tokio::select! {
        () = &mut shutdown => None,
        outcome = &mut flusher_task => Some(outcome),
    };
    tracing::info!("shutting down: no new requests");
    let _ = stop_tx.send(true);
    let http_outcome = http_task.await.expect("HTTP task panicked");
    pinger.abort();
    if let Some(outcome) = flusher_failed {
        outcome.expect("flusher panicked")?;
        return Ok(http_outcome?);
    }
    flusher_handle.drain();
    match tokio::time::timeout(config.shutdown_deadline, &mut flusher_task).await {
        Ok(outcome) => outcome.expect("flusher panicked")?,
        Err(_) => {
            flusher_task.abort();
            tracing::warn!(
                backlog_bytes = wal.stats().backlog_bytes,
                "shutdown deadline passed; the rest stays in the WAL for the next start"
            );
        }
    }
    if let Err(error) = wal.close() {
        tracing::warn!(%error, "closing the WAL");
    }
    tracing::info!("stopped");
    Ok(http_outcome?)
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
