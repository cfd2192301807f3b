//! [`CqlStore`]: the write path to Scylla / Cassandra (the read path is in `reader`).
//!
//! Rows of one partition go out as unlogged batches (one partition per batch, so the batch is a
//! single mutation on one replica set and the token-aware policy sends it straight there). The
//! batches of one partition are sent one after another, partitions concurrently, at most
//! [`MAX_IN_FLIGHT`] at a time: concurrent batches into the same partition contend in the node's
//! memtable (each update of the partition is retried until it wins), which costs the node CPU
//! for nothing.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfileHandle;
use scylla::client::session::Session;
use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;

use super::rollup::RollupStatements;
use super::row::{LatestValues, RowValues};
use super::session::{connect_secured, SessionConfig};
use super::statements::Statements;
use super::CqlSecurity;
use super::{settings, Keyspace};
use crate::model::kind::EachKind;
use crate::model::{ReadingKind, Seq, ServiceName, Settings, TimeBucket, TimestampMs};
use crate::store::batch::{Batches, KindBatch, SeriesEntry, WriteBatch};
use crate::store::{remaining_ttl_seconds, PageRequest, Store, StoreError};

/// Partitions written at once per flush (one request in flight each): enough to keep every
/// connection busy, bounded so a big flush cannot flood the cluster.
pub const MAX_IN_FLIGHT: usize = 64;
/// Rows per unlogged batch. Single-partition batches are one mutation, so Cassandra's batch size
/// warnings do not apply; the cap keeps each request's latency and size moderate.
pub const MAX_ROWS_PER_BATCH: usize = 512;

/// The Scylla / Cassandra backend.
#[derive(Clone)]
pub struct CqlStore {
    pub(super) session: Arc<Session>,
    pub(super) statements: Arc<Statements>,
    /// The statements of the rollup tables.
    rollups: Arc<RollupStatements>,
    /// Every write batch runs with it (the write consistency, no speculative execution).
    write_profile: ExecutionProfileHandle,
    settings: Settings,
    /// Recorded at the first open with rollups (`rollup::coverage`): it never changes.
    rollups_written_since: TimestampMs,
}

impl std::fmt::Debug for CqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CqlStore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl CqlStore {
    /// Connects, reads the settings of `keyspace` and prepares every statement for its tables,
    /// at the default consistency levels.
    pub async fn open(nodes: &[String], keyspace: &Keyspace) -> Result<Self, StoreError> {
        Self::open_with(nodes, keyspace, &SessionConfig::default()).await
    }

    /// Like [`CqlStore::open`], reading and writing at the levels of `config`.
    pub async fn open_with(
        nodes: &[String],
        keyspace: &Keyspace,
        config: &SessionConfig,
    ) -> Result<Self, StoreError> {
        Self::open_secured(nodes, keyspace, config, &CqlSecurity::default()).await
    }

    /// Like [`CqlStore::open_with`], with credentials and TLS.
    pub async fn open_secured(
        nodes: &[String],
        keyspace: &Keyspace,
        config: &SessionConfig,
        security: &CqlSecurity,
    ) -> Result<Self, StoreError> {
        let (session, write_profile) = connect_secured(nodes, config, security).await?;
        let settings = settings::load(&session, keyspace).await?;
        let statements = Statements::prepare(&session, keyspace).await?;
        let rollups = RollupStatements::prepare(&session, keyspace).await?;
        let mut store = Self {
            session: Arc::new(session),
            statements: Arc::new(statements),
            rollups: Arc::new(rollups),
            write_profile,
            settings,
            rollups_written_since: TimestampMs::from_millis(i64::MAX),
        };
        store.rollups_written_since = store.load_rollups_written_since().await?;
        Ok(store)
    }

    pub(super) fn rollup_statements(&self) -> &RollupStatements {
        &self.rollups
    }

    pub(super) fn settings_ref(&self) -> &Settings {
        &self.settings
    }

    /// The driver session, for queries.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The profile of every write (`--write-consistency`), for other writers sharing the session.
    pub fn write_profile(&self) -> &ExecutionProfileHandle {
        &self.write_profile
    }

    fn run_batch<'a, V>(
        &'a self,
        statement: &PreparedStatement,
        values: Vec<V>,
        what: &'static str,
    ) -> Request<'a>
    where
        V: SerializeRow + Send + Sync + 'a,
    {
        let mut batch = Batch::new(BatchType::Unlogged);
        for _ in &values {
            batch.append_statement(statement.clone());
        }
        batch.set_is_idempotent(true);
        batch.set_execution_profile_handle(Some(self.write_profile.clone()));
        async move {
            self.session
                .batch(&batch, values)
                .await
                .map(drop)
                .map_err(|source| StoreError::execute(what, source))
        }
        .boxed()
    }

    /// Series index rows, one unlogged batch per `(service, bucket)` partition; entries of a
    /// bucket already past the retention are left out.
    fn series<'a>(&'a self, entries: &'a [SeriesEntry], now: TimestampMs) -> Vec<Request<'a>> {
        let (width, ttl) = (self.settings.bucket_width, self.settings.ttl_seconds);
        let rows = entries.iter().filter_map(|e| {
            let ttl = remaining_ttl_seconds(e.bucket.end(width), ttl, now);
            let values = (
                e.service.as_str(),
                e.bucket.epoch_seconds(),
                e.instance.as_str(),
                e.method.as_ref().map_or("", |m| m.as_str()),
                e.path.as_ref().map_or("", |p| p.as_str()),
                ttl,
            );
            (ttl > 0).then_some(((e.service.as_str(), e.bucket.epoch_seconds()), values))
        });
        self.partition_batches(rows, &self.statements.insert_series, "recording series")
    }

    /// Groups `(partition, values)` rows by partition and sends each group as unlogged batches
    /// of at most [`MAX_ROWS_PER_BATCH`] rows, one after another: one request per partition
    /// instead of one per row.
    pub(super) fn partition_batches<'a, P, V>(
        &'a self,
        rows: impl Iterator<Item = (P, V)>,
        statement: &PreparedStatement,
        what: &'static str,
    ) -> Vec<Request<'a>>
    where
        P: std::hash::Hash + Eq,
        V: SerializeRow + Clone + Send + Sync + 'a,
    {
        let mut by_partition: std::collections::HashMap<P, Vec<V>> =
            std::collections::HashMap::new();
        for (key, values) in rows {
            by_partition.entry(key).or_default().push(values);
        }
        by_partition
            .into_values()
            .map(|values| {
                in_sequence(
                    values
                        .chunks(MAX_ROWS_PER_BATCH)
                        .map(|chunk| self.run_batch(statement, chunk.to_vec(), what)),
                )
            })
            .collect()
    }
}

/// The write requests of a batch, kind by kind.
struct Requests<'a> {
    store: &'a CqlStore,
    /// When the write started: the latest rows' TTLs count from it.
    now: TimestampMs,
    list: Vec<Request<'a>>,
}

impl<'a> EachKind<'a, Batches> for Requests<'a> {
    /// Each partition's rows as unlogged batches in sequence; the latest rows as one unlogged
    /// batch per latest shard (each shard is one partition), leaving out rows already past the
    /// retention.
    fn each<K: ReadingKind>(&mut self, batch: &'a KindBatch<K>) {
        const WHAT: &str = "writing readings";
        const LATEST: &str = "upserting latest readings";
        let store = self.store;
        let statements = store.statements.of::<K>();
        for partition in &batch.partitions {
            let rows = partition.rows.chunks(MAX_ROWS_PER_BATCH).map(|rows| {
                let values = rows
                    .iter()
                    .map(|reading| RowValues {
                        partition: &partition.key,
                        reading,
                    })
                    .collect();
                store.run_batch(&statements.insert, values, WHAT)
            });
            self.list.push(in_sequence(rows));
        }
        let (settings, now) = (&store.settings, self.now);
        let latest = batch.latest.iter().filter_map(|reading| {
            let ttl = remaining_ttl_seconds(reading.timestamp(), settings.ttl_seconds, now);
            let shard = reading.series().latest_shard(settings.latest_shards).get();
            let values = LatestValues {
                shard,
                reading,
                ttl_seconds: ttl,
            };
            (ttl > 0).then_some((shard, values))
        });
        let latest = store.partition_batches(latest, &statements.upsert_latest, LATEST);
        self.list.extend(latest);
    }
}

/// One write request, or the requests of one partition in sequence.
pub(super) type Request<'a> = BoxFuture<'a, Result<(), StoreError>>;

/// Runs `requests` one after another, stopping at the first failure.
fn in_sequence<'a>(requests: impl Iterator<Item = Request<'a>>) -> Request<'a> {
    let requests: Vec<Request<'a>> = requests.collect();
    async move {
        for request in requests {
            request.await?;
        }
        Ok(())
    }
    .boxed()
}

impl Store for CqlStore {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Never: replicas share the store, and their WAL positions collide.
    fn wal_ids(&self, _writer: uuid::Uuid) -> bool {
        false
    }

    async fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let now = TimestampMs::now();
        let mut requests = Requests {
            store: self,
            now,
            list: Vec::new(),
        };
        batch.kinds.each(&mut requests);
        let mut requests = requests.list;
        requests.extend(self.series(&batch.series, now));
        requests.extend(self.rollup_requests(&batch.rollups, now));
        futures::stream::iter(requests)
            .buffer_unordered(MAX_IN_FLIGHT)
            .try_collect::<()>()
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.statements.ping, ())
            .await
            .map(drop)
            .map_err(|source| StoreError::execute("ping", source))
    }

    async fn read_page<K: ReadingKind>(&self, request: &PageRequest) -> Result<Vec<K>, StoreError> {
        self.read_partition_page(request).await
    }

    async fn read_latest<K: ReadingKind>(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<K>, StoreError> {
        self.read_latest_shard(shard, service).await
    }

    async fn read_series(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        self.read_series_partition(service, bucket).await
    }

    fn rollups_written_since(&self) -> TimestampMs {
        self.rollups_written_since
    }

    async fn delete_rollups(&self, rows: &[crate::rollup::RollupRow]) -> Result<(), StoreError> {
        futures::stream::iter(self.rollup_deletes(rows))
            .buffer_unordered(MAX_IN_FLIGHT)
            .try_collect::<()>()
            .await
    }

    async fn rollups_since(&self, service: &ServiceName) -> Result<TimestampMs, StoreError> {
        self.read_rollups_since(service).await
    }

    async fn lower_rollups_since(
        &self,
        service: Option<&ServiceName>,
        at: TimestampMs,
    ) -> Result<(), StoreError> {
        self.lower_rollups_since_to(service, at).await
    }

    async fn read_rollups(
        &self,
        request: &crate::rollup::RollupRequest,
    ) -> Result<Vec<crate::rollup::RollupRow>, StoreError> {
        self.read_rollup_partition(request).await
    }

    async fn read_rollup_page(
        &self,
        request: &crate::store::RollupPageRequest,
    ) -> Result<Vec<crate::rollup::RollupRow>, StoreError> {
        self.read_rollup_rows_page(request).await
    }
}
