//! An app wired with the capture layer in scrape-only mode, scraped by timebucket.

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use timebucket::capture::{Capture, CaptureConfig};

use super::support::{serve, Collector};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capture_layers_endpoint_is_scraped_into_exact_readings() {
    let capture = Capture::start(CaptureConfig::scrape_only("capshop", "pod-1").unwrap()).unwrap();
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/orders", post(|| async { StatusCode::CREATED }))
        // An own fallback, so unrouted requests go through the layer after the merge below.
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(capture.layer())
        .merge(capture.metrics_endpoint().unwrap().router());
    let address = serve(app).await;
    let config = format!(
        "scrape_configs:\n  - job_name: capshop\n    scrape_interval: 300ms\n    static_configs:\n      - targets: ['{address}']\n        labels: {{instance: pod-1}}\n"
    );
    let collector = Collector::start(&config, &[]).await;
    collector.wait_scrapes("capshop", 1).await;
    let client = reqwest::Client::new();
    for i in 0..25 {
        client
            .get(format!("http://{address}/users/{i}"))
            .send()
            .await
            .unwrap();
    }
    for _ in 0..5 {
        client
            .post(format!("http://{address}/orders"))
            .send()
            .await
            .unwrap();
    }
    client
        .get(format!("http://{address}/nothing/here"))
        .send()
        .await
        .unwrap();
    collector
        .wait_counts(
            "capshop",
            &[
                (("GET", "/users/{id}", 200), 25),
                (("POST", "/orders", 201), 5),
                (("GET", "/nothing/here", 404), 1),
            ],
        )
        .await;
    collector.wait_available("capshop", "pod-1", true).await;
    let stats = capture.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        (stats.requests, stats.delivered, stats.dropped()),
        (31, 31, 0),
        "{stats:?}"
    );
}
