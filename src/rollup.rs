//! Rollups: per-minute and per-hour aggregates of the readings, written by the flusher with
//! every batch, so long-range stats read thousands of rows instead of billions.
//!
//! A rollup row is a **partial**: the aggregate ([`Agg`]) of the readings of one series in one
//! slot (a minute or an hour) that arrived in one *piece* of the WAL. Readers merge every
//! partial of a slot. There are no counters and no read-modify-write: exactly-once comes from
//! the key alone.
//!
//! ```text
//!  WAL segment:  | chunk 0 (64 MiB)                          | chunk 1        | …
//!  batches:      [b1    )[b2    )[b3 )[b4   )[b5     )[b6   )[b7 ...
//!  pieces:       [piece a                    )[piece b        )[piece c ...
//!  partial key:  (service, kind, slot, instance, method, path, code, writer, segment, start)
//!  partial value: last (offset of the piece's last record), aggregate
//! ```
//!
//! A piece is one or more consecutive flush batches: the readings of each batch are written as
//! it comes, and the piece's partials once, after its last batch, from the batches the store
//! took; only then is the piece's end confirmed in the WAL. Under load a piece is a whole chunk
//! of up to 64 batches, so a (series, slot) gets one partial row per chunk, not per batch,
//! unless the piece holds so many (series, slot) aggregates that it ends early
//! ([`open_piece::MAX_PIECE_CELLS`]), which bounds its memory.
//!
//! Invariants that make replays harmless (see [`chunk`]):
//! - A piece never spans two chunks (fixed [`chunk::CHUNK_BYTES`] windows of a segment), and
//!   inside a chunk a piece ends only where the reader found no more durable records, or
//!   early at the cell budget.
//! - A replay after a crash starts at the confirmed position, which is a piece boundary, and
//!   reads each chunk up to its end or the durable end, which is at or past everything the
//!   crashed run had read. So each piece of the replay either has the same start as an old one
//!   (and overwrites it with a superset) or contains the old pieces whole. A piece that
//!   reached the cell budget is recorded before its partials are written ([`open_piece`]), and
//!   a replay from its start ends exactly where it ended, so an early end elsewhere cannot
//!   split it.
//! - The flusher confirms a piece's end before it writes the next piece's partials, so a crash
//!   leaves at most one piece with partials written past the confirmed position: the first
//!   piece of the replay.
//! - Readers keep, per (series, slot, writer, chunk), only pieces not contained in another
//!   ([`merge::maximal`]): what is left is disjoint and covers every record once.
//!
//! Two writers (replicas) never share a key: each has its own id ([`writer_id`]), kept in its
//! WAL directory. Late readings land in the slot of their own time, whatever batch brings them.
//! Levels: [`Resolution::Minute`] and [`Resolution::Hour`], each its own table (CQL) or
//! windowed keyspaces (embedded) with its own retention (`Settings::rollups`).
//!
//! This module imports the sketch of `query::sketch`: the rollups store the very structure the
//! raw stats compute, so a merge is exact bucket for bucket.

pub mod aggregate;
pub mod chunk;
pub mod compact;
pub mod compactor;
pub mod coverage;
pub mod merge;
pub mod open_piece;
pub mod partial;
pub mod prom;
pub mod rebuild;
pub mod writer_id;

pub use aggregate::{Agg, ApiAgg, GaugeAgg, HostAgg};
pub use partial::{partials, Cells, Piece, RollupRequest, RollupRow, RollupSeries};

use crate::model::{Settings, TimestampMs};

/// The levels of rollups.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Resolution {
    /// One row per series per minute.
    Minute,
    /// One row per series per hour.
    Hour,
}

impl Resolution {
    /// Every level, finest first.
    pub const ALL: [Resolution; 2] = [Resolution::Minute, Resolution::Hour];

    /// The slot width, ms.
    pub const fn step_ms(self) -> i64 {
        match self {
            Resolution::Minute => 60_000,
            Resolution::Hour => 3_600_000,
        }
    }

    /// `1m` or `1h`, as answers and the CLI name it.
    pub const fn name(self) -> &'static str {
        match self {
            Resolution::Minute => "1m",
            Resolution::Hour => "1h",
        }
    }

    /// The CQL table (migration 0004: a row per endpoint, every status code in it).
    pub const fn table(self) -> &'static str {
        match self {
            Resolution::Minute => "rollups_by_endpoint_1m",
            Resolution::Hour => "rollups_by_endpoint_1h",
        }
    }

    /// Width of a partition (CQL) in seconds: an hour of minutes, a day of hours.
    pub const fn partition_seconds(self) -> i64 {
        match self {
            Resolution::Minute => 3600,
            Resolution::Hour => 86_400,
        }
    }

    /// Compaction / retention window in seconds (TWCS window, embedded keyspace): a day for
    /// minutes (35 windows in 35 days), ten days for hours (40 in 400 days).
    pub const fn window_seconds(self) -> i64 {
        match self {
            Resolution::Minute => 86_400,
            Resolution::Hour => 864_000,
        }
    }

    /// The retention of this level.
    pub fn ttl_seconds(self, settings: &Settings) -> u32 {
        match self {
            Resolution::Minute => settings.rollups.minute_ttl_seconds,
            Resolution::Hour => settings.rollups.hour_ttl_seconds,
        }
    }

    /// The start of the slot holding `at`.
    pub fn slot_of(self, at: TimestampMs) -> TimestampMs {
        let step = self.step_ms();
        TimestampMs::from_millis(at.millis().div_euclid(step) * step)
    }

    /// The start (epoch seconds) of the partition holding slot `slot`.
    pub fn partition_of(self, slot: TimestampMs) -> i64 {
        let width = self.partition_seconds();
        slot.millis().div_euclid(1000).div_euclid(width) * width
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_validate_rollup_retentions_against_these_windows() {
        let windows: Vec<u64> = Resolution::ALL
            .iter()
            .map(|r| r.window_seconds() as u64)
            .collect();
        let validated: Vec<u64> = crate::model::settings::ROLLUP_WINDOW_SECONDS
            .iter()
            .map(|(_, w)| *w)
            .collect();
        assert_eq!(windows, validated);
    }
}
