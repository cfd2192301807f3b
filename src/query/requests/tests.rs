//! The parameter checks of every endpoint, as a table: each bad request names its parameter.

use super::*;
use crate::model::TimestampMs;
use crate::query::cursor::Fingerprint;

fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (n.to_owned(), v.to_owned())
        })
        .collect()
}

const OK: &str = "service=shop&from=2024-03-01T10:00:00Z&to=1709290800000";

#[test]
fn good_requests_parse_into_typed_values() {
    let limits = QueryLimits::default();
    let r = ReadingsRequest::parse(
        &pairs(&format!("{OK}&method=get&code=503&order=desc")),
        &limits,
    )
    .unwrap();
    assert_eq!(r.range.from.millis(), 1_709_287_200_000);
    assert_eq!(r.range.to.millis(), 1_709_290_800_000);
    assert_eq!(r.filter.method.as_ref().unwrap().as_str(), "GET");
    assert_eq!(r.filter.code.unwrap().get(), 503);
    assert_eq!((r.limit, r.order, r.resume), (100, Order::Desc, None));

    let s =
        StatsRequest::parse(&pairs(&format!("{OK}&step=5m&group_by=path,code")), &limits).unwrap();
    assert_eq!(s.step.millis(), 300_000);
    assert!(s.group_by.path && s.group_by.code && !s.group_by.instance);
    assert!(LatestRequest::parse(&[], &limits)
        .unwrap()
        .service
        .is_none());
    assert!(SeriesRequest::parse(&pairs(OK), &limits).is_ok());
    assert!(
        HostStatsRequest::parse(&pairs(&format!("{OK}&step=1m&instance=i-1")), &limits).is_ok()
    );
}

#[test]
fn every_bad_parameter_is_named() {
    let limits = QueryLimits {
        max_limit: 500,
        max_points: 100,
        ..QueryLimits::default()
    };
    let cases: &[(&str, &str, &str)] = &[
        (
            "readings",
            "from=2024-03-01T10:00:00Z&to=1709290800000",
            "service",
        ),
        ("readings", "service=shop&to=1709290800000", "from"),
        ("readings", "service=shop&from=2&to=1", "from"),
        ("readings", "service=shop&from=yesterday&to=1", "from"),
        ("readings", "service=shop&from=0&to=864000000", "to"),
        ("readings", "service=&from=0&to=1", "service"),
        ("readings", &format!("{OK}&limit=0"), "limit"),
        ("readings", &format!("{OK}&limit=501"), "limit"),
        ("readings", &format!("{OK}&limit=ten"), "limit"),
        ("readings", &format!("{OK}&order=up"), "order"),
        ("readings", &format!("{OK}&code=99"), "code"),
        ("readings", &format!("{OK}&method=FETCH"), "method"),
        ("readings", &format!("{OK}&path=cart"), "path"),
        ("readings", &format!("{OK}&cursor=abc"), "cursor"),
        ("readings", &format!("{OK}&step=1m"), "step"),
        ("readings", &format!("{OK}&from=0"), "from"),
        ("stats", OK, "step"),
        ("stats", &format!("{OK}&step=30"), "step"),
        ("stats", &format!("{OK}&step=0s"), "step"),
        ("stats", &format!("{OK}&step=1s"), "step"),
        ("stats", &format!("{OK}&step=1m&group_by=host"), "group_by"),
        (
            "stats",
            &format!("{OK}&step=1m&group_by=path,path"),
            "group_by",
        ),
        ("host", &format!("{OK}&step=1m&instance=a\u{1}"), "instance"),
        ("latest", "service=a&from=0", "from"),
        ("latest", "limit=0", "limit"),
        ("latest", "cursor=AgAAAA", "cursor"),
        ("series", &format!("{OK}&limit=10001"), "limit"),
        ("series", &format!("{OK}&cursor=x"), "cursor"),
    ];
    for (endpoint, query, field) in cases {
        let raw = pairs(query);
        let error = match *endpoint {
            "readings" => ReadingsRequest::parse(&raw, &limits).map(drop),
            "stats" => StatsRequest::parse(&raw, &limits).map(drop),
            "host" => HostStatsRequest::parse(&raw, &limits).map(drop),
            "series" => SeriesRequest::parse(&raw, &limits).map(drop),
            _ => LatestRequest::parse(&raw, &limits).map(drop),
        }
        .expect_err(query);
        let fields: Vec<&str> = error.0.iter().map(|p| p.field.as_str()).collect();
        assert!(
            fields.contains(field),
            "{endpoint}?{query}: {fields:?}, not {field}"
        );
    }
}

#[test]
fn a_cursor_only_works_with_the_parameters_it_was_made_for() {
    let limits = QueryLimits::default();
    let first = ReadingsRequest::parse(&pairs(OK), &limits).unwrap();
    let key = ReadingKey::before_all_at(first.range.from);
    let text = cursor::encode(key, &first.fingerprint());
    let resumed = ReadingsRequest::parse(&pairs(&format!("{OK}&cursor={text}&limit=7")), &limits);
    assert_eq!(resumed.unwrap().resume, Some(key));
    let other = ReadingsRequest::parse(&pairs(&format!("{OK}&cursor={text}&code=500")), &limits);
    assert_eq!(other.unwrap_err().0[0].field, "cursor");
    // A key outside [from, to] is refused even when the check matches.
    let outside = cursor::encode(
        ReadingKey::before_all_at(TimestampMs::from_millis(0)),
        &first.fingerprint(),
    );
    let far = ReadingsRequest::parse(&pairs(&format!("{OK}&cursor={outside}")), &limits);
    assert_eq!(far.unwrap_err().0[0].field, "cursor");
}

#[test]
fn the_readings_fingerprint_encodes_each_value_not_a_rendering_of_the_request() {
    let limits = QueryLimits::default();
    let r = ReadingsRequest::parse(&pairs(&format!("{OK}&order=desc&code=503")), &limits).unwrap();
    let want = Fingerprint::new("readings")
        .text("shop")
        .int(1_709_287_200_000)
        .int(1_709_290_800_000)
        .optional(None)
        .optional(None)
        .optional(None)
        .optional(Some("503"))
        .text("desc");
    assert_eq!(r.fingerprint(), want);
}
