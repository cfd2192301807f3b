//! The Scylla / Cassandra backend.
//!
//! One [`scylla::client::session::Session`] per process, token-aware routing (on Scylla also
//! shard-aware), statements prepared once at start; consistency, retries and speculative
//! execution are chosen in [`session`].

pub mod alerting;
pub mod deferred;
pub mod keyspace;
mod reader;
mod rollup;
mod row;
pub mod security;
pub mod session;
pub mod settings;
mod statements;
mod writer;

use std::time::Duration;

use scylla::client::session::Session;

pub use keyspace::Keyspace;
pub use rollup::per_code::{copy_per_code_rollups, Copied};
pub use rollup::rollup_coverage_name;
pub use security::CqlSecurity;
pub use session::SessionConfig;
pub use writer::CqlStore;

use scylla::errors::{DbError, ExecutionError, PrepareError, RequestAttemptError};

use super::StoreError;

/// How long to wait for a contact point before giving up on it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the cluster through `nodes` (`host:port` each), token-aware, without a keyspace,
/// at the default consistency levels (`migrate` and the tools; `serve` uses
/// [`CqlStore::open_with`]).
pub async fn connect(nodes: &[String]) -> Result<Session, StoreError> {
    connect_as(nodes, &CqlSecurity::default()).await
}

/// [`connect`] with credentials and TLS.
pub async fn connect_as(nodes: &[String], security: &CqlSecurity) -> Result<Session, StoreError> {
    session::connect_secured(nodes, &SessionConfig::default(), security)
        .await
        .map(|(session, _writes)| session)
}

/// Whether the node refused a statement for what it is (syntax, an invalid value or query, a
/// missing table): running it again will fail the same way.
fn refused(error: &RequestAttemptError) -> bool {
    match error {
        RequestAttemptError::SerializationError(_)
        | RequestAttemptError::CqlRequestSerialization(_) => true,
        RequestAttemptError::DbError(db, _) => matches!(
            db,
            DbError::SyntaxError
                | DbError::Invalid
                | DbError::AlreadyExists { .. }
                | DbError::FunctionFailure { .. }
                | DbError::ProtocolError
        ),
        _ => false,
    }
}

/// The driver's errors in the store's classes: what the node refused for what it is is
/// rejected; everything else (no connection, timeouts, overload, too few replicas) is
/// unavailable, and retried.
impl StoreError {
    /// A failed statement, with what it was for.
    pub fn execute(what: &'static str, source: impl Into<ExecutionError>) -> Self {
        let source = source.into();
        let permanent = match &source {
            ExecutionError::BadQuery(_) => true,
            ExecutionError::LastAttemptError(attempt) => refused(attempt),
            _ => false,
        };
        if permanent {
            StoreError::rejected(what, source)
        } else {
            StoreError::unavailable(what, source)
        }
    }

    /// A statement that could not be prepared: refused (usually the schema is missing or old)
    /// unless no node could be asked.
    pub fn prepare(statement: impl Into<String>, source: PrepareError) -> Self {
        let what = format!(
            "preparing `{}` (has `timebucket migrate up` run on this keyspace?)",
            statement.into()
        );
        match &source {
            PrepareError::ConnectionPoolError(_) => StoreError::unavailable(what, source),
            _ => StoreError::rejected(what, source),
        }
    }
}
