//! `POST /v1/metrics`: content negotiation, then the [`Acceptor`](crate::ingest::Acceptor).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

use super::error::ApiError;
use super::AppState;
use crate::access::Caller;
use crate::ingest::BodyFormat;
use crate::store::Store;

/// Accepts readings; answers 202 `{"accepted": N}` once they are durable in the WAL.
pub async fn post_metrics<S: Store>(
    State(state): State<AppState<S>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let outcome = accept(&state, &caller, &headers, body).await;
    let status = match &outcome {
        Ok(_) => StatusCode::ACCEPTED.as_u16(),
        Err(e) => e.status_code(),
    };
    let label = status_label(status);
    state
        .metrics
        .ingest_requests
        .get_or_create(&[("status", label)])
        .inc();
    match outcome {
        Ok(accepted) => {
            (StatusCode::ACCEPTED, Json(json!({ "accepted": accepted }))).into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn accept<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
) -> Result<usize, ApiError> {
    let format = body_format(headers)?;
    let gzip = is_gzip(headers)?;
    // The slot comes first: a body is only read (into memory) by a request that holds one.
    let slot = state.acceptor.admit().await?;
    let config = state.acceptor.config().limits;
    let limit = config.max_body_bytes;
    let timeout = config.body_read_timeout;
    let bytes = tokio::time::timeout(timeout, Limited::new(body, limit).collect())
        .await
        .map_err(|_| {
            ApiError::Timeout(format!(
                "the body did not arrive within {} (--body-read-timeout); nothing was accepted",
                humantime::format_duration(timeout)
            ))
        })?
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                ApiError::TooLarge(format!("body is larger than {limit} bytes"))
            } else {
                ApiError::bad_request(format!("cannot read the body: {e}"))
            }
        })?
        .to_bytes();
    let gate = caller.gate();
    Ok(state
        .acceptor
        .accept(slot, bytes, gzip, format, gate)
        .await?)
}

fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        "application/x-ndjson" | "application/ndjson" => Ok(BodyFormat::NdJson),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "unsupported Content-Type '{content_type}': use application/json or application/x-ndjson"
        ))),
    }
}

fn is_gzip(headers: &HeaderMap) -> Result<bool, ApiError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None | Some("identity") => Ok(false),
        Some(e) if e.eq_ignore_ascii_case("gzip") => Ok(true),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding '{other}': use gzip or none"
        ))),
    }
}

fn status_label(status: u16) -> &'static str {
    match status {
        202 => "202",
        400 => "400",
        403 => "403",
        408 => "408",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}
