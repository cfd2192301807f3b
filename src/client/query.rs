//! The HTTP client of the query endpoints: one GET, the service's answer or its error.
//!
//! The client only builds the query string and reads the answer; every check happens in the
//! service, whose 400 answers are returned with the parameter at fault. The answer types are the
//! server's own (`query::answer`), so both sides read and write the same shapes.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::auth::{check_scheme, ClientAuth};

/// Why a query from the command line failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryCliError {
    /// A flag is wrong before anything was sent.
    #[error("{0}")]
    Args(String),
    /// The service could not be reached.
    #[error("cannot query {url}: {source}")]
    Http {
        /// The request URL.
        url: String,
        /// The client's reason.
        #[source]
        source: reqwest::Error,
    },
    /// The service answered with an error.
    #[error("the service answered {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error and the problem of each parameter.
        message: String,
    },
    /// The answer was not what this version expects.
    #[error("unexpected answer from {url}: {source}")]
    Decode {
        /// The request URL.
        url: String,
        /// The parser's reason.
        #[source]
        source: serde_json::Error,
    },
}

/// The service's error body.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    field: String,
    #[serde(default)]
    problem: String,
}

/// Query-string pairs.
pub type Pairs = Vec<(&'static str, String)>;

/// Asks one running service.
#[derive(Debug, Clone)]
pub struct QueryClient {
    client: reqwest::Client,
    base: String,
}

impl QueryClient {
    /// A client of the service at `url` (`http://host:port` or `https://...`) with `auth`'s
    /// token and CAs.
    pub fn new(url: &str, auth: &ClientAuth) -> Result<Self, QueryCliError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| QueryCliError::Args(format!("--url {url:?} is not a URL: {e}")))?;
        check_scheme(&parsed).map_err(|e| QueryCliError::Args(format!("--url {e}")))?;
        let client = auth
            .client_builder()
            .build()
            .map_err(|source| QueryCliError::Http {
                url: url.to_owned(),
                source,
            })?;
        Ok(Self {
            client,
            base: url.trim_end_matches('/').to_owned(),
        })
    }

    /// The URL of endpoint `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One GET of `url`: the answer body on success, the service's error otherwise.
    pub async fn get(&self, url: &str, pairs: &Pairs) -> Result<String, QueryCliError> {
        let http = |source| QueryCliError::Http {
            url: url.to_owned(),
            source,
        };
        let response = self
            .client
            .get(url)
            .query(pairs)
            .send()
            .await
            .map_err(http)?;
        let status = response.status();
        let body = response.text().await.map_err(http)?;
        if status.is_success() {
            return Ok(body);
        }
        let message = match serde_json::from_str::<ErrorBody>(&body) {
            Ok(e) => std::iter::once(e.error)
                .chain(
                    e.details
                        .iter()
                        .map(|d| format!("\n  {}: {}", d.field, d.problem)),
                )
                .collect(),
            Err(_) => body,
        };
        Err(QueryCliError::Refused {
            status: status.as_u16(),
            message,
        })
    }
}

/// Reads an answer from `url` as `T`.
pub fn decode<T: DeserializeOwned>(url: &str, body: &str) -> Result<T, QueryCliError> {
    serde_json::from_str(body).map_err(|source| QueryCliError::Decode {
        url: url.to_owned(),
        source,
    })
}
