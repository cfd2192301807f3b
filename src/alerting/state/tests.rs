use std::path::Path;
use std::time::Duration;

use super::*;
use crate::alerting::rules;

const MIN: i64 = 60_000;

fn rule(yaml_rule: &str) -> AlertRule {
    let text = format!("groups:\n  - name: g\n    rules:\n{yaml_rule}");
    let groups = rules::parse(&text, Path::new("t.yml"), Duration::from_secs(60)).unwrap();
    groups[0].rules[0].clone()
}

fn sample(service: &str, v: f64) -> (Labels, f64) {
    (Labels::new([("__name__", "x"), ("service", service)]), v)
}

fn only(state: &RuleState) -> &Alert {
    assert_eq!(state.alerts.len(), 1, "{state:?}");
    state.alerts.values().next().unwrap()
}

#[test]
fn pending_for_the_hold_then_firing_then_resolved_and_forgotten_after_retention() {
    let r = rule(
        "      - alert: High\n        expr: x > 1\n        for: 5m\n        labels: {severity: \"{{ if gt $value 10.0 }}page{{ else }}ticket{{ end }}\"}\n        annotations: {summary: \"{{ $labels.service }} at {{ $value }}\"}\n",
    );
    let mut state = RuleState::default();
    state.apply(&r, Ok(vec![sample("a", 5.0)]), 0, "");
    let a = only(&state);
    assert_eq!(a.state, AlertState::Pending);
    assert_eq!(
        a.labels,
        Labels::new([
            ("alertname", "High"),
            ("service", "a"),
            ("severity", "ticket")
        ])
    );
    assert_eq!(a.annotations["summary"], "a at 5");
    state.apply(&r, Ok(vec![sample("a", 6.0)]), 4 * MIN, "");
    assert_eq!(only(&state).state, AlertState::Pending);
    assert_eq!(only(&state).annotations["summary"], "a at 6");
    state.apply(&r, Ok(vec![sample("a", 7.0)]), 5 * MIN, "");
    let a = only(&state);
    assert_eq!(
        (a.state, a.active_at, a.fired_at),
        (AlertState::Firing, 0, Some(5 * MIN))
    );
    assert_eq!(state.state(), AlertState::Firing);
    state.apply(&r, Ok(vec![]), 6 * MIN, "");
    let a = only(&state);
    assert_eq!(
        (a.state, a.resolved_at),
        (AlertState::Inactive, Some(6 * MIN))
    );
    state.apply(&r, Ok(vec![]), 21 * MIN, "");
    assert_eq!(state.alerts.len(), 1, "kept for 15 minutes");
    state.apply(&r, Ok(vec![]), 21 * MIN + 1, "");
    assert!(state.alerts.is_empty());
}

#[test]
fn a_pending_alert_that_clears_is_dropped_and_a_new_one_counts_again() {
    let r = rule("      - alert: High\n        expr: x > 1\n        for: 2m\n");
    let mut state = RuleState::default();
    state.apply(&r, Ok(vec![sample("a", 5.0)]), 0, "");
    state.apply(&r, Ok(vec![]), MIN, "");
    assert!(state.alerts.is_empty());
    state.apply(&r, Ok(vec![sample("a", 5.0)]), 2 * MIN, "");
    state.apply(&r, Ok(vec![sample("a", 5.0)]), 3 * MIN, "");
    assert_eq!(
        only(&state).state,
        AlertState::Pending,
        "the countdown restarted"
    );
    state.apply(&r, Ok(vec![sample("a", 5.0)]), 4 * MIN, "");
    assert_eq!(only(&state).state, AlertState::Firing);
}

#[test]
fn without_for_an_alert_fires_at_once_and_keep_firing_for_holds_it() {
    let r = rule("      - alert: High\n        expr: x > 1\n        keep_firing_for: 2m\n");
    let mut state = RuleState::default();
    state.apply(&r, Ok(vec![sample("a", 5.0)]), 0, "");
    assert_eq!(only(&state).state, AlertState::Firing);
    state.apply(&r, Ok(vec![]), MIN, "");
    assert_eq!(only(&state).state, AlertState::Firing);
    assert_eq!(only(&state).keep_firing_since, Some(MIN));
    state.apply(&r, Ok(vec![sample("a", 5.0)]), 2 * MIN, "");
    assert_eq!(only(&state).keep_firing_since, None, "back in the result");
    state.apply(&r, Ok(vec![]), 3 * MIN, "");
    state.apply(&r, Ok(vec![]), 4 * MIN, "");
    assert_eq!(only(&state).state, AlertState::Firing);
    state.apply(&r, Ok(vec![]), 5 * MIN, "");
    assert_eq!(only(&state).state, AlertState::Inactive);
    assert_eq!(only(&state).resolved_at, Some(5 * MIN));
}

#[test]
fn a_failed_evaluation_changes_no_alert_and_duplicates_fail() {
    let r = rule("      - alert: High\n        expr: x > 1\n        labels: {service: same}\n");
    let mut state = RuleState::default();
    state.apply(&r, Ok(vec![sample("a", 5.0)]), 0, "");
    let before = state.alerts.clone();
    state.apply(&r, Err("the store did not answer".into()), MIN, "");
    assert_eq!(
        (state.health, state.alerts.clone()),
        (Health::Err, before.clone())
    );
    assert_eq!(
        state.last_error.as_deref(),
        Some("the store did not answer")
    );
    state.apply(
        &r,
        Ok(vec![sample("a", 5.0), sample("b", 6.0)]),
        2 * MIN,
        "",
    );
    assert_eq!(state.health, Health::Err);
    assert!(state
        .last_error
        .as_deref()
        .unwrap()
        .contains("same labelset"));
    assert_eq!(state.alerts, before);
    state.apply(&r, Ok(vec![sample("a", 5.0)]), 3 * MIN, "");
    assert_eq!((state.health, state.last_error.clone()), (Health::Ok, None));
}

#[test]
fn alertmanager_hears_of_firing_alerts_once_per_resend_delay_and_at_once_when_resolved() {
    let mut alert = Alert {
        labels: Labels::default(),
        annotations: BTreeMap::new(),
        state: AlertState::Pending,
        value: 1.0,
        active_at: 0,
        fired_at: None,
        resolved_at: None,
        keep_firing_since: None,
        notified: None,
        last_sent_at: None,
    };
    let delay = Duration::from_secs(60);
    assert!(!alert.needs_sending(0, delay));
    alert.state = AlertState::Firing;
    assert!(alert.needs_sending(0, delay));
    alert.last_sent_at = Some(0);
    assert!(!alert.needs_sending(59_999, delay));
    assert!(alert.needs_sending(MIN, delay));
    alert.state = AlertState::Inactive;
    alert.resolved_at = Some(1_000);
    assert!(alert.needs_sending(1_000, delay));
    assert_eq!(alert.webhook_news(), None, "never told it fired");
    alert.notified = Some(AlertState::Firing);
    assert_eq!(alert.webhook_news(), Some(AlertState::Inactive));
}

#[test]
fn the_stored_form_round_trips_nan_and_infinities() {
    let r = rule("      - alert: High\n        expr: x > 1\n        for: 1m\n");
    let mut state = RuleState::default();
    state.apply(
        &r,
        Ok(vec![
            sample("a", f64::NAN),
            sample("b", f64::INFINITY),
            sample("c", -0.5),
        ]),
        0,
        "",
    );
    state
        .alerts
        .values_mut()
        .for_each(|a| a.notified = Some(AlertState::Firing));
    let stored = StoredGroup {
        version: STORED_VERSION,
        last_evaluation: Some(0),
        evaluation_seconds: 0.25,
        rules: vec![StoredRule::new(&r, &state)],
    };
    let back = StoredGroup::decode(&stored.encode()).unwrap();
    assert_eq!(back, stored);
    let restored = back.rules.into_iter().next().unwrap().into_state();
    assert_eq!(restored.alerts.len(), 3);
    for (labels, alert) in &restored.alerts {
        let original = &state.alerts[labels];
        assert_eq!(alert.value.to_bits(), original.value.to_bits(), "{labels}");
        assert_eq!(alert.active_at, original.active_at);
    }
    assert!(StoredGroup::decode(b"{\"version\": 99}").is_err());
}
