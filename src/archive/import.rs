//! Import: archived buckets loaded back into a store through its write path.
//!
//! Only files the manifest lists are read, each checked against its size and SHA-256 first.
//! Readings keep their ids, so writing them is idempotent exactly as a WAL replay is: a second
//! import, or an import into the store they came from, changes nothing. Latest rows and the
//! series index follow from the readings as for any write; rollups are not rebuilt (stats over
//! an imported range read the raw readings: `source=raw`).

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use indicatif::ProgressBar;
use tokio::sync::mpsc;

use super::layout;
use super::manifest::{FileEntry, Manifest};
use super::parts;
use super::ArchiveError;
use crate::model::kind::{Common, EachKind, KindInfo, Kinds, KINDS};
use crate::model::{ReadingKind, ServiceName, TimestampMs};
use crate::store::{expired, SeriesSeen, Store, WriteBatch};

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
    let (pages, mut received) = mpsc::channel::<Vec<K>>(2);
    let reader = tokio::task::spawn_blocking({
        let path = path.clone();
        move || parts::read::<K>(&path, &service, pages)
    });
    let settings = *store.settings();
    let seen = SeriesSeen::new(0);
    let start = entry.bucket * 1000;
    let bucket = start..start + i64::from(source.width_seconds) * 1000;
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
