//! Everything the bench does straight through the driver: keyspaces, the baseline writer and
//! the final check of what was stored.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfileHandle;
use scylla::client::session::Session;
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::CqlTimestamp;
use timebucket::migrate::{self, Replication, SettingsRequest, UpOptions};
use timebucket::model::{Settings, TimeBucket, TimestampMs};
use timebucket::store::cql::session::connect_with;
use timebucket::store::cql::{self, Keyspace, SessionConfig};
use uuid::Uuid;

use super::data::{fingerprint, Dataset};

pub async fn session(node: &str) -> anyhow::Result<Session> {
    cql::connect(&[node.to_owned()]).await.with_context(|| {
        format!("cannot reach the CQL node at {node}; start one with `scripts/cassandra start` or set TIMEBUCKET_BENCH_CQL")
    })
}

/// A session set up as the service's (`--write-consistency` and `--read-consistency` from
/// `config`), through `nodes`; with the profile every write must carry.
pub async fn session_with(
    nodes: &[String],
    config: &SessionConfig,
) -> anyhow::Result<(Session, ExecutionProfileHandle)> {
    connect_with(nodes, config).await.with_context(|| {
        format!("cannot reach the CQL cluster at {nodes:?}; start it with `scripts/cassandra start` (or `scripts/cassandra cluster start`) or set TIMEBUCKET_BENCH_CQL")
    })
}

/// A fresh keyspace with every shipped migration applied (default settings, RF 1).
pub async fn migrated_keyspace(session: &Session, role: &str) -> anyhow::Result<Keyspace> {
    migrated_keyspace_with(session, role, Replication::Simple(1)).await
}

/// A fresh keyspace with every shipped migration applied (default settings), replicated as
/// `replication` says.
pub async fn migrated_keyspace_with(
    session: &Session,
    role: &str,
    replication: Replication,
) -> anyhow::Result<Keyspace> {
    let id = Uuid::new_v4().simple().to_string();
    let keyspace: Keyspace = format!("tb_bench_{role}_{}", &id[..10])
        .parse()
        .map_err(anyhow::Error::msg)?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let migrations = migrate::source::load_dir(&dir)?;
    migrate::up(
        session,
        &migrations,
        &UpOptions {
            keyspace: keyspace.clone(),
            replication,
            settings: SettingsRequest::default(),
            lock_wait: Duration::from_secs(120),
        },
    )
    .await
    .with_context(|| format!("migrate up {keyspace}"))?;
    Ok(keyspace)
}

pub async fn drop_keyspace(session: &Session, keyspace: &Keyspace) -> anyhow::Result<()> {
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
        .await
        .with_context(|| format!("dropping {keyspace}"))?;
    Ok(())
}

pub async fn settings(session: &Session, keyspace: &Keyspace) -> anyhow::Result<Settings> {
    Ok(cql::settings::load(session, keyspace).await?)
}

/// One way of writing the baseline: rows per single-partition unlogged batch, batches in flight.
#[derive(Debug, Clone, Copy)]
pub struct BaselineConfig {
    pub rows_per_batch: usize,
    pub in_flight: usize,
}

impl std::fmt::Display for BaselineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.rows_per_batch, self.in_flight)
    }
}

impl std::str::FromStr for BaselineConfig {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (rows, in_flight) = s
            .split_once('x')
            .ok_or_else(|| format!("`{s}`: expected ROWSxIN_FLIGHT, e.g. 256x32"))?;
        let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|n| *n > 0);
        Ok(Self {
            rows_per_batch: parse(rows).ok_or_else(|| format!("`{s}`: bad row count"))?,
            in_flight: parse(in_flight).ok_or_else(|| format!("`{s}`: bad in-flight count"))?,
        })
    }
}

/// A `metric_readings` partition: (service index, time bucket, seq).
type PartitionKey = (u16, i64, i32);
/// Rows of one baseline batch: (reading index, reading id).
type Rows<'a> = &'a [(usize, Uuid)];

const INSERT: &str = "(service_name, time_bucket, seq, timestamp, reading_id, instance, method, path, code, duration_ms, count) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Writes every reading of `data` into `keyspace.metric_readings` straight through the driver
/// (the service's own session setup: token-aware, each batch with the write profile `writes`),
/// grouped by partition exactly like the service, as unlogged single-partition batches with
/// `config.in_flight` in flight. Fresh ids per call, so repeated trials write new rows. Returns
/// the elapsed time.
pub async fn write_baseline(
    session: &Arc<Session>,
    writes: &ExecutionProfileHandle,
    keyspace: &Keyspace,
    settings: &Settings,
    data: &Dataset,
    config: BaselineConfig,
) -> anyhow::Result<Duration> {
    let mut insert = session
        .prepare(format!("INSERT INTO {keyspace}.metric_readings {INSERT}"))
        .await?;
    insert.set_is_idempotent(true);
    // Group by partition (service, bucket, seq), as WriteBatch::build does; ids fixed up front
    // (the service fixes them at acceptance).
    let mut partitions: HashMap<PartitionKey, Vec<(usize, Uuid)>> = HashMap::new();
    for (i, r) in data.readings.iter().enumerate() {
        let (_, instance, method, path) = data.names(r);
        let bucket = TimeBucket::containing(
            TimestampMs::from_millis(r.timestamp_ms),
            settings.bucket_width,
        );
        let seq = settings.shards.shard_of(&[instance, method, path]);
        partitions
            .entry((r.service, bucket.epoch_seconds(), seq.get()))
            .or_default()
            .push((i, Uuid::now_v7()));
    }
    // Batches in flight go to different partitions (round robin over the partitions), as in a
    // flush of the service: concurrent writes to one partition contend in the node's memtable.
    let per_partition: Vec<Vec<(PartitionKey, Rows<'_>)>> = partitions
        .iter()
        .map(|(key, rows)| {
            rows.chunks(config.rows_per_batch)
                .map(|c| (*key, c))
                .collect()
        })
        .collect();
    let rounds = per_partition.iter().map(Vec::len).max().unwrap_or(0);
    let chunks: Vec<(PartitionKey, Rows<'_>)> = (0..rounds)
        .flat_map(|i| per_partition.iter().filter_map(move |p| p.get(i).copied()))
        .collect();
    let started = Instant::now();
    futures::stream::iter(chunks)
        .map(|((_, bucket, seq), rows)| {
            let insert = &insert;
            async move {
                let mut batch = Batch::new(BatchType::Unlogged);
                batch.set_is_idempotent(true);
                batch.set_execution_profile_handle(Some(writes.clone()));
                let values: Vec<_> = rows
                    .iter()
                    .map(|&(i, id)| {
                        let r = &data.readings[i];
                        let (service, instance, method, path) = data.names(r);
                        batch.append_statement(insert.clone());
                        (
                            service,
                            bucket,
                            seq,
                            CqlTimestamp(r.timestamp_ms),
                            id,
                            instance,
                            method,
                            path,
                            i32::from(r.code),
                            r.duration_ms,
                            i32::try_from(r.count).unwrap_or(i32::MAX),
                        )
                    })
                    .collect();
                session.batch(&batch, values).await.map(drop)
            }
        })
        .buffer_unordered(config.in_flight)
        .try_collect::<()>()
        .await
        .context("baseline batch failed")?;
    Ok(started.elapsed())
}

#[derive(scylla::DeserializeRow)]
struct Row {
    service_name: String,
    instance: String,
    method: String,
    path: String,
    code: i32,
    timestamp: CqlTimestamp,
    duration_ms: f64,
    count: i32,
}

/// What the final check found.
pub struct Verdict {
    pub stored: u64,
    pub missing: u64,
    pub extra: u64,
}

/// Scans `keyspace.metric_readings` and compares it, as a multiset of reading contents, with the
/// readings posted: every posted reading stored exactly once, nothing else.
pub async fn verify(
    session: &Session,
    keyspace: &Keyspace,
    data: &Dataset,
) -> anyhow::Result<Verdict> {
    let mut expected: HashMap<u64, i64> = HashMap::with_capacity(data.readings.len());
    for r in &data.readings {
        *expected.entry(data.fingerprint(r)).or_default() += 1;
    }
    let mut select = session
        .prepare(format!(
            "SELECT service_name, instance, method, path, code, timestamp, duration_ms, count FROM {keyspace}.metric_readings"
        ))
        .await?;
    select.set_page_size(5000);
    let mut rows = session
        .execute_iter(select, ())
        .await?
        .rows_stream::<Row>()?;
    let mut stored = 0u64;
    while let Some(row) = rows.try_next().await? {
        stored += 1;
        let key = fingerprint(
            &row.service_name,
            &row.instance,
            &row.method,
            &row.path,
            row.code,
            row.timestamp.0,
            row.duration_ms,
            row.count,
        );
        *expected.entry(key).or_default() -= 1;
    }
    let missing = expected
        .values()
        .filter(|n| **n > 0)
        .map(|n| *n as u64)
        .sum();
    let extra = expected
        .values()
        .filter(|n| **n < 0)
        .map(|n| n.unsigned_abs())
        .sum();
    Ok(Verdict {
        stored,
        missing,
        extra,
    })
}

/// Fails unless the verdict is exact.
pub fn require_exact(verdict: &Verdict, posted: usize) -> anyhow::Result<()> {
    if verdict.missing != 0 || verdict.extra != 0 || verdict.stored != posted as u64 {
        bail!(
            "STORED DATA IS WRONG: posted {posted} readings, metric_readings holds {} rows; {} posted readings missing, {} rows duplicated or unknown",
            verdict.stored, verdict.missing, verdict.extra
        );
    }
    Ok(())
}
