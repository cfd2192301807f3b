//! Every statement the service runs, prepared once at start and marked idempotent.
//!
//! The statements of a kind's tables are written from its declaration ([`KindInfo`]): the
//! columns are the head's (`service_name`, `time_bucket`, `seq`, `timestamp`, `reading_id` in the
//! readings table; `shard`, `service_name`, `timestamp`, `reading_id` in the latest table)
//! followed by the kind's fields in declared order, which is also the order of the bind values
//! ([`super::row`]) and of the columns a row is decoded from. Only names from the declarations
//! and the validated keyspace name go into the text, never user input.
//!
//! Reads of the time-bucketed tables are keyset-paged: a page starts strictly after the last
//! `(timestamp, reading_id)` seen, with a multi-column slice on the clustering key, and is capped
//! by `LIMIT ?`. Both bounds are written as tuples (`(timestamp) <= (?)`), the form Cassandra and
//! Scylla both accept next to a tuple slice.
//!
//! Latest rows and series entries are written `USING TTL ?`: the time left until their reading
//! (or bucket) is older than the retention, so both expire by the readings' own time, as in the
//! embedded store; latest rows also `USING TIMESTAMP ?` (the reading's time), so a late, older
//! reading never replaces a newer one.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::Keyspace;
use crate::model::kind::{KindInfo, ALL};
use crate::model::ReadingKind;
use crate::store::StoreError;

/// Records a series in a bucket of the reverse index, until the bucket is past the retention.
const INSERT_SERIES: &str =
    "INSERT INTO {keyspace}.series_by_bucket (service_name, time_bucket, instance, method, path) \
    VALUES (?, ?, ?, ?, ?) USING TTL ?";
/// One partition of the series index.
const SELECT_SERIES: &str =
    "SELECT instance, method, path FROM {keyspace}.series_by_bucket WHERE service_name = ? AND time_bucket = ?";
/// The cheapest round trip there is.
const PING: &str = "SELECT release_version FROM system.local";

/// The columns of a readings row before the kind's fields (bind order of [`KindTexts::insert`]).
pub const ROW_HEAD: [&str; 5] = [
    "service_name",
    "time_bucket",
    "seq",
    "timestamp",
    "reading_id",
];
/// The columns of a latest row before the kind's fields (bind order of [`KindTexts::upsert_latest`]).
pub const LATEST_HEAD: [&str; 4] = ["shard", "service_name", "timestamp", "reading_id"];

/// The statement texts of one kind, with `{keyspace}` still to fill in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindTexts {
    /// Inserts one reading; absent optional fields are bound as unset (no tombstone).
    pub insert: String,
    /// Upserts the latest reading of a series; absent optional fields are written as null so
    /// the row is exactly the newest reading.
    pub upsert_latest: String,
    /// A page of a partition, oldest first: after `(timestamp, reading_id)`, up to a newest
    /// timestamp.
    pub select_asc: String,
    /// A page of a partition, newest first: before `(timestamp, reading_id)`, down to an oldest
    /// timestamp.
    pub select_desc: String,
    /// Every latest row of one latest shard.
    pub select_latest: String,
    /// The latest rows of one service in one latest shard (a clustering prefix).
    pub select_latest_of: String,
}

impl KindTexts {
    /// The statements of `kind`.
    pub fn of(kind: &KindInfo) -> Self {
        let fields: Vec<&str> = kind.fields.iter().map(|f| f.name).collect();
        let columns = |head: &[&str]| -> String {
            head.iter()
                .chain(&fields)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        };
        let markers = |n: usize| vec!["?"; n].join(", ");
        let (table, latest) = (kind.table, kind.latest_table);
        let page = |comparison: &str, bound: &str, order: &str| {
            format!(
                "SELECT timestamp, reading_id, {} FROM {{keyspace}}.{table} \
                 WHERE service_name = ? AND time_bucket = ? AND seq = ? \
                 AND (timestamp, reading_id) {comparison} (?, ?) AND (timestamp) {bound} (?){order} LIMIT ?",
                fields.join(", ")
            )
        };
        let select_latest = format!(
            "SELECT service_name, timestamp, reading_id, {} FROM {{keyspace}}.{latest} WHERE shard = ?",
            fields.join(", ")
        );
        Self {
            insert: format!(
                "INSERT INTO {{keyspace}}.{table} ({}) VALUES ({})",
                columns(&ROW_HEAD),
                markers(ROW_HEAD.len() + fields.len())
            ),
            upsert_latest: format!(
                "INSERT INTO {{keyspace}}.{latest} ({}) VALUES ({}) USING TIMESTAMP ? AND TTL ?",
                columns(&LATEST_HEAD),
                markers(LATEST_HEAD.len() + fields.len())
            ),
            select_asc: page(">", "<=", ""),
            select_desc: page("<", ">=", " ORDER BY timestamp DESC, reading_id DESC"),
            select_latest_of: format!("{select_latest} AND service_name = ?"),
            select_latest,
        }
    }
}

/// The prepared statements of one kind (see [`KindTexts`]).
#[derive(Debug, Clone)]
pub struct KindStatements {
    /// See [`KindTexts::insert`].
    pub insert: PreparedStatement,
    /// See [`KindTexts::upsert_latest`].
    pub upsert_latest: PreparedStatement,
    /// See [`KindTexts::select_asc`].
    pub select_asc: PreparedStatement,
    /// See [`KindTexts::select_desc`].
    pub select_desc: PreparedStatement,
    /// See [`KindTexts::select_latest`].
    pub select_latest: PreparedStatement,
    /// See [`KindTexts::select_latest_of`].
    pub select_latest_of: PreparedStatement,
}

/// The prepared statements of the write and read paths.
#[derive(Debug, Clone)]
pub struct Statements {
    /// Per kind, by [`KindInfo::index`].
    kinds: Vec<KindStatements>,
    /// See [`INSERT_SERIES`].
    pub insert_series: PreparedStatement,
    /// See [`SELECT_SERIES`].
    pub select_series: PreparedStatement,
    /// See [`PING`].
    pub ping: PreparedStatement,
}

impl Statements {
    /// Prepares every statement on `session` for the tables of `keyspace`.
    pub async fn prepare(session: &Session, keyspace: &Keyspace) -> Result<Self, StoreError> {
        let mut kinds = Vec::with_capacity(ALL.len());
        for kind in ALL {
            let texts = KindTexts::of(kind);
            kinds.push(KindStatements {
                insert: prepare(session, keyspace, &texts.insert).await?,
                upsert_latest: prepare(session, keyspace, &texts.upsert_latest).await?,
                select_asc: prepare(session, keyspace, &texts.select_asc).await?,
                select_desc: prepare(session, keyspace, &texts.select_desc).await?,
                select_latest: prepare(session, keyspace, &texts.select_latest).await?,
                select_latest_of: prepare(session, keyspace, &texts.select_latest_of).await?,
            });
        }
        Ok(Self {
            kinds,
            insert_series: prepare(session, keyspace, INSERT_SERIES).await?,
            select_series: prepare(session, keyspace, SELECT_SERIES).await?,
            ping: prepare(session, keyspace, PING).await?,
        })
    }

    /// The statements of kind `K`.
    pub fn of<K: ReadingKind>(&self) -> &KindStatements {
        &self.kinds[K::INFO.index]
    }
}

/// Prepares `text` with its tables qualified by `keyspace` (a validated identifier, never user
/// input): a session-wide `USE` would make prepared statements ambiguous, and Cassandra 5 warns.
async fn prepare(
    session: &Session,
    keyspace: &Keyspace,
    text: &str,
) -> Result<PreparedStatement, StoreError> {
    let text = text.replace("{keyspace}", keyspace.as_str());
    let mut statement = session
        .prepare(text.as_str())
        .await
        .map_err(|source| StoreError::prepare(text, source))?;
    statement.set_is_idempotent(true);
    Ok(statement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiReading, HostReading};

    #[test]
    fn the_api_statements_are_the_ones_the_schema_was_written_for() {
        let texts = KindTexts::of(ApiReading::INFO);
        assert_eq!(
            texts.insert,
            "INSERT INTO {keyspace}.metric_readings (service_name, time_bucket, seq, timestamp, \
             reading_id, instance, method, path, code, duration_ms, count) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        assert_eq!(
            texts.select_desc,
            "SELECT timestamp, reading_id, instance, method, path, code, duration_ms, count \
             FROM {keyspace}.metric_readings WHERE service_name = ? AND time_bucket = ? AND seq = ? \
             AND (timestamp, reading_id) < (?, ?) AND (timestamp) >= (?) \
             ORDER BY timestamp DESC, reading_id DESC LIMIT ?"
        );
        assert_eq!(
            texts.select_latest_of,
            "SELECT service_name, timestamp, reading_id, instance, method, path, code, duration_ms, \
             count FROM {keyspace}.latest_api_readings WHERE shard = ? AND service_name = ?"
        );
    }

    #[test]
    fn the_host_statements_name_every_gauge() {
        let texts = KindTexts::of(HostReading::INFO);
        assert_eq!(
            texts.upsert_latest,
            "INSERT INTO {keyspace}.latest_host_readings (shard, service_name, timestamp, \
             reading_id, instance, cpu_percent, mem_used_bytes, mem_total_bytes, disk_used_bytes, \
             disk_total_bytes, available, heap_bytes, allocated_bytes, freed_bytes) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
        );
    }
}
