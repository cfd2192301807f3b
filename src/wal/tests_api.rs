//! Tests of the public API's contracts, and helpers shared by the other test modules.
//!
//! Layout used throughout: with [`SMALL_SEGMENT_BYTES`] and payloads of [`PAYLOAD_BYTES`]
//! every frame is 108 bytes and a segment holds exactly 9 records (16 + 9 * 108 = 988),
//! so tests can name the segment and offset of any record.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use super::format::{push_frame, segment_path};
use super::*;

/// Segment size target of the small test layout.
pub(super) const SMALL_SEGMENT_BYTES: u64 = 1024;
/// Payload size of the small test layout.
pub(super) const PAYLOAD_BYTES: usize = 100;
/// Frame size of the small test layout.
pub(super) const FRAME_BYTES: u64 = 108;
/// Largest record accepted by the small test layout.
pub(super) const SMALL_MAX_RECORD_BYTES: u32 = 1000;

/// A configuration for the small test layout in `dir`.
pub(super) fn small_config(dir: &Path) -> WalConfig {
    WalConfig {
        dir: dir.to_path_buf(),
        segment_bytes: SMALL_SEGMENT_BYTES,
        max_record_bytes: SMALL_MAX_RECORD_BYTES,
        repair: false,
        count_readings: readings_in_payload,
    }
}

/// The distinct payload of record `index` in the small layout.
pub(super) fn payload(index: usize) -> Vec<u8> {
    (0..PAYLOAD_BYTES).map(|i| (index * 7 + i) as u8).collect()
}

/// The readings a test payload stands for: `index + 1` for [`payload`]`(index)`, read from
/// its first byte as a real payload's count is read from its start.
pub(super) fn readings_in_payload(payload: &[u8]) -> Option<u64> {
    payload.first().map(|&first| u64::from(first) / 7 + 1)
}

/// Offset of the `index`-th record inside its segment in the small layout.
pub(super) const fn record_offset(index: u64) -> u64 {
    16 + index * FRAME_BYTES
}

/// Appends `payloads` one after the other (each awaited) and returns their positions.
pub(super) fn append_all(wal: &Wal, payloads: &[Vec<u8>]) -> Vec<Position> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut positions = Vec::new();
        for payload in payloads {
            positions.push(wal.append(payload.clone()).await.unwrap());
        }
        positions
    })
}

/// Every durable record from the confirmed position on.
pub(super) fn read_all(wal: &Wal) -> Vec<WalRecord> {
    let mut reader = wal.reader(wal.confirmed());
    let mut records = Vec::new();
    loop {
        let batch = reader.next_batch(64 * 1024).unwrap();
        if batch.is_empty() {
            return records;
        }
        records.extend(batch);
    }
}

#[test]
fn empty_and_oversized_records_are_refused_and_the_limit_itself_fits() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(small_config(dir.path())).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let too_large = vec![1; SMALL_MAX_RECORD_BYTES as usize + 1];
    let err = runtime.block_on(wal.append(too_large)).unwrap_err();
    assert!(matches!(
        err,
        WalError::RecordTooLarge {
            len: 1001,
            max: 1000
        }
    ));
    let err = runtime.block_on(wal.append(Vec::new())).unwrap_err();
    assert!(matches!(err, WalError::EmptyRecord));
    let largest = vec![2; SMALL_MAX_RECORD_BYTES as usize];
    let positions = append_all(&wal, &[payload(0), largest.clone(), payload(1)]);
    // The largest record does not fit behind another one, so it opens segment 2 alone.
    assert_eq!(positions[1], Position::start_of(SegmentId(2)));
    assert_eq!(positions[2], Position::start_of(SegmentId(3)));
    assert_eq!(read_all(&wal)[1].payload, largest);
}

#[test]
fn invalid_config_is_refused_before_touching_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(&dir.path().join("wal"));
    config.max_record_bytes = 1001;
    assert!(matches!(
        Wal::open(config),
        Err(WalError::InvalidConfig { .. })
    ));
    assert!(!dir.path().join("wal").exists());
}

#[test]
fn reader_stops_at_the_durable_end_even_when_the_file_holds_more() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(small_config(dir.path())).unwrap();
    append_all(&wal, &[payload(0), payload(1), payload(2)]);
    // A valid frame past the durable end, as a write in flight would leave it.
    let mut in_flight = Vec::new();
    push_frame(&mut in_flight, &payload(99));
    let current = segment_path(dir.path(), SegmentId(1));
    let mut file = OpenOptions::new().append(true).open(&current).unwrap();
    file.write_all(&in_flight).unwrap();

    let mut reader = wal.reader(wal.confirmed());
    let first = reader.next_batch(usize::MAX).unwrap();
    assert_eq!(first.len(), 3);
    assert!(reader.next_batch(usize::MAX).unwrap().is_empty());
    // The writer overwrites the bytes past the durable end with the real next record.
    append_all(&wal, &[payload(3)]);
    let second = reader.next_batch(usize::MAX).unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].payload, payload(3));
    assert_eq!(second[0].next, *wal.durable_end().borrow());
}

#[test]
fn batches_respect_max_bytes_but_always_make_progress() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(small_config(dir.path())).unwrap();
    let payloads: Vec<_> = (0..12).map(payload).collect();
    append_all(&wal, &payloads);
    let mut reader = wal.reader(wal.confirmed());
    let sizes: Vec<usize> = (0..6)
        .map(|_| reader.next_batch(2 * PAYLOAD_BYTES + 50).unwrap().len())
        .collect();
    assert_eq!(sizes, [2, 2, 2, 2, 2, 2]);
    let mut tiny = wal.reader(wal.confirmed());
    let one = tiny.next_batch(1).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(tiny.position(), one[0].next);
}

#[test]
fn stats_track_appends_backlog_and_disk_usage() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(small_config(dir.path())).unwrap();
    let payloads: Vec<_> = (0..10).map(payload).collect();
    append_all(&wal, &payloads);
    let stats = wal.stats();
    assert_eq!(stats.appends_total, 10);
    assert_eq!(
        stats.syncs_total, 10,
        "sequential appends cannot share a sync"
    );
    assert_eq!(stats.written_bytes_total, 10 * FRAME_BYTES);
    assert_eq!(stats.segments_on_disk, 2);
    assert_eq!(stats.bytes_on_disk, 2 * 16 + 10 * FRAME_BYTES);
    assert_eq!(stats.backlog_bytes, 10 * FRAME_BYTES);
    let records = read_all(&wal);
    wal.confirm(records[3].next).unwrap();
    assert_eq!(wal.stats().backlog_bytes, 6 * FRAME_BYTES);
}

#[test]
fn closing_finishes_the_writer_and_refuses_later_appends() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(small_config(dir.path())).unwrap();
    let other = wal.clone();
    append_all(&wal, &[payload(0)]);
    wal.close().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = runtime.block_on(other.append(payload(1))).unwrap_err();
    assert!(matches!(err, WalError::Closed));
    drop(other);
    let reopened = Wal::open(small_config(dir.path())).unwrap();
    assert_eq!(read_all(&reopened).len(), 1);
}

#[test]
fn a_tailing_reader_follows_the_writer_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(small_config(dir.path())).unwrap();
    let mut reader = wal.reader(wal.confirmed());
    let mut seen = Vec::new();
    // Read while segment 1 is being written, then again after it was sealed mid-way.
    for chunk in [0..5, 5..15, 15..16, 16..30] {
        let payloads: Vec<_> = chunk.map(payload).collect();
        append_all(&wal, &payloads);
        seen.extend(reader.next_batch(usize::MAX).unwrap());
    }
    let expected: Vec<_> = (0..30).map(payload).collect();
    let found: Vec<_> = seen.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(found, expected);
    assert_eq!(reader.position(), *wal.durable_end().borrow());
}
