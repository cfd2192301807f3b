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
//! A segment that loses records in its middle is rewritten (see `segment`). What was dropped
//! is logged and counted in a [`RepairReport`], in readings where the payload still tells.
//! A repaired log reopens cleanly without `repair`.
//! The checkpoint is rewritten whenever what it should hold differs from the file.

mod segment;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use tracing::{info, warn};

use super::checkpoint::{self, Checkpoint, CheckpointFile};
use super::error::WalError;
use super::format::{create_segment, list_segments, remove_stale_rewrites, segment_path, sync_dir};
use super::scan::Tail;
use super::types::{Position, RepairReport, SegmentId, WalConfig};
use segment::Probe;

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

fn remove_segment(dir: &Path, id: SegmentId) -> Result<(), WalError> {
    let path = segment_path(dir, id);
    fs::remove_file(&path).map_err(|e| WalError::io(&path, e))
}
