//! Why a PromQL query failed, classified the way Prometheus' HTTP API classifies it.
//!
//! The class ([`ErrorType`]) decides the answer: `bad_data` (400) for a query or parameter that
//! is wrong or uses what timebucket does not support, `execution` (422) for a valid query that
//! cannot be answered (a limit, ambiguous vector matching), `timeout` (503), `unavailable` (503)
//! when the store does not answer, `internal` (500) for the rest.

use std::time::Duration;

use super::source::SourceError;

/// A failed query.
#[derive(Debug, thiserror::Error)]
pub enum PromqlError {
    /// The query text does not parse.
    #[error("invalid parameter \"query\": {0}")]
    Parse(String),
    /// The query uses a function, operator or modifier outside the supported subset.
    #[error("{0}")]
    Unsupported(String),
    /// A parameter or an argument is wrong.
    #[error("{0}")]
    BadData(String),
    /// A limit was reached; the message names the flag.
    #[error("{0}")]
    Limit(String),
    /// The query is valid but has no answer (e.g. many-to-many matching).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its timeout.
    #[error("query timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// Reading the data failed.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Prometheus' error classes (`errorType` in an error answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// The request is wrong: 400.
    BadData,
    /// The query cannot be executed: 422.
    Execution,
    /// The query took too long: 503.
    Timeout,
    /// The store did not answer: 503.
    Unavailable,
    /// Our fault: 500.
    Internal,
}

impl ErrorType {
    /// The `errorType` text.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Unavailable => "unavailable",
            ErrorType::Internal => "internal",
        }
    }

    /// The HTTP status Prometheus answers this class with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorType::BadData => 400,
            ErrorType::Execution => 422,
            ErrorType::Timeout | ErrorType::Unavailable => 503,
            ErrorType::Internal => 500,
        }
    }
}

impl PromqlError {
    /// The class of this error.
    pub fn error_type(&self) -> ErrorType {
        match self {
            PromqlError::Parse(_) | PromqlError::Unsupported(_) | PromqlError::BadData(_) => {
                ErrorType::BadData
            }
            PromqlError::Limit(_) | PromqlError::Execution(_) => ErrorType::Execution,
            PromqlError::Timeout(_) => ErrorType::Timeout,
            PromqlError::Source(e) if e.is_limit() => ErrorType::Execution,
            PromqlError::Source(e) if e.is_retryable() => ErrorType::Unavailable,
            PromqlError::Source(_) => ErrorType::Internal,
        }
    }

    /// An unsupported feature, named.
    pub fn unsupported(what: impl std::fmt::Display) -> Self {
        PromqlError::Unsupported(format!(
            "{what} is not supported by timebucket's PromQL subset (see the README, \"Prometheus API\")"
        ))
    }
}
