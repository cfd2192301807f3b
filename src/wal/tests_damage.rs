//! The damage table: every kind of on-disk damage, and what `open` must make of it.
//!
//! Each row damages a closed log of 20 records in the small layout (segment 1: records
//! 0..9, segment 2: 9..18, segment 3, the newest: 18..20) and states the outcome without
//! repair (the records readable, or the exact error) and the records readable with repair.
//! Every repaired log must then reopen cleanly without repair: repair leaves no damage.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use super::checkpoint;
use super::format::segment_path;
use super::tests_api::{
    append_all, payload, read_all, record_offset as at, small_config, FRAME_BYTES,
};
use super::*;

const RECORDS: usize = 20;

/// What `open` without repair must do.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// Open, with exactly these records (indices into the appended ones) readable.
    Records(Range<usize>),
    /// Fail with `Corrupt` naming this segment and offset.
    Corrupt(u64, u64),
    /// Fail with `MissingSegment { expected, found }`.
    Missing(u64, u64),
    /// Fail with `BadCheckpoint`.
    BadCheckpoint,
}

struct Case {
    name: &'static str,
    damage: fn(&Path),
    plain: Expect,
    repaired: Range<usize>,
}

fn seg(dir: &Path, id: u64) -> std::path::PathBuf {
    segment_path(dir, SegmentId(id))
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let mut content = fs::read(path).unwrap();
    let at = offset as usize;
    content[at..at + bytes.len()].copy_from_slice(bytes);
    fs::write(path, content).unwrap();
}

fn flip(path: &Path, offset: u64) {
    let content = fs::read(path).unwrap();
    patch(path, offset, &[content[offset as usize] ^ 0x40]);
}

fn cut(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn extend(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

// One row per line reads as a table; rustfmt would spread each row over eight lines.
#[rustfmt::skip]
const CASES: &[Case] = &[
    Case { name: "torn tail: half of the last record", damage: |d| cut(&seg(d, 3), at(1) + 54), plain: Expect::Records(0..19), repaired: 0..19 },
    Case { name: "torn tail: part of a frame header", damage: |d| cut(&seg(d, 3), at(1) + 5), plain: Expect::Records(0..19), repaired: 0..19 },
    Case { name: "bad CRC in the last record", damage: |d| flip(&seg(d, 3), at(1) + 60), plain: Expect::Records(0..19), repaired: 0..19 },
    Case { name: "bad CRC mid newest segment", damage: |d| flip(&seg(d, 3), at(0) + 20), plain: Expect::Corrupt(3, at(0)), repaired: 0..18 },
    Case { name: "bad CRC in an older segment", damage: |d| flip(&seg(d, 1), at(4) + 20), plain: Expect::Corrupt(1, at(4)), repaired: 0..4 },
    Case { name: "huge length in the last record", damage: |d| patch(&seg(d, 3), at(1), &0xFFFF_FFF0_u32.to_le_bytes()), plain: Expect::Records(0..19), repaired: 0..19 },
    Case { name: "bad length mid-segment", damage: |d| patch(&seg(d, 3), at(0), &50_u32.to_le_bytes()), plain: Expect::Corrupt(3, at(0)), repaired: 0..18 },
    Case { name: "huge length in an older segment", damage: |d| patch(&seg(d, 2), at(3), &0x7FFF_FFFF_u32.to_le_bytes()), plain: Expect::Corrupt(2, at(3)), repaired: 0..12 },
    Case { name: "zero length followed by data", damage: |d| patch(&seg(d, 3), at(0), &[0; 4]), plain: Expect::Corrupt(3, at(0)), repaired: 0..18 },
    Case { name: "older segment cut short", damage: |d| cut(&seg(d, 2), at(4) + 30), plain: Expect::Corrupt(2, at(4)), repaired: 0..13 },
    Case { name: "4 KiB zero tail, newest", damage: |d| extend(&seg(d, 3), &[0; 4096]), plain: Expect::Records(0..20), repaired: 0..20 },
    Case { name: "4 KiB zero tail, older", damage: |d| extend(&seg(d, 1), &[0; 4096]), plain: Expect::Corrupt(1, at(9)), repaired: 0..9 },
    Case { name: "missing middle segment", damage: |d| fs::remove_file(seg(d, 2)).unwrap(), plain: Expect::Missing(2, 3), repaired: 0..9 },
    Case { name: "bad magic, older segment", damage: |d| patch(&seg(d, 2), 0, b"XXXX"), plain: Expect::Corrupt(2, 0), repaired: 0..9 },
    Case { name: "bad magic, newest segment", damage: |d| patch(&seg(d, 3), 0, b"XXXX"), plain: Expect::Corrupt(3, 0), repaired: 0..18 },
    Case { name: "header names another segment", damage: |d| patch(&seg(d, 2), 8, &7_u64.to_le_bytes()), plain: Expect::Corrupt(2, 0), repaired: 0..9 },
    Case { name: "empty older segment file", damage: |d| cut(&seg(d, 2), 0), plain: Expect::Corrupt(2, 0), repaired: 0..9 },
    Case { name: "empty newest segment file", damage: |d| fs::write(seg(d, 4), b"").unwrap(), plain: Expect::Records(0..20), repaired: 0..20 },
    Case { name: "newest segment, partial header", damage: |d| fs::write(seg(d, 4), b"TBWAL\0\0").unwrap(), plain: Expect::Records(0..20), repaired: 0..20 },
    Case { name: "newest segment, zeros only", damage: |d| fs::write(seg(d, 4), [0; 4096]).unwrap(), plain: Expect::Records(0..20), repaired: 0..20 },
    Case { name: "garbled checkpoint", damage: |d| fs::write(checkpoint::path(d), b"garbage").unwrap(), plain: Expect::BadCheckpoint, repaired: 0..20 },
    Case { name: "checkpoint inside a record", damage: |d| checkpoint::write(d, Position { segment: SegmentId(2), offset: at(2) + 3 }).unwrap(), plain: Expect::BadCheckpoint, repaired: 11..20 },
    Case { name: "checkpoint segment missing", damage: |d| { checkpoint::write(d, Position::start_of(SegmentId(2))).unwrap(); fs::remove_file(seg(d, 2)).unwrap() }, plain: Expect::Missing(2, 3), repaired: 18..20 },
];

/// A closed log of [`RECORDS`] records with `damage` applied.
fn damaged_log(damage: fn(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(small_config(dir.path())).unwrap();
    let payloads: Vec<_> = (0..RECORDS).map(payload).collect();
    append_all(&wal, &payloads);
    wal.close().unwrap();
    // The first open created segment 1 and rotation made 2 and 3: 3 is the newest.
    assert!(!seg(dir.path(), 4).exists());
    damage(dir.path());
    dir
}

/// The row outcome an error stands for, if it is one of the expected kinds.
fn as_expect(err: &WalError) -> Option<Expect> {
    match err {
        WalError::Corrupt {
            segment, offset, ..
        } => Some(Expect::Corrupt(segment.0, *offset)),
        WalError::MissingSegment { expected, found } => Some(Expect::Missing(expected.0, found.0)),
        WalError::BadCheckpoint { .. } => Some(Expect::BadCheckpoint),
        _ => None,
    }
}

fn expected_payloads(range: &Range<usize>) -> Vec<Vec<u8>> {
    range.clone().map(payload).collect()
}

fn assert_payloads(wal: &Wal, expected: &[Vec<u8>], case: &str) {
    let found: Vec<Vec<u8>> = read_all(wal).into_iter().map(|r| r.payload).collect();
    assert_eq!(found.len(), expected.len(), "{case}: record count");
    assert!(found == expected, "{case}: record contents");
}

#[test]
fn damage_table() {
    for case in CASES {
        let dir = damaged_log(case.damage);
        let outcome = Wal::open(small_config(dir.path()));
        match (outcome, &case.plain) {
            (Ok(wal), Expect::Records(range)) => {
                assert_payloads(&wal, &expected_payloads(range), case.name);
            }
            (Ok(_), expected) => panic!("{}: expected {expected:?}, open succeeded", case.name),
            (Err(err), expected) => {
                assert_eq!(
                    as_expect(&err).as_ref(),
                    Some(expected),
                    "{}: {err}",
                    case.name
                );
            }
        }

        let dir = damaged_log(case.damage);
        let mut config = small_config(dir.path());
        config.repair = true;
        let wal = Wal::open(config).unwrap_or_else(|e| panic!("{}: repair failed: {e}", case.name));
        assert_payloads(&wal, &expected_payloads(&case.repaired), case.name);
        append_all(&wal, &[payload(RECORDS)]);
        wal.close().unwrap();
        let wal = Wal::open(small_config(dir.path()))
            .unwrap_or_else(|e| panic!("{}: reopen after repair failed: {e}", case.name));
        let mut expected = expected_payloads(&case.repaired);
        expected.push(payload(RECORDS));
        assert_payloads(&wal, &expected, case.name);
    }
}

#[test]
fn torn_and_zero_tails_are_truncated_on_disk() {
    let dir = damaged_log(|d| extend(&seg(d, 3), &[0; 4096]));
    let wal = Wal::open(small_config(dir.path())).unwrap();
    assert_eq!(fs::metadata(seg(dir.path(), 3)).unwrap().len(), at(2));
    assert_eq!(wal.durable_end().borrow().segment, SegmentId(4));
    drop(wal);
    let dir = damaged_log(|d| cut(&seg(d, 3), at(1) + FRAME_BYTES / 2));
    let _wal = Wal::open(small_config(dir.path())).unwrap();
    assert_eq!(fs::metadata(seg(dir.path(), 3)).unwrap().len(), at(1));
}
