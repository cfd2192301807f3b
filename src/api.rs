//! The HTTP API (axum): routes, shared state and the error mapping.
//!
//! Handlers are thin: they negotiate HTTP (content types, limits, status codes) and call the
//! ingest or query modules, which know nothing of HTTP.

pub mod alerting;
pub mod error;
pub mod health;
pub mod ingest;
pub mod otlp;
pub mod prometheus;
pub mod query;
pub mod scrape;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::access::Access;
use crate::alerting::AlertsView;
use crate::ingest::Acceptor;
use crate::query::Queries;
use crate::reload::ReloadHub;
use crate::scrape::Scraper;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::wal::Wal;

/// What readiness is made of, each kept current by its own task.
#[derive(Debug, Clone)]
pub struct Health {
    /// Why the last ping of the store failed; `None` when it answered.
    pub store_problem: watch::Receiver<Option<String>>,
    /// The last flush attempt succeeded.
    pub flush_ok: watch::Receiver<bool>,
    /// How long the flusher's write in progress has been running.
    pub flush_clock: crate::store::watched::WriteClock,
    /// A flush running longer than this is reported as stalled (`--flush-stall-timeout`).
    pub flush_stall_timeout: std::time::Duration,
}

/// State shared by every handler.
pub struct AppState<S> {
    /// Accepts ingest bodies.
    pub acceptor: Acceptor,
    /// The WAL, for its statistics.
    pub wal: Wal,
    /// Self-metrics.
    pub metrics: Arc<Metrics>,
    /// Readiness inputs.
    pub health: Health,
    /// Answers the query endpoints from the store.
    pub queries: Queries<S>,
    /// Answers the Prometheus query API.
    pub promql: prometheus::PromEngine<S>,
    /// The scraper, when `--scrape-config` is given.
    pub scraper: Option<Scraper>,
    /// What `POST /-/reload` triggers.
    pub reload: ReloadHub,
    /// The alerting state (empty without `--rules`).
    pub alerts: AlertsView,
    /// Access control: every route is behind its layer.
    pub access: Access,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            acceptor: self.acceptor.clone(),
            wal: self.wal.clone(),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            queries: self.queries.clone(),
            promql: self.promql.clone(),
            scraper: self.scraper.clone(),
            reload: self.reload.clone(),
            alerts: self.alerts.clone(),
            access: self.access.clone(),
        }
    }
}

/// Every route of the service, behind the access layer.
pub fn router<S: Store>(state: AppState<S>) -> Router {
    let access = state.access.clone();
    let console = crate::console::router(crate::console::Console::new(
        state.queries.clone(),
        state.alerts.clone(),
    ));
    Router::new()
        .route("/v1/metrics", post(ingest::post_metrics::<S>))
        .route("/v1/readings", get(query::readings::<S>))
        .route("/v1/series", get(query::series::<S>))
        .route("/v1/latest", get(query::latest::<S>))
        .route("/v1/stats", get(query::stats::<S>))
        .route("/v1/stats/host", get(query::host_stats::<S>))
        .route(
            "/api/v1/query",
            get(prometheus::query::<S>).post(prometheus::query::<S>),
        )
        .route(
            "/api/v1/query_range",
            get(prometheus::query_range::<S>).post(prometheus::query_range::<S>),
        )
        .route(
            "/api/v1/series",
            get(prometheus::series::<S>).post(prometheus::series::<S>),
        )
        .route(
            "/api/v1/labels",
            get(prometheus::labels::<S>).post(prometheus::labels::<S>),
        )
        .route(
            "/api/v1/label/{name}/values",
            get(prometheus::label_values::<S>),
        )
        .route("/api/v1/metadata", get(prometheus::metadata))
        .route("/api/v1/status/buildinfo", get(prometheus::buildinfo))
        .route(
            "/api/v1/query_exemplars",
            get(prometheus::query_exemplars).post(prometheus::query_exemplars),
        )
        .route("/api/v1/rules", get(alerting::rules::<S>))
        .route("/api/v1/alerts", get(alerting::alerts::<S>))
        .route(
            "/api/v1/format_query",
            get(prometheus::format_query).post(prometheus::format_query),
        )
        .route("/v1/targets", get(scrape::targets::<S>))
        .route("/-/reload", post(scrape::reload::<S>))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz::<S>))
        .route("/readyz/ingest", get(health::readyz_ingest::<S>))
        .route("/metrics", get(health::metrics::<S>))
        .with_state(state)
        .merge(console)
        .layer(axum::middleware::from_fn_with_state(
            access,
            crate::access::layer::check,
        ))
}
