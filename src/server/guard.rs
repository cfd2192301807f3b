//! `serve`'s access control wiring: the posture check and the TLS files before anything opens,
//! then the shared [`Access`] state and its reloads (tokens, certificate) on the reload hub.

use std::net::SocketAddr;

use tokio_rustls::TlsAcceptor;

use super::{ServeConfig, ServeError};
use crate::access::{self, bootstrap, Access, AccessError, ServerTls, TokenSpec};
use crate::model::BucketWidth;
use crate::reload::ReloadHub;
use crate::telemetry::Metrics;

/// ALPN of the HTTP/1 listeners.
pub(super) const HTTP1: &[&[u8]] = &[b"http/1.1"];
/// ALPN of OTLP/gRPC.
pub(super) const H2: &[&[u8]] = &[b"h2"];

/// What `serve` reads for access control before anything opens.
pub(super) struct Prepared {
    /// The bootstrap token, when `--bootstrap-token-file` is given.
    pub bootstrap: Option<TokenSpec>,
    /// The TLS setup, when `--tls-cert` is given.
    pub tls: Option<ServerTls>,
}

/// Makes or reads the bootstrap token, checks the posture of `config` on `main` (and the OTLP
/// addresses) and reads its TLS files: each stops the start before the WAL or the store is
/// opened.
pub(super) fn prepare(config: &ServeConfig, main: SocketAddr) -> Result<Prepared, ServeError> {
    let addresses: Vec<SocketAddr> = [Some(main), config.otlp.http, config.otlp.grpc]
        .into_iter()
        .flatten()
        .collect();
    let bootstrap = config
        .access
        .bootstrap_token_file
        .as_deref()
        .map(bootstrap::load_or_create)
        .transpose()
        .map_err(AccessError::from)?;
    access::check_posture(&config.access, bootstrap.as_ref(), &addresses)?;
    let tls = config
        .access
        .tls
        .as_ref()
        .map(ServerTls::load)
        .transpose()?;
    let wide = addresses.iter().any(|a| !a.ip().is_loopback());
    let tokens = !config.access.tokens.is_empty() || bootstrap.is_some();
    if wide && tls.is_none() && tokens {
        tracing::warn!(
            "tokens travel in plain text: serving beyond loopback without --tls-cert (fine behind \
             a proxy that terminates TLS on the same host)"
        );
    }
    if config.access.insecure_no_auth && !tokens && wide {
        tracing::warn!(
            "--insecure-no-auth: anyone who reaches the port may write, read and reload"
        );
    }
    Ok(Prepared { bootstrap, tls })
}

/// The access state, with its reloads subscribed to `reload`.
pub(super) fn start(
    config: &ServeConfig,
    prepared: &Prepared,
    metrics: std::sync::Arc<Metrics>,
    width: BucketWidth,
    reload: &ReloadHub,
) -> Access {
    let tls = prepared.tls.as_ref();
    let access = Access::new(&config.access, prepared.bootstrap.clone(), metrics, width);
    tracing::info!(
        tokens = access.token_names().len(),
        tls = tls.is_some(),
        hosts = ?access.hosts(),
        "access control"
    );
    if config.access.tokens_file.is_some() {
        let access = access.clone();
        reload.subscribe("tokens", move || {
            let outcome = access.reload();
            async move { Ok(outcome?) }
        });
    }
    if let Some(tls) = tls.cloned() {
        reload.subscribe("tls", move || {
            let outcome = tls.reload();
            async move { Ok(outcome?) }
        });
    }
    access
}

/// The acceptor of `protocols`, when TLS is on.
pub(super) fn acceptor(tls: Option<&ServerTls>, protocols: &[&[u8]]) -> Option<TlsAcceptor> {
    tls.map(|t| t.acceptor(protocols))
}
