//! The embedded store: timebucket with zero set-up, readings in columnar block files
//! (`blocks`), everything else on the `fjall` LSM-tree.
//!
//! Readings: immutable block files cut by time window, many series per file, column by column
//! per partition `(service, time_bucket, seq)`, with a block manifest in fjall; retention
//! deletes whole blocks (see `blocks` for the byte layout, compaction and exactly-once).
//!
//! Why fjall for the rest: latest rows, the series index and rollups are small rows read by key
//! or prefix, which an LSM-tree with ordered keys serves; fjall is pure safe Rust, keeps several
//! keyspaces (column families) with atomic cross-keyspace batches (a write's part is listed in
//! the manifest in the same batch as its latest rows, series entries and rollups), and drops a
//! whole keyspace's files at once. The series index lives in one keyspace per compaction window
//! (`w<start>`), dropped whole once past its TTL; latest readings are keyed by the shard
//! sentinel and replaced only by a newer `(timestamp, reading_id)`; see `codec` for the byte
//! layouts. A store written by earlier versions holds its readings as one row each in those
//! window keyspaces: it is refused until `timebucket store convert` moved them to blocks
//! (`convert`).
//!
//! Expiry agrees with CQL's: a latest row is left out of every answer once its reading is past
//! the retention (and deleted at open and whenever a window is dropped), a series entry once its
//! bucket's end is (and deleted with its window); neither is written when already past it.
//!
//! Durability: every [`Store::write`] ends with an fdatasync of fjall's journal, because the WAL
//! is confirmed (and its segments deleted) right after a write returns. The WAL remains the
//! durability boundary for accepted-but-unwritten readings.
//!
//! Rollup rows live in their own windowed keyspaces with their levels' retentions (`rollup`).
//!
//! Invariant: the flusher is the only writer, so the read-compare-write of latest rows needs no
//! transaction.

pub mod alerting;
mod blocks;
mod codec;
mod convert;
mod fields;
mod reader;
pub mod recovering;
mod rollup;
mod writer;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use fjall::config::{CompressionPolicy, FilterPolicy, PinningPolicy};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::model::kind::{EachKind, Kinds, KINDS};
use crate::model::{ReadingKind, Seq, ServiceName, Settings, TimeBucket, TimestampMs};
use crate::store::{
    expired, PageRequest, RetentionHold, SeriesEntry, Store, StoreError, WriteBatch,
};

/// fjall's block cache (decompressed blocks of tables, for reads): its default, stated here
/// because it is one term of the memory model (README, "Embedded store memory").
pub const BLOCK_CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// Most bytes of journal before fjall flushes the memtables it holds (to LZ4-compressed tables)
/// and deletes it. fjall's default, 512 MiB, let a store of a million readings live wholly in
/// memtables and the uncompressed journal (issue 10 §18); 64 MiB (fjall's minimum) bounds the
/// journal on disk, the memtables it keeps alive in memory, and what a restart replays.
pub const MAX_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;
/// Largest memtable of one keyspace before fjall seals it and flushes it to a table. fjall's
/// default, 64 MiB, times the keyspaces written at once (the current window, latest, the rollup
/// windows), held the service at 300-400 MiB after a million readings; fjall has no working
/// global write-buffer cap, so this is the bound. A keyspace holds its active memtable and up to
/// three sealed ones waiting for a flush worker (fjall halts its writes at four), so 4 MiB
/// rather than 8 takes up to ~16 MiB per busy keyspace off the peak (BENCHMARKS.md, "Embedded
/// store at scale"). Recorded per keyspace when it is created (keyspaces of an older store keep
/// theirs until their window is dropped).
pub const MEMTABLE_BYTES: u64 = 4 * 1024 * 1024;

/// Options of the keyspaces read by key (`meta`, `latest`: the writer reads a latest row
/// before replacing it, which the Bloom filters speed up), and the base of every other
/// keyspace's. Data blocks are LZ4-compressed at every level: fjall's default leaves its first
/// two levels uncompressed, which is where a small or young store's tables all are (the rollup
/// windows of the peer bench's million readings took 2.7x their compressed size there,
/// BENCHMARKS.md, "Notes on the peer run").
fn keyspace_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default()
        .max_memtable_size(MEMTABLE_BYTES)
        .data_block_compression_policy(CompressionPolicy::all(CompressionType::Lz4))
}

/// Options of the keyspaces only ever scanned by prefix (the reading windows, the rollup
/// windows): no Bloom filters, which only serve point reads and cost about 1.25 bytes per row
/// on disk, and no index or filter blocks pinned in memory (fjall pins those of its first two
/// levels), so their index blocks go through the bounded block cache: pinned, they grew the
/// service's memory with the store (~30 MiB per 10 M readings).
fn scan_keyspace_options() -> KeyspaceCreateOptions {
    keyspace_options()
        .filter_policy(FilterPolicy::disabled())
        .filter_block_pinning_policy(PinningPolicy::disabled())
        .index_block_pinning_policy(PinningPolicy::disabled())
}

/// The folder of the block files, inside the store's directory.
const BLOCKS_DIR: &str = "blocks";
/// How often the compactor looks for a pass to run.
const COMPACT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The meta keyspace key of the recorded settings.
const SETTINGS_KEY: &[u8] = b"settings";

/// The embedded backend: one fjall database in a directory.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    latest: Keyspace,
    /// Open window keyspaces by window start (epoch seconds).
    windows: Mutex<BTreeMap<i64, Keyspace>>,
    /// Open rollup window keyspaces (see `rollup`).
    rollups: Mutex<rollup::Windows>,
    /// The readings (see `blocks`).
    blocks: blocks::Blocks,
    /// Settings and the rollup coverage (`rollup::coverage`).
    meta: Keyspace,
    /// Recorded at the first open with rollups: it never changes.
    rollups_written_since: TimestampMs,
    settings: Settings,
    /// Windows ending after the hold are kept past their TTL (the bucket archive's).
    hold: RetentionHold,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// fjall's errors in the store's classes: data that does not decode is a decode error; every
/// other failure (I/O, a full disk, a poisoned journal that needs a restart) is unavailable, so
/// the flusher keeps the readings in the WAL and retries rather than quarantining them.
fn embedded(what: &'static str) -> impl FnOnce(fjall::Error) -> StoreError {
    move |source| match source {
        fjall::Error::Decompress(_)
        | fjall::Error::InvalidTag(_)
        | fjall::Error::InvalidTrailer
        | fjall::Error::InvalidVersion(_) => StoreError::decode(what, source),
        source => StoreError::unavailable(what, source),
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir` with the default settings on first open.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, Settings::default())
    }

    /// Opens (or creates) the store in `dir`. `first` is recorded when the store is created and
    /// ignored afterwards (the recorded settings are read back), as `migrate up` does for CQL.
    /// A store still holding readings in the row format of earlier versions is refused with
    /// [`StoreError::OldFormat`] (see [`EmbeddedStore::open_to_convert`]).
    pub fn open_with(dir: &Path, first: Settings) -> Result<Self, StoreError> {
        Self::open_held(dir, first, RetentionHold::none())
    }

    /// Like [`EmbeddedStore::open_with`], with retention held by `hold` from the first expiry
    /// pass (the one at open) on.
    pub fn open_held(dir: &Path, first: Settings, hold: RetentionHold) -> Result<Self, StoreError> {
        let store = Self::open_any_format(dir, first, hold)?;
        if store.count_legacy_rows(1)? > 0 {
            return Err(StoreError::OldFormat {
                store: format!("the embedded store at {}", dir.display()),
                data_dir: dir
                    .parent()
                    .map_or_else(|| dir.display().to_string(), |p| p.display().to_string()),
            });
        }
        Ok(store)
    }

    /// Opens (or creates) the store in `dir` like [`EmbeddedStore::open_with`], whatever format
    /// its readings are in: for [`EmbeddedStore::convert`].
    pub fn open_to_convert(dir: &Path, first: Settings) -> Result<Self, StoreError> {
        Self::open_any_format(dir, first, RetentionHold::none())
    }

    fn open_any_format(
        dir: &Path,
        first: Settings,
        hold: RetentionHold,
    ) -> Result<Self, StoreError> {
        let db = Database::builder(dir)
            .cache_size(BLOCK_CACHE_BYTES)
            .max_journaling_size(MAX_JOURNAL_BYTES)
            .open()
            .map_err(embedded("opening the embedded store"))?;
        let meta = db
            .keyspace("meta", keyspace_options)
            .map_err(embedded("opening the meta keyspace"))?;
        let latest = db
            .keyspace("latest", keyspace_options)
            .map_err(embedded("opening the latest keyspace"))?;
        let settings = load_or_record_settings(&meta, dir, first)?;
        let manifest = db
            .keyspace("blocks", keyspace_options)
            .map_err(embedded("opening the blocks manifest"))?;
        let blocks = blocks::Blocks::open(dir.join(BLOCKS_DIR), manifest)?;
        let mut windows = BTreeMap::new();
        for name in db.list_keyspace_names() {
            if let Some(start) = name.strip_prefix('w').and_then(|s| s.parse::<i64>().ok()) {
                let keyspace = db
                    .keyspace(&name, scan_keyspace_options)
                    .map_err(embedded("opening a window keyspace"))?;
                windows.insert(start, keyspace);
            }
        }
        let rollups = rollup::open_windows(&db)?;
        let rollups_written_since =
            rollup::record_written_since(&meta, &latest, TimestampMs::now())?;
        let store = Self {
            inner: Arc::new(Inner {
                db,
                latest,
                windows: Mutex::new(windows),
                rollups: Mutex::new(rollups),
                blocks,
                meta,
                rollups_written_since,
                settings,
                hold,
            }),
        };
        let now = TimestampMs::now();
        store.drop_expired_windows(now)?;
        store.drop_expired_rollup_windows(now)?;
        store.purge_expired_latest(now)?;
        compactor(Arc::downgrade(&store.inner));
        Ok(store)
    }

    /// The hold on this store's retention.
    pub fn retention_hold(&self) -> &RetentionHold {
        &self.inner.hold
    }

    /// Deletes every window whose readings are all past the retention at `now` and that the
    /// [`RetentionHold`] lets go; returns how many were dropped. Runs at open and before each write. Whenever a window goes (and at
    /// open), the latest rows past the retention go too; reads already leave them out.
    pub fn drop_expired_windows(&self, now: TimestampMs) -> Result<usize, StoreError> {
        let settings = &self.inner.settings;
        let window = i64::from(settings.compaction_window_seconds);
        let horizon = now.millis() / 1000 - i64::from(settings.ttl_seconds);
        let expired: Vec<(i64, Keyspace)> = {
            let mut windows = self
                .inner
                .windows
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let starts: Vec<i64> = windows
                .keys()
                .copied()
                .take_while(|start| start + window <= horizon)
                .filter(|start| {
                    let end = TimestampMs::from_millis((start + window) * 1000);
                    self.inner.hold.may_drop(end)
                })
                .collect();
            starts
                .into_iter()
                .filter_map(|start| windows.remove(&start).map(|k| (start, k)))
                .collect()
        };
        let blocks = self.inner.blocks.drop_expired(
            self.inner.db.batch(),
            settings.ttl_seconds,
            &self.inner.hold,
            now,
        )?;
        let dropped = expired.len();
        if dropped + blocks > 0 {
            self.purge_expired_latest(now)?;
        }
        for (start, keyspace) in expired {
            tracing::info!(
                window_start = start,
                "retention: dropping an expired time window"
            );
            self.inner
                .db
                .delete_keyspace(keyspace)
                .map_err(embedded("dropping an expired window"))?;
        }
        Ok(dropped)
    }

    /// Deletes the latest rows whose reading is past the retention at `now`; returns how many.
    /// The latest keyspace holds one small row per series, so a full scan is cheap.
    pub fn purge_expired_latest(&self, now: TimestampMs) -> Result<usize, StoreError> {
        let mut purge = Purge {
            store: self,
            now,
            batch: self.inner.db.batch(),
            purged: 0,
            failed: None,
        };
        KINDS.each(&mut purge);
        if let Some(error) = purge.failed {
            return Err(error);
        }
        if purge.purged > 0 {
            purge.batch.commit().map_err(embedded(PURGING))?;
        }
        Ok(purge.purged)
    }

    /// Compacts every part into window blocks (see `blocks`), writes every memtable out as
    /// tables and major-compacts every keyspace: the embedded counterpart of `nodetool flush` +
    /// `nodetool compact`, for measuring bytes on disk. The store compacts blocks by itself as
    /// it runs; this forces a pass now.
    pub fn compact(&self) -> Result<(), StoreError> {
        self.inner
            .blocks
            .compact(&self.inner.db, TimestampMs::now(), true)?;
        // Every keyspace (windows, latest, rollups, meta, the manifest), so that the journal
        // holds nothing any more and is deleted.
        for name in self.inner.db.list_keyspace_names() {
            let keyspace = self
                .inner
                .db
                .keyspace(&name, KeyspaceCreateOptions::default)
                .map_err(embedded("opening a keyspace"))?;
            keyspace
                .rotate_memtable_and_wait()
                .map_err(embedded("flushing a memtable"))?;
            keyspace
                .major_compact()
                .map_err(embedded("compacting a keyspace"))?;
        }
        Ok(())
    }

    /// Bytes on disk of the whole store: fjall's files and the live blocks.
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        let fjall = self
            .inner
            .db
            .disk_space()
            .map_err(embedded("measuring disk space"))?;
        Ok(fjall + self.inner.blocks.disk_bytes())
    }

    /// How many block files hold readings (parts included).
    pub fn block_count(&self) -> usize {
        self.inner.blocks.count()
    }

    /// The window keyspace holding `bucket`, created if needed.
    fn window_of(&self, bucket: TimeBucket) -> Result<Keyspace, StoreError> {
        let window = i64::from(self.inner.settings.compaction_window_seconds);
        let start = bucket.epoch_seconds().div_euclid(window) * window;
        let mut windows = self
            .inner
            .windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(keyspace) = windows.get(&start) {
            return Ok(keyspace.clone());
        }
        let keyspace = self
            .inner
            .db
            .keyspace(&format!("w{start}"), scan_keyspace_options)
            .map_err(embedded("creating a window keyspace"))?;
        windows.insert(start, keyspace.clone());
        Ok(keyspace)
    }

    /// The window keyspace holding `bucket`, if it exists (reads never create one).
    fn existing_window_of(&self, bucket: TimeBucket) -> Option<Keyspace> {
        let window = i64::from(self.inner.settings.compaction_window_seconds);
        let start = bucket.epoch_seconds().div_euclid(window) * window;
        let windows = self
            .inner
            .windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        windows.get(&start).cloned()
    }

    fn persist(&self) -> Result<(), StoreError> {
        self.inner
            .db
            .persist(PersistMode::SyncData)
            .map_err(embedded("syncing the embedded store"))
    }
}

fn load_or_record_settings(
    meta: &Keyspace,
    dir: &Path,
    first: Settings,
) -> Result<Settings, StoreError> {
    let bad = |reason: String| StoreError::Settings {
        store: format!("the embedded store at {}", dir.display()),
        reason,
    };
    match meta
        .get(SETTINGS_KEY)
        .map_err(embedded("reading settings"))?
    {
        Some(bytes) => {
            let pairs: Vec<(String, i64)> =
                codec::decode(&bytes).map_err(|e| bad(e.to_string()))?;
            Settings::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), *v))).map_err(bad)
        }
        None => {
            let settings = first;
            let pairs: Vec<(String, i64)> = settings
                .to_pairs()
                .iter()
                .map(|(n, v)| ((*n).to_owned(), *v))
                .collect();
            meta.insert(SETTINGS_KEY, codec::encode(&pairs))
                .map_err(embedded("recording settings"))?;
            Ok(settings)
        }
    }
}

impl Store for EmbeddedStore {
    fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    async fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let rows = writer::EncodedBatch::encode(batch, &self.inner.settings, TimestampMs::now());
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.apply(rows))
            .await
            .expect("embedded store writer panicked")
    }

    fn wal_ids(&self, writer: uuid::Uuid) -> bool {
        self.inner.blocks.wal_ids_for(writer)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn read_page<K: ReadingKind>(&self, request: &PageRequest) -> Result<Vec<K>, StoreError> {
        let (store, request) = (self.clone(), request.clone());
        blocking(move || store.page(&request)).await
    }

    async fn read_api_columns(
        &self,
        request: &crate::store::ApiColumnsRequest,
    ) -> Result<crate::store::ApiColumns, StoreError> {
        let (store, request) = (self.clone(), request.clone());
        blocking(move || store.inner.blocks.api_columns(&request)).await
    }

    async fn read_latest<K: ReadingKind>(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<K>, StoreError> {
        let (store, service) = (self.clone(), service.cloned());
        blocking(move || store.latest_of(shard, service.as_ref())).await
    }

    async fn read_series(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        let (store, service) = (self.clone(), service.clone());
        blocking(move || store.series_of(&service, bucket)).await
    }

    fn rollups_written_since(&self) -> TimestampMs {
        self.inner.rollups_written_since
    }

    async fn delete_rollups(&self, rows: &[crate::rollup::RollupRow]) -> Result<(), StoreError> {
        let (store, rows) = (self.clone(), rows.to_vec());
        blocking(move || store.delete_rollup_rows(&rows)).await
    }

    async fn rollups_since(&self, service: &ServiceName) -> Result<TimestampMs, StoreError> {
        let (store, service) = (self.clone(), service.clone());
        blocking(move || store.rollups_since_of(&service)).await
    }

    async fn lower_rollups_since(
        &self,
        service: Option<&ServiceName>,
        at: TimestampMs,
    ) -> Result<(), StoreError> {
        let (store, service) = (self.clone(), service.cloned());
        blocking(move || store.lower_rollups_since_to(service.as_ref(), at)).await
    }

    async fn read_rollups(
        &self,
        request: &crate::rollup::RollupRequest,
    ) -> Result<Vec<crate::rollup::RollupRow>, StoreError> {
        let (store, request) = (self.clone(), request.clone());
        blocking(move || store.rollups_of(&request)).await
    }

    async fn read_rollup_page(
        &self,
        request: &crate::store::RollupPageRequest,
    ) -> Result<Vec<crate::rollup::RollupRow>, StoreError> {
        let (store, request) = (self.clone(), request.clone());
        blocking(move || store.rollup_page_of(&request)).await
    }
}

const PURGING: &str = "purging expired latest rows";

/// Collects the deletion of every expired latest row, kind by kind.
struct Purge<'a> {
    store: &'a EmbeddedStore,
    now: TimestampMs,
    batch: fjall::OwnedWriteBatch,
    purged: usize,
    failed: Option<StoreError>,
}

impl Purge<'_> {
    fn kind<K: ReadingKind>(&mut self) -> Result<(), StoreError> {
        let latest = &self.store.inner.latest;
        let ttl = self.store.inner.settings.ttl_seconds;
        for guard in latest.prefix([K::INFO.tag]) {
            let (key, value) = guard.into_inner().map_err(embedded(PURGING))?;
            let reading: K = codec::decode(&value).map_err(|e| StoreError::decode(PURGING, e))?;
            if expired(reading.timestamp(), ttl, self.now) {
                self.batch.remove(latest, key);
                self.purged += 1;
            }
        }
        Ok(())
    }
}

impl EachKind<'_, Kinds> for Purge<'_> {
    fn each<K: ReadingKind>(&mut self, _: &()) {
        if self.failed.is_none() {
            self.failed = self.kind::<K>().err();
        }
    }
}

/// Starts the store's compactor: a thread that runs a compaction pass whenever one is due
/// (see `blocks::compact`) and ends once the store is dropped.
fn compactor(store: std::sync::Weak<Inner>) {
    let spawned = std::thread::Builder::new()
        .name("tb-compactor".into())
        .spawn(move || loop {
            std::thread::sleep(COMPACT_EVERY);
            let Some(inner) = store.upgrade() else {
                return;
            };
            if let Err(error) = inner.blocks.compact(&inner.db, TimestampMs::now(), false) {
                tracing::warn!(%error, "compacting blocks failed; retrying later");
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no compactor thread: blocks are compacted by `compact` only");
    }
}

/// Runs a blocking read on the blocking pool.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(read)
        .await
        .expect("embedded store reader panicked")
}

#[cfg(test)]
mod tests_blocks;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        ApiPath, ApiReading, HttpMethod, InstanceName, Reading, ReadingId, ServiceName, StatusCode,
    };
    use crate::store::SeriesSeen;

    fn readings(at_ms: i64, n: usize) -> Vec<Reading> {
        (0..n)
            .map(|i| {
                Reading::Api(ApiReading {
                    id: ReadingId::new(),
                    service: ServiceName::parse("retention").unwrap(),
                    instance: InstanceName::parse(&format!("i-{}", i % 7)).unwrap(),
                    method: HttpMethod::parse("GET").unwrap(),
                    path: ApiPath::parse(&format!("/p/{}", i % 13)).unwrap(),
                    code: StatusCode::parse(200).unwrap(),
                    duration_ms: i as f64,
                    count: 1,
                    timestamp: TimestampMs::from_millis(at_ms + i as i64),
                })
            })
            .collect()
    }

    #[tokio::test]
    async fn retention_drops_whole_windows_and_frees_their_disk_space() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let settings = *store.settings();
        let now = TimestampMs::now();
        let day_ms = 24 * 3600 * 1000;
        let old = now.millis() - 6 * day_ms;
        for at in [old, now.millis()] {
            let batch = WriteBatch::build(readings(at, 20_000), &settings, &SeriesSeen::new(10));
            store.write(&batch).await.unwrap();
        }
        for keyspace in store.inner.windows.lock().unwrap().values() {
            keyspace.rotate_memtable_and_wait().unwrap();
        }
        let before = store.disk_bytes().unwrap();
        assert_eq!(store.inner.windows.lock().unwrap().len(), 2);

        // Nothing is past the 7-day TTL yet.
        assert_eq!(store.drop_expired_windows(now).unwrap(), 0);
        // Two days later the old window is, and goes whole; the current one stays.
        let later = TimestampMs::from_millis(now.millis() + 2 * day_ms);
        assert_eq!(store.drop_expired_windows(later).unwrap(), 1);
        assert_eq!(store.inner.windows.lock().unwrap().len(), 1);
        let after = store.disk_bytes().unwrap();
        assert!(
            after < before,
            "disk {before} -> {after} bytes after dropping a window"
        );
    }

    #[tokio::test]
    async fn latest_rows_past_the_retention_are_purged_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let settings = *store.settings();
        let now = TimestampMs::now();
        let hour_ms = 3_600_000;
        let ttl_ms = i64::from(settings.ttl_seconds) * 1000;
        let batch = WriteBatch::build(
            readings(now.millis() - ttl_ms + hour_ms, 3),
            &settings,
            &SeriesSeen::new(10),
        );
        store.write(&batch).await.unwrap();
        assert_eq!(store.purge_expired_latest(now).unwrap(), 0);
        let later = TimestampMs::from_millis(now.millis() + 2 * hour_ms);
        assert_eq!(store.purge_expired_latest(later).unwrap(), 3);
        assert_eq!(store.inner.latest.iter().count(), 0);
    }

    /// fjall leaves the tables of its first two levels uncompressed by default; a young store's
    /// tables are all there, so the store asks for LZ4 at every level.
    #[test]
    fn tables_of_the_first_level_are_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::builder(dir.path()).open().unwrap();
        for (name, options) in [
            ("by_key", keyspace_options as fn() -> KeyspaceCreateOptions),
            ("scanned", scan_keyspace_options),
        ] {
            let keyspace = db.keyspace(name, options).unwrap();
            let value = vec![b'x'; 1000];
            for i in 0u32..2000 {
                keyspace.insert(i.to_be_bytes(), value.as_slice()).unwrap();
            }
            keyspace.rotate_memtable_and_wait().unwrap();
            assert_eq!(keyspace.table_count(), 1, "{name}: one flushed table");
            let raw = 2000 * 1000;
            assert!(
                keyspace.disk_space() < raw / 4,
                "{name}: {} bytes on disk for {raw} bytes of repetitive values",
                keyspace.disk_space()
            );
        }
    }

    #[test]
    fn settings_are_recorded_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = *EmbeddedStore::open(dir.path()).unwrap().settings();
        let again = *EmbeddedStore::open(dir.path()).unwrap().settings();
        assert_eq!(first, again);
        assert_eq!(first, Settings::default());
    }
}
