//! OTLP/HTTP: `POST /v1/metrics` with `application/x-protobuf` or `application/json` (OTLP/JSON),
//! optionally gzip-compressed; the answer is in the request's encoding.
//!
//! Per the OTLP/HTTP specification: success is `200` with an `ExportMetricsServiceResponse`
//! (its `partial_success` listing rejected points); a failure is a 4xx/5xx whose body is a
//! `google.rpc.Status` (protobuf, or its JSON for a JSON request), with `Retry-After` on the
//! retryable `429` and `503`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Extension;
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost::Message;

use super::{Class, Encoded, OtlpError, OtlpReceiver};
use crate::access::{Access, Caller};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The OTLP/HTTP routes, behind the access layer; the server must put the peer's
/// `ConnectInfo<SocketAddr>` in each request.
pub fn router(receiver: OtlpReceiver, access: Access) -> Router {
    Router::new()
        .route("/v1/metrics", post(export))
        .with_state(receiver)
        .layer(axum::middleware::from_fn_with_state(
            access,
            crate::access::layer::check,
        ))
}

async fn export(
    State(receiver): State<OtlpReceiver>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let json = is_json(&headers);
    let outcome = async {
        let json = json
            .as_ref()
            .map_err(|e| OtlpError::Unsupported(e.to_string()))?;
        let gzip = is_gzip(&headers)?;
        let slot = receiver.admit().await?;
        let bytes = read(body, receiver.max_body_bytes()).await?;
        let encoded = if *json {
            Encoded::Json(bytes)
        } else {
            Encoded::Protobuf(bytes)
        };
        receiver
            .export(slot, encoded, gzip, peer.ip(), caller.gate())
            .await
    }
    .await;
    let json = json.unwrap_or(false);
    let response = match outcome {
        Ok(answer) if json => ok(JSON, serde_json::to_vec(&answer).unwrap_or_default()),
        Ok(answer) => ok(PROTOBUF, answer.encode_to_vec()),
        Err(error) => failure(&error, json),
    };
    receiver.count_request("http", status_label(response.status()));
    response
}

fn ok(content_type: &'static str, body: Vec<u8>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The status of each class of failure.
fn status(class: Class) -> StatusCode {
    match class {
        Class::Invalid => StatusCode::BAD_REQUEST,
        Class::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Class::Unsupported => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Class::Busy => StatusCode::TOO_MANY_REQUESTS,
        Class::Forbidden => StatusCode::FORBIDDEN,
        Class::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Class::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn failure(error: &OtlpError, json: bool) -> Response {
    let class = error.class();
    if class == Class::Internal {
        tracing::error!(%error, "OTLP/HTTP export failed");
    }
    let rpc = tonic_types::pb::Status {
        code: super::grpc::code(class) as i32,
        message: error.message(),
        details: Vec::new(),
    };
    let (content_type, body) = if json {
        let body = serde_json::json!({"code": rpc.code, "message": rpc.message});
        (JSON, body.to_string().into_bytes())
    } else {
        (PROTOBUF, rpc.encode_to_vec())
    };
    let mut response =
        (status(class), [(header::CONTENT_TYPE, content_type)], body).into_response();
    if let Some(after) = error.retry_after() {
        let seconds = HeaderValue::from(after.as_secs().max(1));
        response.headers_mut().insert(header::RETRY_AFTER, seconds);
    }
    response
}

async fn read(body: Body, limit: usize) -> Result<bytes::Bytes, OtlpError> {
    Limited::new(body, limit)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                OtlpError::TooLarge { limit_bytes: limit }
            } else {
                OtlpError::Read(e.to_string())
            }
        })
}

/// Whether the body is OTLP/JSON (`false`: protobuf).
fn is_json(headers: &HeaderMap) -> Result<bool, OtlpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case(PROTOBUF) {
        Ok(false)
    } else if essence.eq_ignore_ascii_case(JSON) {
        Ok(true)
    } else {
        Err(OtlpError::Unsupported(format!(
            "unsupported Content-Type '{content_type}': OTLP/HTTP is {PROTOBUF} or {JSON}"
        )))
    }
}

fn is_gzip(headers: &HeaderMap) -> Result<bool, OtlpError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None => Ok(false),
        Some(e) if e.eq_ignore_ascii_case("identity") => Ok(false),
        Some(e) if e.eq_ignore_ascii_case("gzip") => Ok(true),
        Some(other) => Err(OtlpError::Unsupported(format!(
            "unsupported Content-Encoding '{other}': use gzip or none"
        ))),
    }
}

fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        400 => "400",
        413 => "413",
        401 => "401",
        403 => "403",
        415 => "415",
        429 => "429",
        503 => "503",
        _ => "other",
    }
}
