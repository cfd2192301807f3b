//! One case per validation rule, plus the encodings.

use serde_json::{json, Value};

use super::*;
use crate::model::ReadingId;

const NOW: i64 = 1_700_000_000_000;
const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;

fn window() -> Window {
    Window::at(TimestampMs::from_millis(NOW), WEEK_MS)
}

fn api() -> Value {
    json!({"service": "checkout", "instance": "i-1", "method": "get", "path": "/cart",
           "code": 200, "duration_ms": 12.5, "count": 3, "timestamp": "2023-11-14T22:13:20Z"})
}

fn host() -> Value {
    json!({"service": "checkout", "instance": "i-1", "cpu_percent": 50.5, "available": true})
}

fn problems_of(body: Value) -> Vec<(usize, String, String)> {
    match parse_json(body.to_string().as_bytes(), &window()) {
        Err(ParseError::Invalid(problems)) => problems
            .into_iter()
            .map(|p| (p.index, p.field, p.problem))
            .collect(),
        other => panic!("expected problems, got {other:?}"),
    }
}

fn with(field: &str, value: Value) -> Value {
    let mut reading = api();
    reading[field] = value;
    reading
}

#[test]
fn a_valid_body_parses_every_field() {
    let body = json!({"api": [api()], "host": [host()]});
    let readings = parse_json(body.to_string().as_bytes(), &window()).unwrap();
    let Reading::Api(a) = &readings[0] else {
        panic!()
    };
    assert_eq!(a.method.as_str(), "GET");
    assert_eq!((a.code.get(), a.count, a.duration_ms), (200, 3, 12.5));
    assert_eq!(a.timestamp, TimestampMs::from_millis(NOW));
    let Reading::Host(h) = &readings[1] else {
        panic!()
    };
    assert_eq!(h.gauges.cpu_percent, Some(50.5));
    assert_eq!(
        h.timestamp,
        TimestampMs::from_millis(NOW),
        "defaults to receipt time"
    );
}

#[test]
fn every_rule_is_reported_with_its_field() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (with("service", json!("")), "service", "must not be empty"),
        (
            with("instance", json!("x".repeat(200))),
            "instance",
            "at most 128 bytes",
        ),
        (with("method", json!("FETCH")), "method", "must be one of"),
        (with("path", json!("cart")), "path", "must start with '/'"),
        (with("code", json!(99)), "code", "from 100 to 599"),
        (with("code", json!("200")), "code", "must be a number"),
        (with("duration_ms", json!(-1)), "duration_ms", "from 0"),
        (with("count", json!(0)), "count", "from 1"),
        (with("count", json!(1.5)), "count", "whole number"),
        (
            with("timestamp", json!(NOW + 3_600_000)),
            "timestamp",
            "too far in the future",
        ),
        (
            with("timestamp", json!(NOW - 2 * WEEK_MS)),
            "timestamp",
            "older than the retention",
        ),
        (
            with("timestamp", json!("last tuesday")),
            "timestamp",
            "RFC 3339",
        ),
        (with("duration", json!(1)), "duration", "unknown field"),
        (
            with("timestamp", json!(i64::MAX)),
            "timestamp",
            "9223372036854775807 (epoch ms) is too far in the future",
        ),
        (
            with("timestamp", json!(i64::MIN)),
            "timestamp",
            "-9223372036854775808 (epoch ms) is older than the retention",
        ),
        (
            with("timestamp", json!("2023-11-16T00:00:00+01:00")),
            "timestamp",
            "`2023-11-16T00:00:00+01:00` is too far in the future",
        ),
        (
            with("service", json!("shop\u{202e}")),
            "service",
            "invisible or direction-changing",
        ),
    ];
    for (reading, field, problem) in cases {
        let problems = problems_of(json!({"api": [api(), reading]}));
        assert_eq!(problems.len(), 1, "{field}: {problems:?}");
        let (index, got_field, got_problem) = &problems[0];
        assert_eq!((*index, got_field.as_str()), (1, field));
        assert!(got_problem.contains(problem), "{field}: {got_problem}");
    }
}

#[test]
fn all_problems_of_a_body_are_listed_together() {
    let mut bad = api();
    bad.as_object_mut().unwrap().remove("service");
    bad["code"] = json!(700);
    let problems =
        problems_of(json!({"api": [bad], "host": [json!({"service": "s", "instance": "i"})]}));
    let fields: Vec<&str> = problems.iter().map(|(_, f, _)| f.as_str()).collect();
    assert_eq!(fields, ["service", "code", "gauges"]);
}

#[test]
fn malformed_and_empty_bodies_are_refused() {
    assert_eq!(parse_json(b"", &window()), Err(ParseError::Empty));
    assert_eq!(parse_json(b"  \n", &window()), Err(ParseError::Empty));
    assert!(matches!(
        parse_json(b"{\"api\": [", &window()),
        Err(ParseError::Malformed(_))
    ));
    assert!(matches!(
        parse_json(b"[1, 2]", &window()),
        Err(ParseError::Malformed(_))
    ));
    let problems = problems_of(json!({"apis": []}));
    assert_eq!(problems[0].1, "apis");
    let problems = problems_of(json!({"api": {"service": "s"}}));
    assert!(problems[0].2.contains("array"));
    let problems = problems_of(json!({"api": [1]}));
    assert!(problems[0].2.contains("JSON object"));
}

#[test]
fn ndjson_carries_the_kind_per_line() {
    let mut a = api();
    a["kind"] = json!("api");
    let mut h = host();
    h["kind"] = json!("host");
    let body = format!("{a}\n\n{h}\n");
    let readings = parse_ndjson(body.as_bytes(), &window()).unwrap();
    assert!(matches!(
        readings.as_slice(),
        [Reading::Api(_), Reading::Host(_)]
    ));

    let mut bad = host();
    bad["kind"] = json!("disk");
    let body = format!("{a}\n{bad}\n");
    let Err(ParseError::Invalid(problems)) = parse_ndjson(body.as_bytes(), &window()) else {
        panic!()
    };
    assert_eq!((problems[0].index, problems[0].field.as_str()), (1, "kind"));

    assert!(
        matches!(parse_ndjson(b"{\"kind\":\n", &window()), Err(ParseError::Malformed(m)) if m.contains("line 1"))
    );
    assert_eq!(parse_ndjson(b"\n\n", &window()), Err(ParseError::Empty));
}

#[test]
fn reading_ids_are_fixed_distinct_and_in_body_order() {
    let body = json!({"api": [api(), api()]});
    let readings = parse_json(body.to_string().as_bytes(), &window()).unwrap();
    let ids: Vec<ReadingId> = readings
        .iter()
        .map(|r| match r {
            Reading::Api(a) => a.id,
            Reading::Host(h) => h.id,
        })
        .collect();
    assert!(ids[0] < ids[1], "in the body's order");
    let (seconds, nanos) = ids[0].uuid().get_timestamp().unwrap().to_unix();
    assert_eq!(
        (seconds * 1000 + u64::from(nanos) / 1_000_000) as i64,
        NOW,
        "the time of receipt"
    );
}

#[test]
fn a_key_given_twice_is_refused_by_name_wherever_it_is() {
    // Built as text: serde_json's own maps cannot hold a key twice.
    let reading = api().to_string();
    let twice_in_reading = reading.replacen('{', r#"{"service": "other", "#, 1);
    let body = format!(r#"{{"api": [{reading}], "api": [{twice_in_reading}]}}"#);
    let problems = match parse_json(body.as_bytes(), &window()) {
        Err(ParseError::Invalid(problems)) => problems,
        other => panic!("expected problems, got {other:?}"),
    };
    let found: Vec<(Option<&str>, &str, &str)> = problems
        .iter()
        .map(|p| (p.kind, p.field.as_str(), p.problem.as_str()))
        .collect();
    assert_eq!(found, [(None, "api", "given more than once")]);

    let body = format!(r#"{{"api": [{reading}, {twice_in_reading}]}}"#);
    let problems = match parse_json(body.as_bytes(), &window()) {
        Err(ParseError::Invalid(problems)) => problems,
        other => panic!("expected problems, got {other:?}"),
    };
    assert_eq!(
        (
            problems[0].index,
            problems[0].field.as_str(),
            problems[0].problem.as_str()
        ),
        (1, "service", "given more than once")
    );
    assert_eq!(problems.total(), 1);

    let mut line = api();
    line["kind"] = json!("api");
    let line = line.to_string().replacen('{', r#"{"kind": "host", "#, 1);
    let Err(ParseError::Invalid(problems)) = parse_ndjson(line.as_bytes(), &window()) else {
        panic!("a repeated kind was accepted")
    };
    assert!(
        problems
            .iter()
            .any(|p| p.field == "kind" && p.problem == "given more than once"),
        "{problems:?}"
    );
}

#[test]
fn a_body_of_millions_of_bad_readings_lists_a_hundred() {
    let body = format!("{{\"api\": [{}0]}}", "0,".repeat(1_000_000));
    let Err(ParseError::Invalid(problems)) = parse_json(body.as_bytes(), &window()) else {
        panic!("expected problems")
    };
    assert_eq!(problems.len(), crate::ingest::problems::MAX_LISTED);
    assert_eq!(problems.total(), 1_000_001);
}

#[test]
fn a_body_that_is_not_utf8_is_malformed_in_either_encoding() {
    let mut body = api().to_string().into_bytes();
    let at = body.iter().position(|b| *b == b'c').unwrap();
    body[at] = 0xff;
    let json = [b"{\"api\": [".as_slice(), &body, b"]}"].concat();
    for outcome in [parse_json(&json, &window()), parse_ndjson(&body, &window())] {
        assert!(
            matches!(&outcome, Err(ParseError::Malformed(m)) if m.contains("not UTF-8")),
            "{outcome:?}"
        );
    }
}

#[test]
fn another_kind_s_fields_and_a_kind_in_a_list_are_unknown_fields() {
    let mut reading = api();
    reading["kind"] = json!("api");
    reading["cpu_percent"] = json!(5);
    let fields: Vec<String> = problems_of(json!({ "api": [reading] }))
        .into_iter()
        .map(|(_, field, problem)| format!("{field}: {problem}"))
        .collect();
    assert_eq!(
        fields,
        ["cpu_percent: unknown field", "kind: unknown field"]
    );
}

#[test]
fn readings_and_problems_come_in_the_order_of_the_body() {
    let body = format!(
        r#"{{"host": [{}], "api": [{}, 7]}}"#,
        host(),
        with("code", json!(1))
    );
    let Err(ParseError::Invalid(problems)) = parse_json(body.as_bytes(), &window()) else {
        panic!("expected problems")
    };
    let found: Vec<(usize, &str)> = problems
        .iter()
        .map(|p| (p.index, p.field.as_str()))
        .collect();
    assert_eq!(found, [(0, "code"), (1, "")]);
    let body = format!(r#"{{"host": [{}], "api": [{}]}}"#, host(), api());
    let readings = parse_json(body.as_bytes(), &window()).unwrap();
    assert!(matches!(
        readings.as_slice(),
        [Reading::Host(_), Reading::Api(_)]
    ));
}
