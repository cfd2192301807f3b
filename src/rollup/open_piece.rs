//! Pieces that reached the cell budget, recorded in the WAL directory before their partials
//! are written, so that a replay after a crash ends its first piece at the same record.
//!
//! A piece normally ends where any replay's piece of the same start ends too or later: at a
//! chunk boundary, or where the reader found no more durable records (see [`super::chunk`]),
//! which keeps replays harmless. So that a piece of many series cannot hold unbounded memory,
//! the flusher also ends a piece early, after the batch in which its aggregates reach
//! [`MAX_PIECE_CELLS`]. That end falls on a batch boundary, which depends on timing: a replay
//! of a piece that reached the budget (ended early or not) might end early elsewhere, and
//! count some readings twice. Hence the flusher records such a piece ([`record`]) before
//! writing its partials, and a replay that starts at its first record ([`load`],
//! [`OpenPiece::forced_end`]) ends its first piece exactly at its last record. A piece below
//! the budget needs no record: no replay of it reaches the budget before its end. A record
//! whose start is not where a replay starts (the WAL was confirmed past it) is stale.

use std::path::Path;

use super::writer_id::replace_durably;
use super::Piece;
use crate::wal::{Position, SegmentId};

/// The file in the WAL directory (the WAL ignores files that are not segments).
pub const FILE_NAME: &str = "rollup-open-piece";

/// Aggregates (series × minute) a piece may hold before it ends early. A minute's aggregate
/// takes about 1 KiB with its map entry and its share of the hour merge at the piece's end:
/// this bounds the rollup memory of the flusher to some tens of MiB whatever the cardinality.
/// A fleet of 1,000 series with readings spread over five minutes makes 5,000 per piece.
pub const MAX_PIECE_CELLS: usize = 32_768;

/// The extent of a recorded piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenPiece {
    /// Its first record.
    pub start: Position,
    /// Its last record.
    pub last: Position,
}

impl OpenPiece {
    /// Where a replay starting at `replay_from` must end its first piece: after the record at
    /// the returned position, when this piece starts there.
    pub fn forced_end(&self, replay_from: Position) -> Option<Position> {
        (self.start == replay_from).then_some(self.last)
    }
}

/// Records `piece` (durably: after a crash the file holds this piece or the one recorded
/// before).
pub fn record(wal_dir: &Path, piece: &Piece) -> std::io::Result<()> {
    let text = format!("{} {} {}\n", piece.segment, piece.start, piece.last);
    replace_durably(wal_dir, FILE_NAME, &text)
}

/// The piece last recorded in `wal_dir`, if any.
pub fn load(wal_dir: &Path) -> std::io::Result<Option<OpenPiece>> {
    let text = match std::fs::read_to_string(wal_dir.join(FILE_NAME)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let numbers: Vec<u64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("{FILE_NAME}: {e}")))?;
    let [segment, start, last] = numbers[..] else {
        return Err(invalid(format!("{FILE_NAME}: expected three numbers")));
    };
    let at = |offset| Position {
        segment: SegmentId(segment),
        offset,
    };
    Ok(Some(OpenPiece {
        start: at(start),
        last: at(last),
    }))
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_piece_forces_the_end_of_a_replay_from_its_start_only() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let piece = Piece {
            writer: uuid::Uuid::new_v4(),
            segment: 3,
            start: 16,
            last: 9_000,
        };
        record(dir.path(), &piece).unwrap();
        let open = load(dir.path()).unwrap().unwrap();
        assert_eq!(
            open.forced_end(Position::at(3, 16)),
            Some(Position::at(3, 9_000))
        );
        // Confirmed past it (or elsewhere): stale.
        assert_eq!(open.forced_end(Position::at(3, 9_100)), None);
        assert_eq!(open.forced_end(Position::at(4, 16)), None);
        // The next one replaces it.
        record(
            dir.path(),
            &Piece {
                start: 9_100,
                last: 20_000,
                ..piece
            },
        )
        .unwrap();
        let open = load(dir.path()).unwrap().unwrap();
        assert_eq!(
            open.forced_end(Position::at(3, 9_100)),
            Some(Position::at(3, 20_000))
        );
    }

    #[test]
    fn a_damaged_record_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "3 16\n").unwrap();
        assert!(load(dir.path()).is_err());
        std::fs::write(dir.path().join(FILE_NAME), "3 x 9\n").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
