//! The OTLP metrics receivers: OTLP/HTTP ([`http`], `POST /v1/metrics`, protobuf or JSON) and
//! OTLP/gRPC ([`grpc`], `MetricsService/Export`), each on its own address, sharing one
//! [`OtlpReceiver`].
//!
//! ```text
//!  body ─► (gunzip) ─► decode ─► Converter (trackers) ─► Acceptor::accept_readings ─► 200 / OK
//!                         │ bad protobuf/JSON: 400 / INVALID_ARGUMENT      │ refused: trackers undone,
//!                         ▼                                                ▼ 429·503 / RESOURCE_EXHAUSTED·UNAVAILABLE
//! ```
//!
//! Guarantees, as for our JSON ingest: readings pass the same rules and are durable in the WAL
//! (synced) before the answer is a success; past the backlog limit nothing is taken (503 /
//! UNAVAILABLE with a retry delay, which OTel exporters honour); at most `max_concurrent`
//! bodies are decoded at once across both receivers (429 / RESOURCE_EXHAUSTED). Decoding and
//! conversion run on the blocking pool, so a large body never stalls the async workers.

pub mod grpc;
pub mod http;

use std::collections::HashSet;
use std::io::Read;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::foreign::otlp::{
    self, Conversion, Converter, DecodeError, ExportMetricsServiceRequest,
    ExportMetricsServiceResponse, Rejections,
};
use crate::ingest::accept::Slot;
use crate::ingest::gate::{Refusal, SharedGate};
use crate::ingest::{AcceptError, Acceptor, ParseError, Window};
use crate::model::TimestampMs;
use crate::telemetry::Metrics;
use crate::wal::WalError;

/// How long an exporter should wait when every slot is taken.
const BUSY_RETRY: Duration = Duration::from_secs(1);
/// How long an exporter should wait when the store is behind.
const BACKLOG_RETRY: Duration = Duration::from_secs(5);
/// Distinct metric names `/metrics` counts rejections under; later names count as `other`, so
/// senders cannot grow our own metrics without bound.
const MAX_REJECTED_NAMES: usize = 200;

/// Why an export was not taken. Each cause has one HTTP status and one gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The body is not an export request.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The body could not be read to its end.
    #[error("cannot read the body: {0}")]
    Read(String),
    /// `Content-Encoding: gzip` but not gzip.
    #[error("body is not valid gzip: {0}")]
    BadGzip(String),
    /// The (decompressed) body is over the limit.
    #[error("body is larger than {limit_bytes} bytes")]
    TooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// Content-Type or Content-Encoding not supported.
    #[error("{0}")]
    Unsupported(String),
    /// The acceptor refused the readings.
    #[error("{0}")]
    Accept(#[from] AcceptError),
    /// The conversion task failed (a bug): nothing was taken.
    #[error("the OTLP conversion failed: {0}")]
    Internal(String),
}

/// The classes of failure an exporter must tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The request is wrong; retrying cannot help.
    Invalid,
    /// Too large; retrying cannot help (send smaller batches).
    TooLarge,
    /// Content type or encoding we do not speak.
    Unsupported,
    /// Too many requests right now (or the token is over a limit); retry after the delay.
    Busy,
    /// The token may not write (some of) these readings; retrying cannot help.
    Forbidden,
    /// We cannot take data now; retry after the delay.
    Unavailable,
    /// Our fault.
    Internal,
}

impl OtlpError {
    /// The class of this failure.
    pub fn class(&self) -> Class {
        match self {
            OtlpError::Decode(_) | OtlpError::Read(_) | OtlpError::BadGzip(_) => Class::Invalid,
            OtlpError::TooLarge { .. } => Class::TooLarge,
            OtlpError::Unsupported(_) => Class::Unsupported,
            OtlpError::Internal(_) => Class::Internal,
            OtlpError::Accept(e) => match e {
                AcceptError::Busy => Class::Busy,
                AcceptError::Backlog { .. } | AcceptError::StoreRefuses(_) => Class::Unavailable,
                AcceptError::TooLarge { .. }
                | AcceptError::Wal(WalError::RecordTooLarge { .. }) => Class::TooLarge,
                AcceptError::BadGzip(_) | AcceptError::Parse(_) => Class::Invalid,
                AcceptError::Wal(_) => Class::Unavailable,
                AcceptError::Decoder(_) => Class::Internal,
                AcceptError::Refused {
                    refusal: Refusal::Forbidden { .. },
                    ..
                } => Class::Forbidden,
                AcceptError::Refused { .. } => Class::Busy,
            },
        }
    }

    /// How long the exporter should wait before retrying; `None` when it should not retry.
    pub fn retry_after(&self) -> Option<Duration> {
        if let OtlpError::Accept(AcceptError::Refused {
            refusal: Refusal::Limited { retry_after, .. },
            ..
        }) = self
        {
            return Some(*retry_after);
        }
        match self.class() {
            Class::Busy => Some(BUSY_RETRY),
            Class::Unavailable => Some(BACKLOG_RETRY),
            _ => None,
        }
    }

    /// The message for the exporter (the problems of invalid readings listed).
    pub fn message(&self) -> String {
        match self {
            OtlpError::Accept(AcceptError::Parse(ParseError::Invalid(problems))) => {
                let listed: Vec<String> = problems
                    .iter()
                    .map(|p| format!("{}: {}", p.field, p.problem))
                    .collect();
                format!(
                    "invalid readings, nothing was accepted: {}",
                    listed.join("; ")
                )
            }
            OtlpError::Accept(AcceptError::Wal(e @ WalError::RecordTooLarge { .. })) => {
                format!("the request is too large for one WAL record ({e}); send smaller batches")
            }
            other => other.to_string(),
        }
    }
}

/// State shared by both OTLP receivers.
#[derive(Clone)]
pub struct OtlpReceiver {
    converter: Arc<Converter>,
    acceptor: Acceptor,
    metrics: Arc<Metrics>,
    rejected_names: Arc<Mutex<HashSet<String>>>,
}

/// A request body as it arrived.
pub enum Encoded {
    /// Protobuf bytes.
    Protobuf(bytes::Bytes),
    /// OTLP/JSON bytes.
    Json(bytes::Bytes),
}

impl OtlpReceiver {
    /// A receiver feeding `acceptor`, for a process started at `started` (see
    /// [`Converter::new`]).
    pub fn new(acceptor: Acceptor, metrics: Arc<Metrics>, started: TimestampMs) -> Self {
        Self {
            converter: Arc::new(Converter::new(started)),
            acceptor,
            metrics,
            rejected_names: Arc::default(),
        }
    }

    /// Largest body, compressed or not, in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.acceptor.config().limits.max_body_bytes
    }

    /// Takes one of the ingest slots our JSON also uses (refusing while the WAL backlog is over
    /// its limit): call it before reading the body, so OTLP bodies share the same memory bound.
    pub async fn admit(&self) -> Result<Slot, OtlpError> {
        Ok(self.acceptor.admit().await?)
    }

    /// Decodes, converts and makes durable one export request from `peer`, its readings passed
    /// through `gate`; the answer carries the rejected points as partial success.
    pub async fn export(
        &self,
        slot: Slot,
        body: Encoded,
        gzip: bool,
        peer: IpAddr,
        gate: SharedGate,
    ) -> Result<ExportMetricsServiceResponse, OtlpError> {
        let converter = self.converter.clone();
        let limit = self.max_body_bytes();
        let window = Window::at(TimestampMs::now(), self.acceptor.config().retention_ms);
        let conversion = tokio::task::spawn_blocking(move || {
            let request = decode(body, gzip, limit)?;
            Ok::<_, OtlpError>(converter.convert(&request, peer, &window))
        })
        .await
        .map_err(|e| OtlpError::Internal(e.to_string()))??;
        let Conversion {
            readings,
            rejected,
            pending,
        } = conversion;
        let accepted = self.acceptor.accept_readings_through(readings, gate).await;
        drop(slot);
        if let Err(error) = accepted {
            self.converter.undo(pending);
            return Err(error.into());
        }
        drop(pending);
        self.count_rejections(&rejected);
        Ok(otlp::response(&rejected))
    }

    fn count_rejections(&self, rejected: &Rejections) {
        if rejected.is_empty() {
            return;
        }
        let mut known = self
            .rejected_names
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (name, points) in &rejected.by_metric {
            let label = if known.contains(name) || known.len() < MAX_REJECTED_NAMES {
                known.insert(name.clone());
                name.clone()
            } else {
                "other".to_owned()
            };
            self.metrics
                .otlp_rejected_points
                .get_or_create(&[("metric", label)])
                .inc_by(*points);
        }
    }

    /// Counts one answered request.
    fn count_request(&self, transport: &'static str, status: &'static str) {
        self.metrics
            .otlp_requests
            .get_or_create(&[("transport", transport), ("status", status)])
            .inc();
    }
}

fn decode(
    body: Encoded,
    gzip: bool,
    limit: usize,
) -> Result<ExportMetricsServiceRequest, OtlpError> {
    let (bytes, json) = match body {
        Encoded::Protobuf(b) => (b, false),
        Encoded::Json(b) => (b, true),
    };
    let inflated;
    let raw: &[u8] = if gzip {
        inflated = gunzip(&bytes, limit)?;
        &inflated
    } else {
        &bytes
    };
    Ok(if json {
        otlp::decode_json(raw)?
    } else {
        otlp::decode_protobuf(raw)?
    })
}

/// Inflates a gzip body, refusing to grow past `limit` bytes (a gzip bomb stops there).
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, OtlpError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| OtlpError::BadGzip(e.to_string()))?;
    if out.len() > limit {
        return Err(OtlpError::TooLarge { limit_bytes: limit });
    }
    Ok(out)
}
