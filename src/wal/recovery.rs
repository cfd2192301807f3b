//! Recovery at open: brings the directory to a state the writer and readers can trust.
//!
//! Steps, in log order:
//! 1. segments before the checkpoint's segment are fully confirmed (a crash between writing
//!    the checkpoint and deleting them leaves them behind): they are deleted;
//! 2. the remaining segments must start at the checkpoint's segment, be numbered without
//!    holes (a position moves from the end of one segment to the start of the next), and
//!    reach the newest segment the checkpoint records as created: a log whose end is gone
//!    looks clean otherwise;
//! 3. each segment is scanned (rules in `scan`); only the newest may end in a torn write,
//!    which is cut off with a warning, and a newest segment whose creation was interrupted
//!    (never recorded) is removed;
//! 4. the checkpoint must fall on a record boundary of what survived.
//!
//! Without `repair`, corruption fails the open having changed only what is safe anyway
//! (deleting confirmed segments, cutting a torn tail, removing an unborn segment).
//! With `repair`, as little as possible is dropped, and the rest is replayed:
//! - a damaged record whose length still points at a record boundary (the next valid record,
//!   or the end of the file) is dropped alone;
//! - where boundaries are lost (a damaged length), the rest of that segment is dropped;
//! - a damaged segment header is rewritten, and the records behind it are checked as usual;
//! - a missing segment (a hole, or the end of the log) is re-created empty;
//! - a bad checkpoint is ignored (everything is replayed) or rounded down to a boundary.
//!
//! A segment that loses records in its middle is rewritten to a temp file that then replaces
//! it, so a crash during a repair leaves the damaged original, and the repair runs again.
//! What was dropped is logged and counted in a [`RepairReport`], in readings where the
//! payload still tells. A repaired log reopens cleanly without `repair`.
//! The checkpoint is rewritten whenever what it should hold differs from the file.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use tracing::{info, warn};

use super::checkpoint::{self, Checkpoint, CheckpointFile};
use super::error::WalError;
use super::format::{
    create_segment, encode_segment_header, list_segments, remove_stale_rewrites, rewrite_path,
    segment_path, sync_dir, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use super::scan::{Header, Scanner, Stop, Tail};
use super::types::{Position, RepairReport, SegmentId, WalConfig, DEFAULT_MAX_RECORD_BYTES};
use super::writer::max_group_bytes;

/// Bytes copied at once when a repair rewrites a segment.
const COPY_CHUNK_BYTES: u64 = 256 * 1024;

/// What the writer and readers start from.
#[derive(Debug)]
pub(super) struct Recovered {
    /// Every surviving segment with its valid length.
    pub(super) segments: BTreeMap<SegmentId, u64>,
    /// The checkpoint, holding where replay starts.
    pub(super) checkpoint: CheckpointFile,
    /// The id of the fresh segment new appends go to: right after the last survivor.
    pub(super) next_segment: SegmentId,
    /// What a repair dropped.
    pub(super) repaired: RepairReport,
}

/// Validates (and if needed truncates or repairs) the log in `config.dir`.
pub(super) fn recover(config: &WalConfig) -> Result<Recovered, WalError> {
    let dir = config.dir.as_path();
    fs::create_dir_all(dir).map_err(|e| WalError::io(dir, e))?;
    checkpoint::remove_stale_temp(dir)?;
    remove_stale_rewrites(dir)?;
    let listed = list_segments(dir)?;
    let saved = read_checkpoint(dir, config.repair)?;
    let confirmed = saved.map(|c| c.confirmed);
    let recorded_newest = saved.and_then(|c| c.newest);
    let highest_seen = [
        listed.last().copied(),
        confirmed.map(|p| p.segment),
        recorded_newest,
    ]
    .into_iter()
    .flatten()
    .max();

    let mut live = Vec::with_capacity(listed.len());
    for id in listed {
        if confirmed.is_some_and(|p| id < p.segment) {
            remove_segment(dir, id)?;
            info!(segment = %id, "WAL: deleted a fully confirmed segment left by a crash");
        } else {
            live.push(id);
        }
    }
    let mut repair = Repair {
        dir,
        config,
        report: RepairReport::default(),
    };
    let start = repair.check_start(confirmed, &live)?;
    repair.fill_holes(&mut live)?;
    repair.check_newest(recorded_newest, start, &live)?;

    let mut segments = BTreeMap::new();
    let mut probe = None;
    for (index, &id) in live.iter().enumerate() {
        let tail = if index + 1 == live.len() {
            let recorded = recorded_newest.is_some_and(|newest| id <= newest);
            Tail::Newest { recorded }
        } else {
            Tail::Sealed
        };
        let Some(checked) = repair.check_segment(id, tail, start)? else {
            continue;
        };
        segments.insert(id, checked.len);
        probe = checked.checkpoint.or(probe);
    }
    // Readers step from the end of one segment to the next id, so the fresh segment must
    // follow the last survivor; only when none survived, skip every id ever seen.
    let next_segment = match segments.last_key_value() {
        Some((&last, _)) => last.next(),
        None => highest_seen.unwrap_or(SegmentId(0)).next(),
    };
    let confirmed = settle_confirmed(dir, start, probe, &segments, next_segment, config)?;
    let newest = segments.last_key_value().map(|(&id, _)| id);
    let checkpoint = CheckpointFile::open(dir, Checkpoint { confirmed, newest })?;
    sync_dir(dir)?;
    if !repair.report.is_empty() {
        warn!(dir = %dir.display(), dropped = %repair.report,
            dropped_readings = repair.report.dropped_readings,
            "WAL REPAIR finished: the rest of the log is kept and will be replayed");
    }
    Ok(Recovered {
        segments,
        checkpoint,
        next_segment,
        repaired: repair.report,
    })
}

fn read_checkpoint(dir: &Path, repair: bool) -> Result<Option<Checkpoint>, WalError> {
    match checkpoint::read(dir) {
        Err(err) if repair && err.is_corruption() => {
            warn!(error = %err, "WAL repair: ignoring the checkpoint and replaying every \
                segment (records already in the store are written again)");
            Ok(None)
        }
        other => other,
    }
}

/// One segment after its scan (and repair).
struct Checked {
    /// Its valid length.
    len: u64,
    /// Where the checkpoint stands in it, if the checkpoint is in it.
    checkpoint: Option<Probe>,
}

/// The checkpoint's segment as the scan found it, in offsets of the file before any repair.
#[derive(Clone, Copy, Debug)]
struct Probe {
    /// The greatest record boundary at or before the checkpoint.
    boundary: u64,
    /// The end of the kept data.
    end: u64,
    /// Bytes dropped before `boundary`, which a rewrite moves every later offset back by.
    shift: u64,
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

/// The checks and repairs of one open, with what was dropped so far.
struct Repair<'a> {
    dir: &'a Path,
    config: &'a WalConfig,
    report: RepairReport,
}

impl Repair<'_> {
    /// The replay start: the checkpoint, unless its segment is gone while later ones exist.
    fn check_start(
        &mut self,
        checkpoint: Option<Position>,
        live: &[SegmentId],
    ) -> Result<Option<Position>, WalError> {
        let (Some(confirmed), Some(&first)) = (checkpoint, live.first()) else {
            return Ok(checkpoint);
        };
        // Earlier segments were deleted above, so `first` is the checkpoint's or a later one.
        if first == confirmed.segment {
            return Ok(checkpoint);
        }
        if !self.config.repair {
            return Err(WalError::MissingSegment {
                expected: confirmed.segment,
                found: first,
            });
        }
        self.report.missing_segments += first.0 - confirmed.segment.0;
        warn!(missing = %confirmed.segment, first = %first,
            "WAL repair: the checkpoint's segment is missing; replaying from the first segment \
             present (unconfirmed records of the missing ones are lost)");
        Ok(Some(Position::start_of(first)))
    }

    /// Fails at the first hole in the numbering, or with repair fills every hole with an
    /// empty segment, so that the segments after it are kept.
    fn fill_holes(&mut self, live: &mut Vec<SegmentId>) -> Result<(), WalError> {
        let mut filled = Vec::with_capacity(live.len());
        for &id in live.iter() {
            if let Some(&previous) = filled.last() {
                let mut expected = SegmentId::next(previous);
                if expected != id && !self.config.repair {
                    return Err(WalError::MissingSegment {
                        expected,
                        found: id,
                    });
                }
                while expected != id {
                    drop(create_segment(self.dir, expected)?);
                    self.report.missing_segments += 1;
                    warn!(segment = %expected, "WAL repair: re-created a missing segment empty \
                        (its records are lost; the segments after it are kept)");
                    filled.push(expected);
                    expected = expected.next();
                }
            }
            filled.push(id);
        }
        *live = filled;
        Ok(())
    }

    /// Fails when segments the checkpoint records as created are gone from the end of the log.
    fn check_newest(
        &mut self,
        recorded: Option<SegmentId>,
        start: Option<Position>,
        live: &[SegmentId],
    ) -> Result<(), WalError> {
        let Some(newest) = recorded else {
            return Ok(());
        };
        let first_missing = match (live.last(), start) {
            (Some(&last), _) => last.next(),
            (None, Some(start)) => start.segment,
            (None, None) => SegmentId(1),
        };
        if first_missing > newest {
            return Ok(());
        }
        if !self.config.repair {
            return Err(WalError::MissingNewest {
                first: first_missing,
                newest,
            });
        }
        self.report.missing_segments += newest.0 - first_missing.0 + 1;
        warn!(first = %first_missing, newest = %newest,
            "WAL repair: the newest segments are missing; their records are lost");
        Ok(())
    }

    /// Scans segment `id` and applies what it found: `None` when it was removed (unborn).
    fn check_segment(
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
                            self.count_dropped_record(&scanner, id, offset, end, &reason)?;
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

/// The final confirmed position, checked against the surviving records. `probe` is the
/// checkpoint's segment as scanned, `None` if it did not survive.
fn settle_confirmed(
    dir: &Path,
    start: Option<Position>,
    probe: Option<Probe>,
    segments: &BTreeMap<SegmentId, u64>,
    next_segment: SegmentId,
    config: &WalConfig,
) -> Result<Position, WalError> {
    let first = segments.keys().next().copied().unwrap_or(next_segment);
    let Some(start) = start else {
        return Ok(Position::start_of(first));
    };
    // Segments after the checkpoint's survive only if it does, so a missing one means
    // nothing is left to replay.
    let Some(probe) = probe else {
        return Ok(Position::start_of(next_segment));
    };
    let rounded = Position {
        segment: start.segment,
        offset: probe.boundary,
    };
    let settled = if rounded == start {
        start
    } else if start.offset > probe.end {
        warn!(checkpoint = %start, end = probe.end,
            "WAL: the checkpoint lies past the surviving data; replay starts at its end");
        rounded
    } else if config.repair {
        warn!(checkpoint = %start, replay_from = %rounded,
            "WAL repair: the checkpoint is not on a record boundary; rounded down \
             (some records reach the store twice)");
        rounded
    } else {
        return Err(WalError::BadCheckpoint {
            path: checkpoint::path(dir),
            reason: format!("{start} is not on a record boundary"),
        });
    };
    Ok(Position {
        offset: settled.offset - probe.shift,
        ..settled
    })
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

fn remove_segment(dir: &Path, id: SegmentId) -> Result<(), WalError> {
    let path = segment_path(dir, id);
    fs::remove_file(&path).map_err(|e| WalError::io(&path, e))
}
