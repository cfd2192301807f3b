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
    // Keys borrow from `rows` and most groups hold one row: no clone, no vector per group.
    type Group<'a> = (
        usize,
        Resolution,
        TimestampMs,
        &'a RollupSeries,
        uuid::Uuid,
        u64,
        u64,
    );
    let mut first: HashMap<Group<'_>, usize> = HashMap::with_capacity(rows.len());
    let mut shared: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let piece = row.piece;
        let key = (
            row.agg.kind(),
            row.resolution,
            row.slot,
            &row.series,
            piece.writer,
            piece.segment,
            piece.start / CHUNK_BYTES,
        );
        match first.entry(key) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i);
            }
            std::collections::hash_map::Entry::Occupied(e) => {
                shared
                    .entry(*e.get())
                    .or_insert_with(|| vec![*e.get()])
                    .push(i);
            }
        }
    }
    let mut keep = vec![true; rows.len()];
    for (_, mut group) in shared {
        // Widest first: a piece is dropped when an already kept one contains it.
        group.sort_by_key(|&i| (rows[i].piece.start, std::cmp::Reverse(rows[i].piece.last)));
        let mut outer: Vec<usize> = Vec::new();
        for i in group {
            if outer
                .iter()
                .any(|&o| rows[o].piece.contains(&rows[i].piece))
            {
                keep[i] = false;
            } else {
                outer.push(i);
            }
        }
    }
    rows.into_iter()
        .zip(keep)
        .filter_map(|(row, keep)| keep.then_some(row))
        .collect()
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
