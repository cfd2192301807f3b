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
use super::rules;
use crate::model::{Reading, TimestampMs};
use crate::telemetry::Metrics;
use crate::wal::{Wal, WalError};

/// How long a request may wait for a decoding slot before it is answered 429.
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// Limits of the accepting side.
#[derive(Debug, Clone, Copy)]
pub struct AcceptConfig {
    /// Largest body, in bytes, after decompression.
    pub max_body_bytes: usize,
    /// WAL backlog (accepted, not yet stored) past which ingest answers 503.
    pub max_backlog_bytes: u64,
    /// Bodies decoded at once.
    pub max_concurrent: usize,
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
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
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
        self.wal.stats().backlog_bytes <= self.config.max_backlog_bytes
    }

    /// Validates `body` and makes its readings durable; returns how many were accepted.
    pub async fn accept(
        &self,
        body: bytes::Bytes,
        gzip: bool,
        format: BodyFormat,
    ) -> Result<usize, AcceptError> {
        let started = Instant::now();
        self.check_backlog()?;
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
        self.append(payload, count, started).await
    }

    /// Makes readings converted from a foreign format (OTLP, a scrape) durable, after checking
    /// them against the same [`rules`] as our JSON: all or nothing, like a body. Returns how many
    /// were accepted.
    pub async fn accept_readings(&self, readings: Vec<Reading>) -> Result<usize, AcceptError> {
        let started = Instant::now();
        self.check_backlog()?;
        if readings.is_empty() {
            return Ok(0);
        }
        let now = TimestampMs::now();
        let problems = rules::check(&readings, &Window::at(now, self.config.retention_ms));
        if !problems.is_empty() {
            return Err(AcceptError::Parse(ParseError::Invalid(problems)));
        }
        let count = readings.len();
        let payload = encode(&Accepted { at: now, readings });
        self.append(payload, count, started).await
    }

    fn check_backlog(&self) -> Result<(), AcceptError> {
        let backlog_bytes = self.wal.stats().backlog_bytes;
        if backlog_bytes > self.config.max_backlog_bytes {
            return Err(AcceptError::Backlog {
                backlog_bytes,
                limit_bytes: self.config.max_backlog_bytes,
            });
        }
        Ok(())
    }

    async fn append(
        &self,
        payload: Vec<u8>,
        count: usize,
        started: Instant,
    ) -> Result<usize, AcceptError> {
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
        inflated = gunzip(body, config.max_body_bytes)?;
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
