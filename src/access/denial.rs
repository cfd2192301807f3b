//! Why access control refused a request, and the answer: the status, the usual JSON body
//! `{"error": "...", "details": [...]}` and, for a 401, the challenges.
//!
//! | reason (`/metrics`)      | status | when |
//! | ------------------------ | ------ | ---- |
//! | `missing_token`          | 401    | no `Authorization` header |
//! | `malformed_token`        | 401    | not `Bearer <token>` (or, for GET, `Basic`), or too long |
//! | `unknown_token`          | 401    | no configured token has this hash |
//! | `missing_scope`          | 403    | the token lacks the scope the endpoint needs |
//! | `service_outside_scope`  | 403    | the request names (or needs) a service the token may not see |
//! | `host_not_allowed`       | 421    | the `Host` header is not an allowed name |
//!
//! Answers never repeat the credential; they name the token by its configured name.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::token::Scope;

/// Longest part of a `Host` header repeated in an answer, bytes.
const MAX_ECHOED_HOST: usize = 100;

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No credential.
    MissingToken,
    /// A credential that is not a token.
    MalformedToken(&'static str),
    /// A token no one configured.
    UnknownToken,
    /// The token lacks the scope.
    MissingScope {
        /// The token's name.
        token: String,
        /// Its scopes (`read,write`).
        has: String,
        /// The scope needed.
        needs: Scope,
        /// What was asked (`POST /v1/metrics`).
        what: String,
    },
    /// A service the token may not see, or an endpoint that spans every service.
    ServiceOutsideScope {
        /// The token's name.
        token: String,
        /// The parameter or path part naming the service (`service`), or `services` when the
        /// endpoint spans every service.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A `Host` that is not allowed.
    HostNotAllowed(String),
}

impl Denial {
    /// The reason counted in `timebucket_access_denied_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::MissingToken => "missing_token",
            Denial::MalformedToken(_) => "malformed_token",
            Denial::UnknownToken => "unknown_token",
            Denial::MissingScope { .. } => "missing_scope",
            Denial::ServiceOutsideScope { .. } => "service_outside_scope",
            Denial::HostNotAllowed(_) => "host_not_allowed",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Denial::MissingToken | Denial::MalformedToken(_) | Denial::UnknownToken => {
                StatusCode::UNAUTHORIZED
            }
            Denial::MissingScope { .. } | Denial::ServiceOutsideScope { .. } => {
                StatusCode::FORBIDDEN
            }
            Denial::HostNotAllowed(_) => StatusCode::MISDIRECTED_REQUEST,
        }
    }

    /// True for the 401s: the caller is not known (as opposed to known and refused).
    pub fn is_unauthenticated(&self) -> bool {
        self.status() == StatusCode::UNAUTHORIZED
    }

    /// One sentence saying what is wrong and what to do.
    pub fn message(&self) -> String {
        match self {
            Denial::MissingToken => {
                "a token is needed: send `Authorization: Bearer <token>`".into()
            }
            Denial::MalformedToken(why) => {
                format!("the Authorization header is not usable ({why}): send `Bearer <token>`")
            }
            Denial::UnknownToken => "the token is not known (revoked, or mistyped)".into(),
            Denial::MissingScope {
                token, needs, what, ..
            } => {
                format!("token {token} may not do this: {what} needs the {needs} scope")
            }
            Denial::ServiceOutsideScope { token, problem, .. } => {
                format!("token {token} may not see this: {problem}")
            }
            Denial::HostNotAllowed(host) => {
                let mut host = host.clone();
                if host.len() > MAX_ECHOED_HOST {
                    let mut end = MAX_ECHOED_HOST;
                    while !host.is_char_boundary(end) {
                        end -= 1;
                    }
                    host.truncate(end);
                }
                format!(
                    "Host `{host}` is not served: add it to --allowed-hosts (requests from web \
                     pages that rebind their name to this address are refused this way)"
                )
            }
        }
    }

    /// The answer; `browser` adds a Basic challenge to a 401, so a browser asks for the token.
    pub fn into_response(self, browser: bool) -> Response {
        let details = match &self {
            Denial::MissingScope { has, needs, .. } => {
                vec![json!({"field": "scope", "problem": format!("has {has}, needs {needs}")})]
            }
            Denial::ServiceOutsideScope { field, problem, .. } => {
                vec![json!({"field": field, "problem": problem})]
            }
            _ => Vec::new(),
        };
        let body = json!({"error": self.message(), "details": details});
        let mut response = (self.status(), Json(body)).into_response();
        if self.is_unauthenticated() {
            let headers = response.headers_mut();
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"timebucket\""),
            );
            if browser {
                headers.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"timebucket\", charset=\"UTF-8\""),
                );
            }
        }
        response
    }
}
