//! [`DeferredCql`]: the CQL store as `serve` uses it, so that a cluster outage at start does not
//! keep the service from accepting ingest.
//!
//! `serve` opens the WAL and HTTP first and connects to the cluster in the background
//! ([`DeferredCql::connect_until_done`], retrying with capped backoff). Until connected, every
//! store operation answers *unavailable* with the last connection error, so queries answer 503,
//! `/readyz` says why, and ingest goes on into the WAL. [`Store::connected`] resolves once the
//! session is up: the flusher waits for it, so batches are only ever grouped with the cluster's
//! real settings (bucket width, shards).
//!
//! Until then [`Store::settings`] answers the *provisional* settings: the last ones read from the
//! cluster, cached in the data dir ([`SettingsCache`]), or without a cache the settings flags
//! over the defaults. Ingest uses them only for its retention window.
//!
//! Invariant: the connected store is set once ([`OnceLock`]) and never replaced, so a reference
//! to its settings stays valid.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use super::{CqlSecurity, CqlStore, Keyspace, SessionConfig};
use crate::model::{ReadingKind, Seq, ServiceName, Settings, TimeBucket, TimestampMs};
use crate::rollup::{RollupRequest, RollupRow};
use crate::store::{PageRequest, SeriesEntry, Store, StoreError, WriteBatch};

/// First delay between connection attempts.
const RETRY_INITIAL: Duration = Duration::from_millis(500);
/// Longest delay between connection attempts.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// A CQL store that may not be connected yet.
#[derive(Debug)]
pub struct DeferredCql {
    connected: OnceLock<CqlStore>,
    /// Tells [`Store::connected`] waiters; true once `connected` is set.
    up: watch::Sender<bool>,
    provisional: Settings,
    /// Why the last connection attempt failed (`None` before the first attempt ends).
    last_error: Mutex<Option<String>>,
}

impl DeferredCql {
    /// A store not connected yet, answering `provisional` as its settings until it is.
    pub fn new(provisional: Settings) -> Arc<Self> {
        Arc::new(Self {
            connected: OnceLock::new(),
            up: watch::channel(false).0,
            provisional,
            last_error: Mutex::new(None),
        })
    }

    /// The connected store, if any.
    pub fn get(&self) -> Option<&CqlStore> {
        self.connected.get()
    }

    /// Connects to `nodes` and opens `keyspace`, retrying every error with capped backoff and
    /// logging each failure, until it works; then hands the store to `accept`, which may refuse
    /// it (settings that conflict with the flags): that error ends the attempts and is returned.
    /// Otherwise the store is installed (see [`DeferredCql::install`]).
    pub async fn connect_until_done<E>(
        &self,
        nodes: &[String],
        keyspace: &Keyspace,
        session: &SessionConfig,
        security: &CqlSecurity,
        cache: &SettingsCache,
        accept: impl FnOnce(&CqlStore) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut delay = RETRY_INITIAL;
        let store = loop {
            tokio::time::sleep(delay).await;
            match CqlStore::open_secured(nodes, keyspace, session, security).await {
                Ok(store) => break store,
                Err(error) => {
                    self.failed(&error);
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        };
        accept(&store)?;
        self.install(store, cache);
        Ok(())
    }

    /// Records a failed connection attempt: logged, and the reason every operation gives
    /// until connected.
    pub fn failed(&self, error: &StoreError) {
        tracing::warn!(%error, "cannot open the CQL store yet; ingest goes on into the WAL");
        *self.last_error.lock().expect("not poisoned") = Some(error.to_string());
    }

    /// Makes `store` the connected store (once; a second call is ignored), writes its settings
    /// to `cache` and wakes whoever waits in [`Store::connected`].
    pub fn install(&self, store: CqlStore, cache: &SettingsCache) {
        if let Err(error) = cache.save(store.settings()) {
            tracing::warn!(%error,
                "cannot cache the keyspace's settings; a restart during an outage will use the flags");
        }
        if *store.settings() != self.provisional {
            tracing::warn!(
                "the keyspace's settings differ from the provisional ones ingest started with; \
                 ingest's retention window follows them after a restart"
            );
        }
        let _ = self.connected.set(store);
        self.up.send_replace(true);
    }

    fn store(&self) -> Result<&CqlStore, StoreError> {
        self.connected.get().ok_or_else(|| {
            let last = self.last_error.lock().expect("not poisoned").clone();
            let reason = match last {
                Some(error) => format!("not connected yet; last attempt: {error}"),
                None => "not connected yet; the first attempt is under way".to_owned(),
            };
            StoreError::unavailable("connecting to the CQL cluster", reason)
        })
    }
}

impl Store for DeferredCql {
    fn settings(&self) -> &Settings {
        self.connected
            .get()
            .map_or(&self.provisional, CqlStore::settings)
    }

    fn wal_ids(&self, writer: uuid::Uuid) -> bool {
        self.connected
            .get()
            .is_some_and(|store| store.wal_ids(writer))
    }

    async fn connected(&self) {
        let mut up = self.up.subscribe();
        // The sender lives in `self`, so the wait cannot end with a closed channel.
        let _ = up.wait_for(|up| *up).await;
    }

    async fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        self.store()?.write(batch).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.store()?.ping().await
    }

    async fn read_page<K: ReadingKind>(&self, request: &PageRequest) -> Result<Vec<K>, StoreError> {
        self.store()?.read_page::<K>(request).await
    }

    async fn read_latest<K: ReadingKind>(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<K>, StoreError> {
        self.store()?.read_latest::<K>(shard, service).await
    }

    fn rollups_written_since(&self) -> TimestampMs {
        self.connected.get().map_or(
            TimestampMs::from_millis(i64::MAX),
            CqlStore::rollups_written_since,
        )
    }

    async fn rollups_since(&self, service: &ServiceName) -> Result<TimestampMs, StoreError> {
        self.store()?.rollups_since(service).await
    }

    async fn lower_rollups_since(
        &self,
        service: Option<&ServiceName>,
        at: TimestampMs,
    ) -> Result<(), StoreError> {
        self.store()?.lower_rollups_since(service, at).await
    }

    async fn delete_rollups(&self, rows: &[RollupRow]) -> Result<(), StoreError> {
        self.store()?.delete_rollups(rows).await
    }

    async fn read_rollups(&self, request: &RollupRequest) -> Result<Vec<RollupRow>, StoreError> {
        self.store()?.read_rollups(request).await
    }

    async fn read_rollup_page(
        &self,
        request: &crate::store::RollupPageRequest,
    ) -> Result<Vec<RollupRow>, StoreError> {
        self.store()?.read_rollup_page(request).await
    }

    async fn read_series(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        self.store()?.read_series(service, bucket).await
    }
}

/// The last settings read from the cluster, kept in a small JSON file in the data dir
/// (`{"bucket_width_seconds": 3600, ...}`, the names of `timebucket_settings`), so that a
/// restart during an outage starts with them.
#[derive(Debug, Clone)]
pub struct SettingsCache {
    path: PathBuf,
}

/// Why the settings cache cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The file cannot be read or written.
    #[error("settings cache {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold valid settings.
    #[error("settings cache {path} is not valid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl SettingsCache {
    /// The cache in `data_dir` (`<data_dir>/cql-settings.json`).
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join("cql-settings.json"),
        }
    }

    /// The cached settings, `None` when there is no cache yet.
    pub fn load(&self) -> Result<Option<Settings>, CacheError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io(source)),
        };
        let invalid = |reason: String| CacheError::Invalid {
            path: self.path.clone(),
            reason,
        };
        let pairs: std::collections::BTreeMap<String, i64> =
            serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let settings =
            Settings::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), *v))).map_err(invalid)?;
        Ok(Some(settings))
    }

    /// Replaces the cache with `settings`, durably (a temporary file renamed over it).
    pub fn save(&self, settings: &Settings) -> Result<(), CacheError> {
        if self.load().ok().flatten().as_ref() == Some(settings) {
            return Ok(());
        }
        let pairs: std::collections::BTreeMap<&str, i64> =
            settings.to_pairs().into_iter().collect();
        let text = serde_json::to_string_pretty(&pairs).expect("a map of numbers serializes");
        let temporary = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::File::create(&temporary)?;
            std::io::Write::write_all(&mut file, text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)
        };
        write().map_err(|e| self.io(e))?;
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> CacheError {
        CacheError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BucketWidth;

    #[test]
    fn the_cache_keeps_the_settings_it_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SettingsCache::in_data_dir(dir.path());
        assert!(cache.load().unwrap().is_none());
        let settings = Settings {
            bucket_width: BucketWidth::from_seconds(1800).unwrap(),
            ..Settings::default()
        };
        cache.save(&settings).unwrap();
        assert_eq!(cache.load().unwrap(), Some(settings));
        cache.save(&Settings::default()).unwrap();
        assert_eq!(cache.load().unwrap(), Some(Settings::default()));
    }

    #[test]
    fn a_damaged_cache_is_an_error_not_a_default() {
        let dir = tempfile::tempdir().unwrap();
        let cache = SettingsCache::in_data_dir(dir.path());
        std::fs::write(dir.path().join("cql-settings.json"), "{\"shard_count\": ").unwrap();
        assert!(matches!(cache.load(), Err(CacheError::Invalid { .. })));
    }

    #[tokio::test]
    async fn until_connected_every_operation_is_unavailable_with_the_provisional_settings() {
        let store = DeferredCql::new(Settings::default());
        assert_eq!(store.settings(), &Settings::default());
        let error = store.ping().await.unwrap_err();
        assert!(error.is_retryable(), "{error}");
        assert!(error.to_string().contains("not connected yet"), "{error}");
        let waited = tokio::time::timeout(Duration::from_millis(50), store.connected()).await;
        assert!(waited.is_err(), "connected() must wait for the connection");
    }
}
