//! The damage tables: every kind of on-disk damage, and what `open` must make of it.
//!
//! Each row of [`CASES`] damages a closed log of 20 records in the small layout (segment 1:
//! records 0..9, segment 2: 9..18, segment 3, the newest: 18..20) and states the outcome
//! without repair (the records readable, or the exact error), the records readable with
//! repair, and what the repair reports as lost. Every repaired log must then reopen cleanly
//! without repair: repair leaves no damage. [`TEARS`] does the same for what a power loss
//! leaves, in a layout where records cross sector and page boundaries.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::Path;

use super::checkpoint::{self, Checkpoint, CheckpointFile};
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
    /// Fail with `MissingNewest { first, newest }`.
    MissingNewest(u64, u64),
    /// Fail with `BadCheckpoint`.
    BadCheckpoint,
}

/// What the repair reports: (dropped records, their readings, missing segments, whether
/// bytes without record boundaries were dropped).
type Lost = (u64, u64, u64, bool);

/// Nothing lost.
const NONE: Lost = (0, 0, 0, false);
/// Dropped from a damaged length on: no count possible.
const UNFRAMED: Lost = (0, 0, 0, true);

struct Case {
    name: &'static str,
    damage: fn(&Path),
    plain: Expect,
    repaired: &'static [Range<usize>],
    lost: Lost,
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

fn zero(path: &Path, from: u64, to: Option<u64>) {
    let mut content = fs::read(path).unwrap();
    let to = to.map_or(content.len(), |to| to as usize);
    content[from as usize..to].fill(0);
    fs::write(path, content).unwrap();
}

fn set_confirmed(dir: &Path, confirmed: Position) {
    let newest = checkpoint::read(dir).unwrap().and_then(|c| c.newest);
    CheckpointFile::open(dir, Checkpoint { confirmed, newest }).unwrap();
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
// `repaired` lists the kept ranges of records, most often just one.
#[rustfmt::skip]
#[allow(clippy::single_range_in_vec_init)]
const CASES: &[Case] = &[
    Case { name: "torn tail: half of the last record", damage: |d| cut(&seg(d, 3), at(1) + 54), plain: Expect::Records(0..19), repaired: &[0..19], lost: NONE },
    Case { name: "torn tail: part of a frame header", damage: |d| cut(&seg(d, 3), at(1) + 5), plain: Expect::Records(0..19), repaired: &[0..19], lost: NONE },
    Case { name: "bit flip in the last record of the newest segment", damage: |d| flip(&seg(d, 3), at(1) + 60), plain: Expect::Corrupt(3, at(1)), repaired: &[0..19], lost: (1, 20, 0, false) },
    Case { name: "bad CRC mid newest segment", damage: |d| flip(&seg(d, 3), at(0) + 20), plain: Expect::Corrupt(3, at(0)), repaired: &[0..18, 19..20], lost: (1, 19, 0, false) },
    Case { name: "bad CRC in an older segment", damage: |d| flip(&seg(d, 1), at(4) + 20), plain: Expect::Corrupt(1, at(4)), repaired: &[0..4, 5..20], lost: (1, 5, 0, false) },
    Case { name: "huge length in the last record", damage: |d| patch(&seg(d, 3), at(1), &0xFFFF_FFF0_u32.to_le_bytes()), plain: Expect::Records(0..19), repaired: &[0..19], lost: NONE },
    Case { name: "bad length mid-segment", damage: |d| patch(&seg(d, 3), at(0), &50_u32.to_le_bytes()), plain: Expect::Corrupt(3, at(0)), repaired: &[0..18], lost: UNFRAMED },
    Case { name: "huge length in an older segment", damage: |d| patch(&seg(d, 2), at(3), &0x7FFF_FFFF_u32.to_le_bytes()), plain: Expect::Corrupt(2, at(3)), repaired: &[0..12, 18..20], lost: UNFRAMED },
    Case { name: "zero length followed by data", damage: |d| patch(&seg(d, 3), at(0), &[0; 4]), plain: Expect::Corrupt(3, at(0)), repaired: &[0..18], lost: UNFRAMED },
    Case { name: "older segment cut short", damage: |d| cut(&seg(d, 2), at(4) + 30), plain: Expect::Corrupt(2, at(4)), repaired: &[0..13, 18..20], lost: UNFRAMED },
    Case { name: "4 KiB zero tail, newest", damage: |d| extend(&seg(d, 3), &[0; 4096]), plain: Expect::Records(0..20), repaired: &[0..20], lost: NONE },
    Case { name: "4 KiB zero tail, older", damage: |d| extend(&seg(d, 1), &[0; 4096]), plain: Expect::Corrupt(1, at(9)), repaired: &[0..20], lost: NONE },
    Case { name: "missing middle segment", damage: |d| fs::remove_file(seg(d, 2)).unwrap(), plain: Expect::Missing(2, 3), repaired: &[0..9, 18..20], lost: (0, 0, 1, false) },
    Case { name: "bad magic, older segment", damage: |d| patch(&seg(d, 2), 0, b"XXXX"), plain: Expect::Corrupt(2, 0), repaired: &[0..20], lost: NONE },
    Case { name: "bad magic, newest segment", damage: |d| patch(&seg(d, 3), 0, b"XXXX"), plain: Expect::Corrupt(3, 0), repaired: &[0..20], lost: NONE },
    Case { name: "header names another segment", damage: |d| patch(&seg(d, 2), 8, &7_u64.to_le_bytes()), plain: Expect::Corrupt(2, 0), repaired: &[0..20], lost: NONE },
    Case { name: "empty older segment file", damage: |d| cut(&seg(d, 2), 0), plain: Expect::Corrupt(2, 0), repaired: &[0..9, 18..20], lost: (0, 0, 1, false) },
    Case { name: "unrecorded newest segment, empty file", damage: |d| fs::write(seg(d, 4), b"").unwrap(), plain: Expect::Records(0..20), repaired: &[0..20], lost: NONE },
    Case { name: "unrecorded newest segment, partial header", damage: |d| fs::write(seg(d, 4), b"TBWAL\0\0").unwrap(), plain: Expect::Records(0..20), repaired: &[0..20], lost: NONE },
    Case { name: "unrecorded newest segment, zeros only", damage: |d| fs::write(seg(d, 4), [0; 4096]).unwrap(), plain: Expect::Records(0..20), repaired: &[0..20], lost: NONE },
    Case { name: "newest segment deleted", damage: |d| fs::remove_file(seg(d, 3)).unwrap(), plain: Expect::MissingNewest(3, 3), repaired: &[0..18], lost: (0, 0, 1, false) },
    Case { name: "two newest segments deleted", damage: |d| { fs::remove_file(seg(d, 2)).unwrap(); fs::remove_file(seg(d, 3)).unwrap() }, plain: Expect::MissingNewest(2, 3), repaired: &[0..9], lost: (0, 0, 2, false) },
    Case { name: "newest segment cut to 10 bytes", damage: |d| cut(&seg(d, 3), 10), plain: Expect::Corrupt(3, 0), repaired: &[0..18], lost: (0, 0, 1, false) },
    Case { name: "newest segment zeroed", damage: |d| zero(&seg(d, 3), 0, None), plain: Expect::Corrupt(3, 0), repaired: &[0..18], lost: (0, 0, 1, false) },
    Case { name: "garbled checkpoint", damage: |d| fs::write(checkpoint::path(d), b"garbage").unwrap(), plain: Expect::BadCheckpoint, repaired: &[0..20], lost: NONE },
    Case { name: "checkpoint inside a record", damage: |d| set_confirmed(d, Position { segment: SegmentId(2), offset: at(2) + 3 }), plain: Expect::BadCheckpoint, repaired: &[11..20], lost: NONE },
    Case { name: "checkpoint segment missing", damage: |d| { set_confirmed(d, Position::start_of(SegmentId(2))); fs::remove_file(seg(d, 2)).unwrap() }, plain: Expect::Missing(2, 3), repaired: &[18..20], lost: (0, 0, 1, false) },
    Case { name: "damaged record before the checkpoint", damage: |d| { set_confirmed(d, Position { segment: SegmentId(1), offset: at(6) }); flip(&seg(d, 1), at(4) + 20) }, plain: Expect::Corrupt(1, at(4)), repaired: &[6..20], lost: NONE },
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
        WalError::MissingNewest { first, newest } => Some(Expect::MissingNewest(first.0, newest.0)),
        WalError::BadCheckpoint { .. } => Some(Expect::BadCheckpoint),
        _ => None,
    }
}

fn payloads_in(ranges: &[Range<usize>], payload: fn(usize) -> Vec<u8>) -> Vec<Vec<u8>> {
    ranges.iter().flat_map(|r| r.clone().map(payload)).collect()
}

fn assert_payloads(wal: &Wal, expected: &[Vec<u8>], case: &str) {
    let found: Vec<Vec<u8>> = read_all(wal).into_iter().map(|r| r.payload).collect();
    assert_eq!(found.len(), expected.len(), "{case}: record count");
    assert!(found == expected, "{case}: record contents");
}

/// Opens a damaged log without repair and checks the outcome.
fn check_plain(config: WalConfig, expected: &Expect, payload: fn(usize) -> Vec<u8>, case: &str) {
    match (Wal::open(config), expected) {
        (Ok(wal), Expect::Records(range)) => {
            assert_payloads(
                &wal,
                &payloads_in(std::slice::from_ref(range), payload),
                case,
            );
        }
        (Ok(_), expected) => panic!("{case}: expected {expected:?}, open succeeded"),
        (Err(err), expected) => {
            assert_eq!(as_expect(&err).as_ref(), Some(expected), "{case}: {err}");
        }
    }
}

/// Opens a damaged log with repair, checks what survives, then that it reopens cleanly
/// without repair and takes appends.
fn check_repaired(
    mut config: WalConfig,
    repaired: &[Range<usize>],
    payload: fn(usize) -> Vec<u8>,
    case: &str,
) -> RepairReport {
    config.repair = true;
    let wal = Wal::open(config.clone()).unwrap_or_else(|e| panic!("{case}: repair failed: {e}"));
    let report = wal.repair_report();
    let mut expected = payloads_in(repaired, payload);
    assert_payloads(&wal, &expected, case);
    append_all(&wal, &[payload(RECORDS + 50)]);
    wal.close().unwrap();
    config.repair = false;
    let wal =
        Wal::open(config).unwrap_or_else(|e| panic!("{case}: reopen after repair failed: {e}"));
    assert!(wal.repair_report().is_empty(), "{case}");
    expected.push(payload(RECORDS + 50));
    assert_payloads(&wal, &expected, case);
    report
}

#[test]
fn damage_table() {
    for case in CASES {
        let dir = damaged_log(case.damage);
        check_plain(small_config(dir.path()), &case.plain, payload, case.name);

        let dir = damaged_log(case.damage);
        let report = check_repaired(small_config(dir.path()), case.repaired, payload, case.name);
        let lost = (
            report.dropped_records,
            report.dropped_readings,
            report.missing_segments,
            report.unframed_bytes > 0,
        );
        assert_eq!(lost, case.lost, "{}: {report:?}", case.name);
        assert_eq!(report.uncounted_records, 0, "{}", case.name);
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

/// Payload size of the tear layout: records cross 512-byte sectors and 4 KiB pages.
const TEAR_PAYLOAD_BYTES: usize = 1000;
/// Records in the tear layout's one segment.
const TEAR_RECORDS: usize = 12;

/// Offset of record `index` in the tear layout.
const fn tear_at(index: u64) -> u64 {
    16 + index * (8 + TEAR_PAYLOAD_BYTES as u64)
}

fn tear_payload(index: usize) -> Vec<u8> {
    vec![(index % 250) as u8 + 1; TEAR_PAYLOAD_BYTES]
}

fn tear_config(dir: &Path) -> WalConfig {
    WalConfig {
        segment_bytes: 64 * 1024,
        max_record_bytes: 2000,
        ..WalConfig::new(dir)
    }
}

struct Tear {
    name: &'static str,
    /// Segment 1 is sealed (a restart created segment 2) rather than the newest.
    sealed: bool,
    damage: fn(&Path),
    plain: Expect,
    repaired: &'static [Range<usize>],
}

// Records 0..12 of 1008 bytes from offset 16: record 3 is 3040..4048, record 4 4048..5056
// (it holds the page boundary 4096), record 5 5056..6064, record 8 8080..9088, record 11
// 11104..12112, the end of the file.
#[rustfmt::skip]
#[allow(clippy::single_range_in_vec_init)]
const TEARS: &[Tear] = &[
    Tear { name: "a zeroed page inside the last group", sealed: false, damage: |d| zero(&seg(d, 1), 4096, Some(8192)), plain: Expect::Records(0..4), repaired: &[0..4] },
    Tear { name: "zeros from a page boundary to the end", sealed: false, damage: |d| zero(&seg(d, 1), 4096, None), plain: Expect::Records(0..4), repaired: &[0..4] },
    Tear { name: "one zeroed sector", sealed: false, damage: |d| zero(&seg(d, 1), 4096, Some(4608)), plain: Expect::Records(0..4), repaired: &[0..4] },
    Tear { name: "a later zeroed page", sealed: false, damage: |d| zero(&seg(d, 1), 8192, Some(12112)), plain: Expect::Records(0..8), repaired: &[0..8] },
    Tear { name: "zeros after the last synced byte up to the sector end", sealed: false, damage: |d| zero(&seg(d, 1), tear_at(5), Some(5120)), plain: Expect::Records(0..5), repaired: &[0..5] },
    Tear { name: "bit flip in the last record", sealed: false, damage: |d| flip(&seg(d, 1), tear_at(11) + 500), plain: Expect::Corrupt(1, tear_at(11)), repaired: &[0..11] },
    Tear { name: "zeros not covering an aligned sector", sealed: false, damage: |d| zero(&seg(d, 1), 4000, Some(4048)), plain: Expect::Corrupt(1, tear_at(3)), repaired: &[0..3, 4..12] },
    Tear { name: "a zeroed page in a sealed segment", sealed: true, damage: |d| zero(&seg(d, 1), 4096, Some(8192)), plain: Expect::Corrupt(1, tear_at(4)), repaired: &[0..4] },
];

#[test]
fn power_loss_tears_table() {
    for case in TEARS {
        let damaged = || {
            let dir = tempfile::tempdir().unwrap();
            let wal = Wal::open(tear_config(dir.path())).unwrap();
            append_all(
                &wal,
                &(0..TEAR_RECORDS).map(tear_payload).collect::<Vec<_>>(),
            );
            wal.close().unwrap();
            if case.sealed {
                Wal::open(tear_config(dir.path())).unwrap().close().unwrap();
            }
            assert_eq!(fs::metadata(seg(dir.path(), 1)).unwrap().len(), tear_at(12));
            (case.damage)(dir.path());
            dir
        };
        let dir = damaged();
        check_plain(
            tear_config(dir.path()),
            &case.plain,
            tear_payload,
            case.name,
        );
        let dir = damaged();
        check_repaired(
            tear_config(dir.path()),
            case.repaired,
            tear_payload,
            case.name,
        );
    }
}
