//! Targets that hang, fail, vanish or serve garbage: each is recorded as unavailable and
//! counted, and none of them holds up the others.

use axum::http::StatusCode;
use timebucket::scrape::status::Health;

use super::support::{fixed_target, hanging_target, metric, Collector};

const GOOD: &str = "# TYPE http_requests_total counter\nhttp_requests_total{method=\"GET\",path=\"/\",code=\"200\"} 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_targets_are_unavailable_and_counted_and_never_delay_the_others() {
    let good = fixed_target(StatusCode::OK, GOOD).await;
    let hanging = hanging_target().await;
    let failing = fixed_target(StatusCode::INTERNAL_SERVER_ERROR, "boom").await;
    let garbage = fixed_target(
        StatusCode::OK,
        "<html><body>\u{1}not metrics{{</body></html>",
    )
    .await;
    // A port nothing listens on.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let job = |name: &str, address: &str| {
        format!("  - job_name: {name}\n    scrape_interval: 300ms\n    scrape_timeout: 200ms\n    static_configs:\n      - targets: ['{address}']\n")
    };
    let config = format!(
        "scrape_configs:\n{}{}{}{}{}",
        job("good", &good),
        job("hanging", &hanging),
        job("failing", &failing),
        job("garbage", &garbage),
        job("gone", &gone)
    );
    let collector = Collector::start(&config, &[]).await;
    for name in ["good", "hanging", "failing", "garbage", "gone"] {
        collector.wait_scrapes(name, 2).await;
    }
    let answer = collector.targets().await;
    let by_job = |job: &str| {
        answer
            .active_targets
            .iter()
            .find(|t| t.job == job)
            .unwrap()
            .clone()
    };
    assert_eq!(by_job("good").health, Health::Up);
    for (job, error) in [
        ("hanging", "no answer within the scrape timeout"),
        ("failing", "HTTP 500"),
        ("garbage", "not a Prometheus exposition: line 1"),
        ("gone", "cannot reach the target"),
    ] {
        let t = by_job(job);
        assert_eq!(t.health, Health::Down, "{job}");
        let last = t.last_error.unwrap_or_default();
        assert!(last.contains(error), "{job}: {last}");
        collector.wait_available(job, &t.instance, false).await;
    }
    collector.wait_available("good", &good, true).await;
    // While the hanging target eats its whole timeout every interval, the good one keeps its
    // pace: as many scrapes, give or take the one in flight.
    collector.wait_scrapes("hanging", 3).await;
    let answer = collector.targets().await;
    let scrapes = |job: &str| {
        answer
            .active_targets
            .iter()
            .find(|t| t.job == job)
            .unwrap()
            .scrapes_total
    };
    assert!(scrapes("good") + 1 >= scrapes("hanging"), "{answer:#?}");
    let metrics = collector.metrics().await;
    for (job, outcome) in [
        ("good", "ok"),
        ("hanging", "timeout"),
        ("failing", "http_error"),
        ("garbage", "bad_body"),
        ("gone", "unreachable"),
    ] {
        let line = format!("timebucket_scrapes_total{{job=\"{job}\",outcome=\"{outcome}\"}}");
        assert!(metric(&metrics, &line) >= 2.0, "{line} in\n{metrics}");
    }
}
