//! `POST /v1/metrics` end to end: HTTP → WAL → the real CQL node.

use std::io::Write;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::proxy::Proxy;
use crate::support::{
    eventually_stored, session, spawn_app, stored_api_readings, wait_flushed, AppOptions,
};

const WAIT: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn api(service: &str, path: &str, at_ms: i64) -> Value {
    json!({"service": service, "instance": "i-1", "method": "GET", "path": path,
           "code": 200, "duration_ms": 4.5, "count": 2, "timestamp": at_ms})
}

async fn post(
    url: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/v1/metrics"))
        .header("content-type", content_type)
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body, headers)
}

async fn post_json(url: &str, body: &Value) -> (StatusCode, Value) {
    let (status, body, _) =
        post(url, "application/json", None, body.to_string().into_bytes()).await;
    (status, body)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn accepted_readings_reach_every_table() {
    let app = spawn_app(AppOptions::default()).await;
    let session = session().await;
    let t = now_ms() - 60_000;
    let body = json!({
        "api": [api("shop", "/cart", t), api("shop", "/pay", t + 1)],
        "host": [{"service": "shop", "instance": "i-2", "timestamp": t, "cpu_percent": 12.5,
                  "mem_used_bytes": 1024, "available": true}]
    });
    assert_eq!(
        post_json(&app.url, &body).await,
        (StatusCode::ACCEPTED, json!({"accepted": 3}))
    );

    let ndjson = format!(
        "{}\n{}\n",
        json!({"kind": "api", "service": "shop", "instance": "i-1", "method": "post", "path": "/pay", "code": 503, "duration_ms": 100.0, "timestamp": t + 2}),
        json!({"kind": "host", "service": "shop", "instance": "i-1", "heap_bytes": 77, "timestamp": t + 2}),
    );
    let (status, answer, _) = post(
        &app.url,
        "application/x-ndjson",
        Some("gzip"),
        gzip(ndjson.as_bytes()),
    )
    .await;
    assert_eq!(
        (status, answer),
        (StatusCode::ACCEPTED, json!({"accepted": 2}))
    );

    let rows = eventually_stored(
        &session,
        &app.keyspace,
        WAIT,
        "3 API readings stored",
        |r| r.len() == 3,
    )
    .await;
    let cart = rows.iter().find(|r| r.path == "/cart").unwrap();
    assert_eq!(
        (
            cart.method.as_str(),
            cart.code,
            cart.count,
            cart.duration_ms
        ),
        ("GET", 200, 2, 4.5)
    );
    assert_eq!(cart.timestamp.timestamp_millis(), t);
    assert_eq!(cart.time_bucket, (t / 1000).div_euclid(3600) * 3600);
    let post_pay = rows.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(post_pay.code, 503);

    let ks = &app.keyspace;
    let count = |table: &'static str| {
        let session = &session;
        async move {
            let result = session
                .query_unpaged(format!("SELECT COUNT(*) FROM {ks}.{table}"), ())
                .await
                .unwrap()
                .into_rows_result()
                .unwrap();
            result.single_row::<(i64,)>().unwrap().0
        }
    };
    // Every reading counted as flushed: its piece's latest rows and series entries are stored.
    wait_flushed(&app, 5.0).await;
    assert_eq!(count("host_readings").await, 2);
    assert_eq!(
        count("latest_api_readings").await,
        3,
        "GET /cart, GET /pay, POST /pay"
    );
    assert_eq!(count("latest_host_readings").await, 2, "i-1 and i-2");
    // i-1: GET /cart, GET /pay, POST /pay, host-only entry; i-2: host-only entry.
    assert_eq!(count("series_by_bucket").await, 5);
}

#[tokio::test]
async fn a_late_older_reading_does_not_replace_the_latest() {
    let app = spawn_app(AppOptions::default()).await;
    let session = session().await;
    let t = now_ms() - 10_000;
    let mut newer = api("late", "/x", t);
    newer["code"] = json!(201);
    assert_eq!(
        post_json(&app.url, &json!({"api": [newer]})).await.0,
        StatusCode::ACCEPTED
    );
    eventually_stored(&session, &app.keyspace, WAIT, "first reading", |r| {
        r.len() == 1
    })
    .await;
    // Its piece ended (its latest row is stored): the older reading is in another one.
    wait_flushed(&app, 1.0).await;
    let mut older = api("late", "/x", t - 5_000);
    older["code"] = json!(500);
    assert_eq!(
        post_json(&app.url, &json!({"api": [older]})).await.0,
        StatusCode::ACCEPTED
    );
    eventually_stored(&session, &app.keyspace, WAIT, "second reading", |r| {
        r.len() == 2
    })
    .await;
    wait_flushed(&app, 2.0).await;
    let ks = &app.keyspace;
    let result = session
        .query_unpaged(
            format!("SELECT code, timestamp FROM {ks}.latest_api_readings"),
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let (code, at) = result
        .single_row::<(i32, chrono::DateTime<chrono::Utc>)>()
        .unwrap();
    assert_eq!((code, at.timestamp_millis()), (201, t));
}

/// name, content type, content encoding, body, expected status, a word the error must mention.
type BadCase = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    StatusCode,
    &'static str,
);

#[tokio::test]
async fn bad_input_is_refused_clearly_and_accepted_data_is_intact() {
    let app = spawn_app(AppOptions {
        max_body_bytes: 1 << 20,
        ..AppOptions::default()
    })
    .await;
    let session = session().await;
    let t = now_ms();
    let good = json!({"api": [api("steady", "/a", t), api("steady", "/b", t)]});
    assert_eq!(post_json(&app.url, &good).await.0, StatusCode::ACCEPTED);

    let mut bad_code = api("steady", "/c", t);
    bad_code["code"] = json!(42);
    let mut wrong_type = api("steady", "/c", t);
    wrong_type["duration_ms"] = json!("fast");
    let mut no_service = api("steady", "/c", t);
    no_service.as_object_mut().unwrap().remove("service");
    let truncated = {
        let full = gzip(good.to_string().as_bytes());
        full[..full.len() / 2].to_vec()
    };
    let huge = vec![b' '; 100 * 1024 * 1024];
    let cases: Vec<BadCase> = vec![
        (
            "invalid code",
            "application/json",
            None,
            json!({"api": [api("steady", "/ok", t), bad_code]})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "code",
        ),
        (
            "wrong type",
            "application/json",
            None,
            json!({"api": [wrong_type]}).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "duration_ms",
        ),
        (
            "missing field",
            "application/json",
            None,
            json!({"api": [no_service]}).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "service",
        ),
        (
            "malformed JSON",
            "application/json",
            None,
            b"{\"api\": [".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            "empty body",
            "application/json",
            None,
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "empty body",
        ),
        (
            "truncated gzip",
            "application/json",
            Some("gzip"),
            truncated,
            StatusCode::BAD_REQUEST,
            "gzip",
        ),
        (
            "100 MB body",
            "application/json",
            None,
            huge,
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
        (
            "wrong content type",
            "text/plain",
            None,
            good.to_string().into_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
        ),
        (
            "unknown encoding",
            "application/json",
            Some("br"),
            good.to_string().into_bytes(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Encoding",
        ),
    ];
    for (name, content_type, encoding, body, expected, mention) in cases {
        let (status, answer, _) = post(&app.url, content_type, encoding, body).await;
        assert_eq!(status, expected, "{name}: {answer}");
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no error field in {answer}"));
        let fields: Vec<&str> = answer["details"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["field"].as_str())
            .collect();
        assert!(
            error.contains(mention) || fields.contains(&mention),
            "{name}: {answer}"
        );
    }

    // Still up, and exactly the good readings were stored: nothing half-accepted.
    let health = reqwest::get(format!("{}/healthz", app.url)).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        post_json(&app.url, &json!({"api": [api("steady", "/z", t)]}))
            .await
            .0,
        StatusCode::ACCEPTED
    );
    let rows = eventually_stored(&session, &app.keyspace, WAIT, "good readings", |r| {
        r.len() == 3
    })
    .await;
    let mut paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/a", "/b", "/z"]);
}

#[tokio::test]
async fn a_store_outage_loses_nothing_and_the_backlog_limit_answers_503() {
    let proxy = Proxy::start(crate::support::cql_node()).await;
    let app = spawn_app(AppOptions {
        cql_node: proxy.addr.to_string(),
        max_backlog_bytes: 64 * 1024,
        ..AppOptions::default()
    })
    .await;
    let session = session().await;
    proxy.cut();

    let t = now_ms();
    let mut accepted = 0;
    let mut refused = None;
    for batch in 0..200 {
        let readings: Vec<Value> = (0..50)
            .map(|i| api("outage", &format!("/p{batch}/{i}"), t))
            .collect();
        let (status, answer, headers) = post(
            &app.url,
            "application/json",
            None,
            json!({"api": readings}).to_string().into_bytes(),
        )
        .await;
        match status {
            StatusCode::ACCEPTED => accepted += answer["accepted"].as_u64().unwrap(),
            StatusCode::SERVICE_UNAVAILABLE => {
                refused = Some((answer, headers));
                break;
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    let (answer, headers) = refused.expect("the backlog limit was never reached");
    assert!(
        answer["error"].as_str().unwrap().contains("behind"),
        "{answer}"
    );
    assert!(
        headers.get("retry-after").is_some(),
        "503 without Retry-After"
    );
    assert!(accepted > 0);
    let ready = reqwest::get(format!("{}/readyz", app.url)).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        stored_api_readings(&session, &app.keyspace)
            .await
            .is_empty(),
        "nothing can be stored during the outage"
    );

    proxy.restore();
    let rows = eventually_stored(
        &session,
        &app.keyspace,
        Duration::from_secs(60),
        "every accepted reading",
        |r| r.len() as u64 >= accepted,
    )
    .await;
    assert_eq!(
        rows.len() as u64,
        accepted,
        "each accepted reading exactly once"
    );
    let mut paths: Vec<&str> = rows.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len() as u64, accepted);
    app.stop().await.unwrap();
}
