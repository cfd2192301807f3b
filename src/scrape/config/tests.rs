use super::*;

fn load_text(text: &str) -> Result<Vec<Job>, String> {
    parse(text, Path::new("/etc/timebucket/scrape.yml")).map_err(|e| e.to_string())
}

#[test]
fn a_pasted_prometheus_config_is_read_with_defaults() {
    let jobs = load_text(
        r#"
global:
  scrape_interval: 30s
scrape_configs:
  - job_name: checkout
    static_configs:
      - targets: ['10.0.0.7:8080', 'localhost:9100']
        labels: {instance: c1}
  - job_name: node
    scrape_interval: 5s
    metrics_path: /m
    file_sd_configs:
      - files: [targets/*.json]
    timebucket:
      path_labels: [endpoint]
      mountpoint: /data
"#,
    )
    .unwrap();
    assert_eq!(jobs.len(), 2);
    let checkout = &jobs[0];
    assert_eq!(
        (checkout.interval, checkout.timeout),
        (Duration::from_secs(30), Duration::from_secs(10))
    );
    assert_eq!(checkout.metrics_path, "/metrics");
    assert_eq!(checkout.static_groups[0].targets.len(), 2);
    assert_eq!(checkout.static_groups[0].labels["instance"], "c1");
    assert_eq!(checkout.mapping, MappingOptions::default());
    let node = &jobs[1];
    assert_eq!(
        node.timeout,
        Duration::from_secs(5),
        "the timeout never exceeds the interval"
    );
    assert_eq!(
        node.file_sd[0].patterns,
        [PathBuf::from("/etc/timebucket/targets/*.json")]
    );
    assert_eq!(node.mapping.api.path, ["endpoint"]);
    assert_eq!(node.mapping.api.method, ApiLabels::default().method);
    assert_eq!(node.mapping.host.mountpoint, "/data");
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let cases = [
        ("scrape_configs:\n  - job_name: a\n    relabel_configs: []\n", "relabel_configs"),
        ("scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [a:1]\n        lables: {}\n", "lables"),
        ("alerting: {}\n", "alerting"),
        ("scrape_configs:\n  - job_name: a\n    timebucket: {path_label: [x]}\n", "path_label"),
    ];
    for (text, key) in cases {
        let error = load_text(text).unwrap_err();
        assert!(error.contains(key), "{error}");
    }
}

#[test]
fn bad_values_are_refused_with_the_job() {
    let cases = [
        ("scrape_configs:\n  - job_name: a\n    scrape_interval: soon\n", "not a duration"),
        ("scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 6s\n", "must not be longer"),
        ("scrape_configs:\n  - job_name: a\n    scheme: https\n", "https is not supported"),
        ("scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['http://x:1/metrics']}]\n", "must be host:port"),
        ("scrape_configs:\n  - job_name: a\n  - job_name: a\n", "used twice"),
        ("scrape_configs:\n  - job_name: a\n    metrics_path: metrics\n", "must start with '/'"),
        ("scrape_configs: [1, 2\n", "scrape config"),
    ];
    for (text, problem) in cases {
        let error = load_text(text).unwrap_err();
        assert!(error.contains(problem), "{text:?}: {error}");
    }
}
