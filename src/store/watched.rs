//! [`Watched`]: a store wrapper that knows how long the write in progress has been running, so
//! readiness can see a flush that hangs (a stalled node holds a write for the driver's whole
//! request timeout, and a flush for as long as the stall lasts) instead of waiting for it to
//! fail.
//!
//! Reads go straight through; only writes are timed. A write's start is recorded when it
//! begins and cleared when it ends or is cancelled (a guard), so a finished write never reads
//! as stuck.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{PageRequest, SeriesEntry, Store, StoreError, WriteBatch};
use crate::model::{ReadingKind, Seq, ServiceName, Settings, TimeBucket, TimestampMs};
use crate::rollup::{RollupRequest, RollupRow};

/// When the oldest write in progress began; shared with whoever reports readiness.
#[derive(Debug, Clone, Default)]
pub struct WriteClock {
    /// Start of each write in progress, oldest first.
    started: Arc<Mutex<Vec<Instant>>>,
}

impl WriteClock {
    /// How long the oldest write in progress has been running, if one is.
    pub fn running_for(&self) -> Option<Duration> {
        let started = self.started.lock().expect("not poisoned");
        started.first().map(Instant::elapsed)
    }

    fn begin(&self) -> Running<'_> {
        let at = Instant::now();
        self.started.lock().expect("not poisoned").push(at);
        Running { clock: self, at }
    }
}

/// A write in progress; dropping it (finished or cancelled) takes it off the clock.
struct Running<'a> {
    clock: &'a WriteClock,
    at: Instant,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut started = self.clock.started.lock().expect("not poisoned");
        if let Some(i) = started.iter().position(|t| *t == self.at) {
            started.remove(i);
        }
    }
}

/// `S` with its writes timed on a [`WriteClock`].
#[derive(Debug)]
pub struct Watched<S> {
    inner: Arc<S>,
    clock: WriteClock,
}

impl<S> Watched<S> {
    /// Times the writes of `inner` on `clock`.
    pub fn new(inner: Arc<S>, clock: WriteClock) -> Self {
        Self { inner, clock }
    }
}

impl<S: Store> Store for Watched<S> {
    fn settings(&self) -> &Settings {
        self.inner.settings()
    }

    async fn connected(&self) {
        self.inner.connected().await
    }

    fn wal_ids(&self, writer: uuid::Uuid) -> bool {
        self.inner.wal_ids(writer)
    }

    async fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let _running = self.clock.begin();
        self.inner.write(batch).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn read_page<K: ReadingKind>(&self, request: &PageRequest) -> Result<Vec<K>, StoreError> {
        self.inner.read_page::<K>(request).await
    }

    async fn read_api_columns(
        &self,
        request: &crate::store::ApiColumnsRequest,
    ) -> Result<crate::store::ApiColumns, StoreError> {
        self.inner.read_api_columns(request).await
    }

    async fn read_latest<K: ReadingKind>(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<K>, StoreError> {
        self.inner.read_latest::<K>(shard, service).await
    }

    fn rollups_written_since(&self) -> TimestampMs {
        self.inner.rollups_written_since()
    }

    async fn rollups_since(&self, service: &ServiceName) -> Result<TimestampMs, StoreError> {
        self.inner.rollups_since(service).await
    }

    async fn lower_rollups_since(
        &self,
        service: Option<&ServiceName>,
        at: TimestampMs,
    ) -> Result<(), StoreError> {
        self.inner.lower_rollups_since(service, at).await
    }

    async fn delete_rollups(&self, rows: &[RollupRow]) -> Result<(), StoreError> {
        self.inner.delete_rollups(rows).await
    }

    async fn read_rollups(&self, request: &RollupRequest) -> Result<Vec<RollupRow>, StoreError> {
        self.inner.read_rollups(request).await
    }

    async fn read_rollup_page(
        &self,
        request: &super::RollupPageRequest,
    ) -> Result<Vec<RollupRow>, StoreError> {
        self.inner.read_rollup_page(request).await
    }

    async fn read_series(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        self.inner.read_series(service, bucket).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_shows_only_writes_in_progress() {
        let clock = WriteClock::default();
        assert_eq!(clock.running_for(), None);
        let first = clock.begin();
        std::thread::sleep(Duration::from_millis(5));
        let second = clock.begin();
        assert!(clock.running_for().unwrap() >= Duration::from_millis(5));
        drop(first);
        assert!(clock.running_for().is_some());
        drop(second);
        assert_eq!(clock.running_for(), None);
    }

    #[test]
    fn the_store_s_answer_on_wal_ids_goes_through() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
        let watched = Watched::new(Arc::new(store), WriteClock::default());
        let writer = uuid::Uuid::now_v7();
        assert!(
            watched.wal_ids(writer),
            "the embedded store's WAL gets WAL ids"
        );
        assert!(!watched.wal_ids(uuid::Uuid::now_v7()));
    }
}
