//! Where the flusher may cut a batch, so that a replay's pieces contain the pieces it replaces.
//!
//! A segment is split into fixed windows of [`CHUNK_BYTES`]; a record belongs to the chunk of
//! the offset its frame starts at. A batch (a *piece*) holds records of one chunk only, and
//! inside a chunk it ends only where the reader ran out of durable records, or early where its
//! aggregates reach the cell budget (recorded, see [`super::open_piece`]). The chunk size is a
//! constant, not a flag: pieces of two runs of different configurations must still nest.
//!
//! It was 4 MiB (one flush batch) until a piece could span several batches, then 16 MiB, and
//! is now a whole default segment, 64 MiB: each size a multiple of the one before, so every
//! piece an older version wrote lies within one chunk of this size and a replay's piece still
//! contains it whole.

use crate::wal::Position;

/// Bytes of a chunk: a default WAL segment, 64 default flush batches (sixteen before WAL
/// records listed each name once and flush batches shrank to 1 MiB, `ingest::record`).
/// Larger pieces mean fewer partial rows (a series' readings of one minute in one piece make
/// one row: a quarter of those at 16 MiB), at the price of confirming the WAL up to a chunk
/// later: a crash replays at most one chunk more, and under a backlog a minute's partials are
/// written up to one chunk after its readings. The memory a piece holds is bounded by the cell
/// budget, not by its bytes.
pub const CHUNK_BYTES: u64 = 64 * 1024 * 1024;

/// The chunk of the record starting at `position`: its segment and window.
pub fn chunk_of(position: Position) -> (u64, u64) {
    (position.segment.0, position.offset / CHUNK_BYTES)
}

/// How many leading items (with start positions `positions`) belong to the first one's chunk.
pub fn same_chunk_prefix(positions: impl IntoIterator<Item = Position>) -> usize {
    let mut positions = positions.into_iter();
    let Some(first) = positions.next() else {
        return 0;
    };
    let chunk = chunk_of(first);
    1 + positions.take_while(|p| chunk_of(*p) == chunk).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_stops_at_a_chunk_or_segment_boundary() {
        let c = CHUNK_BYTES;
        assert_eq!(
            same_chunk_prefix([
                Position::at(1, 16),
                Position::at(1, c - 1),
                Position::at(1, c)
            ]),
            2
        );
        assert_eq!(
            same_chunk_prefix([Position::at(1, 16), Position::at(2, 16)]),
            1
        );
        assert_eq!(
            same_chunk_prefix([Position::at(1, c), Position::at(1, 2 * c - 1)]),
            2
        );
        assert_eq!(same_chunk_prefix([]), 0);
    }
}
