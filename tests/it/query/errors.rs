//! Bad query requests answer 400 naming the parameter; and the `timebucket query` CLI.

use clap::Parser;
use reqwest::StatusCode;
use serde_json::Value;
use timebucket::cli::{Cli, Command};
use timebucket::query::cli::QueryCliError;
use timebucket::query::QueryLimits;

use super::get;
use super::seed::{finish, seeded_app, t0, HOUR};

#[tokio::test]
async fn every_bad_request_is_a_400_naming_its_parameter() {
    let limits = QueryLimits {
        max_range_ms: 2 * 24 * HOUR,
        max_limit: 500,
        max_points: 100,
        ..QueryLimits::default()
    };
    let (app, _seed) = seeded_app(limits).await;
    let (from, to) = (t0().to_string(), (t0() + HOUR).to_string());
    let range = format!("service=shop&from={from}&to={to}");
    let (_, first) = get(&app, &format!("/v1/readings?{range}&limit=1"), &[]).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let cases: Vec<(String, &str)> = vec![
        (format!("/v1/readings?from={from}&to={to}"), "service"),
        (
            format!("/v1/readings?service=nobody&from={from}&to={to}"),
            "service",
        ),
        (
            format!("/v1/readings?service=shop&from={to}&to={from}"),
            "from",
        ),
        (
            format!("/v1/readings?service=shop&from=last%20week&to={to}"),
            "from",
        ),
        (format!("/v1/readings?service=shop&from=0&to={to}"), "to"),
        (format!("/v1/readings?{range}&limit=501"), "limit"),
        (format!("/v1/readings?{range}&order=sideways"), "order"),
        (
            format!("/v1/readings?{range}&cursor=bm90LWEtY3Vyc29y"),
            "cursor",
        ),
        (
            format!("/v1/readings?{range}&cursor={cursor}&code=500"),
            "cursor",
        ),
        (format!("/v1/readings?{range}&colour=red"), "colour"),
        (format!("/v1/series?service=shop&from=x&to={to}"), "from"),
        (
            format!("/v1/series?service=nobody&from={from}&to={to}"),
            "service",
        ),
        ("/v1/latest?service=nobody".to_owned(), "service"),
        (format!("/v1/stats?{range}"), "step"),
        (format!("/v1/stats?{range}&step=soon"), "step"),
        (format!("/v1/stats?{range}&step=1s"), "step"),
        (
            format!("/v1/stats?{range}&step=1m&group_by=colour"),
            "group_by",
        ),
        (
            format!("/v1/stats?{range}&step=1m&group_by=path,instance,code"),
            "group_by",
        ),
        (format!("/v1/stats/host?{range}&step=0s"), "step"),
    ];
    for (path, field) in cases {
        let (status, body) = get(&app, &path, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {body}"
        );
        let details = body["details"].as_array().unwrap();
        assert!(
            details
                .iter()
                .any(|d| d["field"] == field && d["problem"].is_string()),
            "{path}: expected a problem with `{field}`, got {body}"
        );
    }
    // The cursor works with its own parameters (and any limit).
    let (status, _) = get(
        &app,
        &format!("/v1/readings?{range}&cursor={cursor}&limit=3"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    finish(app).await;
}

async fn run_cli(args: &[&str]) -> Result<String, QueryCliError> {
    let mut argv = vec!["timebucket", "query"];
    argv.extend_from_slice(args);
    let Command::Query(query) = Cli::try_parse_from(argv).unwrap().command else {
        panic!("not a query command");
    };
    timebucket::query::cli::run(&query).await
}

#[tokio::test]
async fn the_cli_prints_tables_json_and_the_service_errors() {
    let (app, _seed) = seeded_app(QueryLimits::default()).await;
    let (from, to) = (t0().to_string(), (t0() + HOUR).to_string());
    let range = ["--service", "shop", "--from", &from, "--to", &to];
    let url = ["--url", app.url.as_str()];

    let mut args = vec!["readings"];
    args.extend(range);
    args.extend(["--limit", "5"]);
    args.extend(url);
    let table = run_cli(&args).await.unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 7, "{table}");
    assert!(lines[0].starts_with("TIME") && lines[0].contains("DURATION_MS"));
    assert!(lines[6].starts_with("5 readings; more with --cursor "));

    let mut args = vec!["series", "--json"];
    args.extend(range);
    args.extend(url);
    let json: Value = serde_json::from_str(&run_cli(&args).await.unwrap()).unwrap();
    let (_, direct) = get(
        &app,
        &format!("/v1/series?service=shop&from={from}&to={to}"),
        &[],
    )
    .await;
    assert_eq!(json, direct);

    let mut args = vec!["stats", "--group-by", "code", "--step", "10m"];
    args.extend(range);
    args.extend(url);
    let stats = run_cli(&args).await.unwrap();
    assert!(stats.lines().next().unwrap().contains("P99_MS"), "{stats}");
    assert!(stats.lines().count() > 6, "{stats}");

    let latest = run_cli(&["latest", "--service", "shop", "--url", &app.url])
        .await
        .unwrap();
    assert!(latest.starts_with("API\nSERVICE"), "{latest}");

    let mut args = vec!["stats", "--step", "soon"];
    args.extend(range);
    args.extend(url);
    match run_cli(&args).await {
        Err(QueryCliError::Refused {
            status: 400,
            message,
        }) => {
            assert!(message.contains("step:"), "{message}")
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    finish(app).await;
}
