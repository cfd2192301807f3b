//! Every statement the service runs, prepared once at start and marked idempotent.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use crate::store::StoreError;

/// Inserts one API reading.
const INSERT_API: &str = "INSERT INTO metric_readings \
    (service_name, time_bucket, seq, timestamp, reading_id, instance, method, path, code, duration_ms, count) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
/// Inserts one host reading; absent gauges are bound as unset (no tombstone).
const INSERT_HOST: &str = "INSERT INTO host_readings \
    (service_name, time_bucket, seq, timestamp, reading_id, instance, cpu_percent, mem_used_bytes, mem_total_bytes, \
    disk_used_bytes, disk_total_bytes, available, heap_bytes, allocated_bytes, freed_bytes) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
/// Upserts the latest API reading of a series, at the reading's own time (µs), so an older
/// reading arriving late loses to the newer one already there.
const UPSERT_LATEST_API: &str = "INSERT INTO latest_api_readings \
    (shard, service_name, instance, method, path, timestamp, reading_id, code, duration_ms, count) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?";
/// Upserts the latest host reading of an instance; absent gauges are written as null so the row
/// is exactly the newest reading.
const UPSERT_LATEST_HOST: &str = "INSERT INTO latest_host_readings \
    (shard, service_name, instance, timestamp, reading_id, cpu_percent, mem_used_bytes, mem_total_bytes, \
    disk_used_bytes, disk_total_bytes, available, heap_bytes, allocated_bytes, freed_bytes) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?";
/// Records a series in a bucket of the reverse index.
const INSERT_SERIES: &str =
    "INSERT INTO series_by_bucket (service_name, time_bucket, instance, method, path) \
    VALUES (?, ?, ?, ?, ?)";
/// The cheapest round trip there is.
const PING: &str = "SELECT release_version FROM system.local";

/// The prepared statements of the write path.
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
}

impl Statements {
    /// Prepares every statement on `session` (whose keyspace is already set).
    pub async fn prepare(session: &Session) -> Result<Self, StoreError> {
        Ok(Self {
            insert_api: prepare(session, INSERT_API).await?,
            insert_host: prepare(session, INSERT_HOST).await?,
            upsert_latest_api: prepare(session, UPSERT_LATEST_API).await?,
            upsert_latest_host: prepare(session, UPSERT_LATEST_HOST).await?,
            insert_series: prepare(session, INSERT_SERIES).await?,
            ping: prepare(session, PING).await?,
        })
    }
}

async fn prepare(session: &Session, text: &'static str) -> Result<PreparedStatement, StoreError> {
    let mut statement = session
        .prepare(text)
        .await
        .map_err(|source| StoreError::prepare(text, source))?;
    statement.set_is_idempotent(true);
    Ok(statement)
}
