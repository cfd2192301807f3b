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
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::{CqlTimestamp, MaybeUnset};

use super::session::{connect_with, SessionConfig};
use super::statements::Statements;
use super::{settings, Keyspace};
use crate::model::{ApiReading, HostReading, Seq, ServiceName, Settings, TimeBucket};
use crate::store::batch::{Partition, SeriesEntry, WriteBatch};
use crate::store::{PageRequest, Store, StoreError};

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
    /// Every write batch runs with it (the write consistency, no speculative execution).
    write_profile: ExecutionProfileHandle,
    settings: Settings,
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
        let (session, write_profile) = connect_with(nodes, config).await?;
        let settings = settings::load(&session, keyspace).await?;
        let statements = Statements::prepare(&session, keyspace).await?;
        Ok(Self {
            session: Arc::new(session),
            statements: Arc::new(statements),
            write_profile,
            settings,
        })
    }

    /// The driver session, for queries.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The profile of every write (`--write-consistency`), for other writers sharing the session.
    pub fn write_profile(&self) -> &ExecutionProfileHandle {
        &self.write_profile
    }

    fn api_batches<'a>(&'a self, partition: &'a Partition<ApiReading>) -> Request<'a> {
        in_sequence(partition.rows.chunks(MAX_ROWS_PER_BATCH).map(move |rows| {
            let key = &partition.key;
            let values: Vec<_> = rows
                .iter()
                .map(|r| {
                    (
                        key.service.as_str(),
                        key.bucket.epoch_seconds(),
                        key.seq.get(),
                        CqlTimestamp(r.timestamp.millis()),
                        r.id.uuid(),
                        r.instance.as_str(),
                        r.method.as_str(),
                        r.path.as_str(),
                        i32::from(r.code.get()),
                        r.duration_ms,
                        i32::try_from(r.count).unwrap_or(i32::MAX),
                    )
                })
                .collect();
            self.run_batch(&self.statements.insert_api, values, "writing API readings")
        }))
    }

    fn host_batches<'a>(&'a self, partition: &'a Partition<HostReading>) -> Request<'a> {
        in_sequence(partition.rows.chunks(MAX_ROWS_PER_BATCH).map(move |rows| {
            let key = &partition.key;
            let values: Vec<_> = rows
                .iter()
                .map(|r| {
                    let g = &r.gauges;
                    (
                        key.service.as_str(),
                        key.bucket.epoch_seconds(),
                        key.seq.get(),
                        CqlTimestamp(r.timestamp.millis()),
                        r.id.uuid(),
                        r.instance.as_str(),
                        unset(g.cpu_percent),
                        unset(g.mem_used_bytes),
                        unset(g.mem_total_bytes),
                        unset(g.disk_used_bytes),
                        unset(g.disk_total_bytes),
                        unset(g.available),
                        unset(g.heap_bytes),
                        unset(g.allocated_bytes),
                        unset(g.freed_bytes),
                    )
                })
                .collect();
            self.run_batch(
                &self.statements.insert_host,
                values,
                "writing host readings",
            )
        }))
    }

    fn run_batch<'a, V>(
        &'a self,
        statement: &scylla::statement::prepared::PreparedStatement,
        values: Vec<V>,
        what: &'static str,
    ) -> Request<'a>
    where
        V: scylla::serialize::row::SerializeRow + Send + Sync + 'a,
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

    /// Latest API rows, one unlogged batch per latest shard (each shard is one partition).
    fn latest_api_batches<'a>(&'a self, readings: &'a [ApiReading]) -> Vec<Request<'a>> {
        let rows = readings.iter().map(|r| {
            let shard = self.latest_shard(&[
                r.service.as_str(),
                r.instance.as_str(),
                r.method.as_str(),
                r.path.as_str(),
            ]);
            let values = (
                shard,
                r.service.as_str(),
                r.instance.as_str(),
                r.method.as_str(),
                r.path.as_str(),
                CqlTimestamp(r.timestamp.millis()),
                r.id.uuid(),
                i32::from(r.code.get()),
                r.duration_ms,
                i32::try_from(r.count).unwrap_or(i32::MAX),
                r.timestamp.micros(),
            );
            (shard, values)
        });
        self.partition_batches(
            rows,
            &self.statements.upsert_latest_api,
            "upserting latest API readings",
        )
    }

    /// Latest host rows, one unlogged batch per latest shard.
    fn latest_host_batches<'a>(&'a self, readings: &'a [HostReading]) -> Vec<Request<'a>> {
        let rows = readings.iter().map(|r| {
            let shard = self.latest_shard(&[r.service.as_str(), r.instance.as_str()]);
            let g = &r.gauges;
            let values = (
                shard,
                r.service.as_str(),
                r.instance.as_str(),
                CqlTimestamp(r.timestamp.millis()),
                r.id.uuid(),
                g.cpu_percent,
                g.mem_used_bytes,
                g.mem_total_bytes,
                g.disk_used_bytes,
                g.disk_total_bytes,
                g.available,
                g.heap_bytes,
                g.allocated_bytes,
                g.freed_bytes,
                r.timestamp.micros(),
            );
            (shard, values)
        });
        self.partition_batches(
            rows,
            &self.statements.upsert_latest_host,
            "upserting latest host readings",
        )
    }

    /// Series index rows, one unlogged batch per `(service, bucket)` partition.
    fn series<'a>(&'a self, entries: &'a [SeriesEntry]) -> Vec<Request<'a>> {
        let rows = entries.iter().map(|e| {
            let values = (
                e.service.as_str(),
                e.bucket.epoch_seconds(),
                e.instance.as_str(),
                e.method.as_ref().map_or("", |m| m.as_str()),
                e.path.as_ref().map_or("", |p| p.as_str()),
            );
            ((e.service.as_str(), e.bucket.epoch_seconds()), values)
        });
        self.partition_batches(rows, &self.statements.insert_series, "recording series")
    }

    /// Groups `(partition, values)` rows by partition and sends each group as unlogged batches
    /// of at most [`MAX_ROWS_PER_BATCH`] rows, one after another: one request per partition
    /// instead of one per row.
    fn partition_batches<'a, K, V>(
        &'a self,
        rows: impl Iterator<Item = (K, V)>,
        statement: &scylla::statement::prepared::PreparedStatement,
        what: &'static str,
    ) -> Vec<Request<'a>>
    where
        K: std::hash::Hash + Eq,
        V: scylla::serialize::row::SerializeRow + Clone + Send + Sync + 'a,
    {
        let mut by_partition: std::collections::HashMap<K, Vec<V>> =
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

    fn latest_shard(&self, parts: &[&str]) -> i32 {
        self.settings.latest_shards.shard_of(parts).get()
    }
}

/// One write request, or the requests of one partition in sequence.
type Request<'a> = BoxFuture<'a, Result<(), StoreError>>;

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

fn unset<T>(value: Option<T>) -> MaybeUnset<T> {
    value.map_or(MaybeUnset::Unset, MaybeUnset::Set)
}

impl Store for CqlStore {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let mut requests: Vec<Request<'_>> = Vec::new();
        for partition in &batch.api {
            requests.push(self.api_batches(partition));
        }
        for partition in &batch.host {
            requests.push(self.host_batches(partition));
        }
        requests.extend(self.latest_api_batches(&batch.latest_api));
        requests.extend(self.latest_host_batches(&batch.latest_host));
        requests.extend(self.series(&batch.series));
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

    async fn read_api(&self, request: &PageRequest) -> Result<Vec<ApiReading>, StoreError> {
        self.read_api_page(request).await
    }

    async fn read_host(&self, request: &PageRequest) -> Result<Vec<HostReading>, StoreError> {
        self.read_host_page(request).await
    }

    async fn read_series(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        self.read_series_partition(service, bucket).await
    }

    async fn read_latest_api(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<ApiReading>, StoreError> {
        self.read_latest_api_shard(shard, service).await
    }

    async fn read_latest_host(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<HostReading>, StoreError> {
        self.read_latest_host_shard(shard, service).await
    }
}
