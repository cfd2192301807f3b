//! Validation of one segment file during recovery, and the rules that tell the torn write a
//! crash leaves from corruption.
//!
//! What each failure can leave. The writer appends a group of frames with one positioned
//! write at the synced length, then syncs; synced bytes are never rewritten; a segment is
//! synced complete before the next is created; a new segment's header is synced, and its
//! creation recorded in the checkpoint, before it takes records. So only the newest segment
//! can hold unsynced bytes, all after its last synced group, and no record there was
//! acknowledged (the writer answers after the sync).
//! - A process crash (kill -9, OOM, panic) keeps what the write had copied into the page
//!   cache: the file ends with an exact prefix of the group, i.e. complete records with valid
//!   checksums, then at most one record cut short (a frame header cut, or a length running
//!   past the end of the file). It cannot leave a complete record with a bad checksum.
//! - A power loss or kernel crash writes the group's pages in any order, or not at all. The
//!   file size may already cover pages whose data never arrived, which read as zeros (file
//!   systems do not expose stale blocks), and a device may tear a page at a sector. So past
//!   the last synced byte every aligned [`SECTOR_BYTES`] sector holds the new data or zeros,
//!   and the file may end anywhere there: a record may be complete with a zeroed sector
//!   inside (bad checksum) or have a zeroed header (length 0), and intact records may follow.
//! - Media damage (bit rot, a misdirected write, an edit by hand) can hit any byte anywhere.
//!
//! Rules, at the first bad record (offset `o`) of the newest segment: it is a torn tail, cut
//! at `o` with a warning, iff the file ends within one group write of `o` (at most
//! [`super::writer::max_group_bytes`]: only the last write can be unsynced) and
//! (a) fewer than 8 bytes remain, or
//! (b) the declared length runs past the end of the file, or
//! (c) every byte from `o` to the end is zero, or
//! (d) the record's bytes (its 8 header bytes if the length is 0, its whole frame otherwise)
//!     overlap an aligned sector that is zero from `o` or its start to its end or the end of
//!     the file.
//!
//! Anything else is corruption: a bad checksum with no zeroed sector in the record (a bit
//! flip, even in the very last record: a crash only cuts records short, it does not alter
//! them), a length of 0 followed by data with no zeroed sector, a bad segment header, damage
//! farther from the end than one group write, and any damage in an older segment. The one
//! ambiguity left: media damage within the last group write of the newest segment that looks
//! exactly like a crash (a length running past the end, whole aligned sectors zeroed) is cut
//! as a torn tail.
//!
//! A newest segment shorter than its header, or all zeros, is one whose creation was
//! interrupted ("unborn"), unless the checkpoint records its creation: then its header was
//! synced before, and a missing header is corruption.
//!
//! The file is read through one fixed buffer (sequential scan) and small positioned reads
//! (zero checks), so memory stays bounded by [`SCAN_BUFFER_BYTES`] whatever the record sizes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::error::WalError;
use super::format::{
    check_segment_header, crc_extend, FrameHeader, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use super::types::SegmentId;

/// Read buffer of the scan: big enough for few syscalls, small enough to not matter.
const SCAN_BUFFER_BYTES: usize = 256 * 1024;
/// The smallest unit a device writes: a torn write zeroes whole aligned sectors. 512 bytes
/// also covers 4 KiB pages and 4 KiB-sector devices, whose tears are multiples of it.
pub(super) const SECTOR_BYTES: u64 = 512;
/// Bytes read at once by the zero checks.
const ZERO_CHECK_BYTES: u64 = 64 * 1024;

/// Where a segment stands in the log, which decides whether a crash may have torn it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tail {
    /// Not the newest: synced complete before the next was created, so nothing is torn.
    Sealed,
    /// The newest segment: it may end in a torn write (rules a-d). `recorded` says the
    /// checkpoint records its creation, so it cannot be unborn.
    Newest { recorded: bool },
}

/// What the segment header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Header {
    /// Magic and id are right.
    Valid,
    /// The newest segment never got its header: its creation was interrupted.
    Unborn(String),
    /// Damage no crash explains.
    Bad(String),
}

/// Where a run of valid records stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The end of the file, exactly at a record boundary.
    End,
    /// A torn tail of the newest segment starts at `offset`.
    Torn { offset: u64, reason: String },
    /// Damage no crash explains starts at `offset`. `frame_end` is where the record would
    /// end if its length can be believed (a bad checksum within the file), `None` when the
    /// record boundaries are lost from here on.
    Corrupt {
        offset: u64,
        frame_end: Option<u64>,
        reason: String,
    },
}

/// The outcome of scanning records from some offset on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Run {
    /// Valid records seen.
    pub(super) records: u64,
    /// End of the last valid record (the start of the run if none).
    pub(super) valid_end: u64,
    /// The greatest record boundary seen at or before the probed offset, if one was asked.
    pub(super) probe_boundary: Option<u64>,
    /// Why the run ended.
    pub(super) stop: Stop,
}

/// A segment file open for validation.
pub(super) struct Scanner {
    reader: BufReader<File>,
    file_len: u64,
    tail: Tail,
    /// Rule (d) only holds this close to the end of the file: one group write.
    max_torn_bytes: u64,
}

impl Scanner {
    /// Opens segment `path` for scanning.
    pub(super) fn open(path: &Path, tail: Tail, max_torn_bytes: u64) -> Result<Scanner, WalError> {
        let file = File::open(path).map_err(|e| WalError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| WalError::io(path, e))?.len();
        Ok(Scanner {
            reader: BufReader::with_capacity(SCAN_BUFFER_BYTES, file),
            file_len,
            tail,
            max_torn_bytes,
        })
    }

    /// Size of the file as found.
    pub(super) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Checks the header against segment `id`.
    pub(super) fn header(&mut self, id: SegmentId) -> io::Result<Header> {
        let unborn_allowed = self.tail == Tail::Newest { recorded: false };
        let missing = |reason: String| {
            if unborn_allowed {
                Header::Unborn(reason)
            } else {
                Header::Bad(reason)
            }
        };
        if self.file_len < SEGMENT_HEADER_BYTES {
            return Ok(missing(format!(
                "{} bytes, shorter than the {SEGMENT_HEADER_BYTES}-byte segment header",
                self.file_len
            )));
        }
        let mut header = [0; SEGMENT_HEADER_BYTES as usize];
        self.reader.get_ref().read_exact_at(&mut header, 0)?;
        if header.iter().all(|&b| b == 0) && self.is_zero(0, self.file_len)? {
            return Ok(missing(format!("all {} bytes are zero", self.file_len)));
        }
        Ok(match check_segment_header(&header, id) {
            Ok(()) => Header::Valid,
            Err(reason) => Header::Bad(reason),
        })
    }

    /// Checks the records from `from` (a record boundary) on, up to the first bad one.
    pub(super) fn records(&mut self, from: u64, probe: Option<u64>) -> io::Result<Run> {
        self.reader.seek(SeekFrom::Start(from))?;
        let mut run = Run {
            records: 0,
            valid_end: from,
            probe_boundary: None,
            stop: Stop::End,
        };
        loop {
            let offset = run.valid_end;
            if probe.is_some_and(|p| offset <= p) {
                run.probe_boundary = Some(offset);
            }
            match self.check_record(offset)? {
                Check::Record { end } => {
                    run.records += 1;
                    run.valid_end = end;
                }
                Check::End => return Ok(run),
                Check::Bad {
                    torn,
                    frame_end,
                    reason,
                } => {
                    let near_end = self.file_len - offset <= self.max_torn_bytes;
                    run.stop = if torn && near_end && self.tail != Tail::Sealed {
                        Stop::Torn { offset, reason }
                    } else {
                        Stop::Corrupt {
                            offset,
                            frame_end,
                            reason,
                        }
                    };
                    return Ok(run);
                }
            }
        }
    }

    /// Whether a valid record starts at `at`, or the file ends there: after a bad record
    /// whose length was believed, this says whether the length pointed at a real boundary.
    pub(super) fn boundary_at(&mut self, at: u64) -> io::Result<bool> {
        self.reader.seek(SeekFrom::Start(at))?;
        Ok(matches!(
            self.check_record(at)?,
            Check::Record { .. } | Check::End
        ))
    }

    /// The bytes `[at, at + len)`, cut at the end of the file.
    pub(super) fn bytes(&self, at: u64, len: u64) -> io::Result<Vec<u8>> {
        let len = len.min(self.file_len.saturating_sub(at));
        let mut bytes = vec![0; len as usize];
        self.reader.get_ref().read_exact_at(&mut bytes, at)?;
        Ok(bytes)
    }

    /// Whether every byte in `[from, to)` is zero.
    pub(super) fn is_zero(&self, from: u64, to: u64) -> io::Result<bool> {
        let mut chunk = vec![0; ZERO_CHECK_BYTES.min(to.saturating_sub(from)) as usize];
        let mut at = from;
        while at < to {
            let len = (to - at).min(ZERO_CHECK_BYTES) as usize;
            self.reader.get_ref().read_exact_at(&mut chunk[..len], at)?;
            if chunk[..len].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += len as u64;
        }
        Ok(true)
    }

    /// Rule (d): whether `[offset, end)` overlaps an aligned sector that is zero from
    /// `offset` (or its start) to its end (or the end of the file).
    fn torn_by_power_loss(&self, offset: u64, end: u64) -> io::Result<bool> {
        let mut sector = offset / SECTOR_BYTES * SECTOR_BYTES;
        while sector < end.min(self.file_len) {
            let next = sector + SECTOR_BYTES;
            if self.is_zero(sector.max(offset), next.min(self.file_len))? {
                return Ok(true);
            }
            sector = next;
        }
        Ok(false)
    }

    /// Checks the record at `offset`, where the reader is positioned.
    fn check_record(&mut self, offset: u64) -> io::Result<Check> {
        let remaining = self.file_len - offset;
        if remaining == 0 {
            return Ok(Check::End);
        }
        if remaining < FRAME_HEADER_BYTES {
            let reason = format!(
                "{remaining} bytes left, less than a {FRAME_HEADER_BYTES}-byte frame header"
            );
            return Ok(Check::bad(true, None, reason));
        }
        let mut raw = [0; FRAME_HEADER_BYTES as usize];
        self.reader.read_exact(&mut raw)?;
        let frame = FrameHeader::decode(raw);
        if frame.len == 0 {
            if self.is_zero(offset, self.file_len)? {
                let reason = format!("the last {remaining} bytes are zero");
                return Ok(Check::bad(true, None, reason));
            }
            let torn = self.torn_by_power_loss(offset, offset + FRAME_HEADER_BYTES)?;
            let reason = if torn {
                "record header zeroed by a torn write (a zero sector), data follows"
            } else {
                "record length is 0 but non-zero bytes follow"
            };
            return Ok(Check::bad(torn, None, reason.to_owned()));
        }
        let end = offset + FRAME_HEADER_BYTES + u64::from(frame.len);
        if end > self.file_len {
            let reason = format!(
                "record length {} runs past the end of the file ({} bytes)",
                frame.len, self.file_len
            );
            return Ok(Check::bad(true, None, reason));
        }
        if self.payload_crc(frame)? != frame.crc {
            let torn = self.torn_by_power_loss(offset, end)?;
            let reason = format!(
                "checksum mismatch in a record of {} bytes ({} bytes follow it{})",
                frame.len,
                self.file_len - end,
                if torn {
                    "; a sector of it is zeroed"
                } else {
                    ""
                }
            );
            return Ok(Check::bad(torn, Some(end), reason));
        }
        Ok(Check::Record { end })
    }

    /// CRC of the frame's length bytes and payload, reading the payload through the buffer.
    fn payload_crc(&mut self, frame: FrameHeader) -> io::Result<u32> {
        let mut crc = frame.crc_seed();
        let mut left = frame.len as usize;
        while left > 0 {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let take = chunk.len().min(left);
            crc = crc_extend(crc, &chunk[..take]);
            self.reader.consume(take);
            left -= take;
        }
        Ok(crc)
    }
}

/// Result of looking at the bytes at one offset.
enum Check {
    /// A valid record ending at `end`.
    Record { end: u64 },
    /// The end of the file, exactly at a record boundary.
    End,
    /// A bad record; `torn` says whether a crash could have left it (rules a-d).
    Bad {
        torn: bool,
        frame_end: Option<u64>,
        reason: String,
    },
}

impl Check {
    fn bad(torn: bool, frame_end: Option<u64>, reason: String) -> Check {
        Check::Bad {
            torn,
            frame_end,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::wal::format::{encode_segment_header, push_frame};

    /// A segment of `records` 1000-byte records, returned with the offsets of the records.
    fn segment(dir: &Path, records: usize) -> (std::path::PathBuf, Vec<u64>) {
        let mut bytes = encode_segment_header(SegmentId(1)).to_vec();
        let mut offsets = Vec::new();
        for i in 0..records {
            offsets.push(bytes.len() as u64);
            push_frame(&mut bytes, &[(i + 1) as u8; 1000]);
        }
        let path = dir.join("segment");
        fs::write(&path, bytes).unwrap();
        (path, offsets)
    }

    fn zero(path: &Path, from: u64, to: u64) {
        let mut bytes = fs::read(path).unwrap();
        bytes[from as usize..to as usize].fill(0);
        fs::write(path, bytes).unwrap();
    }

    fn stop(path: &Path, tail: Tail, max_torn_bytes: u64) -> Stop {
        let mut scanner = Scanner::open(path, tail, max_torn_bytes).unwrap();
        assert_eq!(scanner.header(SegmentId(1)).unwrap(), Header::Valid);
        scanner.records(SEGMENT_HEADER_BYTES, None).unwrap().stop
    }

    #[test]
    fn a_zeroed_sector_is_a_tear_only_near_the_end_of_the_newest_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (path, offsets) = segment(dir.path(), 12);
        // Record 4 holds byte 4096; zero one page from there, as a lost page write does.
        zero(&path, 4096, 8192);
        let newest = Tail::Newest { recorded: true };
        assert!(
            matches!(stop(&path, newest, 1 << 20), Stop::Torn { offset, .. } if offset == offsets[4])
        );
        // Farther from the end than one group write: not a tear.
        let far = fs::metadata(&path).unwrap().len() - offsets[4] - 1;
        assert!(matches!(
            stop(&path, newest, far),
            Stop::Corrupt { offset, frame_end: Some(_), .. } if offset == offsets[4]
        ));
        assert!(matches!(
            stop(&path, Tail::Sealed, 1 << 20),
            Stop::Corrupt { .. }
        ));
    }

    #[test]
    fn every_tear_rule_holds_only_within_one_group_write_of_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let newest = Tail::Newest { recorded: true };
        // (b): record 2's length runs past the end of the file.
        let (path, offsets) = segment(dir.path(), 12);
        let mut bytes = fs::read(&path).unwrap();
        let at = offsets[2] as usize;
        bytes[at..at + 4].copy_from_slice(&0x00FF_FFFF_u32.to_le_bytes());
        fs::write(&path, &bytes).unwrap();
        let to_end = bytes.len() as u64 - offsets[2];
        assert!(matches!(stop(&path, newest, to_end), Stop::Torn { .. }));
        assert!(matches!(
            stop(&path, newest, to_end - 1),
            Stop::Corrupt {
                frame_end: None,
                ..
            }
        ));
        // (c): zeros from record 2 to the end.
        zero(&path, offsets[2], bytes.len() as u64);
        assert!(matches!(stop(&path, newest, to_end), Stop::Torn { .. }));
        assert!(matches!(
            stop(&path, newest, to_end - 1),
            Stop::Corrupt { .. }
        ));
    }

    #[test]
    fn zeros_that_do_not_fill_an_aligned_sector_are_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let (path, offsets) = segment(dir.path(), 12);
        // The last 48 bytes of record 3 (3040..4048) are zero, but none of the aligned
        // sectors it overlaps is: 3584..4000 still holds data. A bit flip or a bad write,
        // not a tear.
        zero(&path, 4000, 4048);
        let newest = Tail::Newest { recorded: true };
        assert!(matches!(
            stop(&path, newest, 1 << 20),
            Stop::Corrupt { offset, .. } if offset == offsets[3]
        ));
    }
}
