//! The one mapping from every API failure to an HTTP status and a JSON body
//! `{"error": "...", "details": [...]}`.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::ingest::{AcceptError, FieldProblem, ParseError};
use crate::query::{ParamErrors, ParamProblem, QueryError};
use crate::wal::WalError;

/// An API failure.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is wrong; `details` name the fields.
    BadRequest {
        /// What is wrong, in one sentence.
        error: String,
        /// One entry per field problem.
        details: Vec<FieldProblem>,
    },
    /// 400: query parameters are wrong; `details` name the parameters.
    BadParams(ParamErrors),
    /// 413: the body is too large.
    TooLarge(String),
    /// 415: unsupported content type or encoding.
    UnsupportedMediaType(String),
    /// 429: too many requests at once; retry after the delay.
    TooManyRequests(String, Duration),
    /// 503: the service cannot take more now; retry after the delay.
    Unavailable(String, Duration),
    /// 500: our fault.
    Internal(String),
}

impl ApiError {
    /// A 400 without field details.
    pub fn bad_request(error: impl Into<String>) -> Self {
        ApiError::BadRequest {
            error: error.into(),
            details: Vec::new(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } | ApiError::BadParams(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    details: Details<'a>,
}

/// Problems with body fields (ingest) or with query parameters (queries).
#[derive(Serialize)]
#[serde(untagged)]
enum Details<'a> {
    Fields(&'a [FieldProblem]),
    Params(&'a [ParamProblem]),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message;
        let none = Details::Fields(&[]);
        let (error, details, retry_after) = match &self {
            ApiError::BadRequest { error, details } => {
                (error.as_str(), Details::Fields(details), None)
            }
            ApiError::BadParams(problems) => {
                message = problems.to_string();
                (message.as_str(), Details::Params(&problems.0), None)
            }
            ApiError::TooLarge(e) | ApiError::UnsupportedMediaType(e) | ApiError::Internal(e) => {
                (e.as_str(), none, None)
            }
            ApiError::TooManyRequests(e, after) | ApiError::Unavailable(e, after) => {
                (e.as_str(), none, Some(*after))
            }
        };
        let mut response = (status, Json(Body { error, details })).into_response();
        if let Some(after) = retry_after {
            let seconds = after.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// How long a client should wait when ingest is busy.
const BUSY_RETRY: Duration = Duration::from_secs(1);
/// How long a client should wait when the store is behind.
const BACKLOG_RETRY: Duration = Duration::from_secs(5);

impl From<AcceptError> for ApiError {
    fn from(error: AcceptError) -> Self {
        match error {
            AcceptError::Busy => ApiError::TooManyRequests(error.to_string(), BUSY_RETRY),
            AcceptError::Backlog { .. } => ApiError::Unavailable(error.to_string(), BACKLOG_RETRY),
            AcceptError::TooLarge { .. } => ApiError::TooLarge(error.to_string()),
            AcceptError::BadGzip(_) => ApiError::bad_request(error.to_string()),
            AcceptError::Parse(ParseError::Empty) => ApiError::bad_request(
                "empty body: expected {\"api\": [...], \"host\": [...]} or NDJSON readings",
            ),
            AcceptError::Parse(ParseError::Malformed(message)) => ApiError::bad_request(message),
            AcceptError::Parse(ParseError::Invalid(details)) => ApiError::BadRequest {
                error: format!("{} invalid field(s); nothing was accepted", details.len()),
                details,
            },
            AcceptError::Wal(e @ WalError::RecordTooLarge { .. }) => ApiError::TooLarge(format!(
                "the batch is too large for one WAL record ({e}); send smaller batches"
            )),
            AcceptError::Wal(e) => {
                tracing::error!(error = %e, "WAL append failed");
                ApiError::Unavailable(
                    format!("cannot make the readings durable: {e}"),
                    BACKLOG_RETRY,
                )
            }
        }
    }
}

/// How long a client should wait when the store does not answer a query.
const STORE_RETRY: Duration = Duration::from_secs(1);

impl From<ParamErrors> for ApiError {
    fn from(problems: ParamErrors) -> Self {
        ApiError::BadParams(problems)
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::Params(problems) => ApiError::BadParams(problems),
            QueryError::Store(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "query failed on the store");
                ApiError::Unavailable(format!("the store did not answer: {e}"), STORE_RETRY)
            }
            QueryError::Store(e) => {
                tracing::error!(error = %e, "query failed on the store");
                ApiError::Internal(format!("reading from the store failed: {e}"))
            }
        }
    }
}
