//! Alertmanager's API v2: `POST <url>/api/v2/alerts` with a JSON list of alerts, sent to every
//! configured Alertmanager (they are an HA cluster or independent ones; each deduplicates).
//!
//! One queue of alerts for all of them (Prometheus' design): the evaluator pushes, a sender
//! takes batches of [`MAX_BATCH`] and posts each batch to every Alertmanager at once. A full
//! queue drops its oldest alerts (the newest state matters most) and counts them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::Notify;

use super::{receiver_label, NotifyConfig};
use crate::telemetry::Metrics;

/// Alerts per request, as Prometheus sends them.
pub const MAX_BATCH: usize = 64;

/// One alert as Alertmanager's API v2 takes it (`postableAlert`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostableAlert {
    /// Its labels (`alertname` included).
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it started firing (RFC 3339).
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// When it resolved, or until when it holds unless resent (RFC 3339).
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    /// A link to the expression that produced it.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

struct Inner {
    queue: Mutex<VecDeque<PostableAlert>>,
    wake: Notify,
    capacity: usize,
    /// `(POST URL, metric label)` of each Alertmanager.
    targets: Vec<(String, String)>,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
}

/// The Alertmanagers and their sender.
pub struct Alertmanagers {
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Alertmanagers {
    /// Starts the sender for `config.alertmanagers`.
    pub fn start(config: &NotifyConfig, client: reqwest::Client, metrics: Arc<Metrics>) -> Self {
        let targets = config
            .alertmanagers
            .iter()
            .map(|url| {
                (
                    format!("{}/api/v2/alerts", url.trim_end_matches('/')),
                    receiver_label(url),
                )
            })
            .collect();
        let inner = Arc::new(Inner {
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            capacity: config.queue_capacity,
            targets,
            client,
            metrics,
        });
        let task = tokio::spawn(send_forever(inner.clone()));
        Self { inner, task }
    }

    /// Queues `alerts` without waiting; the oldest queued ones make room when it is full.
    pub fn push(&self, alerts: Vec<PostableAlert>) {
        if alerts.is_empty() {
            return;
        }
        let inner = &self.inner;
        let mut queue = inner.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.extend(alerts);
        let over = queue.len().saturating_sub(inner.capacity);
        if over > 0 {
            queue.drain(..over);
            for (_, label) in &inner.targets {
                inner
                    .metrics
                    .alerting
                    .notifications_dropped
                    .get_or_create(&[("receiver", label.clone())])
                    .inc_by(over as u64);
            }
        }
        inner.set_queue_length(queue.len());
        drop(queue);
        inner.wake.notify_one();
    }

    /// Stops the sender.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Inner {
    fn set_queue_length(&self, length: usize) {
        for (_, label) in &self.targets {
            self.metrics
                .alerting
                .notification_queue_length
                .get_or_create(&[("receiver", label.clone())])
                .set(length as i64);
        }
    }

    fn next_batch(&self) -> Vec<PostableAlert> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let take = queue.len().min(MAX_BATCH);
        let batch = queue.drain(..take).collect();
        self.set_queue_length(queue.len());
        batch
    }

    async fn post(&self, url: &str, label: &str, body: bytes::Bytes, alerts: usize) {
        let receiver = [("receiver", label.to_owned())];
        let outcome = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let metrics = &self.metrics.alerting;
        match outcome {
            Ok(answer) if answer.status().is_success() => {
                metrics
                    .notifications_sent
                    .get_or_create(&receiver)
                    .inc_by(alerts as u64);
            }
            Ok(answer) => {
                let status = answer.status();
                let text = answer.text().await.unwrap_or_default();
                tracing::warn!(alertmanager = label, %status, answer = %text.trim(), "Alertmanager refused alerts");
                metrics.notification_errors.get_or_create(&receiver).inc();
            }
            Err(error) => {
                tracing::warn!(alertmanager = label, %error, "cannot send alerts to Alertmanager");
                metrics.notification_errors.get_or_create(&receiver).inc();
            }
        }
    }
}

async fn send_forever(inner: Arc<Inner>) {
    loop {
        let batch = inner.next_batch();
        if batch.is_empty() {
            inner.wake.notified().await;
            continue;
        }
        let body = bytes::Bytes::from(serde_json::to_vec(&batch).expect("alerts serialize"));
        let sends = inner
            .targets
            .iter()
            .map(|(url, label)| inner.post(url, label, body.clone(), batch.len()));
        futures::future::join_all(sends).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(n: usize) -> PostableAlert {
        PostableAlert {
            labels: BTreeMap::from([("n".to_owned(), n.to_string())]),
            annotations: BTreeMap::new(),
            starts_at: "2026-01-01T00:00:00.000Z".into(),
            ends_at: "2026-01-01T00:04:00.000Z".into(),
            generator_url: String::new(),
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_its_oldest_alerts_without_waiting() {
        // Nothing listens on port 9 of the loopback: every send fails.
        let config = NotifyConfig {
            alertmanagers: vec!["http://127.0.0.1:9".into()],
            queue_capacity: 3,
            ..NotifyConfig::default()
        };
        let metrics = Arc::new(Metrics::new());
        let am = Alertmanagers::start(&config, reqwest::Client::new(), metrics.clone());
        am.push((0..10).map(alert).collect());
        let kept: Vec<String> = am
            .inner
            .queue
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.labels["n"].clone())
            .collect();
        assert_eq!(kept, ["7", "8", "9"], "the newest stay");
        let text = metrics.render();
        assert!(
            text.contains(
                "timebucket_alert_notifications_dropped_total{receiver=\"http://127.0.0.1:9\"} 7"
            ),
            "{text}"
        );
        am.stop();
    }
}
