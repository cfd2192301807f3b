//! The Scylla / Cassandra backend.
//!
//! One [`scylla::client::session::Session`] per process, token-aware routing (on Scylla also
//! shard-aware), statements prepared once at start.

pub mod alerting;
pub mod keyspace;
mod reader;
pub mod security;
pub mod settings;
mod statements;
mod writer;

use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;

pub use keyspace::Keyspace;
pub use security::CqlSecurity;
pub use writer::CqlStore;

use super::StoreError;

/// How long to wait for a contact point before giving up on it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the cluster through `nodes` (`host:port` each), token-aware, without a keyspace.
pub async fn connect(nodes: &[String]) -> Result<Session, StoreError> {
    connect_with(nodes, &CqlSecurity::default()).await
}

/// [`connect`] with credentials and TLS.
pub async fn connect_with(nodes: &[String], security: &CqlSecurity) -> Result<Session, StoreError> {
    let policy = DefaultPolicy::builder().token_aware(true).build();
    let profile = ExecutionProfile::builder()
        .load_balancing_policy(policy)
        .request_timeout(Some(Duration::from_secs(30)))
        .build();
    security
        .apply(SessionBuilder::new())
        .known_nodes(nodes)
        .connection_timeout(CONNECT_TIMEOUT)
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .map_err(|source| StoreError::Connect {
            nodes: nodes.join(","),
            source: Box::new(source),
        })
}
