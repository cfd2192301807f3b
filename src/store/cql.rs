//! The Scylla / Cassandra backend.
//!
//! One [`scylla::client::session::Session`] per process, token-aware routing (on Scylla also
//! shard-aware), statements prepared once at start; consistency, retries and speculative
//! execution are chosen in [`session`].

pub mod alerting;
pub mod keyspace;
mod reader;
pub mod session;
pub mod settings;
mod statements;
mod writer;

use std::time::Duration;

use scylla::client::session::Session;

pub use keyspace::Keyspace;
pub use session::SessionConfig;
pub use writer::CqlStore;

use super::StoreError;

/// How long to wait for a contact point before giving up on it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the cluster through `nodes` (`host:port` each), token-aware, without a keyspace,
/// at the default consistency levels (`migrate` and the tools; `serve` uses
/// [`CqlStore::open_with`]).
pub async fn connect(nodes: &[String]) -> Result<Session, StoreError> {
    session::connect_with(nodes, &SessionConfig::default())
        .await
        .map(|(session, _writes)| session)
}
