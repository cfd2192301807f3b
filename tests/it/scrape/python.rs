//! Targets served by the official Python client: exact deltas across scrapes and restarts.

use super::support::{metric, Collector, PyTarget};

fn config(job: &str, address: &str) -> String {
    format!(
        "scrape_configs:\n  - job_name: {job}\n    scrape_interval: 300ms\n    scrape_timeout: 250ms\n    static_configs:\n      - targets: ['{address}']\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_counts_are_exact_deltas_across_scrapes_and_a_counter_reset() {
    let mut target = PyTarget::start(0, "histogram,counter,summary");
    let port = target.port;
    let address = target.address();
    // Requests made before the first scrape are history: the first scrape only primes.
    target.request("GET", "/users/{id}", 200, 0.012, 7);
    let collector = Collector::start(&config("pyshop", &address), &[]).await;
    collector.wait_scrapes("pyshop", 2).await;
    target.request("GET", "/users/{id}", 200, 0.012, 30);
    target.request("POST", "/orders", 503, 0.3, 4);
    collector.wait_scrapes("pyshop", 2).await;
    let got = collector
        .wait_counts(
            "pyshop",
            &[
                (("GET", "/users/{id}", 200), 30),
                (("POST", "/orders", 503), 4),
            ],
        )
        .await;
    // The histogram wins over the counter and the summary of the same requests, and each
    // request is represented inside its bucket with the sum kept: the mean is exact.
    let mean = got[&("GET".into(), "/users/{id}".into(), 200)].1;
    assert!((mean - 12.0).abs() < 1e-6, "mean {mean}");
    collector.wait_available("pyshop", &address, true).await;
    let latest = collector.latest("pyshop").await.unwrap();
    assert!(
        latest.host[0].gauges.heap_bytes.unwrap_or(0) > 0,
        "process_resident_memory_bytes → heap_bytes"
    );

    // The target goes away: its scrapes fail and say so.
    drop(target);
    collector.wait_available("pyshop", &address, false).await;
    // It comes back on the same address with its counters from zero (a counter reset).
    let mut target = PyTarget::start(port, "histogram,counter,summary");
    collector.wait_available("pyshop", &address, true).await;
    target.request("GET", "/users/{id}", 200, 0.012, 5);
    collector.wait_scrapes("pyshop", 2).await;
    collector
        .wait_counts(
            "pyshop",
            &[
                (("GET", "/users/{id}", 200), 35),
                (("POST", "/orders", 503), 4),
            ],
        )
        .await;
    // And nothing is counted twice by later scrapes.
    collector.wait_scrapes("pyshop", 3).await;
    collector
        .wait_counts(
            "pyshop",
            &[
                (("GET", "/users/{id}", 200), 35),
                (("POST", "/orders", 503), 4),
            ],
        )
        .await;
    let metrics = collector.metrics().await;
    assert!(
        metric(
            &metrics,
            "timebucket_scrape_unmapped_samples_total{job=\"pyshop\"}"
        ) > 0.0,
        "the client's python_* samples are counted as unmapped:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_and_counters_are_read_when_no_histogram_is_exposed() {
    let mut summary = PyTarget::start(0, "summary");
    let mut counter = PyTarget::start(0, "counter");
    let text = format!(
        "{}  - job_name: counted\n    scrape_interval: 300ms\n    static_configs:\n      - targets: ['{}']\n",
        config("micrometer", &summary.address()),
        counter.address()
    );
    let collector = Collector::start(&text, &[]).await;
    collector.wait_scrapes("micrometer", 1).await;
    collector.wait_scrapes("counted", 1).await;
    summary.request("PUT", "/items/{id}", 201, 0.05, 3);
    summary.request("PUT", "/items/{id}", 201, 0.2, 1);
    counter.request("DELETE", "/items/{id}", 404, 0.5, 6);
    let got = collector
        .wait_counts("micrometer", &[(("PUT", "/items/{id}", 201), 4)])
        .await;
    let mean = got[&("PUT".into(), "/items/{id}".into(), 201)].1;
    assert!(
        (mean - 87.5).abs() < 1e-6,
        "mean of 3 × 50 ms and 200 ms: {mean}"
    );
    let got = collector
        .wait_counts("counted", &[(("DELETE", "/items/{id}", 404), 6)])
        .await;
    assert_eq!(
        got[&("DELETE".into(), "/items/{id}".into(), 404)].1,
        0.0,
        "a counter carries no duration"
    );
}
