//! The data step of migration 0004: the per-code rollup rows of migration 0003's tables
//! (`rollups_1m`, `rollups_1h`), copied into the per-endpoint tables, and their coverage values
//! copied under [`super::COVERAGE_PREFIX`], so an upgraded keyspace keeps its rollup history.
//!
//! `migrate up` runs it once, right after 0004's tables exist, before any version that writes
//! them has opened the keyspace (such a version needs 0004 applied). The writers of the old
//! tables must be stopped first (README, "Rollups"): rows they write afterwards are not copied.
//!
//! Invariants:
//! - **Idempotent.** A stored row's key comes from its rows' keys, and every row of a stored
//!   key is copied in one group, so a rerun (after a crash half way) rewrites the same rows.
//! - **A group is one slot of one endpoint.** The old tables cluster by slot, instance, method,
//!   path, then code: the rows of one endpoint in one slot (every code, every piece) are
//!   contiguous in a scan, so the copy holds one such group at a time.
//! - **Coverage only where absent**: a value already recorded under the prefix is kept.

use futures::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::response::{PagingState, PagingStateResponse};
use scylla::value::CqlTimestamp;
use scylla::DeserializeRow;
use uuid::Uuid;

use super::super::reader::{check, stored_names, typed_rows};
use super::super::Keyspace;
use super::{rollup_coverage_name, stored_values, RollupStatements};
use crate::model::{ServiceName, Settings, StatusCode, TimestampMs};
use crate::rollup::coverage;
use crate::rollup::{Agg, Piece, Resolution, RollupRow, RollupSeries};
use crate::store::StoreError;

/// The tables of migration 0003, by [`Resolution::ALL`] order.
const OLD_TABLES: [&str; 2] = ["rollups_1m", "rollups_1h"];

const WHAT: &str = "copying per-code rollups";

/// Inserts of one group in flight.
const IN_FLIGHT: usize = 32;

/// What a copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Per-code rows read.
    pub rows: u64,
    /// Per-endpoint rows written.
    pub stored: u64,
    /// Coverage values of the old tables found (each recorded under the prefix unless there
    /// already).
    pub coverage: u64,
}

/// One row of the old tables.
#[derive(DeserializeRow)]
struct OldRow<'a> {
    service_name: &'a str,
    slot: CqlTimestamp,
    instance: &'a str,
    method: &'a str,
    path: &'a str,
    code: i32,
    writer: Uuid,
    segment: i64,
    piece_start: i64,
    piece_last: i64,
    agg: &'a [u8],
}

/// Copies every per-code rollup row of `keyspace` into the per-endpoint tables, and the
/// coverage values, as of `now`.
pub async fn copy_per_code_rollups(
    session: &Session,
    keyspace: &Keyspace,
    settings: &Settings,
    now: TimestampMs,
) -> Result<Copied, StoreError> {
    let statements = RollupStatements::prepare(session, keyspace).await?;
    let mut copied = Copied {
        coverage: copy_coverage(session, keyspace).await?,
        ..Copied::default()
    };
    for (resolution, table) in Resolution::ALL.into_iter().zip(OLD_TABLES) {
        let scan = format!(
            "SELECT service_name, slot, instance, method, path, code, \
             writer, segment, piece_start, piece_last, agg FROM {keyspace}.{table}"
        );
        let scan = session
            .prepare(scan.as_str())
            .await
            .map_err(|source| StoreError::prepare(scan, source))?;
        let mut group: Vec<RollupRow> = Vec::new();
        let mut paging = PagingState::start();
        loop {
            let (result, response) = session
                .execute_single_page(&scan, (), paging)
                .await
                .map_err(|source| StoreError::execute(WHAT, source))?;
            let rows = result
                .into_rows_result()
                .map_err(|e| StoreError::decode(WHAT, e))?;
            for row in typed_rows::<OldRow>(&rows, WHAT)? {
                let row = decode(row?, resolution)?;
                if group.last().is_some_and(|last| !same_group(last, &row)) {
                    copied.stored +=
                        write(session, &statements, &group, resolution, settings, now).await?;
                    group.clear();
                }
                group.push(row);
                copied.rows += 1;
            }
            match response {
                PagingStateResponse::HasMorePages { state } => paging = state,
                PagingStateResponse::NoMorePages => break,
            }
        }
        copied.stored += write(session, &statements, &group, resolution, settings, now).await?;
    }
    Ok(copied)
}

/// Whether `a` and `b` are rows of one group: one slot (so one partition) of one endpoint of
/// one service and kind.
fn same_group(a: &RollupRow, b: &RollupRow) -> bool {
    a.slot == b.slot
        && a.service == b.service
        && a.agg.kind() == b.agg.kind()
        && a.series.same_endpoint(&b.series)
}

/// Writes the per-endpoint rows of `group`; how many.
async fn write(
    session: &Session,
    statements: &RollupStatements,
    group: &[RollupRow],
    resolution: Resolution,
    settings: &Settings,
    now: TimestampMs,
) -> Result<u64, StoreError> {
    let insert = &statements.of(resolution).insert;
    let values = stored_values(group, resolution, settings, now);
    futures::stream::iter(values.iter().map(|(_, row)| async move {
        session
            .execute_unpaged(insert, row)
            .await
            .map(drop)
            .map_err(|source| StoreError::execute(WHAT, source))
    }))
    .buffer_unordered(IN_FLIGHT)
    .try_collect::<()>()
    .await?;
    Ok(values.len() as u64)
}

/// An old row as a [`RollupRow`].
fn decode(row: OldRow<'_>, resolution: Resolution) -> Result<RollupRow, StoreError> {
    let agg = Agg::from_bytes(row.agg).map_err(|e| StoreError::decode(WHAT, e))?;
    let (instance, method, path) = stored_names(WHAT, row.instance, row.method, row.path)?;
    let code = method
        .is_some()
        .then(|| check(WHAT, "code", StatusCode::parse(i64::from(row.code))))
        .transpose()?;
    Ok(RollupRow {
        service: check(WHAT, "service_name", ServiceName::parse(row.service_name))?,
        resolution,
        slot: TimestampMs::from_millis(row.slot.0),
        series: RollupSeries {
            instance,
            method,
            path,
            code,
        },
        piece: Piece {
            writer: row.writer,
            segment: row.segment as u64,
            start: row.piece_start as u64,
            last: row.piece_last as u64,
        },
        agg,
    })
}

/// Records every coverage value of the old tables (`rollups_*` names) under the new prefix,
/// unless recorded there already; how many were recorded.
async fn copy_coverage(session: &Session, keyspace: &Keyspace) -> Result<u64, StoreError> {
    let read = format!("SELECT name, value FROM {keyspace}.timebucket_settings");
    let result = session
        .query_unpaged(read, ())
        .await
        .map_err(|source| StoreError::execute(WHAT, source))?;
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::decode(WHAT, e))?;
    let record = format!(
        "INSERT INTO {keyspace}.timebucket_settings (name, value) VALUES (?, ?) IF NOT EXISTS"
    );
    let record = session
        .prepare(record.as_str())
        .await
        .map_err(|source| StoreError::prepare(record, source))?;
    let mut recorded = 0;
    for row in rows
        .rows::<(String, i64)>()
        .map_err(|e| StoreError::decode(WHAT, e))?
    {
        let (name, value) = row.map_err(|e| StoreError::decode(WHAT, e))?;
        let old = name == coverage::WRITTEN_SINCE
            || name == coverage::SINCE
            || name.starts_with(&format!("{}/", coverage::SINCE));
        if old {
            session
                .execute_unpaged(&record, (rollup_coverage_name(&name), value))
                .await
                .map_err(|source| StoreError::execute(WHAT, source))?;
            recorded += 1;
        }
    }
    Ok(recorded)
}
