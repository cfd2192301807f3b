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
//! - a segment takes records only once it is created (header and directory entry synced) and
//!   recorded in the checkpoint, so losing it later is noticed at open;
//! - after a failed `sync_data` the page cache may have dropped the unsynced pages while
//!   reporting them clean ("fsyncgate"), so nothing written since the last good sync can be
//!   trusted: the writer stops taking appends until a restart revalidates the log.
//!
//! Any other failure (no space, no free file descriptor to create the next segment) fails
//! only the group at hand, and the writer is "stalled": every later append tries again, and
//! while no append comes it probes every [`PROBE_EVERY`] (creating the missing segment, or
//! writing and truncating back as many bytes as the failed group needed), so the WAL reports
//! itself writable again (`Wal::append_problem`) even when no client sends anything.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use super::error::WalError;
use super::format::{create_segment, frame_bytes, push_frame, segment_path, SEGMENT_HEADER_BYTES};
use super::state::Shared;
use super::types::{Position, SegmentId};

/// Most records committed by one group, to bound the latency of the first waiter.
const GROUP_MAX_RECORDS: usize = 1024;
/// Payload bytes after which a group stops draining the queue (one record may go over),
/// which also bounds the write buffer kept between groups.
const GROUP_MAX_BYTES: usize = 8 * 1024 * 1024;
/// How often a stalled writer checks on its own whether it can write again.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Most bytes a probe writes (and truncates away again).
const PROBE_MAX_BYTES: u64 = 1024 * 1024;

/// The most bytes one group write can put into a segment: a torn write after a power loss
/// lies within this distance of the end of the newest segment.
pub(super) fn max_group_bytes(max_record_bytes: u32) -> u64 {
    let frame_headers = GROUP_MAX_RECORDS as u64 * frame_bytes(0);
    GROUP_MAX_BYTES as u64 + u64::from(max_record_bytes) + frame_headers
}

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
    /// The segment being written, or the one to create next while `file` is `None`.
    segment: SegmentId,
    path: PathBuf,
    /// The open segment; `None` until `segment` is created.
    file: Option<File>,
    synced_len: u64,
    buf: Vec<u8>,
    positions: Vec<Position>,
    /// Set after a failed sync: appends are refused until a restart.
    failure: Option<String>,
    /// Set while stalled: the bytes the failed write needed (0 when creation failed).
    stalled: Option<u64>,
}

impl Writer {
    /// A writer that appends to segment `segment`, which it creates before the first write.
    pub(super) fn new(shared: Arc<Shared>, segment_bytes: u64, segment: SegmentId) -> Writer {
        Writer {
            path: segment_path(&shared.dir, segment),
            shared,
            segment_bytes,
            segment,
            file: None,
            synced_len: SEGMENT_HEADER_BYTES,
            buf: Vec::new(),
            positions: Vec::new(),
            failure: None,
            stalled: None,
        }
    }

    /// Creates the segment now instead of at the first append. On a retryable error the
    /// writer starts stalled, exactly as if a later creation had failed.
    pub(super) fn create_now(&mut self) -> Result<(), WalError> {
        match self.create() {
            Ok(file) => {
                self.file = Some(file);
                Ok(())
            }
            Err(err) if err.is_retryable() => {
                self.stall(&err, 0);
                Ok(())
            }
            Err(err) => Err(err),
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
        // The queue fails only once it is empty and closed: queued appends are finished.
        while let Some(first) = self.next_request(&queue) {
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

    /// The next request, probing every [`PROBE_EVERY`] while stalled and waiting.
    fn next_request(&mut self, queue: &Receiver<AppendRequest>) -> Option<AppendRequest> {
        loop {
            if self.stalled.is_none() || self.failure.is_some() {
                return queue.recv().ok();
            }
            match queue.recv_timeout(PROBE_EVERY) {
                Ok(request) => return Some(request),
                Err(RecvTimeoutError::Timeout) => self.probe(),
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
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
                    self.unstall();
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
    /// moving to a new segment first if not even the first record fits. Returns how many
    /// became durable; their positions are in `self.positions`.
    fn write_chunk(&mut self, requests: &[AppendRequest]) -> Result<usize, WalError> {
        if self.file.is_some() && !self.fits(self.synced_len, requests[0].payload.len()) {
            self.seal();
        }
        let file = match self.file.take() {
            Some(file) => file,
            None => self.create().inspect_err(|err| self.stall(err, 0))?,
        };
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
        let written = file.write_all_at(&self.buf, self.synced_len);
        let cleanup = written
            .as_ref()
            .err()
            .map(|_| file.set_len(self.synced_len));
        let synced = written.and_then(|()| file.sync_data());
        self.file = Some(file);
        match (synced, cleanup) {
            (Ok(()), _) => {}
            (Err(err), Some(Ok(()))) => {
                let err = WalError::io(&self.path, err);
                self.stall(&err, self.buf.len() as u64);
                return Err(err);
            }
            (Err(err), Some(Err(cleanup))) => {
                self.fail(format!(
                    "write failed ({err}) and truncating back failed ({cleanup})"
                ));
                return Err(WalError::io(&self.path, err));
            }
            (Err(err), None) => {
                self.fail(format!("sync_data failed: {err}"));
                return Err(WalError::io(&self.path, err));
            }
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

    /// Closes the current segment (already fully synced: every chunk is) and moves on to the
    /// next id, before that one is created: so the sealed segment can be confirmed and
    /// deleted even while the creation fails, which is how a full disk frees up.
    fn seal(&mut self) {
        let next = self.segment.next();
        self.file = None;
        self.segment = next;
        self.path = segment_path(&self.shared.dir, next);
        self.synced_len = SEGMENT_HEADER_BYTES;
        self.shared.seal(next);
    }

    /// Creates `self.segment` and records its creation in the checkpoint.
    fn create(&mut self) -> Result<File, WalError> {
        let file = create_segment(&self.shared.dir, self.segment)?;
        // Unrecorded, its loss would go unnoticed, so it must not take records. The file
        // stays: the failed update may still have reached the disk, and a header-only
        // segment is harmless either way (the next attempt truncates it; recovery keeps it
        // as an empty segment).
        self.shared.record_created(self.segment)?;
        self.synced_len = SEGMENT_HEADER_BYTES;
        self.shared.publish(Position::start_of(self.segment));
        debug!(segment = %self.segment, "WAL segment created");
        Ok(file)
    }

    /// Checks, without an append, whether what failed last would work now.
    fn probe(&mut self) {
        let outcome = match (&self.file, self.stalled) {
            (None, _) => self.create().map(|file| self.file = Some(file)),
            (Some(file), bytes) => {
                let bytes = bytes.unwrap_or(0).clamp(1, PROBE_MAX_BYTES);
                self.buf.clear();
                self.buf.resize(bytes as usize, 0);
                // Zeros past the synced end are what an interrupted write leaves anyway:
                // recovery cuts them off the newest segment.
                let written = file.write_all_at(&self.buf, self.synced_len);
                let cleanup = file.set_len(self.synced_len);
                match (written, cleanup) {
                    (_, Err(cleanup)) => {
                        self.fail(format!("truncating a probe write failed ({cleanup})"));
                        return;
                    }
                    (Err(err), Ok(())) => Err(WalError::io(&self.path, err)),
                    (Ok(()), Ok(())) => Ok(()),
                }
            }
        };
        match outcome {
            Ok(()) => self.unstall(),
            Err(err) => debug!(segment = %self.segment, error = %err, "WAL still not writable"),
        }
    }

    /// Marks appends as failing with `err`; `bytes` is what the failed write needed.
    fn stall(&mut self, err: &WalError, bytes: u64) {
        let what = if self.file.is_none() {
            format!("cannot create WAL segment {}", self.segment)
        } else {
            format!("cannot write to WAL segment {}", self.segment)
        };
        if self.stalled.is_none() {
            warn!(segment = %self.segment, error = %err, retryable = err.is_retryable(),
                "{what}; appends fail (ingest answers 503) until it works again");
        }
        self.stalled = Some(bytes);
        self.shared
            .set_append_problem(Some(format!("{what}: {}", err.cause())));
    }

    fn unstall(&mut self) {
        if self.stalled.take().is_some() {
            info!(segment = %self.segment, "WAL writable again");
            self.shared.set_append_problem(None);
        }
    }

    fn fail(&mut self, reason: String) {
        error!(segment = %self.segment, %reason, "WAL writer failed; refusing appends until restart");
        self.shared.set_append_problem(Some(format!(
            "the WAL writer stopped after an unrecoverable error ({reason}); restart the service"
        )));
        self.failure = Some(reason);
    }
}
