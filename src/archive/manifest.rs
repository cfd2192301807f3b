//! The archive's manifest (`manifest.json` at its root) and the lock that gives one process at a
//! time the right to change the archive.
//!
//! The manifest lists every complete data file: kind, service, bucket, path, rows, the time of
//! its first and last reading, size and SHA-256. It is the archive's source of truth: `import`
//! reads only what it lists (a data file it does not list is the leftover of an interrupted
//! run), and checks each file's checksum before loading it.
//!
//! Invariants: a file enters the manifest only after it was renamed to its final name and
//! synced; the manifest itself is replaced atomically (written to a temporary name, synced,
//! renamed, directory synced) after every bucket, so an interrupted export loses at most the
//! bucket it was writing (its files are there but unlisted, and written again) and a rerun goes
//! on from there. Entries are kept sorted by
//! `(kind, service, bucket)`, so two exports of the same data write the same manifest.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layout::MANIFEST;
use super::ArchiveError;

/// The manifest format this version writes and reads.
pub const FORMAT: u32 = 1;
/// The lock file at the archive's root.
const LOCK: &str = ".lock";

/// One data file: one kind's readings of one service in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The kind (`api`, `host`).
    pub kind: String,
    /// The service, as stored (its path segment is percent-encoded).
    pub service: String,
    /// The bucket's start, epoch seconds.
    pub bucket: i64,
    /// The bucket's start, RFC 3339.
    pub bucket_start: String,
    /// The file, relative to the archive's root, `/`-separated.
    pub path: String,
    /// Readings in the file.
    pub rows: u64,
    /// The time of its oldest reading, RFC 3339.
    pub first_timestamp: String,
    /// The time of its newest reading, RFC 3339.
    pub last_timestamp: String,
    /// The file's size.
    pub bytes: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

impl FileEntry {
    fn key(&self) -> (&str, &str, i64) {
        (&self.kind, &self.service, self.bucket)
    }
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The bucket width of the store the archive was made from, seconds.
    pub bucket_width_seconds: u32,
    /// Set by automatic archiving (`serve --archive-dir`): every bucket that starts before this
    /// instant (epoch seconds) has been exported, for every service known when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_until: Option<i64>,
    /// Every data file, sorted by kind, service and bucket.
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// An empty manifest of buckets `bucket_width_seconds` wide.
    pub fn new(bucket_width_seconds: u32) -> Self {
        Self {
            format: FORMAT,
            bucket_width_seconds,
            archived_until: None,
            files: Vec::new(),
        }
    }

    /// The manifest of the archive in `root`, or `None` when there is none yet.
    pub fn load(root: &Path) -> Result<Option<Self>, ArchiveError> {
        let path = root.join(MANIFEST);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ArchiveError::io("reading", &path, e)),
        };
        let manifest: Self = serde_json::from_slice(&text).map_err(|e| ArchiveError::Manifest {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        if manifest.format != FORMAT {
            return Err(ArchiveError::Manifest {
                path,
                problem: format!(
                    "format {} is not the one this version reads ({FORMAT})",
                    manifest.format
                ),
            });
        }
        Ok(Some(manifest))
    }

    /// The manifest of `root`, or a new one; either way for buckets `width_seconds` wide.
    pub fn load_for(root: &Path, width_seconds: u32) -> Result<Self, ArchiveError> {
        match Self::load(root)? {
            Some(m) if m.bucket_width_seconds != width_seconds => Err(ArchiveError::Manifest {
                path: root.join(MANIFEST),
                problem: format!(
                    "it holds buckets of {} s, the store's are {width_seconds} s; archive into \
                     another directory",
                    m.bucket_width_seconds
                ),
            }),
            Some(m) => Ok(m),
            None => Ok(Self::new(width_seconds)),
        }
    }

    /// The entry of `(kind, service, bucket)`, if exported.
    pub fn get(&self, kind: &str, service: &str, bucket: i64) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|e| e.key().cmp(&(kind, service, bucket)))
            .ok()
            .map(|i| &self.files[i])
    }

    /// Adds `entry`, replacing the entry of the same file.
    pub fn put(&mut self, entry: FileEntry) {
        match self.files.binary_search_by(|e| e.key().cmp(&entry.key())) {
            Ok(i) => self.files[i] = entry,
            Err(i) => self.files.insert(i, entry),
        }
    }

    /// Replaces the manifest of `root` atomically.
    pub fn save(&self, root: &Path) -> Result<(), ArchiveError> {
        let mut text = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        text.push(b'\n');
        write_atomically(root, MANIFEST, &text)
    }
}

/// Writes `bytes` to `root/name` so that a reader sees the old file or the new one, whole.
fn write_atomically(root: &Path, name: &str, bytes: &[u8]) -> Result<(), ArchiveError> {
    let tmp = root.join(format!(".{name}.tmp"));
    let path = root.join(name);
    let mut file = File::create(&tmp).map_err(|e| ArchiveError::io("creating", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| ArchiveError::io("writing", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| ArchiveError::io("renaming", &tmp, e))?;
    sync_dir(root)
}

/// Syncs a directory, so that a rename into it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ArchiveError::io("syncing", dir, e))
}

/// The right to change the archive in a directory; released when dropped.
#[derive(Debug)]
pub struct ArchiveLock {
    _file: File,
}

impl ArchiveLock {
    /// Takes the lock of the archive in `root` (created if needed), or fails at once when
    /// another process (an export, or a `serve` archiving there) holds it.
    pub fn take(root: &Path) -> Result<Self, ArchiveError> {
        fs::create_dir_all(root).map_err(|e| ArchiveError::io("creating", root, e))?;
        let path: PathBuf = root.join(LOCK);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ArchiveError::io("opening", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(ArchiveError::ArchiveInUse {
                dir: root.to_path_buf(),
            }),
            Err(fs::TryLockError::Error(e)) => Err(ArchiveError::io("locking", &path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, service: &str, bucket: i64, rows: u64) -> FileEntry {
        FileEntry {
            kind: kind.into(),
            service: service.into(),
            bucket,
            bucket_start: String::new(),
            path: format!("{kind}/{service}/{bucket}"),
            rows,
            first_timestamp: String::new(),
            last_timestamp: String::new(),
            bytes: 1,
            sha256: String::new(),
        }
    }

    #[test]
    fn entries_stay_sorted_and_a_rewrite_replaces_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut manifest = Manifest::new(3600);
        manifest.put(entry("host", "a", 7200, 1));
        manifest.put(entry("api", "b", 3600, 2));
        manifest.put(entry("api", "a", 3600, 3));
        manifest.put(entry("api", "b", 3600, 5));
        let keys: Vec<_> = manifest.files.iter().map(|e| e.key()).collect();
        assert_eq!(
            keys,
            [("api", "a", 3600), ("api", "b", 3600), ("host", "a", 7200)]
        );
        assert_eq!(manifest.get("api", "b", 3600).unwrap().rows, 5);
        manifest.save(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), Some(manifest));
        let error = Manifest::load_for(dir.path(), 60).unwrap_err();
        assert!(error.to_string().contains("3600 s"), "{error}");
    }

    #[test]
    fn one_process_at_a_time_holds_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let held = ArchiveLock::take(dir.path()).unwrap();
        let error = ArchiveLock::take(dir.path()).unwrap_err();
        assert!(
            matches!(error, ArchiveError::ArchiveInUse { .. }),
            "{error}"
        );
        drop(held);
        ArchiveLock::take(dir.path()).unwrap();
    }
}
