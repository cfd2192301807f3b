//! Storage: the seam between ingest/query and the database.
//!
//! [`Store`] is what ingest and queries need from a backend; [`cql`] implements it for Scylla and
//! Cassandra, [`embedded`] on a local LSM-tree. [`batch`] groups readings the way every backend
//! writes them; [`read`] holds the partition-level, paged read requests every backend answers,
//! [`projected`] the column-projected read of the stats scan.
//! Both backends are generic over [`ReadingKind`]: what they store of a reading (columns,
//! statements, codecs) follows from the kind's declaration, never from per-kind code.
//!
//! Invariants: every write is idempotent (CQL rows are keyed by the reading's fixed id; the
//! embedded store skips readings whose WAL record it already applied or whose key it already
//! holds, see `embedded::blocks`; latest rows are written with the reading's own time as write
//! timestamp), so a retry or a WAL replay after a partial failure leaves the same data as one
//! clean write. Both backends expire a latest row
//! once its reading is older than the retention, and a series index entry once the end of its
//! bucket is: [`expired`] is the rule.
//!
//! Errors say which operation failed, in classes every backend shares (unavailable, rejected,
//! decode, settings); each backend maps its own errors into them (`cql::error`, `embedded`),
//! and callers decide by [`StoreError::is_retryable`], never by string matching.

pub mod alerting;
pub mod batch;
pub mod cql;
pub mod embedded;
pub mod hold;
pub mod projected;
pub mod read;
pub mod watched;

use std::borrow::Cow;
use std::future::Future;

use thiserror::Error;

pub use batch::{
    KindBatch, LatestRows, Partition, PartitionKey, SeriesEntry, SeriesSeen, WriteBatch,
    WriteBatchBuilder,
};
pub use hold::RetentionHold;
pub use projected::{ApiColumns, ApiColumnsRequest, ApiSeriesColumns};
pub use read::{Order, PageRequest, ReadingKey, RollupKey, RollupPageRequest};

use crate::model::{ReadingKind, Seq, ServiceName, Settings, TimeBucket, TimestampMs};
use crate::rollup::{RollupRequest, RollupRow};

/// A storage backend.
pub trait Store: Send + Sync + 'static {
    /// The deployment settings (bucket width, shards, retention) the data is laid out with.
    fn settings(&self) -> &Settings;

    /// Writes everything in `batch`. Idempotent: on a retryable error the caller retries the
    /// whole batch.
    fn write(&self, batch: &WriteBatch) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Resolves once the store can be written to with its real [`Store::settings`]: at once for
    /// a store opened whole; a store that connects in the background (`cql::deferred`) resolves
    /// it once connected. The flusher waits for it before grouping any batch.
    fn connected(&self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }

    /// Whether the flusher of the WAL whose rollup writer id is `writer` should give readings
    /// ids derived from their WAL position
    /// ([`ReadingId::from_wal`](crate::model::ReadingId::from_wal)) instead of the ids given at
    /// acceptance. Only a store written by a single WAL may say yes, and only to that WAL:
    /// positions of two WALs collide. The embedded store says yes to the first WAL that asks
    /// (its directory is locked by one process) and no to any other (a second writer, a WAL
    /// made anew), whose readings then keep their acceptance ids; a shared store (CQL) always
    /// says no. No default: a wrapper store that forgot to pass it on would silently give
    /// every reading its acceptance id again.
    fn wal_ids(&self, writer: uuid::Uuid) -> bool;

    /// A cheap round trip, for readiness checks.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One page of one partition's readings of kind `K` (see [`PageRequest`] for the exact
    /// contract: strictly after the resume key, at most `limit` rows, a short page is the last
    /// one).
    fn read_page<K: ReadingKind>(
        &self,
        request: &PageRequest,
    ) -> impl Future<Output = Result<Vec<K>, StoreError>> + Send;

    /// One partition's API readings in a time range, projected to what the stats scan needs
    /// (see [`projected`] for the contract). The default builds it from [`Store::read_page`];
    /// a store that keeps readings by column decodes only the columns wanted.
    fn read_api_columns(
        &self,
        request: &ApiColumnsRequest,
    ) -> impl Future<Output = Result<ApiColumns, StoreError>> + Send {
        projected::from_pages(self, request)
    }

    /// The latest reading of kind `K` of every series stored in latest-readings shard `shard`,
    /// of one service or of all. A series whose latest reading is older than the retention has
    /// none.
    fn read_latest<K: ReadingKind>(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> impl Future<Output = Result<Vec<K>, StoreError>> + Send;

    /// Every partial rollup row of one rollup partition with its slot in the requested range
    /// (see [`RollupRequest`]), partials unmerged; none once past the level's retention.
    fn read_rollups(
        &self,
        request: &RollupRequest,
    ) -> impl Future<Output = Result<Vec<RollupRow>, StoreError>> + Send;

    /// One page of rollup rows (see [`RollupPageRequest`] for the exact contract).
    fn read_rollup_page(
        &self,
        request: &RollupPageRequest,
    ) -> impl Future<Output = Result<Vec<RollupRow>, StoreError>> + Send;

    /// Deletes these rollup rows (by their keys), as compaction does once the rows holding
    /// them are written. Idempotent.
    fn delete_rollups(
        &self,
        rows: &[RollupRow],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// From when the flusher writes rollups (`rollup::coverage`): recorded at the store's first
    /// open by a version with rollups. A store that connects in the background reports
    /// `i64::MAX` ms until connected (the flusher waits for [`Store::connected`]).
    fn rollups_written_since(&self) -> TimestampMs;

    /// From when rollups cover every reading of `service` (`rollup::coverage`): queries read
    /// rollups from it on, raw readings before it.
    fn rollups_since(
        &self,
        service: &ServiceName,
    ) -> impl Future<Output = Result<TimestampMs, StoreError>> + Send;

    /// Lowers the recorded start of complete rollups of `service` (of every service with
    /// `None`) to `at`; a lower recorded value stays.
    fn lower_rollups_since(
        &self,
        service: Option<&ServiceName>,
        at: TimestampMs,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every entry of the series index for `service` in `bucket` (one small partition); none
    /// once the bucket's end is older than the retention.
    fn read_series(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> impl Future<Output = Result<Vec<SeriesEntry>, StoreError>> + Send;
}

/// The cause behind a store error, as the backend reported it.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A failure of the storage backend, in terms every backend shares.
///
/// The class decides what the flusher does ([`StoreError::is_retryable`]): an unavailable store
/// is waited for, a rejected write is never retried.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The store cannot be reached, is overloaded, timed out or failed in a way that may pass:
    /// trying again later may succeed.
    #[error("{what}: the store is unavailable: {source}")]
    Unavailable {
        /// What we were doing.
        what: Cow<'static, str>,
        /// The backend's reason.
        #[source]
        source: Cause,
    },
    /// The store refused the request itself (an invalid statement or value, a missing table):
    /// the same request will fail again.
    #[error("{what}: the store refused it: {source}")]
    Rejected {
        /// What we were doing.
        what: Cow<'static, str>,
        /// The backend's reason.
        #[source]
        source: Cause,
    },
    /// An answer or a stored value did not have the expected shape.
    #[error("{what}: unexpected answer from the store: {reason}")]
    Decode {
        /// What we were reading.
        what: Cow<'static, str>,
        /// What was wrong.
        reason: String,
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
    /// The embedded store holds readings in the row format of earlier versions, which this
    /// version does not read: they must be converted first.
    #[error(
        "{store} holds readings in the row format of earlier versions; convert them to blocks \
         first with `timebucket store convert --data-dir {data_dir}`"
    )]
    OldFormat {
        /// The store's directory.
        store: String,
        /// The `--data-dir` that holds it.
        data_dir: String,
    },
    /// The store has no (or broken) deployment settings.
    #[error(
        "{store} has no usable timebucket settings ({reason}); run `timebucket migrate up` first"
    )]
    Settings {
        /// The keyspace or directory read.
        store: String,
        /// What was wrong.
        reason: String,
    },
}

impl StoreError {
    /// True when trying again later may succeed (the store was unreachable, overloaded or timed
    /// out); false for errors that trying again cannot fix. The flusher retries the first kind
    /// with backoff and quarantines a batch failing with the second.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// A short, stable name of the class, for metric labels.
    pub fn cause(&self) -> &'static str {
        match self {
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Rejected { .. } => "rejected",
            StoreError::Decode { .. } => "decode",
            StoreError::TooManyRows { .. } => "too_many_rows",
            StoreError::Settings { .. } => "settings",
            StoreError::OldFormat { .. } => "old_format",
        }
    }

    /// The store could not do `what` for now.
    pub fn unavailable(what: impl Into<Cow<'static, str>>, source: impl Into<Cause>) -> Self {
        StoreError::Unavailable {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The store refused `what` for good.
    pub fn rejected(what: impl Into<Cow<'static, str>>, source: impl Into<Cause>) -> Self {
        StoreError::Rejected {
            what: what.into(),
            source: source.into(),
        }
    }

    /// What was read while doing `what` is not what it should be.
    pub fn decode(what: impl Into<Cow<'static, str>>, reason: impl std::fmt::Display) -> Self {
        StoreError::Decode {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// Whether data of instant `at` is past the retention `ttl_seconds` at `now`: the expiry rule of
/// latest rows (`at` = the reading's time) and series entries (`at` = the end of their bucket),
/// shared by both backends.
pub fn expired(at: TimestampMs, ttl_seconds: u32, now: TimestampMs) -> bool {
    remaining_ttl_seconds(at, ttl_seconds, now) == 0
}

/// Whole seconds until data of instant `at` is past the retention at `now` (rounded up), 0 once
/// it is: the CQL TTL of a latest row or series entry written at `now`.
pub fn remaining_ttl_seconds(at: TimestampMs, ttl_seconds: u32, now: TimestampMs) -> i32 {
    let left_ms = at.millis() + i64::from(ttl_seconds) * 1000 - now.millis();
    let left_ms = u64::try_from(left_ms).unwrap_or(0);
    i32::try_from(left_ms.div_ceil(1000)).unwrap_or(i32::MAX)
}
