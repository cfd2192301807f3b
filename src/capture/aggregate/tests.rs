use std::time::Duration;

use axum::http::Uri;

use super::*;
use crate::capture::recorder::RoutePath;
use crate::client::wire::JsonBody;

fn source() -> Source {
    Source {
        service: ServiceName::parse("shop").unwrap(),
        instance: InstanceName::parse("i-1").unwrap(),
        normaliser: PathNormaliser::builtin(),
    }
}

fn record(method: Method, route: RoutePath, status: u16, ms: u64) -> RequestRecord {
    RequestRecord {
        method,
        route,
        status,
        elapsed: Duration::from_millis(ms),
        ended: Instant::now(),
    }
}

fn get(path: &'static str, ms: u64) -> RequestRecord {
    record(Method::GET, RoutePath::Template(path), 200, ms)
}

#[test]
fn a_series_keeps_exact_count_total_and_max() {
    let mut agg = Aggregator::new(source(), 100);
    for ms in [1, 2, 3, 10] {
        assert!(agg.add(&get("/x", ms)));
    }
    assert!(agg.add(&get("/y", 7)));
    let mut lines = agg.drain(1_000);
    lines.sort_by(|a, b| (&a.path, a.count).cmp(&(&b.path, b.count)));
    let summary: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l.path.as_str(),
                l.count,
                l.duration_ms,
                l.timestamp.millis(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("/x", 1, 10.0, 1_000),
            ("/x", 3, 2.0, 1_000),
            ("/y", 1, 7.0, 1_000)
        ]
    );
    let total: f64 = lines
        .iter()
        .filter(|l| l.path.as_str() == "/x")
        .map(|l| l.duration_ms * f64::from(l.count))
        .sum();
    assert_eq!(total, 16.0);
    assert!(agg.drain(2_000).is_empty(), "drain empties the interval");
}

#[test]
fn method_and_code_split_series() {
    let mut agg = Aggregator::new(source(), 100);
    agg.add(&get("/x", 1));
    agg.add(&record(Method::POST, RoutePath::Template("/x"), 200, 1));
    agg.add(&record(Method::GET, RoutePath::Template("/x"), 503, 1));
    let lines = agg.drain(0);
    assert_eq!(lines.len(), 3);
    assert!(lines
        .iter()
        .all(|l| l.count == 1 && l.service.as_str() == "shop" && l.instance.as_str() == "i-1"));
}

#[test]
fn raw_paths_are_normalised_into_one_series() {
    let mut agg = Aggregator::new(source(), 100);
    for id in 0..1000 {
        let uri: Uri = format!("/users/{id}?full=1").parse().unwrap();
        assert!(agg.add(&record(Method::GET, RoutePath::Raw(uri), 404, 1)));
    }
    let lines = agg.drain(0);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l.path.as_str() == "/users/{id}"));
    assert_eq!(lines.iter().map(|l| l.count).sum::<u32>(), 1000);
}

#[test]
fn what_no_reading_can_carry_is_refused() {
    let mut agg = Aggregator::new(source(), 2);
    let fetch = Method::from_bytes(b"FETCH").unwrap();
    assert!(!agg.add(&record(fetch, RoutePath::Template("/x"), 200, 1)));
    assert!(!agg.add(&record(Method::GET, RoutePath::Template("/x"), 600, 1)));
    assert!(!agg.add(&record(Method::GET, RoutePath::Template("/x"), 99, 1)));
    assert!(agg.add(&get("/a", 1)));
    assert!(agg.add(&get("/b", 1)));
    assert!(!agg.add(&get("/c", 1)), "past the series cap");
    assert!(agg.add(&get("/a", 1)), "known series still count");
    assert_eq!(agg.drain(0).len(), 3);
    assert!(agg.add(&get("/c", 1)), "the cap is per interval");
}

#[test]
fn raw_lines_carry_their_own_time_and_valid_paths() {
    let clock = Clock::now();
    let mut r = record(
        Method::PATCH,
        RoutePath::Template("grpc.Health/Check"),
        201,
        2,
    );
    r.ended = clock.anchor + Duration::from_millis(1500);
    let line = source().reading(&r, &clock).unwrap();
    assert_eq!(line.timestamp.millis(), clock.anchor_ms() + 1500);
    assert_eq!(
        (
            line.method.as_str(),
            line.path.as_str(),
            line.code.get(),
            line.count
        ),
        ("PATCH", "/grpc.Health/Check", 201, 1)
    );
    assert_eq!(line.duration_ms, 2.0);
    let long = record(Method::GET, RoutePath::Template("/x"), 200, 2 * 86_400_000);
    assert_eq!(
        source().reading(&long, &clock).unwrap().duration_ms,
        MAX_DURATION_MS
    );
}

#[test]
fn the_clock_maps_instants_both_sides_of_its_anchor() {
    let clock = Clock::now();
    let later = clock.anchor + Duration::from_millis(250);
    assert_eq!(clock.millis_at(later), clock.anchor_ms() + 250);
    if let Some(earlier) = clock.anchor.checked_sub(Duration::from_millis(40)) {
        assert_eq!(clock.millis_at(earlier), clock.anchor_ms() - 40);
    }
}

#[test]
fn batches_are_cut_with_their_request_counts() {
    let mut agg = Aggregator::new(source(), 100);
    for path in ["/a", "/b", "/c"] {
        for _ in 0..3 {
            agg.add(&get(path, 1));
        }
    }
    let batches = ApiBatch::split(agg.drain(0), 4);
    assert_eq!(
        batches.iter().map(|b| b.readings.len()).collect::<Vec<_>>(),
        [4, 2]
    );
    assert_eq!(batches.iter().map(|b| b.requests).sum::<u64>(), 9);
    let json = serde_json::to_value(JsonBody(&batches[1].readings)).unwrap();
    assert_eq!(
        json.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["api"]
    );
}
