//! The accepting half of ingest: body → validated readings → one synced WAL record.
//!
//! Memory stays bounded: a request must hold a [`Slot`] before its body is read, and at most
//! `max_concurrent` slots exist (a request that cannot get one soon is told to come back, 429),
//! so at most that many bodies are in memory, each at most `max_body_bytes` on the wire and
//! again once decompressed; and past `max_backlog_bytes` of WAL not yet in the store, new data
//! is refused (503) before its body is read.
//!
//! A gzip body may hold several members (`cat a.gz b.gz`, pigz, streaming writers): every member
//! is read, and bytes after the last one are refused, so no reading is dropped behind a 202.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::gate::{self, Refusal, SharedGate};
use super::parse::{parse_json, parse_ndjson, FieldProblem, ParseError, Window};
use super::record::{encode, Accepted};
use super::rules;
use crate::model::{Reading, TimestampMs};
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
    /// Bodies read and decoded at once; at least 1.
    pub max_concurrent: usize,
    /// Longest time a body may take to arrive, once its request holds a slot.
    pub body_read_timeout: Duration,
}

impl AcceptLimits {
    /// Default `max_body_bytes`: 8 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
    /// Default `max_backlog_bytes`: 1 GiB of WAL waiting for the store.
    pub const DEFAULT_MAX_BACKLOG_BYTES: u64 = 1024 * 1024 * 1024;
    /// Default `max_concurrent`: with the default body limit, at most 64 MiB of bodies in memory.
    pub const DEFAULT_MAX_CONCURRENT: usize = 8;
    /// Default `body_read_timeout`.
    pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
}

impl Default for AcceptLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_backlog_bytes: Self::DEFAULT_MAX_BACKLOG_BYTES,
            max_concurrent: Self::DEFAULT_MAX_CONCURRENT,
            body_read_timeout: Self::DEFAULT_BODY_READ_TIMEOUT,
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
    /// `Content-Encoding: gzip` but the body is not valid gzip, or has bytes after it.
    #[error("body is not valid gzip: {0}")]
    BadGzip(String),
    /// Decoding failed inside the server (the decoder panicked): our fault, not the body's.
    #[error("decoding the body failed inside the server: {0}")]
    Decoder(String),
    /// The body is malformed or has invalid readings.
    #[error("invalid body")]
    Parse(ParseError),
    /// The WAL could not make the record durable.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The gate refused the batch (access control: a service the caller may not write, or one
    /// of its limits).
    #[error("{refusal}")]
    Refused {
        /// Why.
        refusal: Refusal,
        /// The refused readings, located in the body.
        details: Vec<FieldProblem>,
    },
    /// The store cannot write (the embedded store's disk is full): new data waits outside
    /// rather than taking the space the store needs to recover.
    #[error("{0}; ingest is refused until it writes again, retry later")]
    StoreRefuses(String),
}

/// The right to read, decode and append one body; see the module note. Dropping it frees the
/// slot.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// Accepts bodies into the WAL.
#[derive(Clone)]
pub struct Acceptor {
    wal: Wal,
    config: AcceptConfig,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    /// Why the store cannot write now, when it says so (see [`Acceptor::refusing_while`]).
    store_refusing: Option<watch::Receiver<Option<String>>>,
}

impl Acceptor {
    /// An acceptor appending to `wal`.
    pub fn new(wal: Wal, config: AcceptConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            wal,
            slots: Arc::new(Semaphore::new(config.limits.max_concurrent)),
            config,
            metrics,
            store_refusing: None,
        }
    }

    /// The same acceptor, refusing new data (503) while `refusing` holds a reason.
    pub fn refusing_while(mut self, refusing: watch::Receiver<Option<String>>) -> Self {
        self.store_refusing = Some(refusing);
        self
    }

    /// Why ingest is refused because of the store, if it is.
    pub fn store_refusal(&self) -> Option<String> {
        self.store_refusing
            .as_ref()
            .and_then(|r| r.borrow().clone())
    }

    /// The limits in force.
    pub fn config(&self) -> &AcceptConfig {
        &self.config
    }

    /// True while the WAL backlog is under its limit.
    pub fn has_room(&self) -> bool {
        self.wal.stats().backlog_bytes <= self.config.limits.max_backlog_bytes
    }

    /// Admits one request: refuses it while the WAL backlog is over its limit (503), and
    /// waits briefly for a slot (429 when none frees up). Call it before reading the body.
    pub async fn admit(&self) -> Result<Slot, AcceptError> {
        self.check_backlog()?;
        let permit = tokio::time::timeout(SLOT_WAIT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| AcceptError::Busy)?
            .map_err(|_| AcceptError::Busy)?;
        Ok(Slot { _permit: permit })
    }

    /// Validates `body`, read under the slot, passes its readings through `gate` and makes
    /// them durable; returns how many were accepted. The slot is held until the readings are in
    /// the WAL.
    pub async fn accept(
        &self,
        _slot: Slot,
        body: bytes::Bytes,
        gzip: bool,
        format: BodyFormat,
        gate: SharedGate,
    ) -> Result<usize, AcceptError> {
        let started = Instant::now();
        let config = self.config;
        let decoded =
            tokio::task::spawn_blocking(move || decode(&body, gzip, format, &config, &*gate))
                .await
                .map_err(|e| AcceptError::Decoder(join_failure(e)))??;
        let Some((payload, count)) = decoded else {
            return Ok(0);
        };
        self.append(payload, count, started).await
    }

    /// Makes readings converted from a foreign format (OTLP, a scrape) durable, after checking
    /// them against the same [`rules`] as our JSON: all or nothing, like a body. Returns how many
    /// were accepted. Refused (503) while the WAL backlog is over its limit. The readings are
    /// already in memory, so no slot is needed here; a receiver that reads a foreign body holds
    /// one (from [`Acceptor::admit`]) while it reads and converts it.
    pub async fn accept_readings(&self, readings: Vec<Reading>) -> Result<usize, AcceptError> {
        self.accept_readings_through(readings, gate::open()).await
    }

    /// [`Acceptor::accept_readings`] for readings a client sent (OTLP): they pass `gate` too,
    /// after the rules.
    pub async fn accept_readings_through(
        &self,
        readings: Vec<Reading>,
        gate: SharedGate,
    ) -> Result<usize, AcceptError> {
        self.check_backlog()?;
        let started = Instant::now();
        if readings.is_empty() {
            return Ok(0);
        }
        let now = TimestampMs::now();
        let problems = rules::check(&readings, &Window::at(now, self.config.retention_ms));
        if problems.total() > 0 {
            return Err(AcceptError::Parse(ParseError::Invalid(problems)));
        }
        gate.admit(&readings).map_err(|refusal| {
            refused(refusal, |refused| {
                let located = refused.iter().map(|(at, problem)| FieldProblem {
                    index: *at,
                    kind: None,
                    field: "service".into(),
                    problem: problem.clone(),
                });
                located.collect()
            })
        })?;
        let count = readings.len();
        let payload = encode(&Accepted { at: now, readings });
        self.append(payload, count, started).await
    }

    fn check_backlog(&self) -> Result<(), AcceptError> {
        if let Some(reason) = self.store_refusal() {
            return Err(AcceptError::StoreRefuses(reason));
        }
        let backlog_bytes = self.wal.stats().backlog_bytes;
        if backlog_bytes > self.config.limits.max_backlog_bytes {
            return Err(AcceptError::Backlog {
                backlog_bytes,
                limit_bytes: self.config.limits.max_backlog_bytes,
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

/// Why a blocking task did not return: its panic message, or that it was cancelled.
fn join_failure(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return error.to_string();
    }
    let panic = error.into_panic();
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Decompresses, parses and encodes; `None` when the body holds no readings.
fn decode(
    body: &[u8],
    gzip: bool,
    format: BodyFormat,
    config: &AcceptConfig,
    gate: &dyn gate::Gate,
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
    gate.admit(&readings).map_err(|refusal| {
        refused(refusal, |refused| {
            gate::locate(refused, &readings, format, text)
        })
    })?;
    let count = readings.len();
    Ok(Some((encode(&Accepted { at: now, readings }), count)))
}

/// The error of a refused batch, its readings located by `locate`.
fn refused(
    refusal: Refusal,
    locate: impl FnOnce(&[(usize, String)]) -> Vec<FieldProblem>,
) -> AcceptError {
    let details = match &refusal {
        Refusal::Forbidden { readings, .. } => locate(readings),
        Refusal::Limited { .. } => Vec::new(),
    };
    AcceptError::Refused { refusal, details }
}

/// Inflates every member of a gzip body, refusing to grow past `limit` bytes (a gzip bomb
/// stops there) and refusing bytes after the last member.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, AcceptError> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        // One member at a time, so that what follows a member is ours to judge: another
        // member, or trailing bytes (which `MultiGzDecoder` would pass over as a bad header).
        let mut member = flate2::bufread::GzDecoder::new(rest);
        let room = (limit + 1 - out.len()) as u64;
        (&mut member)
            .take(room)
            .read_to_end(&mut out)
            .map_err(|e| AcceptError::BadGzip(e.to_string()))?;
        if out.len() > limit {
            return Err(AcceptError::TooLarge { limit_bytes: limit });
        }
        rest = member.into_inner();
        if !rest.is_empty() && !rest.starts_with(&GZIP_MAGIC) {
            return Err(AcceptError::BadGzip(format!(
                "{} bytes after the end of the gzip data",
                rest.len()
            )));
        }
    }
    Ok(out)
}

/// The first two bytes of every gzip member (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

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

    #[test]
    fn every_gzip_member_is_read() {
        let two = [gzip(b"first\n"), gzip(b""), gzip(b"second\n")].concat();
        assert_eq!(gunzip(&two, 100).unwrap(), b"first\nsecond\n");
        // The limit holds over all members together.
        let big = [gzip(&[b'a'; 60]), gzip(&[b'b'; 60])].concat();
        assert!(matches!(
            gunzip(&big, 100),
            Err(AcceptError::TooLarge { .. })
        ));
    }

    #[test]
    fn bytes_after_the_gzip_data_are_refused() {
        for tail in [&b"garbage"[..], b"\0\0\0\0", b"\x1f", b"\x1f\x8b\x08"] {
            let body = [gzip(b"ok"), tail.to_vec()].concat();
            assert!(
                matches!(gunzip(&body, 100), Err(AcceptError::BadGzip(_))),
                "{tail:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_panic_while_decoding_is_a_server_failure_with_its_message() {
        let failure = tokio::task::spawn_blocking(|| -> () { panic!("index out of bounds") })
            .await
            .unwrap_err();
        assert_eq!(join_failure(failure), "index out of bounds");
    }
}
