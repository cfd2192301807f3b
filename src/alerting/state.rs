//! The alerts of one rule and how one evaluation moves them, exactly as Prometheus' alerting
//! rule does (`rules/alerting.go`), and the stored form of a group's state.
//!
//! ```text
//!            in the result                 held `for` (0: at once)
//!  (none) ─────────────────► pending ────────────────────────► firing
//!     ▲                         │ not in the result               │ not in the result (and
//!     │ dropped                 ▼                                 ▼ `keep_firing_for` over)
//!     └──────────────────── (gone)            inactive (resolved), kept 15 min so receivers
//!                                             hear of it; back in the result: a new pending
//! ```
//!
//! One alert per label set: the sample's labels without `__name__`, plus the rule's labels
//! (templates expanded) and `alertname`. Two samples that end up with the same labels fail the
//! evaluation, as in Prometheus.
//!
//! The stored form ([`StoredGroup`]) plays the part of Prometheus' `ALERTS_FOR_STATE` series,
//! and more: every alert with its `activeAt`, state and what the webhooks were told, so a
//! restart or a new leader neither forgets a firing alert nor restarts a `for` countdown, nor
//! tells a webhook twice. It is versioned JSON, opaque to the store.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rules::AlertRule;
use super::template::{self, TemplateData};
use crate::promql::Labels;

/// How long a resolved alert is kept (and resent to Alertmanager): Prometheus' value.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// The version of [`StoredGroup`] this build writes and reads.
pub const STORED_VERSION: u32 = 1;

/// The state of one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Resolved: was firing, its condition cleared (kept for [`RESOLVED_RETENTION`]).
    Inactive,
    /// The condition holds, not yet for `for`.
    Pending,
    /// The condition held for `for`.
    Firing,
}

impl AlertState {
    /// Prometheus' name: `inactive`, `pending`, `firing`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Its labels: the series', the rule's, `alertname`.
    pub labels: Labels,
    /// Its annotations, templates expanded at the last evaluation that had it.
    pub annotations: BTreeMap<String, String>,
    /// Pending, firing or inactive (resolved).
    pub state: AlertState,
    /// The sample value at the last evaluation that had it.
    pub value: f64,
    /// When it became pending, ms.
    pub active_at: i64,
    /// When it started firing, ms.
    pub fired_at: Option<i64>,
    /// When it was resolved, ms.
    pub resolved_at: Option<i64>,
    /// Since when a firing alert is held by `keep_firing_for`, ms.
    pub keep_firing_since: Option<i64>,
    /// What every webhook has been told of it (firing / resolved): acknowledged deliveries
    /// only, so a restart or a new leader tells them what they missed, and nothing twice.
    pub notified: Option<AlertState>,
    /// When it was last sent to Alertmanager, ms (in memory only: a new process resends at
    /// once, as Prometheus does after a restart; Alertmanager deduplicates).
    pub last_sent_at: Option<i64>,
}

impl Alert {
    /// Whether Alertmanager should hear of it at `ts` (Prometheus' `needsSending`): never
    /// while pending; at once when resolved since the last send; else once per `resend_delay`.
    pub fn needs_sending(&self, ts: i64, resend_delay: Duration) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        match (self.last_sent_at, self.resolved_at) {
            (None, _) => true,
            (Some(sent), Some(resolved)) if resolved > sent => true,
            (Some(sent), _) => sent + resend_delay.as_millis() as i64 <= ts,
        }
    }

    /// What the webhooks should be told now, if it differs from what they were told: `Firing`
    /// for a firing alert, `Inactive` (resolved) for a resolved one they knew as firing.
    pub fn webhook_news(&self) -> Option<AlertState> {
        match (self.state, self.notified) {
            (AlertState::Firing, Some(AlertState::Firing)) => None,
            (AlertState::Firing, _) => Some(AlertState::Firing),
            (AlertState::Inactive, Some(AlertState::Firing)) => Some(AlertState::Inactive),
            _ => None,
        }
    }
}

/// How the last evaluation of a rule went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not evaluated yet.
    #[default]
    Unknown,
    /// Evaluated without error.
    Ok,
    /// The last evaluation failed.
    Err,
}

impl Health {
    /// Prometheus' name: `unknown`, `ok`, `err`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// A rule's alerts and how its last evaluation went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleState {
    /// The alerts, by label set.
    pub alerts: BTreeMap<Labels, Alert>,
    /// How the last evaluation went.
    pub health: Health,
    /// The last evaluation's error.
    pub last_error: Option<String>,
    /// When it was last evaluated (the slot time), ms.
    pub last_evaluation: Option<i64>,
    /// How long the last evaluation took, seconds.
    pub evaluation_seconds: f64,
}

/// What one evaluation gives a rule: its samples (labels, value), or why it failed.
pub type Outcome = Result<Vec<(Labels, f64)>, String>;

impl RuleState {
    /// Applies one evaluation at `ts` (ms). On error the alerts stay as they were (as in
    /// Prometheus, a failed evaluation changes no alert) and the health says why.
    pub fn apply(&mut self, rule: &AlertRule, outcome: Outcome, ts: i64, external_url: &str) {
        self.last_evaluation = Some(ts);
        let result = outcome.and_then(|samples| self.merge(rule, samples, ts, external_url));
        match result {
            Ok(()) => {
                self.health = Health::Ok;
                self.last_error = None;
            }
            Err(error) => {
                self.health = Health::Err;
                self.last_error = Some(error);
            }
        }
    }

    fn merge(
        &mut self,
        rule: &AlertRule,
        samples: Vec<(Labels, f64)>,
        ts: i64,
        external_url: &str,
    ) -> Result<(), String> {
        let mut fresh: BTreeMap<Labels, Alert> = BTreeMap::new();
        for (series, value) in samples {
            let data = TemplateData {
                labels: &series,
                value,
                external_url,
            };
            let mut labels = series.without_name();
            for (name, text) in &rule.labels {
                let what = format!("label {name} of rule {}", rule.name);
                labels.set(name, template::expand(&what, text, &data));
            }
            labels.set("alertname", rule.name.clone());
            let annotations = rule
                .annotations
                .iter()
                .map(|(name, text)| {
                    let what = format!("annotation {name} of rule {}", rule.name);
                    (name.clone(), template::expand(&what, text, &data))
                })
                .collect();
            if fresh.contains_key(&labels) {
                return Err(format!(
                    "vector contains metrics with the same labelset after applying alert \
                     labels: {labels}"
                ));
            }
            fresh.insert(
                labels.clone(),
                Alert {
                    labels,
                    annotations,
                    state: AlertState::Pending,
                    value,
                    active_at: ts,
                    fired_at: None,
                    resolved_at: None,
                    keep_firing_since: None,
                    notified: None,
                    last_sent_at: None,
                },
            );
        }
        let in_result: HashSet<Labels> = fresh.keys().cloned().collect();
        for (labels, alert) in fresh {
            match self.alerts.get_mut(&labels) {
                Some(known) if known.state != AlertState::Inactive => {
                    known.value = alert.value;
                    known.annotations = alert.annotations;
                }
                Some(resolved) => {
                    // Back after being resolved: a new alert, but the webhooks' knowledge of
                    // the old one stands (they were told it resolved).
                    let notified = resolved.notified;
                    *resolved = Alert { notified, ..alert };
                }
                None => {
                    self.alerts.insert(labels, alert);
                }
            }
        }
        let hold = rule.hold.as_millis() as i64;
        let keep_for = rule.keep_firing_for.as_millis() as i64;
        let retention = RESOLVED_RETENTION.as_millis() as i64;
        self.alerts.retain(|labels, alert| {
            if in_result.contains(labels) {
                alert.keep_firing_since = None;
                if alert.state == AlertState::Pending && ts - alert.active_at >= hold {
                    alert.state = AlertState::Firing;
                    alert.fired_at = Some(ts);
                }
                return true;
            }
            let mut keep_firing = false;
            if alert.state == AlertState::Firing && keep_for > 0 {
                let since = *alert.keep_firing_since.get_or_insert(ts);
                keep_firing = ts - since < keep_for;
            }
            if keep_firing {
                return true;
            }
            match alert.state {
                AlertState::Pending => false,
                AlertState::Firing => {
                    alert.state = AlertState::Inactive;
                    alert.resolved_at = Some(ts);
                    true
                }
                AlertState::Inactive => alert.resolved_at.is_some_and(|r| ts - r <= retention),
            }
        });
        Ok(())
    }

    /// The rule's state for `/api/v1/rules`: the highest state of its alerts.
    pub fn state(&self) -> AlertState {
        self.alerts
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }
}

/// The stored state of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    /// [`STORED_VERSION`].
    pub version: u32,
    /// When the group was last evaluated (the slot time), ms.
    pub last_evaluation: Option<i64>,
    /// How long that evaluation took, seconds.
    pub evaluation_seconds: f64,
    /// Its rules' states.
    pub rules: Vec<StoredRule>,
}

/// The stored state of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRule {
    /// [`AlertRule::identity`]: state is restored only into the same rule.
    pub identity: String,
    /// Its name, for people reading the row.
    pub name: String,
    /// How its last evaluation went.
    pub health: Health,
    /// Its last error.
    pub last_error: Option<String>,
    /// When it was last evaluated, ms.
    pub last_evaluation: Option<i64>,
    /// How long that took, seconds.
    pub evaluation_seconds: f64,
    /// Its alerts.
    pub alerts: Vec<StoredAlert>,
}

/// The stored form of an [`Alert`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    state: AlertState,
    /// Text, so NaN and the infinities survive JSON.
    value: String,
    active_at: i64,
    fired_at: Option<i64>,
    resolved_at: Option<i64>,
    keep_firing_since: Option<i64>,
    notified: Option<AlertState>,
}

impl From<&Alert> for StoredAlert {
    fn from(a: &Alert) -> Self {
        Self {
            labels: a
                .labels
                .iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
            annotations: a.annotations.clone(),
            state: a.state,
            value: crate::api::prometheus::format_value(a.value),
            active_at: a.active_at,
            fired_at: a.fired_at,
            resolved_at: a.resolved_at,
            keep_firing_since: a.keep_firing_since,
            notified: a.notified,
        }
    }
}

impl From<StoredAlert> for Alert {
    fn from(s: StoredAlert) -> Self {
        let value = match s.value.as_str() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            text => text.parse().unwrap_or(f64::NAN),
        };
        Self {
            labels: Labels::new(s.labels),
            annotations: s.annotations,
            state: s.state,
            value,
            active_at: s.active_at,
            fired_at: s.fired_at,
            resolved_at: s.resolved_at,
            keep_firing_since: s.keep_firing_since,
            notified: s.notified,
            last_sent_at: None,
        }
    }
}

impl StoredRule {
    /// The stored form of `state` of the rule `rule`.
    pub fn new(rule: &AlertRule, state: &RuleState) -> Self {
        Self {
            identity: rule.identity(),
            name: rule.name.clone(),
            health: state.health,
            last_error: state.last_error.clone(),
            last_evaluation: state.last_evaluation,
            evaluation_seconds: state.evaluation_seconds,
            alerts: state.alerts.values().map(StoredAlert::from).collect(),
        }
    }

    /// Back into a rule's state.
    pub fn into_state(self) -> RuleState {
        RuleState {
            alerts: self
                .alerts
                .into_iter()
                .map(Alert::from)
                .map(|a| (a.labels.clone(), a))
                .collect(),
            health: self.health,
            last_error: self.last_error,
            last_evaluation: self.last_evaluation,
            evaluation_seconds: self.evaluation_seconds,
        }
    }
}

impl StoredGroup {
    /// The JSON bytes the store keeps.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the stored state serializes")
    }

    /// Reads stored bytes; `Err` for bytes this build cannot read (another version, damage).
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let group: StoredGroup = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if group.version != STORED_VERSION {
            return Err(format!(
                "state version {} (this build reads {STORED_VERSION})",
                group.version
            ));
        }
        Ok(group)
    }
}

#[cfg(test)]
mod tests;
