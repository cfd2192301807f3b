//! Export: whole buckets, read through the store's partition reads, to one Parquet file per
//! (kind, service, bucket).
//!
//! A bucket already in the manifest is counted first: the same count skips it, a higher one
//! (readings that arrived late) exports it again, a lower one keeps the archive (the store only
//! loses readings to expiry, and an archive must not shrink with it). An empty bucket writes
//! nothing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use indicatif::ProgressBar;
use tokio::sync::mpsc;

use super::layout::{self, PART, PART_TMP};
use super::manifest::{sync_dir, ArchiveLock, FileEntry, Manifest};
use super::parts::{self, Written};
use super::ArchiveError;
use crate::model::kind::{EachKind, Kinds, KINDS};
use crate::model::{ReadingKind, ServiceName, Settings, TimeBucket, TimestampMs};
use crate::query::{Queries, QueryLimits};
use crate::store::{Order, PageRequest, PartitionKey, ReadingKey, Store};

/// Rows per partition page read from the store.
const PAGE_ROWS: u32 = 5000;

/// What happened to one (kind, service, bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A file was written.
    Written {
        /// Readings in it.
        rows: u64,
        /// Its size.
        bytes: u64,
    },
    /// Already archived with this many readings (or more): nothing written.
    Skipped {
        /// Readings in the store.
        rows: u64,
    },
    /// No readings: nothing written.
    Empty,
}

/// Totals of an export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Files written.
    pub written: u64,
    /// (kind, service, bucket)s already archived.
    pub skipped: u64,
    /// Readings written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl ExportSummary {
    /// Adds one outcome.
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Written { rows, bytes } => {
                self.written += 1;
                self.rows += rows;
                self.bytes += bytes;
            }
            Outcome::Skipped { .. } => self.skipped += 1,
            Outcome::Empty => {}
        }
    }
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exported {} bucket files ({} already archived, skipped): {} readings, {} bytes",
            self.written, self.skipped, self.rows, self.bytes
        )?;
        if self.rows > 0 {
            write!(
                f,
                ", {:.1} bytes per reading",
                self.bytes as f64 / self.rows as f64
            )?;
        }
        Ok(())
    }
}

/// Exports of one kind, looked up by the kinds' list (see [`kind_exports`]).
type KindExport<S> = for<'a> fn(
    &'a mut Exporter<S>,
    &'a ServiceName,
    TimeBucket,
) -> BoxFuture<'a, Result<Outcome, ArchiveError>>;

fn kind_export<'a, S: Store, K: ReadingKind>(
    exporter: &'a mut Exporter<S>,
    service: &'a ServiceName,
    bucket: TimeBucket,
) -> BoxFuture<'a, Result<Outcome, ArchiveError>> {
    Box::pin(exporter.export_kind::<K>(service, bucket))
}

struct Collect<S>(Vec<KindExport<S>>);

impl<S: Store> EachKind<'_, Kinds> for Collect<S> {
    fn each<K: ReadingKind>(&mut self, _: &()) {
        self.0.push(kind_export::<S, K>);
    }
}

/// The export of every kind, in the kinds' order.
fn kind_exports<S: Store>() -> Vec<KindExport<S>> {
    let mut collect = Collect(Vec::new());
    KINDS.each(&mut collect);
    collect.0
}

/// Exports buckets of one store into one archive directory, which it holds locked.
pub struct Exporter<S> {
    store: Arc<S>,
    root: PathBuf,
    manifest: Manifest,
    progress: ProgressBar,
    /// Files were added to the manifest since it was last written.
    unsaved: bool,
    _lock: ArchiveLock,
}

impl<S: Store> Exporter<S> {
    /// Opens (or starts) the archive in `root` for `store`'s data; fails when another process
    /// holds it or it was made with another bucket width.
    pub fn open(store: Arc<S>, root: &Path) -> Result<Self, ArchiveError> {
        Self::open_locked(store, root, ArchiveLock::take(root)?)
    }

    /// Like [`Exporter::open`], with the archive's lock already taken.
    pub fn open_locked(
        store: Arc<S>,
        root: &Path,
        lock: ArchiveLock,
    ) -> Result<Self, ArchiveError> {
        let width = store.settings().bucket_width.seconds();
        let manifest = Manifest::load_for(root, width)?;
        Ok(Self {
            store,
            root: root.to_path_buf(),
            manifest,
            progress: ProgressBar::hidden(),
            unsaved: false,
            _lock: lock,
        })
    }

    /// Shows progress on `bar` (one step per service bucket).
    pub fn with_progress(mut self, bar: ProgressBar) -> Self {
        self.progress = bar;
        self
    }

    /// The manifest as it stands.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Records that every bucket before `until` is archived (automatic archiving), durably.
    pub fn set_archived_until(&mut self, until: TimeBucket) -> Result<(), ArchiveError> {
        self.manifest.archived_until = Some(until.epoch_seconds());
        self.unsaved = false;
        self.manifest.save(&self.root)
    }

    /// Every service the store knows (its latest rows: anything sent within the retention),
    /// and every service already in the archive: a service that went silent longer ago than the
    /// retention has no latest row any more, yet buckets of it that retention holds for the
    /// archive (the embedded store, when archiving is behind) must still be exported. Sorted.
    pub async fn services(&self) -> Result<Vec<ServiceName>, ArchiveError> {
        let queries = Queries::new(self.store.clone(), QueryLimits::default());
        let mut services = queries.services().await?;
        let archived = self.manifest.files.iter().map(|f| f.service.as_str());
        let mut archived: Vec<&str> = archived.collect();
        archived.dedup();
        // A name the manifest holds that no longer parses cannot be in the store either.
        services.extend(
            archived
                .into_iter()
                .filter_map(|s| ServiceName::parse(s).ok()),
        );
        services.sort_unstable();
        services.dedup();
        Ok(services)
    }

    /// Exports every bucket overlapping `[from, to)` of `services` (all known services when
    /// empty), whole.
    pub async fn export_range(
        &mut self,
        from: TimestampMs,
        to: TimestampMs,
        services: &[ServiceName],
    ) -> Result<ExportSummary, ArchiveError> {
        let width = self.store.settings().bucket_width;
        let last = TimestampMs::from_millis(to.millis() - 1);
        let buckets = TimeBucket::covering(from, last, width);
        let services = if services.is_empty() {
            self.services().await?
        } else {
            services.to_vec()
        };
        self.progress
            .set_length((buckets.len() * services.len()) as u64);
        let mut summary = ExportSummary::default();
        for bucket in buckets {
            for service in &services {
                self.progress.set_message(format!(
                    "{service} {}",
                    TimestampMs::from_millis(bucket.epoch_seconds() * 1000).to_rfc3339()
                ));
                let done = match self.export_bucket(service, bucket).await {
                    Ok(done) => done,
                    Err(error) => {
                        // Keep what is done: a rerun goes on from the failed bucket.
                        self.save_manifest()?;
                        return Err(error);
                    }
                };
                summary.rows += done.rows;
                summary.bytes += done.bytes;
                summary.written += done.written;
                summary.skipped += done.skipped;
                self.progress.inc(1);
            }
            self.save_manifest()?;
        }
        self.progress.finish_and_clear();
        Ok(summary)
    }

    /// Writes the manifest, if files were added since it was last written. The manifest is
    /// written once per bucket, not per file: it lists every file of the archive, so writing it
    /// per file would cost (files of a bucket) × (size of the manifest).
    pub fn save_manifest(&mut self) -> Result<(), ArchiveError> {
        if std::mem::take(&mut self.unsaved) {
            self.manifest.save(&self.root)?;
        }
        Ok(())
    }

    /// Exports one bucket of `service`, every kind; the files are in the manifest once it is
    /// saved ([`Exporter::save_manifest`], done by [`Exporter::export_range`] after each bucket).
    pub async fn export_bucket(
        &mut self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<ExportSummary, ArchiveError> {
        let mut summary = ExportSummary::default();
        for export in kind_exports::<S>() {
            summary.add(export(self, service, bucket).await?);
        }
        Ok(summary)
    }

    /// The first page request of every shard of `(service, bucket)`, the whole bucket.
    fn partitions(&self, service: &ServiceName, bucket: TimeBucket) -> Vec<PageRequest> {
        bucket_pages(self.store.settings(), service, bucket, PAGE_ROWS)
    }

    /// Every page of kind `K` of `(service, bucket)`, handed to `page`, which returns false to
    /// stop.
    async fn read_bucket<K: ReadingKind>(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
        mut page: impl FnMut(Vec<K>) -> BoxFuture<'static, bool>,
    ) -> Result<(), ArchiveError> {
        for mut request in self.partitions(service, bucket) {
            loop {
                let rows = self.store.read_page::<K>(&request).await?;
                let last = rows.last().map(ReadingKey::of);
                let full = rows.len() == request.limit as usize;
                if !rows.is_empty() && !page(rows).await {
                    return Ok(());
                }
                match last {
                    Some(last) if full => request = request.next_after(last),
                    _ => break,
                }
            }
        }
        Ok(())
    }

    /// How many readings of kind `K` the store holds in `(service, bucket)`.
    async fn count<K: ReadingKind>(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<u64, ArchiveError> {
        let mut counted = 0;
        self.read_bucket::<K>(service, bucket, |rows: Vec<K>| {
            counted += rows.len() as u64;
            Box::pin(std::future::ready(true))
        })
        .await?;
        Ok(counted)
    }

    async fn export_kind<K: ReadingKind>(
        &mut self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<Outcome, ArchiveError> {
        let kind = K::INFO.name;
        let archived = self
            .manifest
            .get(kind, service.as_str(), bucket.epoch_seconds())
            .filter(|e| layout::resolve(&self.root, &e.path).exists())
            .map(|e| e.rows);
        if let Some(archived) = archived {
            let rows = self.count::<K>(service, bucket).await?;
            if rows <= archived {
                return Ok(Outcome::Skipped { rows });
            }
        }
        let relative = layout::bucket_dir(K::INFO, service, bucket);
        let dir = layout::resolve(&self.root, &relative);
        std::fs::create_dir_all(&dir).map_err(|e| ArchiveError::io("creating", &dir, e))?;
        let tmp = dir.join(PART_TMP);
        let metadata = vec![
            ("timebucket.kind".to_owned(), kind.to_owned()),
            ("timebucket.service".to_owned(), service.as_str().to_owned()),
            (
                "timebucket.bucket".to_owned(),
                bucket.epoch_seconds().to_string(),
            ),
            (
                "timebucket.bucket_width_seconds".to_owned(),
                self.manifest.bucket_width_seconds.to_string(),
            ),
        ];
        let (pages, received) = mpsc::channel::<Vec<K>>(2);
        let writer = tokio::task::spawn_blocking({
            let tmp = tmp.clone();
            move || parts::write::<K>(tmp, metadata, received)
        });
        let read = self
            .read_bucket::<K>(service, bucket, move |rows| {
                let pages = pages.clone();
                Box::pin(async move { pages.send(rows).await.is_ok() })
            })
            .await;
        // The sender is gone once the read ended: the writer finishes (or already failed).
        let written = writer.await.expect("the archive writer panicked");
        let written = match (read, written) {
            (Err(error), _) | (Ok(()), Err(error)) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(error);
            }
            (Ok(()), Ok(written)) => written,
        };
        let Written {
            rows,
            span: Some((first, last)),
            bytes,
            sha256,
        } = written
        else {
            // Nothing to archive: leave no empty directories behind either (the service's goes
            // too when this was its only bucket; a directory in use is simply not removed).
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_dir(&dir);
            if let Some(service_dir) = dir.parent() {
                let _ = std::fs::remove_dir(service_dir);
            }
            return Ok(Outcome::Empty);
        };
        let path = dir.join(PART);
        std::fs::rename(&tmp, &path).map_err(|e| ArchiveError::io("renaming", &tmp, e))?;
        sync_dir(&dir)?;
        self.manifest.put(FileEntry {
            kind: kind.to_owned(),
            service: service.as_str().to_owned(),
            bucket: bucket.epoch_seconds(),
            bucket_start: TimestampMs::from_millis(bucket.epoch_seconds() * 1000).to_rfc3339(),
            path: format!("{relative}/{PART}"),
            rows,
            first_timestamp: first.to_rfc3339(),
            last_timestamp: last.to_rfc3339(),
            bytes,
            sha256,
        });
        self.unsaved = true;
        tracing::debug!(kind, %service, bucket = bucket.epoch_seconds(), rows, bytes,
            "archived a bucket");
        Ok(Outcome::Written { rows, bytes })
    }
}

/// The first request, `limit` rows, of every shard of `(service, bucket)`: the whole bucket.
pub(super) fn bucket_pages(
    settings: &Settings,
    service: &ServiceName,
    bucket: TimeBucket,
    limit: u32,
) -> Vec<PageRequest> {
    let start = TimestampMs::from_millis(bucket.epoch_seconds() * 1000);
    let until = TimestampMs::from_millis(bucket.end(settings.bucket_width).millis() - 1);
    settings
        .shards
        .all()
        .map(|seq| PageRequest {
            partition: PartitionKey {
                service: service.clone(),
                bucket,
                seq,
            },
            after: ReadingKey::before_all_at(start),
            until,
            order: Order::Asc,
            limit,
        })
        .collect()
}
