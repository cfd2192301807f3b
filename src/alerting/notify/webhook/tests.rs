use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::mpsc;

use super::*;
use crate::alerting::notify::Delivered;
use crate::alerting::state::AlertState;
use crate::promql::Labels;

/// A receiver answering `statuses` in turn (the last one from then on), counting requests.
async fn receiver(statuses: Vec<u16>) -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let status = statuses[n.min(statuses.len() - 1)];
            async move { StatusCode::from_u16(status).unwrap() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn config(url: String, capacity: usize) -> NotifyConfig {
    NotifyConfig {
        webhooks: vec![url],
        queue_capacity: capacity,
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            first: Duration::from_millis(10),
            max: Duration::from_millis(40),
            attempts: 4,
        },
        ..NotifyConfig::default()
    }
}

fn delivery(n: usize, done: &mpsc::UnboundedSender<Delivered>) -> Arc<Delivery> {
    let delivered = Delivered {
        rule: format!("rule-{n}"),
        alerts: vec![(Labels::new([("n", n.to_string())]), AlertState::Firing)],
    };
    Delivery::new(bytes::Bytes::from_static(b"{}"), 1, delivered, done.clone())
}

fn counter(metrics: &Metrics, family: &str) -> u64 {
    let text = metrics.render();
    text.lines()
        .find(|l| l.starts_with(family))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn failures_are_retried_with_backoff_until_delivered_then_acknowledged() {
    let (url, seen) = receiver(vec![503, 502, 200]).await;
    let metrics = Arc::new(Metrics::new());
    let hooks = Webhooks::start(&config(url, 10), reqwest::Client::new(), metrics.clone());
    let (done, mut acks) = mpsc::unbounded_channel();
    hooks.push(&delivery(1, &done));
    let ack = tokio::time::timeout(Duration::from_secs(10), acks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack.rule, "rule-1");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(
        counter(&metrics, "timebucket_alert_notifications_sent_total"),
        1
    );
    assert_eq!(
        counter(&metrics, "timebucket_alert_notification_errors_total"),
        2
    );
    hooks.stop();
}

#[tokio::test]
async fn a_refusal_is_given_up_at_once_and_still_acknowledged() {
    let (url, seen) = receiver(vec![400]).await;
    let metrics = Arc::new(Metrics::new());
    let hooks = Webhooks::start(&config(url, 10), reqwest::Client::new(), metrics.clone());
    let (done, mut acks) = mpsc::unbounded_channel();
    hooks.push(&delivery(1, &done));
    tokio::time::timeout(Duration::from_secs(10), acks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert_eq!(
        counter(&metrics, "timebucket_alert_notifications_dropped_total"),
        1
    );
    hooks.stop();
}

#[tokio::test]
async fn a_receiver_that_never_answers_blocks_nobody_and_its_queue_stays_bounded() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let metrics = Arc::new(Metrics::new());
    let hooks = Webhooks::start(&config(url, 5), reqwest::Client::new(), metrics.clone());
    let (done, mut acks) = mpsc::unbounded_channel();
    hooks.push(&delivery(0, &done));
    // The worker takes it and waits for an answer that never comes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    for n in 1..100 {
        hooks.push(&delivery(n, &done));
    }
    assert!(started.elapsed() < Duration::from_secs(1), "pushing waited");
    // One is in flight, five wait, the rest were dropped, oldest first, and acknowledged.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut dropped = Vec::new();
    while let Ok(ack) = acks.try_recv() {
        dropped.push(ack.rule);
    }
    assert_eq!(dropped.len(), 94, "{dropped:?}");
    assert_eq!(dropped[0], "rule-1");
    assert_eq!(
        counter(&metrics, "timebucket_alert_notifications_dropped_total"),
        94
    );
    assert_eq!(
        counter(&metrics, "timebucket_alert_notification_queue_length"),
        5
    );
    hooks.stop();
    held.abort();
}

#[test]
fn the_payload_has_alertmanagers_shape() {
    let alert = |status: &'static str, instance: &str| WebhookAlert {
        status,
        labels: BTreeMap::from([
            ("alertname".to_owned(), "Down".to_owned()),
            ("instance".to_owned(), instance.to_owned()),
        ]),
        annotations: BTreeMap::from([("summary".to_owned(), "down".to_owned())]),
        starts_at: "2026-01-01T00:00:00.000Z".into(),
        ends_at: NO_END.into(),
        generator_url: "http://tb/api/v1/query?query=x".into(),
        fingerprint: "0123456789abcdef".into(),
    };
    let payload = WebhookPayload::new(
        "Down",
        "http://tb",
        vec![alert("firing", "a"), alert("resolved", "b")],
    );
    let json = serde_json::to_value(&payload).unwrap();
    assert_eq!(json["version"], "4");
    assert_eq!(json["status"], "firing");
    assert_eq!(json["groupKey"], "{}:{alertname=\"Down\"}");
    assert_eq!(
        json["commonLabels"],
        serde_json::json!({"alertname": "Down"})
    );
    assert_eq!(
        json["commonAnnotations"],
        serde_json::json!({"summary": "down"})
    );
    assert_eq!(json["externalURL"], "http://tb");
    assert_eq!(json["alerts"][1]["status"], "resolved");
    assert_eq!(
        json["alerts"][0]["generatorURL"],
        "http://tb/api/v1/query?query=x"
    );
    assert_eq!(json["alerts"][0]["endsAt"], NO_END);
    let resolved = WebhookPayload::new("Down", "http://tb", vec![alert("resolved", "b")]);
    assert_eq!(resolved.status, "resolved");
}
