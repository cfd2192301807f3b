//! Rollup rows in the embedded store: one keyspace per level and retention window
//! (`r1m_<start>`, `r1h_<start>`), dropped whole once past the level's retention, like the
//! readings' windows.
//!
//! Key: `R`, kind index, service, slot, instance, method, path, code, writer, segment, piece
//! start — the CQL primary key, so a replayed piece overwrites its row. Value: the whole
//! [`RollupRow`] ([`RollupRow::to_bytes`]: postcard, then the aggregate's extension). Rows are
//! written in the same atomic batch as their readings.
//!
//! The rollup coverage (`rollup::coverage`) is kept in the `meta` keyspace next to the
//! settings, one key per value (its name), the value an `i64` of epoch milliseconds (big
//! endian). Only one process opens the store (fjall's lock), so lowering a value by reading
//! and writing it needs no transaction.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::PoisonError;

use fjall::{Database, Keyspace};

use super::codec::{push_i64, push_text};
use super::{embedded, EmbeddedStore};
use crate::model::ServiceName;
use crate::model::TimestampMs;
use crate::rollup::coverage::{self, effective_since, since_name};
use crate::rollup::{Resolution, RollupRequest, RollupRow};
use crate::store::{expired, RollupKey, RollupPageRequest, StoreError};

/// Tag of rollup keys.
const ROLLUP: u8 = b'R';

/// Open rollup window keyspaces by level and window start (epoch seconds).
pub(super) type Windows = BTreeMap<(Resolution, i64), Keyspace>;

fn keyspace_name(resolution: Resolution, start: i64) -> String {
    format!("r{}_{start}", resolution.name())
}

/// The rollup windows already on disk.
pub(super) fn open_windows(db: &Database) -> Result<Windows, StoreError> {
    let mut windows = Windows::new();
    for name in db.list_keyspace_names() {
        for resolution in Resolution::ALL {
            let prefix = format!("r{}_", resolution.name());
            if let Some(start) = name.strip_prefix(&prefix).and_then(|s| s.parse().ok()) {
                let keyspace = db
                    .keyspace(&name, super::scan_keyspace_options)
                    .map_err(embedded("opening a rollup window"))?;
                windows.insert((resolution, start), keyspace);
            }
        }
    }
    Ok(windows)
}

fn window_start(resolution: Resolution, slot: TimestampMs) -> i64 {
    let window = resolution.window_seconds();
    slot.millis().div_euclid(1000).div_euclid(window) * window
}

fn prefix(kind: usize, service: &str) -> Vec<u8> {
    let mut key = vec![ROLLUP, kind as u8];
    push_text(&mut key, service);
    key
}

/// The key of a row.
fn key(row: &RollupRow) -> Vec<u8> {
    key_at(row.agg.kind(), row.service.as_str(), &RollupKey::of(row))
}

/// The key of the row of kind `kind` of `service` at `at`.
fn key_at(kind: usize, service: &str, at: &RollupKey) -> Vec<u8> {
    let mut key = prefix(kind, service);
    push_i64(&mut key, at.slot.millis());
    let s = &at.series;
    push_text(&mut key, s.instance.as_str());
    push_text(&mut key, s.method.as_ref().map_or("", |m| m.as_str()));
    push_text(&mut key, s.path.as_ref().map_or("", |p| p.as_str()));
    push_i64(&mut key, s.code.map_or(0, |c| i64::from(c.get())));
    key.extend_from_slice(at.piece.writer.as_bytes());
    push_i64(&mut key, at.piece.segment as i64);
    push_i64(&mut key, at.piece.start as i64);
    key
}

/// A rollup row encoded for its window.
pub(super) struct EncodedRollup {
    resolution: Resolution,
    window: i64,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// Encodes the rows still within their level's retention at `now`.
pub(super) fn encode(
    rows: &[RollupRow],
    settings: &crate::model::Settings,
    now: TimestampMs,
) -> Vec<EncodedRollup> {
    rows.iter()
        .filter(|row| !past_retention(row.resolution, row.slot, settings, now))
        .map(|row| EncodedRollup {
            resolution: row.resolution,
            window: window_start(row.resolution, row.slot),
            key: key(row),
            value: row.to_bytes(),
        })
        .collect()
}

/// Whether a slot's rows are past the level's retention (counted from the slot's end).
fn past_retention(
    resolution: Resolution,
    slot: TimestampMs,
    settings: &crate::model::Settings,
    now: TimestampMs,
) -> bool {
    let end = TimestampMs::from_millis(slot.millis() + resolution.step_ms());
    expired(end, resolution.ttl_seconds(settings), now)
}

fn read_ms(meta: &Keyspace, name: &str) -> Result<Option<i64>, StoreError> {
    const WHAT: &str = "reading the rollup coverage";
    let Some(bytes) = meta.get(name.as_bytes()).map_err(embedded(WHAT))? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = bytes
        .as_ref()
        .try_into()
        .map_err(|_| StoreError::decode(WHAT, format!("`{name}` is not 8 bytes")))?;
    Ok(Some(i64::from_be_bytes(bytes)))
}

fn write_ms(meta: &Keyspace, name: &str, ms: i64) -> Result<(), StoreError> {
    meta.insert(name.as_bytes(), ms.to_be_bytes())
        .map_err(embedded("recording the rollup coverage"))
}

/// The recorded *written since* instant, recorded (with *since*) as of `now` at the first open;
/// `latest` tells whether the store holds readings (every reading has a latest row until it
/// expires).
pub(super) fn record_written_since(
    meta: &Keyspace,
    latest: &Keyspace,
    now: TimestampMs,
) -> Result<TimestampMs, StoreError> {
    if let Some(ms) = read_ms(meta, coverage::WRITTEN_SINCE)? {
        return Ok(TimestampMs::from_millis(ms));
    }
    let holds_readings = !latest
        .is_empty()
        .map_err(embedded("reading the latest readings"))?;
    let first = coverage::first_written_since(now, holds_readings);
    if read_ms(meta, coverage::SINCE)?.is_none() {
        write_ms(meta, coverage::SINCE, first.millis())?;
    }
    write_ms(meta, coverage::WRITTEN_SINCE, first.millis())?;
    Ok(first)
}

impl EmbeddedStore {
    /// See [`crate::store::Store::rollups_since`].
    pub(super) fn rollups_since_of(
        &self,
        service: &ServiceName,
    ) -> Result<TimestampMs, StoreError> {
        let meta = &self.inner.meta;
        Ok(effective_since(
            read_ms(meta, coverage::SINCE)?,
            read_ms(meta, &since_name(Some(service)))?,
        ))
    }

    /// See [`crate::store::Store::lower_rollups_since`].
    pub(super) fn lower_rollups_since_to(
        &self,
        service: Option<&ServiceName>,
        at: TimestampMs,
    ) -> Result<(), StoreError> {
        let name = since_name(service);
        let meta = &self.inner.meta;
        if read_ms(meta, &name)?.is_none_or(|ms| at.millis() < ms) {
            write_ms(meta, &name, at.millis())?;
            self.persist()?;
        }
        Ok(())
    }

    fn rollup_window(&self, resolution: Resolution, start: i64) -> Result<Keyspace, StoreError> {
        let mut windows = self.rollup_windows();
        if let Some(keyspace) = windows.get(&(resolution, start)) {
            return Ok(keyspace.clone());
        }
        let keyspace = self
            .inner
            .db
            .keyspace(
                &keyspace_name(resolution, start),
                super::scan_keyspace_options,
            )
            .map_err(embedded("creating a rollup window"))?;
        windows.insert((resolution, start), keyspace.clone());
        Ok(keyspace)
    }

    fn rollup_windows(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.inner
            .rollups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds encoded rollup rows to `batch`.
    pub(super) fn add_rollups(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        rows: Vec<EncodedRollup>,
    ) -> Result<(), StoreError> {
        for row in rows {
            let keyspace = self.rollup_window(row.resolution, row.window)?;
            batch.insert(&keyspace, row.key, row.value);
        }
        Ok(())
    }

    /// Writes the rollup windows' memtables out and major-compacts them (dropping the rows
    /// compaction deleted): what fjall reaches on its own over time, for benchmarks.
    pub fn compact_rollup_windows(&self) -> Result<(), StoreError> {
        let keyspaces: Vec<Keyspace> = self.rollup_windows().values().cloned().collect();
        for keyspace in keyspaces {
            keyspace
                .rotate_memtable_and_wait()
                .map_err(embedded("flushing a rollup memtable"))?;
            keyspace
                .major_compact()
                .map_err(embedded("compacting a rollup window"))?;
        }
        Ok(())
    }

    /// See [`crate::store::Store::delete_rollups`]: one atomic batch, synced.
    pub(super) fn delete_rollup_rows(&self, rows: &[RollupRow]) -> Result<(), StoreError> {
        let mut batch = self.inner.db.batch();
        for row in rows {
            let start = window_start(row.resolution, row.slot);
            let keyspace = self.rollup_windows().get(&(row.resolution, start)).cloned();
            if let Some(keyspace) = keyspace {
                batch.remove(&keyspace, key(row));
            }
        }
        batch.commit().map_err(embedded("deleting rollups"))?;
        self.persist()
    }

    /// Drops every rollup window whose slots are all past their level's retention at `now`;
    /// returns how many.
    pub fn drop_expired_rollup_windows(&self, now: TimestampMs) -> Result<usize, StoreError> {
        let settings = self.inner.settings;
        let expired: Vec<Keyspace> = {
            let mut windows = self.rollup_windows();
            let gone: Vec<(Resolution, i64)> = windows
                .keys()
                .copied()
                .filter(|&(resolution, start)| {
                    let end = start + resolution.window_seconds();
                    let horizon =
                        now.millis() / 1000 - i64::from(resolution.ttl_seconds(&settings));
                    end <= horizon
                })
                .collect();
            gone.iter().filter_map(|key| windows.remove(key)).collect()
        };
        let dropped = expired.len();
        for keyspace in expired {
            self.inner
                .db
                .delete_keyspace(keyspace)
                .map_err(embedded("dropping an expired rollup window"))?;
        }
        Ok(dropped)
    }

    /// See [`crate::store::Store::read_rollups`].
    pub(super) fn rollups_of(&self, request: &RollupRequest) -> Result<Vec<RollupRow>, StoreError> {
        let (settings, now) = (self.inner.settings, TimestampMs::now());
        let mut rows = self.rollup_rows(request, None, usize::MAX)?;
        rows.retain(|row| !past_retention(row.resolution, row.slot, &settings, now));
        Ok(rows)
    }

    /// See [`crate::store::Store::read_rollup_page`].
    pub(super) fn rollup_page_of(
        &self,
        request: &RollupPageRequest,
    ) -> Result<Vec<RollupRow>, StoreError> {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX).max(1);
        self.rollup_rows(&request.rows, request.after.as_ref(), limit)
    }

    /// At most `limit` rows of `request`'s slots after `after` (from its first slot when
    /// `None`), in key order, whatever their retention.
    fn rollup_rows(
        &self,
        request: &RollupRequest,
        after: Option<&RollupKey>,
        limit: usize,
    ) -> Result<Vec<RollupRow>, StoreError> {
        const WHAT: &str = "reading rollups";
        let start = window_start(
            request.resolution,
            TimestampMs::from_millis(request.partition * 1000),
        );
        let Some(keyspace) = self
            .rollup_windows()
            .get(&(request.resolution, start))
            .cloned()
        else {
            return Ok(Vec::new());
        };
        let service = request.service.as_str();
        let prefix = prefix(request.kind, service);
        let from = match after {
            Some(after) => Bound::Excluded(key_at(request.kind, service, after)),
            None => {
                let mut from = prefix.clone();
                push_i64(&mut from, request.from.millis());
                Bound::Included(from)
            }
        };
        let mut until = prefix;
        push_i64(&mut until, request.to.millis().saturating_add(1));
        let mut rows = Vec::new();
        for guard in keyspace.range((from, Bound::Excluded(until))).take(limit) {
            let (_, value) = guard.into_inner().map_err(embedded(WHAT))?;
            rows.push(RollupRow::from_bytes(&value).map_err(|e| StoreError::decode(WHAT, e))?);
        }
        Ok(rows)
    }
}
