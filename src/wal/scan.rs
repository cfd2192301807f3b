//! Validation of one segment file during recovery, and the torn-tail rule.
//!
//! A crash can only damage the end of the NEWEST segment: the writer syncs before it
//! acknowledges, and it syncs a segment completely before creating the next one. So at the
//! first bad record at offset `o` of the newest segment, the damage is a torn tail (safe to
//! cut at `o`, no acknowledged record lies there) iff
//! (a) fewer than 8 bytes remain, (b) the declared length runs past EOF, (c) every byte
//! from `o` to EOF is zero (the file grew but the data never reached the disk), or
//! (d) the CRC fails and the record ends exactly at EOF.
//! Anything else — a bad record followed by more bytes, a zero length followed by non-zero
//! bytes, a bad header, or any damage in an older segment — is not what a crash leaves
//! behind and is reported as corruption. A newest segment shorter than its header, or all
//! zeros, is a segment whose creation was interrupted ("unborn").
//!
//! The file is streamed through one fixed buffer, so memory stays bounded by
//! [`SCAN_BUFFER_BYTES`] whatever the record sizes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use tracing::debug;

use super::error::WalError;
use super::format::{
    check_segment_header, crc_extend, FrameHeader, FRAME_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use super::types::SegmentId;

/// Read buffer of the scan: big enough for few syscalls, small enough to not matter.
const SCAN_BUFFER_BYTES: usize = 256 * 1024;

/// What the scan concluded about a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Every byte belongs to a valid record.
    Clean,
    /// The newest segment ends in an interrupted write from `valid_len` on.
    TornTail { reason: String },
    /// The newest segment never got its header: its creation was interrupted.
    Unborn { reason: String },
    /// Damage no crash explains, starting at `offset` (0 for the header).
    Corrupt { offset: u64, reason: String },
}

/// The outcome of scanning one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SegmentScan {
    /// Size of the file as found.
    pub(super) file_len: u64,
    /// End of the last valid record (the header's end if none).
    pub(super) valid_len: u64,
    /// The greatest record boundary at or before the probed offset, if one was asked for
    /// and the header is valid; recovery uses it to check the checkpoint.
    pub(super) probe_boundary: Option<u64>,
    /// The conclusion.
    pub(super) verdict: Verdict,
}

/// Scans segment `id` at `path`; `newest` enables the torn-tail rule.
pub(super) fn scan_segment(
    path: &Path,
    id: SegmentId,
    newest: bool,
    probe: Option<u64>,
) -> Result<SegmentScan, WalError> {
    let file = File::open(path).map_err(|e| WalError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| WalError::io(path, e))?.len();
    let mut scanner = Scanner {
        reader: BufReader::with_capacity(SCAN_BUFFER_BYTES, file),
        file_len,
        newest,
    };
    let mut scan = SegmentScan {
        file_len,
        valid_len: 0,
        probe_boundary: None,
        verdict: Verdict::Clean,
    };
    let io_error = |e| WalError::io(path, e);
    if let Some(verdict) = scanner.check_header(id).map_err(io_error)? {
        scan.verdict = verdict;
        return Ok(scan);
    }
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut records = 0_u64;
    loop {
        if probe.is_some_and(|p| offset <= p) {
            scan.probe_boundary = Some(offset);
        }
        scan.valid_len = offset;
        match scanner.check_record(offset).map_err(io_error)? {
            Step::Record { end } => {
                records += 1;
                offset = end;
            }
            Step::End => break,
            Step::Bad { torn, reason } => {
                scan.verdict = if torn && newest {
                    Verdict::TornTail { reason }
                } else {
                    Verdict::Corrupt { offset, reason }
                };
                break;
            }
        }
    }
    debug!(segment = %id, records, valid_bytes = scan.valid_len, file_bytes = file_len, "WAL segment scanned");
    Ok(scan)
}

/// Result of looking at the bytes at one offset.
enum Step {
    /// A valid record ending at `end`.
    Record { end: u64 },
    /// The end of the file, exactly at a record boundary.
    End,
    /// A bad record; `torn` says whether a crash could have left it (rules a-d).
    Bad { torn: bool, reason: String },
}

struct Scanner {
    reader: BufReader<File>,
    file_len: u64,
    newest: bool,
}

impl Scanner {
    /// `None` when the header is valid, otherwise what the segment is.
    fn check_header(&mut self, id: SegmentId) -> io::Result<Option<Verdict>> {
        if self.file_len < SEGMENT_HEADER_BYTES {
            let reason = format!(
                "{} bytes, shorter than the {SEGMENT_HEADER_BYTES}-byte segment header",
                self.file_len
            );
            return Ok(Some(if self.newest {
                Verdict::Unborn { reason }
            } else {
                Verdict::Corrupt { offset: 0, reason }
            }));
        }
        let mut header = [0; SEGMENT_HEADER_BYTES as usize];
        self.reader.read_exact(&mut header)?;
        if self.newest && header.iter().all(|&b| b == 0) && self.rest_is_zero()? {
            let reason = format!("all {} bytes are zero", self.file_len);
            return Ok(Some(Verdict::Unborn { reason }));
        }
        Ok(check_segment_header(&header, id)
            .err()
            .map(|reason| Verdict::Corrupt { offset: 0, reason }))
    }

    /// Checks the record at `offset`, where the reader is positioned.
    fn check_record(&mut self, offset: u64) -> io::Result<Step> {
        let remaining = self.file_len - offset;
        if remaining == 0 {
            return Ok(Step::End);
        }
        if remaining < FRAME_HEADER_BYTES {
            let reason = format!(
                "{remaining} bytes left, less than a {FRAME_HEADER_BYTES}-byte frame header"
            );
            return Ok(Step::Bad { torn: true, reason });
        }
        let mut raw = [0; FRAME_HEADER_BYTES as usize];
        self.reader.read_exact(&mut raw)?;
        let frame = FrameHeader::decode(raw);
        if frame.len == 0 {
            let zeros = raw == [0; FRAME_HEADER_BYTES as usize] && self.rest_is_zero()?;
            let reason = if zeros {
                format!("the last {remaining} bytes are zero")
            } else {
                "record length is 0 but non-zero bytes follow".to_owned()
            };
            return Ok(Step::Bad {
                torn: zeros,
                reason,
            });
        }
        let end = offset + FRAME_HEADER_BYTES + u64::from(frame.len);
        if end > self.file_len {
            let reason = format!(
                "record length {} runs past the end of the file ({} bytes)",
                frame.len, self.file_len
            );
            return Ok(Step::Bad { torn: true, reason });
        }
        if self.payload_crc(frame)? != frame.crc {
            let following = self.file_len - end;
            let reason = format!(
                "checksum mismatch in a record of {} bytes ({following} bytes follow it)",
                frame.len
            );
            return Ok(Step::Bad {
                torn: following == 0,
                reason,
            });
        }
        Ok(Step::Record { end })
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

    /// Whether every byte from the reader's position to EOF is zero.
    fn rest_is_zero(&mut self) -> io::Result<bool> {
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                return Ok(true);
            }
            if chunk.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            let taken = chunk.len();
            self.reader.consume(taken);
        }
    }
}
