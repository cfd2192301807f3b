//! Two replicas sharing one scrape config: each target is scraped by exactly one of them.

use std::collections::BTreeSet;

use super::support::{distinct, recording_target, Collector};

const TEXT: &str = "# TYPE http_requests_total counter\nhttp_requests_total{method=\"GET\",path=\"/\",code=\"200\"} 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_scrape_each_target_exactly_once() {
    let mut targets = Vec::new();
    for _ in 0..8 {
        targets.push(recording_target(TEXT).await);
    }
    let list: Vec<String> = targets.iter().map(|(a, _)| format!("'{a}'")).collect();
    let config = format!(
        "scrape_configs:\n  - job_name: fleet\n    scrape_interval: 300ms\n    static_configs:\n      - targets: [{}]\n",
        list.join(", ")
    );
    let first = Collector::start(&config, &["--replica-index", "0", "--replica-count", "2"]).await;
    let second = Collector::start(&config, &["--replica-index", "1", "--replica-count", "2"]).await;
    first.wait_scrapes("fleet", 3).await;
    second.wait_scrapes("fleet", 3).await;
    let (a, b) = (first.targets().await, second.targets().await);
    let urls = |answer: &timebucket::scrape::status::TargetsAnswer| -> BTreeSet<String> {
        answer
            .active_targets
            .iter()
            .map(|t| t.url.clone())
            .collect()
    };
    let (mine, theirs) = (urls(&a), urls(&b));
    assert!(mine.is_disjoint(&theirs), "{mine:?} / {theirs:?}");
    assert_eq!(mine.len() + theirs.len(), 8);
    assert!(
        !mine.is_empty() && !theirs.is_empty(),
        "8 targets split between 2 replicas"
    );
    let dropped: BTreeSet<String> = a.dropped_targets.iter().map(|d| d.url.clone()).collect();
    assert_eq!(
        dropped, theirs,
        "each replica lists the other's targets as dropped"
    );
    for (address, seen) in &targets {
        let scrapers = distinct(seen);
        let url = format!("http://{address}/metrics");
        let owner = if mine.contains(&url) { 0 } else { 1 };
        assert_eq!(
            scrapers,
            BTreeSet::from([format!(
                "timebucket/{} (replica {owner} of 2)",
                env!("CARGO_PKG_VERSION")
            )]),
            "{url}"
        );
    }
}
