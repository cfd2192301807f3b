//! Each rule of `examples/rules.yml` against a seeded incident: it goes pending, fires after
//! its `for`, resolves when the incident ends — in `/api/v1/alerts`, at a real Alertmanager
//! (through its own `GET /api/v2/alerts`) and at a webhook (one firing and one resolved
//! message per alert, nothing twice) — and no other rule fires.
//!
//! Time: the readings cover the last 20 minutes; the evaluation clock starts at their start
//! and moves one 30 s slot at a time, each step waiting for the evaluations of that slot.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use timebucket::alerting::clock::ManualClock;
use timebucket::model::TimestampMs;

use super::support::*;

/// What should happen.
struct Incident {
    /// The rule expected to fire.
    alertname: &'static str,
    /// The label sets of its alerts, each with its summary when it starts firing.
    alerts: Vec<(BTreeMap<String, String>, String)>,
    /// Its `for`, ms.
    hold_ms: i64,
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn as_labels(v: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(v.clone()).unwrap()
}

/// What was seen of one alert.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    active_at: Option<i64>,
    firing_at: Option<i64>,
    resolved_at: Option<i64>,
}

/// Seeds the readings, runs the clock over the 20 minutes and checks `incident` everywhere.
async fn run(t0: i64, incident: Incident, api: Vec<Value>, host: Vec<Value>) {
    let alertmanager = Alertmanager::start().await;
    let webhook = Webhook::start().await;
    let clock = ManualClock::new(TimestampMs::from_millis(t0 - STEP_MS));
    let dir = tempfile::tempdir().unwrap();
    let rules = example_rules();
    let config = service_config(
        dir.path(),
        alerting_config(
            dir.path(),
            &[&rules],
            &clock,
            Some(&alertmanager.url),
            Some(&webhook.url),
        ),
    );
    let app = start(config, dir).await;
    seed(&app, api, host).await;

    let mut seen: Vec<Seen> = vec![Seen::default(); incident.alerts.len()];
    for k in 0..=40 {
        let t = t0 + k * STEP_MS;
        step_to(&app, &clock, t).await;
        // The slot the rule's group evaluated last: the time of everything it did.
        let t = rule_group_slot(&app, incident.alertname).await;
        let all = prom_data(&app.url, "/api/v1/alerts").await["alerts"].clone();
        for alert in all.as_array().unwrap() {
            assert_eq!(
                alert["labels"]["alertname"], incident.alertname,
                "at {t} another rule is active: {alert:#}"
            );
        }
        for (i, (want, summary)) in incident.alerts.iter().enumerate() {
            let now = all
                .as_array()
                .unwrap()
                .iter()
                .find(|a| &as_labels(&a["labels"]) == want)
                .cloned();
            let s = &mut seen[i];
            match (now, s.firing_at) {
                (Some(alert), None) => {
                    let active_at = ms(&alert["activeAt"]);
                    assert_eq!(
                        *s.active_at.get_or_insert(active_at),
                        active_at,
                        "{alert:#}"
                    );
                    if alert["state"] == "firing" {
                        assert_eq!(
                            t - active_at,
                            incident.hold_ms,
                            "fires after its `for`: {alert:#}"
                        );
                        assert_eq!(alert["annotations"]["summary"], summary.as_str());
                        s.firing_at = Some(t);
                        fired_everywhere(
                            &alertmanager,
                            &webhook,
                            incident.alertname,
                            want,
                            summary,
                            t,
                        )
                        .await;
                        // The console's alerts page lists it, as firing.
                        let page = reqwest::get(format!("{}/alerts", app.url))
                            .await
                            .unwrap()
                            .text()
                            .await
                            .unwrap();
                        assert!(
                            page.contains(incident.alertname) && page.contains("Firing"),
                            "the console's alerts page: {page}"
                        );
                    } else {
                        assert_eq!(alert["state"], "pending");
                    }
                }
                (Some(alert), Some(_)) => assert_eq!(alert["state"], "firing", "{alert:#}"),
                (None, Some(_)) if s.resolved_at.is_none() => {
                    s.resolved_at = Some(t);
                    resolved_everywhere(&alertmanager, &webhook, incident.alertname, want, t).await;
                }
                (None, _) => {}
            }
        }
    }
    for ((want, _), s) in incident.alerts.iter().zip(&seen) {
        assert!(
            s.firing_at.is_some() && s.resolved_at.is_some(),
            "{want:?} should have fired and resolved: {s:?}"
        );
    }
    // Exactly one firing and one resolved message per alert.
    let messages = webhook.messages(incident.alertname);
    for (want, _) in &incident.alerts {
        let statuses: Vec<&str> = messages
            .iter()
            .flat_map(|m| m["alerts"].as_array().unwrap())
            .filter(|a| &as_labels(&a["labels"]) == want)
            .map(|a| a["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["firing", "resolved"], "{want:?}: {messages:#?}");
    }
    app.stop().await.unwrap();
}

/// The last evaluation (slot) of the group holding rule `alertname`.
async fn rule_group_slot(app: &crate::support::TestApp, alertname: &str) -> i64 {
    let groups = prom_data(&app.url, "/api/v1/rules").await["groups"].clone();
    let group = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            g["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == alertname)
        })
        .unwrap_or_else(|| panic!("no rule {alertname}: {groups:#}"));
    ms(&group["lastEvaluation"])
}

/// Alertmanager lists the alert with its labels, annotations and start; the webhook got a
/// firing message with it.
async fn fired_everywhere(
    am: &Alertmanager,
    webhook: &Webhook,
    alertname: &str,
    want: &BTreeMap<String, String>,
    summary: &str,
    at: i64,
) {
    let found = am
        .wait(alertname, "the alert should be active", |alerts| {
            alerts.iter().any(|a| &as_labels(&a["labels"]) == want)
        })
        .await;
    let alert = found
        .iter()
        .find(|a| &as_labels(&a["labels"]) == want)
        .unwrap();
    assert_eq!(alert["annotations"]["summary"], summary);
    assert_eq!(alert["status"]["state"], "active", "{alert:#}");
    assert_eq!(ms(&alert["startsAt"]), at, "{alert:#}");
    assert!(
        ms(&alert["endsAt"]) > TimestampMs::now().millis(),
        "{alert:#}"
    );
    assert!(alert["generatorURL"]
        .as_str()
        .unwrap()
        .starts_with("http://timebucket.test:8080/api/v1/query?query="));
    let messages = webhook
        .wait(alertname, "a firing message", |messages| {
            messages.iter().any(|m| {
                m["status"] == "firing"
                    && m["alerts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|a| &as_labels(&a["labels"]) == want)
            })
        })
        .await;
    let has_it = |m: &&Value| {
        m["status"] == "firing"
            && m["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| &as_labels(&a["labels"]) == want)
    };
    let message = messages.iter().find(has_it).unwrap();
    assert_eq!(message["version"], "4");
    assert_eq!(message["receiver"], "timebucket");
    let sent = message["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| &as_labels(&a["labels"]) == want)
        .unwrap();
    assert_eq!(sent["status"], "firing");
    assert_eq!(sent["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        sent["fingerprint"], alert["fingerprint"],
        "the same fingerprint as Alertmanager's"
    );
}

/// Alertmanager no longer lists the alert (it was told `endsAt`); the webhook got it resolved.
async fn resolved_everywhere(
    am: &Alertmanager,
    webhook: &Webhook,
    alertname: &str,
    want: &BTreeMap<String, String>,
    at: i64,
) {
    am.wait(alertname, "the alert should be resolved", |alerts| {
        !alerts.iter().any(|a| &as_labels(&a["labels"]) == want)
    })
    .await;
    webhook
        .wait(alertname, "a resolved message", |messages| {
            messages
                .iter()
                .flat_map(|m| m["alerts"].as_array().unwrap())
                .any(|a| {
                    &as_labels(&a["labels"]) == want
                        && a["status"] == "resolved"
                        && a["endsAt"]
                            .as_str()
                            .is_some_and(|t| TimestampMs::parse(t).unwrap().millis() == at)
                })
        })
        .await;
}

/// Every 10 s over the 20 minutes.
fn every_10s(t0: i64) -> impl Iterator<Item = i64> {
    (0..120).map(move |k| t0 + k * 10_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_error_rate_fires_after_5m_above_5_percent_and_resolves() {
    let t0 = twenty_minutes_ago();
    let mut readings = Vec::new();
    for at in every_10s(t0) {
        readings.push(api("checkout", at, "/cart", 200, 12.0, 10));
        if (t0 + MINUTE..t0 + 9 * MINUTE).contains(&at) {
            readings.push(api("checkout", at, "/cart", 500, 30.0, 5));
        }
    }
    let incident = Incident {
        alertname: "HighErrorRate",
        alerts: vec![(
            labels(&[
                ("alertname", "HighErrorRate"),
                ("service", "checkout"),
                ("severity", "page"),
            ]),
            "checkout: 33.33% of requests fail".into(),
        )],
        hold_ms: 5 * MINUTE,
    };
    run(t0, incident, readings, Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_path_fires_when_p99_stays_above_a_second_and_resolves() {
    let t0 = twenty_minutes_ago();
    let mut readings = Vec::new();
    for at in every_10s(t0) {
        readings.push(api("checkout", at, "/fast", 200, 20.0, 10));
        if at >= t0 + MINUTE {
            let slow = at < t0 + 8 * MINUTE;
            readings.push(api(
                "checkout",
                at,
                "/slow",
                200,
                if slow { 2_500.0 } else { 50.0 },
                4,
            ));
        }
    }
    let incident = Incident {
        alertname: "SlowPath",
        alerts: vec![(
            labels(&[
                ("alertname", "SlowPath"),
                ("path", "/slow"),
                ("service", "checkout"),
                ("severity", "ticket"),
            ]),
            // All of /slow in the (1 s, 2.5 s] bucket: 1 + 1.5 × 0.99, as histogram_quantile has it.
            "checkout /slow: p99 is 2.485s".into(),
        )],
        hold_ms: 5 * MINUTE,
    };
    run(t0, incident, readings, Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_down_fires_for_a_false_or_missing_heartbeat_of_2m_and_resolves() {
    let t0 = twenty_minutes_ago();
    let mut host = Vec::new();
    for at in every_10s(t0) {
        // i-2 says it is unavailable for 3 minutes; i-1 goes silent for 4.
        let i2_up = !(t0 + 2 * MINUTE..t0 + 5 * MINUTE).contains(&at);
        host.push(
            json!({"service": "node", "instance": "i-2", "available": i2_up, "timestamp": at}),
        );
        if !(t0 + 8 * MINUTE..t0 + 12 * MINUTE).contains(&at) {
            host.push(
                json!({"service": "node", "instance": "i-1", "available": true, "timestamp": at}),
            );
        }
    }
    let down = |instance: &str| {
        (
            labels(&[
                ("alertname", "InstanceDown"),
                ("instance", instance),
                ("service", "node"),
                ("severity", "page"),
            ]),
            format!("{instance} of node is down"),
        )
    };
    let incident = Incident {
        alertname: "InstanceDown",
        alerts: vec![down("i-2"), down("i-1")],
        hold_ms: 0,
    };
    run(t0, incident, Vec::new(), host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_high_fires_after_5m_above_90_percent_and_resolves() {
    let t0 = twenty_minutes_ago();
    let mut host = Vec::new();
    for at in every_10s(t0) {
        let used = if (t0 + MINUTE..t0 + 9 * MINUTE).contains(&at) {
            950
        } else {
            500
        };
        host.push(
            json!({"service": "node", "instance": "i-1", "available": true,
                         "mem_used_bytes": used, "mem_total_bytes": 1000, "timestamp": at}),
        );
    }
    let incident = Incident {
        alertname: "MemoryHigh",
        alerts: vec![(
            labels(&[
                ("alertname", "MemoryHigh"),
                ("instance", "i-1"),
                ("job", "node"),
                ("service", "node"),
                ("severity", "ticket"),
            ]),
            "i-1 of node uses 95% of its memory".into(),
        )],
        hold_ms: 5 * MINUTE,
    };
    run(t0, incident, Vec::new(), host).await;
}

#[test]
fn rules_check_passes_the_examples_and_lists_every_problem_of_a_broken_file() {
    let run = |args: &[&str]| {
        let out = crate::support::timebucket_command()
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (code, out, _) = run(&["rules", "check", "examples/rules.yml"]);
    assert_eq!(
        (code, out.as_str()),
        (
            Some(0),
            "Checking examples/rules.yml\n  SUCCESS: 4 rules found\n"
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: api\n    rules:\n      - alert: A\n        expr: rate(x[5m]\n      - alert: B\n        expr: x > 1\n        for: soon\n",
    )
    .unwrap();
    let bad = bad.display().to_string();
    let (code, out, err) = run(&["rules", "check", "examples/rules.yml", &bad]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("  SUCCESS: 4 rules found\n"), "{out}");
    assert!(
        out.contains(&format!(
            "Checking {bad}\n  FAILED:\n{bad}:5:15: group \"api\": rule \"A\": expr: parse error"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{bad}:8:14: group \"api\": rule \"B\": for: `soon` is not a duration"
        )),
        "{out}"
    );
    assert!(
        err.starts_with("error: the rule files have problems"),
        "{err}"
    );
}
