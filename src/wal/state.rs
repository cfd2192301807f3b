//! State shared by the API handles, the writer thread and the readers.
//!
//! Invariants:
//! - `segments` maps every segment file on disk to its synced length. The writer updates
//!   it only after `sync_data` returned and before publishing the new durable end, so any
//!   position a reader learns from the watch channel is already backed by the map and disk;
//! - `current` is the segment being written, or the one the writer will create next when it
//!   has none open (its creation failed, or is still to come after a rotation); segments
//!   before it are sealed;
//! - `confirmed <= durable end` and `confirmed` only moves forward; segments before
//!   `confirmed.segment` are deleted, and the segment being written never is;
//! - the checkpoint records a segment's creation before any record is written to it;
//! - the state lock is never held across I/O. The checkpoint has its own lock, held through
//!   a whole `confirm` (which serialises confirms) and by the writer while it records a new
//!   segment (rare), so appends to an open segment never wait for a confirm.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tracing::warn;

use super::checkpoint::{Checkpoint, CheckpointFile};
use super::error::WalError;
use super::format::{segment_path, SEGMENT_HEADER_BYTES};
use super::types::{Position, SegmentId, WalStats};

/// Everything the writer, readers and handles share; see the module invariants.
pub(super) struct Shared {
    /// The WAL directory.
    pub(super) dir: PathBuf,
    state: Mutex<LogState>,
    durable: watch::Sender<Position>,
    /// The open checkpoint; its lock also serialises confirms.
    checkpoint: Mutex<CheckpointFile>,
    /// Why the last append (or probe) failed, while appends cannot be written.
    append_problem: Mutex<Option<String>>,
    appends: AtomicU64,
    syncs: AtomicU64,
    written_bytes: AtomicU64,
}

struct LogState {
    segments: BTreeMap<SegmentId, u64>,
    current: SegmentId,
    confirmed: Position,
}

impl Shared {
    /// State after recovery: `current` is the fresh segment, in `segments` if it was created.
    /// The durable end starts at its start either way: readers never open a segment at the
    /// durable end, so one not created yet is never looked for.
    pub(super) fn new(
        dir: PathBuf,
        segments: BTreeMap<SegmentId, u64>,
        current: SegmentId,
        checkpoint: CheckpointFile,
    ) -> Shared {
        let durable_end = Position::start_of(current);
        Shared {
            dir,
            state: Mutex::new(LogState {
                segments,
                current,
                confirmed: checkpoint.current().confirmed,
            }),
            durable: watch::Sender::new(durable_end),
            checkpoint: Mutex::new(checkpoint),
            append_problem: Mutex::new(None),
            appends: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            written_bytes: AtomicU64::new(0),
        }
    }

    /// A receiver of durable-end updates.
    pub(super) fn subscribe(&self) -> watch::Receiver<Position> {
        self.durable.subscribe()
    }

    /// The current durable end.
    pub(super) fn durable_end(&self) -> Position {
        *self.durable.borrow()
    }

    /// The current confirmed position.
    pub(super) fn confirmed(&self) -> Position {
        self.state().confirmed
    }

    /// The synced length of segment `id`, or `None` once it is deleted.
    pub(super) fn segment_len(&self, id: SegmentId) -> Option<u64> {
        self.state().segments.get(&id).copied()
    }

    /// Called by the writer once `end` is synced (or a new segment was created at `end`):
    /// records the length, then wakes readers.
    pub(super) fn publish(&self, end: Position) {
        {
            let mut state = self.state();
            state.segments.insert(end.segment, end.offset);
            state.current = end.segment;
        }
        self.durable.send_replace(end);
    }

    /// Called by the writer when it moves past a fully synced segment, before it creates
    /// `next`: readers may step to `next`'s start, and confirms may delete the sealed one.
    pub(super) fn seal(&self, next: SegmentId) {
        self.state().current = next;
        self.durable.send_replace(Position::start_of(next));
    }

    /// Records in the checkpoint that segment `id` was created, before anything is written
    /// to it, so that losing it later is detected at open.
    pub(super) fn record_created(&self, id: SegmentId) -> Result<(), WalError> {
        let mut checkpoint = self.checkpoint();
        let current = checkpoint.current();
        checkpoint.store(Checkpoint {
            newest: Some(id),
            ..current
        })
    }

    /// Sets (or with `None` clears) why appends cannot be written now.
    pub(super) fn set_append_problem(&self, problem: Option<String>) {
        *self
            .append_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = problem;
    }

    /// See `Wal::append_problem`.
    pub(super) fn append_problem(&self) -> Option<String> {
        self.append_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts one synced group of `records` records and `bytes` frame bytes.
    pub(super) fn count_group(&self, records: u64, bytes: u64) {
        self.appends.fetch_add(records, Ordering::Relaxed);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.written_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// See `Wal::confirm`.
    pub(super) fn confirm(&self, upto: Position) -> Result<(), WalError> {
        let mut checkpoint = self.checkpoint();
        let durable_end = self.durable_end();
        if upto > durable_end {
            return Err(WalError::ConfirmPastEnd { upto, durable_end });
        }
        let upto = Position {
            offset: upto.offset.max(SEGMENT_HEADER_BYTES),
            ..upto
        };
        let (target, doomed) = {
            let state = self.state();
            if upto <= state.confirmed {
                return Ok(());
            }
            // The end of a sealed segment is the start of the next one; saying so lets the
            // sealed segment go now instead of at the next confirm.
            let sealed_len = state
                .segments
                .get(&upto.segment)
                .filter(|_| upto.segment < state.current);
            let target = match sealed_len {
                Some(&len) if upto.offset >= len => Position::start_of(upto.segment.next()),
                _ => upto,
            };
            let doomed: Vec<SegmentId> = state
                .segments
                .range(..target.segment)
                .map(|(&id, _)| id)
                .collect();
            (target, doomed)
        };
        // Checkpoint first, then delete: the other order would lose the records of the
        // deleted segments if a crash came between. An in-place update needs no free space,
        // so this works on a full disk and is what frees it.
        let newest = checkpoint.current().newest;
        checkpoint.store(Checkpoint {
            confirmed: target,
            newest,
        })?;
        self.state().confirmed = target;
        for id in doomed {
            match fs::remove_file(segment_path(&self.dir, id)) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    // Not fatal: the next confirm retries, and open deletes it anyway.
                    warn!(segment = %id, error = %err, "WAL: could not delete a confirmed segment");
                }
                _ => {
                    self.state().segments.remove(&id);
                }
            }
        }
        Ok(())
    }

    /// See `Wal::stats`.
    pub(super) fn stats(&self) -> WalStats {
        let state = self.state();
        let confirmed = state.confirmed;
        let backlog_bytes = state
            .segments
            .range(confirmed.segment..)
            .map(|(&id, &len)| {
                let start = if id == confirmed.segment {
                    confirmed.offset
                } else {
                    SEGMENT_HEADER_BYTES
                };
                len.saturating_sub(start)
            })
            .sum();
        WalStats {
            segments_on_disk: state.segments.len() as u64,
            bytes_on_disk: state.segments.values().sum(),
            backlog_bytes,
            appends_total: self.appends.load(Ordering::Relaxed),
            syncs_total: self.syncs.load(Ordering::Relaxed),
            written_bytes_total: self.written_bytes.load(Ordering::Relaxed),
        }
    }

    /// The checkpoint lock. A panic while holding it leaves the file as the last `store`
    /// left it, which is always a valid state, so poisoning is ignored.
    fn checkpoint(&self) -> MutexGuard<'_, CheckpointFile> {
        self.checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The state lock. A panic while holding it cannot leave half-updated numbers that
    /// matter for safety (disk is the truth), so poisoning is ignored.
    fn state(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
