//! Storage: the seam between ingest/query and the database.
//!
//! [`cql`] talks to Scylla or Cassandra. Errors say which operation failed and classify
//! themselves with [`StoreError::is_retryable`], never by string matching.

pub mod cql;

use thiserror::Error;

/// A failure of the storage backend.
#[derive(Debug, Error)]
pub enum StoreError {
    /// No contact point answered.
    #[error("cannot connect to the CQL cluster at {nodes}: {source}")]
    Connect {
        /// The contact points tried.
        nodes: String,
        /// The driver's reason.
        #[source]
        source: Box<scylla::errors::NewSessionError>,
    },
    /// A statement could not be prepared (usually: the schema is missing or old).
    #[error("cannot prepare `{statement}`: {source} (has `timebucket migrate up` run on this keyspace?)")]
    Prepare {
        /// The statement text.
        statement: String,
        /// The driver's reason.
        #[source]
        source: Box<scylla::errors::PrepareError>,
    },
    /// A statement failed on the cluster.
    #[error("{what} failed: {source}")]
    Execute {
        /// What we were doing.
        what: &'static str,
        /// The driver's reason.
        #[source]
        source: Box<scylla::errors::ExecutionError>,
    },
    /// A paged read failed part way.
    #[error("{what} failed while paging: {source}")]
    Paging {
        /// What we were reading.
        what: &'static str,
        /// The driver's reason.
        #[source]
        source: Box<scylla::errors::NextPageError>,
    },
    /// An answer did not have the expected shape.
    #[error("{what}: unexpected answer from the cluster: {reason}")]
    Decode {
        /// What we were reading.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The keyspace has no (or broken) deployment settings.
    #[error("keyspace `{keyspace}` has no usable timebucket settings ({reason}); run `timebucket migrate up` first")]
    Settings {
        /// The keyspace read.
        keyspace: String,
        /// What was wrong.
        reason: String,
    },
}

impl StoreError {
    /// True when trying again later may succeed (the cluster was unreachable, overloaded or
    /// timed out); false for errors that need a person (schema missing, bad answer).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Connect { .. } | StoreError::Execute { .. } | StoreError::Paging { .. }
        )
    }

    /// A failed statement, with what it was for.
    pub fn execute(what: &'static str, source: impl Into<scylla::errors::ExecutionError>) -> Self {
        StoreError::Execute {
            what,
            source: Box::new(source.into()),
        }
    }

    /// A statement that could not be prepared.
    pub fn prepare(statement: impl Into<String>, source: scylla::errors::PrepareError) -> Self {
        StoreError::Prepare {
            statement: statement.into(),
            source: Box::new(source),
        }
    }

    /// Wraps a decoding error of any driver type.
    pub fn decode(what: &'static str, reason: impl std::fmt::Display) -> Self {
        StoreError::Decode {
            what,
            reason: reason.to_string(),
        }
    }
}
