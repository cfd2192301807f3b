//! Reading partials back: only the pieces no other piece contains count (see the module note
//! of `rollup`), so a replayed piece and the pieces it rewrote are counted once.

use std::collections::HashMap;

use super::chunk::CHUNK_BYTES;
use super::partial::{RollupRow, RollupSeries};
use super::Resolution;
use crate::model::TimestampMs;

/// The rows of `rows` that count: what compacted rows hold is left out (`compact::resolve`),
/// then the partials that another partial of the same series, slot, writer and chunk contains;
/// the pieces left are disjoint.
pub fn maximal(rows: Vec<RollupRow>) -> Vec<RollupRow> {
    let rows = super::compact::resolve(rows);
    type Group = (
        usize,
        Resolution,
        TimestampMs,
        RollupSeries,
        uuid::Uuid,
        u64,
        u64,
    );
    let mut groups: HashMap<Group, Vec<RollupRow>> = HashMap::new();
    for row in rows {
        let piece = row.piece;
        let key = (
            row.agg.kind(),
            row.resolution,
            row.slot,
            row.series.clone(),
            piece.writer,
            piece.segment,
            piece.start / CHUNK_BYTES,
        );
        groups.entry(key).or_default().push(row);
    }
    let mut kept = Vec::new();
    for (_, mut group) in groups {
        if group.len() == 1 {
            kept.append(&mut group);
            continue;
        }
        // Widest first: a piece is dropped when an already kept one contains it.
        group.sort_by_key(|r| (r.piece.start, std::cmp::Reverse(r.piece.last)));
        let mut outer: Vec<RollupRow> = Vec::new();
        for row in group {
            if !outer.iter().any(|o| o.piece.contains(&row.piece)) {
                outer.push(row);
            }
        }
        kept.append(&mut outer);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reading::sample;
    use crate::model::Reading;
    use crate::rollup::{partials, Agg, Piece};

    /// Partials of every reading.
    const ALL: TimestampMs = TimestampMs::from_millis(i64::MIN);

    fn piece(start: u64, last: u64) -> Piece {
        Piece {
            writer: uuid::Uuid::nil(),
            segment: 1,
            start,
            last,
        }
    }

    fn count(rows: &[RollupRow]) -> u64 {
        rows.iter()
            .filter(|r| r.resolution == Resolution::Minute)
            .map(|r| match &r.agg {
                Agg::Api(a) => a.count,
                Agg::Host(h) => h.samples,
            })
            .sum()
    }

    #[test]
    fn a_replayed_piece_replaces_the_pieces_it_contains() {
        let one = vec![Reading::Api(sample::api())];
        let two = vec![Reading::Api(sample::api()), Reading::Api(sample::api())];
        // First run: [16, 100] and [120, 200]; the replay reads [16, 300] in one piece (the
        // same key as the first, so it overwrote it) and [300..] is new.
        let mut rows = partials(&one, piece(120, 200), ALL);
        rows.extend(partials(
            &[one.clone(), two.clone()].concat(),
            piece(16, 300),
            ALL,
        ));
        rows.extend(partials(&one, piece(310, 320), ALL));
        assert_eq!(count(&maximal(rows)), 3 * 3 + 3);
    }

    #[test]
    fn pieces_of_other_writers_or_chunks_are_never_dropped() {
        let one = vec![Reading::Api(sample::api())];
        let mut other = piece(16, 100);
        other.writer = uuid::Uuid::max();
        let mut rows = partials(&one, piece(16, 200), ALL);
        rows.extend(partials(&one, other, ALL));
        rows.extend(partials(&one, piece(CHUNK_BYTES, CHUNK_BYTES + 5), ALL));
        assert_eq!(count(&maximal(rows)), 9);
    }
}
