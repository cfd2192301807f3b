//! Every statement the service runs, prepared once at start and marked idempotent.
//!
//! Reads of the time-bucketed tables are keyset-paged: a page starts strictly after the last
//! `(timestamp, reading_id)` seen, with a multi-column slice on the clustering key, and is capped
//! by `LIMIT ?`. Both bounds are written as tuples (`(timestamp) <= (?)`), the form Cassandra and
//! Scylla both accept next to a tuple slice.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::Keyspace;
use crate::store::StoreError;

/// Inserts one API reading.
const INSERT_API: &str = "INSERT INTO {keyspace}.metric_readings \
    (service_name, time_bucket, seq, timestamp, reading_id, instance, method, path, code, duration_ms, count) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
/// Inserts one host reading; absent gauges are bound as unset (no tombstone).
const INSERT_HOST: &str = "INSERT INTO {keyspace}.host_readings \
    (service_name, time_bucket, seq, timestamp, reading_id, instance, cpu_percent, mem_used_bytes, mem_total_bytes, \
    disk_used_bytes, disk_total_bytes, available, heap_bytes, allocated_bytes, freed_bytes) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
/// Upserts the latest API reading of a series, at the reading's own time (µs), so an older
/// reading arriving late loses to the newer one already there.
const UPSERT_LATEST_API: &str = "INSERT INTO {keyspace}.latest_api_readings \
    (shard, service_name, instance, method, path, timestamp, reading_id, code, duration_ms, count) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?";
/// Upserts the latest host reading of an instance; absent gauges are written as null so the row
/// is exactly the newest reading.
const UPSERT_LATEST_HOST: &str = "INSERT INTO {keyspace}.latest_host_readings \
    (shard, service_name, instance, timestamp, reading_id, cpu_percent, mem_used_bytes, mem_total_bytes, \
    disk_used_bytes, disk_total_bytes, available, heap_bytes, allocated_bytes, freed_bytes) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?";
/// Records a series in a bucket of the reverse index.
const INSERT_SERIES: &str =
    "INSERT INTO {keyspace}.series_by_bucket (service_name, time_bucket, instance, method, path) \
    VALUES (?, ?, ?, ?, ?)";
/// The cheapest round trip there is.
const PING: &str = "SELECT release_version FROM system.local";

/// A page of a partition's API readings, oldest first: after `(timestamp, reading_id)`, up to
/// a newest timestamp.
const SELECT_API_ASC: &str = "SELECT timestamp, reading_id, instance, method, path, code, \
    duration_ms, count FROM {keyspace}.metric_readings WHERE service_name = ? AND time_bucket = ? AND seq = ? \
    AND (timestamp, reading_id) > (?, ?) AND (timestamp) <= (?) LIMIT ?";
/// A page of a partition's API readings, newest first: before `(timestamp, reading_id)`, down
/// to an oldest timestamp.
const SELECT_API_DESC: &str = "SELECT timestamp, reading_id, instance, method, path, code, \
    duration_ms, count FROM {keyspace}.metric_readings WHERE service_name = ? AND time_bucket = ? AND seq = ? \
    AND (timestamp, reading_id) < (?, ?) AND (timestamp) >= (?) \
    ORDER BY timestamp DESC, reading_id DESC LIMIT ?";
/// Like [`SELECT_API_ASC`], for host readings.
const SELECT_HOST_ASC: &str = "SELECT timestamp, reading_id, instance, cpu_percent, \
    mem_used_bytes, mem_total_bytes, disk_used_bytes, disk_total_bytes, available, heap_bytes, \
    allocated_bytes, freed_bytes FROM {keyspace}.host_readings \
    WHERE service_name = ? AND time_bucket = ? AND seq = ? \
    AND (timestamp, reading_id) > (?, ?) AND (timestamp) <= (?) LIMIT ?";
/// Like [`SELECT_API_DESC`], for host readings.
const SELECT_HOST_DESC: &str = "SELECT timestamp, reading_id, instance, cpu_percent, \
    mem_used_bytes, mem_total_bytes, disk_used_bytes, disk_total_bytes, available, heap_bytes, \
    allocated_bytes, freed_bytes FROM {keyspace}.host_readings \
    WHERE service_name = ? AND time_bucket = ? AND seq = ? \
    AND (timestamp, reading_id) < (?, ?) AND (timestamp) >= (?) \
    ORDER BY timestamp DESC, reading_id DESC LIMIT ?";
/// One partition of the series index.
const SELECT_SERIES: &str =
    "SELECT instance, method, path FROM {keyspace}.series_by_bucket WHERE service_name = ? AND time_bucket = ?";
/// Every latest API row of one latest shard.
const SELECT_LATEST_API: &str = "SELECT service_name, instance, method, path, timestamp, \
    reading_id, code, duration_ms, count FROM {keyspace}.latest_api_readings WHERE shard = ?";
/// The latest API rows of one service in one latest shard (a clustering prefix).
const SELECT_LATEST_API_OF: &str = "SELECT service_name, instance, method, path, timestamp, \
    reading_id, code, duration_ms, count FROM {keyspace}.latest_api_readings \
    WHERE shard = ? AND service_name = ?";
/// Every latest host row of one latest shard.
const SELECT_LATEST_HOST: &str = "SELECT service_name, instance, timestamp, reading_id, \
    cpu_percent, mem_used_bytes, mem_total_bytes, disk_used_bytes, disk_total_bytes, available, \
    heap_bytes, allocated_bytes, freed_bytes FROM {keyspace}.latest_host_readings WHERE shard = ?";
/// The latest host rows of one service in one latest shard.
const SELECT_LATEST_HOST_OF: &str = "SELECT service_name, instance, timestamp, reading_id, \
    cpu_percent, mem_used_bytes, mem_total_bytes, disk_used_bytes, disk_total_bytes, available, \
    heap_bytes, allocated_bytes, freed_bytes FROM {keyspace}.latest_host_readings \
    WHERE shard = ? AND service_name = ?";

/// The prepared statements of the write and read paths.
#[derive(Debug, Clone)]
pub struct Statements {
    /// See [`INSERT_API`].
    pub insert_api: PreparedStatement,
    /// See [`INSERT_HOST`].
    pub insert_host: PreparedStatement,
    /// See [`UPSERT_LATEST_API`].
    pub upsert_latest_api: PreparedStatement,
    /// See [`UPSERT_LATEST_HOST`].
    pub upsert_latest_host: PreparedStatement,
    /// See [`INSERT_SERIES`].
    pub insert_series: PreparedStatement,
    /// See [`PING`].
    pub ping: PreparedStatement,
    /// See [`SELECT_API_ASC`].
    pub select_api_asc: PreparedStatement,
    /// See [`SELECT_API_DESC`].
    pub select_api_desc: PreparedStatement,
    /// See [`SELECT_HOST_ASC`].
    pub select_host_asc: PreparedStatement,
    /// See [`SELECT_HOST_DESC`].
    pub select_host_desc: PreparedStatement,
    /// See [`SELECT_SERIES`].
    pub select_series: PreparedStatement,
    /// See [`SELECT_LATEST_API`].
    pub select_latest_api: PreparedStatement,
    /// See [`SELECT_LATEST_API_OF`].
    pub select_latest_api_of: PreparedStatement,
    /// See [`SELECT_LATEST_HOST`].
    pub select_latest_host: PreparedStatement,
    /// See [`SELECT_LATEST_HOST_OF`].
    pub select_latest_host_of: PreparedStatement,
}

impl Statements {
    /// Prepares every statement on `session` for the tables of `keyspace`.
    pub async fn prepare(session: &Session, keyspace: &Keyspace) -> Result<Self, StoreError> {
        Ok(Self {
            insert_api: prepare(session, keyspace, INSERT_API).await?,
            insert_host: prepare(session, keyspace, INSERT_HOST).await?,
            upsert_latest_api: prepare(session, keyspace, UPSERT_LATEST_API).await?,
            upsert_latest_host: prepare(session, keyspace, UPSERT_LATEST_HOST).await?,
            insert_series: prepare(session, keyspace, INSERT_SERIES).await?,
            ping: prepare(session, keyspace, PING).await?,
            select_api_asc: prepare(session, keyspace, SELECT_API_ASC).await?,
            select_api_desc: prepare(session, keyspace, SELECT_API_DESC).await?,
            select_host_asc: prepare(session, keyspace, SELECT_HOST_ASC).await?,
            select_host_desc: prepare(session, keyspace, SELECT_HOST_DESC).await?,
            select_series: prepare(session, keyspace, SELECT_SERIES).await?,
            select_latest_api: prepare(session, keyspace, SELECT_LATEST_API).await?,
            select_latest_api_of: prepare(session, keyspace, SELECT_LATEST_API_OF).await?,
            select_latest_host: prepare(session, keyspace, SELECT_LATEST_HOST).await?,
            select_latest_host_of: prepare(session, keyspace, SELECT_LATEST_HOST_OF).await?,
        })
    }
}

/// Prepares `text` with its tables qualified by `keyspace` (a validated identifier, never user
/// input): a session-wide `USE` would make prepared statements ambiguous, and Cassandra 5 warns.
async fn prepare(
    session: &Session,
    keyspace: &Keyspace,
    text: &'static str,
) -> Result<PreparedStatement, StoreError> {
    let text = text.replace("{keyspace}", keyspace.as_str());
    let mut statement = session
        .prepare(text.as_str())
        .await
        .map_err(|source| StoreError::prepare(text, source))?;
    statement.set_is_idempotent(true);
    Ok(statement)
}
