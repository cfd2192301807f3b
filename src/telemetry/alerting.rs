//! The alerting metrics: rule evaluations (counts, failures, durations, lateness, missed
//! slots), alerts by state, notifications per receiver, and the evaluator lease. Names follow
//! Prometheus' own `prometheus_rule_*` / `prometheus_notifications_*` under our prefix.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `{group}`: a rule group's name (from the rule files, so bounded by the configuration).
pub type GroupLabel = [(&'static str, String); 1];
/// `{group, state}` of `timebucket_alerts`.
pub type GroupState = [(&'static str, String); 2];
/// `{receiver}`: an Alertmanager's or webhook's URL, without credentials.
pub type ReceiverLabel = [(&'static str, String); 1];

/// The alerting metrics.
pub struct AlertingMetrics {
    /// Rule evaluations, by group.
    pub evaluations: Family<GroupLabel, Counter>,
    /// Rule evaluations that failed (the rule's health is `err`), by group.
    pub evaluation_failures: Family<GroupLabel, Counter>,
    /// How long the group's last evaluation took, seconds.
    pub group_duration_seconds: Family<GroupLabel, Gauge<f64, AtomicU64>>,
    /// The slot time of the group's last evaluation, Unix seconds.
    pub group_last_evaluation: Family<GroupLabel, Gauge<f64, AtomicU64>>,
    /// Slots skipped because the previous evaluation ran past them, by group.
    pub iterations_missed: Family<GroupLabel, Counter>,
    /// How late an evaluation started after its slot, seconds.
    pub evaluation_lateness_seconds: Histogram,
    /// Alerts by group and state (`pending`, `firing`).
    pub alerts: Family<GroupState, Gauge>,
    /// Alerts (Alertmanager) or messages (webhooks) delivered, by receiver.
    pub notifications_sent: Family<ReceiverLabel, Counter>,
    /// Failed deliveries (each attempt), by receiver.
    pub notification_errors: Family<ReceiverLabel, Counter>,
    /// Alerts or messages given up on (queue full, retries exhausted), by receiver.
    pub notifications_dropped: Family<ReceiverLabel, Counter>,
    /// Alerts or messages waiting, by receiver.
    pub notification_queue_length: Family<ReceiverLabel, Gauge>,
    /// 1 while this replica holds the evaluator lease.
    pub leader: Gauge,
    /// Times this replica gained or lost the evaluator lease.
    pub lease_changes: Counter,
}

impl Default for AlertingMetrics {
    fn default() -> Self {
        Self {
            evaluations: Family::default(),
            evaluation_failures: Family::default(),
            group_duration_seconds: Family::default(),
            group_last_evaluation: Family::default(),
            iterations_missed: Family::default(),
            evaluation_lateness_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            alerts: Family::default(),
            notifications_sent: Family::default(),
            notification_errors: Family::default(),
            notifications_dropped: Family::default(),
            notification_queue_length: Family::default(),
            leader: Gauge::default(),
            lease_changes: Counter::default(),
        }
    }
}

impl AlertingMetrics {
    /// Registers every alerting metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rule_evaluations",
            "Rule evaluations by group",
            self.evaluations.clone(),
        );
        registry.register(
            "rule_evaluation_failures",
            "Rule evaluations that failed, by group",
            self.evaluation_failures.clone(),
        );
        registry.register(
            "rule_group_last_duration_seconds",
            "How long the group's last evaluation took",
            self.group_duration_seconds.clone(),
        );
        registry.register(
            "rule_group_last_evaluation_timestamp_seconds",
            "The slot time of the group's last evaluation",
            self.group_last_evaluation.clone(),
        );
        registry.register(
            "rule_group_iterations_missed",
            "Evaluation slots skipped because the previous evaluation ran past them",
            self.iterations_missed.clone(),
        );
        registry.register(
            "rule_group_evaluation_lateness_seconds",
            "How late an evaluation started after its slot",
            self.evaluation_lateness_seconds.clone(),
        );
        registry.register("alerts", "Alerts by group and state", self.alerts.clone());
        registry.register(
            "alert_notifications_sent",
            "Alerts (Alertmanager) or messages (webhooks) delivered, by receiver",
            self.notifications_sent.clone(),
        );
        registry.register(
            "alert_notification_errors",
            "Failed delivery attempts, by receiver",
            self.notification_errors.clone(),
        );
        registry.register(
            "alert_notifications_dropped",
            "Alerts or messages given up on (queue full, retries exhausted), by receiver",
            self.notifications_dropped.clone(),
        );
        registry.register(
            "alert_notification_queue_length",
            "Alerts or messages waiting, by receiver",
            self.notification_queue_length.clone(),
        );
        registry.register(
            "alert_evaluator_leader",
            "1 while this replica evaluates the alerting rules",
            self.leader.clone(),
        );
        registry.register(
            "alert_evaluator_lease_changes",
            "Times this replica gained or lost the evaluator lease",
            self.lease_changes.clone(),
        );
    }
}
