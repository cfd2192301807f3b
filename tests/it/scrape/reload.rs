//! Reloading: SIGHUP and `POST /-/reload` apply a changed scrape config without a restart and
//! without losing what was scraped; a bad config is refused and the running one kept; target
//! files are followed without any reload; `timebucket query targets` shows it all.

use std::process::Command;

use super::support::{Collector, PyTarget};

fn job(name: &str, addresses: &[String]) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("'{a}'")).collect();
    format!(
        "  - job_name: {name}\n    scrape_interval: 300ms\n    static_configs:\n      - targets: [{}]\n",
        list.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_apply_changes_keep_data_and_refuse_bad_configs() {
    let mut one = PyTarget::start(0, "histogram");
    let mut two = PyTarget::start(0, "histogram");
    one.request("GET", "/a", 200, 0.01, 1);
    two.request("GET", "/b", 200, 0.01, 1);
    let first_config = format!("scrape_configs:\n{}", job("shop", &[one.address()]));
    let collector = Collector::start(&first_config, &[]).await;
    collector.wait_scrapes("shop", 1).await;
    one.request("GET", "/a", 200, 0.01, 10);
    collector
        .wait_counts("shop", &[(("GET", "/a", 200), 10)])
        .await;

    // SIGHUP with a second target: the first keeps its task (its totals), the second starts.
    let before = collector.targets().await.active_targets[0].scrapes_total;
    let second_config = format!(
        "scrape_configs:\n{}",
        job("shop", &[one.address(), two.address()])
    );
    std::fs::write(collector.config_path(), &second_config).unwrap();
    collector.sighup();
    collector
        .wait_targets("the second target after SIGHUP", |a| {
            a.active_targets.len() == 2
        })
        .await;
    let kept = collector.targets().await;
    let first = kept
        .active_targets
        .iter()
        .find(|t| t.url.contains(&one.address()))
        .unwrap();
    assert!(
        first.scrapes_total >= before,
        "the first target's task was kept"
    );
    collector.wait_scrapes("shop", 1).await;
    one.request("GET", "/a", 200, 0.01, 5);
    two.request("GET", "/b", 200, 0.01, 2);
    collector
        .wait_counts("shop", &[(("GET", "/a", 200), 15), (("GET", "/b", 200), 2)])
        .await;

    // A config with an unknown key: refused by name, the running one stays.
    std::fs::write(
        collector.config_path(),
        format!("{second_config}    relabel_configs: []\n"),
    )
    .unwrap();
    let (status, body) = collector.post_reload().await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["details"][0]["field"], "scrape");
    let problem = body["details"][0]["problem"].as_str().unwrap();
    assert!(problem.contains("relabel_configs"), "{problem}");
    assert_eq!(collector.targets().await.active_targets.len(), 2);

    // Back to one target, through the HTTP trigger: the data scraped so far stays.
    std::fs::write(collector.config_path(), &first_config).unwrap();
    let (status, body) = collector.post_reload().await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["reloaded"]["scrape"]
            .as_str()
            .unwrap()
            .contains("1 stopped"),
        "{body}"
    );
    assert_eq!(collector.targets().await.active_targets.len(), 1);
    collector
        .wait_counts("shop", &[(("GET", "/a", 200), 15), (("GET", "/b", 200), 2)])
        .await;

    // What the README shows: the targets as a table.
    let output = Command::new(env!("CARGO_BIN_EXE_timebucket"))
        .args(["query", "targets", "--url", &collector.url])
        .env_remove("TIMEBUCKET_URL")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{table}");
    assert!(table.starts_with("JOB"), "{table}");
    assert!(
        table.contains(&format!("http://{}/metrics", one.address())),
        "{table}"
    );
    assert!(table.contains(" up "), "{table}");
    assert!(table.contains("1 targets here (replica 0 of 1)"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_files_are_followed_without_a_reload() {
    let mut one = PyTarget::start(0, "counter");
    let mut two = PyTarget::start(0, "counter");
    let dir = tempfile::tempdir().unwrap();
    let targets = dir.path().join("targets.json");
    let group = |addresses: &[String]| {
        serde_json::json!([{"targets": addresses, "labels": {"service": "filed"}}]).to_string()
    };
    std::fs::write(&targets, group(&[one.address()])).unwrap();
    std::fs::write(
        dir.path().join("scrape.yml"),
        "scrape_configs:\n  - job_name: sd\n    scrape_interval: 300ms\n    file_sd_configs:\n      - files: ['*.json']\n",
    )
    .unwrap();
    let collector = Collector::start_in(dir, &[]).await;
    collector
        .wait_targets("the filed target", |a| a.active_targets.len() == 1)
        .await;
    assert_eq!(collector.targets().await.active_targets[0].service, "filed");
    collector.wait_scrapes("sd", 1).await;
    one.request("GET", "/x", 200, 0.0, 3);
    collector
        .wait_counts("filed", &[(("GET", "/x", 200), 3)])
        .await;
    std::fs::write(
        collector.dir().join("targets.json"),
        group(&[one.address(), two.address()]),
    )
    .unwrap();
    collector
        .wait_targets("the second filed target", |a| a.active_targets.len() == 2)
        .await;
    collector.wait_scrapes("sd", 1).await;
    two.request("GET", "/x", 200, 0.0, 4);
    collector
        .wait_counts("filed", &[(("GET", "/x", 200), 7)])
        .await;
}
