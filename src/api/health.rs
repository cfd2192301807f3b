//! `/healthz` (the process answers), `/readyz` (it can do its job), `/readyz/ingest` (it can
//! accept readings: what a load balancer checks) and `/metrics`.

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
    let mut problems = store_problems(&state);
    problems.extend(wal_problems(&state));
    if problems.is_empty() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        not_ready(problems)
    }
}

/// Ingest readiness, what a load balancer in front of replicas checks: 200 while this replica
/// can accept readings into its WAL (the WAL can be written, the backlog is under its limit),
/// even when the store is down, whose problems are then listed as `degraded`. Every replica
/// shares the store: taking one out of the pool for a store outage would only move its traffic
/// to replicas that are no better off, and taking all of them out would turn an outage that the
/// WALs absorb into refused ingest.
pub async fn readyz_ingest<S: Store>(State(state): State<AppState<S>>) -> Response {
    let problems = wal_problems(&state);
    let degraded = store_problems(&state);
    if !problems.is_empty() {
        let mut all = problems;
        all.extend(degraded);
        return not_ready(all);
    }
    if degraded.is_empty() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        Json(json!({ "status": "ready", "degraded": degraded })).into_response()
    }
}

/// Why the store side is not healthy: it does not answer pings, the last flush failed, or a
/// flush has run past `--flush-stall-timeout`.
fn store_problems<S: Store>(state: &AppState<S>) -> Vec<String> {
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
    problems
}

/// Why ingest cannot accept: the embedded store refuses writes, the backlog is over its limit,
/// or the WAL cannot be written.
fn wal_problems<S: Store>(state: &AppState<S>) -> Vec<String> {
    let mut problems = Vec::new();
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
    problems
}

fn not_ready(problems: Vec<String>) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "not ready", "problems": problems })),
    )
        .into_response()
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
