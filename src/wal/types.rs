//! Value types of the WAL's public API: segment ids, log positions, configuration and stats.
//!
//! Invariants: a [`Position`] orders by segment first, then by byte offset, which is exactly
//! log order because records never span segments and segment ids only grow. A configuration
//! is checked once by [`WalConfig::validate`], so the writer may assume that every accepted
//! record fits into an empty segment and never has to split or refuse one later.

use std::fmt;
use std::path::PathBuf;

use super::error::WalError;
use super::format::{FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES};

/// Default segment size target: large enough that rotation (and its extra fsyncs) is rare,
/// small enough that deleting a fully confirmed segment frees space promptly.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Default largest accepted payload: half a segment, so the space a segment leaves unused
/// when the next record does not fit stays below half of it.
pub const DEFAULT_MAX_RECORD_BYTES: u32 = 32 * 1024 * 1024;

/// Number of a segment file. Ids start at 1 and only grow; the file name is the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub u64);

impl SegmentId {
    /// The id of the segment created after this one.
    pub fn next(self) -> SegmentId {
        SegmentId(self.0 + 1)
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A place in the log: byte `offset` inside segment `segment`.
///
/// A record's position is where its frame starts; the position just after it (its `next`)
/// is where the following record of the same segment starts, or the segment's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The segment holding the byte.
    pub segment: SegmentId,
    /// Byte offset from the start of the segment file (the header included).
    pub offset: u64,
}

impl Position {
    /// The position of the first record of `segment`, just after its header.
    pub fn start_of(segment: SegmentId) -> Position {
        Position {
            segment,
            offset: SEGMENT_HEADER_BYTES,
        }
    }

    /// Byte `offset` of segment `segment` (tests name positions by their two numbers).
    #[cfg(test)]
    pub fn at(segment: u64, offset: u64) -> Position {
        Position {
            segment: SegmentId(segment),
            offset,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "segment {} offset {}", self.segment, self.offset)
    }
}

/// Tells how many readings a payload holds, or `None` when it cannot tell (the payload is
/// damaged or foreign). The WAL stores opaque payloads; this lets a repair report what it
/// dropped in readings, the unit an operator counts in.
pub type ReadingCounter = fn(&[u8]) -> Option<u64>;

/// How to open a WAL.
#[derive(Clone, Debug)]
pub struct WalConfig {
    /// Directory holding the segment files and the `confirmed` checkpoint; created if missing.
    pub dir: PathBuf,
    /// Size target of one segment file; a segment is closed when the next record would
    /// not fit. Must hold the header plus one frame of `max_record_bytes`.
    pub segment_bytes: u64,
    /// Largest accepted payload; bigger appends fail with [`WalError::RecordTooLarge`].
    pub max_record_bytes: u32,
    /// Instead of failing on corruption, drop the damaged records (or, where record boundaries
    /// are lost, the rest of that segment), re-create missing segments empty, and keep
    /// everything else; see [`RepairReport`].
    pub repair: bool,
    /// Counts the readings of a dropped record for the repair report (a damaged payload
    /// usually still tells, its count being near the start).
    pub count_readings: ReadingCounter,
}

impl WalConfig {
    /// A configuration for `dir` with the default sizes and repair off.
    pub fn new(dir: impl Into<PathBuf>) -> WalConfig {
        WalConfig {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            repair: false,
            count_readings: |_| None,
        }
    }

    /// The largest payload an empty segment of `segment_bytes` holds: the segment header and
    /// one frame header taken away (0 when not even those fit).
    pub fn largest_record_in(segment_bytes: u64) -> u64 {
        segment_bytes.saturating_sub(SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES)
    }

    /// Checks that the sizes are usable: a record of `max_record_bytes` must fit into an
    /// empty segment, otherwise the writer could accept a record it can never place.
    pub fn validate(&self) -> Result<(), WalError> {
        if self.max_record_bytes == 0 {
            return Err(WalError::InvalidConfig {
                reason: "max_record_bytes must be at least 1".to_owned(),
            });
        }
        let needed_bytes =
            SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES + u64::from(self.max_record_bytes);
        if self.segment_bytes < needed_bytes {
            return Err(WalError::InvalidConfig {
                reason: format!(
                    "segment_bytes ({}) must hold the {SEGMENT_HEADER_BYTES}-byte segment header \
                     plus one record of max_record_bytes ({}) with its {FRAME_HEADER_BYTES}-byte \
                     frame header: at least {needed_bytes}",
                    self.segment_bytes, self.max_record_bytes
                ),
            });
        }
        Ok(())
    }
}

/// What a repair (`WalConfig::repair`) dropped. Records already confirmed (in the store)
/// are not counted: dropping them loses nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Damaged records dropped one by one (their boundaries were intact).
    pub dropped_records: u64,
    /// Readings in those records, as told by `WalConfig::count_readings`.
    pub dropped_readings: u64,
    /// Dropped records whose readings could not be counted.
    pub uncounted_records: u64,
    /// Non-zero bytes dropped where record boundaries were lost (from a damaged length to
    /// the end of its segment): how many records and readings they held is unknown.
    pub unframed_bytes: u64,
    /// Segments that were missing (or shorter than their header) and were re-created empty:
    /// what they held is unknown.
    pub missing_segments: u64,
}

impl RepairReport {
    /// True when nothing was dropped.
    pub fn is_empty(&self) -> bool {
        *self == RepairReport::default()
    }

    /// True when some of what was dropped could not be counted in readings.
    pub fn has_unknown_loss(&self) -> bool {
        self.uncounted_records > 0 || self.unframed_bytes > 0 || self.missing_segments > 0
    }
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} readings in {} damaged records",
            self.dropped_readings, self.dropped_records
        )?;
        if self.uncounted_records > 0 {
            write!(
                f,
                " ({} of them too damaged to count their readings)",
                self.uncounted_records
            )?;
        }
        if self.unframed_bytes > 0 {
            write!(
                f,
                ", plus {} bytes whose record boundaries were lost (readings unknown)",
                self.unframed_bytes
            )?;
        }
        if self.missing_segments > 0 {
            write!(
                f,
                ", plus {} missing segments (readings unknown)",
                self.missing_segments
            )?;
        }
        Ok(())
    }
}

/// A snapshot of the WAL's numbers for `/metrics` and for ingest backpressure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Segment files currently on disk (the one being written included).
    pub segments_on_disk: u64,
    /// Synced bytes in those files, headers included.
    pub bytes_on_disk: u64,
    /// Synced bytes not yet confirmed (durable end minus confirmed, across segments).
    pub backlog_bytes: u64,
    /// Records appended successfully since open.
    pub appends_total: u64,
    /// `sync_data` calls made for appends since open (fewer than appends: group commit).
    pub syncs_total: u64,
    /// Frame bytes (headers and payloads) written for appends since open.
    pub written_bytes_total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_segment_then_offset_and_display_both() {
        let early = Position {
            segment: SegmentId(1),
            offset: 900,
        };
        let late = Position::start_of(SegmentId(2));
        assert!(early < late);
        assert_eq!(late.to_string(), "segment 2 offset 16");
    }

    #[test]
    fn config_must_fit_one_max_record_into_a_segment() {
        let mut config = WalConfig::new("/tmp/unused");
        assert!(config.validate().is_ok());
        config.segment_bytes = u64::from(config.max_record_bytes) + 23;
        assert!(matches!(
            config.validate(),
            Err(WalError::InvalidConfig { .. })
        ));
        config.segment_bytes += 1;
        assert!(config.validate().is_ok());
        config.max_record_bytes = 0;
        assert!(config.validate().is_err());
    }
}
