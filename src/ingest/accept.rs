//! The accepting half of ingest: body → validated readings → one synced WAL record.
//!
//! Memory stays bounded: at most `max_concurrent` bodies are decoded at once (a request that
//! cannot get a slot soon is told to come back, 429), each at most `max_body_bytes` once
//! decompressed; and past `max_backlog_bytes` of WAL not yet in the store, new data is refused
//! (503) instead of piling up.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::parse::{parse_json, parse_ndjson, ParseError, Window};
use super::record::{encode, Accepted};
use crate::model::TimestampMs;
use crate::telemetry::Metrics;
use crate::wal::{Wal, WalError};

/// How long a request may wait for a decoding slot before it is answered 429.
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// The limits an operator sets on the accepting side (`serve`'s flags); the defaults live here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptLimits {
    /// Largest body, in bytes, after decompression.
    pub max_body_bytes: usize,
    /// WAL backlog (accepted, not yet stored) past which ingest answers 503.
    pub max_backlog_bytes: u64,
    /// Bodies decoded at once; at least 1.
    pub max_concurrent: usize,
}

impl AcceptLimits {
    /// Default `max_body_bytes`: 8 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
    /// Default `max_backlog_bytes`: 1 GiB of WAL waiting for the store.
    pub const DEFAULT_MAX_BACKLOG_BYTES: u64 = 1024 * 1024 * 1024;
    /// Default `max_concurrent`: with the default body limit, at most 64 MiB of bodies in memory.
    pub const DEFAULT_MAX_CONCURRENT: usize = 8;
}

impl Default for AcceptLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_backlog_bytes: Self::DEFAULT_MAX_BACKLOG_BYTES,
            max_concurrent: Self::DEFAULT_MAX_CONCURRENT,
        }
    }
}

/// Everything the accepting side needs: the operator's limits and the store's retention.
#[derive(Debug, Clone, Copy)]
pub struct AcceptConfig {
    /// The limits.
    pub limits: AcceptLimits,
    /// Retention in ms: older readings are refused.
    pub retention_ms: i64,
}

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `{"api": [...], "host": [...]}`
    Json,
    /// One reading per line.
    NdJson,
}

/// Why a body was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// Every decoding slot is taken.
    #[error("too many ingest requests at once; retry shortly")]
    Busy,
    /// The WAL backlog is over its limit: the store is behind.
    #[error("the store is behind: {backlog_bytes} bytes wait in the WAL (limit {limit_bytes}); retry later")]
    Backlog {
        /// Backlog now.
        backlog_bytes: u64,
        /// The limit.
        limit_bytes: u64,
    },
    /// The (decompressed) body is over the limit.
    #[error("body is larger than {limit_bytes} bytes")]
    TooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// `Content-Encoding: gzip` but the body is not valid gzip.
    #[error("body is not valid gzip: {0}")]
    BadGzip(String),
    /// The body is malformed or has invalid readings.
    #[error("invalid body")]
    Parse(ParseError),
    /// The WAL could not make the record durable.
    #[error(transparent)]
    Wal(#[from] WalError),
}

/// Accepts bodies into the WAL.
#[derive(Clone)]
pub struct Acceptor {
    wal: Wal,
    config: AcceptConfig,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Acceptor {
    /// An acceptor appending to `wal`.
    pub fn new(wal: Wal, config: AcceptConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            wal,
            slots: Arc::new(Semaphore::new(config.limits.max_concurrent)),
            config,
            metrics,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &AcceptConfig {
        &self.config
    }

    /// True while the WAL backlog is under its limit.
    pub fn has_room(&self) -> bool {
        self.wal.stats().backlog_bytes <= self.config.limits.max_backlog_bytes
    }

    /// Validates `body` and makes its readings durable; returns how many were accepted.
    pub async fn accept(
        &self,
        body: bytes::Bytes,
        gzip: bool,
        format: BodyFormat,
    ) -> Result<usize, AcceptError> {
        let started = Instant::now();
        let backlog_bytes = self.wal.stats().backlog_bytes;
        if backlog_bytes > self.config.limits.max_backlog_bytes {
            return Err(AcceptError::Backlog {
                backlog_bytes,
                limit_bytes: self.config.limits.max_backlog_bytes,
            });
        }
        let _slot = tokio::time::timeout(SLOT_WAIT, self.slots.acquire())
            .await
            .map_err(|_| AcceptError::Busy)?
            .map_err(|_| AcceptError::Busy)?;
        let config = self.config;
        let decoded = tokio::task::spawn_blocking(move || decode(&body, gzip, format, &config))
            .await
            .map_err(|e| AcceptError::BadGzip(format!("decoder failed: {e}")))??;
        let Some((payload, count)) = decoded else {
            return Ok(0);
        };
        self.wal.append(payload).await?;
        self.metrics.readings_accepted.inc_by(count as u64);
        self.metrics
            .ack_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(count)
    }
}

/// Decompresses, parses and encodes; `None` when the body holds no readings.
fn decode(
    body: &[u8],
    gzip: bool,
    format: BodyFormat,
    config: &AcceptConfig,
) -> Result<Option<(Vec<u8>, usize)>, AcceptError> {
    let inflated;
    let text: &[u8] = if gzip {
        inflated = gunzip(body, config.limits.max_body_bytes)?;
        &inflated
    } else {
        body
    };
    let now = TimestampMs::now();
    let window = Window::at(now, config.retention_ms);
    let readings = match format {
        BodyFormat::Json => parse_json(text, &window),
        BodyFormat::NdJson => parse_ndjson(text, &window),
    }
    .map_err(AcceptError::Parse)?;
    if readings.is_empty() {
        return Ok(None);
    }
    let count = readings.len();
    Ok(Some((encode(&Accepted { at: now, readings }), count)))
}

/// Inflates a gzip body, refusing to grow past `limit` bytes (a gzip bomb stops there).
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, AcceptError> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| AcceptError::BadGzip(e.to_string()))?;
    if out.len() > limit {
        return Err(AcceptError::TooLarge { limit_bytes: limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_is_inflated_within_the_limit() {
        assert_eq!(gunzip(&gzip(b"hello"), 10).unwrap(), b"hello");
        assert!(matches!(
            gunzip(&gzip(&[b'x'; 100]), 10),
            Err(AcceptError::TooLarge { .. })
        ));
        let truncated = gzip(&[b'y'; 1000]);
        assert!(matches!(
            gunzip(&truncated[..truncated.len() / 2], 10_000),
            Err(AcceptError::BadGzip(_))
        ));
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(AcceptError::BadGzip(_))
        ));
    }
}
