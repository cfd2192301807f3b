//! Pushing readings to a collector's `POST /v1/metrics`, shared by the capture pipeline and the
//! host agent.
//!
//! A batch is encoded once, as a gzip-compressed JSON body of the [`wire`](super::wire) format
//! (`{"api": [...]}` or `{"host": [...]}`), and the very same bytes are resent on a retry. Delivery is at least once: the collector gives each
//! reading its id on receipt, so a retry after a `202` lost on the way back stores the batch
//! twice; a lost batch is the worse failure for metrics.
//!
//! Retries back off exponentially with "equal jitter" (half the step fixed, half random), so many
//! clients that lost the collector at the same moment do not come back in step; a `Retry-After`
//! from the collector (429 / 503) is a floor on the wait.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Serialize;

use super::auth::{check_scheme, ClientAuth};

/// The ingest path appended to a push URL given without a path (`http://collector:8080`).
pub const METRICS_PATH: &str = "/v1/metrics";
/// How much of a refusal's body is kept in the error, bytes.
const ERROR_BODY_BYTES: usize = 512;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The push URL cannot be used.
    #[error("push URL {url:?} is not usable: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The batch could not be serialised or compressed.
    #[error("cannot encode the batch: {0}")]
    Encode(#[source] std::io::Error),
    /// No answer: connection refused, reset, timed out.
    #[error("cannot reach the collector at {url}: {source}")]
    Unreachable {
        /// The ingest URL.
        url: Url,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The collector is under pressure (429 or 503) and asked us to come back later.
    #[error("the collector is busy ({status}); retry after {retry_after:?}")]
    Busy {
        /// 429 or 503.
        status: u16,
        /// Its `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The collector failed (another 5xx).
    #[error("the collector failed ({status}): {body}")]
    Server {
        /// The status.
        status: u16,
        /// The start of its answer.
        body: String,
    },
    /// The collector refused the batch itself (4xx): sending it again cannot help.
    #[error("the collector refused the batch ({status}): {body}")]
    Refused {
        /// The status.
        status: u16,
        /// The start of its answer (the problems it found).
        body: String,
    },
}

impl PushError {
    /// True when the same batch may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PushError::Unreachable { .. } | PushError::Busy { .. } | PushError::Server { .. }
        )
    }

    /// The wait the collector asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PushError::Busy { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// How often and how patiently a batch is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per batch, the first included (at least 1).
    pub attempts: u32,
    /// The first back-off step.
    pub initial: Duration,
    /// The largest back-off step.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first retry): step `initial × 2^retry`
    /// capped at `max`, of which a random half; never less than the collector's `hint`.
    pub fn delay(&self, retry: u32, hint: Option<Duration>) -> Duration {
        let step = self
            .initial
            .saturating_mul(2u32.saturating_pow(retry.min(20)))
            .min(self.max);
        let half = step / 2;
        let jittered = half + half.mul_f64(fastrand::f64());
        hint.map_or(jittered, |hint| jittered.max(hint))
    }
}

/// Serialises `payload` as JSON and gzips it: a body ready for [`Pusher::send`].
pub fn encode<T: Serialize>(payload: &T) -> Result<Bytes, PushError> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    serde_json::to_writer(&mut encoder, payload).map_err(|e| PushError::Encode(e.into()))?;
    encoder.flush().map_err(PushError::Encode)?;
    encoder.finish().map(Bytes::from).map_err(PushError::Encode)
}

/// Sends encoded batches to one collector over a pooled HTTP client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pusher {
    /// Keeps connections to the collector open between pushes.
    client: reqwest::Client,
    /// The full ingest URL.
    url: Url,
}

impl Pusher {
    /// A pusher to `push_url` (`http://host:port` or `https://...`, to which [`METRICS_PATH`] is
    /// added, or a full URL), without a token, each attempt bounded by `timeout`.
    pub fn new(push_url: &str, timeout: Duration) -> Result<Self, PushError> {
        Self::with_auth(push_url, timeout, &ClientAuth::default())
    }

    /// [`Pusher::new`] with `auth`'s token and CAs.
    pub fn with_auth(
        push_url: &str,
        timeout: Duration,
        auth: &ClientAuth,
    ) -> Result<Self, PushError> {
        let bad = |reason: &str| PushError::BadUrl {
            url: push_url.to_owned(),
            reason: reason.to_owned(),
        };
        let mut url = Url::parse(push_url).map_err(|e| bad(&e.to_string()))?;
        check_scheme(&url).map_err(|reason| bad(&reason))?;
        if url.path() == "/" {
            url.set_path(METRICS_PATH);
        }
        let client = auth
            .client_builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(PushError::Client)?;
        Ok(Self { client, url })
    }

    /// The ingest URL pushes go to.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// One attempt to deliver an encoded batch.
    pub async fn send(&self, body: Bytes) -> Result<(), PushError> {
        let unreachable = |source| PushError::Unreachable {
            url: self.url.clone(),
            source,
        };
        let response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_ENCODING, "gzip")
            .body(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(ERROR_BODY_BYTES).collect();
        let code = status.as_u16();
        Err(match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => PushError::Busy {
                status: code,
                retry_after,
            },
            s if s.is_server_error() => PushError::Server { status: code, body },
            _ => PushError::Refused { status: code, body },
        })
    }

    /// Delivers an encoded batch, retrying as `policy` says; `on_retry` hears of each failed
    /// attempt that will be retried. Returns the last error when every attempt failed.
    pub async fn send_with_retry(
        &self,
        body: Bytes,
        policy: &RetryPolicy,
        mut on_retry: impl FnMut(&PushError),
    ) -> Result<(), PushError> {
        let mut retry = 0;
        loop {
            match self.send(body.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() && retry + 1 < policy.attempts.max(1) => {
                    on_retry(&e);
                    tokio::time::sleep(policy.delay(retry, e.retry_after())).await;
                    retry += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_respect_the_hint() {
        let policy = RetryPolicy {
            attempts: 10,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for retry in 0..10 {
            let step = Duration::from_millis(100 * 2u64.pow(retry)).min(Duration::from_secs(1));
            let delay = policy.delay(retry, None);
            assert!(
                delay >= step / 2 && delay <= step,
                "retry {retry}: {delay:?}"
            );
        }
        let hinted = policy.delay(0, Some(Duration::from_secs(3)));
        assert_eq!(hinted, Duration::from_secs(3));
    }

    #[test]
    fn urls_get_the_ingest_path_and_must_be_http_or_https() {
        let timeout = Duration::from_secs(1);
        let url = |u| Pusher::new(u, timeout).map(|p| p.url().to_string());
        assert_eq!(
            url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080/v1/metrics"
        );
        assert_eq!(
            url("http://c:1/custom/ingest").unwrap(),
            "http://c:1/custom/ingest"
        );
        assert_eq!(url("https://c:1").unwrap(), "https://c:1/v1/metrics");
        assert!(matches!(url("ftp://c:1"), Err(PushError::BadUrl { .. })));
        assert!(matches!(
            url("collector:8080"),
            Err(PushError::BadUrl { .. })
        ));
    }

    #[test]
    fn batches_are_gzipped_json() {
        let body = encode(&serde_json::json!({"api": [1, 2]})).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .unwrap();
        assert_eq!(text, r#"{"api":[1,2]}"#);
    }
}
