//! The OTLP receivers' listeners: bound before anything else opens (a taken port stops `serve`
//! at once), started once the acceptor exists, stopped with the main listener.
//!
//! OTLP/HTTP is served by the same hardened loop as the main API ([`super::http::serve`]:
//! header and body timeouts, the connection cap, the bounded drain); OTLP/gRPC by tonic, whose
//! graceful shutdown is bounded by the same drain deadline.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{http, stopped, HttpLimits, ServeError};
use crate::api::otlp::OtlpReceiver;
use crate::api::{self};
use crate::ingest::Acceptor;
use crate::model::TimestampMs;
use crate::telemetry::Metrics;

/// Where the OTLP receivers listen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtlpListen {
    /// OTLP/HTTP (`POST /v1/metrics`, conventionally port 4318).
    pub http: Option<SocketAddr>,
    /// OTLP/gRPC (`MetricsService/Export`, conventionally port 4317).
    pub grpc: Option<SocketAddr>,
}

/// The OTLP receivers' bound sockets, before the acceptor exists.
pub(super) struct OtlpListeners {
    started: TimestampMs,
    http: Option<TcpListener>,
    grpc: Option<TcpListener>,
}

impl OtlpListeners {
    /// Binds the configured addresses for a process started at `started`.
    pub(super) async fn bind(listen: OtlpListen, started: TimestampMs) -> Result<Self, ServeError> {
        Ok(Self {
            started,
            http: bind(listen.http, "OTLP/HTTP").await?,
            grpc: bind(listen.grpc, "OTLP/gRPC").await?,
        })
    }

    /// Starts the receivers; each stops when `stop` holds the drain deadline, and is done by it.
    pub(super) fn spawn(
        self,
        acceptor: &Acceptor,
        metrics: &Arc<Metrics>,
        limits: HttpLimits,
        stop: &watch::Receiver<Option<Instant>>,
    ) -> Result<Vec<JoinHandle<Result<(), ServeError>>>, ServeError> {
        let receiver = OtlpReceiver::new(acceptor.clone(), metrics.clone(), self.started);
        let mut tasks = Vec::new();
        if let Some(listener) = self.http {
            tracing::info!(address = %listener.local_addr()?, "OTLP/HTTP listening");
            let router = api::otlp::http::router(receiver.clone());
            let serve = http::serve(listener, router, limits, stopped(stop.clone()));
            tasks.push(tokio::spawn(async move { Ok(serve.await?) }));
        }
        if let Some(listener) = self.grpc {
            tracing::info!(address = %listener.local_addr()?, "OTLP/gRPC listening");
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let (deadline_tx, deadline_rx) = tokio::sync::oneshot::channel();
            let signal = {
                let stop = stop.clone();
                async move {
                    let _ = deadline_tx.send(stopped(stop).await);
                }
            };
            let serve = tonic::transport::Server::builder()
                .add_service(api::otlp::grpc::MetricsService::new(receiver))
                .serve_with_incoming_shutdown(incoming, signal);
            tasks.push(tokio::spawn(async move {
                tokio::pin!(serve);
                tokio::select! {
                    outcome = &mut serve => Ok(outcome?),
                    Ok(deadline) = deadline_rx => {
                        match tokio::time::timeout_at(deadline, serve).await {
                            Ok(outcome) => Ok(outcome?),
                            Err(_) => {
                                tracing::warn!("OTLP/gRPC calls still running at the shutdown deadline; dropped");
                                Ok(())
                            }
                        }
                    }
                }
            }));
        }
        Ok(tasks)
    }
}

async fn bind(
    address: Option<SocketAddr>,
    what: &'static str,
) -> Result<Option<TcpListener>, ServeError> {
    let Some(address) = address else {
        return Ok(None);
    };
    TcpListener::bind(address)
        .await
        .map(Some)
        .map_err(|source| ServeError::Listen {
            address,
            what,
            source,
        })
}
