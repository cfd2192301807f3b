//! Write-ahead log: timebucket's durability boundary and the queue between HTTP ingest and
//! the Cassandra flusher.
//!
//! An accepted batch is acknowledged only once its record is written and fdatasync'ed here.
//! The flusher reads records back from disk, not from memory, so memory stays bounded
//! whatever the backlog, and confirms positions once the store has them so whole segments
//! can be deleted. Flow:
//! `append` → writer thread (group commit: one write and one `sync_data` per group and
//! segment) → durable end on a watch channel → [`WalReader::next_batch`] → store →
//! [`Wal::confirm`]`(record.next)` → atomic checkpoint, deletion of confirmed segments.
//!
//! Invariants:
//! - records never span segments; [`Position`]s order exactly like the log;
//! - a segment is fully synced before the next one is created, so after a crash only the
//!   newest segment can end in a torn write (rules in `scan`); damage anywhere else is
//!   corruption and fails [`Wal::open`] unless `repair` is set;
//! - a segment's creation is recorded in the checkpoint before it takes records, so a lost
//!   end of the log is detected at open instead of looking like a clean start;
//! - nothing past the durable end is read, acknowledged or confirmed;
//! - the `confirmed` checkpoint only moves forward; it is updated in place (two slots), so
//!   confirming, and so deleting segments, needs no free space;
//! - after a restart new appends go to a fresh segment, never into a recovered one.
//!
//! Resource exhaustion never takes the WAL down: when the disk is full or no file descriptor
//! is free, the failing appends get a retryable error ([`WalError::is_retryable`]), the
//! writer retries with the next append and probes on its own meanwhile, and
//! [`Wal::append_problem`] says why appends fail until one works again. [`Wal::open`] works
//! on a full disk too: when the fresh segment cannot be created, appends fail until it can.
//!
//! Directory: `<dir>/{id:020}.seg` segment files plus the `confirmed` checkpoint.
//!
//! Segment file (`segment_bytes` is a target: a record that does not fit starts a new one):
//! ```text
//! 0                 8                  16         16+f0      ...              <= segment_bytes
//! +-----------------+------------------+----------+----------+-----+----------+
//! | magic (8 B)     | segment id       | record 0 | record 1 | ... | record n |
//! | "TBWAL\0\0\x01" | u64 LE           | f0 bytes | f1 bytes |     |          |
//! +-----------------+------------------+----------+----------+-----+----------+
//!   name + version    = file name id     no padding, no footer: the file ends after record n
//! ```
//! Record frame (a record's position is the offset of its first byte):
//! ```text
//! +0             +4             +8                           +8+len
//! +--------------+--------------+----------------------------+
//! | len u32 LE   | crc u32 LE   | payload (len bytes, > 0)   |
//! +--------------+--------------+----------------------------+
//!  crc = CRC32C(len bytes ++ payload): covering the length, zeros never form a record
//! ```

mod checkpoint;
mod error;
mod format;
mod reader;
mod recovery;
mod scan;
mod state;
mod types;
mod writer;

#[cfg(test)]
mod tests_api;
#[cfg(test)]
mod tests_commit;
#[cfg(test)]
mod tests_damage;

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

pub use error::WalError;
pub use reader::{WalReader, WalRecord};
pub use types::{
    Position, ReadingCounter, RepairReport, SegmentId, WalConfig, WalStats,
    DEFAULT_MAX_RECORD_BYTES, DEFAULT_SEGMENT_BYTES,
};

use state::Shared;
use writer::{AppendRequest, Writer};

/// A handle to an open WAL. Cheap to clone; the writer thread stops when [`Wal::close`] is
/// called or the last handle is dropped, after finishing the appends already queued.
#[derive(Clone)]
pub struct Wal {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    max_record_bytes: u32,
    repaired: RepairReport,
    queue: Mutex<Option<Sender<AppendRequest>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Wal {
    /// Opens the WAL in `config.dir` (creating the directory if needed): validates every
    /// segment at or after the checkpoint, truncates a torn tail of the newest segment with
    /// a warning, and fails with an error of the [`WalError::is_corruption`] class on damage
    /// elsewhere, unless `config.repair` is set (then it drops the damaged records, keeps the
    /// rest and reports what it dropped: [`Wal::repair_report`]). Then creates a fresh
    /// segment for new appends (or, if the disk is full or no descriptor is free, leaves that
    /// to the first append that finds room) and starts the writer thread.
    /// Blocking: call it before serving, or from `spawn_blocking`.
    pub fn open(config: WalConfig) -> Result<Wal, WalError> {
        config.validate()?;
        let recovered = recovery::recover(&config)?;
        let current = recovered.next_segment;
        let shared = Arc::new(Shared::new(
            config.dir.clone(),
            recovered.segments,
            current,
            recovered.checkpoint,
        ));
        let (queue, requests) = mpsc::channel();
        let mut writer = Writer::new(Arc::clone(&shared), config.segment_bytes, current);
        writer.create_now()?;
        let thread = writer
            .spawn(requests)
            .map_err(|e| WalError::io(&config.dir, e))?;
        info!(dir = %config.dir.display(), segment = %current, confirmed = %shared.confirmed(),
            backlog_bytes = shared.stats().backlog_bytes, "WAL opened");
        Ok(Wal {
            inner: Arc::new(Inner {
                shared,
                max_record_bytes: config.max_record_bytes,
                repaired: recovered.repaired,
                queue: Mutex::new(Some(queue)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Appends one record and resolves once it is written and `sync_data`'d, with the
    /// record's position. Concurrent appends share one write and one sync (group commit).
    /// Dropping the future does not withdraw the record: it may still become durable.
    pub async fn append(&self, payload: Vec<u8>) -> Result<Position, WalError> {
        if payload.is_empty() {
            return Err(WalError::EmptyRecord);
        }
        if payload.len() > self.inner.max_record_bytes as usize {
            return Err(WalError::RecordTooLarge {
                len: payload.len(),
                max: self.inner.max_record_bytes,
            });
        }
        let (reply, answer) = oneshot::channel();
        {
            let queue = self.inner.lock_queue();
            let sender = queue.as_ref().ok_or(WalError::Closed)?;
            sender
                .send(AppendRequest { payload, reply })
                .map_err(|_| WalError::Closed)?;
        }
        // The writer answers every request it takes; a dropped reply means it is gone.
        answer.await.map_err(|_| WalError::Closed)?
    }

    /// The durable end of the log: everything before it is synced. The flusher awaits
    /// `changed()` on it to learn that new records can be read.
    pub fn durable_end(&self) -> watch::Receiver<Position> {
        self.inner.shared.subscribe()
    }

    /// The WAL's directory (the rollup writer keeps its id there).
    pub fn dir(&self) -> &std::path::Path {
        &self.inner.shared.dir
    }

    /// Where replay must start: the last confirmed position, or the start of the first
    /// segment if nothing was confirmed yet.
    pub fn confirmed(&self) -> Position {
        self.inner.shared.confirmed()
    }

    /// A blocking sequential reader from `from` (moved up to [`Wal::confirmed`] if earlier,
    /// since those records may be deleted). Each call reads no further than the durable end
    /// at the time of the call.
    pub fn reader(&self, from: Position) -> WalReader {
        WalReader::new(Arc::clone(&self.inner.shared), from)
    }

    /// Marks everything before `upto` as stored: persists the checkpoint atomically, then
    /// deletes the segments whose every record lies before it (never the one being written).
    /// An older position than the current one is ignored; one past the durable end is an
    /// error. Blocking (fsyncs): call it from the flusher's blocking context.
    pub fn confirm(&self, upto: Position) -> Result<(), WalError> {
        self.inner.shared.confirm(upto)
    }

    /// Why appends fail right now (no space, no free file descriptor, a failed writer), or
    /// `None` while they work: set by a failed append, cleared by the next append that
    /// succeeds or by the writer's own probe. The reason names no file paths, so it can be
    /// shown to clients (`/readyz`).
    pub fn append_problem(&self) -> Option<String> {
        self.inner.shared.append_problem()
    }

    /// What the repair at open dropped (empty unless `repair` was set and found damage).
    pub fn repair_report(&self) -> RepairReport {
        self.inner.repaired
    }

    /// Current numbers for `/metrics` and for backpressure on ingest.
    pub fn stats(&self) -> WalStats {
        self.inner.shared.stats()
    }

    /// Stops taking appends, lets the writer finish the queued ones and waits for its
    /// thread. Other handles get [`WalError::Closed`] from then on.
    pub fn close(self) -> Result<(), WalError> {
        self.inner.shutdown()
    }
}

impl Inner {
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Option<Sender<AppendRequest>>> {
        // The guarded Option holds no invariant a panic could break.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn shutdown(&self) -> Result<(), WalError> {
        // Dropping the only sender closes the queue; the writer drains it, then exits.
        drop(self.lock_queue().take());
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match thread.map(JoinHandle::join) {
            Some(Err(_)) => Err(WalError::WriterFailed {
                reason: "the writer thread panicked".to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(err) = self.shutdown() {
            warn!(error = %err, "WAL writer did not stop cleanly");
        }
    }
}
