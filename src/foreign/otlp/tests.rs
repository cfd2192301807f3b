use std::net::{IpAddr, Ipv4Addr};

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::*;
use crate::model::{ApiReading, HostGauges};

const STARTED_MS: i64 = 1_700_000_000_000;
const NS: u64 = 1_000_000;
const DELTA: i32 = 1;
const CUMULATIVE: i32 = 2;
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

fn ms(t: i64) -> u64 {
    (STARTED_MS + t) as u64 * NS
}

fn window(at: i64) -> Window {
    Window::at(TimestampMs::from_millis(STARTED_MS + at), 7 * 86_400_000)
}

fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn checkout() -> Vec<KeyValue> {
    vec![
        s("service.name", "checkout"),
        s("service.instance.id", "pod-7"),
    ]
}

fn route(method: &str, route: &str, code: i64) -> Vec<KeyValue> {
    vec![
        s("http.request.method", method),
        s("http.route", route),
        kv("http.response.status_code", Value::IntValue(code)),
        s("url.scheme", "http"),
    ]
}

/// An explicit histogram point: `counts` per bucket of `bounds`, `sum`, started at `start` ms.
fn point(
    attributes: Vec<KeyValue>,
    start: i64,
    at: i64,
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
) -> HistogramDataPoint {
    HistogramDataPoint {
        attributes,
        start_time_unix_nano: ms(start),
        time_unix_nano: ms(at),
        count: counts.iter().sum(),
        sum: Some(sum),
        bucket_counts: counts.to_vec(),
        explicit_bounds: bounds.to_vec(),
        ..Default::default()
    }
}

fn histogram(name: &str, unit: &str, temporality: i32, points: Vec<HistogramDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(Data::Histogram(Histogram {
            data_points: points,
            aggregation_temporality: temporality,
        })),
        ..Default::default()
    }
}

fn gauge(name: &str, points: Vec<(Vec<KeyValue>, f64)>, at: i64) -> Metric {
    let data_points = points
        .into_iter()
        .map(|(attributes, v)| NumberDataPoint {
            attributes,
            time_unix_nano: ms(at),
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        })
        .collect();
    Metric {
        name: name.into(),
        data: Some(Data::Gauge(Gauge { data_points })),
        ..Default::default()
    }
}

fn updown(name: &str, points: Vec<(Vec<KeyValue>, i64)>, at: i64) -> Metric {
    let data_points = points
        .into_iter()
        .map(|(attributes, v)| NumberDataPoint {
            attributes,
            time_unix_nano: ms(at),
            value: Some(number_data_point::Value::AsInt(v)),
            ..Default::default()
        })
        .collect();
    Metric {
        name: name.into(),
        data: Some(Data::Sum(Sum {
            data_points,
            aggregation_temporality: CUMULATIVE,
            is_monotonic: false,
        })),
        ..Default::default()
    }
}

fn api(readings: &[Reading]) -> Vec<&ApiReading> {
    readings
        .iter()
        .filter_map(|r| match r {
            Reading::Api(a) => Some(a),
            Reading::Host(_) => None,
        })
        .collect()
}

fn hosts(readings: &[Reading]) -> Vec<&HostReading> {
    readings
        .iter()
        .filter_map(|r| match r {
            Reading::Host(h) => Some(h),
            Reading::Api(_) => None,
        })
        .collect()
}

/// (requests, sum of durations in ms) of API readings.
fn totals(readings: &[Reading]) -> (u64, f64) {
    api(readings).iter().fold((0, 0.0), |(n, sum), r| {
        (
            n + u64::from(r.count),
            sum + f64::from(r.count) * r.duration_ms,
        )
    })
}

fn converter() -> Converter {
    Converter::new(TimestampMs::from_millis(STARTED_MS))
}

#[test]
fn a_delta_server_histogram_becomes_one_reading_per_bucket_keeping_count_and_sum() {
    let bounds = [0.005, 0.01, 0.025, 0.05, 0.1];
    let metric = histogram(
        requests::STABLE,
        "s",
        DELTA,
        vec![point(
            route("get", "/cart/{id}", 200),
            0,
            10_000,
            &bounds,
            &[2, 5, 0, 3, 0, 1],
            0.4,
        )],
    );
    let out = converter().convert(&request(checkout(), vec![metric]), PEER, &window(10_000));
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    let readings = api(&out.readings);
    assert_eq!(readings.len(), 4, "one per non-empty bucket");
    let (count, sum) = totals(&out.readings);
    assert_eq!(count, 11);
    assert!((sum - 400.0).abs() < 1e-6, "sum kept: {sum}");
    let r = readings[0];
    assert_eq!(
        (r.service.as_str(), r.instance.as_str(), r.method.as_str()),
        ("checkout", "pod-7", "GET")
    );
    assert_eq!((r.path.as_str(), r.code.get()), ("/cart/{id}", 200));
    assert_eq!(r.timestamp.millis(), STARTED_MS + 10_000);
    // Every request stays inside its own bucket.
    assert!(readings[0].duration_ms <= 5.0 && readings[1].duration_ms > 5.0);
    assert!(readings[3].duration_ms > 100.0);
    // The resource reported: one heartbeat host reading.
    let host = hosts(&out.readings);
    assert_eq!(host.len(), 1);
    assert_eq!(host[0].gauges.available, Some(true));
    assert_eq!(host[0].timestamp.millis(), STARTED_MS + 10_000);
}

#[test]
fn cumulative_points_become_deltas_with_resets_and_no_double_count_after_a_restart() {
    let c = converter();
    let at = |t: i64, start: i64, counts: &[u64], sum: f64| {
        let p = point(
            route("POST", "/pay", 201),
            start,
            t,
            &[10.0, 100.0],
            counts,
            sum,
        );
        request(
            checkout(),
            vec![histogram(requests::LEGACY, "ms", CUMULATIVE, vec![p])],
        )
    };
    // Started after this process: the first point counts whole.
    let first = c.convert(&at(60_000, 1_000, &[2, 1, 0], 60.0), PEER, &window(60_000));
    assert_eq!(totals(&first.readings), (3, 60.0));
    let second = c.convert(
        &at(120_000, 1_000, &[3, 4, 1], 560.0),
        PEER,
        &window(120_000),
    );
    assert_eq!(totals(&second.readings), (5, 500.0));
    // A resend of the same point is not counted again.
    let resent = c.convert(
        &at(120_000, 1_000, &[3, 4, 1], 560.0),
        PEER,
        &window(121_000),
    );
    assert_eq!(totals(&resent.readings), (0, 0.0));
    // The SDK restarted: a new start time, counts from zero.
    let reset = c.convert(
        &at(180_000, 170_000, &[1, 0, 0], 4.0),
        PEER,
        &window(180_000),
    );
    assert_eq!(totals(&reset.readings), (1, 4.0));

    // timebucket restarted (a new converter): a stream that began before it only primes.
    let restarted = Converter::new(TimestampMs::from_millis(STARTED_MS + 200_000));
    let primed = restarted.convert(
        &at(240_000, 170_000, &[2, 0, 0], 9.0),
        PEER,
        &window(240_000),
    );
    assert_eq!(totals(&primed.readings), (0, 0.0));
    assert!(primed.rejected.is_empty());
    let next = restarted.convert(
        &at(300_000, 170_000, &[2, 1, 0], 29.0),
        PEER,
        &window(300_000),
    );
    assert_eq!(totals(&next.readings), (1, 20.0));
}

#[test]
fn an_undone_conversion_is_counted_when_the_exporter_retries() {
    let c = converter();
    let body = |t: i64, n: u64| {
        let p = point(route("GET", "/", 200), 1_000, t, &[], &[n], n as f64);
        request(
            checkout(),
            vec![histogram(requests::STABLE, "ms", CUMULATIVE, vec![p])],
        )
    };
    let first = c.convert(&body(10_000, 5), PEER, &window(10_000));
    assert_eq!(totals(&first.readings).0, 5);
    let refused = c.convert(&body(20_000, 8), PEER, &window(20_000));
    assert_eq!(totals(&refused.readings).0, 3);
    c.undo(refused.pending);
    let retried = c.convert(&body(20_000, 8), PEER, &window(25_000));
    assert_eq!(
        totals(&retried.readings).0,
        3,
        "the retry counts what was refused"
    );

    let delta = |t: i64| {
        let p = point(route("GET", "/", 200), t - 1_000, t, &[], &[2], 2.0);
        request(
            checkout(),
            vec![histogram(requests::STABLE, "ms", DELTA, vec![p])],
        )
    };
    let refused = c.convert(&delta(30_000), PEER, &window(30_000));
    c.undo(refused.pending);
    assert_eq!(
        totals(&c.convert(&delta(30_000), PEER, &window(30_000)).readings).0,
        2
    );
    assert_eq!(
        totals(&c.convert(&delta(30_000), PEER, &window(31_000)).readings).0,
        0,
        "a resend of an accepted delta point"
    );
}

#[test]
fn the_legacy_histogram_is_ignored_when_the_stable_one_reports_the_same_requests() {
    let stable = histogram(
        requests::STABLE,
        "s",
        DELTA,
        vec![point(
            route("GET", "/a", 200),
            0,
            5_000,
            &[0.1],
            &[4, 0],
            0.2,
        )],
    );
    let legacy = histogram(
        requests::LEGACY,
        "ms",
        DELTA,
        vec![point(
            route("GET", "/a", 200),
            0,
            5_000,
            &[100.0],
            &[4, 0],
            200.0,
        )],
    );
    let out = converter().convert(
        &request(checkout(), vec![stable, legacy]),
        PEER,
        &window(5_000),
    );
    assert_eq!(totals(&out.readings), (4, 200.0));
    assert!(out.rejected.is_empty());
}

#[test]
fn exponential_histograms_map_like_explicit_ones() {
    // scale 0: buckets (1,2], (2,4], (4,8] ms with offset 0.
    let p = ExponentialHistogramDataPoint {
        attributes: route("GET", "/e", 200),
        start_time_unix_nano: ms(0),
        time_unix_nano: ms(1_000),
        count: 6,
        sum: Some(18.0),
        scale: 0,
        zero_count: 1,
        positive: Some(Buckets {
            offset: 0,
            bucket_counts: vec![1, 2, 2],
        }),
        ..Default::default()
    };
    let metric = Metric {
        name: requests::STABLE.into(),
        unit: "ms".into(),
        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![p],
            aggregation_temporality: DELTA,
        })),
        ..Default::default()
    };
    let out = converter().convert(&request(checkout(), vec![metric]), PEER, &window(1_000));
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    let (count, sum) = totals(&out.readings);
    assert_eq!(count, 6);
    assert!((sum - 18.0).abs() < 1e-9);
}

#[test]
fn host_conventions_fill_the_host_gauges() {
    let cpu = gauge(
        "system.cpu.utilization",
        vec![
            (
                vec![s("cpu.mode", "user"), s("cpu.logical_number", "0")],
                0.25,
            ),
            (
                vec![s("cpu.mode", "system"), s("cpu.logical_number", "0")],
                0.05,
            ),
            (
                vec![s("cpu.mode", "idle"), s("cpu.logical_number", "0")],
                0.70,
            ),
            (
                vec![s("cpu.mode", "user"), s("cpu.logical_number", "1")],
                0.5,
            ),
        ],
        3_000,
    );
    let memory = updown(
        "system.memory.usage",
        vec![
            (vec![s("system.memory.state", "used")], 600),
            (vec![s("system.memory.state", "free")], 400),
        ],
        3_000,
    );
    let limit = updown("system.memory.limit", vec![(vec![], 1000)], 3_000);
    let fs = |mount: &str, state: &str| {
        vec![
            s("system.filesystem.mountpoint", mount),
            s("system.device", "sda1"),
            s("system.filesystem.state", state),
        ]
    };
    let disk = updown(
        "system.filesystem.usage",
        vec![
            (fs("/", "used"), 30),
            (fs("/", "free"), 60),
            (fs("/", "reserved"), 10),
            (fs("/data", "used"), 5_000),
            (fs("/data", "free"), 5_000),
        ],
        3_000,
    );
    let rss = updown("process.memory.usage", vec![(vec![], 4096)], 3_000);
    let resource = vec![s("service.name", "agentless"), s("host.name", "box-1")];
    let out = converter().convert(
        &request(resource, vec![cpu, memory, limit, disk, rss]),
        PEER,
        &window(3_000),
    );
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    let host = hosts(&out.readings);
    assert_eq!(host.len(), 1);
    assert_eq!(host[0].instance.as_str(), "box-1");
    let cpu_percent = host[0].gauges.cpu_percent.unwrap();
    assert!((cpu_percent - 80.0).abs() < 1e-9, "{cpu_percent}");
    assert_eq!(
        HostGauges {
            cpu_percent: None,
            ..host[0].gauges.clone()
        },
        HostGauges {
            mem_used_bytes: Some(600),
            mem_total_bytes: Some(1000),
            disk_used_bytes: Some(30),
            disk_total_bytes: Some(100),
            available: Some(true),
            heap_bytes: Some(4096),
            ..HostGauges::default()
        }
    );
}

#[test]
fn unknown_metrics_and_bad_points_are_rejected_by_point_naming_the_first() {
    let unknown = updown("jvm.threads.count", vec![(vec![], 1), (vec![], 2)], 1_000);
    let no_code = histogram(
        requests::STABLE,
        "s",
        DELTA,
        vec![
            point(
                vec![s("http.request.method", "GET"), s("http.route", "/x")],
                0,
                1_000,
                &[],
                &[1],
                0.1,
            ),
            point(route("_OTHER", "/x", 200), 0, 1_000, &[], &[1], 0.1),
            // Older than the retention: refused before it touches a stream.
            point(route("GET", "/x", 200), 0, -8 * 86_400_000, &[], &[1], 0.1),
            point(route("GET", "/x", 200), 0, 1_000, &[], &[1], 0.1),
        ],
    );
    let out = converter().convert(
        &request(checkout(), vec![unknown, no_code]),
        PEER,
        &window(1_000),
    );
    assert_eq!(totals(&out.readings).0, 1);
    assert_eq!(out.rejected.points, 5);
    assert_eq!(out.rejected.by_metric.get("jvm.threads.count"), Some(&2));
    assert_eq!(out.rejected.by_metric.get(requests::STABLE), Some(&3));
    let partial = response(&out.rejected).partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 5);
    assert!(
        partial.error_message.starts_with(
            "5 data point(s) rejected; the first: metric `jvm.threads.count`: not a metric"
        ),
        "{}",
        partial.error_message
    );
}

#[test]
fn instances_fall_back_to_the_host_then_the_peer_and_services_to_unknown_service() {
    let metric = || {
        histogram(
            requests::STABLE,
            "s",
            DELTA,
            vec![point(route("GET", "/", 200), 0, 1_000, &[], &[1], 0.1)],
        )
    };
    let out = converter().convert(&request(vec![], vec![metric()]), PEER, &window(1_000));
    let r = api(&out.readings)[0];
    assert_eq!(
        (r.service.as_str(), r.instance.as_str()),
        ("unknown_service", "10.1.2.3")
    );
    let bad = vec![s("service.name", &"x".repeat(300))];
    let out = converter().convert(&request(bad, vec![metric()]), PEER, &window(1_000));
    assert!(out.readings.is_empty());
    assert!(out.rejected.first.unwrap().contains("service.name"));
}

#[test]
fn raw_paths_are_normalised_when_there_is_no_route() {
    let attributes = vec![
        s("http.method", "GET"),
        s("http.target", "/users/12345?expand=1"),
        kv("http.status_code", Value::IntValue(404)),
    ];
    let metric = histogram(
        requests::LEGACY,
        "ms",
        DELTA,
        vec![point(attributes, 0, 1_000, &[], &[1], 3.0)],
    );
    let out = converter().convert(&request(checkout(), vec![metric]), PEER, &window(1_000));
    let r = api(&out.readings)[0];
    assert_eq!((r.path.as_str(), r.code.get()), ("/users/{id}", 404));
}

#[test]
fn the_published_otlp_json_example_decodes() {
    let body = include_bytes!("testdata/metrics.json");
    let request = decode_json(body).unwrap();
    let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(metrics.len(), 4);
    let Some(Data::Histogram(h)) = &metrics[2].data else {
        panic!("the third metric is a histogram")
    };
    assert_eq!(h.data_points[0].bucket_counts, [1, 1], "int64 as strings");
    assert_eq!(h.data_points[0].time_unix_nano, 1_544_712_660_300_000_000);
    assert!(decode_json(b"{\"resourceMetrics\": 3}").is_err());
    assert!(decode_protobuf(b"\xff\xff\xff").is_err());
}

#[test]
fn delta_points_arriving_out_of_order_all_count_and_only_exact_resends_are_dropped() {
    let c = converter();
    let delta = |start: i64, t: i64| {
        let p = point(route("GET", "/", 200), start, t, &[], &[1], 1.0);
        request(
            checkout(),
            vec![histogram(requests::STABLE, "ms", DELTA, vec![p])],
        )
    };
    let count = |body| totals(&c.convert(&body, PEER, &window(30_000)).readings).0;
    assert_eq!(count(delta(10_000, 20_000)), 1);
    assert_eq!(
        count(delta(0, 10_000)),
        1,
        "an earlier interval arriving late"
    );
    assert_eq!(count(delta(10_000, 20_000)), 0, "a resend");
    assert_eq!(count(delta(0, 10_000)), 0, "a resend");
}
