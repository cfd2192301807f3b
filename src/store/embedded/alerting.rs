//! [`AlertStore`] beside the embedded store: one small file per rule group under
//! `<data-dir>/alerting/`, each replaced atomically (written to a temporary file, synced,
//! renamed over the old one, the folder synced), so a crash leaves the old state or the new,
//! never a torn one.
//!
//! Why files and not a fjall keyspace: the state is a few kilobytes per group, read once at
//! start and rewritten whole after each evaluation, which is what a rename does best; and it
//! keeps alerting out of the embedded store's internals (a keyspace would need an accessor into
//! [`super::EmbeddedStore`], whose layout is its own business).
//!
//! The lease is held in memory: the embedded store belongs to one process, so that process is
//! always the evaluator (the lease still expires if it is not renewed, as the contract says).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::alerting::{AlertStore, AlertStoreError};

/// Alert state files in one folder.
#[derive(Debug, Clone)]
pub struct FileAlertStore {
    dir: PathBuf,
    lease: Arc<Mutex<Option<(Uuid, Instant)>>>,
}

impl FileAlertStore {
    /// The state files in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            lease: Arc::default(),
        }
    }

    /// The file of `group`: a hash of its name, so any name makes a safe file name.
    fn path(&self, group: &str) -> PathBuf {
        let digest = Sha256::digest(group.as_bytes());
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("group-{name}.json"))
    }

    /// Runs blocking file work off the async threads.
    async fn blocking<T: Send + 'static>(
        work: impl FnOnce() -> Result<T, AlertStoreError> + Send + 'static,
    ) -> Result<T, AlertStoreError> {
        tokio::task::spawn_blocking(work)
            .await
            .expect("alert state file work panicked")
    }

    fn holder(&self) -> std::sync::MutexGuard<'_, Option<(Uuid, Instant)>> {
        self.lease.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AlertStoreError {
    let path = path.to_owned();
    move |source| AlertStoreError::Io { what, path, source }
}

/// Writes `bytes` to `path` so that readers see the old content or the new, whole.
fn replace(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), AlertStoreError> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary).map_err(io("creating", &temporary))?;
    file.write_all(bytes).map_err(io("writing", &temporary))?;
    file.sync_all().map_err(io("syncing", &temporary))?;
    std::fs::rename(&temporary, path).map_err(io("renaming", path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", dir))
}

impl AlertStore for FileAlertStore {
    async fn load_group(&self, group: &str) -> Result<Option<Vec<u8>>, AlertStoreError> {
        let path = self.path(group);
        Self::blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &path)(e)),
        })
        .await
    }

    async fn save_group(&self, group: &str, state: &[u8]) -> Result<(), AlertStoreError> {
        let (dir, path, bytes) = (self.dir.clone(), self.path(group), state.to_vec());
        Self::blocking(move || replace(&dir, &path, &bytes)).await
    }

    async fn delete_group(&self, group: &str) -> Result<(), AlertStoreError> {
        let path = self.path(group);
        Self::blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("deleting", &path)(e)),
        })
        .await
    }

    async fn acquire_lease(&self, owner: Uuid, ttl: Duration) -> Result<bool, AlertStoreError> {
        let mut holder = self.holder();
        let now = Instant::now();
        match *holder {
            Some((_, until)) if until > now => Ok(false),
            _ => {
                *holder = Some((owner, now + ttl));
                Ok(true)
            }
        }
    }

    async fn renew_lease(&self, owner: Uuid, ttl: Duration) -> Result<bool, AlertStoreError> {
        let mut holder = self.holder();
        let now = Instant::now();
        match *holder {
            Some((held_by, until)) if held_by == owner && until > now => {
                *holder = Some((owner, now + ttl));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, owner: Uuid) -> Result<(), AlertStoreError> {
        let mut holder = self.holder();
        if holder.is_some_and(|(held_by, _)| held_by == owner) {
            *holder = None;
        }
        Ok(())
    }
}
