//! `serve`'s access-control flags and their [`AccessConfig`]. The tokens themselves are
//! `[[token]]` tables in a TOML file (see [`crate::access::tokens_file`]); the flags say where,
//! and how the service is exposed.

use std::path::PathBuf;

use clap::Args;

use super::FlagError;
use crate::access::{tokens_file, AccessConfig, AllowedHosts, TlsFiles};

/// `timebucket serve` flags of access control.
#[derive(Debug, Clone, Args)]
pub struct AccessArgs {
    /// A TOML file whose `[[token]]` tables hold the tokens (by hash, from `timebucket token
    /// new`); set to the config file when it has such tables. Re-read on SIGHUP and
    /// `POST /-/reload`.
    #[arg(long, env = "TIMEBUCKET_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// A token with every scope kept in this file: made (random, mode 0600) at the first start,
    /// read at later ones. For containers; read it from the file.
    #[arg(long, env = "TIMEBUCKET_BOOTSTRAP_TOKEN_FILE")]
    pub bootstrap_token_file: Option<PathBuf>,
    /// Serve without tokens on an address beyond loopback: anyone who reaches it may write,
    /// read and reload.
    #[arg(long, env = "TIMEBUCKET_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// Comma-separated host names requests may name in `Host`, besides localhost, 127.0.0.1
    /// and ::1 (always allowed); `*` for any. Others get 421 (DNS rebinding defence).
    #[arg(long, env = "TIMEBUCKET_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Serve `/metrics` without a token (for a Prometheus that sends none).
    #[arg(long, env = "TIMEBUCKET_PUBLIC_METRICS")]
    pub public_metrics: bool,
    /// TLS certificate chain (PEM) of the HTTP and OTLP listeners; needs --tls-key. Re-read on
    /// SIGHUP and `POST /-/reload`.
    #[arg(long, env = "TIMEBUCKET_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "TIMEBUCKET_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

impl AccessArgs {
    /// The validated access settings; reads the tokens file.
    pub fn config(&self) -> Result<AccessConfig, FlagError> {
        let tokens = match &self.tokens_file {
            Some(path) => tokens_file::load(path)
                .map_err(|e| FlagError::new("--tokens-file", format!("is unusable: {e}")))?,
            None => Vec::new(),
        };
        let allowed_hosts = AllowedHosts::parse(&self.allowed_hosts)
            .map_err(|problem| FlagError::new("--allowed-hosts", problem))?;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            (Some(_), None) => return Err(FlagError::new("--tls-cert", "needs --tls-key")),
            (None, Some(_)) => return Err(FlagError::new("--tls-key", "needs --tls-cert")),
        };
        Ok(AccessConfig {
            tokens_file: self.tokens_file.clone(),
            tokens,
            bootstrap_token_file: self.bootstrap_token_file.clone(),
            insecure_no_auth: self.insecure_no_auth,
            allowed_hosts,
            public_metrics: self.public_metrics,
            tls,
        })
    }
}
