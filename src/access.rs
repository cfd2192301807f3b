//! Access control: who may write and read what, over which names, on which connections.
//!
//! **Threat model.** timebucket listens on a network where not every client is trusted: any
//! process that reaches the port could write readings for any service, read every service, and
//! reload the configuration; a web page in a developer's browser can reach a loopback port
//! through DNS rebinding; a client can flood the store with readings or with series. Access
//! control answers each: tokens with scopes and service lists, a `Host` allowlist, TLS, and
//! per-token limits. It does not defend against someone who can read the config file or the
//! process's memory, nor against a token holder within its own scope.
//!
//! ```text
//!  request ─► Host allowed? ──no──► 421
//!               │ yes
//!               ▼
//!  endpoint public (/healthz, /readyz, assets, /metrics with --public-metrics)? ──► handler
//!               │ no
//!               ▼
//!  Authorization: Bearer <token> (Basic on GET) ─► sha256 ─► constant-time match ──none──► 401
//!               │ the token's Caller
//!               ▼
//!  scope of the endpoint? service named in it covered? ──no──► 403
//!               │ yes: the Caller goes into the request's extensions
//!               ▼
//!  handler ─► queries and PromQL see only its services; ingest passes each batch through it
//!             (services, rate, series) ──refused──► 403 / 429, nothing accepted
//! ```
//!
//! Invariants: a token is never stored (only its SHA-256), never logged and never answered;
//! without tokens the service is open only when it listens on loopback addresses or the
//! operator said `--insecure-no-auth` ([`check_posture`]); a reload never turns access control
//! off (a tokens file without tokens is refused while tokens are in force).

pub mod bootstrap;
mod caller;
pub mod denial;
pub mod hosts;
pub mod layer;
pub mod limits;
pub mod tls;
pub mod token;
pub mod tokens_file;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use axum::http::{header, HeaderMap};
use base64::Engine as _;

pub use caller::Caller;
pub use denial::Denial;
pub use hosts::AllowedHosts;
use limits::LimitState;
pub use tls::{ServerTls, TlsError, TlsFiles};
pub use token::{Scope, Scopes, Token};
use token::{TokenHash, MAX_CREDENTIAL_BYTES};
pub use tokens_file::{TokenLimits, TokenSpec, TokensError};

use crate::model::BucketWidth;
use crate::telemetry::Metrics;

/// The access settings of `serve`, validated.
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    /// Where the tokens were read from (re-read on reload); `None`: no tokens file.
    pub tokens_file: Option<PathBuf>,
    /// The configured tokens.
    pub tokens: Vec<TokenSpec>,
    /// Where the bootstrap token is kept (made at the first start), if any.
    pub bootstrap_token_file: Option<PathBuf>,
    /// Serve without tokens on a non-loopback address.
    pub insecure_no_auth: bool,
    /// The `Host` names served.
    pub allowed_hosts: AllowedHosts,
    /// `/metrics` without a token.
    pub public_metrics: bool,
    /// TLS certificate and key for the HTTP listeners; `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// Why `serve` refuses its access settings.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Listening beyond loopback without tokens, and without `--insecure-no-auth`.
    #[error(
        "refusing to serve on {address} without tokens: anyone who reaches it could write and \
         read every service. Add tokens (`timebucket token new`, README \"Security\") or pass \
         --insecure-no-auth"
    )]
    Insecure {
        /// The first address beyond loopback.
        address: SocketAddr,
    },
    /// The tokens file cannot be used.
    #[error(transparent)]
    Tokens(#[from] TokensError),
    /// The bootstrap token cannot be made or read.
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::BootstrapError),
    /// A reload would leave no token.
    #[error("the tokens file {} holds no token now; keeping the running tokens (a reload never turns access control off)", path.display())]
    WouldOpen {
        /// The file.
        path: PathBuf,
    },
}

/// Refuses to serve on a non-loopback address without tokens (configured, or the `bootstrap`
/// one) unless `--insecure-no-auth`.
pub fn check_posture(
    config: &AccessConfig,
    bootstrap: Option<&TokenSpec>,
    addresses: &[SocketAddr],
) -> Result<(), AccessError> {
    if !config.tokens.is_empty() || bootstrap.is_some() || config.insecure_no_auth {
        return Ok(());
    }
    match addresses.iter().find(|a| !a.ip().is_loopback()) {
        Some(address) => Err(AccessError::Insecure { address: *address }),
        None => Ok(()),
    }
}

/// One configured token and its caller.
struct Entry {
    hash: TokenHash,
    spec: TokenSpec,
    caller: Caller,
}

/// The access state shared by every listener; cheap to clone.
#[derive(Clone)]
pub struct Access {
    inner: Arc<Inner>,
}

struct Inner {
    tokens: RwLock<Arc<Vec<Entry>>>,
    tokens_file: Option<PathBuf>,
    /// The bootstrap token, kept across reloads.
    bootstrap: Option<TokenSpec>,
    hosts: AllowedHosts,
    public_metrics: bool,
    anonymous: Caller,
    width: BucketWidth,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("tokens", &self.token_names())
            .field("hosts", &self.inner.hosts)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// The access state of `config` and the `bootstrap` token, counting into `metrics`, for a
    /// store of buckets `width` wide.
    pub fn new(
        config: &AccessConfig,
        bootstrap: Option<TokenSpec>,
        metrics: Arc<Metrics>,
        width: BucketWidth,
    ) -> Self {
        let inner = Inner {
            tokens: RwLock::default(),
            tokens_file: config.tokens_file.clone(),
            bootstrap,
            hosts: config.allowed_hosts.clone(),
            public_metrics: config.public_metrics,
            anonymous: Caller::anonymous(metrics.clone(), width),
            width,
            metrics,
        };
        let access = Self {
            inner: Arc::new(inner),
        };
        access.install(config.tokens.clone());
        access
    }

    /// Open access for tests and for services without tokens on loopback.
    pub fn open(metrics: Arc<Metrics>, width: BucketWidth) -> Self {
        Self::new(&AccessConfig::default(), None, metrics, width)
    }

    /// True while tokens are in force.
    pub fn enforcing(&self) -> bool {
        !self.entries().is_empty()
    }

    /// The names of the configured tokens.
    pub fn token_names(&self) -> Vec<String> {
        self.entries().iter().map(|e| e.spec.name.clone()).collect()
    }

    /// The `Host` allowlist.
    pub fn hosts(&self) -> &AllowedHosts {
        &self.inner.hosts
    }

    /// True when `/metrics` needs no token.
    pub fn public_metrics(&self) -> bool {
        self.inner.public_metrics
    }

    /// Counts a refusal.
    pub fn count(&self, denial: &Denial) {
        self.inner.metrics.access.deny(denial.reason());
    }

    /// The caller of a request with `headers`: the anonymous caller while no token is
    /// configured, else the token's. `basic` accepts `Authorization: Basic` (the password, or
    /// the user name when the password is empty, is the token): browsers send it for pages, and
    /// only for reads, so a cross-site form cannot use it to write.
    pub fn authenticate(&self, headers: &HeaderMap, basic: bool) -> Result<Caller, Denial> {
        let entries = self.entries();
        if entries.is_empty() {
            return Ok(self.inner.anonymous.clone());
        }
        let credential = credential(headers, basic)?;
        let presented = TokenHash::of(&credential);
        // Every entry is compared, so the time taken says nothing about which one matched.
        let mut found = None;
        for entry in entries.iter() {
            if entry.hash.matches(&presented) {
                found = Some(entry.caller.clone());
            }
        }
        found.ok_or(Denial::UnknownToken)
    }

    /// Re-reads the tokens file; the running tokens stay when it is refused. A token whose
    /// name and limits are unchanged keeps its limit state.
    pub fn reload(&self) -> Result<String, AccessError> {
        let Some(path) = &self.inner.tokens_file else {
            return Ok("no tokens file".into());
        };
        let specs = tokens_file::load(path)?;
        if specs.is_empty() && self.inner.bootstrap.is_none() && self.enforcing() {
            return Err(AccessError::WouldOpen { path: path.clone() });
        }
        let count = specs.len();
        self.install(specs);
        Ok(format!("{count} token(s)"))
    }

    fn install(&self, specs: Vec<TokenSpec>) {
        let old = self.entries();
        let entries: Vec<Entry> = specs
            .into_iter()
            .chain(self.inner.bootstrap.clone())
            .map(|spec| {
                let kept = old
                    .iter()
                    .find(|e| e.spec.name == spec.name)
                    .and_then(|e| e.caller.limit_state())
                    .filter(|state| state.limits() == spec.limits)
                    .cloned();
                let limits = kept.unwrap_or_else(|| Arc::new(LimitState::new(spec.limits)));
                let caller = Caller::token(
                    spec.name.clone(),
                    spec.scopes.clone(),
                    spec.services.clone(),
                    limits,
                    self.inner.width,
                    self.inner.metrics.clone(),
                );
                Entry {
                    hash: spec.hash.clone(),
                    spec,
                    caller,
                }
            })
            .collect();
        *self
            .inner
            .tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(entries);
    }

    fn entries(&self) -> Arc<Vec<Entry>> {
        self.inner
            .tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The token in `Authorization`.
fn credential(headers: &HeaderMap, basic: bool) -> Result<String, Denial> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(Denial::MissingToken)?;
    if values.next().is_some() {
        return Err(Denial::MalformedToken("more than one Authorization header"));
    }
    if value.len() > MAX_CREDENTIAL_BYTES {
        return Err(Denial::MalformedToken("too long"));
    }
    let value = value
        .to_str()
        .map_err(|_| Denial::MalformedToken("not ASCII"))?;
    let (scheme, rest) = value
        .trim()
        .split_once(' ')
        .ok_or(Denial::MalformedToken("no scheme"))?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        if !basic {
            return Err(Denial::MalformedToken("Basic is accepted for GET only"));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(Denial::MalformedToken(
                "Basic credentials are not base64 user:password",
            ))?;
        let (user, password) = decoded.split_once(':').ok_or(Denial::MalformedToken(
            "Basic credentials are not user:password",
        ))?;
        let token = if password.is_empty() { user } else { password };
        return Ok(token.to_owned());
    }
    Err(Denial::MalformedToken("not a Bearer token"))
}

#[cfg(test)]
mod tests;
