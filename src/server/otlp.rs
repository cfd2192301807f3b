//! The OTLP receivers' listeners: bound before anything else opens (a taken port stops `serve`
//! at once), started once the acceptor exists, stopped with the main listener.
//!
//! OTLP/HTTP is served by the same hardened loop as the main API ([`super::http::serve`]:
//! header and body timeouts, the connection cap, the bounded drain); OTLP/gRPC by tonic, whose
//! graceful shutdown is bounded by the same drain deadline. Both are behind access control and,
//! with `--tls-cert`, TLS: for gRPC each handshake runs in a task of its own, bounded by the
//! header timeout, and only finished ones reach tonic.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use super::{guard, http, stopped, HttpLimits, ServeError};
use crate::access::{Access, ServerTls};
use crate::api::otlp::OtlpReceiver;
use crate::api::{self};
use crate::ingest::Acceptor;
use crate::model::TimestampMs;
use crate::telemetry::Metrics;

/// Finished TLS handshakes waiting for tonic to take them.
const HANDSHAKES_WAITING: usize = 64;
/// How long accepting pauses after an error (out of descriptors, most likely).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

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

    /// Starts the receivers behind `access` (over TLS when given); each stops when `stop`
    /// holds the drain deadline, and is done by it.
    pub(super) fn spawn(
        self,
        acceptor: &Acceptor,
        metrics: &Arc<Metrics>,
        limits: HttpLimits,
        (access, tls): (&Access, Option<&ServerTls>),
        stop: &watch::Receiver<Option<Instant>>,
    ) -> Result<Vec<JoinHandle<Result<(), ServeError>>>, ServeError> {
        let receiver = OtlpReceiver::new(acceptor.clone(), metrics.clone(), self.started);
        let mut tasks = Vec::new();
        if let Some(listener) = self.http {
            tracing::info!(address = %listener.local_addr()?, "OTLP/HTTP listening");
            let router = api::otlp::http::router(receiver.clone(), access.clone());
            let tls = guard::acceptor(tls, guard::HTTP1);
            let serve = http::serve(listener, router, limits, tls, stopped(stop.clone()));
            tasks.push(tokio::spawn(async move { Ok(serve.await?) }));
        }
        if let Some(listener) = self.grpc {
            tracing::info!(address = %listener.local_addr()?, "OTLP/gRPC listening");
            let (deadline_tx, deadline_rx) = tokio::sync::oneshot::channel();
            let signal = {
                let stop = stop.clone();
                async move {
                    let _ = deadline_tx.send(stopped(stop).await);
                }
            };
            let service = api::otlp::grpc::MetricsService::new(receiver, access.clone());
            let router = tonic::transport::Server::builder().add_service(service);
            let serve: BoxFuture<'static, Result<(), tonic::transport::Error>> = match tls {
                None => {
                    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                    Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
                }
                Some(tls) => {
                    let handshakes = limits.header_read_timeout;
                    let incoming = tls_incoming(listener, tls.acceptor(guard::H2), handshakes);
                    Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
                }
            };
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

/// TLS connections for tonic: accepts on `listener`, runs each handshake in its own task within
/// `timeout`, and yields the connections whose handshake finished. Ends when tonic drops it.
fn tls_incoming(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    timeout: Duration,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (ready, incoming) = mpsc::channel(HANDSHAKES_WAITING);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = ready.closed() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::debug!(%error, "OTLP/gRPC: accepting a connection failed");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            };
            let (acceptor, ready) = (acceptor.clone(), ready.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = ready.send(Ok(tls)).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%error, "OTLP/gRPC: TLS handshake failed"),
                    Err(_) => tracing::debug!("OTLP/gRPC: TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(incoming)
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
