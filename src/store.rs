//! Storage: the seam between ingest/query and the database.
//!
//! [`Store`] is what ingest and queries need from a backend; [`cql`] implements it for Scylla and
//! Cassandra, [`embedded`] on a local LSM-tree. [`batch`] groups readings the way every backend
//! writes them; [`read`] holds the partition-level, paged read requests every backend answers.
//!
//! Invariant: every write is idempotent (rows are keyed by the reading's fixed id, latest rows are
//! written with the reading's own time as write timestamp), so a retry or a WAL replay after a
//! partial failure leaves the same data as one clean write.
//!
//! Errors say which operation failed and classify themselves with
//! [`StoreError::is_retryable`], never by string matching.

pub mod alerting;
pub mod batch;
pub mod cql;
pub mod embedded;
pub mod read;

use std::future::Future;

use thiserror::Error;

pub use batch::{PartitionKey, SeriesEntry, SeriesSeen, WriteBatch};
pub use read::{Order, PageRequest, ReadingKey};

use crate::model::{ApiReading, HostReading, Seq, ServiceName, Settings, TimeBucket};

/// A storage backend.
pub trait Store: Send + Sync + 'static {
    /// The deployment settings (bucket width, shards, retention) the data is laid out with.
    fn settings(&self) -> &Settings;

    /// Writes everything in `batch`. Idempotent: on error, the caller retries the whole batch.
    fn write(&self, batch: &WriteBatch) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A cheap round trip, for readiness checks.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of one partition's API readings (see [`PageRequest`] for the exact contract:
    /// strictly after the resume key, at most `limit` rows, a short page is the last one).
    fn read_api(
        &self,
        request: &PageRequest,
    ) -> impl Future<Output = Result<Vec<ApiReading>, StoreError>> + Send;

    /// One page of one partition's host readings, like [`Store::read_api`].
    fn read_host(
        &self,
        request: &PageRequest,
    ) -> impl Future<Output = Result<Vec<HostReading>, StoreError>> + Send;

    /// Every entry of the series index for `service` in `bucket` (one small partition).
    fn read_series(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> impl Future<Output = Result<Vec<SeriesEntry>, StoreError>> + Send;

    /// The latest API reading of every series stored in latest-readings shard `shard`, of one
    /// service or of all.
    fn read_latest_api(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> impl Future<Output = Result<Vec<ApiReading>, StoreError>> + Send;

    /// The latest host reading of every instance stored in latest-readings shard `shard`, of one
    /// service or of all.
    fn read_latest_host(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> impl Future<Output = Result<Vec<HostReading>, StoreError>> + Send;
}

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
    /// The embedded store failed.
    #[error("{what} failed: {source}")]
    Embedded {
        /// What we were doing.
        what: &'static str,
        /// fjall's reason.
        #[source]
        source: Box<fjall::Error>,
    },
    /// A partition read whole has more rows than one answer may hold: the read is refused
    /// rather than answered in part.
    #[error("{what}: more than {limit} rows in one partition; refusing an incomplete answer")]
    TooManyRows {
        /// What we were reading.
        what: &'static str,
        /// The most rows one whole-partition read returns.
        limit: usize,
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

    /// A short, stable name of the cause, for metric labels.
    pub fn cause(&self) -> &'static str {
        match self {
            StoreError::Connect { .. } => "connect",
            StoreError::Prepare { .. } => "prepare",
            StoreError::Execute { .. } => "execute",
            StoreError::Paging { .. } => "paging",
            StoreError::Decode { .. } => "decode",
            StoreError::Embedded { .. } => "embedded",
            StoreError::TooManyRows { .. } => "too_many_rows",
            StoreError::Settings { .. } => "settings",
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
