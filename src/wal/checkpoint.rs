//! The `confirmed` checkpoint: the position replay starts from after a restart.
//!
//! Layout (28 bytes):
//! ```text
//! +0                   +8                  +16                 +24           +28
//! +--------------------+-------------------+-------------------+-------------+
//! | magic "TBWALCP\x01" | segment id u64 LE | offset u64 LE     | crc32c u32  |
//! +--------------------+-------------------+-------------------+-------------+
//!   crc = CRC32C(bytes 0..24)
//! ```
//! Invariants: the file is only ever replaced whole (write `confirmed.tmp`, fsync it, rename
//! over `confirmed`, fsync the directory), so a crash leaves either the old or the new
//! position, never a mix; a torn or foreign file fails its CRC instead of silently moving
//! replay. The offset is never inside the segment header.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::WalError;
use super::format::{sync_dir, SEGMENT_HEADER_BYTES};
use super::types::{Position, SegmentId};

/// Name of the checkpoint file inside the WAL directory.
const CHECKPOINT_FILE: &str = "confirmed";
/// Name of the file a new checkpoint is written to before it is renamed into place.
const CHECKPOINT_TEMP_FILE: &str = "confirmed.tmp";
/// Magic at the start of the checkpoint: the format name and a version byte.
const CHECKPOINT_MAGIC: [u8; 8] = *b"TBWALCP\x01";
/// Total size of the checkpoint file.
const CHECKPOINT_BYTES: usize = 28;
/// Size of the checksummed part (everything before the CRC).
const CHECKPOINT_BODY_BYTES: usize = 24;

/// Path of the checkpoint file in `dir`.
pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

/// Reads the checkpoint; `None` when there is none yet (a new log).
pub(super) fn read(dir: &Path) -> Result<Option<Position>, WalError> {
    let path = path(dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(WalError::io(&path, err)),
    };
    decode(&bytes)
        .map(Some)
        .map_err(|reason| WalError::BadCheckpoint { path, reason })
}

/// Replaces the checkpoint with `position`, atomically and durably.
pub(super) fn write(dir: &Path, position: Position) -> Result<(), WalError> {
    let temp = dir.join(CHECKPOINT_TEMP_FILE);
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(&encode(position))?;
            file.sync_all()
        });
    written.map_err(|e| WalError::io(&temp, e))?;
    let path = path(dir);
    fs::rename(&temp, &path).map_err(|e| WalError::io(&path, e))?;
    sync_dir(dir)
}

/// Removes a temp file left by a crash in the middle of [`write`]; the real checkpoint is
/// still the old one then, so the leftover is garbage.
pub(super) fn remove_stale_temp(dir: &Path) -> Result<(), WalError> {
    let temp = dir.join(CHECKPOINT_TEMP_FILE);
    match fs::remove_file(&temp) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(WalError::io(&temp, err)),
        _ => Ok(()),
    }
}

fn encode(position: Position) -> [u8; CHECKPOINT_BYTES] {
    let mut bytes = [0; CHECKPOINT_BYTES];
    bytes[..8].copy_from_slice(&CHECKPOINT_MAGIC);
    bytes[8..16].copy_from_slice(&position.segment.0.to_le_bytes());
    bytes[16..24].copy_from_slice(&position.offset.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..CHECKPOINT_BODY_BYTES]);
    bytes[CHECKPOINT_BODY_BYTES..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Result<Position, String> {
    if bytes.len() != CHECKPOINT_BYTES {
        return Err(format!(
            "{} bytes instead of {CHECKPOINT_BYTES}",
            bytes.len()
        ));
    }
    let word = |at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let mut crc_le = [0; 4];
    crc_le.copy_from_slice(&bytes[CHECKPOINT_BODY_BYTES..]);
    if bytes[..8] != CHECKPOINT_MAGIC {
        return Err("bad magic".to_owned());
    }
    if crc32c::crc32c(&bytes[..CHECKPOINT_BODY_BYTES]) != u32::from_le_bytes(crc_le) {
        return Err("checksum mismatch".to_owned());
    }
    let position = Position {
        segment: SegmentId(word(8)),
        offset: word(16),
    };
    if position.offset < SEGMENT_HEADER_BYTES {
        return Err(format!("{position} points into the segment header"));
    }
    Ok(position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_replace_each_other() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let first = Position {
            segment: SegmentId(4),
            offset: 1000,
        };
        write(dir.path(), first).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(first));
        let second = Position::start_of(SegmentId(5));
        write(dir.path(), second).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(second));
        assert!(!dir.path().join(CHECKPOINT_TEMP_FILE).exists());
    }

    #[test]
    fn damaged_checkpoints_are_rejected() {
        let good = encode(Position::start_of(SegmentId(2)));
        let mut flipped = good;
        flipped[17] ^= 1;
        let inside_header = encode(Position {
            segment: SegmentId(2),
            offset: 3,
        });
        for bad in [&good[..27], &flipped[..], &inside_header[..], &[0; 28][..]] {
            assert!(decode(bad).is_err());
        }
        let dir = tempfile::tempdir().unwrap();
        fs::write(path(dir.path()), b"garbage").unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(matches!(err, WalError::BadCheckpoint { .. }), "{err}");
    }
}
