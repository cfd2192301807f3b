//! The cases: each answer worked out by hand from the readings of the test.

use std::time::Duration;

use super::*;
use crate::promql::ErrorType;

const COUNT: &str = "http_server_request_duration_seconds_count";

fn label(pairs: &[(&str, &str)]) -> String {
    crate::promql::Labels::new(pairs.iter().copied()).to_string()
}

fn shop_series(code: &str) -> String {
    label(&[
        ("code", code),
        ("instance", "i-1"),
        ("job", "shop"),
        ("method", "GET"),
        ("path", "/cart"),
        ("service", "shop"),
    ])
}

#[tokio::test]
async fn scalars_time_and_the_grafana_health_check() {
    let e = engine(Memory::default());
    assert_eq!(
        instant(&e, "1+1", 4000).await.unwrap(),
        QueryValue::Scalar {
            t: TimestampMs::from_millis(4000),
            v: 2.0
        }
    );
    assert!(matches!(
        instant(&e, "time() * 2", 4500).await.unwrap(),
        QueryValue::Scalar { v, .. } if v == 9.0
    ));
    assert!(matches!(
        instant(&e, "2 > bool 1", 0).await.unwrap(),
        QueryValue::Scalar { v, .. } if v == 1.0
    ));
    assert!(matches!(
        instant(&e, "\"text\"", 0).await.unwrap(),
        QueryValue::String { s, .. } if s == "text"
    ));
}

#[tokio::test]
async fn a_bare_counter_counts_since_utc_midnight_within_the_lookback() {
    let e = engine(Memory {
        api: vec![
            api("shop", "i-1", "/cart", 200, 5.0, 7, DAY - MIN),
            api("shop", "i-1", "/cart", 200, 5.0, 3, DAY + 10 * MIN),
            api("shop", "i-1", "/cart", 200, 5.0, 2, DAY + 20 * MIN),
        ],
        ..Memory::default()
    });
    let series = shop_series("200");
    // The day before: 7 since its midnight; after midnight the count starts again.
    assert_eq!(
        vector(&e, COUNT, DAY - 30_000).await,
        [(format!("{{__name__=\"{COUNT}\", {}", &series[1..]), 7.0)]
    );
    assert_eq!(vector(&e, COUNT, DAY + 21 * MIN).await[0].1, 5.0);
    assert_eq!(vector(&e, COUNT, DAY + 25 * MIN - 1).await[0].1, 5.0);
    // The last sample is 5 minutes old: outside the left-open lookback window.
    assert!(vector(&e, COUNT, DAY + 25 * MIN).await.is_empty());
    // offset moves the evaluation back.
    assert_eq!(
        vector(&e, &format!("{COUNT} offset 10m"), DAY + 31 * MIN).await[0].1,
        5.0
    );
}

#[tokio::test]
async fn rate_increase_and_irate_are_exact_over_left_open_windows() {
    let e = engine(Memory {
        api: vec![
            api("shop", "i-1", "/cart", 200, 5.0, 2, DAY + MIN),
            api("shop", "i-1", "/cart", 200, 5.0, 3, DAY + 2 * MIN),
            api("shop", "i-1", "/cart", 200, 5.0, 5, DAY + 3 * MIN),
            // Two readings of one millisecond are one sample.
            api("shop", "i-1", "/cart", 200, 5.0, 1, DAY + 3 * MIN),
        ],
        ..Memory::default()
    });
    let series = shop_series("200");
    let at = DAY + 3 * MIN;
    let q = |f: &str| format!("{f}({COUNT}[2m])");
    assert_eq!(
        vector(&e, &q("increase"), at).await,
        [(series.clone(), 9.0)]
    );
    assert_eq!(
        vector(&e, &q("rate"), at).await,
        [(series.clone(), 9.0 / 120.0)]
    );
    assert_eq!(
        vector(&e, &q("irate"), at).await,
        [(series.clone(), 6.0 / 60.0)]
    );
    assert_eq!(
        vector(&e, &q("increase"), at - 1).await,
        [(series.clone(), 5.0)]
    );
    // One reading in the window: increase and rate, but no irate.
    assert_eq!(
        vector(&e, &q("increase"), DAY + MIN).await,
        [(series.clone(), 2.0)]
    );
    assert!(vector(&e, &q("irate"), DAY + MIN).await.is_empty());
    // No reading in the window: no value at all.
    assert!(vector(&e, &q("rate"), DAY + 6 * MIN).await.is_empty());
}

#[tokio::test]
async fn range_steps_start_at_start_and_series_come_and_go() {
    let e = engine(Memory {
        api: vec![
            api("shop", "i-1", "/cart", 200, 5.0, 1, DAY + 30_000),
            api("shop", "i-1", "/cart", 500, 5.0, 4, DAY + 150_000),
        ],
        ..Memory::default()
    });
    let got = matrix(
        &e,
        &format!("increase({COUNT}[1m])"),
        (DAY + 45_000, DAY + 225_000, 60_000),
    )
    .await;
    assert_eq!(
        got,
        [
            (shop_series("200"), vec![(DAY + 45_000, 1.0)]),
            (shop_series("500"), vec![(DAY + 165_000, 4.0)]),
        ]
    );
}

#[tokio::test]
async fn buckets_histogram_quantile_and_sums() {
    // 3 requests of 12.5 ms, 1 of 300 ms, 1 of 20 s.
    let e = engine(Memory {
        api: vec![
            api("shop", "i-1", "/cart", 200, 12.5, 3, DAY + MIN),
            api("shop", "i-1", "/cart", 500, 300.0, 1, DAY + MIN),
            api("shop", "i-2", "/cart", 200, 20_000.0, 1, DAY + MIN),
        ],
        ..Memory::default()
    });
    let at = DAY + 2 * MIN;
    let bucket = |le: &str| {
        format!("sum(increase(http_server_request_duration_seconds_bucket{{le=\"{le}\"}}[5m]))")
    };
    assert_eq!(vector(&e, &bucket("0.01"), at).await[0].1, 0.0);
    assert_eq!(vector(&e, &bucket("0.025"), at).await[0].1, 3.0);
    assert_eq!(vector(&e, &bucket("0.5"), at).await[0].1, 4.0);
    assert_eq!(vector(&e, &bucket("10"), at).await[0].1, 4.0);
    assert_eq!(vector(&e, &bucket("+Inf"), at).await[0].1, 5.0);
    let sum = "sum(increase(http_server_request_duration_seconds_sum[5m]))";
    assert!((vector(&e, sum, at).await[0].1 - (3.0 * 0.0125 + 0.3 + 20.0)).abs() < 1e-9);
    let q = |phi: &str| {
        format!(
            "histogram_quantile({phi}, sum by (le) (rate(http_server_request_duration_seconds_bucket[5m])))"
        )
    };
    // rank 2 of 5 lies in (0.01, 0.025] holding 3: 0.01 + 0.015 × 2/3.
    assert!((vector(&e, &q("0.4"), at).await[0].1 - 0.02).abs() < 1e-12);
    // rank 4.5 is in +Inf: the highest finite bound.
    assert_eq!(vector(&e, &q("0.9"), at).await[0].1, 10.0);
    assert_eq!(vector(&e, &q("2"), at).await[0].1, f64::INFINITY);
}

#[tokio::test]
async fn aggregations_group_by_and_without() {
    let e = engine(Memory {
        host: vec![
            host("shop", "i-1", DAY, 10.0, true),
            host("shop", "i-2", DAY, 30.0, false),
            host("shop", "i-3", DAY, 20.0, true),
            host("web", "w-1", DAY, 50.0, true),
        ],
        ..Memory::default()
    });
    let at = DAY + MIN;
    let one = |q: &'static str| {
        let e = &e;
        async move { vector(e, q, at).await }
    };
    assert_eq!(
        one("sum(host_cpu_percent)").await,
        [("{}".to_owned(), 110.0)]
    );
    assert_eq!(
        one("avg by (service) (host_cpu_percent)").await,
        [
            (label(&[("service", "shop")]), 20.0),
            (label(&[("service", "web")]), 50.0)
        ]
    );
    assert_eq!(
        one("max without (instance) (host_cpu_percent)").await.len(),
        2
    );
    assert_eq!(one("min(host_cpu_percent)").await[0].1, 10.0);
    assert_eq!(one("count(host_available == 1)").await[0].1, 3.0);
    let top = one("topk(2, host_cpu_percent)").await;
    let cpus: Vec<f64> = top.iter().map(|(_, v)| *v).collect();
    assert_eq!(cpus, [30.0, 50.0]);
    assert!(top[0].0.contains("__name__"), "topk keeps the series whole");
    let bottom = one("bottomk by (service) (1, host_cpu_percent)").await;
    assert_eq!(
        bottom.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
        [10.0, 50.0]
    );
}

#[tokio::test]
async fn binary_operators_match_series_like_prometheus() {
    let e = engine(Memory {
        api: vec![
            api("shop", "i-1", "/cart", 200, 5.0, 6, DAY),
            api("shop", "i-1", "/cart", 500, 5.0, 2, DAY),
            api("shop", "i-2", "/cart", 200, 5.0, 4, DAY),
        ],
        host: vec![
            host("shop", "i-1", DAY, 40.0, true),
            host("shop", "i-2", DAY, 60.0, false),
        ],
        ..Memory::default()
    });
    let at = DAY + MIN;
    let errors = "sum by (instance) (increase(http_server_request_duration_seconds_count{code=~\"5..\"}[5m]))";
    let all = "sum by (instance) (increase(http_server_request_duration_seconds_count[5m]))";
    assert_eq!(
        vector(&e, &format!("{errors} / {all} * 100"), at).await,
        [(label(&[("instance", "i-1")]), 25.0)]
    );
    assert_eq!(
        vector(
            &e,
            &format!("({errors} / {all}) or on (instance) ({all} * 0)"),
            at
        )
        .await,
        [
            (label(&[("instance", "i-1")]), 0.25),
            (label(&[("instance", "i-2")]), 0.0)
        ]
    );
    // group_left copies `job`-less host labels onto the many side.
    let joined = vector(
        &e,
        &format!("{all} * on (instance) group_left (service) host_available"),
        at,
    )
    .await;
    assert_eq!(
        joined,
        [
            (label(&[("instance", "i-1"), ("service", "shop")]), 8.0),
            (label(&[("instance", "i-2"), ("service", "shop")]), 0.0)
        ]
    );
    assert_eq!(vector(&e, "host_cpu_percent > 50", at).await.len(), 1);
    assert_eq!(vector(&e, "50 < host_cpu_percent", at).await[0].1, 60.0);
    assert_eq!(vector(&e, "host_cpu_percent > bool 50", at).await.len(), 2);
    assert_eq!(
        vector(&e, "host_cpu_percent unless host_available == 0", at).await[0].1,
        40.0
    );
    assert_eq!(
        vector(&e, "host_cpu_percent and host_available == 0", at).await[0].1,
        60.0
    );
    // One-to-one matching refuses a side with duplicates, in Prometheus' words.
    let err = instant(&e, "host_cpu_percent + on (service) host_available", at)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), ErrorType::Execution);
    assert!(
        err.to_string()
            .contains("many-to-many matching not allowed"),
        "{err}"
    );
}

#[tokio::test]
async fn instant_functions() {
    let e = engine(Memory {
        host: vec![
            host("shop", "i-1", DAY, 40.0, true),
            host("shop", "i-1", DAY + MIN, 80.0, true),
            host("shop", "i-1", DAY + 2 * MIN, 60.0, true),
        ],
        api: vec![api("shop", "i-1", "/用户/café", 200, 5.0, 1, DAY)],
        ..Memory::default()
    });
    let at = DAY + 2 * MIN;
    let one = |q: String| {
        let e = &e;
        async move { vector(e, &q, at).await }
    };
    let cpu = |f: &str| format!("{f}(host_cpu_percent[3m])");
    assert_eq!(one(cpu("avg_over_time")).await[0].1, 60.0);
    assert_eq!(one(cpu("min_over_time")).await[0].1, 40.0);
    assert_eq!(one(cpu("max_over_time")).await[0].1, 80.0);
    assert_eq!(one(cpu("sum_over_time")).await[0].1, 180.0);
    assert_eq!(one(cpu("count_over_time")).await[0].1, 3.0);
    assert_eq!(
        one("quantile_over_time(0.25, host_cpu_percent[3m])".into()).await[0].1,
        50.0
    );
    assert_eq!(one("abs(-host_cpu_percent)".into()).await[0].1, 60.0);
    assert_eq!(
        one("clamp_max(host_cpu_percent, 50)".into()).await[0].1,
        50.0
    );
    assert_eq!(
        one("clamp_min(host_cpu_percent, 70)".into()).await[0].1,
        70.0
    );
    assert_eq!(
        one("vector(scalar(host_cpu_percent) / 2)".into()).await,
        [("{}".to_owned(), 30.0)]
    );
    assert_eq!(
        one("absent(nothing_here{service=\"x\", path=~\".*\"})".into()).await,
        [(label(&[("service", "x")]), 1.0)]
    );
    assert!(one("absent(host_cpu_percent)".into()).await.is_empty());
    let replaced =
        one("label_replace(host_cpu_percent, \"node\", \"$1-x\", \"instance\", \"i-(.*)\")".into())
            .await;
    assert!(replaced[0].0.contains("node=\"1-x\""), "{}", replaced[0].0);
    assert!(
        replaced[0].0.contains("__name__"),
        "label_replace keeps the name"
    );
    // Regular expressions match whole values, unicode included.
    let path = |re: &str| format!("{COUNT}{{path=~\"{re}\"}}");
    assert_eq!(one(path("/用户/.*")).await.len(), 1);
    assert_eq!(one(path("/用户/caf.")).await.len(), 1);
    assert!(one(path("/用户")).await.is_empty());
    assert_eq!(one(format!("{COUNT}{{path!~\"/用户.*\"}}")).await.len(), 0);
}

#[tokio::test]
async fn unsupported_features_are_refused_by_name() {
    let e = engine(Memory::default());
    for (query, name) in [
        ("stddev(host_cpu_percent)", "stddev"),
        (
            "holt_winters(host_cpu_percent[5m], 0.1, 0.1)",
            "holt_winters",
        ),
        ("delta(host_cpu_percent[5m])", "delta"),
        ("max_over_time(host_cpu_percent[5m:1m])", "subqueries"),
        ("host_cpu_percent @ 100", "@ modifier"),
        ("host_cpu_percent atan2 host_cpu_percent", "atan2"),
        ("rate(host_cpu_percent[5m])", "gauge"),
        ("count_values(\"v\", host_cpu_percent)", "count_values"),
    ] {
        let err = instant(&e, query, DAY).await.unwrap_err();
        assert_eq!(err.error_type(), ErrorType::BadData, "{query}: {err}");
        assert!(err.to_string().contains(name), "{query}: {err}");
    }
    let parse = instant(&e, "sum(", DAY).await.unwrap_err();
    assert!(matches!(parse, PromqlError::Parse(_)));
}

#[tokio::test]
async fn a_range_query_reads_each_service_once_for_all_steps() {
    let memory = Memory {
        api: (0..120)
            .map(|i| api("shop", "i-1", "/cart", 200, 5.0, 1, DAY + i * MIN))
            .collect(),
        host: (0..120)
            .map(|i| host("shop", "i-1", DAY + i * MIN, 1.0, true))
            .collect(),
        ..Memory::default()
    };
    let reads = memory.reads.clone();
    let e = engine(memory);
    let q = format!("sum(rate({COUNT}[5m])) / sum(rate({COUNT}{{code=\"200\"}}[1m])) + on() group_left count(host_cpu_percent)");
    let got = matrix(&e, &q, (DAY + 10 * MIN, DAY + 110 * MIN, MIN)).await;
    assert_eq!(got[0].1.len(), 101);
    let mut reads = reads.lock().unwrap().clone();
    reads.sort();
    assert_eq!(reads, ["api shop", "host shop"]);
}

#[tokio::test]
async fn limits_are_refused_with_their_flag() {
    let memory = || Memory {
        api: (0..50)
            .map(|i| api("shop", &format!("i-{i}"), "/cart", 200, 5.0, 1, DAY))
            .collect(),
        ..Memory::default()
    };
    let small = |config: EngineConfig| Engine::new(memory(), config);
    let series = small(EngineConfig {
        max_series: 10,
        ..EngineConfig::default()
    });
    let err = instant(&series, COUNT, DAY).await.unwrap_err();
    assert!(err.to_string().contains("--query-max-series"), "{err}");
    let samples = small(EngineConfig {
        max_samples: 20,
        ..EngineConfig::default()
    });
    let err = instant(&samples, COUNT, DAY).await.unwrap_err();
    assert!(err.to_string().contains("--query-max-samples"), "{err}");
    assert_eq!(err.error_type(), ErrorType::Execution);
    let steps = small(EngineConfig {
        max_steps: 10,
        ..EngineConfig::default()
    });
    let err = steps
        .range(
            &Query::parse(COUNT).unwrap(),
            TimestampMs::from_millis(DAY),
            TimestampMs::from_millis(DAY + 10 * MIN),
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--query-max-steps"), "{err}");
    let slow = Engine::new(
        Memory {
            delay: Duration::from_secs(5),
            ..memory()
        },
        EngineConfig {
            timeout: Duration::from_millis(50),
            ..EngineConfig::default()
        },
    );
    let err = instant(&slow, COUNT, DAY).await.unwrap_err();
    assert_eq!(err.error_type(), ErrorType::Timeout, "{err}");
}
