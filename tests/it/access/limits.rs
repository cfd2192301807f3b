//! Per-token limits over HTTP: past the rate or the series cap a batch is refused whole with
//! 429, `Retry-After` and a body naming the limit, and `/metrics` counts it by token and limit.

use serde_json::{json, Value};

use super::support::{metric, SecuredApp};

/// `n` API readings of checkout, one per path in `paths`, now.
fn api(paths: &[&str]) -> Value {
    let readings: Vec<Value> = paths
        .iter()
        .map(|path| {
            json!({"service": "checkout", "instance": "i-1", "method": "GET", "path": path,
                   "code": 200, "duration_ms": 3.0})
        })
        .collect();
    json!({ "api": readings })
}

#[tokio::test]
async fn a_token_over_its_series_cap_or_its_rate_gets_429_naming_the_limit() {
    let app = SecuredApp::start().await;
    let send = |body: Value| {
        let request = app
            .client
            .post(format!("{}/v1/metrics", app.api))
            .bearer_auth(app.keys.limited.reveal())
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let body: Value = response.json().await.unwrap();
            (status, retry_after, body)
        }
    };
    // The token may make 2 series per service per bucket: a third path is refused, with the
    // batch's known ones; known series pass again.
    assert_eq!(send(api(&["/a", "/b"])).await.0, 202);
    let (status, retry_after, body) = send(api(&["/a", "/c"])).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry_after.unwrap() >= 1);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("max_series_per_bucket") && error.contains("checkout"),
        "{error}"
    );
    assert_eq!(send(api(&["/b"])).await.0, 202);
    // 1 reading per second, burst 6: 3 were taken, 3 more empty the bucket; 3 more then need
    // 3 s of refill (no pause between these requests comes near it), and 7 are over the burst.
    assert_eq!(send(api(&["/a", "/b", "/a"])).await.0, 202);
    let (status, retry_after, body) = send(api(&["/a", "/b", "/a"])).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry_after.unwrap() >= 1);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("1 readings per second"),
        "{body}"
    );
    let (status, _, body) = send(api(&["/a"; 7])).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("send smaller batches"),
        "{body}"
    );
    assert_eq!(app.accepted().await, 6.0);

    let metrics = app
        .client
        .get(format!("{}/metrics", app.api))
        .bearer_auth(app.keys.reader.reveal())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for limit in ["max_series_per_bucket", "readings_per_second", "burst"] {
        let line =
            format!("timebucket_access_limited_total{{token=\"limited\",limit=\"{limit}\"}}");
        assert_eq!(metric(&metrics, &line), Some(1.0), "{limit}: {metrics}");
    }
    app.stop().await;
}
