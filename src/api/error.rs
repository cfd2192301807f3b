//! The one mapping from every API failure to an HTTP status and a JSON body
//! `{"error": "...", "details": [...]}`.
//!
//! Invariant: a 5xx answer never carries the cause's text (it can name server paths, hosts or
//! driver internals): the cause is logged here, where the answer is made, and the client gets a
//! fixed sentence saying what failed and whether to retry.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::ingest::gate::Refusal;
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
    /// 403: the caller may not do this; `details` name what (access control).
    Forbidden {
        /// What is refused, in one sentence.
        error: String,
        /// One entry per refused reading.
        details: Vec<FieldProblem>,
    },
    /// 408: the client did not send the whole request in time.
    Timeout(String),
    /// 413: the body is too large.
    TooLarge(String),
    /// 415: unsupported content type or encoding.
    UnsupportedMediaType(String),
    /// 429: too many requests at once; retry after the delay.
    TooManyRequests(String, Duration),
    /// 503: the service cannot take more now; retry after the delay.
    Unavailable(String, Duration),
    /// 500: our fault; the text is answered as is, so it must not hold the cause.
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
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
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
            ApiError::BadRequest { error, details } | ApiError::Forbidden { error, details } => {
                (error.as_str(), Details::Fields(details), None)
            }
            ApiError::BadParams(problems) => {
                message = problems.to_string();
                (message.as_str(), Details::Params(&problems.0), None)
            }
            ApiError::Timeout(e)
            | ApiError::TooLarge(e)
            | ApiError::UnsupportedMediaType(e)
            | ApiError::Internal(e) => (e.as_str(), none, None),
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
            AcceptError::Backlog { .. } | AcceptError::StoreRefuses(_) => {
                ApiError::Unavailable(error.to_string(), BACKLOG_RETRY)
            }
            AcceptError::TooLarge { .. } => ApiError::TooLarge(error.to_string()),
            AcceptError::BadGzip(_) => ApiError::bad_request(error.to_string()),
            AcceptError::Parse(ParseError::Empty) => ApiError::bad_request(
                "empty body: expected {\"api\": [...], \"host\": [...]} or NDJSON readings",
            ),
            AcceptError::Parse(ParseError::Malformed(message)) => ApiError::bad_request(message),
            AcceptError::Parse(ParseError::Invalid(problems)) => {
                let unlisted = match problems.unlisted() {
                    0 => String::new(),
                    n => format!(" ({} listed, {n} more not)", problems.len()),
                };
                ApiError::BadRequest {
                    error: format!(
                        "{} invalid field(s){unlisted}; nothing was accepted",
                        problems.total()
                    ),
                    details: problems.into_iter().collect(),
                }
            }
            AcceptError::Wal(e @ WalError::RecordTooLarge { .. }) => ApiError::TooLarge(format!(
                "the batch is too large for one WAL record ({e}); send smaller batches"
            )),
            AcceptError::Wal(e) => {
                tracing::error!(error = %e, "WAL append failed");
                ApiError::Unavailable(
                    "cannot make the readings durable: the write-ahead log failed (the cause is \
                     in the server log); nothing was accepted, retry later"
                        .into(),
                    BACKLOG_RETRY,
                )
            }
            AcceptError::Refused {
                refusal: Refusal::Forbidden { message, .. },
                details,
            } => ApiError::Forbidden {
                error: message,
                details,
            },
            AcceptError::Refused {
                refusal:
                    Refusal::Limited {
                        message,
                        retry_after,
                        ..
                    },
                ..
            } => ApiError::TooManyRequests(message, retry_after),
            AcceptError::Decoder(reason) => {
                tracing::error!(%reason, "decoding an ingest body failed inside the server");
                ApiError::Internal(
                    "the server failed while decoding the body (the cause is in the server log); \
                     nothing was accepted"
                        .into(),
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
                ApiError::Unavailable(
                    "the store did not answer (the cause is in the server log); retry shortly"
                        .into(),
                    STORE_RETRY,
                )
            }
            QueryError::Store(e) => {
                tracing::error!(error = %e, "query failed on the store");
                ApiError::Internal(
                    "reading from the store failed (the cause is in the server log)".into(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::ingest::{FieldProblem, Problems};
    use crate::store::StoreError;

    async fn answer(error: ApiError) -> (u16, serde_json::Value) {
        let response = error.into_response();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn server_failures_are_answered_without_their_cause() {
        let secret = "/srv/secret/data/wal/00000000000000000007.seg";
        let wal = AcceptError::Wal(WalError::Io {
            path: PathBuf::from(secret),
            source: std::io::Error::other("disk on fire"),
        });
        let store = QueryError::Store(StoreError::rejected(
            "reading latest readings",
            std::io::Error::other(format!("cannot open {secret}")),
        ));
        let decoder = AcceptError::Decoder("panicked at src/ingest/accept.rs:1".into());
        for (error, status) in [
            (ApiError::from(wal), 503),
            (ApiError::from(store), 500),
            (ApiError::from(decoder), 500),
        ] {
            let (got, body) = answer(error).await;
            assert_eq!(got, status, "{body}");
            let text = body.to_string();
            assert!(!text.contains("/srv") && !text.contains(".rs"), "{text}");
            assert!(text.contains("server log"), "{text}");
        }
    }

    #[tokio::test]
    async fn a_body_with_many_problems_lists_the_first_and_counts_the_rest() {
        let mut problems = Problems::default();
        for index in 0..5000 {
            problems.push(FieldProblem {
                index,
                kind: Some("api"),
                field: String::new(),
                problem: "a reading must be a JSON object".into(),
            });
        }
        let error = ApiError::from(AcceptError::Parse(ParseError::Invalid(problems)));
        let (status, body) = answer(error).await;
        assert_eq!(status, 400);
        assert_eq!(body["details"].as_array().unwrap().len(), 100);
        let message = body["error"].as_str().unwrap();
        assert!(
            message.starts_with("5000 invalid field(s) (100 listed, 4900 more not)"),
            "{message}"
        );
    }
}
