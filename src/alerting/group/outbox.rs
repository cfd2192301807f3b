//! The outbox of one evaluation: which alerts go to Alertmanager and which messages to the
//! webhooks, built under the group's lock and handed to the senders after it is released.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{to_map, GroupState, Shared};
use crate::alerting::notify::alertmanager::PostableAlert;
use crate::alerting::notify::webhook::{WebhookAlert, WebhookPayload, NO_END};
use crate::alerting::notify::{fingerprint, Delivered, Delivery};
use crate::alerting::state::{Alert, AlertState};
use crate::model::TimestampMs;

/// What Alertmanager and the webhooks should hear after the evaluation at `slot`: the alerts
/// due (firing ones once per resend delay, resolved ones at once, as Prometheus sends them) and
/// one webhook message per rule whose alerts the webhooks do not know as they are now.
pub(super) fn build<S, A>(
    state: &mut GroupState,
    shared: &Shared<S, A>,
    slot: i64,
    acks: &mpsc::UnboundedSender<Delivered>,
) -> (Vec<PostableAlert>, Vec<Arc<Delivery>>) {
    let group = state.group.clone();
    let valid_for = shared.resend_delay.max(group.interval).as_millis() as i64 * 4;
    let mut to_alertmanager = Vec::new();
    let mut deliveries = Vec::new();
    let GroupState {
        rules, in_flight, ..
    } = state;
    for (rule, rule_state) in group.rules.iter().zip(rules.iter_mut()) {
        let link = generator_url(&shared.external_url, &rule.expr);
        let starts =
            |a: &Alert| TimestampMs::from_millis(a.fired_at.unwrap_or(a.active_at)).to_rfc3339();
        if shared.notifier.alertmanagers.is_some() {
            for alert in rule_state.alerts.values_mut() {
                if !alert.needs_sending(slot, shared.resend_delay) {
                    continue;
                }
                alert.last_sent_at = Some(slot);
                to_alertmanager.push(PostableAlert {
                    labels: to_map(&alert.labels),
                    annotations: alert.annotations.clone(),
                    starts_at: starts(alert),
                    ends_at: TimestampMs::from_millis(
                        alert.resolved_at.unwrap_or(slot + valid_for),
                    )
                    .to_rfc3339(),
                    generator_url: link.clone(),
                });
            }
        }
        if shared.notifier.webhooks.is_empty() {
            continue;
        }
        let identity = rule.identity();
        let news = rule_state.alerts.values().any(|a| {
            a.webhook_news().is_some_and(|news| {
                in_flight.get(&(identity.clone(), a.labels.clone())) != Some(&news)
            })
        });
        if !news {
            continue;
        }
        let mut alerts = Vec::new();
        let mut told = Vec::new();
        for alert in rule_state.alerts.values() {
            let status = match (alert.state, alert.webhook_news()) {
                (AlertState::Firing, _) => AlertState::Firing,
                (AlertState::Inactive, Some(AlertState::Inactive)) => AlertState::Inactive,
                _ => continue,
            };
            let resolved = status == AlertState::Inactive;
            alerts.push(WebhookAlert {
                status: if resolved { "resolved" } else { "firing" },
                labels: to_map(&alert.labels),
                annotations: alert.annotations.clone(),
                starts_at: starts(alert),
                ends_at: match alert.resolved_at {
                    Some(at) if resolved => TimestampMs::from_millis(at).to_rfc3339(),
                    _ => NO_END.to_owned(),
                },
                generator_url: link.clone(),
                fingerprint: fingerprint(&alert.labels),
            });
            in_flight.insert((identity.clone(), alert.labels.clone()), status);
            told.push((alert.labels.clone(), status));
        }
        let payload = WebhookPayload::new(&rule.name, &shared.external_url, alerts);
        let body = bytes::Bytes::from(serde_json::to_vec(&payload).expect("payloads serialize"));
        deliveries.push(Delivery::new(
            body,
            shared.notifier.webhooks.len(),
            Delivered {
                rule: identity,
                alerts: told,
            },
            acks.clone(),
        ));
    }
    (to_alertmanager, deliveries)
}

/// The link to an alert's expression: this service's instant query API.
pub(super) fn generator_url(external_url: &str, expr: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", expr)
        .finish();
    format!(
        "{}/api/v1/query?{query}",
        external_url.trim_end_matches('/')
    )
}
