//! Compaction: the partials one writer wrote for a closed slot merged into one row, so that
//! readers of old slots merge a row per series instead of one per batch.
//!
//! A **compacted row** is keyed like a partial of its writer, with the segment
//! [`COMPACTED_SEGMENT`] (above any real one) and, as its piece's start and last, the WAL
//! position it was compacted up to (its *mark*): it holds exactly the writer's partials of that
//! series and slot whose pieces lie wholly before the mark.
//!
//! Invariants, and why they make compaction safe:
//! - **The mark is at most the writer's confirmed WAL position**, which is durable before the
//!   compactor reads it (`Wal::confirm` persists the checkpoint). A replay starts at the
//!   confirmed position, so no piece before the mark is ever written again: a compacted partial
//!   cannot come back and be counted twice.
//! - **Readers ignore what a compacted row holds** ([`resolve`]): per (series, slot, writer)
//!   only the compacted row with the highest mark counts, and partials before its mark do not.
//!   So the new row is written first and the merged partials (and the older compacted row)
//!   deleted after it: a reader between the two steps, or after a crash between them, counts
//!   everything once, and the next run deletes the leftovers.
//! - **A writer compacts only its own rows** (its WAL's writer id): two replicas writing the
//!   same minute never touch each other's partials, and rebuilt rows (`rebuild::REBUILT`) are
//!   left alone.
//! - **Idempotent**: a rerun with the same mark finds nothing new to merge and only deletes
//!   leftovers; a later run merges the compacted row with the partials confirmed since.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::merge;
use super::partial::{RollupRow, RollupSeries};
use super::{Agg, Piece, Resolution};
use crate::model::TimestampMs;
use crate::wal::Position;

/// The segment of compacted rows: above every real segment id, and a positive CQL `bigint`.
pub const COMPACTED_SEGMENT: u64 = i64::MAX as u64;

/// The mark of a compacted row's piece, `None` for a partial.
pub fn mark(piece: &Piece) -> Option<(u64, u64)> {
    (piece.segment == COMPACTED_SEGMENT).then_some((piece.start, piece.last))
}

/// Whether partial `piece` lies wholly before `mark`.
fn before(piece: &Piece, mark: (u64, u64)) -> bool {
    (piece.segment, piece.last) < mark
}

type Group = (usize, Resolution, TimestampMs, RollupSeries, Uuid);

fn group_of(row: &RollupRow) -> Group {
    (
        row.agg.kind(),
        row.resolution,
        row.slot,
        row.series.clone(),
        row.piece.writer,
    )
}

/// The rows that count: per (series, slot, writer) the compacted row with the highest mark and
/// the partials after it; everything else is held by that row already.
pub fn resolve(rows: Vec<RollupRow>) -> Vec<RollupRow> {
    type Key<'a> = (usize, Resolution, TimestampMs, &'a RollupSeries, Uuid);
    let key = |row: &RollupRow| -> (usize, Resolution, TimestampMs, Uuid) {
        (row.agg.kind(), row.resolution, row.slot, row.piece.writer)
    };
    let keep: Vec<bool> = {
        let mut marks: HashMap<Key<'_>, (u64, u64)> = HashMap::new();
        for row in &rows {
            if let Some(m) = mark(&row.piece) {
                let (kind, resolution, slot, writer) = key(row);
                let best = marks
                    .entry((kind, resolution, slot, &row.series, writer))
                    .or_insert(m);
                *best = (*best).max(m);
            }
        }
        if marks.is_empty() {
            return rows;
        }
        rows.iter()
            .map(|row| {
                let (kind, resolution, slot, writer) = key(row);
                match marks.get(&(kind, resolution, slot, &row.series, writer)) {
                    None => true,
                    Some(&best) => match mark(&row.piece) {
                        Some(m) => m == best,
                        None => !before(&row.piece, best),
                    },
                }
            })
            .collect()
    };
    rows.into_iter()
        .zip(keep)
        .filter_map(|(row, keep)| keep.then_some(row))
        .collect()
}

/// What one compaction of a partition does: rows to write, then rows to delete.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Compaction {
    /// New compacted rows.
    pub write: Vec<RollupRow>,
    /// Partials (and older compacted rows) the new rows hold.
    pub delete: Vec<RollupRow>,
}

/// The compaction of `rows` (every row of some slots, as read) for `writer` up to `upto` (at
/// most its confirmed WAL position): per (series, slot), the writer's compacted row and
/// partials before the mark merge into one row, when that replaces more than one row.
///
/// **An endpoint's series go together**: once one series of an endpoint (instance, method,
/// path) in a slot merges, every series of it that has a row before the mark is rewritten,
/// one row or several. A store may keep an endpoint's codes in one stored row (CQL), and
/// deleting one code's partial there deletes the others': each of them must be in a new row.
pub fn plan(rows: Vec<RollupRow>, writer: Uuid, upto: Position) -> Compaction {
    let new_mark = (upto.segment.0, upto.offset);
    let mut groups: HashMap<Group, Vec<RollupRow>> = HashMap::new();
    for row in rows.into_iter().filter(|r| r.piece.writer == writer) {
        groups.entry(group_of(&row)).or_default().push(row);
    }
    let series: Vec<SeriesPlan> = groups
        .into_values()
        .map(|group| SeriesPlan::of(group, new_mark))
        .collect();
    let rewritten: HashSet<Group> = series
        .iter()
        .filter(|plan| plan.merges())
        .map(|plan| plan.endpoint.clone())
        .collect();
    let mut out = Compaction::default();
    for plan in series {
        let rewrite = !plan.stale && rewritten.contains(&plan.endpoint);
        plan.add_to(rewrite, writer, new_mark, &mut out);
    }
    out
}

/// One series' rows in one slot, sorted out against the new mark.
struct SeriesPlan {
    /// Held by the old compacted row already: deleted, never merged again.
    held: Vec<RollupRow>,
    /// The partials before the new mark that count (not contained in another).
    fresh: Vec<RollupRow>,
    /// The compacted row with the highest mark, and that mark.
    old: Option<((u64, u64), RollupRow)>,
    /// Compacted at the new mark (or later) already.
    stale: bool,
    /// The series' endpoint: its group without the code.
    endpoint: Group,
}

impl SeriesPlan {
    fn of(group: Vec<RollupRow>, new_mark: (u64, u64)) -> Self {
        let endpoint = endpoint_of(&group[0]);
        let old = group
            .iter()
            .filter_map(|r| mark(&r.piece).map(|m| (m, r.clone())))
            .max_by_key(|(m, _)| *m);
        let old_mark = old.as_ref().map(|(m, _)| *m);
        let (held, rest): (Vec<RollupRow>, Vec<RollupRow>) =
            group
                .into_iter()
                .partition(|r| match (mark(&r.piece), old_mark) {
                    (Some(m), Some(best)) => m < best,
                    (None, Some(best)) => before(&r.piece, best),
                    (_, None) => false,
                });
        let fresh = rest
            .into_iter()
            .filter(|r| mark(&r.piece).is_none() && before(&r.piece, new_mark))
            .collect();
        Self {
            held,
            fresh: merge::maximal(fresh),
            stale: old_mark.is_some_and(|m| m >= new_mark),
            old,
            endpoint,
        }
    }

    /// Rows a new compacted row would replace.
    fn replaced(&self) -> usize {
        self.fresh.len() + usize::from(self.old.is_some())
    }

    /// Whether the series needs a new compacted row of its own.
    fn merges(&self) -> bool {
        !self.stale && self.replaced() >= 2
    }

    /// Adds the series' rows to write and delete to `out`: a new compacted row when it
    /// `merges()` or its endpoint is `rewrite`n, else only the leftovers its old row holds.
    fn add_to(self, rewrite: bool, writer: Uuid, new_mark: (u64, u64), out: &mut Compaction) {
        let compacts = (rewrite || self.merges()) && self.replaced() > 0;
        out.delete.extend(self.held);
        if !compacts {
            return;
        }
        let mut rows = self.fresh.iter().chain(self.old.as_ref().map(|(_, r)| r));
        let mut merged = rows.next().expect("replaced() counts a row").clone();
        for row in rows {
            merge_into(&mut merged.agg, &row.agg);
        }
        merged.piece = Piece {
            writer,
            segment: COMPACTED_SEGMENT,
            start: new_mark.0,
            last: new_mark.1,
        };
        out.delete.extend(self.fresh);
        // The old compacted row goes, unless the new one overwrites it (same key).
        if let Some((m, row)) = self.old {
            if m.0 != new_mark.0 {
                out.delete.push(row);
            }
        }
        out.write.push(merged);
    }
}

/// The group of `row`'s endpoint: its series' group without the code.
fn endpoint_of(row: &RollupRow) -> Group {
    let mut group = group_of(row);
    group.3.code = None;
    group
}

fn merge_into(into: &mut Agg, other: &Agg) {
    match (into, other) {
        (Agg::Api(a), Agg::Api(b)) => a.merge(b),
        (Agg::Host(a), Agg::Host(b)) => a.merge(b),
        // Rows of one group share their kind (it is part of the group).
        _ => unreachable!("rows of one group share their kind"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reading::sample;
    use crate::model::{ApiReading, Reading, StatusCode};
    use crate::rollup::partials;
    use crate::wal::SegmentId;

    const ALL: TimestampMs = TimestampMs::from_millis(i64::MIN);

    fn piece(writer: Uuid, segment: u64, start: u64, last: u64) -> Piece {
        Piece {
            writer,
            segment,
            start,
            last,
        }
    }

    fn at(segment: u64, offset: u64) -> Position {
        Position {
            segment: SegmentId(segment),
            offset,
        }
    }

    /// Requests counted at the minute level, as a reader counts them.
    fn requests(rows: &[RollupRow]) -> u64 {
        merge::maximal(resolve(rows.to_vec()))
            .iter()
            .filter(|r| r.resolution == Resolution::Minute)
            .map(|r| match &r.agg {
                Agg::Api(a) => a.count,
                Agg::Host(h) => h.samples,
            })
            .sum()
    }

    fn apply(rows: &mut Vec<RollupRow>, plan: &Compaction, delete: bool) {
        rows.retain(|r| {
            !plan.write.iter().any(|w| {
                w.piece == r.piece
                    && w.series == r.series
                    && w.slot == r.slot
                    && w.resolution == r.resolution
            })
        });
        rows.extend(plan.write.iter().cloned());
        if delete {
            rows.retain(|r| !plan.delete.contains(r));
        }
    }

    #[test]
    fn compaction_keeps_every_count_through_crashes_reruns_replays_and_other_writers() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let one = vec![Reading::Api(sample::api())]; // 3 requests
        let mut rows = Vec::new();
        for (writer, start) in [(a, 16), (a, 100), (a, 200), (b, 16), (b, 300)] {
            rows.extend(partials(&one, piece(writer, 1, start, start + 10), ALL));
        }
        assert_eq!(requests(&rows), 15);

        // A's confirmed position is 150: its first two pieces merge; the third (unconfirmed,
        // may be replayed) and B's rows stay.
        let first = plan(rows.clone(), a, at(1, 150));
        assert_eq!(first.write.len(), 2, "one row per level");
        assert!(first
            .delete
            .iter()
            .all(|r| r.piece.writer == a && r.piece.start < 150));
        // Crash after the write, before the deletes: nothing counted twice.
        apply(&mut rows, &first, false);
        assert_eq!(requests(&rows), 15);
        // A rerun deletes the leftovers and writes nothing new.
        let rerun = plan(rows.clone(), a, at(1, 150));
        assert!(rerun.write.is_empty());
        apply(&mut rows, &rerun, true);
        assert_eq!(requests(&rows), 15);
        assert_eq!(rows.iter().filter(|r| r.piece.writer == a).count(), 4);

        // A replay after a crash rewrites the unconfirmed piece (same key) with more records.
        rows.retain(|r| !(r.piece.writer == a && r.piece.start == 200));
        rows.extend(partials(
            &[one.clone(), one.clone()].concat(),
            piece(a, 1, 200, 250),
            ALL,
        ));
        assert_eq!(requests(&rows), 18);
        // Later, confirmed up to segment 2: the compacted row and the replayed piece merge.
        let later = plan(rows.clone(), a, at(2, 16));
        apply(&mut rows, &later, true);
        assert_eq!(requests(&rows), 18);
        assert_eq!(rows.iter().filter(|r| r.piece.writer == a).count(), 2);
        assert!(
            rows.iter().filter(|r| r.piece.writer == b).count() == 4,
            "B untouched"
        );
    }

    #[test]
    fn an_endpoints_codes_are_compacted_together_so_a_stored_row_can_hold_them_all() {
        let a = Uuid::from_u128(1);
        let ok = Reading::Api(sample::api()); // 200, 3 requests
        let failed = Reading::Api(ApiReading {
            code: StatusCode::parse(500).unwrap(),
            ..sample::api()
        });
        // Code 200 in two pieces, code 500 in the first only: alone, 500 would not merge.
        let mut rows = partials(&[ok.clone(), failed], piece(a, 1, 16, 20), ALL);
        rows.extend(partials(&[ok], piece(a, 1, 100, 110), ALL));
        assert_eq!(requests(&rows), 9);

        let compaction = plan(rows.clone(), a, at(1, 150));
        let codes = |list: &[RollupRow]| -> Vec<u16> {
            let mut codes: Vec<u16> = list
                .iter()
                .filter(|r| r.resolution == Resolution::Minute)
                .filter_map(|r| r.series.code.map(|c| c.get()))
                .collect();
            codes.sort();
            codes
        };
        assert_eq!(codes(&compaction.write), [200, 500], "500 rewritten too");
        // Delete as a store keeping an endpoint's codes in one row does: a deleted row takes
        // every row of its (slot, endpoint, piece) with it.
        apply(&mut rows, &compaction, false);
        rows.retain(|r| {
            !compaction.delete.iter().any(|d| {
                d.piece == r.piece
                    && d.slot == r.slot
                    && d.resolution == r.resolution
                    && d.series.same_endpoint(&r.series)
            })
        });
        assert_eq!(requests(&rows), 9);
        assert!(rows.iter().all(|r| mark(&r.piece).is_some()));
    }
}
