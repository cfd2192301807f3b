//! Import: archived buckets loaded back into a store through its write path.
//!
//! Only files the manifest lists are read, each checked against its size and SHA-256 first.
//! Readings keep their ids, so writing them is idempotent exactly as a WAL replay is: a second
//! import, or an import into the store they came from, changes nothing. Latest rows and the
//! series index follow from the readings as for any write.
//!
//! Rollups: a file imported into a store that holds none of its bucket's readings brings their
//! partial rollups too, written before the readings under a writer id derived from the file's
//! SHA-256 (one piece per chunk of its readings), so a rerun rewrites the same partial rows,
//! even after an import stopped half-way (the bucket then holds readings, but the partials were
//! all written first). A bucket the store already holds (the store the archive came from, or an
//! earlier import) gets its readings only: their rollups are there already, and writing them
//! again would count them twice. Readings older than the store's `rollups_written_since` get no
//! partials, as the flusher gives them none (`rollup rebuild` covers those hours).

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use indicatif::ProgressBar;
use tokio::sync::mpsc;

use super::export::bucket_pages;
use super::layout;
use super::manifest::{FileEntry, Manifest};
use super::parts;
use super::ArchiveError;
use crate::model::kind::{Common, EachKind, KindInfo, Kinds, KINDS};
use crate::model::{Reading, TimeBucket};
use crate::model::{ReadingKind, ServiceName, TimestampMs};
use crate::rollup::{partials, Piece, RollupRow};
use crate::store::{expired, ReadingKey, SeriesSeen, Store, WriteBatch};

/// What to import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Only buckets overlapping `[from, to)`; every bucket when `None`.
    pub range: Option<(TimestampMs, TimestampMs)>,
    /// Import buckets already past the store's retention. True for CQL, where rows live for the
    /// retention from the time they are written; false for the embedded store, whose retention
    /// would drop them again at the next write.
    pub past_retention: bool,
}

/// Totals of an import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Files loaded.
    pub files: u64,
    /// Readings written (already stored ones included).
    pub rows: u64,
    /// Files left out because their bucket is past the store's retention.
    pub past_retention: u64,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {} bucket files: {} readings",
            self.files, self.rows
        )?;
        if self.past_retention > 0 {
            write!(
                f,
                "; {} files left out: past the store's retention",
                self.past_retention
            )?;
        }
        Ok(())
    }
}

/// The archive being imported.
struct Source<'a> {
    root: &'a Path,
    /// Its buckets' width, seconds.
    width_seconds: u32,
}

type KindImport<S> = for<'a> fn(
    &'a Arc<S>,
    &'a Source<'a>,
    &'a FileEntry,
) -> BoxFuture<'a, Result<u64, ArchiveError>>;

fn kind_import<'a, S: Store, K: ReadingKind>(
    store: &'a Arc<S>,
    source: &'a Source<'a>,
    entry: &'a FileEntry,
) -> BoxFuture<'a, Result<u64, ArchiveError>> {
    Box::pin(import_file::<S, K>(store, source, entry))
}

struct Collect<S>(Vec<(&'static KindInfo, KindImport<S>)>);

impl<S: Store> EachKind<'_, Kinds> for Collect<S> {
    fn each<K: ReadingKind>(&mut self, _: &()) {
        self.0.push((K::INFO, kind_import::<S, K>));
    }
}

/// Loads the archive in `root` into `store`.
pub async fn import<S: Store>(
    store: Arc<S>,
    root: &Path,
    options: ImportOptions,
    progress: ProgressBar,
) -> Result<ImportSummary, ArchiveError> {
    let manifest = Manifest::load(root)?.ok_or_else(|| ArchiveError::Manifest {
        path: root.join(layout::MANIFEST),
        problem: "there is none: not an archive directory".into(),
    })?;
    let mut kinds = Collect(Vec::new());
    KINDS.each(&mut kinds);
    let width = manifest.bucket_width_seconds;
    let settings = *store.settings();
    let now = TimestampMs::now();
    let overlaps = |entry: &FileEntry| {
        let start = entry.bucket * 1000;
        let end = start + i64::from(width) * 1000;
        options
            .range
            .is_none_or(|(from, to)| start < to.millis() && from.millis() < end)
    };
    let entries: Vec<&FileEntry> = manifest.files.iter().filter(|e| overlaps(e)).collect();
    progress.set_length(entries.len() as u64);
    let source = Source {
        root,
        width_seconds: width,
    };
    let mut summary = ImportSummary::default();
    for entry in entries {
        let end = TimestampMs::from_millis((entry.bucket + i64::from(width)) * 1000);
        if !options.past_retention && expired(end, settings.ttl_seconds, now) {
            summary.past_retention += 1;
            progress.inc(1);
            continue;
        }
        let Some((_, import)) = kinds.0.iter().find(|(info, _)| info.name == entry.kind) else {
            return Err(ArchiveError::Manifest {
                path: root.join(layout::MANIFEST),
                problem: format!("{}: unknown kind `{}`", entry.path, entry.kind),
            });
        };
        progress.set_message(entry.path.clone());
        summary.rows += import(&store, &source, entry).await?;
        summary.files += 1;
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(summary)
}

/// Loads one file of kind `K`; returns its readings.
async fn import_file<S: Store, K: ReadingKind>(
    store: &Arc<S>,
    source: &Source<'_>,
    entry: &FileEntry,
) -> Result<u64, ArchiveError> {
    let root = source.root;
    let path = layout::resolve(root, &entry.path);
    let damaged = |problem: String| ArchiveError::Damaged {
        path: path.clone(),
        problem,
    };
    let service = ServiceName::parse(&entry.service).map_err(|p| ArchiveError::Manifest {
        path: root.join(layout::MANIFEST),
        problem: format!("{}: service {p}", entry.path),
    })?;
    let (sha256, bytes) = tokio::task::spawn_blocking({
        let path = path.clone();
        move || parts::checksum(&path)
    })
    .await
    .expect("checksum panicked")?;
    if (sha256.as_str(), bytes) != (entry.sha256.as_str(), entry.bytes) {
        return Err(damaged(format!(
            "{bytes} bytes with SHA-256 {sha256}, the manifest says {} bytes with {}",
            entry.bytes, entry.sha256
        )));
    }
    let settings = *store.settings();
    let seen = SeriesSeen::new(0);
    let start = entry.bucket * 1000;
    let bucket = start..start + i64::from(source.width_seconds) * 1000;
    if !holds_any::<S, K>(store, &service, &bucket).await? {
        let since = store.rollups_written_since();
        let rollups = partials_of::<K>(&path, &service, &sha256, since).await?;
        if !rollups.is_empty() {
            let mut batch = WriteBatch::build(Vec::new(), &settings, &seen);
            batch.rollups = rollups;
            store.write(&batch).await?;
        }
    }
    let (pages, mut received) = mpsc::channel::<Vec<K>>(2);
    let reader = tokio::task::spawn_blocking({
        let path = path.clone();
        move || parts::read::<K>(&path, &service, pages)
    });
    let mut wrong_bucket = None;
    let mut written = 0;
    while let Some(page) = received.recv().await {
        if let Some(r) = page
            .iter()
            .find(|r| !bucket.contains(&r.timestamp().millis()))
        {
            wrong_bucket = Some(r.timestamp());
            break;
        }
        written += page.len() as u64;
        let readings = page.into_iter().map(Common::into_reading).collect();
        store
            .write(&WriteBatch::build(readings, &settings, &seen))
            .await?;
    }
    drop(received);
    let read = reader.await.expect("the archive reader panicked")?;
    if let Some(at) = wrong_bucket {
        return Err(damaged(format!(
            "a reading at {} is outside its bucket",
            at.to_rfc3339()
        )));
    }
    if read != entry.rows || written != entry.rows {
        return Err(damaged(format!(
            "{read} readings, the manifest says {}",
            entry.rows
        )));
    }
    Ok(written)
}

/// Readings per piece of an imported file's partial rollups: a piece's partials are computed
/// from its readings at once, so this bounds that memory.
const PIECE_READINGS: usize = 100_000;

/// True when `store` holds a reading of kind `K` of `service` within `range` (epoch ms).
async fn holds_any<S: Store, K: ReadingKind>(
    store: &Arc<S>,
    service: &ServiceName,
    range: &std::ops::Range<i64>,
) -> Result<bool, ArchiveError> {
    let settings = store.settings();
    let (from, to) = (
        TimestampMs::from_millis(range.start),
        TimestampMs::from_millis(range.end - 1),
    );
    for bucket in TimeBucket::covering(from, to, settings.bucket_width) {
        for mut request in bucket_pages(settings, service, bucket, 1) {
            request.after = ReadingKey::before_all_at(from.max(bucket_start(bucket)));
            request.until = request.until.min(to);
            if !store.read_page::<K>(&request).await?.is_empty() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn bucket_start(bucket: TimeBucket) -> TimestampMs {
    TimestampMs::from_millis(bucket.epoch_seconds() * 1000)
}

/// The partial rollups of the readings of the file at `path` (of `service`, checksum `sha256`)
/// at or after `since`, keyed so that the same file always gives the same rows.
async fn partials_of<K: ReadingKind>(
    path: &Path,
    service: &ServiceName,
    sha256: &str,
    since: TimestampMs,
) -> Result<Vec<RollupRow>, ArchiveError> {
    let writer = writer_of(sha256);
    let (pages, mut received) = mpsc::channel::<Vec<K>>(2);
    let reader = tokio::task::spawn_blocking({
        let (path, service) = (path.to_path_buf(), service.clone());
        move || parts::read::<K>(&path, &service, pages)
    });
    let mut rows = Vec::new();
    let mut piece: Vec<Reading> = Vec::new();
    let mut pieces = 0;
    let mut finish = |piece: &mut Vec<Reading>, rows: &mut Vec<RollupRow>| {
        let key = Piece {
            writer,
            segment: 0,
            start: pieces,
            last: pieces,
        };
        rows.extend(partials(piece, key, since));
        piece.clear();
        pieces += 1;
    };
    while let Some(page) = received.recv().await {
        piece.extend(page.into_iter().map(Common::into_reading));
        if piece.len() >= PIECE_READINGS {
            finish(&mut piece, &mut rows);
        }
    }
    if !piece.is_empty() {
        finish(&mut piece, &mut rows);
    }
    reader.await.expect("the archive reader panicked")?;
    Ok(rows)
}

/// The writer id of an imported file's partial rollups: its SHA-256's first 16 bytes, so that
/// no two files (and no WAL, whose ids are random) share one.
fn writer_of(sha256: &str) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = sha256
            .get(2 * i..2 * i + 2)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .unwrap_or(0);
    }
    uuid::Uuid::from_bytes(bytes)
}
