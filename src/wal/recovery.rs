//! Recovery at open: brings the directory to a state the writer and readers can trust.
//!
//! Steps, in log order:
//! 1. segments before the checkpoint's segment are fully confirmed (a crash between writing
//!    the checkpoint and deleting them leaves them behind): they are deleted;
//! 2. the remaining segments must start at the checkpoint's segment and be numbered without
//!    holes, because a position moves from the end of one segment to the start of the next;
//! 3. each segment is scanned (see `scan`); only the newest may end in a torn write, which is
//!    truncated with a warning, and a newest segment whose creation was interrupted is removed;
//! 4. the checkpoint must fall on a record boundary of what survived.
//!
//! Without `repair`, corruption fails the open having changed only what is safe anyway
//! (deleting confirmed segments, cutting a torn tail, removing an unborn segment).
//! With `repair`, the log is cut at the first damage (a later hole drops every later
//! segment; a missing checkpoint segment makes replay start at the first segment present; a
//! bad checkpoint is ignored or rounded down), warning loudly with what was dropped.
//! The effective confirmed position is written back whenever it differs from the file, so a
//! second open finds a consistent directory.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::Path;

use tracing::{info, warn};

use super::checkpoint;
use super::error::WalError;
use super::format::{list_segments, segment_path, sync_dir, SEGMENT_HEADER_BYTES};
use super::scan::{scan_segment, Verdict};
use super::types::{Position, SegmentId, WalConfig};

/// What the writer and readers start from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Recovered {
    /// Every surviving segment with its valid length.
    pub(super) segments: BTreeMap<SegmentId, u64>,
    /// Where replay starts.
    pub(super) confirmed: Position,
    /// The id of the fresh segment new appends go to: right after the last survivor.
    pub(super) next_segment: SegmentId,
}

/// Validates (and if needed truncates or repairs) the log in `config.dir`.
pub(super) fn recover(config: &WalConfig) -> Result<Recovered, WalError> {
    let dir = config.dir.as_path();
    fs::create_dir_all(dir).map_err(|e| WalError::io(dir, e))?;
    checkpoint::remove_stale_temp(dir)?;
    let listed = list_segments(dir)?;
    let checkpoint = read_checkpoint(dir, config.repair)?;
    let highest_seen = listed.last().copied().max(checkpoint.map(|p| p.segment));

    let mut live = Vec::with_capacity(listed.len());
    for id in listed {
        if checkpoint.is_some_and(|p| id < p.segment) {
            remove_segment(dir, id)?;
            info!(segment = %id, "WAL: deleted a fully confirmed segment left by a crash");
        } else {
            live.push(id);
        }
    }
    let start = check_start(checkpoint, &live, config.repair)?;
    cut_at_hole(dir, &mut live, config.repair)?;

    let mut segments = BTreeMap::new();
    let mut boundary = None;
    for (index, &id) in live.iter().enumerate() {
        let probe = start.filter(|p| p.segment == id).map(|p| p.offset);
        let scan = scan_segment(&segment_path(dir, id), id, index + 1 == live.len(), probe)?;
        if probe.is_some() {
            boundary = scan.probe_boundary;
        }
        match scan.verdict {
            Verdict::Clean => {
                segments.insert(id, scan.valid_len);
            }
            Verdict::TornTail { reason } => {
                warn!(segment = %id, offset = scan.valid_len,
                    dropped_bytes = scan.file_len - scan.valid_len, %reason,
                    "WAL: truncating the torn tail of the newest segment (an interrupted, \
                     never acknowledged write)");
                truncate(dir, id, scan.valid_len)?;
                segments.insert(id, scan.valid_len);
            }
            Verdict::Unborn { reason } => {
                warn!(segment = %id, %reason,
                    "WAL: removing the newest segment, its creation was interrupted");
                remove_segment(dir, id)?;
            }
            Verdict::Corrupt { offset, reason } => {
                if !config.repair {
                    return Err(WalError::Corrupt {
                        segment: id,
                        offset,
                        reason,
                    });
                }
                repair_at(dir, id, offset, scan.file_len, &reason, &live[index + 1..])?;
                if offset >= SEGMENT_HEADER_BYTES {
                    segments.insert(id, offset);
                }
                break;
            }
        }
    }
    // Readers step from the end of one segment to the next id, so the fresh segment must
    // follow the last survivor; only when none survived, skip every id ever seen.
    let next_segment = match segments.last_key_value() {
        Some((&last, _)) => last.next(),
        None => highest_seen.unwrap_or(SegmentId(0)).next(),
    };
    let confirmed = settle_confirmed(dir, start, boundary, &segments, next_segment, config)?;
    if checkpoint != Some(confirmed) {
        checkpoint::write(dir, confirmed)?;
    }
    sync_dir(dir)?;
    Ok(Recovered {
        segments,
        confirmed,
        next_segment,
    })
}

fn read_checkpoint(dir: &Path, repair: bool) -> Result<Option<Position>, WalError> {
    match checkpoint::read(dir) {
        Err(err) if repair && err.is_corruption() => {
            warn!(error = %err, "WAL repair: ignoring the checkpoint and replaying every \
                segment (records already in the store are written again)");
            Ok(None)
        }
        other => other,
    }
}

/// The replay start: the checkpoint, unless its segment is gone while later ones exist.
fn check_start(
    checkpoint: Option<Position>,
    live: &[SegmentId],
    repair: bool,
) -> Result<Option<Position>, WalError> {
    let (Some(confirmed), Some(&first)) = (checkpoint, live.first()) else {
        return Ok(checkpoint);
    };
    // Earlier segments were deleted above, so `first` is the checkpoint's or a later one.
    if first == confirmed.segment {
        return Ok(checkpoint);
    }
    if !repair {
        return Err(WalError::MissingSegment {
            expected: confirmed.segment,
            found: first,
        });
    }
    warn!(missing = %confirmed.segment, first = %first,
        "WAL repair: the checkpoint's segment is missing; replaying from the first segment \
         present (unconfirmed records of the missing one are lost)");
    Ok(Some(Position::start_of(first)))
}

/// Fails at the first hole in the numbering, or with repair drops everything after it.
fn cut_at_hole(dir: &Path, live: &mut Vec<SegmentId>, repair: bool) -> Result<(), WalError> {
    let Some(hole) = live.windows(2).position(|w| w[1] != w[0].next()) else {
        return Ok(());
    };
    let (expected, found) = (live[hole].next(), live[hole + 1]);
    if !repair {
        return Err(WalError::MissingSegment { expected, found });
    }
    let dropped = live.split_off(hole + 1);
    let dropped_bytes = remove_segments(dir, &dropped)?;
    warn!(missing = %expected, dropped_segments = dropped.len(), dropped_bytes,
        "WAL repair: a segment is missing; dropped every segment after the hole \
         (their records are lost)");
    Ok(())
}

/// Cuts the log at `offset` of segment `id` (removing it whole for a bad header) and
/// removes every later segment.
fn repair_at(
    dir: &Path,
    id: SegmentId,
    offset: u64,
    file_len: u64,
    reason: &str,
    later: &[SegmentId],
) -> Result<(), WalError> {
    let later_bytes = remove_segments(dir, later)?;
    let (cut_bytes, cut_segments) = if offset < SEGMENT_HEADER_BYTES {
        remove_segment(dir, id)?;
        (file_len, 1)
    } else {
        truncate(dir, id, offset)?;
        (file_len - offset, 0)
    };
    warn!(segment = %id, offset, reason,
        dropped_bytes = cut_bytes + later_bytes,
        dropped_segments = later.len() + cut_segments,
        "WAL REPAIR: cut the log at a corruption; every record from here on is LOST");
    Ok(())
}

/// The final confirmed position, checked against the surviving records.
fn settle_confirmed(
    dir: &Path,
    start: Option<Position>,
    boundary: Option<u64>,
    segments: &BTreeMap<SegmentId, u64>,
    next_segment: SegmentId,
    config: &WalConfig,
) -> Result<Position, WalError> {
    let first = segments.keys().next().copied().unwrap_or(next_segment);
    let Some(start) = start else {
        return Ok(Position::start_of(first));
    };
    // Segments after the checkpoint's survive only if it does, so a missing entry means
    // nothing is left to replay.
    let Some(&len) = segments.get(&start.segment) else {
        return Ok(Position::start_of(next_segment));
    };
    let rounded = Position {
        segment: start.segment,
        offset: boundary.unwrap_or(SEGMENT_HEADER_BYTES),
    };
    if rounded == start {
        Ok(start)
    } else if start.offset > len {
        warn!(checkpoint = %start, end = len,
            "WAL: the checkpoint lies past the surviving data; replay starts at its end");
        Ok(rounded)
    } else if config.repair {
        warn!(checkpoint = %start, replay_from = %rounded,
            "WAL repair: the checkpoint is not on a record boundary; rounded down \
             (some records reach the store twice)");
        Ok(rounded)
    } else {
        Err(WalError::BadCheckpoint {
            path: checkpoint::path(dir),
            reason: format!("{start} is not on a record boundary"),
        })
    }
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

/// Removes `ids`, returning how many bytes they held.
fn remove_segments(dir: &Path, ids: &[SegmentId]) -> Result<u64, WalError> {
    let mut bytes = 0;
    for &id in ids {
        let path = segment_path(dir, id);
        bytes += fs::metadata(&path)
            .map_err(|e| WalError::io(&path, e))?
            .len();
        remove_segment(dir, id)?;
    }
    Ok(bytes)
}
