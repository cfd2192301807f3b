//! Rollup rows in CQL (`rollups_by_endpoint_1m`, `rollups_by_endpoint_1h`, migration 0004):
//! the statements, the writes that go out with each batch and the read of one rollup partition.
//!
//! A stored row holds the partials of every status code of one endpoint in one slot from one
//! piece ([`endpoint`]): writes group a batch's rows by that key, reads split a stored row
//! back into one [`RollupRow`] per code, so nothing above the store sees the grouping. Stored
//! rows are grouped into unlogged batches per partition like readings; each is written
//! `USING TTL` the time its slot has left in the level's retention, and left out when none.
//!
//! The coverage values of these tables are recorded under the prefix [`COVERAGE_PREFIX`]:
//! the unprefixed ones describe migration 0003's per-code tables, which this version no longer
//! reads, so on an upgraded store queries use raw readings until the new tables cover a range
//! (README, "Rollups").
//!
//! The rollup coverage (`rollup::coverage`) is rows of `timebucket_settings`, written with
//! lightweight transactions: the first open records *written since* only if no replica did
//! before (`IF NOT EXISTS`, then read back, so concurrent first starts agree), and a lowered
//! *since* is written only over a higher value (`IF value > ?`), so two rebuilds never raise it.

use scylla::client::session::Session;
use scylla::response::query_result::QueryRowsResult;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use scylla::DeserializeRow;
use uuid::Uuid;

mod endpoint;
pub mod per_code;

use std::collections::HashMap;

use super::reader::{check, stored_names, typed_rows, whole, MAX_WHOLE_PARTITION_ROWS};
use super::writer::{CqlStore, Request};
use super::Keyspace;
use crate::model::{ApiReading, HostReading, ServiceName, Settings, StatusCode, TimestampMs};
use crate::rollup::coverage::{self, effective_since, since_name};
use crate::rollup::{Piece, Resolution, RollupRequest, RollupRow, RollupSeries};
use crate::store::{remaining_ttl_seconds, RollupPageRequest, StoreError};

/// The prepared statements of one level.
#[derive(Debug, Clone)]
pub struct LevelStatements {
    insert: PreparedStatement,
    select: PreparedStatement,
    /// The first page of [`crate::store::Store::read_rollup_page`].
    first_page: PreparedStatement,
    /// A page after a key.
    next_page: PreparedStatement,
    delete: PreparedStatement,
}

/// The rollup statements of both levels, by [`Resolution::ALL`] order, and of the coverage.
#[derive(Debug, Clone)]
pub struct RollupStatements {
    levels: Vec<LevelStatements>,
    /// `INSERT ... IF NOT EXISTS` of one coverage value.
    record: PreparedStatement,
    /// `UPDATE ... IF value > ?` of one coverage value.
    lower: PreparedStatement,
    /// The values of two names.
    coverage: PreparedStatement,
}

/// The columns a read decodes ([`StoredRow`]).
const READ: &str = "slot, instance, method, path, writer, segment, piece_start, piece_last, aggs";

const COLUMNS: &str = "service_name, kind, time_bucket, slot, instance, method, path, \
                       writer, segment, piece_start, piece_last, aggs";

/// The prefix of this version's coverage names in `timebucket_settings` (see the module note).
const COVERAGE_PREFIX: &str = "by_endpoint/";

/// `name` (a `rollup::coverage` name) as these tables record it.
pub fn rollup_coverage_name(name: &str) -> String {
    format!("{COVERAGE_PREFIX}{name}")
}

impl RollupStatements {
    /// Prepares the statements of both rollup tables of `keyspace`.
    pub async fn prepare(session: &Session, keyspace: &Keyspace) -> Result<Self, StoreError> {
        let mut levels = Vec::new();
        for resolution in Resolution::ALL {
            let table = resolution.table();
            let insert = format!(
                "INSERT INTO {keyspace}.{table} ({COLUMNS}) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
            );
            let select = format!(
                "SELECT {READ} FROM {keyspace}.{table} \
                 WHERE service_name = ? AND kind = ? AND time_bucket = ? AND slot >= ? AND slot <= ?"
            );
            let first_page = format!("{select} LIMIT ?");
            let next_page = format!(
                "SELECT {READ} FROM {keyspace}.{table} \
                 WHERE service_name = ? AND kind = ? AND time_bucket = ? \
                 AND (slot, instance, method, path, writer, segment, piece_start) \
                 > (?, ?, ?, ?, ?, ?, ?) AND (slot) <= (?) LIMIT ?"
            );
            let delete = format!(
                "DELETE FROM {keyspace}.{table} WHERE service_name = ? AND kind = ? \
                 AND time_bucket = ? AND slot = ? AND instance = ? AND method = ? AND path = ? \
                 AND writer = ? AND segment = ? AND piece_start = ?"
            );
            levels.push(LevelStatements {
                insert: prepare(session, insert).await?,
                select: prepare(session, select).await?,
                first_page: prepare(session, first_page).await?,
                next_page: prepare(session, next_page).await?,
                delete: prepare(session, delete).await?,
            });
        }
        let settings = format!("{keyspace}.timebucket_settings");
        let record = format!("INSERT INTO {settings} (name, value) VALUES (?, ?) IF NOT EXISTS");
        let lower = format!("UPDATE {settings} SET value = ? WHERE name = ? IF value > ?");
        let coverage = format!("SELECT name, value FROM {settings} WHERE name IN (?, ?)");
        Ok(Self {
            levels,
            record: prepare(session, record).await?,
            lower: prepare(session, lower).await?,
            coverage: prepare(session, coverage).await?,
        })
    }

    /// The recorded values of `first` and `second` (either may be missing).
    async fn coverage_values(
        &self,
        session: &Session,
        first: &str,
        second: &str,
    ) -> Result<(Option<i64>, Option<i64>), StoreError> {
        const WHAT: &str = "reading the rollup coverage";
        let result = session
            .execute_unpaged(&self.coverage, (first, second))
            .await
            .map_err(|source| StoreError::execute(WHAT, source))?;
        let rows = result
            .into_rows_result()
            .map_err(|e| StoreError::decode(WHAT, e))?;
        let (mut a, mut b) = (None, None);
        for row in rows
            .rows::<(String, i64)>()
            .map_err(|e| StoreError::decode(WHAT, e))?
        {
            let (name, value) = row.map_err(|e| StoreError::decode(WHAT, e))?;
            if name == first {
                a = Some(value);
            } else if name == second {
                b = Some(value);
            }
        }
        Ok((a, b))
    }

    /// Records `name = ms` unless recorded already.
    async fn record_if_absent(
        &self,
        session: &Session,
        name: &str,
        ms: i64,
    ) -> Result<(), StoreError> {
        session
            .execute_unpaged(&self.record, (name, ms))
            .await
            .map(drop)
            .map_err(|source| StoreError::execute("recording the rollup coverage", source))
    }

    /// The recorded *written since*, if any.
    pub async fn written_since(&self, session: &Session) -> Result<Option<i64>, StoreError> {
        let (written, _) = self
            .coverage_values(
                session,
                &rollup_coverage_name(coverage::WRITTEN_SINCE),
                &rollup_coverage_name(coverage::SINCE),
            )
            .await?;
        Ok(written)
    }

    /// The recorded *written since*, recorded with *since* as of `now` on the first open, in
    /// a store holding readings (`holds_readings`) or not.
    pub async fn record_written_since(
        &self,
        session: &Session,
        now: TimestampMs,
        holds_readings: bool,
    ) -> Result<TimestampMs, StoreError> {
        let first = coverage::first_written_since(now, holds_readings).millis();
        // *since* first: a reader that sees *written since* also sees a *since*.
        self.record_if_absent(session, &rollup_coverage_name(coverage::SINCE), first)
            .await?;
        self.record_if_absent(
            session,
            &rollup_coverage_name(coverage::WRITTEN_SINCE),
            first,
        )
        .await?;
        let written = self.written_since(session).await?.ok_or_else(|| {
            StoreError::decode("reading the rollup coverage", "written since is missing")
        })?;
        Ok(TimestampMs::from_millis(written))
    }

    fn of(&self, resolution: Resolution) -> &LevelStatements {
        &self.levels[resolution as usize]
    }
}

async fn prepare(session: &Session, text: String) -> Result<PreparedStatement, StoreError> {
    let mut statement = session
        .prepare(text.as_str())
        .await
        .map_err(|source| StoreError::prepare(text, source))?;
    statement.set_is_idempotent(true);
    Ok(statement)
}

/// The bind values of one stored row (see `COLUMNS`), then its TTL.
type RowValues<'a> = (
    &'a str,
    i32,
    i64,
    CqlTimestamp,
    &'a str,
    &'a str,
    &'a str,
    Uuid,
    i64,
    i64,
    i64,
    Vec<u8>,
    i32,
);

/// The primary key of a stored row: the bind values of a delete, the first ten of an insert.
type RowKey<'a> = (
    &'a str,
    i32,
    i64,
    CqlTimestamp,
    &'a str,
    &'a str,
    &'a str,
    Uuid,
    i64,
    i64,
);

/// The partition of a rollup row, for grouping writes into per-partition batches.
type RowPartition<'a> = (&'a str, i32, i64);

/// The clustering columns of a stored row: slot, instance, method, path, writer, segment,
/// piece start (host rows: empty method and path). No code: a stored row holds every code.
type Clustering<'a> = (CqlTimestamp, &'a str, &'a str, &'a str, Uuid, i64, i64);

/// The clustering columns of the stored row holding `series` at `slot` from `piece`.
fn clustering(slot: TimestampMs, series: &RollupSeries, piece: Piece) -> Clustering<'_> {
    (
        CqlTimestamp(slot.millis()),
        series.instance.as_str(),
        series.method.as_ref().map_or("", |m| m.as_str()),
        series.path.as_ref().map_or("", |p| p.as_str()),
        piece.writer,
        piece.segment as i64,
        piece.start as i64,
    )
}

/// The partition and primary key at `resolution` of the stored row that holds `row`.
fn row_key(row: &RollupRow, resolution: Resolution) -> (RowPartition<'_>, RowKey<'_>) {
    let kind = row.agg.kind() as i32;
    let partition = resolution.partition_of(row.slot);
    let (slot, instance, method, path, writer, segment, start) =
        clustering(row.slot, &row.series, row.piece);
    let service = row.service.as_str();
    let key = (
        service, kind, partition, slot, instance, method, path, writer, segment, start,
    );
    ((service, kind, partition), key)
}

/// `rows` grouped by the stored row that holds them, in first-seen order of the keys.
fn by_stored_row<'a>(
    rows: impl Iterator<Item = (RowPartition<'a>, RowKey<'a>, &'a RollupRow)>,
) -> Vec<(RowPartition<'a>, RowKey<'a>, Vec<&'a RollupRow>)> {
    let mut index: HashMap<RowKey<'a>, usize> = HashMap::new();
    let mut grouped: Vec<(RowPartition<'a>, RowKey<'a>, Vec<&'a RollupRow>)> = Vec::new();
    for (partition, key, row) in rows {
        match index.get(&key) {
            Some(&at) => grouped[at].2.push(row),
            None => {
                index.insert(key, grouped.len());
                grouped.push((partition, key, vec![row]));
            }
        }
    }
    grouped
}

/// The stored rows holding `rows`' rows of `resolution`, each with its partition, as of `now`
/// (with the TTL its slot has left; rows past the level's retention are left out).
fn stored_values<'a>(
    rows: &'a [RollupRow],
    resolution: Resolution,
    settings: &Settings,
    now: TimestampMs,
) -> Vec<(RowPartition<'a>, RowValues<'a>)> {
    let ttl_of = |row: &RollupRow| {
        let end = TimestampMs::from_millis(row.slot.millis() + resolution.step_ms());
        remaining_ttl_seconds(end, resolution.ttl_seconds(settings), now)
    };
    let live = rows
        .iter()
        .filter(|row| row.resolution == resolution && ttl_of(row) > 0)
        .map(|row| {
            let (partition, key) = row_key(row, resolution);
            (partition, key, row)
        });
    by_stored_row(live)
        .into_iter()
        .map(|(partition, key, rows)| {
            let (service, kind, part, slot, instance, method, path, writer, segment, start) = key;
            // The rows of a stored key share their slot (so their TTL) and their piece.
            let first = rows[0];
            let values: RowValues<'a> = (
                service,
                kind,
                part,
                slot,
                instance,
                method,
                path,
                writer,
                segment,
                start,
                first.piece.last as i64,
                endpoint::encode(&rows),
                ttl_of(first),
            );
            (partition, values)
        })
        .collect()
}

/// One stored row as read.
#[derive(DeserializeRow)]
struct StoredRow<'a> {
    slot: CqlTimestamp,
    instance: &'a str,
    method: &'a str,
    path: &'a str,
    writer: Uuid,
    segment: i64,
    piece_start: i64,
    piece_last: i64,
    aggs: &'a [u8],
}

impl CqlStore {
    /// The recorded *written since*, recorded on the first open (`rollup::coverage`).
    pub(super) async fn load_rollups_written_since(&self) -> Result<TimestampMs, StoreError> {
        let statements = self.rollup_statements();
        if let Some(ms) = statements.written_since(&self.session).await? {
            return Ok(TimestampMs::from_millis(ms));
        }
        let holds_readings = self.holds_readings().await?;
        statements
            .record_written_since(&self.session, TimestampMs::now(), holds_readings)
            .await
    }

    /// Whether any latest table has a row: every reading has one until it expires.
    async fn holds_readings(&self) -> Result<bool, StoreError> {
        for shard in self.settings_ref().latest_shards.all() {
            if !self
                .read_latest_shard::<ApiReading>(shard, None)
                .await?
                .is_empty()
                || !self
                    .read_latest_shard::<HostReading>(shard, None)
                    .await?
                    .is_empty()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// See [`crate::store::Store::rollups_since`].
    pub(super) async fn read_rollups_since(
        &self,
        service: &ServiceName,
    ) -> Result<TimestampMs, StoreError> {
        let service_name = rollup_coverage_name(&since_name(Some(service)));
        let (global, own) = self
            .rollup_statements()
            .coverage_values(
                &self.session,
                &rollup_coverage_name(coverage::SINCE),
                &service_name,
            )
            .await?;
        Ok(effective_since(global, own))
    }

    /// See [`crate::store::Store::lower_rollups_since`].
    pub(super) async fn lower_rollups_since_to(
        &self,
        service: Option<&ServiceName>,
        at: TimestampMs,
    ) -> Result<(), StoreError> {
        let name = rollup_coverage_name(&since_name(service));
        let statements = self.rollup_statements();
        statements
            .record_if_absent(&self.session, &name, at.millis())
            .await?;
        self.session
            .execute_unpaged(&statements.lower, (at.millis(), name.as_str(), at.millis()))
            .await
            .map(drop)
            .map_err(|source| StoreError::execute("lowering the rollup coverage", source))
    }

    /// The write requests of `rows`, as of `now`.
    pub(super) fn rollup_requests<'a>(
        &'a self,
        rows: &'a [RollupRow],
        now: TimestampMs,
    ) -> Vec<Request<'a>> {
        let settings = *self.settings_ref();
        let mut requests = Vec::new();
        for resolution in Resolution::ALL {
            let values = stored_values(rows, resolution, &settings, now);
            let statement = &self.rollup_statements().of(resolution).insert;
            requests.extend(self.partition_batches(
                values.into_iter(),
                statement,
                "writing rollups",
            ));
        }
        requests
    }

    /// The delete requests of `rows` (see [`crate::store::Store::delete_rollups`]): one per
    /// stored row holding any of them, grouped into one batch per partition. A stored row goes
    /// whole: the compactor deletes an endpoint's codes together (`rollup::compact`).
    pub(super) fn rollup_deletes<'a>(&'a self, rows: &'a [RollupRow]) -> Vec<Request<'a>> {
        let mut requests = Vec::new();
        for resolution in Resolution::ALL {
            let level = rows
                .iter()
                .filter(|r| r.resolution == resolution)
                .map(|row| {
                    let (partition, key) = row_key(row, resolution);
                    (partition, key, row)
                });
            let keys = by_stored_row(level)
                .into_iter()
                .map(|(partition, key, _)| (partition, key));
            let statement = &self.rollup_statements().of(resolution).delete;
            requests.extend(self.partition_batches(keys, statement, "deleting rollups"));
        }
        requests
    }

    /// See [`crate::store::Store::read_rollups`].
    pub(super) async fn read_rollup_partition(
        &self,
        request: &RollupRequest,
    ) -> Result<Vec<RollupRow>, StoreError> {
        let settings = *self.settings_ref();
        let resolution = request.resolution;
        let now = TimestampMs::now();
        let values = (
            request.service.as_str(),
            request.kind as i32,
            request.partition,
            CqlTimestamp(request.from.millis()),
            CqlTimestamp(request.to.millis()),
        );
        let statement = &self.rollup_statements().of(resolution).select;
        let rows = self
            .read_pages(
                statement,
                &values,
                MAX_WHOLE_PARTITION_ROWS + 1,
                READING,
                |rows, out| {
                    for row in typed_rows::<StoredRow>(rows, READING)? {
                        let row = row?;
                        let end = row.slot.0 + resolution.step_ms();
                        let ttl = resolution.ttl_seconds(&settings);
                        if !crate::store::expired(TimestampMs::from_millis(end), ttl, now) {
                            decode_into(request, row, out)?;
                        }
                    }
                    Ok(())
                },
            )
            .await?;
        whole(rows, MAX_WHOLE_PARTITION_ROWS, READING)
    }

    /// See [`crate::store::Store::read_rollup_page`].
    pub(super) async fn read_rollup_rows_page(
        &self,
        page: &RollupPageRequest,
    ) -> Result<Vec<RollupRow>, StoreError> {
        let request = &page.rows;
        let statements = self.rollup_statements().of(request.resolution);
        let limit = i32::try_from(page.limit).unwrap_or(i32::MAX).max(1);
        let (service, kind, partition) = (
            request.service.as_str(),
            request.kind as i32,
            request.partition,
        );
        let to = CqlTimestamp(request.to.millis());
        // LIMIT counts stored rows; each comes back whole (every code), so resuming after the
        // key of the last row returned skips nothing.
        let decode_page = |rows: &QueryRowsResult, out: &mut Vec<RollupRow>| {
            for row in typed_rows::<StoredRow>(rows, READING)? {
                decode_into(request, row?, out)?;
            }
            Ok(())
        };
        match &page.after {
            None => {
                let from = CqlTimestamp(request.from.millis());
                let values = (service, kind, partition, from, to, limit);
                self.read_pages(
                    &statements.first_page,
                    &values,
                    limit as usize,
                    READING,
                    decode_page,
                )
                .await
            }
            Some(after) => {
                let (slot, instance, method, path, writer, segment, start) =
                    clustering(after.slot, &after.series, after.piece);
                let values = (
                    service, kind, partition, slot, instance, method, path, writer, segment, start,
                    to, limit,
                );
                self.read_pages(
                    &statements.next_page,
                    &values,
                    limit as usize,
                    READING,
                    decode_page,
                )
                .await
            }
        }
    }
}

const READING: &str = "reading rollups";

/// The rows (one per code) of a stored row of `request`'s partition, appended to `out`.
fn decode_into(
    request: &RollupRequest,
    row: StoredRow<'_>,
    out: &mut Vec<RollupRow>,
) -> Result<(), StoreError> {
    let aggs = endpoint::decode(row.aggs).map_err(|e| StoreError::decode(READING, e))?;
    let (instance, method, path) = stored_names(READING, row.instance, row.method, row.path)?;
    let piece = Piece {
        writer: row.writer,
        segment: row.segment as u64,
        start: row.piece_start as u64,
        last: row.piece_last as u64,
    };
    for (code, agg) in aggs {
        let code = method
            .is_some()
            .then(|| check(READING, "code", StatusCode::parse(i64::from(code))))
            .transpose()?;
        out.push(RollupRow {
            service: request.service.clone(),
            resolution: request.resolution,
            slot: TimestampMs::from_millis(row.slot.0),
            series: RollupSeries {
                instance: instance.clone(),
                method: method.clone(),
                path: path.clone(),
                code,
            },
            piece,
            agg,
        });
    }
    Ok(())
}
