use std::path::Path;
use std::time::Duration;

use super::*;

const DEFAULT: Duration = Duration::from_secs(60);

fn problems(text: &str) -> Vec<String> {
    parse(text, Path::new("r.yml"), DEFAULT)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_prometheus_rule_file_loads_with_every_field() {
    let text = r#"
groups:
  - name: api
    interval: 30s
    rules:
      - alert: HighErrorRate
        expr: sum by (service) (rate(http_server_request_duration_seconds_count{code=~"5.."}[5m])) > 1
        for: 5m
        keep_firing_for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.service }}: {{ $value }}"
  - name: hosts
    rules:
      - alert: Up
        expr: vector(1)
"#;
    let groups = parse(text, Path::new("r.yml"), DEFAULT).unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].interval, Duration::from_secs(30));
    assert_eq!(groups[1].interval, DEFAULT);
    let rule = &groups[0].rules[0];
    assert_eq!(rule.name, "HighErrorRate");
    assert_eq!(rule.hold, Duration::from_secs(300));
    assert_eq!(rule.keep_firing_for, Duration::from_secs(60));
    assert_eq!(rule.labels["severity"], "page");
    assert_eq!(groups[1].rules[0].hold, Duration::ZERO);
    assert!(parse("", Path::new("e.yml"), DEFAULT).unwrap().is_empty());
}

#[test]
fn every_problem_is_reported_with_line_group_and_rule() {
    let text = r#"groups:
  - name: api
    interval: soon
    rules:
      - alert: Bad
        expr: rate(x[5m]
        for: 5 minutes
      - alert: Unsupported
        expr: stddev_over_time(x[5m])
        labels: {"bad-name": x, ok: "{{ .Labels.x "}
      - record: job:x:rate5m
        expr: rate(x[5m])
      - alert: Range
        expr: x[5m]
      - expr: x
  - name: api
    rules: []
"#;
    let found = problems(text);
    let expected = [
        "r.yml:3:15: group \"api\": interval: `soon` is not a duration like 30s, 5m or 1h30m",
        "r.yml:6:15: group \"api\": rule \"Bad\": expr: parse error: ",
        "r.yml:7:14: group \"api\": rule \"Bad\": for: `5 minutes` is not a duration",
        "r.yml:9:15: group \"api\": rule \"Unsupported\": expr: the function stddev_over_time() is not supported",
        "r.yml:10:30: group \"api\": rule \"Unsupported\": invalid label name \"bad-name\"",
        "r.yml:10:37: group \"api\": rule \"Unsupported\": label ok: template: ",
        "r.yml:11:17: group \"api\": rule \"job:x:rate5m\": recording rules are not supported",
        "r.yml:14:15: group \"api\": rule \"Range\": expr: an alerting rule needs an instant vector",
        "r.yml:15:9: group \"api\": one of 'alert' or 'record' must be set",
        "r.yml:16:5: group \"api\": the group name is used twice in this file",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (got, want) in found.iter().zip(expected) {
        assert!(got.starts_with(want), "got {got:?}\nwant {want:?}");
    }
}

#[test]
fn unknown_keys_and_bad_yaml_name_their_line() {
    let found = problems("groups:\n  - name: a\n    limit: 10\n    rules: []\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("r.yml:3:"), "{found:?}");
    assert!(found[0].contains("limit"), "{found:?}");
    let found = problems("groups: [\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("r.yml:"), "{found:?}");
}

#[test]
fn the_identity_follows_name_expression_and_labels_only() {
    let load = |text: &str| parse(text, Path::new("r.yml"), DEFAULT).unwrap()[0].rules[0].clone();
    let base =
        load("groups: [{name: g, rules: [{alert: A, expr: x > 1, for: 1m, labels: {s: p}}]}]");
    let same = load("groups: [{name: g, rules: [{alert: A, expr: x > 1, for: 5m, labels: {s: p}, annotations: {a: b}}]}]");
    assert_eq!(base.identity(), same.identity());
    for other in [
        "groups: [{name: g, rules: [{alert: B, expr: x > 1, labels: {s: p}}]}]",
        "groups: [{name: g, rules: [{alert: A, expr: x > 2, labels: {s: p}}]}]",
        "groups: [{name: g, rules: [{alert: A, expr: x > 1, labels: {s: q}}]}]",
    ] {
        assert_ne!(base.identity(), load(other).identity(), "{other}");
    }
}

#[test]
fn group_names_must_be_unique_across_files_and_globs_expand() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, group: &str| {
        std::fs::write(
            dir.path().join(name),
            format!("groups: [{{name: {group}, rules: [{{alert: A, expr: vector(1)}}]}}]"),
        )
        .unwrap();
    };
    write("a.yml", "one");
    write("b.yml", "two");
    let pattern = format!("{}/*.yml", dir.path().display());
    let groups = load(std::slice::from_ref(&pattern), DEFAULT).unwrap();
    assert_eq!(
        groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["one", "two"]
    );
    write("c.yml", "one");
    let error = load(&[pattern], DEFAULT).unwrap_err().to_string();
    assert!(
        error.contains("c.yml") && error.contains("also used in"),
        "{error}"
    );
    let missing = dir.path().join("missing.yml").display().to_string();
    assert!(matches!(
        load(&[missing], DEFAULT),
        Err(RulesError::Read { .. })
    ));
    let nothing = format!("{}/*.nothing", dir.path().display());
    assert!(load(&[nothing], DEFAULT).unwrap().is_empty());
}
