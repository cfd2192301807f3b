//! A client nobody here wrote: the Python `prometheus-api-client` package (installed by
//! `scripts/tools python` into `.tools/venv`) queries the service and must parse every answer;
//! its numbers are compared with the seed.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::embedded_app;
use super::seed::{Seed, HOUR, MINUTE, PATHS};

#[tokio::test]
async fn the_python_prometheus_client_parses_our_answers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".tools/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: install the test tools with `scripts/tools python` (a virtualenv with \
         the pinned prometheus-api-client in .tools/)",
        python.display()
    );
    let seed = Seed::generate();
    let app = embedded_app(&seed).await;
    let at = seed.t0 + 2 * HOUR;
    let output = tokio::task::spawn_blocking({
        let url = app.url.clone();
        let script = root.join("tests/it/promql/client.py");
        move || {
            Command::new(python)
                .arg(script)
                .arg(url)
                .arg((at / 1000).to_string())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Value = serde_json::from_slice(&output.stdout).unwrap();

    // custom_query: requests per path in the last 10 minutes.
    let mut per_path: Vec<(String, f64)> = got["instant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["path"].as_str().unwrap().to_owned(),
                s["value"][1].as_f64().unwrap(),
            )
        })
        .collect();
    per_path.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want: Vec<(String, f64)> = PATHS
        .iter()
        .filter_map(|p| {
            seed.requests((at - 10 * MINUTE, at), |r| r.path.as_str() == *p)
                .map(|n| ((*p).to_owned(), n))
        })
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(per_path, want);
    // custom_query_range: one point a minute for an hour.
    assert_eq!(got["range_points"], 61);
    // The three request families and the four host gauges the seed carries.
    assert_eq!(
        got["metrics"].as_array().unwrap().len(),
        7,
        "{}",
        got["metrics"]
    );
    assert!(got["labels"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == "path"));
    assert_eq!(got["paths"].as_array().unwrap().len(), PATHS.len());
    assert!(got["series"].as_u64().unwrap() > 0);
    assert_eq!(got["metadata"][0]["type"], "gauge");
    assert_eq!(got["scalar"], 2.0);
    let refused = got["refused"].as_str().unwrap();
    assert!(
        refused.contains("400") && refused.contains("stddev"),
        "{refused}"
    );
    app.stop().await.unwrap();
}
