//! `GET /v1/targets` (the scraper's targets and their last scrape) and `POST /-/reload`
//! (re-read the configuration files, as SIGHUP does).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;
use crate::scrape::status::TargetsAnswer;
use crate::store::Store;

/// Every scrape target: active ones with their last scrape, and those another replica owns.
/// Without `--scrape-config` the lists are empty.
pub async fn targets<S: Store>(State(state): State<AppState<S>>) -> Json<TargetsAnswer> {
    Json(
        state
            .scraper
            .as_ref()
            .map(|s| s.targets())
            .unwrap_or_default(),
    )
}

/// Reloads every subscriber of the reload hub: 200 with each one's summary, or 500 naming the
/// subsystems whose new configuration was refused (their running one stays).
pub async fn reload<S: Store>(State(state): State<AppState<S>>) -> Response {
    let outcomes = state.reload.reload().await;
    let failed: Vec<_> = outcomes
        .iter()
        .filter_map(|o| {
            let problem = o.result.as_ref().err()?;
            Some(json!({ "field": o.name, "problem": problem }))
        })
        .collect();
    if failed.is_empty() {
        let reloaded: serde_json::Map<String, serde_json::Value> = outcomes
            .into_iter()
            .filter_map(|o| Some((o.name.to_owned(), json!(o.result.ok()?))))
            .collect();
        return Json(json!({ "reloaded": reloaded })).into_response();
    }
    let body =
        json!({ "error": "reload refused: the running configuration stays", "details": failed });
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}
