//! `timebucket serve`: wires the WAL, the store, the flusher and the HTTP API together, and
//! shuts them down in the order that loses nothing.
//!
//! Shutdown order: stop scraping and alerting (the evaluator lease is given up), stop accepting HTTP and OTLP (in-flight requests finish, so every 202 already
//! sent is in the WAL) → let the flusher catch up → stop it (whatever it had not confirmed is still in
//! the WAL and is replayed at the next start) → close the WAL. `shutdown_deadline` bounds the
//! HTTP drain and the flusher's catch-up together: at the deadline, connections still open are
//! closed (their requests get no answer, and nothing is acknowledged that is not in the WAL)
//! and the flusher is stopped.
//!
//! The HTTP listener ending by itself (a broken listener, a panic) ends `serve` with an error
//! after the same orderly stop, so the process exits non-zero instead of running deaf.

mod guard;
pub mod http;
mod otlp;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use crate::access::{AccessConfig, AccessError, TlsError};
use crate::alerting::{Alerting, AlertingConfig, AlertsView, RulesError};
use crate::api::{self, AppState, Health};
use crate::archive::auto::{self, ArchiveConfig};
use crate::archive::ArchiveError;
use crate::ingest::quarantine::Quarantine;
use crate::ingest::{AcceptConfig, AcceptLimits, Acceptor, Flusher, FlusherConfig};
use crate::migrate::{Described, MigrateError, SettingsRequest};
use crate::model::{Settings, TimestampMs};
use crate::promql::source::queries::QueriesSource;
use crate::promql::{Engine, EngineConfig};
use crate::query::{Queries, QueryLimits};
use crate::reload::ReloadHub;
use crate::scrape::{ConfigError, ScrapeSettings, Scraper};
use crate::store::alerting::AlertStore;
use crate::store::cql::alerting::CqlAlertStore;
use crate::store::cql::deferred::{DeferredCql, SettingsCache};
use crate::store::cql::session::level_name;
use crate::store::cql::{CqlSecurity, CqlStore, Keyspace, SessionConfig};
use crate::store::embedded::alerting::FileAlertStore;
use crate::store::embedded::recovering::Recovering;
use crate::store::embedded::EmbeddedStore;
use crate::store::watched::{Watched, WriteClock};
use crate::store::{RetentionHold, Store, StoreError};
use crate::telemetry::Metrics;
use crate::wal::{Wal, WalConfig, WalError};
pub use http::HttpLimits;
pub use otlp::OtlpListen;
use otlp::OtlpListeners;

/// How often the store is pinged for readiness, and how long a ping may take: a stalled store
/// shows in `/readyz` within two of these.
const PING_EVERY: Duration = Duration::from_secs(2);

/// Everything `serve` needs, validated (by [`crate::cli::ServeArgs::config`] for the binary).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where readings are stored.
    pub store: StoreTarget,
    /// Consistency levels of the CQL store (unused by the embedded store).
    pub cql_session: SessionConfig,
    /// The WAL: its directory, segment and record sizes, repair.
    pub wal: WalConfig,
    /// Limits of the accepting side.
    pub accept: AcceptLimits,
    /// Flusher tuning.
    pub flusher: FlusherConfig,
    /// How long shutdown waits for requests in progress and then the flusher, together.
    pub shutdown_deadline: Duration,
    /// A write to the store running longer than this makes `/readyz` report a stalled flush.
    pub flush_stall_timeout: Duration,
    /// Time between two runs of the rollup compactor.
    pub rollup_compaction_interval: Duration,
    /// Bounds of the HTTP listener.
    pub http: HttpLimits,
    /// Limits of the query endpoints.
    pub query: QueryLimits,
    /// Limits and lookback of the Prometheus query API.
    pub promql: EngineConfig,
    /// Requested deployment settings: recorded when the embedded store is created, otherwise
    /// checked against the recorded ones.
    pub settings: SettingsRequest,
    /// The OTLP receivers' addresses (each off when `None`).
    pub otlp: OtlpListen,
    /// Scraping: the scrape config file (none: no scraping) and this replica's share.
    pub scrape: ScrapeSettings,
    /// Alerting: rule files (none: no alerting), receivers, the evaluator lease.
    pub alerting: AlertingConfig,
    /// Where the flusher sets aside what the store refuses for good (`<data_dir>/quarantine`).
    pub quarantine: Quarantine,
    /// Where the CQL keyspace's settings are cached for a start during an outage
    /// (`<data_dir>/cql-settings.json`).
    pub settings_cache: SettingsCache,
    /// Access control: tokens, the `Host` allowlist, TLS.
    pub access: AccessConfig,
    /// Credentials and TLS of the CQL connections (with [`StoreTarget::Cql`]).
    pub cql: CqlSecurity,
    /// Automatic archiving of complete buckets (off when `None`).
    pub archive: Option<ArchiveConfig>,
}

impl ServeConfig {
    /// Default `shutdown_deadline`: long enough for a few flushes, short enough for an
    /// orchestrator's stop timeout.
    pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);
    /// Default `flush_stall_timeout`: a flush of a few MiB takes well under a second on a
    /// healthy store; 10 s is a stall, and a third of the CQL driver's request timeout.
    pub const DEFAULT_FLUSH_STALL_TIMEOUT: Duration = Duration::from_secs(10);

    /// Every default, over `store`, with the WAL in `<data_dir>/wal`.
    pub fn with_defaults(store: StoreTarget, data_dir: &Path) -> Self {
        Self {
            store,
            cql_session: SessionConfig::default(),
            wal: WalConfig::new(data_dir.join("wal")),
            accept: AcceptLimits::default(),
            flusher: FlusherConfig::default(),
            shutdown_deadline: Self::DEFAULT_SHUTDOWN_DEADLINE,
            flush_stall_timeout: Self::DEFAULT_FLUSH_STALL_TIMEOUT,
            rollup_compaction_interval: crate::rollup::compactor::INTERVAL,
            http: HttpLimits::default(),
            query: QueryLimits::default(),
            promql: EngineConfig::default(),
            settings: SettingsRequest::default(),
            otlp: OtlpListen::default(),
            scrape: ScrapeSettings::default(),
            alerting: AlertingConfig::off(data_dir.join("alerting")),
            quarantine: Quarantine::in_data_dir(data_dir),
            settings_cache: SettingsCache::in_data_dir(data_dir),
            access: AccessConfig::default(),
            cql: CqlSecurity::default(),
            archive: None,
        }
    }
}

/// Where `serve` stores readings.
#[derive(Debug, Clone)]
pub enum StoreTarget {
    /// A CQL cluster (Scylla / Cassandra) whose keyspace `migrate up` prepared.
    Cql {
        /// Contact points, `host:port`.
        nodes: Vec<String>,
        /// The keyspace.
        keyspace: Keyspace,
    },
    /// The embedded store in `dir` (created, with its settings, at the first start).
    Embedded {
        /// Its directory.
        dir: PathBuf,
    },
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
    /// An OTLP receiver's address cannot be listened on.
    #[error("cannot listen on {address} ({what}): {source}")]
    Listen {
        /// The address.
        address: std::net::SocketAddr,
        /// Which receiver.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The OTLP/gRPC server failed.
    #[error("OTLP/gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// A settings flag is invalid or disagrees with the store's recorded settings.
    #[error("{0}")]
    Settings(String),
    /// The scrape config cannot be used.
    #[error(transparent)]
    Scrape(#[from] ConfigError),
    /// The rule files cannot be used.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The access settings refuse to serve (no tokens beyond loopback), or the tokens file is bad.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The archive directory cannot be used (another process archives there, a bad manifest).
    #[error("--archive-dir: {0}")]
    Archive(#[from] ArchiveError),
}

/// Runs the service on `listener` until `shutdown` resolves.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // Serving beyond loopback without tokens, or unusable TLS files, stop the start first.
    let prepared = guard::prepare(&config, listener.local_addr()?)?;
    // A bad scrape config stops the start before anything is opened.
    if let Some(path) = &config.scrape.config_file {
        crate::scrape::config::load(path)?;
    }
    // So are bad rule files.
    if config.alerting.enabled() {
        crate::alerting::rules::load(
            &config.alerting.rule_files,
            config.alerting.default_interval,
        )?;
    }
    // Bound first, so a taken port stops `serve` before anything opens.
    let otlp = OtlpListeners::bind(config.otlp, TimestampMs::now()).await?;
    // Before the store opens: the archive's progress holds the embedded store's retention.
    let archive = config
        .archive
        .clone()
        .map(auto::Prepared::new)
        .transpose()?;
    let wal = Wal::open(config.wal.clone())?;
    let wal_dir = config.wal.dir.display();
    match &config.store {
        StoreTarget::Embedded { dir } => {
            let fresh = config
                .settings
                .resolve_fresh()
                .map_err(|e| ServeError::Settings(e.to_string()))?;
            let hold = archive
                .as_ref()
                .map_or_else(RetentionHold::none, |a| a.hold().clone());
            let store = EmbeddedStore::open_held(dir, fresh, hold)?;
            check_settings(
                &config.settings,
                store.settings(),
                &format!("the embedded store at {}", dir.display()),
                "when the store is first opened",
            )?;
            tracing::info!(backend = "embedded", store = %dir.display(), wal = %wal_dir,
                settings = %Described(store.settings()),
                "store opened (no --cql-nodes: using the embedded store)");
            let alerts = Arc::new(FileAlertStore::new(&config.alerting.state_dir));
            let store = Arc::new(Recovering::new(store, dir.clone()));
            let refusing = Some(store.refusing());
            serve_with(
                store,
                Some(alerts),
                refusing,
                archive,
                wal,
                &config,
                listener,
                otlp,
                prepared,
                shutdown,
            )
            .await
        }
        StoreTarget::Cql { nodes, keyspace } => {
            let bound = (listener, otlp, prepared);
            serve_cql(nodes, keyspace, (wal, archive), &config, bound, shutdown).await
        }
    }
}

/// The log line of a CQL store opened by `serve`.
fn log_opened(
    nodes: &[String],
    keyspace: &Keyspace,
    session: &SessionConfig,
    cql: &CqlStore,
    wal_dir: &str,
) {
    tracing::info!(backend = "cql", nodes = %nodes.join(","), %keyspace,
        write_consistency = level_name(session.write_consistency),
        read_consistency = level_name(session.read_consistency),
        settings = %Described(cql.settings()), wal = %wal_dir, "store opened");
}

/// Serves on a CQL cluster that may be unreachable: the WAL and HTTP start at once, the
/// connection is made in the background (see [`DeferredCql`]). Settings that conflict with the
/// flags stop `serve` with an error once they are known: at once from the cache, otherwise when
/// connected.
async fn serve_cql(
    nodes: &[String],
    keyspace: &Keyspace,
    (wal, archive): (Wal, Option<auto::Prepared>),
    config: &ServeConfig,
    (listener, otlp, prepared): (TcpListener, OtlpListeners, guard::Prepared),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let settings_error = |e: MigrateError| ServeError::Settings(e.to_string());
    let cache = config.settings_cache.clone();
    let provisional = match cache.load() {
        Ok(Some(cached)) => {
            check_settings(
                &config.settings,
                &cached,
                &format!("keyspace {keyspace}"),
                "by the first `migrate up`",
            )?;
            cached
        }
        Ok(None) => config.settings.resolve_fresh().map_err(settings_error)?,
        Err(error) => {
            tracing::warn!(%error, "ignoring the settings cache");
            config.settings.resolve_fresh().map_err(settings_error)?
        }
    };
    let store = DeferredCql::new(provisional);
    let session = config.cql_session;
    let what = format!("keyspace {keyspace}");
    let accept = |cql: &CqlStore| {
        check_settings(
            &config.settings,
            cql.settings(),
            &what,
            "by the first `migrate up`",
        )?;
        log_opened(
            nodes,
            keyspace,
            &session,
            cql,
            &config.wal.dir.display().to_string(),
        );
        Ok::<_, ServeError>(())
    };
    // One attempt before serving: a reachable cluster with the wrong settings or schema stops
    // the start at once, as before; an unreachable one is waited for in the background.
    let mut connect = None;
    match CqlStore::open_secured(nodes, keyspace, &session, &config.cql).await {
        Ok(cql) => {
            accept(&cql)?;
            store.install(cql, &cache);
        }
        Err(error) if !error.is_retryable() => return Err(error.into()),
        Err(error) => {
            store.failed(&error);
            let (store, nodes, keyspace) = (store.clone(), nodes.to_vec(), keyspace.clone());
            let (request, wal_dir) = (config.settings, config.wal.dir.display().to_string());
            let security = config.cql.clone();
            connect = Some(async move {
                let what = format!("keyspace {keyspace}");
                store
                    .connect_until_done(&nodes, &keyspace, &session, &security, &cache, |cql| {
                        check_settings(
                            &request,
                            cql.settings(),
                            &what,
                            "by the first `migrate up`",
                        )?;
                        log_opened(&nodes, &keyspace, &session, cql, &wal_dir);
                        Ok(())
                    })
                    .await
            });
        }
    }
    // The alerting tables (migration 0002) are needed only when there are rules, and the
    // evaluator needs its lease from the start: with rules, serving waits for the cluster.
    let mut alerts = None;
    if config.alerting.enabled() {
        if let Some(connect) = connect.take() {
            connect.await?;
        }
        let cql = store.get().expect("connected");
        alerts = Some(Arc::new(
            CqlAlertStore::open(cql.session().clone(), keyspace)
                .await?
                .with_write_profile(cql.write_profile().clone()),
        ));
    }
    // Settings found to conflict once connected stop `serve` as a shutdown would, with that error.
    let (failed_tx, failed) = tokio::sync::oneshot::channel();
    let connecting = connect.map(tokio::spawn);
    let stop_connecting = connecting.as_ref().map(JoinHandle::abort_handle);
    let shutdown = async move {
        tokio::pin!(shutdown);
        if let Some(connecting) = connecting {
            tokio::select! {
                () = &mut shutdown => return,
                outcome = connecting => {
                    if let Ok(Err(error)) = outcome {
                        let _ = failed_tx.send(error);
                        return;
                    }
                }
            }
        }
        // Connected: serve until the real shutdown.
        shutdown.await
    };
    let served = serve_with(
        store, alerts, None, archive, wal, config, listener, otlp, prepared, shutdown,
    )
    .await;
    if let Some(stop) = stop_connecting {
        stop.abort();
    }
    match failed.await {
        Ok(error) => Err(error),
        Err(_) => served,
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

#[allow(clippy::too_many_arguments)] // the parts `run` opened, each once
async fn serve_with<S: Store, A: AlertStore>(
    store: Arc<S>,
    alert_store: Option<Arc<A>>,
    store_refusing: Option<watch::Receiver<Option<String>>>,
    archive: Option<auto::Prepared>,
    wal: Wal,
    config: &ServeConfig,
    listener: TcpListener,
    otlp: OtlpListeners,
    prepared: guard::Prepared,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::new());
    let reload = ReloadHub::new();
    let width = store.settings().bucket_width;
    let access = guard::start(config, &prepared, metrics.clone(), width, &reload);
    let tls = prepared.tls;
    let (flush_ok_tx, flush_ok) = watch::channel(true);
    let (problem_tx, store_problem) = watch::channel(None);
    let quarantine = config.quarantine.clone();
    quarantine.report();
    let flush_clock = WriteClock::default();
    let (flusher, flusher_handle) = Flusher::new(
        wal.clone(),
        Arc::new(Watched::new(store.clone(), flush_clock.clone())),
        metrics.clone(),
        config.flusher,
        quarantine,
        flush_ok_tx,
    );
    let connected = store.clone();
    let mut flusher_task = tokio::spawn(async move {
        // Batches are grouped with the store's settings: never with provisional ones.
        connected.connected().await;
        flusher.run().await
    });
    let pinger = tokio::spawn(ping_forever(store.clone(), problem_tx));
    let archiver = archive.map(|a| tokio::spawn(auto::run(store.clone(), a, metrics.clone())));
    let compactor = tokio::spawn(crate::rollup::compactor::run(
        store.clone(),
        wal.clone(),
        config.rollup_compaction_interval,
        metrics.clone(),
    ));

    let retention_ms = i64::from(store.settings().ttl_seconds) * 1000;
    let mut acceptor = Acceptor::new(
        wal.clone(),
        AcceptConfig {
            limits: config.accept,
            retention_ms,
        },
        metrics.clone(),
    );
    if let Some(refusing) = store_refusing {
        acceptor = acceptor.refusing_while(refusing);
    }
    let (stop_tx, stop_rx) = watch::channel(None::<Instant>);
    let otlp_tasks = otlp.spawn(
        &acceptor,
        &metrics,
        config.http,
        (&access, tls.as_ref()),
        &stop_rx,
    )?;
    let queries = Queries::new(store.clone(), config.query);
    let scraper = Scraper::start(&config.scrape, acceptor.clone(), metrics.clone()).await?;
    if let Some(scraper) = scraper.clone() {
        reload.subscribe("scrape", move || {
            let scraper = scraper.clone();
            async move { Ok(scraper.reload().await?) }
        });
    }
    let promql = Engine::new(QueriesSource::new(queries.clone()), config.promql);
    let alerting = match alert_store {
        Some(alert_store) if config.alerting.enabled() => {
            let external_url = match &config.alerting.external_url {
                Some(url) => url.clone(),
                None => {
                    let scheme = if tls.is_some() { "https" } else { "http" };
                    format!("{scheme}://{}", listener.local_addr()?)
                }
            };
            let alerting = Alerting::start(
                &config.alerting,
                external_url,
                promql.clone(),
                alert_store,
                metrics.clone(),
            )
            .await?;
            Some(Arc::new(alerting))
        }
        _ => None,
    };
    if let Some(alerting) = alerting.clone() {
        reload.subscribe("rules", move || {
            let alerting = alerting.clone();
            async move { Ok(alerting.reload().await?) }
        });
    }
    let hangups = reload.reload_on_sighup();
    let state = AppState {
        acceptor,
        wal: wal.clone(),
        metrics,
        health: Health {
            store_problem,
            flush_ok,
            flush_clock,
            flush_stall_timeout: config.flush_stall_timeout,
        },
        queries,
        promql,
        scraper: scraper.clone(),
        reload,
        alerts: alerting
            .as_ref()
            .map_or_else(AlertsView::disabled, |a| a.view()),
        access,
    };
    tracing::info!(address = %listener.local_addr()?, "listening");
    let stop = stopped(stop_rx);
    let tls = guard::acceptor(tls.as_ref(), guard::HTTP1);
    let serve = http::serve(listener, api::router(state), config.http, tls, stop);
    let mut http_task = tokio::spawn(serve);
    // The shutdown signal, the flusher failing and the HTTP listener ending each stop the rest.
    tokio::pin!(shutdown);
    let ended = tokio::select! {
        () = &mut shutdown => Ended::Signal,
        outcome = &mut flusher_task => Ended::Flusher(outcome),
        outcome = &mut http_task => Ended::Http(outcome),
    };
    let deadline = Instant::now() + config.shutdown_deadline;
    tracing::info!("shutting down: no new requests");
    hangups.abort();
    if let Some(scraper) = &scraper {
        scraper.stop().await;
    }
    if let Some(alerting) = &alerting {
        alerting.stop().await;
    }
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
            stop_tx.send_replace(Some(deadline));
            (http_outcome(http_task.await), Some(outcome))
        }
        Ended::Signal => {
            stop_tx.send_replace(Some(deadline));
            (http_outcome(http_task.await), None)
        }
    };
    if let Err(error) = &http_outcome {
        tracing::error!(%error, "the HTTP server failed; stopping");
    }
    // An HTTP listener that ended by itself did not set the deadline: stop the others now.
    stop_tx.send_if_modified(|stop| {
        let unset = stop.is_none();
        if unset {
            *stop = Some(deadline);
        }
        unset
    });
    for task in otlp_tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "an OTLP receiver stopped with an error"),
            Err(error) => tracing::error!(%error, "an OTLP receiver failed"),
        }
    }
    pinger.abort();
    if let Some(archiver) = &archiver {
        archiver.abort();
    }
    compactor.abort();
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

/// The drain deadline, once `stop` holds it; a dropped sender (an early return) means "now,
/// with no drain". Every listener stops on it.
async fn stopped(mut stop: watch::Receiver<Option<Instant>>) -> Instant {
    match stop.wait_for(Option::is_some).await {
        Ok(deadline) => deadline.unwrap_or_else(Instant::now),
        Err(_) => Instant::now(),
    }
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

async fn ping_forever<S: Store>(store: Arc<S>, problem: watch::Sender<Option<String>>) {
    loop {
        let outcome = match tokio::time::timeout(PING_EVERY, store.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => {
                tracing::warn!(%error, "store ping failed");
                Some(error.to_string())
            }
            Err(_) => Some(format!("no answer to a ping within {PING_EVERY:?}")),
        };
        problem.send_replace(outcome);
        tokio::time::sleep(PING_EVERY).await;
    }
}
