//! The quarantine: what the flusher can never write goes aside, into a file under
//! `<data-dir>/quarantine/`, instead of blocking ingest forever.
//!
//! Two things go there, then the flusher moves on and confirms the WAL past them:
//! - a batch the store refused for good (a [`StoreError`](crate::store::StoreError) that is not
//!   retryable): its readings;
//! - a WAL record whose CRC is right but whose payload this version cannot decode: its payload as
//!   it is.
//!
//! Each is logged once, at ERROR, with its file, and counted in `/metrics`
//! (`timebucket_quarantined_total{what="batch"|"record"}`, `timebucket_quarantined_readings_total`).
//! Nothing is lost: a file is durable (written to a temporary name, fsynced, renamed, directory
//! fsynced) before the WAL is confirmed past it; writing it is retried until it succeeds.
//!
//! One file per item, `<unix ms>-<segment>-<offset>-<what>.quarantine`:
//!
//! ```text
//! {"what":"batch","at":"2026-…Z","wal":"segment 3 offset 24 to segment 3 offset 4096","readings":812,"reason":"…"}\n
//! payload: a WAL record payload (`ingest::record`); for a batch, its readings encoded anew
//! ```
//!
//! `timebucket quarantine list` shows the headers, `timebucket quarantine show FILE` an item's
//! readings as NDJSON in the ingest format ([`cli`]).

pub mod cli;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::TimestampMs;
use crate::telemetry::Metrics;
use crate::wal::Position;

/// The directory of the quarantine under the data directory.
pub const DIR_NAME: &str = "quarantine";
/// The file name ending of a quarantined item.
const EXTENSION: &str = "quarantine";
/// Longest wait between two attempts to write a quarantine file.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// What an item holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum What {
    /// Readings of a batch the store refused.
    Batch,
    /// A WAL record payload that cannot be decoded.
    Record,
}

impl What {
    fn name(self) -> &'static str {
        match self {
            What::Batch => "batch",
            What::Record => "record",
        }
    }
}

/// The first line of a quarantine file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// What the payload is.
    pub what: What,
    /// When it was set aside, RFC 3339.
    pub at: String,
    /// Where in the WAL it was.
    pub wal: String,
    /// How many readings a batch held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readings: Option<usize>,
    /// Why it could not be written or decoded.
    pub reason: String,
}

/// Why the quarantine cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// A file or the directory cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file does not start with a header line.
    #[error("{} is not a quarantine file: {reason}", path.display())]
    NotAnItem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// An item set aside: its header and payload, and where it came from.
#[derive(Debug, Clone)]
pub struct Item {
    /// The header.
    pub header: Header,
    /// The WAL record payload.
    pub payload: Vec<u8>,
    /// The WAL position it started at (part of the file name).
    pub position: Position,
}

/// The quarantine directory of one data directory.
#[derive(Debug, Clone)]
pub struct Quarantine {
    dir: PathBuf,
}

impl Quarantine {
    /// The quarantine of `data_dir` (`<data_dir>/quarantine`).
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(DIR_NAME),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `item` durably; returns its file.
    pub fn put(&self, item: &Item) -> io::Result<PathBuf> {
        fs::create_dir_all(&self.dir)?;
        let name = format!(
            "{}-{}-{}-{}.{EXTENSION}",
            TimestampMs::now().millis(),
            item.position.segment,
            item.position.offset,
            item.header.what.name()
        );
        let path = self.dir.join(&name);
        let temporary = self.dir.join(format!(".{name}.tmp"));
        let mut file = File::create(&temporary)?;
        serde_json::to_writer(&mut file, &item.header)?;
        file.write_all(b"\n")?;
        file.write_all(&item.payload)?;
        file.sync_all()?;
        fs::rename(&temporary, &path)?;
        File::open(&self.dir)?.sync_all()?;
        Ok(path)
    }

    /// Every item's file name and header, oldest first; none when the directory does not exist.
    pub fn list(&self) -> Result<Vec<(String, Header)>, QuarantineError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| QuarantineError::Io { path, source }
        };
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let name = entry.map_err(io(&self.dir))?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(&format!(".{EXTENSION}")) && !name.starts_with('.') {
                names.push(name.into_owned());
            }
        }
        // Names start with the time they were written.
        names.sort_by_key(|name| {
            let millis = name.split('-').next().and_then(|t| t.parse::<i64>().ok());
            (millis, name.clone())
        });
        names
            .into_iter()
            .map(|name| {
                let (header, _) = self.read(&name)?;
                Ok((name, header))
            })
            .collect()
    }

    /// The header and payload of the item in file `name`.
    pub fn read(&self, name: &str) -> Result<(Header, Vec<u8>), QuarantineError> {
        let path = self.dir.join(name);
        let bytes = fs::read(&path).map_err(|source| QuarantineError::Io {
            path: path.clone(),
            source,
        })?;
        let not_an_item = |reason: String| QuarantineError::NotAnItem {
            path: path.clone(),
            reason,
        };
        let end = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| not_an_item("no header line".into()))?;
        let header =
            serde_json::from_slice(&bytes[..end]).map_err(|e| not_an_item(e.to_string()))?;
        Ok((header, bytes[end + 1..].to_vec()))
    }

    /// Writes `item` durably, retrying with backoff until it is on disk (the WAL still holds it
    /// meanwhile); then logs it once and counts it.
    pub async fn set_aside(&self, item: Item, metrics: &Metrics) {
        let mut delay = Duration::from_millis(100);
        let path = loop {
            let (quarantine, copy) = (self.clone(), item.clone());
            let written = tokio::task::spawn_blocking(move || quarantine.put(&copy))
                .await
                .expect("quarantine writer panicked");
            match written {
                Ok(path) => break path,
                Err(error) => {
                    tracing::warn!(%error, dir = %self.dir.display(), retry_in = ?delay,
                        "cannot write to the quarantine; the item stays in the WAL meanwhile");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        };
        let header = &item.header;
        metrics
            .quarantined
            .get_or_create(&[("what", header.what.name())])
            .inc();
        metrics
            .quarantined_readings
            .inc_by(header.readings.unwrap_or(0) as u64);
        tracing::error!(
            what = header.what.name(),
            file = %path.display(),
            wal = %header.wal,
            readings = header.readings.unwrap_or(0),
            reason = %header.reason,
            "set aside in the quarantine: it will not be retried; see `timebucket quarantine show`"
        );
    }

    /// Logs once, at start, that the quarantine holds items.
    pub fn report(&self) {
        match self.list() {
            Ok(items) if !items.is_empty() => tracing::warn!(
                items = items.len(),
                dir = %self.dir.display(),
                "the quarantine holds items the store never took; see `timebucket quarantine list`"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot read the quarantine"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::SegmentId;

    fn item(what: What, payload: &[u8]) -> Item {
        Item {
            header: Header {
                what,
                at: TimestampMs::from_millis(0).to_rfc3339(),
                wal: "segment 1 offset 24".into(),
                readings: (what == What::Batch).then_some(2),
                reason: "refused".into(),
            },
            payload: payload.to_vec(),
            position: Position::start_of(SegmentId(1)),
        }
    }

    #[test]
    fn items_are_listed_and_read_back_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let quarantine = Quarantine::in_data_dir(dir.path());
        assert!(quarantine.list().unwrap().is_empty(), "no directory yet");
        let payload = [0u8, b'\n', 0xff, 1];
        let path = quarantine.put(&item(What::Record, &payload)).unwrap();
        quarantine.put(&item(What::Batch, b"x")).unwrap();
        let listed = quarantine.list().unwrap();
        assert_eq!(listed.len(), 2);
        let name = path.file_name().unwrap().to_str().unwrap();
        let (header, read) = quarantine.read(name).unwrap();
        assert_eq!(header, item(What::Record, &payload).header);
        assert_eq!(read, payload);
        assert!(std::fs::read_dir(quarantine.dir()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")));
    }
}
