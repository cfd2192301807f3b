//! Sequential, blocking reader of durable records: the flusher's replay and tail.
//!
//! Invariants:
//! - a call never returns bytes past the durable end it observed when it started: bytes
//!   past it may be mid-write, and a record is not acknowledged before it is durable;
//! - every record is re-checked (length and CRC) because the disk may have changed since
//!   open; damage is reported as [`WalError::Corrupt`], never skipped;
//! - memory is bounded by the batch asked for (plus one record), whatever the backlog;
//! - a failed call leaves the position where it was, so the caller can retry it (after a
//!   transient error such as no free file descriptor) without skipping a record;
//! - the reader holds at most one segment file open and uses positioned reads, so its only
//!   state is its position. The readable end of a segment the writer has moved past is its
//!   synced length from the shared state, looked up at each call: a length cached while the
//!   segment was still being written would make the reader skip its later records.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use super::error::WalError;
use super::format::{
    crc_extend, segment_path, FrameHeader, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use super::state::Shared;
use super::types::{Position, SegmentId};

/// One record read back from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecord {
    /// Where the record's frame starts.
    pub position: Position,
    /// The position just after the record: pass it to `Wal::confirm` once the record is in
    /// the store.
    pub next: Position,
    /// The payload as appended.
    pub payload: Vec<u8>,
}

/// A blocking sequential reader over durable records; call it from a blocking context
/// (a dedicated thread or `spawn_blocking`), after waiting on `Wal::durable_end`.
pub struct WalReader {
    shared: Arc<Shared>,
    durable: watch::Receiver<Position>,
    position: Position,
    open: Option<OpenSegment>,
}

struct OpenSegment {
    id: SegmentId,
    path: PathBuf,
    file: File,
}

impl WalReader {
    /// A reader starting at `from`, moved up to the confirmed position (segments before it
    /// may already be deleted) and past the segment header.
    pub(super) fn new(shared: Arc<Shared>, from: Position) -> WalReader {
        let from = from.max(shared.confirmed());
        WalReader {
            durable: shared.subscribe(),
            shared,
            position: Position {
                offset: from.offset.max(SEGMENT_HEADER_BYTES),
                ..from
            },
            open: None,
        }
    }

    /// Where the next record will be read from.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Reads the records after the current position, up to `max_bytes` of payload, stopping
    /// at the durable end. Returns at least one record whenever one is durable, even if it
    /// alone is larger than `max_bytes`; an empty batch means the reader is caught up.
    pub fn next_batch(&mut self, max_bytes: usize) -> Result<Vec<WalRecord>, WalError> {
        let start = self.position;
        self.read_batch(max_bytes).inspect_err(|_| {
            self.position = start;
        })
    }

    fn read_batch(&mut self, max_bytes: usize) -> Result<Vec<WalRecord>, WalError> {
        let end = *self.durable.borrow_and_update();
        let mut batch = Vec::new();
        let mut batch_bytes = 0_usize;
        while self.position < end {
            let at = self.position;
            let limit = if at.segment == end.segment {
                end.offset
            } else {
                self.sealed_len(at.segment)?
            };
            let segment = self.segment(at.segment)?;
            if at.offset >= limit {
                // Only reachable below `end.segment`: that segment is sealed and finished.
                self.position = Position::start_of(at.segment.next());
                continue;
            }
            let frame = segment.read_frame_header(at.offset, limit)?;
            let len = frame.len as usize;
            if !batch.is_empty() && batch_bytes + len > max_bytes {
                break;
            }
            let record = segment.read_record(at.offset, frame)?;
            batch_bytes += len;
            self.position = record.next;
            batch.push(record);
        }
        Ok(batch)
    }

    /// The final length of a segment the writer has moved past.
    fn sealed_len(&self, id: SegmentId) -> Result<u64, WalError> {
        self.shared.segment_len(id).ok_or_else(|| {
            let path = segment_path(&self.shared.dir, id);
            let gone = io::Error::new(io::ErrorKind::NotFound, "segment deleted by confirm");
            WalError::io(path, gone)
        })
    }

    /// The open file of segment `id`, opening it (and closing the previous one) if needed.
    fn segment(&mut self, id: SegmentId) -> Result<&OpenSegment, WalError> {
        let open = match self.open.take() {
            Some(open) if open.id == id => open,
            _ => OpenSegment::open(&self.shared.dir, id)?,
        };
        Ok(self.open.insert(open))
    }
}

impl OpenSegment {
    fn open(dir: &Path, id: SegmentId) -> Result<OpenSegment, WalError> {
        let path = segment_path(dir, id);
        let file = File::open(&path).map_err(|e| WalError::io(&path, e))?;
        Ok(OpenSegment { id, path, file })
    }

    /// The frame header at `at`, checked to lie with its payload before `limit`.
    fn read_frame_header(&self, at: u64, limit: u64) -> Result<FrameHeader, WalError> {
        if at + FRAME_HEADER_BYTES > limit {
            let reason = format!("frame header crosses the end of the readable data ({limit})");
            return Err(self.corrupt(at, reason));
        }
        let mut raw = [0; FRAME_HEADER_BYTES as usize];
        self.read_at(&mut raw, at)?;
        let frame = FrameHeader::decode(raw);
        if frame.len == 0 {
            return Err(self.corrupt(at, "record length is 0".to_owned()));
        }
        if at + FRAME_HEADER_BYTES + u64::from(frame.len) > limit {
            let reason = format!(
                "record of {} bytes crosses the end of the readable data ({limit})",
                frame.len
            );
            return Err(self.corrupt(at, reason));
        }
        Ok(frame)
    }

    /// The payload of the record at `at`, CRC-checked.
    fn read_record(&self, at: u64, frame: FrameHeader) -> Result<WalRecord, WalError> {
        let payload_at = at + FRAME_HEADER_BYTES;
        let mut payload = vec![0; frame.len as usize];
        self.read_at(&mut payload, payload_at)?;
        if crc_extend(frame.crc_seed(), &payload) != frame.crc {
            let reason = "checksum mismatch (the file changed after it was validated)";
            return Err(self.corrupt(at, reason.to_owned()));
        }
        Ok(WalRecord {
            position: Position {
                segment: self.id,
                offset: at,
            },
            next: Position {
                segment: self.id,
                offset: payload_at + u64::from(frame.len),
            },
            payload,
        })
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), WalError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| WalError::io(&self.path, e))
    }

    fn corrupt(&self, offset: u64, reason: String) -> WalError {
        WalError::Corrupt {
            segment: self.id,
            offset,
            reason,
        }
    }
}
