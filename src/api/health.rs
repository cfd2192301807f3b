//! `/healthz` (the process answers), `/readyz` (it can do its job) and `/metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;
use crate::store::Store;

/// Liveness: 200 while the process serves HTTP.
pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// Readiness: 200 when the store answers, the last flush succeeded and none has run past
/// `--flush-stall-timeout`, the WAL has room and
/// can be written; otherwise 503 with the reasons.
pub async fn readyz<S: Store>(State(state): State<AppState<S>>) -> Response {
    let mut problems = Vec::new();
    if let Some(problem) = &*state.health.store_problem.borrow() {
        problems.push(format!(
            "the store does not answer ({problem}); queries answer 503"
        ));
    }
    if !*state.health.flush_ok.borrow() {
        problems.push("the last flush to the store failed; readings wait in the WAL".to_owned());
    }
    if let Some(running) = state.health.flush_clock.running_for() {
        let bound = state.health.flush_stall_timeout;
        if running > bound {
            problems.push(format!(
                "a flush to the store has been running for {}s (over --flush-stall-timeout, {}); \
                 readings wait in the WAL",
                running.as_secs(),
                humantime::format_duration(bound)
            ));
        }
    }
    if let Some(reason) = state.acceptor.store_refusal() {
        problems.push(format!(
            "{reason}; ingest answers 503 until it writes again"
        ));
    }
    if !state.acceptor.has_room() {
        problems.push("the WAL backlog is over its limit; ingest answers 503".to_owned());
    }
    // Set by a failed append, cleared by the next append (or WAL probe) that works, so
    // readiness does not wait for traffic a load balancer would withhold from a not-ready
    // instance.
    if let Some(problem) = state.wal.append_problem() {
        problems.push(format!(
            "the WAL cannot be written ({problem}); ingest answers 503"
        ));
    }
    if problems.is_empty() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "problems": problems })),
        )
            .into_response()
    }
}

/// Prometheus text exposition of the service's own metrics.
pub async fn metrics<S: Store>(State(state): State<AppState<S>>) -> Response {
    let stats = state.wal.stats();
    state
        .metrics
        .wal_bytes
        .set(i64::try_from(stats.bytes_on_disk).unwrap_or(i64::MAX));
    state
        .metrics
        .wal_segments
        .set(i64::try_from(stats.segments_on_disk).unwrap_or(i64::MAX));
    state
        .metrics
        .wal_backlog_bytes
        .set(i64::try_from(stats.backlog_bytes).unwrap_or(i64::MAX));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
