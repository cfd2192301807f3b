//! The checkpoint file `confirmed`: where replay starts after a restart, and the newest segment
//! ever created, so that losing the end of the log is noticed.
//!
//! Layout: an 8 KiB file holding two slots, at offsets 0 and 4096 (different pages and sectors,
//! so one torn write cannot reach both):
//! ```text
//! +0                   +8            +16           +24           +32           +40     +44
//! +--------------------+-------------+-------------+-------------+-------------+-------+
//! | magic "TBWALCP\x02" | sequence    | confirmed   | confirmed   | newest      | crc32c|
//! |                     | u64 LE      | segment u64 | offset u64  | segment u64 | u32   |
//! +--------------------+-------------+-------------+-------------+-------------+-------+
//!   crc = CRC32C(bytes 0..40); newest 0 means "not known"
//! ```
//! Invariants:
//! - once created, the file is only overwritten in place: update `n` writes slot `n % 2` and is
//!   synced before it counts. An update therefore needs no new file descriptor (the file stays
//!   open) and, on file systems that overwrite in place (ext4, XFS, tmpfs), no free space, so
//!   the log can be confirmed, and its segments deleted, on a full disk or with every
//!   descriptor taken (copy-on-write file systems such as btrfs or ZFS need a block for any
//!   write: there a full disk makes confirms fail, retryably, until space frees up);
//! - the valid slot with the higher sequence is the checkpoint. A torn update damages only the
//!   slot being written, and the other still holds the previous state: replay then starts a
//!   little earlier and some records reach the store twice, which writes tolerate;
//! - the file is created whole (written to `confirmed.tmp`, synced, renamed over, directory
//!   synced), so it exists complete or not at all;
//! - the confirmed offset never points into a segment header.
//!
//! The first format (a single 28-byte record with magic `TBWALCP\x01`) is still read; opening
//! the log rewrites it in this one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::WalError;
use super::format::{sync_dir, SEGMENT_HEADER_BYTES};
use super::types::{Position, SegmentId};

/// Name of the checkpoint file inside the WAL directory.
const CHECKPOINT_FILE: &str = "confirmed";
/// Name of the file a new checkpoint file is written to before it is renamed into place.
const CHECKPOINT_TEMP_FILE: &str = "confirmed.tmp";
/// Magic at the start of every slot: the format name and a version byte.
const SLOT_MAGIC: [u8; 8] = *b"TBWALCP\x02";
/// Distance between the two slots, and so the size of each slot's page.
const SLOT_STRIDE_BYTES: u64 = 4096;
/// Size of the whole file: two slot pages.
const FILE_BYTES: usize = 2 * SLOT_STRIDE_BYTES as usize;
/// Size of one slot.
const SLOT_BYTES: usize = 44;
/// Size of the checksummed part of a slot (everything before the CRC).
const SLOT_BODY_BYTES: usize = 40;
/// Magic of the first format.
const V1_MAGIC: [u8; 8] = *b"TBWALCP\x01";
/// Size of a first-format file.
const V1_BYTES: usize = 28;

/// What the checkpoint holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Checkpoint {
    /// Everything before this position is in the store.
    pub(super) confirmed: Position,
    /// The newest segment ever created; `None` when not known (a first-format file). Its
    /// creation is recorded before any record goes into it.
    pub(super) newest: Option<SegmentId>,
}

/// Path of the checkpoint file in `dir`.
pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

/// Reads the checkpoint; `None` when there is none yet (a new log).
pub(super) fn read(dir: &Path) -> Result<Option<Checkpoint>, WalError> {
    let path = path(dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(WalError::io(&path, err)),
    };
    decode_file(&bytes)
        .map(|(_, checkpoint)| Some(checkpoint))
        .map_err(|reason| WalError::BadCheckpoint { path, reason })
}

/// Removes a temp file left by a crash while a checkpoint file was being created; the real
/// one is still the old one then (or none), so the leftover is garbage.
pub(super) fn remove_stale_temp(dir: &Path) -> Result<(), WalError> {
    let temp = dir.join(CHECKPOINT_TEMP_FILE);
    match fs::remove_file(&temp) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(WalError::io(&temp, err)),
        _ => Ok(()),
    }
}

/// The open checkpoint file, updated in place.
#[derive(Debug)]
pub(super) struct CheckpointFile {
    path: PathBuf,
    file: File,
    /// Sequence of the slot holding `current`.
    sequence: u64,
    current: Checkpoint,
}

impl CheckpointFile {
    /// Opens the checkpoint for updates and makes it hold `state`: in place when the file is
    /// in the current format with a valid slot, otherwise by creating the file anew (which
    /// needs 8 KiB of free space; only a new log or a damaged or first-format file does).
    pub(super) fn open(dir: &Path, state: Checkpoint) -> Result<CheckpointFile, WalError> {
        let path = path(dir);
        let existing = OpenOptions::new().read(true).write(true).open(&path);
        if let Ok(file) = existing {
            let mut bytes = Vec::with_capacity(FILE_BYTES);
            io::Read::read_to_end(&mut &file, &mut bytes).map_err(|e| WalError::io(&path, e))?;
            if let (FILE_BYTES, Ok((sequence, current))) = (bytes.len(), decode_file(&bytes)) {
                let mut opened = CheckpointFile {
                    path,
                    file,
                    sequence,
                    current,
                };
                if current != state {
                    opened.store(state)?;
                }
                return Ok(opened);
            }
        }
        create(dir, &path, state)
    }

    /// What the checkpoint holds now.
    pub(super) fn current(&self) -> Checkpoint {
        self.current
    }

    /// Replaces the checkpoint with `state` durably, overwriting the older slot. On error the
    /// newer slot still holds the previous state, and a retry writes the same slot again.
    pub(super) fn store(&mut self, state: Checkpoint) -> Result<(), WalError> {
        let sequence = self.sequence + 1;
        let offset = (sequence % 2) * SLOT_STRIDE_BYTES;
        self.file
            .write_all_at(&encode_slot(sequence, state), offset)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| WalError::io(&self.path, e))?;
        self.sequence = sequence;
        self.current = state;
        Ok(())
    }
}

/// Creates the file holding `state` in slot 1 (slot 0 stays invalid until the next update).
fn create(dir: &Path, path: &Path, state: Checkpoint) -> Result<CheckpointFile, WalError> {
    let temp = dir.join(CHECKPOINT_TEMP_FILE);
    let mut bytes = vec![0; FILE_BYTES];
    let slot = SLOT_STRIDE_BYTES as usize;
    bytes[slot..slot + SLOT_BYTES].copy_from_slice(&encode_slot(1, state));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_all()
        });
    written.map_err(|e| WalError::io(&temp, e))?;
    fs::rename(&temp, path).map_err(|e| WalError::io(path, e))?;
    sync_dir(dir)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| WalError::io(path, e))?;
    Ok(CheckpointFile {
        path: path.to_path_buf(),
        file,
        sequence: 1,
        current: state,
    })
}

fn encode_slot(sequence: u64, state: Checkpoint) -> [u8; SLOT_BYTES] {
    let mut bytes = [0; SLOT_BYTES];
    bytes[..8].copy_from_slice(&SLOT_MAGIC);
    bytes[8..16].copy_from_slice(&sequence.to_le_bytes());
    bytes[16..24].copy_from_slice(&state.confirmed.segment.0.to_le_bytes());
    bytes[24..32].copy_from_slice(&state.confirmed.offset.to_le_bytes());
    bytes[32..40].copy_from_slice(&state.newest.map_or(0, |id| id.0).to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..SLOT_BODY_BYTES]);
    bytes[SLOT_BODY_BYTES..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// The checkpoint in a whole file of either format, with the sequence of its slot.
fn decode_file(bytes: &[u8]) -> Result<(u64, Checkpoint), String> {
    if bytes.len() == V1_BYTES {
        return decode_v1(bytes).map(|confirmed| {
            let newest = None;
            (0, Checkpoint { confirmed, newest })
        });
    }
    if bytes.len() != FILE_BYTES {
        return Err(format!(
            "{} bytes, neither {FILE_BYTES} nor the first format's {V1_BYTES}",
            bytes.len()
        ));
    }
    let slot = |index: u64| {
        let at = (index * SLOT_STRIDE_BYTES) as usize;
        decode_slot(&bytes[at..at + SLOT_BYTES])
    };
    match (slot(0), slot(1)) {
        (Ok(a), Ok(b)) => Ok(if a.0 > b.0 { a } else { b }),
        (Ok(only), Err(_)) | (Err(_), Ok(only)) => Ok(only),
        (Err(first), Err(second)) => Err(format!(
            "neither slot is valid (slot 0: {first}; slot 1: {second})"
        )),
    }
}

fn word(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn checked_crc(bytes: &[u8], body: usize) -> Result<(), String> {
    let mut crc_le = [0; 4];
    crc_le.copy_from_slice(&bytes[body..body + 4]);
    if crc32c::crc32c(&bytes[..body]) == u32::from_le_bytes(crc_le) {
        Ok(())
    } else {
        Err("checksum mismatch".to_owned())
    }
}

fn checked_position(segment: u64, offset: u64) -> Result<Position, String> {
    let position = Position {
        segment: SegmentId(segment),
        offset,
    };
    if offset < SEGMENT_HEADER_BYTES {
        return Err(format!("{position} points into the segment header"));
    }
    Ok(position)
}

fn decode_slot(bytes: &[u8]) -> Result<(u64, Checkpoint), String> {
    if bytes[..8] != SLOT_MAGIC {
        return Err("bad magic".to_owned());
    }
    checked_crc(bytes, SLOT_BODY_BYTES)?;
    let confirmed = checked_position(word(bytes, 16), word(bytes, 24))?;
    let newest = Some(SegmentId(word(bytes, 32))).filter(|id| id.0 != 0);
    Ok((word(bytes, 8), Checkpoint { confirmed, newest }))
}

fn decode_v1(bytes: &[u8]) -> Result<Position, String> {
    if bytes[..8] != V1_MAGIC {
        return Err("bad magic".to_owned());
    }
    checked_crc(bytes, 24)?;
    checked_position(word(bytes, 8), word(bytes, 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(segment: u64, offset: u64, newest: u64) -> Checkpoint {
        Checkpoint {
            confirmed: Position {
                segment: SegmentId(segment),
                offset,
            },
            newest: Some(SegmentId(newest)),
        }
    }

    #[test]
    fn checkpoints_round_trip_through_both_slots_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let mut file = CheckpointFile::open(dir.path(), state(4, 1000, 4)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(state(4, 1000, 4)));
        for (i, next) in [state(5, 16, 5), state(5, 16, 6), state(6, 90, 6)]
            .into_iter()
            .enumerate()
        {
            file.store(next).unwrap();
            assert_eq!(read(dir.path()).unwrap(), Some(next), "update {i}");
        }
        assert!(!dir.path().join(CHECKPOINT_TEMP_FILE).exists());
        assert_eq!(
            fs::metadata(path(dir.path())).unwrap().len(),
            FILE_BYTES as u64
        );
        drop(file);
        let reopened = CheckpointFile::open(dir.path(), state(6, 90, 6)).unwrap();
        assert_eq!(reopened.current(), state(6, 90, 6));
    }

    #[test]
    fn a_torn_slot_leaves_the_previous_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = CheckpointFile::open(dir.path(), state(2, 16, 2)).unwrap();
        file.store(state(2, 500, 3)).unwrap();
        // Update 2 went to slot 0; tear it as a power loss mid-write would.
        let mut bytes = fs::read(path(dir.path())).unwrap();
        bytes[20..SLOT_BYTES].fill(0);
        fs::write(path(dir.path()), &bytes).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(state(2, 16, 2)));
        // The next update overwrites the torn slot, never the one still valid.
        let mut file = CheckpointFile::open(dir.path(), state(2, 700, 3)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(state(2, 700, 3)));
        file.store(state(3, 16, 3)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(state(3, 16, 3)));
    }

    #[test]
    fn first_format_files_are_read_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut v1 = [0; V1_BYTES];
        v1[..8].copy_from_slice(&V1_MAGIC);
        v1[8..16].copy_from_slice(&7_u64.to_le_bytes());
        v1[16..24].copy_from_slice(&300_u64.to_le_bytes());
        let crc = crc32c::crc32c(&v1[..24]);
        v1[24..].copy_from_slice(&crc.to_le_bytes());
        fs::write(path(dir.path()), v1).unwrap();
        let old = read(dir.path()).unwrap().unwrap();
        assert_eq!(old.newest, None);
        assert_eq!(old.confirmed.offset, 300);
        CheckpointFile::open(dir.path(), state(7, 300, 7)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(state(7, 300, 7)));
        assert_eq!(
            fs::metadata(path(dir.path())).unwrap().len(),
            FILE_BYTES as u64
        );
    }

    #[test]
    fn damaged_checkpoints_are_rejected() {
        let good = encode_slot(1, state(2, 16, 2));
        let mut flipped = good;
        flipped[17] ^= 1;
        let inside_header = encode_slot(1, state(2, 3, 2));
        for bad in [&flipped[..], &inside_header[..], &[0; SLOT_BYTES][..]] {
            assert!(decode_slot(bad).is_err());
        }
        let dir = tempfile::tempdir().unwrap();
        for garbage in [&b"garbage"[..], &[0; FILE_BYTES][..]] {
            fs::write(path(dir.path()), garbage).unwrap();
            let err = read(dir.path()).unwrap_err();
            assert!(matches!(err, WalError::BadCheckpoint { .. }), "{err}");
        }
    }
}
