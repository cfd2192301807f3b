//! The HTTP API (axum): routes, shared state and the error mapping.
//!
//! Handlers are thin: they negotiate HTTP (content types, limits, status codes) and call the
//! ingest or query modules, which know nothing of HTTP.

pub mod error;
pub mod health;
pub mod ingest;
pub mod query;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::ingest::Acceptor;
use crate::query::Queries;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::wal::Wal;

/// What readiness is made of, each kept current by its own task.
#[derive(Debug, Clone)]
pub struct Health {
    /// The store answered the last ping.
    pub store_reachable: watch::Receiver<bool>,
    /// The last flush attempt succeeded.
    pub flush_ok: watch::Receiver<bool>,
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
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            acceptor: self.acceptor.clone(),
            wal: self.wal.clone(),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            queries: self.queries.clone(),
        }
    }
}

/// Every route of the service.
pub fn router<S: Store>(state: AppState<S>) -> Router {
    let console = crate::console::router(crate::console::Console::new(state.queries.clone()));
    Router::new()
        .route("/v1/metrics", post(ingest::post_metrics::<S>))
        .route("/v1/readings", get(query::readings::<S>))
        .route("/v1/series", get(query::series::<S>))
        .route("/v1/latest", get(query::latest::<S>))
        .route("/v1/stats", get(query::stats::<S>))
        .route("/v1/stats/host", get(query::host_stats::<S>))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz::<S>))
        .route("/metrics", get(health::metrics::<S>))
        .with_state(state)
        .merge(console)
}
