//! The HTTP API (axum): routes, shared state and the error mapping.
//!
//! Handlers are thin: they negotiate HTTP (content types, limits, status codes) and call the
//! ingest or query modules, which know nothing of HTTP.

pub mod error;
pub mod health;
pub mod ingest;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::ingest::Acceptor;
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
#[derive(Clone)]
pub struct AppState {
    /// Accepts ingest bodies.
    pub acceptor: Acceptor,
    /// The WAL, for its statistics.
    pub wal: Wal,
    /// Self-metrics.
    pub metrics: Arc<Metrics>,
    /// Readiness inputs.
    pub health: Health,
}

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/metrics", post(ingest::post_metrics))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(state)
}
