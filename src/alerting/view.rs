//! What the rest of the service may read of alerting: [`AlertsView`] (the firing and pending
//! alerts, the rules and their health), and the Prometheus-shaped answers of
//! `GET /api/v1/alerts` and `GET /api/v1/rules` built from it (also what
//! `timebucket query alerts|rules` decodes).
//!
//! The view reads the groups' in-memory state, which on the evaluator is what it evaluated and
//! on the other replicas what the evaluator last stored (each group re-reads it at every one
//! of its slots), so every replica answers alike. Reading never waits on evaluation: each
//! group's state sits behind its own short-held lock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::group::GroupState;
use super::state::{AlertState, Health};
use crate::model::TimestampMs;

/// A firing or pending alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertInfo {
    /// The group of its rule.
    pub group: String,
    /// Its rule (`alertname`).
    pub rule: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// `Pending` or `Firing`.
    pub state: AlertState,
    /// When it became pending.
    pub active_at: TimestampMs,
    /// When it started firing.
    pub fired_at: Option<TimestampMs>,
    /// Since when `keep_firing_for` holds it.
    pub keep_firing_since: Option<TimestampMs>,
    /// The sample value at the last evaluation.
    pub value: f64,
}

/// A rule and how it does.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInfo {
    /// `alert`.
    pub name: String,
    /// `expr`.
    pub query: String,
    /// `for`, seconds.
    pub duration_seconds: f64,
    /// `keep_firing_for`, seconds.
    pub keep_firing_for_seconds: f64,
    /// `labels` (templates).
    pub labels: BTreeMap<String, String>,
    /// `annotations` (templates).
    pub annotations: BTreeMap<String, String>,
    /// The highest state of its alerts (`Inactive` without any).
    pub state: AlertState,
    /// How its last evaluation went.
    pub health: Health,
    /// Its last error.
    pub last_error: Option<String>,
    /// When it was last evaluated.
    pub last_evaluation: Option<TimestampMs>,
    /// How long that took, seconds.
    pub evaluation_seconds: f64,
    /// Its firing and pending alerts.
    pub alerts: Vec<AlertInfo>,
}

/// A rule group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInfo {
    /// Its name.
    pub name: String,
    /// Its file.
    pub file: String,
    /// Seconds between evaluations.
    pub interval_seconds: f64,
    /// When it was last evaluated.
    pub last_evaluation: Option<TimestampMs>,
    /// How long that took, seconds.
    pub evaluation_seconds: f64,
    /// Its rules.
    pub rules: Vec<RuleInfo>,
}

/// A read-only view of the alerting state; cheap to clone. Without `--rules` it is empty.
#[derive(Clone, Default)]
pub struct AlertsView {
    groups: Arc<RwLock<Vec<Arc<Mutex<GroupState>>>>>,
}

impl std::fmt::Debug for AlertsView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsView").finish_non_exhaustive()
    }
}

impl AlertsView {
    /// A view of no rules (alerting off).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Replaces the groups the view shows (at start and on reload).
    pub(super) fn set_groups(&self, groups: Vec<Arc<Mutex<GroupState>>>) {
        *self.groups.write().unwrap_or_else(|e| e.into_inner()) = groups;
    }

    /// Every group, as it stands.
    pub fn rules(&self) -> Vec<GroupInfo> {
        let groups = self
            .groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        groups
            .iter()
            .map(|g| g.lock().unwrap_or_else(|e| e.into_inner()).info())
            .collect()
    }

    /// Every firing and pending alert, firing first, then by rule and labels.
    pub fn alerts(&self) -> Vec<AlertInfo> {
        let mut alerts: Vec<AlertInfo> = self
            .rules()
            .into_iter()
            .flat_map(|g| g.rules)
            .flat_map(|r| r.alerts)
            .collect();
        alerts.sort_by(|a, b| (b.state, &a.rule, &a.labels).cmp(&(a.state, &b.rule, &b.labels)));
        alerts
    }
}

/// An RFC 3339 time, or Go's zero time for none, as Prometheus writes them.
fn time(t: Option<TimestampMs>) -> String {
    t.map_or_else(
        || "0001-01-01T00:00:00Z".to_owned(),
        TimestampMs::to_rfc3339,
    )
}

/// A float as Go's `strconv.FormatFloat(v, 'e', -1, 64)`: Prometheus' alert `value`.
pub fn go_exponent(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let text = format!("{v:e}");
    let (mantissa, exponent) = text.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("{:e} has a numeric exponent");
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// One alert of `/api/v1/alerts` and of a rule in `/api/v1/rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiAlert {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// `pending` or `firing`.
    pub state: String,
    /// RFC 3339.
    pub active_at: String,
    /// RFC 3339, while `keep_firing_for` holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_since: Option<String>,
    /// The value, as Go's `%e`.
    pub value: String,
}

impl From<&AlertInfo> for ApiAlert {
    fn from(a: &AlertInfo) -> Self {
        Self {
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            state: a.state.as_str().to_owned(),
            active_at: a.active_at.to_rfc3339(),
            keep_firing_since: a.keep_firing_since.map(TimestampMs::to_rfc3339),
            value: go_exponent(a.value),
        }
    }
}

/// `data` of `/api/v1/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsAnswer {
    /// The alerts.
    pub alerts: Vec<ApiAlert>,
}

/// A rule of `/api/v1/rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiRule {
    /// `inactive`, `pending` or `firing`.
    pub state: String,
    /// `alert`.
    pub name: String,
    /// `expr`.
    pub query: String,
    /// `for`, seconds.
    pub duration: f64,
    /// `keep_firing_for`, seconds.
    pub keep_firing_for: f64,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// `annotations`.
    pub annotations: BTreeMap<String, String>,
    /// Firing and pending alerts (left out with `exclude_alerts=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<ApiAlert>>,
    /// `ok`, `err` or `unknown`.
    pub health: String,
    /// The last error, or "".
    #[serde(default)]
    pub last_error: String,
    /// Seconds the last evaluation took.
    pub evaluation_time: f64,
    /// RFC 3339.
    pub last_evaluation: String,
    /// Always `alerting`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A group of `/api/v1/rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiGroup {
    /// Its name.
    pub name: String,
    /// Its file.
    pub file: String,
    /// Its rules.
    pub rules: Vec<ApiRule>,
    /// Seconds between evaluations.
    pub interval: f64,
    /// Always 0 (no `limit`).
    pub limit: u32,
    /// Seconds the last evaluation took.
    pub evaluation_time: f64,
    /// RFC 3339.
    pub last_evaluation: String,
}

/// `data` of `/api/v1/rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesAnswer {
    /// The groups.
    pub groups: Vec<ApiGroup>,
}

impl ApiGroup {
    /// The answer's form of `group`, with its alerts unless `exclude_alerts`.
    pub fn new(group: &GroupInfo, exclude_alerts: bool) -> Self {
        Self {
            name: group.name.clone(),
            file: group.file.clone(),
            rules: group
                .rules
                .iter()
                .map(|r| ApiRule {
                    state: r.state.as_str().to_owned(),
                    name: r.name.clone(),
                    query: r.query.clone(),
                    duration: r.duration_seconds,
                    keep_firing_for: r.keep_firing_for_seconds,
                    labels: r.labels.clone(),
                    annotations: r.annotations.clone(),
                    alerts: (!exclude_alerts)
                        .then(|| r.alerts.iter().map(ApiAlert::from).collect()),
                    health: r.health.as_str().to_owned(),
                    last_error: r.last_error.clone().unwrap_or_default(),
                    evaluation_time: r.evaluation_seconds,
                    last_evaluation: time(r.last_evaluation),
                    kind: "alerting".to_owned(),
                })
                .collect(),
            interval: group.interval_seconds,
            limit: 0,
            evaluation_time: group.evaluation_seconds,
            last_evaluation: time(group.last_evaluation),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_as_go_writes_them() {
        assert_eq!(go_exponent(1.0), "1e+00");
        assert_eq!(go_exponent(0.055), "5.5e-02");
        assert_eq!(go_exponent(123456.0), "1.23456e+05");
        assert_eq!(go_exponent(-2.5e-300), "-2.5e-300");
        assert_eq!(go_exponent(f64::NAN), "NaN");
        assert_eq!(go_exponent(f64::NEG_INFINITY), "-Inf");
        assert_eq!(time(None), "0001-01-01T00:00:00Z");
    }
}
