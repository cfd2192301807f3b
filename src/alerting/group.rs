//! One rule group: its state, and the task that evaluates it at its slots.
//!
//! ```text
//!  start: load the stored state (the view shows it at once)
//!  every slot k × interval + offset (offset: a hash of the name, so groups spread out):
//!    not the evaluator ──► re-read the stored state (what the evaluator wrote)
//!    the evaluator ──► (just became it? re-read the stored state first)
//!                      every rule, in order: Engine::instant(expr, slot) → RuleState::apply
//!                      still the evaluator? save the state, then notify
//!  a webhook acknowledgement ──► record what the webhooks know, save at once
//! ```
//!
//! Invariants: evaluation times are slot times of the injected clock, so restarts and replicas
//! agree on them; a slot the previous evaluation overran is skipped and counted, never
//! evaluated late in a burst; nothing is saved or sent by a replica that is not (or no longer)
//! the evaluator; a state that cannot be re-read when becoming the evaluator postpones the
//! evaluation rather than restarting every `for` countdown.

mod outbox;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::clock::Clock;
use super::lease::Leadership;
use super::notify::{fingerprint, Delivered, Notifier};
use super::rules::{AlertRule, RuleGroup};
use super::state::{AlertState, Outcome, RuleState, StoredGroup, StoredRule, STORED_VERSION};
use super::view::{AlertInfo, GroupInfo, RuleInfo};
use crate::model::TimestampMs;
use crate::promql::source::queries::QueriesSource;
use crate::promql::{Engine, Labels, QueryValue};
use crate::store::alerting::AlertStore;
use crate::store::Store;
use crate::telemetry::Metrics;

/// What every group shares.
pub struct Shared<S, A> {
    /// Evaluates the expressions.
    pub engine: Engine<QueriesSource<S>>,
    /// Keeps the state.
    pub store: Arc<A>,
    /// Whether this replica evaluates.
    pub leadership: Leadership,
    /// Evaluation time.
    pub clock: Arc<dyn Clock>,
    /// Alertmanagers and webhooks.
    pub notifier: Notifier,
    /// Resend period of firing alerts to Alertmanager.
    pub resend_delay: Duration,
    /// Base of `generatorURL` and `$externalURL`.
    pub external_url: String,
    /// Self-metrics.
    pub metrics: Arc<Metrics>,
}

/// A group's rules and their state.
#[derive(Debug)]
pub struct GroupState {
    /// The group.
    pub group: Arc<RuleGroup>,
    /// One state per rule, in the group's order.
    pub rules: Vec<RuleState>,
    /// When it was last evaluated (slot), ms.
    pub last_evaluation: Option<i64>,
    /// How long that took, seconds.
    pub evaluation_seconds: f64,
    /// Webhook messages sent and not yet acknowledged: (rule identity, labels) → status.
    in_flight: HashMap<(String, Labels), AlertState>,
}

impl GroupState {
    /// A group that has never been evaluated.
    pub fn new(group: Arc<RuleGroup>) -> Self {
        let rules = vec![RuleState::default(); group.rules.len()];
        Self {
            group,
            rules,
            last_evaluation: None,
            evaluation_seconds: 0.0,
            in_flight: HashMap::new(),
        }
    }

    /// `group`, carrying over the state of each rule `old` has with the same identity (a reload
    /// keeps the state of unchanged rules); messages in flight are forgotten.
    pub fn carried(group: Arc<RuleGroup>, old: &GroupState) -> Self {
        let mut fresh = Self::new(group);
        for (rule, state) in fresh.group.rules.iter().zip(fresh.rules.iter_mut()) {
            let id = rule.identity();
            if let Some(i) = old.group.rules.iter().position(|r| r.identity() == id) {
                *state = old.rules[i].clone();
            }
        }
        fresh.last_evaluation = old.last_evaluation;
        fresh.evaluation_seconds = old.evaluation_seconds;
        // Acknowledgements of the old task's messages go nowhere now: whatever was in flight
        // is sent again by the new task (a duplicate at worst, never a silence).
        fresh
    }

    /// Takes the state the store holds, rule by rule (by identity); rules it does not know
    /// start afresh.
    fn adopt(&mut self, stored: StoredGroup) {
        let mut by_id: HashMap<String, StoredRule> = stored
            .rules
            .into_iter()
            .map(|r| (r.identity.clone(), r))
            .collect();
        for (rule, state) in self.group.rules.iter().zip(self.rules.iter_mut()) {
            *state = by_id
                .remove(&rule.identity())
                .map(StoredRule::into_state)
                .unwrap_or_default();
        }
        self.last_evaluation = stored.last_evaluation;
        self.evaluation_seconds = stored.evaluation_seconds;
    }

    fn stored(&self) -> StoredGroup {
        StoredGroup {
            version: STORED_VERSION,
            last_evaluation: self.last_evaluation,
            evaluation_seconds: self.evaluation_seconds,
            rules: self
                .group
                .rules
                .iter()
                .zip(&self.rules)
                .map(|(rule, state)| StoredRule::new(rule, state))
                .collect(),
        }
    }

    /// Records what the webhooks now know.
    fn acknowledge(&mut self, delivered: Delivered) {
        let Some(i) = self
            .group
            .rules
            .iter()
            .position(|r| r.identity() == delivered.rule)
        else {
            return;
        };
        for (labels, status) in delivered.alerts {
            let key = (delivered.rule.clone(), labels);
            if self.in_flight.get(&key) == Some(&status) {
                self.in_flight.remove(&key);
            }
            if let Some(alert) = self.rules[i].alerts.get_mut(&key.1) {
                alert.notified = Some(status);
            }
        }
    }

    /// The view's form.
    pub fn info(&self) -> GroupInfo {
        let ms = TimestampMs::from_millis;
        GroupInfo {
            name: self.group.name.clone(),
            file: self.group.file.display().to_string(),
            interval_seconds: self.group.interval.as_secs_f64(),
            last_evaluation: self.last_evaluation.map(ms),
            evaluation_seconds: self.evaluation_seconds,
            rules: self
                .group
                .rules
                .iter()
                .zip(&self.rules)
                .map(|(rule, state)| RuleInfo {
                    name: rule.name.clone(),
                    query: rule.expr.clone(),
                    duration_seconds: rule.hold.as_secs_f64(),
                    keep_firing_for_seconds: rule.keep_firing_for.as_secs_f64(),
                    labels: rule.labels.clone(),
                    annotations: rule.annotations.clone(),
                    state: state.state(),
                    health: state.health,
                    last_error: state.last_error.clone(),
                    last_evaluation: state.last_evaluation.map(ms),
                    evaluation_seconds: state.evaluation_seconds,
                    alerts: state
                        .alerts
                        .values()
                        .filter(|a| a.state != AlertState::Inactive)
                        .map(|a| AlertInfo {
                            group: self.group.name.clone(),
                            rule: rule.name.clone(),
                            labels: to_map(&a.labels),
                            annotations: a.annotations.clone(),
                            state: a.state,
                            active_at: ms(a.active_at),
                            fired_at: a.fired_at.map(ms),
                            keep_firing_since: a.keep_firing_since.map(ms),
                            value: a.value,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

fn to_map(labels: &Labels) -> std::collections::BTreeMap<String, String> {
    labels
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// The first slot `k × interval + offset` at or after `now`.
pub fn next_slot(now: i64, interval: i64, offset: i64) -> i64 {
    let base = now - offset;
    let k = base.div_euclid(interval) + i64::from(base.rem_euclid(interval) != 0);
    k * interval + offset
}

/// A stable offset of the group's slots within its interval.
fn offset(name: &str, interval: i64) -> i64 {
    let hash = fingerprint(&Labels::new([("group", name)]));
    let hash = u64::from_str_radix(&hash, 16).expect("a fingerprint is hex");
    (hash % interval as u64) as i64
}

/// The task of one group.
pub struct GroupTask<S, A> {
    /// The state the view reads.
    pub state: Arc<Mutex<GroupState>>,
    /// What the groups share.
    pub shared: Arc<Shared<S, A>>,
    /// Stops it.
    pub stop: watch::Receiver<bool>,
}

impl<S: Store, A: AlertStore> GroupTask<S, A> {
    fn name(&self) -> String {
        self.lock().group.name.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The group's first slot at or after the clock's time now: where its task starts (taken
    /// when the task is made, so a clock moved while it starts cannot skip it).
    pub fn first_slot(&self) -> i64 {
        let group = self.lock().group.clone();
        let interval = (group.interval.as_millis() as i64).max(1);
        next_slot(
            self.shared.clock.now().millis(),
            interval,
            offset(&group.name, interval),
        )
    }

    /// Runs until stopped, from `slot` on (see [`GroupTask::first_slot`]).
    pub async fn run(mut self, mut slot: i64) {
        let group = self.lock().group.clone();
        let interval = (group.interval.as_millis() as i64).max(1);
        let (acks_tx, mut acks) = mpsc::unbounded_channel();
        // The view shows the stored state at once; evaluation re-reads it when it starts.
        self.load().await;
        let mut led = false;
        loop {
            let wake = self
                .shared
                .clock
                .sleep_until(TimestampMs::from_millis(slot));
            tokio::select! {
                () = wake => {}
                Some(delivered) = acks.recv() => {
                    self.lock().acknowledge(delivered);
                    if self.shared.leadership.is_leader() {
                        self.save().await;
                    }
                    continue;
                }
                _ = self.stop.changed() => {
                    // What the webhooks acknowledged is kept, so a restart does not repeat it.
                    let mut acknowledged = false;
                    while let Ok(delivered) = acks.try_recv() {
                        self.lock().acknowledge(delivered);
                        acknowledged = true;
                    }
                    if acknowledged && self.shared.leadership.is_leader() {
                        self.save().await;
                    }
                    return;
                }
            }
            let now = self.shared.clock.now().millis();
            let missed = (now - slot) / interval;
            if missed > 0 {
                let label = [("group", group.name.clone())];
                self.shared
                    .metrics
                    .alerting
                    .iterations_missed
                    .get_or_create(&label)
                    .inc_by(missed as u64);
                slot += missed * interval;
            }
            self.shared
                .metrics
                .alerting
                .evaluation_lateness_seconds
                .observe((now - slot) as f64 / 1000.0);
            led = self.tick(slot, led, &acks_tx).await;
            slot += interval;
        }
    }

    /// One slot; whether this replica evaluated it.
    async fn tick(&self, slot: i64, led: bool, acks: &mpsc::UnboundedSender<Delivered>) -> bool {
        if !self.shared.leadership.is_leader() {
            self.load().await;
            return false;
        }
        if !led && !self.load().await {
            return false;
        }
        self.evaluate(slot).await;
        if !self.shared.leadership.is_leader() {
            return false;
        }
        self.save().await;
        self.notify(slot, acks);
        true
    }

    /// Replaces the state with the stored one; false when it cannot be read.
    async fn load(&self) -> bool {
        let name = self.name();
        match self.shared.store.load_group(&name).await {
            Ok(Some(bytes)) => match StoredGroup::decode(&bytes) {
                Ok(stored) => self.lock().adopt(stored),
                Err(problem) => {
                    tracing::error!(group = %name, %problem, "the stored alert state cannot be read; starting afresh");
                }
            },
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(group = %name, %error, "cannot read the stored alert state");
                return false;
            }
        }
        true
    }

    async fn save(&self) {
        let (name, bytes) = {
            let state = self.lock();
            (state.group.name.clone(), state.stored().encode())
        };
        if let Err(error) = self.shared.store.save_group(&name, &bytes).await {
            tracing::warn!(group = %name, %error, "cannot save the alert state; it is saved again after the next evaluation");
        }
    }

    async fn evaluate(&self, slot: i64) {
        let group = self.lock().group.clone();
        let label = [("group", group.name.clone())];
        let metrics = &self.shared.metrics.alerting;
        let started = std::time::Instant::now();
        for (i, rule) in group.rules.iter().enumerate() {
            let rule_started = std::time::Instant::now();
            let outcome = self.outcome(rule, slot).await;
            metrics.evaluations.get_or_create(&label).inc();
            let mut state = self.lock();
            let rule_state = &mut state.rules[i];
            rule_state.apply(rule, outcome, slot, &self.shared.external_url);
            rule_state.evaluation_seconds = rule_started.elapsed().as_secs_f64();
            if let Some(error) = &rule_state.last_error {
                metrics.evaluation_failures.get_or_create(&label).inc();
                tracing::warn!(group = %group.name, rule = %rule.name, %error, "rule evaluation failed");
            }
        }
        let mut state = self.lock();
        state.last_evaluation = Some(slot);
        state.evaluation_seconds = started.elapsed().as_secs_f64();
        metrics
            .group_duration_seconds
            .get_or_create(&label)
            .set(state.evaluation_seconds);
        metrics
            .group_last_evaluation
            .get_or_create(&label)
            .set(slot as f64 / 1000.0);
        for alert_state in [AlertState::Pending, AlertState::Firing] {
            let count = state
                .rules
                .iter()
                .flat_map(|r| r.alerts.values())
                .filter(|a| a.state == alert_state)
                .count();
            metrics
                .alerts
                .get_or_create(&[
                    ("group", group.name.clone()),
                    ("state", alert_state.as_str().to_owned()),
                ])
                .set(count as i64);
        }
    }

    async fn outcome(&self, rule: &AlertRule, slot: i64) -> Outcome {
        match self
            .shared
            .engine
            .instant(&rule.query, TimestampMs::from_millis(slot))
            .await
        {
            Ok(QueryValue::Vector(samples)) => {
                Ok(samples.into_iter().map(|s| (s.labels, s.v)).collect())
            }
            Ok(QueryValue::Scalar { v, .. }) => Ok(vec![(Labels::default(), v)]),
            Ok(other) => Err(format!(
                "rule result is not a vector or scalar but a {}",
                other.result_type()
            )),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Queues what Alertmanager and the webhooks should hear after the evaluation at `slot`.
    fn notify(&self, slot: i64, acks: &mpsc::UnboundedSender<Delivered>) {
        let shared = &self.shared;
        let (to_alertmanager, deliveries) = {
            let mut state = self.lock();
            outbox::build(&mut state, shared, slot, acks)
        };
        if let Some(alertmanagers) = &shared.notifier.alertmanagers {
            alertmanagers.push(to_alertmanager);
        }
        for delivery in &deliveries {
            shared.notifier.webhooks.push(delivery);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_the_interval_grid_moved_by_the_offset() {
        assert_eq!(next_slot(0, 60_000, 0), 0);
        assert_eq!(next_slot(1, 60_000, 0), 60_000);
        assert_eq!(next_slot(61_000, 60_000, 5_000), 65_000);
        assert_eq!(next_slot(65_000, 60_000, 5_000), 65_000);
        assert_eq!(next_slot(66_000, 60_000, 5_000), 125_000);
        let o = offset("api", 30_000);
        assert!((0..30_000).contains(&o));
        assert_eq!(o, offset("api", 30_000), "stable");
        assert_eq!(
            outbox::generator_url("http://tb:8080/", "up == 0"),
            "http://tb:8080/api/v1/query?query=up+%3D%3D+0"
        );
    }
}
