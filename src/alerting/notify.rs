//! Telling people: Alertmanager (its API v2) and plain webhooks (Alertmanager's webhook
//! payload), fed by the evaluator and never able to hold it up.
//!
//! ```text
//!  group evaluation ──try-push──► Alertmanager queue (alerts, drop oldest when full)
//!        │                           └─ sender: batches of 64 ─POST /api/v2/alerts─► every AM
//!        └───────────try-push──► per-webhook queue (messages, drop oldest when full)
//!                                    └─ worker: POST, retried with backoff ─► ack to the group
//! ```
//!
//! Invariants:
//! - pushing never waits: queues are bounded, and what overflows is dropped and counted
//!   (`timebucket_alert_notifications_dropped_total{receiver}`), so a dead receiver costs memory
//!   up to its queue and nothing else;
//! - Alertmanager is told as Prometheus tells it: firing alerts resent every resend delay with
//!   `endsAt` four resend delays ahead, resolved ones with their `endsAt`; it deduplicates, so
//!   sends are not retried (the next resend is the retry);
//! - a webhook message is retried with exponential backoff on connection errors, timeouts, 429
//!   and 5xx; once every webhook has it (or gave up on it) the group hears back
//!   ([`Delivered`]) and records what the webhooks know, so a restart or a new leader sends
//!   only what they missed.

pub mod alertmanager;
pub mod webhook;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::state::AlertState;
use crate::promql::Labels;
use crate::telemetry::Metrics;

/// How receivers are reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Alertmanager base URLs (`http://am:9093`).
    pub alertmanagers: Vec<String>,
    /// Webhook URLs.
    pub webhooks: Vec<String>,
    /// Alerts (Alertmanager) or messages (each webhook) waiting at most.
    pub queue_capacity: usize,
    /// Longest one request to a receiver may take.
    pub timeout: Duration,
    /// How webhook messages are retried.
    pub retry: RetryPolicy,
}

impl NotifyConfig {
    /// Default `queue_capacity`: Prometheus' notification queue.
    pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
    /// Default `timeout`: Prometheus' Alertmanager timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            alertmanagers: Vec::new(),
            webhooks: Vec::new(),
            queue_capacity: Self::DEFAULT_QUEUE_CAPACITY,
            timeout: Self::DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

/// Exponential backoff for webhook messages: `first`, doubling up to `max`, `attempts` tries
/// in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
}

impl Default for RetryPolicy {
    /// 1 s, 2 s, 4 s ... up to a minute, ten tries: about six minutes before giving up.
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
            attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `tried` (1-based).
    pub fn wait_after(&self, tried: u32) -> Duration {
        let factor = 2u32.saturating_pow(tried.saturating_sub(1));
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// What every webhook now knows about some alerts of one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// The rule's identity.
    pub rule: String,
    /// Each alert's labels and the status the webhooks were given.
    pub alerts: Vec<(Labels, AlertState)>,
}

/// One webhook message on its way to every webhook; reports [`Delivered`] when the last one
/// is done with it (delivered or given up).
#[derive(Debug)]
pub struct Delivery {
    /// The JSON body.
    pub body: bytes::Bytes,
    remaining: AtomicUsize,
    report: Mutex<Option<(Delivered, mpsc::UnboundedSender<Delivered>)>>,
}

impl Delivery {
    /// A message for `receivers` webhooks; `delivered` goes to `done` when all are done.
    pub fn new(
        body: bytes::Bytes,
        receivers: usize,
        delivered: Delivered,
        done: mpsc::UnboundedSender<Delivered>,
    ) -> Arc<Self> {
        Arc::new(Self {
            body,
            remaining: AtomicUsize::new(receivers),
            report: Mutex::new(Some((delivered, done))),
        })
    }

    /// One webhook is done with it.
    pub fn finish(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let report = self.report.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some((delivered, done)) = report {
                // The group may be gone (reloaded away); then nobody needs to know.
                let _ = done.send(delivered);
            }
        }
    }
}

/// Prometheus' fingerprint of a label set (FNV-1a over the sorted pairs, each part followed by
/// 0xff), as 16 hex digits: the `fingerprint` Alertmanager shows for the same alert.
pub fn fingerprint(labels: &Labels) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes.iter().chain([0xffu8].iter()) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels.iter() {
        add(name.as_bytes());
        add(value.as_bytes());
    }
    format!("{hash:016x}")
}

/// A receiver's URL as a metric label: without `user:password@`.
pub fn receiver_label(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// Every receiver, running.
pub struct Notifier {
    /// The Alertmanagers, when any are configured.
    pub alertmanagers: Option<alertmanager::Alertmanagers>,
    /// The webhooks (possibly none).
    pub webhooks: webhook::Webhooks,
}

impl Notifier {
    /// Starts a sender per receiver.
    pub fn start(config: &NotifyConfig, metrics: Arc<Metrics>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("timebucket/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client without TLS always builds");
        Self {
            alertmanagers: (!config.alertmanagers.is_empty()).then(|| {
                alertmanager::Alertmanagers::start(config, client.clone(), metrics.clone())
            }),
            webhooks: webhook::Webhooks::start(config, client, metrics),
        }
    }

    /// Stops every sender; what is still queued is dropped (firing alerts are resent by the
    /// next evaluator, webhooks told what they missed from the stored state).
    pub fn stop(&self) {
        if let Some(am) = &self.alertmanagers {
            am.stop();
        }
        self.webhooks.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_prometheus() {
        // Prometheus: model.LabelSet{}.Fingerprint() and a one-label set.
        assert_eq!(fingerprint(&Labels::default()), "cbf29ce484222325");
        assert_eq!(
            fingerprint(&Labels::new([("alertname", "Up")])),
            fingerprint(&Labels::new([("alertname", "Up")]))
        );
        assert_ne!(
            fingerprint(&Labels::new([("a", "bc")])),
            fingerprint(&Labels::new([("ab", "c")]))
        );
    }

    #[test]
    fn receiver_labels_hide_credentials_and_backoff_doubles_to_its_cap() {
        assert_eq!(
            receiver_label("http://user:secret@hooks:8080/alert?x=1"),
            "http://hooks:8080/alert?x=1"
        );
        assert_eq!(receiver_label("http://am:9093"), "http://am:9093");
        let policy = RetryPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(5),
            attempts: 5,
        };
        let waits: Vec<u64> = (1..=4).map(|n| policy.wait_after(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5]);
    }
}
