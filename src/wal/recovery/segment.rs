//! Checking (and with repair, mending) one segment during recovery: its header, then its
//! records run by run, then the file made to match the plan: truncated at a torn tail or at
//! lost record boundaries, or rewritten without the dropped records.
//!
//! A rewrite goes to a temp file (`{id}.seg.repair`) that is synced and renamed over the
//! segment, so a crash leaves either the damaged original (the repair runs again) or the
//! repaired file, never a mix.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use tracing::warn;

use super::{remove_segment, Repair};
use crate::wal::error::WalError;
use crate::wal::format::{
    encode_segment_header, rewrite_path, segment_path, sync_dir, FRAME_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
};
use crate::wal::scan::{Header, Scanner, Stop, Tail};
use crate::wal::types::{Position, SegmentId, DEFAULT_MAX_RECORD_BYTES};
use crate::wal::writer::max_group_bytes;

/// Bytes copied at once when a repair rewrites a segment.
const COPY_CHUNK_BYTES: u64 = 256 * 1024;

/// One segment after its scan (and repair).
pub(super) struct Checked {
    /// Its valid length.
    pub(super) len: u64,
    /// Where the checkpoint stands in it, if the checkpoint is in it.
    pub(super) checkpoint: Option<Probe>,
}

/// The checkpoint's segment as the scan found it, in offsets of the file before any repair.
#[derive(Clone, Copy, Debug)]
pub(super) struct Probe {
    /// The greatest record boundary at or before the checkpoint.
    pub(super) boundary: u64,
    /// The end of the kept data.
    pub(super) end: u64,
    /// Bytes dropped before `boundary`, which a rewrite moves every later offset back by.
    pub(super) shift: u64,
}

/// A segment's records after the scan: what to keep and what to drop.
struct Plan {
    /// Keep `[header, end)` ...
    end: u64,
    /// ... except these records (ascending, all before `end`).
    dropped: Vec<Range<u64>>,
    /// The header must be rewritten.
    new_header: bool,
}

impl Repair<'_> {
    /// Scans segment `id` and applies what it found: `None` when it was removed (unborn).
    pub(super) fn check_segment(
        &mut self,
        id: SegmentId,
        tail: Tail,
        start: Option<Position>,
    ) -> Result<Option<Checked>, WalError> {
        let path = segment_path(self.dir, id);
        let io = |e| WalError::io(&path, e);
        let max_record = self.config.max_record_bytes.max(DEFAULT_MAX_RECORD_BYTES);
        let mut scanner = Scanner::open(&path, tail, max_group_bytes(max_record))?;
        let file_len = scanner.file_len();
        let mut plan = Plan {
            end: file_len,
            dropped: Vec::new(),
            new_header: false,
        };
        match scanner.header(id).map_err(io)? {
            Header::Valid => {}
            Header::Unborn(reason) => {
                warn!(segment = %id, %reason,
                    "WAL: removing the newest segment, its creation was interrupted");
                remove_segment(self.dir, id)?;
                return Ok(None);
            }
            Header::Bad(reason) if !self.config.repair => {
                return Err(WalError::Corrupt {
                    segment: id,
                    offset: 0,
                    reason,
                });
            }
            Header::Bad(reason) => {
                warn!(segment = %id, %reason, "WAL repair: rewriting a damaged segment header");
                plan.new_header = true;
                plan.end = plan.end.max(SEGMENT_HEADER_BYTES);
                // Nothing left to tell what it held: count it like a missing segment.
                if file_len < SEGMENT_HEADER_BYTES || scanner.is_zero(0, file_len).map_err(io)? {
                    self.report.missing_segments += 1;
                }
                // A damaged header is no crash's doing, so neither is anything behind it.
                scanner = Scanner::open(&path, Tail::Sealed, 0)?;
            }
        }
        let probe = start.filter(|p| p.segment == id).map(|p| p.offset);
        let probe_boundary = self.plan_records(id, &mut scanner, &mut plan, start, probe)?;
        // A record dropped at the very end is a cut, not a hole to rewrite around.
        while plan.dropped.last().is_some_and(|last| last.end >= plan.end) {
            plan.end = plan.dropped.pop().map_or(plan.end, |last| last.start);
        }
        let len = self.apply(id, &scanner, &plan, file_len)?;
        let checkpoint = probe.map(|_| {
            let boundary = probe_boundary
                .unwrap_or(SEGMENT_HEADER_BYTES)
                .min(plan.end.max(SEGMENT_HEADER_BYTES));
            let shift = plan
                .dropped
                .iter()
                .filter(|range| range.end <= boundary)
                .map(|range| range.end - range.start)
                .sum();
            Probe {
                boundary,
                end: plan.end,
                shift,
            }
        });
        Ok(Some(Checked { len, checkpoint }))
    }

    /// Scans the records of segment `id` run by run into `plan`; returns the greatest record
    /// boundary at or before `probe` (the checkpoint's offset, when it is in this segment).
    fn plan_records(
        &mut self,
        id: SegmentId,
        scanner: &mut Scanner,
        plan: &mut Plan,
        start: Option<Position>,
        probe: Option<u64>,
    ) -> Result<Option<u64>, WalError> {
        let path = segment_path(self.dir, id);
        let io = |e| WalError::io(&path, e);
        let file_len = scanner.file_len();
        let confirmed_below = |offset: u64| {
            start.is_some_and(|p| {
                Position {
                    segment: id,
                    offset,
                } < p
            })
        };
        let mut at = SEGMENT_HEADER_BYTES.min(plan.end);
        let mut probe_boundary = None;
        while at < plan.end {
            let run = scanner.records(at, probe).map_err(io)?;
            probe_boundary = run.probe_boundary.or(probe_boundary);
            match run.stop {
                Stop::End => break,
                Stop::Torn { offset, reason } => {
                    warn!(segment = %id, offset, dropped_bytes = file_len - offset, %reason,
                        "WAL: truncating the torn tail of the newest segment (an interrupted, \
                         never acknowledged write)");
                    plan.end = offset;
                    break;
                }
                Stop::Corrupt { offset, reason, .. } if !self.config.repair => {
                    return Err(WalError::Corrupt {
                        segment: id,
                        offset,
                        reason,
                    });
                }
                Stop::Corrupt {
                    offset,
                    frame_end,
                    reason,
                } => {
                    let skip_to = match frame_end {
                        Some(end) if scanner.boundary_at(end).map_err(io)? => Some(end),
                        _ => None,
                    };
                    let lost = !confirmed_below(offset);
                    if let Some(end) = skip_to {
                        if lost {
                            self.count_dropped_record(scanner, id, offset, end, &reason)?;
                        }
                        plan.dropped.push(offset..end);
                        at = end;
                    } else {
                        let zeros = scanner.is_zero(offset, file_len).map_err(io)?;
                        if lost && !zeros {
                            self.report.unframed_bytes += file_len - offset;
                        }
                        warn!(segment = %id, offset, dropped_bytes = file_len - offset, %reason,
                            "WAL REPAIR: record boundaries are lost here; dropped the rest of \
                             the segment (the readings in it cannot be counted)");
                        plan.end = offset;
                        break;
                    }
                }
            }
        }
        Ok(probe_boundary)
    }

    /// Counts one dropped record `[offset, end)` in the report.
    fn count_dropped_record(
        &mut self,
        scanner: &Scanner,
        id: SegmentId,
        offset: u64,
        end: u64,
        reason: &str,
    ) -> Result<(), WalError> {
        let payload = scanner
            .bytes(
                offset + FRAME_HEADER_BYTES,
                end - offset - FRAME_HEADER_BYTES,
            )
            .map_err(|e| WalError::io(segment_path(self.dir, id), e))?;
        let readings = (self.config.count_readings)(&payload);
        self.report.dropped_records += 1;
        match readings {
            Some(readings) => self.report.dropped_readings += readings,
            None => self.report.uncounted_records += 1,
        }
        warn!(segment = %id, offset, bytes = end - offset, readings = ?readings, reason,
            "WAL REPAIR: dropped a damaged record; the records after it are kept");
        Ok(())
    }

    /// Makes the file match `plan`, returning its new length.
    fn apply(
        &self,
        id: SegmentId,
        scanner: &Scanner,
        plan: &Plan,
        file_len: u64,
    ) -> Result<u64, WalError> {
        if plan.new_header || !plan.dropped.is_empty() {
            return rewrite(self.dir, id, scanner, plan);
        }
        if plan.end < file_len {
            truncate(self.dir, id, plan.end)?;
        }
        Ok(plan.end)
    }
}

/// Writes segment `id` anew as `plan` says (fresh header, kept records), then replaces the
/// old file with it.
fn rewrite(dir: &Path, id: SegmentId, scanner: &Scanner, plan: &Plan) -> Result<u64, WalError> {
    let temp = rewrite_path(dir, id);
    let io = |e| WalError::io(&temp, e);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(io)?;
    file.write_all(&encode_segment_header(id)).map_err(io)?;
    let mut len = SEGMENT_HEADER_BYTES;
    let mut kept_from = SEGMENT_HEADER_BYTES;
    let kept = plan
        .dropped
        .iter()
        .map(|dropped| (dropped.start, dropped.end))
        .chain([(plan.end, plan.end)]);
    for (keep_to, next_from) in kept {
        let mut at = kept_from;
        while at < keep_to {
            let bytes = scanner
                .bytes(at, (keep_to - at).min(COPY_CHUNK_BYTES))
                .map_err(|e| WalError::io(segment_path(dir, id), e))?;
            file.write_all(&bytes).map_err(io)?;
            at += bytes.len() as u64;
            len += bytes.len() as u64;
        }
        kept_from = next_from;
    }
    file.sync_all().map_err(io)?;
    let path = segment_path(dir, id);
    fs::rename(&temp, &path).map_err(|e| WalError::io(&path, e))?;
    sync_dir(dir)?;
    Ok(len)
}

fn truncate(dir: &Path, id: SegmentId, len: u64) -> Result<(), WalError> {
    let path = segment_path(dir, id);
    OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|file| {
            file.set_len(len)?;
            file.sync_all()
        })
        .map_err(|e| WalError::io(&path, e))
}
