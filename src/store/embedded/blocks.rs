//! The embedded store's readings: immutable, columnar block files cut by time window, many
//! series per file (the design notes' "blocks").
//!
//! Flow: every [`Store::write`](crate::store::Store::write) of the flusher lands as one small
//! *part* (a block of span 0, any time range), synced before the write returns, because the WAL
//! deletes what a write confirmed. The compactor ([`Blocks::compact`], run by a background
//! thread of the store and by `EmbeddedStore::compact`) rewrites parts into blocks of one aligned
//! time window, small while the window is recent and larger as it ages: a window of 4 h once it
//! has ended, else of 1 h once that has ended, else the current 15 min. Retention deletes whole
//! blocks once their newest reading is past the TTL.
//!
//! The set of live blocks is a manifest in fjall (keyspace `blocks`): a block exists once its
//! manifest entry is committed, in the same atomic batch as the latest rows, series entries and
//! rollups of its write (or, for a compaction, as the removal of the blocks it replaces). A
//! file without an entry (a crash between writing and committing) is deleted at open.
//!
//! Exactly once without an id per reading: the flusher gives each reading the id of its WAL
//! place ([`ReadingId::from_wal`](crate::model::ReadingId::from_wal)), and the manifest keeps the
//! newest WAL record applied (the `mark`). A reading of a newer record is new and written as is;
//! one of an older record (a replay after a crash) or without a WAL id (a direct write) is
//! written only if its partition does not already hold its key. The id column costs about a
//! byte per reading, because WAL ids of one partition are nearly consecutive. WAL ids go to
//! one WAL only, the first whose flusher asked (its rollup writer id is the manifest's `owner`):
//! positions of another WAL (a second writer, a WAL made anew) would collide with them, so its
//! readings keep their acceptance ids (16 random bytes each, and checked against the stored
//! keys like any direct write).
//!
//! Block file (`blocks/{id:020}.blk`), integers little-endian:
//! ```text
//! 0        8                                  index_offset          +index_len       +24
//! +--------+----------------------------------+---------------------+----------------+
//! | magic  | partition 0 columns | partition 1 | ...  | index (zstd)| footer         |
//! |TBBLK\0\0\x01| col 0 | col 1 | ... | col c |       | postcard    | off u64 len u64|
//! +--------+----------------------------------+---------------------+ crc u32 "TBBF" |
//!                                                                   +----------------+
//! index  := kind:u8 min_ts max_ts names:[text] partitions:[partition]   (postcard, then zstd)
//! partition := service:name# bucket:i64 seq rows min_ts max_ts offset lens:[u32] crc tuples
//! ```
//! Invariants: partitions are sorted by `(service, bucket, seq)` and hold at least one row; a
//! partition's rows are sorted by `(timestamp, id)` and its columns (see `columns`) follow each
//! other from `offset`, covered by `crc` (CRC32C); the index is covered by the footer's crc; a
//! block holds one kind; a key `(timestamp, id)` is in at most one live block of a partition; a
//! compacted block (span > 0) holds only rows of its window `[window, window + span)`.

mod columns;
mod compact;
mod file;
mod projected;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use fjall::{Keyspace, OwnedWriteBatch};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{ReadingId, ReadingKind, TimestampMs};
use crate::store::{expired, Order, PageRequest, PartitionKey, RetentionHold, StoreError};
#[cfg(test)]
pub use compact::MAX_PARTS_WAITING;
pub use file::Block;

/// First bytes of a block file: name and format version.
const MAGIC: [u8; 8] = *b"TBBLK\0\0\x01";
/// The header (the magic).
const HEADER: &[u8] = &MAGIC;
/// Last bytes of a block file.
const TRAILER: &[u8] = b"TBBF";
/// The manifest key of the WAL mark (block ids are 8-byte keys).
const MARK_KEY: &[u8] = b"mark";
/// The manifest key of the rollup writer id of the WAL whose positions are the readings' ids.
const OWNER_KEY: &[u8] = b"owner";

/// A block file's failure.
#[derive(Debug, Error)]
pub enum BlockError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A block's bytes are not what the format says.
    #[error("a damaged block: {0}")]
    Damaged(String),
}

impl BlockError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        BlockError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// In the store's classes: damage is a decode error, any I/O failure may pass.
    pub fn into_store(self, what: &'static str) -> StoreError {
        match self {
            BlockError::Io { .. } => StoreError::unavailable(what, self),
            BlockError::Damaged(_) => StoreError::decode(what, self),
        }
    }
}

/// A block's manifest entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The kind's tag.
    pub kind: u8,
    /// The window's length in seconds; 0 for a part (any range).
    pub span: u32,
    /// The window's start, epoch seconds (0 for a part).
    pub window: i64,
}

/// A live block.
#[derive(Debug, Clone)]
pub struct Live {
    /// Its manifest entry.
    pub entry: Entry,
    /// When it became live (or the store opened): the age of a part.
    pub since: std::time::Instant,
    /// The open block.
    pub block: Arc<Block>,
}

/// A block written but not yet in the manifest.
#[derive(Debug)]
pub struct Staged {
    id: u64,
    live: Live,
}

/// The live blocks of a store.
pub struct Blocks {
    dir: PathBuf,
    manifest: Keyspace,
    live: RwLock<BTreeMap<u64, Live>>,
    next_id: AtomicU64,
    /// The newest WAL record `(segment, offset)` applied.
    mark: Mutex<Option<(u64, u64)>>,
    /// The WAL (its rollup writer id) whose positions are the ids of the readings: the only
    /// one given WAL ids, so that ids of two WALs never collide.
    owner: Mutex<Option<uuid::Uuid>>,
    /// One compaction at a time.
    compacting: Mutex<()>,
}

fn fjall_error(what: &'static str) -> impl FnOnce(fjall::Error) -> StoreError {
    move |e| StoreError::unavailable(what, e)
}

impl Blocks {
    /// Opens the blocks of the manifest in `manifest`, files in `dir`; deletes files the
    /// manifest does not list.
    pub fn open(dir: PathBuf, manifest: Keyspace) -> Result<Self, StoreError> {
        const WHAT: &str = "opening the blocks";
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::unavailable(WHAT, e))?;
        let mut live = BTreeMap::new();
        let mut mark = None;
        let mut owner = None;
        for guard in manifest.iter() {
            let (key, value) = guard.into_inner().map_err(fjall_error(WHAT))?;
            if &*key == MARK_KEY {
                mark = Some(postcard::from_bytes(&value).map_err(|e| StoreError::decode(WHAT, e))?);
                continue;
            }
            if &*key == OWNER_KEY {
                owner =
                    Some(postcard::from_bytes(&value).map_err(|e| StoreError::decode(WHAT, e))?);
                continue;
            }
            let id = u64::from_be_bytes(
                (*key)
                    .try_into()
                    .map_err(|_| StoreError::decode(WHAT, "a manifest key is not a block id"))?,
            );
            let entry: Entry =
                postcard::from_bytes(&value).map_err(|e| StoreError::decode(WHAT, e))?;
            let block = Block::open(&block_path(&dir, id)).map_err(|e| e.into_store(WHAT))?;
            live.insert(
                id,
                Live {
                    entry,
                    since: std::time::Instant::now(),
                    block: Arc::new(block),
                },
            );
        }
        let listed: HashSet<PathBuf> = live.keys().map(|&id| block_path(&dir, id)).collect();
        let mut next = live.keys().next_back().map_or(1, |id| id + 1);
        for file in std::fs::read_dir(&dir).map_err(|e| StoreError::unavailable(WHAT, e))? {
            let path = file.map_err(|e| StoreError::unavailable(WHAT, e))?.path();
            if let Some(id) = file_id(&path) {
                next = next.max(id + 1);
            }
            if !listed.contains(&path) {
                tracing::info!(file = %path.display(), "removing a block no manifest lists");
                std::fs::remove_file(&path).map_err(|e| StoreError::unavailable(WHAT, e))?;
            }
        }
        Ok(Self {
            dir,
            manifest,
            live: RwLock::new(live),
            next_id: AtomicU64::new(next),
            mark: Mutex::new(mark),
            owner: Mutex::new(owner),
            compacting: Mutex::new(()),
        })
    }

    /// Whether the WAL of rollup writer `writer` gets WAL ids (see `Store::wal_ids`): the
    /// first WAL to ask is recorded as the owner and is the only one that does. The record is
    /// not synced on its own: the journal keeps fjall's writes in order, so it is durable
    /// before any part written with those ids is.
    pub fn wal_ids_for(&self, writer: uuid::Uuid) -> bool {
        let mut owner = self.owner.lock().unwrap_or_else(PoisonError::into_inner);
        match *owner {
            Some(owner) if owner == writer => true,
            Some(owner) => {
                tracing::warn!(
                    %owner, %writer,
                    "the embedded store's reading ids are those of another WAL's positions: \
                     this WAL's readings keep their acceptance ids"
                );
                false
            }
            None => match self.manifest.insert(OWNER_KEY, postcard_bytes(&writer)) {
                Ok(()) => {
                    *owner = Some(writer);
                    true
                }
                Err(error) => {
                    tracing::warn!(%error, "could not record the WAL of the reading ids");
                    false
                }
            },
        }
    }

    pub(super) fn snapshot(&self, kind: u8) -> Vec<(u64, Live)> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.iter()
            .filter(|(_, l)| l.entry.kind == kind)
            .map(|(id, l)| (*id, l.clone()))
            .collect()
    }

    /// Bytes of every live block file.
    pub fn disk_bytes(&self) -> u64 {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.values().map(|l| l.block.bytes).sum()
    }

    /// How many blocks are live, parts included.
    pub fn count(&self) -> usize {
        self.live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Writes `partitions` (rows in any order) as a part, leaving out every reading already
    /// stored (see the module doc); `None` when nothing is left.
    pub fn stage<K: ReadingKind>(
        &self,
        partitions: Vec<(PartitionKey, Vec<K>)>,
    ) -> Result<Option<Staged>, StoreError> {
        const WHAT: &str = "writing a part";
        let mark = *self.mark.lock().unwrap_or_else(PoisonError::into_inner);
        let blocks = self.snapshot(K::INFO.tag);
        let mut fresh = Vec::with_capacity(partitions.len());
        for (key, mut rows) in partitions {
            let maybe_stored = |r: &K| match r.id().wal_record() {
                Some(record) => mark.is_some_and(|mark| record <= mark),
                None => true,
            };
            if rows.iter().any(maybe_stored) {
                let stored = stored_keys(&blocks, &key, &rows)?;
                rows.retain(|r| !stored.contains(&(r.timestamp(), r.id())));
            }
            rows.sort_by_key(|r| (r.timestamp(), r.id()));
            rows.dedup_by_key(|r| (r.timestamp(), r.id()));
            if !rows.is_empty() {
                fresh.push((key, rows));
            }
        }
        if fresh.is_empty() {
            return Ok(None);
        }
        fresh.sort_by(|(a, _), (b, _)| {
            (a.service.as_str(), a.bucket, a.seq).cmp(&(b.service.as_str(), b.bucket, b.seq))
        });
        let entry = Entry {
            kind: K::INFO.tag,
            span: 0,
            window: 0,
        };
        self.write_block(entry, &fresh)
            .map(Some)
            .map_err(|e| e.into_store(WHAT))
    }

    fn write_block<K: ReadingKind>(
        &self,
        entry: Entry,
        partitions: &[(PartitionKey, Vec<K>)],
    ) -> Result<Staged, BlockError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        file::write(&block_path(&self.dir, id), partitions)?;
        self.opened(id, entry)
    }

    /// A new block, to be written partition by partition and then opened with
    /// [`Blocks::opened`].
    fn start_block(&self) -> Result<(u64, file::Writer), BlockError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Ok((id, file::Writer::create(&block_path(&self.dir, id))?))
    }

    /// The block `id`, written, as staged with manifest entry `entry`.
    fn opened(&self, id: u64, entry: Entry) -> Result<Staged, BlockError> {
        let block = Block::open(&block_path(&self.dir, id))?;
        Ok(Staged {
            id,
            live: Live {
                entry,
                since: std::time::Instant::now(),
                block: Arc::new(block),
            },
        })
    }

    /// Adds the manifest entries of `staged` and the newest WAL record among `records` to
    /// `batch`.
    pub fn record(
        &self,
        batch: &mut OwnedWriteBatch,
        staged: &[Staged],
        newest: Option<(u64, u64)>,
    ) {
        for s in staged {
            batch.insert(
                &self.manifest,
                s.id.to_be_bytes(),
                postcard_bytes(&s.live.entry),
            );
        }
        let mark = *self.mark.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(newest) = newest.filter(|n| mark.is_none_or(|m| *n > m)) {
            batch.insert(&self.manifest, MARK_KEY, postcard_bytes(&newest));
        }
    }

    /// Makes `staged` readable and moves the mark, once their batch is committed.
    pub fn publish(&self, staged: Vec<Staged>, newest: Option<(u64, u64)>) {
        if let Some(newest) = newest {
            let mut mark = self.mark.lock().unwrap_or_else(PoisonError::into_inner);
            if mark.is_none_or(|m| newest > m) {
                *mark = Some(newest);
            }
        }
        let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
        for s in staged {
            live.insert(s.id, s.live);
        }
    }

    /// Deletes the files of blocks written but never committed.
    pub fn discard(&self, staged: Vec<Staged>) {
        for s in staged {
            let _ = std::fs::remove_file(&s.live.block.path);
        }
    }

    /// Removes blocks `gone` from the manifest (in `batch`, committed by the caller).
    fn unlist(&self, batch: &mut OwnedWriteBatch, gone: &[u64]) {
        for id in gone {
            batch.remove(&self.manifest, id.to_be_bytes());
        }
    }

    /// Forgets blocks `gone` once their removal is committed and deletes their files (reads
    /// holding one keep reading it).
    fn forget(&self, gone: &[u64]) {
        self.replace(Vec::new(), gone);
    }

    /// Makes `staged` readable and forgets `gone` in one step, so that no read sees both a
    /// compaction's output and its inputs (or neither); deletes the files of `gone`.
    fn replace(&self, staged: Vec<Staged>, gone: &[u64]) {
        let removed: Vec<Live> = {
            let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
            for s in staged {
                live.insert(s.id, s.live);
            }
            gone.iter().filter_map(|id| live.remove(id)).collect()
        };
        for l in removed {
            if let Err(error) = std::fs::remove_file(&l.block.path) {
                tracing::warn!(file = %l.block.path.display(), %error, "could not delete a block");
            }
        }
    }

    /// Deletes every block whose newest reading is past the retention at `now` and that `hold`
    /// lets go (a block ends just after its newest reading); returns how many. `batch` is a
    /// fresh batch of the store's database, committed here.
    pub fn drop_expired(
        &self,
        mut batch: OwnedWriteBatch,
        ttl_seconds: u32,
        hold: &RetentionHold,
        now: TimestampMs,
    ) -> Result<usize, StoreError> {
        let gone: Vec<u64> = {
            let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
            live.iter()
                .filter(|(_, l)| {
                    let newest = TimestampMs::from_millis(l.block.index.max_ts);
                    expired(newest, ttl_seconds, now)
                        && hold.may_drop(TimestampMs::from_millis(newest.millis() + 1))
                })
                .map(|(id, _)| *id)
                .collect()
        };
        if gone.is_empty() {
            return Ok(0);
        }
        tracing::info!(blocks = gone.len(), "retention: deleting expired blocks");
        self.unlist(&mut batch, &gone);
        batch
            .commit()
            .map_err(fjall_error("dropping expired blocks"))?;
        self.forget(&gone);
        Ok(gone.len())
    }

    /// One page of a partition (see [`PageRequest`]): the rows of every block holding the
    /// partition, merged by key.
    pub fn page<K: ReadingKind>(&self, request: &PageRequest) -> Result<Vec<K>, StoreError> {
        const WHAT: &str = "reading readings";
        let (from, to) = match request.order {
            Order::Asc => (request.after.timestamp, request.until),
            Order::Desc => (request.until, request.after.timestamp),
        };
        if from > to {
            return Ok(Vec::new());
        }
        let limit = request.limit as usize;
        let mut rows: Vec<K> = Vec::new();
        for (_, l) in self.snapshot(K::INFO.tag) {
            let Some(meta) = l.block.partition(&request.partition) else {
                continue;
            };
            if !meta.overlaps(from.millis(), to.millis()) {
                continue;
            }
            rows.extend(
                l.block
                    .page::<K>(meta, request)
                    .map_err(|e| e.into_store(WHAT))?,
            );
        }
        rows.sort_by(|a, b| {
            request.order.cmp(
                &crate::store::ReadingKey::of(a),
                &crate::store::ReadingKey::of(b),
            )
        });
        rows.truncate(limit);
        Ok(rows)
    }
}

/// The keys of `rows`' partition already stored in `blocks`, within `rows`' time range.
fn stored_keys<K: ReadingKind>(
    blocks: &[(u64, Live)],
    key: &PartitionKey,
    rows: &[K],
) -> Result<HashSet<(TimestampMs, ReadingId)>, StoreError> {
    const WHAT: &str = "looking for stored readings";
    let from = rows.iter().map(|r| r.timestamp()).min();
    let to = rows.iter().map(|r| r.timestamp()).max();
    let (Some(from), Some(to)) = (from, to) else {
        return Ok(HashSet::new());
    };
    let mut keys = HashSet::new();
    for (_, l) in blocks {
        let Some(meta) = l.block.partition(key) else {
            continue;
        };
        if !meta.overlaps(from.millis(), to.millis()) {
            continue;
        }
        let bytes = l.block.columns(meta).map_err(|e| e.into_store(WHAT))?;
        let split = file::split(&bytes, &meta.lens);
        keys.extend(columns::keys(&split).map_err(|e| e.into_store(WHAT))?);
    }
    Ok(keys)
}

fn postcard_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("plain data serializes")
}

fn block_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.blk"))
}

/// The id of a block file's name, also of a leftover `.tmp`.
fn file_id(path: &Path) -> Option<u64> {
    path.file_stem()?.to_str()?.parse().ok()
}
