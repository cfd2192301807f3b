//! Every endpoint × {no token, an unknown token, a token without the scope, a token limited to
//! another service}: the documented status and body, and nothing read, written or reloaded;
//! then the right token gets through (so the refusals are not vacuous).

use reqwest::{Method, StatusCode};
use serde_json::Value;
use timebucket::access::{tokens_file, Scopes, Token, TokenLimits, TokenSpec};

use super::support::{body, grpc_export, otlp_json, SecuredApp};

/// What an endpoint needs, as the README's Security section documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// write; the readings' services must be covered
    Write,
    /// read; the service it names must be covered
    ReadService,
    /// read, for every service
    ReadAll,
    /// read; shows only the covered services (PromQL)
    ReadFiltered,
    /// admin
    Admin,
}

struct Call {
    method: Method,
    /// The URL for service `{s}`.
    url: String,
    /// A JSON body for service `{s}`.
    body: Option<fn(&str) -> Value>,
    needs: Needs,
}

fn calls(app: &SecuredApp) -> Vec<Call> {
    let api = &app.api;
    let get = |path: &str, needs| Call {
        method: Method::GET,
        url: format!("{api}{path}"),
        body: None,
        needs,
    };
    let now = chrono::Utc::now().timestamp();
    let range = format!("from={}&to={}", (now - 600) * 1000, now * 1000);
    vec![
        Call {
            method: Method::POST,
            url: format!("{api}/v1/metrics"),
            body: Some(|s| body(&[s])),
            needs: Needs::Write,
        },
        Call {
            method: Method::POST,
            url: format!("{}/v1/metrics", app.otlp_http),
            body: Some(otlp_json),
            needs: Needs::Write,
        },
        get(
            &format!("/v1/readings?service={{s}}&{range}"),
            Needs::ReadService,
        ),
        get(
            &format!("/v1/series?service={{s}}&{range}"),
            Needs::ReadService,
        ),
        get("/v1/latest?service={s}", Needs::ReadService),
        get(
            &format!("/v1/stats?service={{s}}&{range}&step=1m"),
            Needs::ReadService,
        ),
        get(
            &format!("/v1/stats/host?service={{s}}&{range}&step=1m"),
            Needs::ReadService,
        ),
        get("/services/{s}", Needs::ReadService),
        get("/services/{s}/readings", Needs::ReadService),
        get("/", Needs::ReadAll),
        get("/alerts", Needs::ReadAll),
        get("/metrics", Needs::ReadAll),
        get("/v1/targets", Needs::ReadAll),
        get("/api/v1/rules", Needs::ReadAll),
        get("/api/v1/alerts", Needs::ReadAll),
        get("/api/v1/query?query=host_available", Needs::ReadFiltered),
        get(
            &format!(
                "/api/v1/query_range?query=host_available&start={}&end={now}&step=60",
                now - 600
            ),
            Needs::ReadFiltered,
        ),
        get("/api/v1/series?match[]=host_available", Needs::ReadFiltered),
        get("/api/v1/labels", Needs::ReadFiltered),
        get("/api/v1/label/service/values", Needs::ReadFiltered),
        get("/api/v1/metadata", Needs::ReadFiltered),
        get("/api/v1/status/buildinfo", Needs::ReadFiltered),
        get("/api/v1/format_query?query=up", Needs::ReadFiltered),
        get("/api/v1/query_exemplars?query=up", Needs::ReadFiltered),
        Call {
            method: Method::POST,
            url: format!("{api}/-/reload"),
            body: None,
            needs: Needs::Admin,
        },
    ]
}

/// Sends `call` for `service` with `token`: the status, the JSON body (if any) and the
/// `WWW-Authenticate` values.
async fn send(
    call: &Call,
    service: &str,
    token: Option<&Token>,
) -> (StatusCode, Value, Vec<String>) {
    let client = reqwest::Client::new();
    let mut request = client.request(call.method.clone(), call.url.replace("{s}", service));
    if let Some(body) = call.body {
        request = request.json(&body(service));
    }
    if let Some(token) = token {
        request = request.bearer_auth(token.reveal());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenges = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        challenges,
    )
}

/// Asserts a refusal: `status`, an error containing `says`, and (for a 403 naming a field)
/// that field in the details.
fn refused(
    what: &str,
    got: (StatusCode, Value, Vec<String>),
    status: u16,
    says: &str,
    field: Option<&str>,
) {
    let (code, body, challenges) = got;
    assert_eq!(code.as_u16(), status, "{what}: {body}");
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no error in {body}"));
    assert!(
        error.contains(says),
        "{what}: `{error}` does not say `{says}`"
    );
    assert!(body["details"].is_array(), "{what}: {body}");
    if status == 401 {
        assert!(
            challenges.iter().any(|c| c.starts_with("Bearer")),
            "{what}: {challenges:?}"
        );
    }
    if let Some(field) = field {
        let fields: Vec<&str> = body["details"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{what}: details {body}");
    }
}

#[tokio::test]
async fn every_endpoint_refuses_every_caller_without_the_right_scope_and_changes_nothing() {
    let app = SecuredApp::start().await;
    let keys = &app.keys;
    // A token added to the file: a refused reload must not install it.
    let late = Token::generate().unwrap();
    let spec = TokenSpec {
        name: "late".into(),
        scopes: Scopes::parse(["read"]).unwrap(),
        services: None,
        hash: late.hash(),
        limits: TokenLimits::default(),
    };
    let mut file = std::fs::read_to_string(&app.tokens_file).unwrap();
    file.push('\n');
    file.push_str(&tokens_file::render(&spec));
    std::fs::write(&app.tokens_file, file).unwrap();
    let accepted = app.accepted().await;

    for call in calls(&app) {
        let what = format!("{} {}", call.method, call.url);
        let no_token = send(&call, "checkout", None).await;
        refused(
            &format!("{what}, no token"),
            no_token,
            401,
            "a token is needed",
            None,
        );
        let unknown = send(&call, "checkout", Some(&keys.stranger)).await;
        refused(
            &format!("{what}, unknown token"),
            unknown,
            401,
            "not known",
            None,
        );
        let (wrong, scope): (Vec<&Token>, &str) = match call.needs {
            Needs::Write => (vec![&keys.reader, &keys.admin], "write"),
            Needs::Admin => (vec![&keys.reader, &keys.writer], "admin"),
            _ => (vec![&keys.writer, &keys.admin], "read"),
        };
        for token in wrong {
            let got = send(&call, "checkout", Some(token)).await;
            let says = format!("needs the {scope} scope");
            refused(
                &format!("{what}, wrong scope"),
                got,
                403,
                &says,
                Some("scope"),
            );
        }
        match call.needs {
            Needs::Write if call.url.starts_with(&app.otlp_http) => {
                // OTLP answers its own failures as a google.rpc.Status (code 7: denied).
                let (status, body, _) = send(&call, "billing", Some(&keys.checkout_writer)).await;
                assert_eq!(
                    (status.as_u16(), &body["code"]),
                    (403, &Value::from(7)),
                    "{body}"
                );
                assert!(
                    body["message"].as_str().unwrap().contains("may not write"),
                    "{body}"
                );
            }
            Needs::Write => {
                let got = send(&call, "billing", Some(&keys.checkout_writer)).await;
                refused(
                    &format!("{what}, billing"),
                    got,
                    403,
                    "may not write",
                    Some("service"),
                );
            }
            Needs::ReadService => {
                let got = send(&call, "billing", Some(&keys.checkout_reader)).await;
                refused(
                    &format!("{what}, billing"),
                    got,
                    403,
                    "billing",
                    Some("service"),
                );
            }
            Needs::ReadAll => {
                let got = send(&call, "checkout", Some(&keys.checkout_reader)).await;
                refused(
                    &format!("{what}, scoped"),
                    got,
                    403,
                    "every service",
                    Some("services"),
                );
            }
            // PromQL answers a scoped token with its services only (the next test).
            Needs::ReadFiltered | Needs::Admin => {}
        }
    }
    for (token, code) in [
        (None, "16"),
        (Some(&keys.stranger), "16"),
        (Some(&keys.reader), "7"),
        (Some(&keys.checkout_writer), "7"),
    ] {
        let status = grpc_export(&app.otlp_grpc, token.map(Token::reveal), "billing").await;
        assert_eq!(
            status.as_deref(),
            Some(code),
            "gRPC with {:?}",
            token.is_some()
        );
    }

    // Nothing was accepted, and no reload happened.
    assert_eq!(app.accepted().await, accepted);
    let late_call = Call {
        method: Method::GET,
        url: format!("{}/api/v1/labels", app.api),
        body: None,
        needs: Needs::ReadFiltered,
    };
    refused(
        "late token before a reload",
        send(&late_call, "x", Some(&late)).await,
        401,
        "not known",
        None,
    );

    // The right token passes everywhere (writes first: the reads need the service to exist).
    let (writes, others): (Vec<Call>, Vec<Call>) = calls(&app)
        .into_iter()
        .partition(|c| c.needs == Needs::Write);
    for (i, call) in writes.into_iter().chain(others).enumerate() {
        if i == 2 {
            wait_until_stored(&app, "checkout").await;
        }
        let token = match call.needs {
            Needs::Write => &keys.checkout_writer,
            Needs::Admin => &keys.admin,
            Needs::ReadService | Needs::ReadFiltered => &keys.checkout_reader,
            Needs::ReadAll => &keys.reader,
        };
        let (status, body, _) = send(&call, "checkout", Some(token)).await;
        assert!(
            status.is_success(),
            "{} {}: {status} {body}",
            call.method,
            call.url
        );
    }
    assert_eq!(
        grpc_export(&app.otlp_grpc, Some(keys.writer.reveal()), "billing").await,
        None
    );
    assert_eq!(app.accepted().await, accepted + 3.0);
    assert_eq!(
        send(&late_call, "x", Some(&late)).await.0,
        StatusCode::OK,
        "reloaded"
    );
    app.stop().await;
}

/// Waits until a reading of `service` is in the store (the flusher writes behind the WAL).
async fn wait_until_stored(app: &SecuredApp, service: &str) {
    let url = format!("{}/v1/latest?service={service}", app.api);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let response = reqwest::Client::new()
            .get(&url)
            .bearer_auth(app.keys.reader.reveal())
            .send()
            .await
            .unwrap();
        if response.status().is_success() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{service} never reached the store"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The readings the JSON ingest refused are named by index and kind.
#[tokio::test]
async fn a_body_with_a_reading_for_another_service_is_refused_whole_naming_it() {
    let app = SecuredApp::start().await;
    let accepted = app.accepted().await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/metrics", app.api))
        .bearer_auth(app.keys.checkout_writer.reveal())
        .json(&body(&["checkout", "billing", "checkout", "search"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["error"],
        "2 reading(s) are for services token checkout-writer may not write; nothing was accepted"
    );
    let refused: Vec<(u64, &str, &str)> = answer["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["index"].as_u64().unwrap(),
                d["kind"].as_str().unwrap(),
                d["field"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(refused, [(1, "host", "service"), (3, "host", "service")]);
    assert!(answer["details"][0]["problem"]
        .as_str()
        .unwrap()
        .contains("billing"));
    assert_eq!(app.accepted().await, accepted);
    app.stop().await;
}

/// A token limited to a service sees only that service through PromQL, whatever it asks.
#[tokio::test]
async fn the_prometheus_api_shows_a_scoped_token_only_its_services() {
    let app = SecuredApp::start().await;
    let client = reqwest::Client::new();
    let written = client
        .post(format!("{}/v1/metrics", app.api))
        .bearer_auth(app.keys.writer.reveal())
        .json(&body(&["checkout", "billing"]))
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), 202);
    let ask = |token: &Token, path: &str| {
        let request = client
            .get(format!("{}{path}", app.api))
            .bearer_auth(token.reveal());
        async move {
            let answer: Value = request.send().await.unwrap().json().await.unwrap();
            answer["data"].clone()
        }
    };
    let values = "/api/v1/label/service/values";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ask(&app.keys.reader, values).await != serde_json::json!(["billing", "checkout"]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the readings never reached the store"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let scoped = &app.keys.checkout_reader;
    assert_eq!(ask(scoped, values).await, serde_json::json!(["checkout"]));
    let by_service = ask(
        scoped,
        "/api/v1/query?query=count%20by%20(service)%20(host_available)",
    )
    .await;
    let services: Vec<&str> = by_service["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metric"]["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["checkout"]);
    let billing = ask(
        scoped,
        "/api/v1/series?match[]=host_available%7Bservice%3D%22billing%22%7D",
    )
    .await;
    assert_eq!(billing, serde_json::json!([]));
    app.stop().await;
}
