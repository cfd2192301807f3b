//! `GET /api/v1/alerts` and `GET /api/v1/rules`: the alerting state in Prometheus' shape, so
//! Grafana's Prometheus data source, `amtool`-era scripts and `timebucket query alerts` read it.
//!
//! `/api/v1/rules` takes Prometheus' filters: `type` (`alert`, or `record`: none exist here),
//! `rule_name[]`, `rule_group[]`, `file[]`, `exclude_alerts`. With a filter, groups left
//! without rules are left out, as Prometheus does.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::prometheus::{bad, success, Params, PromError};
use super::AppState;
use crate::alerting::view::{AlertsAnswer, ApiAlert, ApiGroup, RulesAnswer};
use crate::store::Store;

/// Every firing and pending alert.
pub async fn alerts<S: Store>(State(state): State<AppState<S>>) -> Response {
    let alerts = state.alerts.alerts().iter().map(ApiAlert::from).collect();
    success(AlertsAnswer { alerts })
}

/// Every rule group, its rules, their health and alerts.
pub async fn rules<S: Store>(
    State(state): State<AppState<S>>,
    RawQuery(q): RawQuery,
) -> Result<Response, PromError> {
    let params = Params::read(q, &Bytes::new());
    let only_records = match params.get("type") {
        None | Some("") | Some("alert") => false,
        Some("record") => true,
        Some(other) => return Err(bad(format!("unsupported type {other:?}"))),
    };
    let names = params.all("rule_name[]");
    let groups = params.all("rule_group[]");
    let files = params.all("file[]");
    let filtered = only_records || !names.is_empty() || !groups.is_empty() || !files.is_empty();
    let exclude_alerts = match params.get("exclude_alerts") {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad(format!(
                "invalid parameter \"exclude_alerts\": {other:?} is not a boolean"
            )))
        }
    };
    let answer = state
        .alerts
        .rules()
        .into_iter()
        .filter(|g| groups.is_empty() || groups.contains(&g.name.as_str()))
        .filter(|g| files.is_empty() || files.contains(&g.file.as_str()))
        .map(|mut g| {
            g.rules.retain(|r| {
                !only_records && (names.is_empty() || names.contains(&r.name.as_str()))
            });
            g
        })
        .filter(|g| !filtered || !g.rules.is_empty())
        .map(|g| ApiGroup::new(&g, exclude_alerts))
        .collect();
    Ok(success(RulesAnswer { groups: answer }))
}
