//! How the driver session talks to the cluster: consistency levels, retries and speculative
//! execution, each chosen on purpose.
//!
//! - **Consistency** (`--write-consistency`, `--read-consistency`, both `LOCAL_QUORUM` by
//!   default): a write is confirmed (and its WAL records released) once a majority of the
//!   replicas in the local data center hold it, and a read asks a majority, so with replication
//!   factor 3 every read sees every confirmed write while one replica per data center is down.
//!   With replication factor 1 (a development node) `LOCAL_QUORUM` is that one replica. `ANY` is
//!   refused: it confirms a write that no replica holds, only a hint, and the WAL would drop it.
//!   Serial levels are for lightweight transactions, which the service does not run.
//! - **Retries** ([`DefaultRetryPolicy`], for reads and writes): a request fails over to the
//!   next node when the one it went to was overloaded, bootstrapping, or lost its connection (every
//!   statement is idempotent, so resending is safe), and once when a coordinator found too few
//!   replicas alive (its view may be stale). Anything else goes back to the caller, whose own loop
//!   owns the waiting: the flusher retries with backoff, forever, while readings wait in the WAL.
//!   Not `DowngradingConsistencyRetryPolicy`: it would confirm a write at a weaker level than asked,
//!   silently breaking the read-your-writes promise above.
//! - **Speculative execution**: reads only, one extra attempt on another node after
//!   [`SessionConfig::READ_SPECULATION_DELAY`], so a stalled coordinator (a long GC pause, a node
//!   dying without closing its connections) costs a query that delay rather than the request
//!   timeout. Writes do not speculate: the flusher is not waiting on one request's latency (the
//!   WAL holds the data), a slow replica is already masked by the coordinator's quorum, and a
//!   second copy of every slow write would double the cluster's write work exactly when it is
//!   slow.
//!
//! The session's default profile is the read profile (reads run many kinds of statements); the
//! write profile goes on every write batch ([`SessionConfig`] → [`connect_with`]).

use std::sync::Arc;
use std::time::Duration;

use scylla::client::execution_profile::{ExecutionProfile, ExecutionProfileHandle};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::retry::DefaultRetryPolicy;
use scylla::policies::speculative_execution::SimpleSpeculativeExecutionPolicy;
use scylla::statement::Consistency;

use super::{security, CqlSecurity, CONNECT_TIMEOUT};
use crate::store::StoreError;

/// What one request may take before the driver gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The consistency levels of the service's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Level of every write.
    pub write_consistency: Consistency,
    /// Level of every read.
    pub read_consistency: Consistency,
}

impl SessionConfig {
    /// Default write level: a majority of the local data center's replicas.
    pub const DEFAULT_WRITE_CONSISTENCY: Consistency = Consistency::LocalQuorum;
    /// Default read level: a majority of the local data center's replicas, so a read overlaps
    /// every confirmed `LOCAL_QUORUM` write.
    pub const DEFAULT_READ_CONSISTENCY: Consistency = Consistency::LocalQuorum;
    /// How long a read waits for its coordinator before a second one is asked too: well above a
    /// healthy partition page read (milliseconds), below a request timeout.
    pub const READ_SPECULATION_DELAY: Duration = Duration::from_millis(300);
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            write_consistency: Self::DEFAULT_WRITE_CONSISTENCY,
            read_consistency: Self::DEFAULT_READ_CONSISTENCY,
        }
    }
}

/// What a consistency level is for: the levels each accepts differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `--write-consistency`.
    Write,
    /// `--read-consistency`.
    Read,
}

/// Every level, in the order the protocol numbers them.
const LEVELS: [Consistency; 11] = [
    Consistency::Any,
    Consistency::One,
    Consistency::Two,
    Consistency::Three,
    Consistency::Quorum,
    Consistency::All,
    Consistency::LocalQuorum,
    Consistency::EachQuorum,
    Consistency::LocalOne,
    Consistency::Serial,
    Consistency::LocalSerial,
];

/// The CQL name of `level` (`LOCAL_QUORUM`).
pub const fn level_name(level: Consistency) -> &'static str {
    match level {
        Consistency::Any => "ANY",
        Consistency::One => "ONE",
        Consistency::Two => "TWO",
        Consistency::Three => "THREE",
        Consistency::Quorum => "QUORUM",
        Consistency::All => "ALL",
        Consistency::LocalQuorum => "LOCAL_QUORUM",
        Consistency::EachQuorum => "EACH_QUORUM",
        Consistency::LocalOne => "LOCAL_ONE",
        Consistency::Serial => "SERIAL",
        Consistency::LocalSerial => "LOCAL_SERIAL",
    }
}

/// Parses a level name (any case, `-` for `_`) for `purpose`; the error says which levels fit.
pub fn parse_level(text: &str, purpose: Purpose) -> Result<Consistency, String> {
    let wanted = text.trim().to_ascii_uppercase().replace('-', "_");
    let level = LEVELS
        .into_iter()
        .find(|level| level_name(*level) == wanted);
    let why = match level {
        None => "is not a consistency level",
        Some(level) => match refusal(level, purpose) {
            None => return Ok(level),
            Some(why) => why,
        },
    };
    let accepted: Vec<&str> = LEVELS
        .into_iter()
        .filter(|level| refusal(*level, purpose).is_none())
        .map(level_name)
        .collect();
    Err(format!(
        "`{text}` {why}; use one of {}",
        accepted.join(", ")
    ))
}

/// Why `level` cannot serve `purpose`, if it cannot.
fn refusal(level: Consistency, purpose: Purpose) -> Option<&'static str> {
    match (level, purpose) {
        (Consistency::Any, _) => Some(
            "confirms a write that no replica holds (only a hint), so the WAL would drop readings \
             that may never be stored",
        ),
        (Consistency::Serial | Consistency::LocalSerial, _) => {
            Some("is for lightweight transactions, which the service does not run")
        }
        (Consistency::EachQuorum, Purpose::Read) => Some("applies to writes only"),
        _ => None,
    }
}

/// Connects through `nodes` (`host:port` each), token-aware, without a keyspace; returns the
/// session (its default profile reads at `config.read_consistency`) and the profile every write
/// must run with.
pub async fn connect_with(
    nodes: &[String],
    config: &SessionConfig,
) -> Result<(Session, ExecutionProfileHandle), StoreError> {
    connect_secured(nodes, config, &CqlSecurity::default()).await
}

/// [`connect_with`] with credentials and TLS.
pub async fn connect_secured(
    nodes: &[String],
    config: &SessionConfig,
    security: &CqlSecurity,
) -> Result<(Session, ExecutionProfileHandle), StoreError> {
    let reads = profile(config.read_consistency)
        .speculative_execution_policy(Some(Arc::new(SimpleSpeculativeExecutionPolicy {
            max_retry_count: 1,
            retry_interval: SessionConfig::READ_SPECULATION_DELAY,
        })))
        .build();
    let writes = profile(config.write_consistency)
        .speculative_execution_policy(None)
        .build();
    let builder = security
        .apply(SessionBuilder::new())
        .known_nodes(nodes)
        .connection_timeout(CONNECT_TIMEOUT)
        .default_execution_profile_handle(reads.into_handle());
    let building = builder.build();
    let what = format!("connecting to the CQL cluster at {}", nodes.join(","));
    let session = match tokio::time::timeout(SESSION_SETUP_TIMEOUT, building).await {
        Ok(built) => built.map_err(|source| {
            let what = match security::tls_failure(&source) {
                Some(reason) => format!("{what}: {}", security::tls_advice(reason)),
                None => what,
            };
            StoreError::unavailable(what, source)
        })?,
        Err(elapsed) => return Err(StoreError::unavailable(what, elapsed)),
    };
    Ok((session, writes.into_handle()))
}

/// The longest a whole session set-up may take. `CONNECT_TIMEOUT` bounds each TCP connect, but
/// not the CQL handshake and schema reads after it: a node (or a proxy in front of it) that
/// accepts a connection and then never answers held `serve`'s one attempt before serving for
/// good, and with it the HTTP listener (seen once in `outage::serve_starts_and_accepts_while_\
/// the_cluster_is_unreachable` under load). Past this the attempt counts as unavailable, like
/// a refused connection, and is retried in the background.
const SESSION_SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What both profiles share: token-aware routing, the default retry policy, the timeout.
fn profile(consistency: Consistency) -> scylla::client::execution_profile::ExecutionProfileBuilder {
    ExecutionProfile::builder()
        .load_balancing_policy(DefaultPolicy::builder().token_aware(true).build())
        .retry_policy(Arc::new(DefaultRetryPolicy::new()))
        .request_timeout(Some(REQUEST_TIMEOUT))
        .consistency(consistency)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_in_any_case_and_round_trip() {
        for level in LEVELS {
            if let Ok(parsed) = parse_level(level_name(level), Purpose::Write) {
                assert_eq!(parsed, level);
            }
        }
        assert_eq!(
            parse_level("local_quorum", Purpose::Read),
            Ok(Consistency::LocalQuorum)
        );
        assert_eq!(
            parse_level("local-one", Purpose::Read),
            Ok(Consistency::LocalOne)
        );
    }

    #[test]
    fn levels_that_break_a_promise_are_refused_with_the_reason() {
        let any = parse_level("ANY", Purpose::Write).unwrap_err();
        assert!(any.contains("no replica holds"), "{any}");
        assert!(any.ends_with(
            "use one of ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM, EACH_QUORUM, LOCAL_ONE"
        ));
        assert!(parse_level("SERIAL", Purpose::Read).is_err());
        assert!(parse_level("EACH_QUORUM", Purpose::Write).is_ok());
        let each = parse_level("EACH_QUORUM", Purpose::Read).unwrap_err();
        assert!(each.ends_with("use one of ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM, LOCAL_ONE"));
        let typo = parse_level("QUROUM", Purpose::Write).unwrap_err();
        assert!(
            typo.starts_with("`QUROUM` is not a consistency level"),
            "{typo}"
        );
    }

    #[test]
    fn the_defaults_are_local_quorum() {
        let config = SessionConfig::default();
        assert_eq!(config.write_consistency, Consistency::LocalQuorum);
        assert_eq!(config.read_consistency, Consistency::LocalQuorum);
    }
}
