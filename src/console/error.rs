//! Why a console page could not be shown, as an HTML page with the HTTP status the JSON API
//! would answer: 400 naming each parameter at fault, 503 when the store is unreachable (try
//! again), 500 otherwise.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{page, Frame, Section};
use crate::query::QueryError;

/// A console failure.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The page's parameters are wrong: `(parameter, problem)` pairs.
    #[error("invalid parameters")]
    Params(Vec<(String, String)>),
    /// The query layer failed.
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl ConsoleError {
    /// The HTTP status of the page.
    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::Params(_) | ConsoleError::Query(QueryError::Params(_)) => {
                StatusCode::BAD_REQUEST
            }
            ConsoleError::Query(QueryError::Store(e)) if e.is_retryable() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ConsoleError::Query(QueryError::Store(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn problems(&self) -> Vec<(String, String)> {
        match self {
            ConsoleError::Params(problems) => problems.clone(),
            ConsoleError::Query(QueryError::Params(errors)) => errors
                .0
                .iter()
                .map(|p| (p.field.clone(), p.problem.clone()))
                .collect(),
            ConsoleError::Query(QueryError::Store(_)) => Vec::new(),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        let problems = self.problems();
        let (title, advice) = if status == StatusCode::BAD_REQUEST {
            (
                "This page cannot be shown",
                "The address asks for something the service refuses:",
            )
        } else {
            tracing::warn!(error = %self, "console page failed");
            (
                "The store did not answer",
                "Reading from the store failed; the page may work again in a moment.",
            )
        };
        let frame = Frame {
            title: title.to_owned(),
            section: Section::Services,
            crumbs: vec![("Services".to_owned(), "/".to_owned())],
            picker: None,
        };
        let body = html! {
            div.notice role="alert" {
                h1 { (title) }
                p { (advice) }
                @if !problems.is_empty() {
                    ul.problems {
                        @for (field, problem) in &problems {
                            li { code { (field) } ": " (problem) }
                        }
                    }
                }
                @if problems.is_empty() {
                    p.muted { (self.to_string()) }
                }
                p { a.button href="/" { "Back to the services" } }
            }
        };
        (status, super::html_response(page(&frame, body))).into_response()
    }
}
