//! While ingest is refusing (the WAL backlog over its limit), scrapes are skipped and counted:
//! nothing is read, nothing piles up in memory or in the WAL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use timebucket::ingest::{AcceptConfig, Acceptor};
use timebucket::scrape::{Replica, ScrapeSettings, Scraper};
use timebucket::telemetry::Metrics;
use timebucket::wal::{Wal, WalConfig};

use super::support::{fixed_target, metric, WAIT};

const TEXT: &str = "# TYPE http_requests_total counter\nhttp_requests_total{method=\"GET\",path=\"/\",code=\"200\"} 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_are_skipped_and_counted_while_the_backlog_is_over_its_limit() {
    let address = fixed_target(StatusCode::OK, TEXT).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scrape.yml");
    std::fs::write(
        &config,
        format!("scrape_configs:\n  - job_name: pressed\n    scrape_interval: 100ms\n    static_configs:\n      - targets: ['{address}']\n"),
    )
    .unwrap();
    // No flusher drains this WAL, and any backlog at all is over the limit: the first scrape
    // is accepted, every later one must be skipped.
    let wal = Wal::open(WalConfig::new(dir.path().join("wal"))).unwrap();
    let metrics = Arc::new(Metrics::new());
    let acceptor = Acceptor::new(
        wal.clone(),
        AcceptConfig {
            limits: timebucket::ingest::AcceptLimits {
                max_backlog_bytes: 0,
                max_concurrent: 1,
                ..Default::default()
            },
            retention_ms: 86_400_000,
        },
        metrics.clone(),
    );
    let settings = ScrapeSettings {
        config_file: Some(config),
        replica: Replica::default(),
    };
    let scraper = Scraper::start(&settings, acceptor, metrics.clone())
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let target = scraper.targets().active_targets[0].clone();
        if target.skipped_total >= 5 {
            assert_eq!(
                target.scrapes_total, 1,
                "only the first scrape was read: {target:?}"
            );
            assert!(target.last_error.unwrap().contains("skipped"));
            break;
        }
        assert!(Instant::now() < deadline, "{target:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let backlog = wal.stats().backlog_bytes;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        wal.stats().backlog_bytes,
        backlog,
        "the WAL does not grow while refusing"
    );
    let text = metrics.render();
    assert!(
        metric(
            &text,
            "timebucket_scrapes_total{job=\"pressed\",outcome=\"skipped\"}"
        ) >= 5.0,
        "{text}"
    );
    scraper.stop().await;
}
