//! The dedicated writer thread: group commit of appends into segments.
//!
//! The thread blocks for the first queued append, then drains whatever else is already
//! queued (at most [`GROUP_MAX_RECORDS`] records or about [`GROUP_MAX_BYTES`]), so concurrent
//! callers share one `write` and one `sync_data` per segment touched. Invariants:
//! - an append is answered `Ok` only after its bytes were written AND `sync_data` returned,
//!   and the durable end is published before any waiter hears back, so a reader woken by a
//!   caller always finds the record;
//! - writes are positioned at the synced length; after a failed write the file is truncated
//!   back to it, so a retry never leaves garbage between records;
//! - a segment is completely synced before the next one is created (rotation happens only
//!   between synced chunks), which is what lets recovery tolerate damage only in the newest;
//! - after a failed `sync_data` the page cache may have dropped the unsynced pages while
//!   reporting them clean ("fsyncgate"), so nothing written since the last good sync can be
//!   trusted: the writer stops taking appends until a restart revalidates the log.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use tokio::sync::oneshot;
use tracing::{debug, error};

use super::error::WalError;
use super::format::{create_segment, frame_bytes, push_frame, segment_path, SEGMENT_HEADER_BYTES};
use super::state::Shared;
use super::types::{Position, SegmentId};

/// Most records committed by one group, to bound the latency of the first waiter.
const GROUP_MAX_RECORDS: usize = 1024;
/// Payload bytes after which a group stops draining the queue (one record may go over),
/// which also bounds the write buffer kept between groups.
const GROUP_MAX_BYTES: usize = 8 * 1024 * 1024;

/// One queued append and where to send its outcome.
pub(super) struct AppendRequest {
    /// The validated (non-empty, not too large) payload.
    pub(super) payload: Vec<u8>,
    /// Receives the record's position once durable, or the error.
    pub(super) reply: oneshot::Sender<Result<Position, WalError>>,
}

/// The writer's state; owned by its thread.
pub(super) struct Writer {
    shared: Arc<Shared>,
    segment_bytes: u64,
    segment: SegmentId,
    path: PathBuf,
    file: File,
    synced_len: u64,
    buf: Vec<u8>,
    positions: Vec<Position>,
    failure: Option<String>,
}

impl Writer {
    /// A writer appending to `file`, the freshly created (header-only) segment `segment`.
    pub(super) fn new(
        shared: Arc<Shared>,
        segment_bytes: u64,
        segment: SegmentId,
        file: File,
    ) -> Writer {
        Writer {
            path: segment_path(&shared.dir, segment),
            shared,
            segment_bytes,
            segment,
            file,
            synced_len: SEGMENT_HEADER_BYTES,
            buf: Vec::new(),
            positions: Vec::new(),
            failure: None,
        }
    }

    /// Starts the thread; it runs until every sender of `queue` is gone and the queue is empty.
    pub(super) fn spawn(self, queue: Receiver<AppendRequest>) -> std::io::Result<JoinHandle<()>> {
        thread::Builder::new()
            .name("wal-writer".to_owned())
            .spawn(move || self.run(queue))
    }

    fn run(mut self, queue: Receiver<AppendRequest>) {
        let mut group = Vec::new();
        // `recv` fails only once the queue is empty and closed: queued appends are finished.
        while let Ok(first) = queue.recv() {
            let mut group_bytes = first.payload.len();
            group.push(first);
            while group.len() < GROUP_MAX_RECORDS && group_bytes < GROUP_MAX_BYTES {
                let Ok(next) = queue.try_recv() else { break };
                group_bytes += next.payload.len();
                group.push(next);
            }
            self.commit(&mut group);
        }
        debug!(segment = %self.segment, "WAL writer stopped");
    }

    /// Makes every request of `group` durable (or fails it) and answers it; empties `group`.
    fn commit(&mut self, group: &mut Vec<AppendRequest>) {
        while !group.is_empty() {
            let outcome = match &self.failure {
                Some(reason) => Err(WalError::WriterFailed {
                    reason: reason.clone(),
                }),
                None => self.write_chunk(group),
            };
            match outcome {
                Ok(count) => {
                    for (request, &position) in group.drain(..count).zip(&self.positions) {
                        // A caller that stopped waiting still has its record stored; nothing to undo.
                        let _ = request.reply.send(Ok(position));
                    }
                }
                Err(err) => {
                    for request in group.drain(..) {
                        let _ = request.reply.send(Err(err.duplicate()));
                    }
                }
            }
        }
    }

    /// Writes and syncs the longest prefix of `requests` that fits into the current segment,
    /// rotating first if not even the first record fits. Returns how many became durable;
    /// their positions are in `self.positions`.
    fn write_chunk(&mut self, requests: &[AppendRequest]) -> Result<usize, WalError> {
        if !self.fits(self.synced_len, requests[0].payload.len()) {
            self.rotate()?;
        }
        self.buf.clear();
        self.buf.shrink_to(GROUP_MAX_BYTES);
        self.positions.clear();
        let mut end = self.synced_len;
        for request in requests {
            if !self.fits(end, request.payload.len()) {
                break;
            }
            self.positions.push(Position {
                segment: self.segment,
                offset: end,
            });
            push_frame(&mut self.buf, &request.payload);
            end += frame_bytes(request.payload.len());
        }
        if let Err(err) = self.file.write_all_at(&self.buf, self.synced_len) {
            if let Err(cleanup) = self.file.set_len(self.synced_len) {
                self.fail(format!(
                    "write failed ({err}) and truncating back failed ({cleanup})"
                ));
            }
            return Err(WalError::io(&self.path, err));
        }
        if let Err(err) = self.file.sync_data() {
            self.fail(format!("sync_data failed: {err}"));
            return Err(WalError::io(&self.path, err));
        }
        self.synced_len = end;
        self.shared
            .count_group(self.positions.len() as u64, self.buf.len() as u64);
        self.shared.publish(Position {
            segment: self.segment,
            offset: end,
        });
        Ok(self.positions.len())
    }

    /// Whether a record of `payload_len` bytes may start at `offset`: it must stay within
    /// the target, except as the first record of a segment (config makes that fit anyway).
    fn fits(&self, offset: u64, payload_len: usize) -> bool {
        offset == SEGMENT_HEADER_BYTES || offset + frame_bytes(payload_len) <= self.segment_bytes
    }

    /// Switches to a new segment. The current one is already fully synced: every chunk is.
    fn rotate(&mut self) -> Result<(), WalError> {
        let next = self.segment.next();
        self.file = create_segment(&self.shared.dir, next)?;
        self.segment = next;
        self.path = segment_path(&self.shared.dir, next);
        self.synced_len = SEGMENT_HEADER_BYTES;
        self.shared.publish(Position::start_of(next));
        debug!(segment = %next, "WAL rotated to a new segment");
        Ok(())
    }

    fn fail(&mut self, reason: String) {
        error!(segment = %self.segment, %reason, "WAL writer failed; refusing appends until restart");
        self.failure = Some(reason);
    }
}
