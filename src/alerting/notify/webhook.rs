//! Plain webhooks: the JSON Alertmanager's own webhook receiver posts (`version` "4",
//! `status`, `alerts`, ...), so anything written for Alertmanager webhooks reads ours.
//!
//! Each webhook has its own bounded queue and worker, so a slow one delays no other. A worker
//! sends one message at a time, in order (a resolution never overtakes its firing), retrying
//! per [`RetryPolicy`]; a full queue drops its oldest message. Either way the message is done
//! with, and [`Delivery::finish`] tells the group.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::Notify;

use super::{receiver_label, Delivery, NotifyConfig, RetryPolicy};
use crate::telemetry::Metrics;

/// The body Alertmanager's webhook receiver posts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// Always "4".
    pub version: &'static str,
    /// Identifies the group of alerts (here: one rule's).
    pub group_key: String,
    /// Alerts left out (never: every alert is sent).
    pub truncated_alerts: u32,
    /// `firing` while any alert in `alerts` fires, else `resolved`.
    pub status: &'static str,
    /// Who sends it.
    pub receiver: &'static str,
    /// `{alertname}`.
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert has.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert has.
    pub common_annotations: BTreeMap<String, String>,
    /// This service's base URL.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<WebhookAlert>,
}

/// One alert of a webhook message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: &'static str,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it started firing (RFC 3339).
    pub starts_at: String,
    /// When it resolved; `0001-01-01T00:00:00Z` while firing, as Alertmanager writes it.
    pub ends_at: String,
    /// A link to the expression that produced it.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Its label fingerprint, as Alertmanager computes it.
    pub fingerprint: String,
}

/// The `endsAt` of a firing alert in a webhook message: Go's zero time.
pub const NO_END: &str = "0001-01-01T00:00:00Z";

impl WebhookPayload {
    /// A message about `alerts` of rule `alertname`: status, group and common labels derived.
    pub fn new(alertname: &str, external_url: &str, alerts: Vec<WebhookAlert>) -> Self {
        let common = |pick: fn(&WebhookAlert) -> &BTreeMap<String, String>| {
            let mut iter = alerts.iter().map(pick);
            let first = iter.next().cloned().unwrap_or_default();
            iter.fold(first, |mut common, other| {
                common.retain(|k, v| other.get(k) == Some(v));
                common
            })
        };
        Self {
            version: "4",
            group_key: format!("{{}}:{{alertname={alertname:?}}}"),
            truncated_alerts: 0,
            status: if alerts.iter().any(|a| a.status == "firing") {
                "firing"
            } else {
                "resolved"
            },
            receiver: "timebucket",
            group_labels: BTreeMap::from([("alertname".to_owned(), alertname.to_owned())]),
            common_labels: common(|a| &a.labels),
            common_annotations: common(|a| &a.annotations),
            external_url: external_url.to_owned(),
            alerts,
        }
    }
}

struct Queue {
    url: String,
    label: String,
    items: Mutex<VecDeque<Arc<Delivery>>>,
    wake: Notify,
}

/// Every webhook and its worker.
pub struct Webhooks {
    queues: Vec<Arc<Queue>>,
    capacity: usize,
    metrics: Arc<Metrics>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Webhooks {
    /// Starts a worker per webhook of `config`.
    pub fn start(config: &NotifyConfig, client: reqwest::Client, metrics: Arc<Metrics>) -> Self {
        let queues: Vec<Arc<Queue>> = config
            .webhooks
            .iter()
            .map(|url| {
                Arc::new(Queue {
                    url: url.clone(),
                    label: receiver_label(url),
                    items: Mutex::new(VecDeque::new()),
                    wake: Notify::new(),
                })
            })
            .collect();
        let tasks = queues
            .iter()
            .map(|q| {
                tokio::spawn(deliver_forever(
                    q.clone(),
                    client.clone(),
                    config.retry,
                    metrics.clone(),
                ))
            })
            .collect();
        Self {
            queues,
            capacity: config.queue_capacity,
            metrics,
            tasks,
        }
    }

    /// How many webhooks there are.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// True when no webhook is configured.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Queues `delivery` for every webhook without waiting; a full queue drops its oldest.
    pub fn push(&self, delivery: &Arc<Delivery>) {
        for queue in &self.queues {
            let receiver = [("receiver", queue.label.clone())];
            let mut items = queue.items.lock().unwrap_or_else(|e| e.into_inner());
            items.push_back(delivery.clone());
            while items.len() > self.capacity {
                if let Some(dropped) = items.pop_front() {
                    self.metrics
                        .alerting
                        .notifications_dropped
                        .get_or_create(&receiver)
                        .inc();
                    dropped.finish();
                }
            }
            self.metrics
                .alerting
                .notification_queue_length
                .get_or_create(&receiver)
                .set(items.len() as i64);
            drop(items);
            queue.wake.notify_one();
        }
    }

    /// Stops the workers.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Whether a failed attempt is worth another.
enum Failure {
    Retry(String),
    GiveUp(String),
}

async fn attempt(client: &reqwest::Client, url: &str, body: bytes::Bytes) -> Result<(), Failure> {
    let answer = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| Failure::Retry(e.to_string()))?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let problem = format!("answered {status}");
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(Failure::Retry(problem))
    } else {
        Err(Failure::GiveUp(problem))
    }
}

async fn deliver_forever(
    queue: Arc<Queue>,
    client: reqwest::Client,
    retry: RetryPolicy,
    metrics: Arc<Metrics>,
) {
    let receiver = [("receiver", queue.label.clone())];
    let alerting = &metrics.alerting;
    loop {
        let next = {
            let mut items = queue.items.lock().unwrap_or_else(|e| e.into_inner());
            let next = items.pop_front();
            alerting
                .notification_queue_length
                .get_or_create(&receiver)
                .set(items.len() as i64);
            next
        };
        let Some(delivery) = next else {
            queue.wake.notified().await;
            continue;
        };
        let mut tried = 0;
        loop {
            tried += 1;
            match attempt(&client, &queue.url, delivery.body.clone()).await {
                Ok(()) => {
                    alerting.notifications_sent.get_or_create(&receiver).inc();
                    break;
                }
                Err(Failure::Retry(problem)) if tried < retry.attempts => {
                    alerting.notification_errors.get_or_create(&receiver).inc();
                    let wait = retry.wait_after(tried);
                    tracing::warn!(webhook = %queue.label, %problem, tried, retry_in = ?wait, "webhook delivery failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(Failure::Retry(problem) | Failure::GiveUp(problem)) => {
                    alerting.notification_errors.get_or_create(&receiver).inc();
                    alerting
                        .notifications_dropped
                        .get_or_create(&receiver)
                        .inc();
                    tracing::error!(webhook = %queue.label, %problem, tried, "webhook delivery given up");
                    break;
                }
            }
        }
        delivery.finish();
    }
}

#[cfg(test)]
mod tests;
