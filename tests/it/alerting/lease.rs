//! Two real `timebucket serve` processes on one CQL keyspace: one evaluates, the other shows
//! what it stores; `kill -9` of the evaluator hands over within the lease's time, the `for`
//! countdown and the alert carry on, and the receivers hear of it once.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use timebucket::model::TimestampMs;

use super::support::{metric, ms, prom_data, Alertmanager, Webhook, WAIT};
use crate::support::{cql_node, migrated_keyspace};

/// A replica: the real binary with the alerting flags; killed when dropped.
struct Replica {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Replica {
    fn start(keyspace: &str, rules: &str, alertmanager: &str, webhook: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_timebucket"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TIMEBUCKET_") {
                command.env_remove(name);
            }
        }
        let child = command
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .args(["--cql-nodes", &cql_node(), "--keyspace", keyspace])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "--rules",
                rules,
                "--alertmanager-url",
                alertmanager,
                "--alert-webhook",
                webhook,
            ])
            .args([
                "--alert-lease-ttl",
                "2s",
                "--rule-evaluation-interval",
                "1s",
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut replica = Self {
            child,
            url: String::new(),
            dir,
        };
        let deadline = Instant::now() + WAIT;
        replica.url = loop {
            if let Some(status) = replica.child.try_wait().unwrap() {
                panic!("timebucket exited ({status}):\n{}", replica.log());
            }
            let address = replica.log().lines().find_map(|line| {
                let entry: Value = serde_json::from_str(line).ok()?;
                (entry["fields"]["message"] == "listening")
                    .then(|| entry["fields"]["address"].as_str().unwrap().to_owned())
            });
            if let Some(address) = address {
                break format!("http://{address}");
            }
            assert!(
                Instant::now() < deadline,
                "not listening:\n{}",
                replica.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        replica
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    async fn leads(&self) -> bool {
        metric(&self.url, "timebucket_alert_evaluator_leader").await == Some(1.0)
    }

    async fn alert(&self) -> Option<Value> {
        prom_data(&self.url, "/api/v1/alerts").await["alerts"]
            .as_array()
            .unwrap()
            .first()
            .cloned()
    }

    /// Polls until `check` holds for its only alert (or its absence).
    async fn wait_alert(
        &self,
        what: &str,
        check: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let alert = self.alert().await;
            if check(alert.as_ref()) {
                return alert;
            }
            assert!(
                Instant::now() < deadline,
                "{what}; got {alert:#?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Posts a CPU reading of `lease-test/i-1` taken now, and waits until it is stored.
    async fn post_cpu(&self, cpu: f64) {
        let before = metric(&self.url, "timebucket_readings_flushed_total")
            .await
            .unwrap_or(0.0);
        let body = json!({"host": [{"service": "lease-test", "instance": "i-1", "cpu_percent": cpu,
                                    "timestamp": TimestampMs::now().millis()}]});
        let answer = reqwest::Client::new()
            .post(format!("{}/v1/metrics", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202);
        let deadline = Instant::now() + WAIT;
        while metric(&self.url, "timebucket_readings_flushed_total")
            .await
            .unwrap_or(0.0)
            <= before
        {
            assert!(Instant::now() < deadline, "not stored");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_evaluates_and_another_takes_over_when_it_is_killed() {
    let keyspace = migrated_keyspace().await;
    let alertmanager = Alertmanager::start().await;
    let webhook = Webhook::start().await;
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = rules_dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: lease\n    rules:\n      - alert: CpuHot\n\
         \x20       expr: max by (service, instance) (host_cpu_percent{service=\"lease-test\"}) > 50\n\
         \x20       for: 6s\n        annotations: {summary: \"{{ $labels.instance }} at {{ $value }}%\"}\n",
    )
    .unwrap();
    let rules = rules.display().to_string();
    let mut first = Replica::start(keyspace.as_str(), &rules, &alertmanager.url, &webhook.url);
    let deadline = Instant::now() + WAIT;
    while !first.leads().await {
        assert!(
            Instant::now() < deadline,
            "the first replica never led:\n{}",
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = Replica::start(keyspace.as_str(), &rules, &alertmanager.url, &webhook.url);
    second.post_cpu(90.0).await;

    // The evaluator makes it pending; the other replica shows the same from the store.
    let pending = first
        .wait_alert("pending on the evaluator", |a| {
            a.is_some_and(|a| a["state"] == "pending")
        })
        .await
        .unwrap();
    let active_at = ms(&pending["activeAt"]);
    second
        .wait_alert("the same alert on the other replica", |a| {
            a.is_some_and(|a| ms(&a["activeAt"]) == active_at)
        })
        .await;
    assert!(!second.leads().await, "two evaluators");

    // kill -9 of the evaluator, before the alert fires.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed = Instant::now();
    let deadline = killed + WAIT;
    while !second.leads().await {
        assert!(
            Instant::now() < deadline,
            "nobody took over:\n{}",
            second.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let firing = second
        .wait_alert("firing on the new evaluator", |a| {
            a.is_some_and(|a| a["state"] == "firing")
        })
        .await
        .unwrap();
    assert_eq!(
        ms(&firing["activeAt"]),
        active_at,
        "the countdown carried on: {firing:#}"
    );
    assert_eq!(firing["annotations"]["summary"], "i-1 at 90%");
    alertmanager
        .wait("CpuHot", "the alert at Alertmanager", |alerts| {
            alerts.len() == 1
        })
        .await;
    webhook
        .wait("CpuHot", "one firing message", |m| {
            m.len() == 1 && m[0]["status"] == "firing"
        })
        .await;

    // It resolves on the new evaluator, and everyone hears of it once.
    second.post_cpu(10.0).await;
    second
        .wait_alert("resolved on the new evaluator", |a| a.is_none())
        .await;
    alertmanager
        .wait("CpuHot", "resolved at Alertmanager", |alerts| {
            alerts.is_empty()
        })
        .await;
    let messages = webhook
        .wait("CpuHot", "the resolved message", |m| m.len() >= 2)
        .await;
    let statuses: Vec<&str> = messages
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"], "{messages:#?}");
    assert_eq!(
        metric(
            &second.url,
            "timebucket_alert_evaluator_lease_changes_total"
        )
        .await,
        Some(1.0)
    );
    drop(first);
}
