//! [`Recovering`]: the embedded store as `serve` runs it, so that a failed write (a full disk)
//! neither stops the service nor wedges the store until a restart.
//!
//! After one failed journal write fjall marks its database *poisoned* and refuses every later
//! write, even once space is free again. So a write that fails on the store's I/O (fjall's
//! `Io`, `Storage` or `Poisoned` errors) marks the store for reopening: the next write first
//! closes it and opens it again from its directory (fjall recovers its journal; the failed
//! batch was never confirmed in the WAL, so the flusher's retry writes it again, idempotently).
//! Opening fails while anything still holds the old database (fjall's lock file): the next
//! attempt tries again.
//!
//! While writes fail, [`Recovering::refusing`] holds the reason, and ingest answers 503 with
//! `Retry-After` rather than taking more into the WAL (which, on the same disk, would take the
//! space the store needs to recover); the first write that works clears it.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

use super::EmbeddedStore;
use crate::model::{ReadingKind, Seq, ServiceName, Settings, TimeBucket, TimestampMs};
use crate::rollup::{RollupRequest, RollupRow};
use crate::store::{PageRequest, RetentionHold, SeriesEntry, Store, StoreError, WriteBatch};

/// The embedded store, reopened after a failed write.
#[derive(Debug)]
pub struct Recovering {
    dir: PathBuf,
    settings: Settings,
    /// The retention hold, kept across reopens.
    hold: RetentionHold,
    /// Recorded at the first open: it never changes.
    written_since: TimestampMs,
    /// The open store; `None` between a close and a successful reopen.
    current: Mutex<Option<EmbeddedStore>>,
    /// Set by a failed write: reopen before the next one.
    reopen: Mutex<bool>,
    refusing: watch::Sender<Option<String>>,
}

impl Recovering {
    /// Runs `store`, opened from `dir`.
    pub fn new(store: EmbeddedStore, dir: PathBuf) -> Self {
        Self {
            dir,
            settings: *store.settings(),
            hold: store.retention_hold().clone(),
            written_since: store.rollups_written_since(),
            current: Mutex::new(Some(store)),
            reopen: Mutex::new(false),
            refusing: watch::channel(None).0,
        }
    }

    /// Why writes fail now (`None` while they work): ingest refuses new data meanwhile.
    pub fn refusing(&self) -> watch::Receiver<Option<String>> {
        self.refusing.subscribe()
    }

    /// The open store (reopened first when the last write failed), or why there is none.
    fn store(&self, for_write: bool) -> Result<EmbeddedStore, StoreError> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut reopen = self.reopen.lock().unwrap_or_else(PoisonError::into_inner);
        if for_write && *reopen {
            // Drop our handle first: the directory opens only once nothing holds it.
            current.take();
            let store = EmbeddedStore::open_held(&self.dir, self.settings, self.hold.clone())?;
            tracing::info!(store = %self.dir.display(), "the embedded store was reopened after a failed write");
            *current = Some(store);
            *reopen = false;
        }
        current.clone().ok_or_else(|| {
            StoreError::unavailable(
                "reading the embedded store",
                "it is being reopened after a failed write",
            )
        })
    }

    fn failed(&self, error: &StoreError) {
        *self.reopen.lock().unwrap_or_else(PoisonError::into_inner) = true;
        tracing::warn!(%error, "an embedded store write failed; it is reopened before the next one");
        self.refusing
            .send_replace(Some("the embedded store cannot write".to_owned()));
    }
}

/// Whether `error` is the store's own I/O failing (after which fjall refuses further writes;
/// a block file that could not be written), rather than something about the data.
fn io_failure(error: &StoreError) -> bool {
    let StoreError::Unavailable { source, .. } = error else {
        return false;
    };
    matches!(
        source.downcast_ref::<fjall::Error>(),
        Some(fjall::Error::Io(_) | fjall::Error::Storage(_) | fjall::Error::Poisoned)
    ) || matches!(
        source.downcast_ref::<super::blocks::BlockError>(),
        Some(super::blocks::BlockError::Io { .. })
    )
}

impl Store for Recovering {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let outcome = match self.store(true) {
            Ok(store) => store.write(batch).await,
            Err(error) => Err(error),
        };
        match &outcome {
            Ok(()) => {
                self.refusing
                    .send_if_modified(|refusing| refusing.take().is_some());
            }
            Err(error) if io_failure(error) => self.failed(error),
            Err(_) => {}
        }
        outcome
    }

    fn wal_ids(&self, writer: uuid::Uuid) -> bool {
        // Without an open store (being reopened), acceptance ids: always correct, only larger.
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().is_some_and(|store| store.wal_ids(writer))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.store(false)?.ping().await
    }

    async fn read_page<K: ReadingKind>(&self, request: &PageRequest) -> Result<Vec<K>, StoreError> {
        self.store(false)?.read_page::<K>(request).await
    }

    async fn read_api_columns(
        &self,
        request: &crate::store::ApiColumnsRequest,
    ) -> Result<crate::store::ApiColumns, StoreError> {
        self.store(false)?.read_api_columns(request).await
    }

    async fn read_latest<K: ReadingKind>(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<K>, StoreError> {
        self.store(false)?.read_latest::<K>(shard, service).await
    }

    fn rollups_written_since(&self) -> TimestampMs {
        self.written_since
    }

    async fn rollups_since(&self, service: &ServiceName) -> Result<TimestampMs, StoreError> {
        self.store(false)?.rollups_since(service).await
    }

    async fn lower_rollups_since(
        &self,
        service: Option<&ServiceName>,
        at: TimestampMs,
    ) -> Result<(), StoreError> {
        self.store(false)?.lower_rollups_since(service, at).await
    }

    async fn delete_rollups(&self, rows: &[RollupRow]) -> Result<(), StoreError> {
        self.store(true)?.delete_rollups(rows).await
    }

    async fn read_rollups(&self, request: &RollupRequest) -> Result<Vec<RollupRow>, StoreError> {
        self.store(false)?.read_rollups(request).await
    }

    async fn read_rollup_page(
        &self,
        request: &crate::store::RollupPageRequest,
    ) -> Result<Vec<RollupRow>, StoreError> {
        self.store(false)?.read_rollup_page(request).await
    }

    async fn read_series(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        self.store(false)?.read_series(service, bucket).await
    }
}
