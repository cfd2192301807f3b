//! State across a restart (from the store) and across a reload (kept for unchanged rules), and
//! failures made visible.

use serde_json::Value;
use timebucket::alerting::clock::ManualClock;
use timebucket::model::TimestampMs;

use super::support::*;

/// Readings of an error incident of `checkout`: a third of the requests fail from +1 m to +9 m.
fn error_incident(t0: i64) -> Vec<Value> {
    let mut readings = Vec::new();
    for k in 0..120 {
        let at = t0 + k * 10_000;
        readings.push(api("checkout", at, "/cart", 200, 12.0, 10));
        if (t0 + MINUTE..t0 + 9 * MINUTE).contains(&at) {
            readings.push(api("checkout", at, "/cart", 500, 30.0, 5));
        }
    }
    readings
}

async fn the_alert(app: &crate::support::TestApp) -> Option<Value> {
    alerts(app, "HighErrorRate").await.into_iter().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_for_countdown_and_the_firing_alert_and_repeats_no_message() {
    let t0 = twenty_minutes_ago();
    let webhook = Webhook::start().await;
    let clock = ManualClock::new(TimestampMs::from_millis(t0 - STEP_MS));
    let dir = tempfile::tempdir().unwrap();
    let rules = example_rules();
    let config = service_config(
        dir.path(),
        alerting_config(dir.path(), &[&rules], &clock, None, Some(&webhook.url)),
    );
    let mut app = start(config.clone(), dir).await;
    seed(&app, error_incident(t0), Vec::new()).await;

    // Pending for two minutes, then a restart.
    let mut t = t0;
    let active_at = loop {
        step_to(&app, &clock, t).await;
        if let Some(alert) = the_alert(&app).await {
            break ms(&alert["activeAt"]);
        }
        t += STEP_MS;
    };
    step_to(&app, &clock, active_at + 2 * MINUTE).await;
    let (outcome, dir) = app.stop_keeping_data().await;
    outcome.unwrap();
    app = start(config.clone(), dir).await;
    let alert = the_alert(&app)
        .await
        .expect("the pending alert is back before any evaluation");
    assert_eq!(
        (alert["state"].as_str(), ms(&alert["activeAt"])),
        (Some("pending"), active_at)
    );

    // It fires exactly `for` after it became pending, not `for` after the restart.
    let mut t = active_at + 2 * MINUTE + STEP_MS;
    let fired_at = loop {
        step_to(&app, &clock, t).await;
        let alert = the_alert(&app).await.expect("still active");
        assert_eq!(ms(&alert["activeAt"]), active_at);
        if alert["state"] == "firing" {
            break t;
        }
        t += STEP_MS;
    };
    assert!(
        fired_at < active_at + 5 * MINUTE + STEP_MS,
        "fired at {fired_at}, active since {active_at}"
    );
    webhook
        .wait("HighErrorRate", "the firing message", |m| m.len() == 1)
        .await;
    let shown = crate::support::timebucket_command()
        .args(["query", "alerts", "--url", &app.url])
        .output()
        .unwrap();
    let table = String::from_utf8(shown.stdout).unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        table.contains("FIRING  HighErrorRate  service=checkout,severity=page")
            && table.contains("checkout: 33.33% of requests fail")
            && table.ends_with("1 firing, 0 pending\n"),
        "{table}"
    );
    let shown = crate::support::timebucket_command()
        .args(["query", "rules", "--url", &app.url])
        .output()
        .unwrap();
    let table = String::from_utf8(shown.stdout).unwrap();
    assert!(
        table.contains("api    HighErrorRate  firing    ok")
            && table.ends_with("4 rules in 2 groups\n"),
        "{table}"
    );
    // Delivered and counted: its acknowledgement is saved by the time the service stops.
    while metric(&app.url, "timebucket_alert_notifications_sent_total").await != Some(1.0) {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // A restart while it fires: still firing at once, and the webhook is not told again.
    let (outcome, dir) = app.stop_keeping_data().await;
    outcome.unwrap();
    app = start(config, dir).await;
    let alert = the_alert(&app).await.expect("the firing alert is back");
    assert_eq!(
        (alert["state"].as_str(), ms(&alert["activeAt"])),
        (Some("firing"), active_at)
    );
    let mut t = fired_at + STEP_MS;
    while the_alert(&app).await.is_some() {
        step_to(&app, &clock, t).await;
        t += STEP_MS;
        assert!(t < t0 + 20 * MINUTE, "never resolved");
    }
    let messages = webhook
        .wait("HighErrorRate", "the resolved message", |m| m.len() >= 2)
        .await;
    let statuses: Vec<&str> = messages
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"], "{messages:#?}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_unchanged_rules_and_refuses_bad_files_and_failures_show() {
    let t0 = twenty_minutes_ago();
    let clock = ManualClock::new(TimestampMs::from_millis(t0 - STEP_MS));
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    let file = |hot_expr: &str, summary: &str| {
        format!(
            "groups:\n  - name: g\n    interval: 30s\n    rules:\n\
             \x20     - alert: Busy\n        expr: sum by (service) (rate(http_server_request_duration_seconds_count[5m])) > 0\n        for: 10m\n        annotations: {{summary: \"{summary}\"}}\n\
             \x20     - alert: Hot\n        expr: {hot_expr}\n        for: 10m\n\
             \x20     - alert: Dup\n        expr: count by (path) (count_over_time(http_server_request_duration_seconds_count[1h]))\n        labels: {{path: same}}\n"
        )
    };
    std::fs::write(
        &rules,
        file(
            "sum(rate(http_server_request_duration_seconds_count[5m])) > 0",
            "busy",
        ),
    )
    .unwrap();
    let rules_path = rules.display().to_string();
    let config = service_config(
        dir.path(),
        alerting_config(dir.path(), &[&rules_path], &clock, None, None),
    );
    let app = start(config, dir).await;
    let mut readings = error_incident(t0);
    readings.push(api("checkout", t0, "/other", 200, 1.0, 1));
    seed(&app, readings, Vec::new()).await;
    step_to(&app, &clock, t0 + 2 * MINUTE).await;
    let before: Vec<Value> = prom_data(&app.url, "/api/v1/alerts").await["alerts"]
        .as_array()
        .unwrap()
        .clone();
    let active_at = |alerts: &[Value], name: &str| {
        alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .map(|a| ms(&a["activeAt"]))
    };
    assert!(
        active_at(&before, "Busy").is_some() && active_at(&before, "Hot").is_some(),
        "{before:#?}"
    );

    // A failing rule: its health, error and the failure counter say so.
    let groups = prom_data(&app.url, "/api/v1/rules").await["groups"].clone();
    let dup = &groups[0]["rules"][2];
    assert_eq!(
        (dup["name"].as_str(), dup["health"].as_str()),
        (Some("Dup"), Some("err")),
        "{dup:#}"
    );
    assert!(
        dup["lastError"].as_str().unwrap().contains("same labelset"),
        "{dup:#}"
    );
    assert_eq!(groups[0]["rules"][0]["health"], "ok");
    assert_eq!(groups[0]["rules"][0]["type"], "alerting");
    assert!(groups[0]["rules"][0]["evaluationTime"].as_f64().unwrap() >= 0.0);
    assert!(metric(&app.url, "timebucket_rule_evaluation_failures_total").await >= Some(1.0));
    assert!(metric(&app.url, "timebucket_rule_evaluations_total").await >= Some(3.0));
    let filtered = prom_data(
        &app.url,
        "/api/v1/rules?rule_name[]=Hot&exclude_alerts=true",
    )
    .await;
    assert_eq!(filtered["groups"][0]["rules"].as_array().unwrap().len(), 1);
    assert!(filtered["groups"][0]["rules"][0].get("alerts").is_none());
    let records = prom_data(&app.url, "/api/v1/rules?type=record").await;
    assert_eq!(records["groups"], serde_json::json!([]));

    // Busy keeps its state through a new annotation; Hot's expression changed: it starts over.
    std::fs::write(
        &rules,
        file(
            "sum(rate(http_server_request_duration_seconds_count[5m])) > -1",
            "very busy",
        ),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{}/-/reload", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    step_to(&app, &clock, t0 + 3 * MINUTE).await;
    let after: Vec<Value> = prom_data(&app.url, "/api/v1/alerts").await["alerts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        active_at(&after, "Busy"),
        active_at(&before, "Busy"),
        "{after:#?}"
    );
    assert!(
        active_at(&after, "Hot") > active_at(&before, "Hot"),
        "{after:#?}"
    );
    let busy = after
        .iter()
        .find(|a| a["labels"]["alertname"] == "Busy")
        .unwrap();
    assert_eq!(busy["annotations"]["summary"], "very busy");

    // A file that does not validate is refused, naming the line; the running rules stay.
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: rate(\n",
    )
    .unwrap();
    let answer = client
        .post(format!("{}/-/reload", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 500);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["details"][0]["field"], "rules", "{body:#}");
    assert!(
        body["details"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("rules.yml:5:15"),
        "{body:#}"
    );
    let still = prom_data(&app.url, "/api/v1/rules").await["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(still, 3);
    app.stop().await.unwrap();
}
