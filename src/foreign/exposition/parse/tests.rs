use super::*;

/// What the official Python client (prometheus-client 0.26) serves in the Prometheus text format.
const PYTHON_TEXT: &str = r#"# HELP http_requests_total reqs
# TYPE http_requests_total counter
http_requests_total{code="200",handler="/users/{id}",method="GET"} 3.0
# HELP http_requests_created reqs
# TYPE http_requests_created gauge
http_requests_created{code="200",handler="/users/{id}",method="GET"} 1.796002711917157e+09
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{code="200",handler="/users/{id}",le="0.005",method="GET"} 0.0
http_request_duration_seconds_bucket{code="200",handler="/users/{id}",le="+Inf",method="GET"} 1.0
http_request_duration_seconds_count{code="200",handler="/users/{id}",method="GET"} 1.0
http_request_duration_seconds_sum{code="200",handler="/users/{id}",method="GET"} 0.012
# TYPE rpc_duration_seconds summary
rpc_duration_seconds_count{method="POST",path="/a,b=c\"q\"",status="500"} 1.0
"#;

/// The same registry in OpenMetrics text.
const PYTHON_OPENMETRICS: &str = r#"# HELP http_requests reqs
# TYPE http_requests counter
http_requests_total{code="200",handler="/users/{id}",method="GET"} 3.0
http_requests_created{code="200",handler="/users/{id}",method="GET"} 1.796002711917157e+09
# TYPE rpc_duration_seconds summary
rpc_duration_seconds_count{method="POST",path="/a,b=c\"q\"",status="500"} 1.0 # {trace_id="x"} 1.0 1.7e9
rpc_duration_seconds_sum{method="POST",path="/a"} 0.5 1700000000.5
# EOF
"#;

#[test]
fn the_python_clients_text_is_read_with_families_and_awkward_label_values() {
    let e = parse(PYTHON_TEXT, Dialect::Prometheus).unwrap();
    assert_eq!(e.samples.len(), 7);
    let first = &e.samples[0];
    assert_eq!(first.label("handler"), Some("/users/{id}"));
    assert_eq!(first.value, 3.0);
    assert_eq!(
        e.family_of(first.name),
        ("http_requests_total", MetricType::Counter, Suffix::None)
    );
    assert_eq!(
        e.family_of("http_request_duration_seconds_bucket"),
        (
            "http_request_duration_seconds",
            MetricType::Histogram,
            Suffix::Bucket
        )
    );
    let summary = &e.samples[6];
    assert_eq!(summary.label("path"), Some("/a,b=c\"q\""));
    assert_eq!(
        e.family_of(summary.name),
        ("rpc_duration_seconds", MetricType::Summary, Suffix::Count)
    );
    assert_eq!(
        e.family_of("no_such_thing"),
        ("no_such_thing", MetricType::Unknown, Suffix::None)
    );
}

#[test]
fn openmetrics_counters_exemplars_timestamps_and_eof() {
    let e = parse(PYTHON_OPENMETRICS, Dialect::OpenMetrics).unwrap();
    assert_eq!(e.samples.len(), 4);
    assert_eq!(
        e.family_of("http_requests_total"),
        ("http_requests", MetricType::Counter, Suffix::Total)
    );
    assert_eq!(
        e.family_of("http_requests_created"),
        ("http_requests", MetricType::Counter, Suffix::Created)
    );
    assert_eq!(e.samples[2].value, 1.0, "the exemplar is not the value");
    assert_eq!(e.samples[3].timestamp_ms, Some(1_700_000_000_500));
    assert_eq!(
        parse("a 1 1700000000000\n", Dialect::Prometheus)
            .unwrap()
            .samples[0]
            .timestamp_ms,
        Some(1_700_000_000_000)
    );
}

#[test]
fn special_values_blanks_and_comments() {
    let text = "# a comment\n\n  x{a=\"1\" , b = \"2\",} NaN\ny +Inf\nz -Inf\r\n# UNIT x seconds\n# HELP x anything at all\nw\t4";
    let e = parse(text, Dialect::Prometheus).unwrap();
    let values: Vec<f64> = e.samples.iter().map(|s| s.value).collect();
    assert!(values[0].is_nan());
    assert_eq!(values[1..], [f64::INFINITY, f64::NEG_INFINITY, 4.0]);
    assert_eq!(e.samples[0].labels.len(), 2);
    assert_eq!(e.samples[0].label("b"), Some("2"));
}

#[test]
fn escapes_are_undone_and_unescaped_values_are_borrowed() {
    let e = parse(r#"m{a="x\\y\n\"z\"",b="plain"} 1"#, Dialect::Prometheus).unwrap();
    let s = &e.samples[0];
    assert_eq!(s.label("a"), Some("x\\y\n\"z\""));
    assert!(matches!(s.labels[1].1, Cow::Borrowed("plain")));
}

#[test]
fn malformed_lines_fail_with_their_line_number() {
    let cases = [
        (
            "ok 1\nfoo{a=\"1\" 3\n",
            2,
            "expected ',' or '}' after a label",
        ),
        ("foo{a=1} 3", 1, "expected a quoted label value"),
        ("foo{a=\"1} 3", 1, "unterminated label value"),
        ("foo", 1, "expected a value"),
        ("foo bar", 1, "the value is not a number"),
        ("foo 1 2 3", 1, "unexpected text after the timestamp"),
        ("foo 1 soon", 1, "the timestamp is not a number"),
        ("\u{1}\u{2} garbage", 1, "expected a metric name"),
        (
            "<html><body>502 Bad Gateway</body></html>",
            1,
            "expected a metric name",
        ),
        ("foo-bar 1", 1, "expected a blank after the metric name"),
        ("# TYPE", 1, "malformed # TYPE line"),
        ("{} 1", 1, "expected a metric name"),
        ("m{1a=\"x\"} 1", 1, "expected a label name"),
    ];
    for (text, line, problem) in cases {
        assert_eq!(
            parse(text, Dialect::Prometheus).unwrap_err(),
            ParseError { line, problem },
            "{text:?}"
        );
    }
}

#[test]
fn the_dialect_follows_the_content_type() {
    let om = Some("application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert_eq!(Dialect::from_content_type(om), Dialect::OpenMetrics);
    let text = Some("text/plain; version=0.0.4");
    assert_eq!(Dialect::from_content_type(text), Dialect::Prometheus);
    assert_eq!(Dialect::from_content_type(None), Dialect::Prometheus);
}

proptest::proptest! {
    /// Whatever the body, parsing returns (never panics).
    #[test]
    fn any_text_is_parsed_or_refused_without_panicking(text in "\\PC*") {
        let _ = parse(&text, Dialect::Prometheus);
        let _ = parse(&text, Dialect::OpenMetrics);
    }

    /// Label values survive escaping and parsing unchanged.
    #[test]
    fn escaped_label_values_round_trip(value in "\\PC*") {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let line = format!("m{{v=\"{escaped}\"}} 1");
        let e = parse(&line, Dialect::Prometheus).unwrap();
        proptest::prop_assert_eq!(e.samples[0].label("v"), Some(value.as_str()));
    }
}
