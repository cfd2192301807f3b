//! Converting readings of the row format (one fjall row per reading, before blocks) into
//! blocks: `timebucket store convert --data-dir DIR`.
//!
//! A store opened by `serve` that still holds such rows is refused ([`StoreError::OldFormat`])
//! rather than silently showing no readings. Conversion goes window keyspace by window keyspace
//! and chunk by chunk ([`CHUNK_ROWS`] rows): each chunk becomes a part, listed in the manifest in
//! the same atomic batch that deletes its rows, so an interrupted conversion resumes where it
//! stopped and never leaves a reading in both formats. Ids and everything else are kept as
//! stored; the series index, latest rows and rollups are already in their final place.

use std::collections::HashMap;

use fjall::{Keyspace, PersistMode};

use super::{codec, embedded, fields, EmbeddedStore};
use crate::model::kind::{EachKind, Head, Kinds, KINDS};
use crate::model::{ReadingKind, ServiceName};
use crate::store::{PartitionKey, Store, StoreError};

/// Rows converted per part (and held in memory at once).
pub const CHUNK_ROWS: usize = 50_000;

const WHAT: &str = "converting row-format readings";

impl EmbeddedStore {
    /// How many readings of the row format the store holds.
    pub fn legacy_rows(&self) -> Result<u64, StoreError> {
        self.count_legacy_rows(u64::MAX)
    }

    /// How many readings of the row format the store holds, counting no further than `most`.
    pub(super) fn count_legacy_rows(&self, most: u64) -> Result<u64, StoreError> {
        let mut count = Count {
            keyspaces: self.window_keyspaces(),
            rows: 0,
            most,
            failed: None,
        };
        KINDS.each(&mut count);
        match count.failed {
            Some(error) => Err(error),
            None => Ok(count.rows),
        }
    }

    /// Converts every reading of the row format into blocks, calling `progress` with the number
    /// of readings converted after each chunk; then compacts the blocks. Returns how many.
    pub fn convert(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, StoreError> {
        let mut convert = Convert {
            store: self,
            progress,
            done: 0,
            failed: None,
        };
        KINDS.each(&mut convert);
        if let Some(error) = convert.failed {
            return Err(error);
        }
        let done = convert.done;
        self.compact()?;
        Ok(done)
    }

    fn window_keyspaces(&self) -> Vec<Keyspace> {
        let windows = self
            .inner
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        windows.values().cloned().collect()
    }
}

struct Count {
    keyspaces: Vec<Keyspace>,
    rows: u64,
    most: u64,
    failed: Option<StoreError>,
}

impl EachKind<'_, Kinds> for Count {
    fn each<K: ReadingKind>(&mut self, _: &()) {
        for keyspace in &self.keyspaces {
            for guard in keyspace.prefix([K::INFO.tag]) {
                if self.rows >= self.most {
                    return;
                }
                match guard.key() {
                    Ok(_) => self.rows += 1,
                    Err(error) => {
                        self.failed = Some(embedded(WHAT)(error));
                        return;
                    }
                }
            }
        }
    }
}

struct Convert<'a> {
    store: &'a EmbeddedStore,
    progress: &'a mut dyn FnMut(u64),
    done: u64,
    failed: Option<StoreError>,
}

impl EachKind<'_, Kinds> for Convert<'_> {
    fn each<K: ReadingKind>(&mut self, _: &()) {
        if self.failed.is_none() {
            if let Err(error) = self.kind::<K>() {
                self.failed = Some(error);
            }
        }
    }
}

impl Convert<'_> {
    fn kind<K: ReadingKind>(&mut self) -> Result<(), StoreError> {
        for keyspace in self.store.window_keyspaces() {
            loop {
                let (keys, readings) = chunk::<K>(&keyspace)?;
                if keys.is_empty() {
                    break;
                }
                self.write_chunk(&keyspace, keys, readings)?;
            }
        }
        Ok(())
    }

    /// Writes one chunk as a part and deletes its rows, atomically.
    fn write_chunk<K: ReadingKind>(
        &mut self,
        keyspace: &Keyspace,
        keys: Vec<fjall::Slice>,
        readings: Vec<K>,
    ) -> Result<(), StoreError> {
        let settings = *self.store.settings();
        let mut partitions: HashMap<PartitionKey, Vec<K>> = HashMap::new();
        for r in readings {
            let key = PartitionKey {
                service: r.service().clone(),
                bucket: r.bucket_of(settings.bucket_width),
                seq: r.series().seq(settings.shards),
            };
            partitions.entry(key).or_default().push(r);
        }
        let inner = &self.store.inner;
        let staged: Vec<_> = inner
            .blocks
            .stage(partitions.into_iter().collect())?
            .into_iter()
            .collect();
        let mut batch = inner.db.batch();
        inner.blocks.record(&mut batch, &staged, None);
        let n = keys.len() as u64;
        for key in keys {
            batch.remove(keyspace, key);
        }
        let committed = batch
            .commit()
            .and_then(|()| inner.db.persist(PersistMode::SyncData));
        if let Err(error) = committed {
            inner.blocks.discard(staged);
            return Err(embedded(WHAT)(error));
        }
        inner.blocks.publish(staged, None);
        self.done += n;
        (self.progress)(self.done);
        Ok(())
    }
}

/// The next [`CHUNK_ROWS`] rows of kind `K` in `keyspace`: their keys and readings.
fn chunk<K: ReadingKind>(keyspace: &Keyspace) -> Result<(Vec<fjall::Slice>, Vec<K>), StoreError> {
    let mut keys = Vec::new();
    let mut readings = Vec::new();
    for guard in keyspace.prefix([K::INFO.tag]).take(CHUNK_ROWS) {
        let (key, value) = guard.into_inner().map_err(embedded(WHAT))?;
        let (timestamp, id) =
            codec::row_suffix(&key).ok_or_else(|| StoreError::decode(WHAT, "a short row key"))?;
        let service = key[1..]
            .split(|b| *b == 0)
            .next()
            .and_then(|s| std::str::from_utf8(s).ok())
            .ok_or_else(|| StoreError::decode(WHAT, "a row key without a service"))?;
        let head = Head {
            id,
            service: ServiceName::parse(service).map_err(|e| StoreError::decode(WHAT, e))?,
            timestamp,
        };
        readings.push(fields::decode::<K>(head, &value).map_err(|e| StoreError::decode(WHAT, e))?);
        keys.push(key);
    }
    Ok((keys, readings))
}
