//! On-disk format of segments and record frames, and the file primitives built on it.
//!
//! Everything that knows byte layouts lives here so the writer, the recovery scan and the
//! reader cannot disagree. Invariants:
//! - a segment is named `{id:020}.seg` and starts with [`SEGMENT_HEADER_BYTES`] bytes:
//!   [`SEGMENT_MAGIC`] then the id as u64 LE, so a file renamed by hand is detected;
//! - a frame is `len u32 LE | crc u32 LE | payload` with `len > 0`, and the CRC32C covers
//!   the length bytes too, so neither a zero-filled region nor a bit flip in a length
//!   validates;
//! - [`create_segment`] syncs the header and the directory entry before it returns, so a
//!   newest segment without a valid header can only be one whose creation was interrupted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::WalError;
use super::types::SegmentId;

/// Magic at the start of every segment: the format name and a version byte.
pub(super) const SEGMENT_MAGIC: [u8; 8] = *b"TBWAL\0\0\x01";
/// Size of the segment header (magic + id); the first record starts at this offset.
pub(super) const SEGMENT_HEADER_BYTES: u64 = 16;
/// Size of the frame header (length + CRC) in front of every payload.
pub(super) const FRAME_HEADER_BYTES: u64 = 8;
/// File name suffix of segments; anything else in the directory is not a segment.
const SEGMENT_SUFFIX: &str = ".seg";
/// File name suffix of a segment being rewritten by a repair (`{id:020}.seg.repair`); a
/// leftover is garbage from a crash during the repair, whose original is still in place.
const REWRITE_SUFFIX: &str = ".seg.repair";
/// Zero-padded width of segment numbers, enough for any u64, so names sort like ids.
const SEGMENT_NAME_DIGITS: usize = 20;

/// Path of segment `id` in `dir`.
pub(super) fn segment_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!(
        "{:0width$}{SEGMENT_SUFFIX}",
        id.0,
        width = SEGMENT_NAME_DIGITS
    ))
}

/// Path of the file segment `id` is rewritten to before it replaces the segment.
pub(super) fn rewrite_path(dir: &Path, id: SegmentId) -> PathBuf {
    dir.join(format!(
        "{:0width$}{REWRITE_SUFFIX}",
        id.0,
        width = SEGMENT_NAME_DIGITS
    ))
}

/// Removes rewrite files left by a crash during a repair.
pub(super) fn remove_stale_rewrites(dir: &Path) -> Result<(), WalError> {
    for entry in fs::read_dir(dir).map_err(|e| WalError::io(dir, e))? {
        let entry = entry.map_err(|e| WalError::io(dir, e))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.ends_with(REWRITE_SUFFIX))
        {
            fs::remove_file(entry.path()).map_err(|e| WalError::io(entry.path(), e))?;
        }
    }
    Ok(())
}

/// The id in a segment file name, or `None` for any other file.
pub(super) fn parse_segment_name(name: &str) -> Option<SegmentId> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(SegmentId)
}

/// The ids of all segment files in `dir`, ascending.
pub(super) fn list_segments(dir: &Path) -> Result<Vec<SegmentId>, WalError> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| WalError::io(dir, e))? {
        let entry = entry.map_err(|e| WalError::io(dir, e))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The 16 header bytes of segment `id`.
pub(super) fn encode_segment_header(id: SegmentId) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut header = [0; SEGMENT_HEADER_BYTES as usize];
    header[..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..].copy_from_slice(&id.0.to_le_bytes());
    header
}

/// Checks a segment header against the id its file name promises.
pub(super) fn check_segment_header(
    header: &[u8; SEGMENT_HEADER_BYTES as usize],
    expected: SegmentId,
) -> Result<(), String> {
    let (magic, id_le) = header.split_at(SEGMENT_MAGIC.len());
    if magic != SEGMENT_MAGIC {
        return Err(format!(
            "bad segment magic \"{}\" (expected \"{}\")",
            magic.escape_ascii(),
            SEGMENT_MAGIC.escape_ascii()
        ));
    }
    let mut id_bytes = [0; 8];
    id_bytes.copy_from_slice(id_le);
    let id = u64::from_le_bytes(id_bytes);
    if id != expected.0 {
        return Err(format!(
            "header names segment {id} but the file is segment {expected}"
        ));
    }
    Ok(())
}

/// Creates segment `id` holding only its header, synced together with the directory entry,
/// so records written to it later can never sit in a file that a crash makes vanish.
pub(super) fn create_segment(dir: &Path, id: SegmentId) -> Result<File, WalError> {
    let path = segment_path(dir, id);
    let created = write_new_segment(&path, id).and_then(|file| {
        File::open(dir).and_then(|d| d.sync_all())?;
        Ok(file)
    });
    created.map_err(|source| {
        // Best effort: a leftover header-only file is harmless (recovery treats it as an
        // empty segment and the next creation truncates it), so a failed removal is ignored.
        let _ = fs::remove_file(&path);
        WalError::io(&path, source)
    })
}

fn write_new_segment(path: &Path, id: SegmentId) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(&encode_segment_header(id))?;
    file.sync_all()?;
    Ok(file)
}

/// Syncs a directory so that creations, renames and removals in it survive a crash.
pub(super) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WalError::io(dir, e))
}

/// Size of the frame holding a payload of `payload_len` bytes.
pub(super) fn frame_bytes(payload_len: usize) -> u64 {
    FRAME_HEADER_BYTES + payload_len as u64
}

/// Appends the frame of `payload` to `buf`. The caller has checked that the payload is
/// non-empty and at most `max_record_bytes` (a u32), so the length cast cannot truncate.
pub(super) fn push_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    let len_le = (payload.len() as u32).to_le_bytes();
    let crc = crc_extend(crc32c::crc32c(&len_le), payload);
    buf.extend_from_slice(&len_le);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Continues a CRC32C over more bytes; the reader and the scan feed payloads in pieces.
pub(super) fn crc_extend(crc: u32, bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, bytes)
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FrameHeader {
    /// Declared payload length.
    pub(super) len: u32,
    /// Stored CRC32C over the length bytes and the payload.
    pub(super) crc: u32,
}

impl FrameHeader {
    /// Splits the 8 header bytes into length and CRC.
    pub(super) fn decode(raw: [u8; FRAME_HEADER_BYTES as usize]) -> FrameHeader {
        let [l0, l1, l2, l3, c0, c1, c2, c3] = raw;
        FrameHeader {
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            crc: u32::from_le_bytes([c0, c1, c2, c3]),
        }
    }

    /// The CRC state after the length bytes, to be extended with the payload.
    pub(super) fn crc_seed(self) -> u32 {
        crc32c::crc32c(&self.len.to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort_like_ids() {
        let path = segment_path(Path::new("/w"), SegmentId(1));
        assert_eq!(path, Path::new("/w/00000000000000000001.seg"));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_eq!(parse_segment_name(name), Some(SegmentId(1)));
        for other in [
            "confirmed",
            "1.seg",
            "0000000000000000000x.seg",
            "99999999999999999999.seg",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }

    #[test]
    fn headers_check_magic_and_id() {
        let header = encode_segment_header(SegmentId(7));
        assert_eq!(check_segment_header(&header, SegmentId(7)), Ok(()));
        assert!(check_segment_header(&header, SegmentId(8)).is_err());
        let mut bad = header;
        bad[0] = b'X';
        assert!(check_segment_header(&bad, SegmentId(7)).is_err());
    }

    #[test]
    fn frames_decode_and_zeros_never_validate() {
        let mut buf = Vec::new();
        push_frame(&mut buf, b"hello");
        assert_eq!(buf.len() as u64, frame_bytes(5));
        let mut raw = [0; 8];
        raw.copy_from_slice(&buf[..8]);
        let header = FrameHeader::decode(raw);
        assert_eq!(header.len, 5);
        assert_eq!(crc_extend(header.crc_seed(), &buf[8..]), header.crc);
        let zeros = FrameHeader::decode([0; 8]);
        assert_ne!(crc_extend(zeros.crc_seed(), &[]), zeros.crc);
    }
}
