//! Tests of commit and confirmation: round trips through restarts, group commit under
//! concurrency, and checkpoint/deletion semantics of `confirm`.
//!
//! The property test drives random record sizes against small segments so that rotation,
//! records filling a segment exactly, and records alone in a segment all occur.

use std::collections::HashMap;

use proptest::prelude::*;

use super::format::segment_path;
use super::tests_api::{append_all, payload, read_all, record_offset, small_config, FRAME_BYTES};
use super::*;

/// Largest payload the property test generates; its segments must fit one of them.
const PROP_MAX_RECORD_BYTES: u32 = 300;

fn prop_payload(index: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (index * 31 + i * 7) as u8).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn records_round_trip_through_a_restart(
        sizes in prop::collection::vec(1..=PROP_MAX_RECORD_BYTES as usize, 0..40),
        segment_bytes in 324_u64..1500,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig {
            dir: dir.path().to_path_buf(),
            segment_bytes,
            max_record_bytes: PROP_MAX_RECORD_BYTES,
            ..WalConfig::new(dir.path())
        };
        let payloads: Vec<Vec<u8>> =
            sizes.iter().enumerate().map(|(i, &len)| prop_payload(i, len)).collect();
        let wal = Wal::open(config.clone()).unwrap();
        let positions = append_all(&wal, &payloads);
        wal.close().unwrap();

        let wal = Wal::open(config).unwrap();
        let records = read_all(&wal);
        prop_assert_eq!(records.len(), payloads.len());
        for (i, record) in records.iter().enumerate() {
            prop_assert_eq!(&record.payload, &payloads[i]);
            prop_assert_eq!(record.position, positions[i]);
            let end = record.position.offset + 8 + payloads[i].len() as u64;
            prop_assert_eq!(record.next, Position { segment: record.position.segment, offset: end });
            // A record only exceeds the target when it is alone in its segment.
            prop_assert!(end <= segment_bytes || record.position.offset == 16);
            if let Some(later) = records.get(i + 1) {
                prop_assert!(later.position >= record.next);
            }
        }
        let newest = positions.last().map_or(SegmentId(1), |p| p.segment);
        prop_assert_eq!(wal.durable_end().borrow().segment, newest.next());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_syncs() {
    const TASKS: usize = 64;
    const APPENDS_PER_TASK: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let mut config = WalConfig::new(dir.path());
    config.segment_bytes = 64 * 1024;
    config.max_record_bytes = 1024;
    let wal = Wal::open(config).unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let wal = wal.clone();
            tokio::spawn(async move {
                let mut positions = Vec::with_capacity(APPENDS_PER_TASK);
                for seq in 0..APPENDS_PER_TASK {
                    let payload = format!("task {task} append {seq}").into_bytes();
                    positions.push((wal.append(payload.clone()).await.unwrap(), payload));
                }
                positions
            })
        })
        .collect();
    let mut appended = HashMap::new();
    for task in tasks {
        let positions = task.await.unwrap();
        // One task's appends are sequential, so their positions must increase.
        assert!(positions.windows(2).all(|w| w[0].0 < w[1].0));
        appended.extend(positions);
    }
    assert_eq!(
        appended.len(),
        TASKS * APPENDS_PER_TASK,
        "positions are unique"
    );

    let records = tokio::task::spawn_blocking({
        let wal = wal.clone();
        move || read_all(&wal)
    })
    .await
    .unwrap();
    assert_eq!(records.len(), appended.len());
    assert!(records.windows(2).all(|w| w[0].position < w[1].position));
    for record in &records {
        assert_eq!(appended.get(&record.position), Some(&record.payload));
    }
    let stats = wal.stats();
    assert_eq!(stats.appends_total, (TASKS * APPENDS_PER_TASK) as u64);
    assert!(stats.segments_on_disk > 1, "the run should rotate segments");
    assert!(
        stats.syncs_total < stats.appends_total,
        "group commit must share syncs: {stats:?}"
    );
}

#[test]
fn confirm_checkpoints_deletes_whole_segments_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let seg_exists = |id| segment_path(dir.path(), SegmentId(id)).exists();
    let wal = Wal::open(small_config(dir.path())).unwrap();
    let payloads: Vec<_> = (0..20).map(payload).collect();
    append_all(&wal, &payloads);
    let records = read_all(&wal);

    // Record 12 is the fourth of segment 2: segment 1 goes, 2 and 3 stay.
    let mid = records[12].next;
    assert_eq!(
        mid,
        Position {
            segment: SegmentId(2),
            offset: record_offset(4)
        }
    );
    wal.confirm(mid).unwrap();
    assert_eq!(wal.confirmed(), mid);
    assert!(!seg_exists(1) && seg_exists(2) && seg_exists(3));
    assert_eq!(wal.stats().segments_on_disk, 2);

    // Monotonic: an older position is ignored.
    wal.confirm(records[5].next).unwrap();
    assert_eq!(wal.confirmed(), mid);

    wal.close().unwrap();
    let wal = Wal::open(small_config(dir.path())).unwrap();
    assert_eq!(wal.confirmed(), mid);
    let replayed: Vec<_> = read_all(&wal).into_iter().map(|r| r.payload).collect();
    assert_eq!(replayed, payloads[13..]);
    assert_eq!(wal.durable_end().borrow().segment, SegmentId(4));

    // The end of sealed segment 2 is the start of 3, so segment 2 goes too.
    let end_of_two = records[17].next;
    assert_eq!(end_of_two.offset, record_offset(9));
    wal.confirm(end_of_two).unwrap();
    assert_eq!(wal.confirmed(), Position::start_of(SegmentId(3)));
    assert!(!seg_exists(2) && seg_exists(3));

    // Confirming everything keeps the segment being written.
    let end = *wal.durable_end().borrow();
    wal.confirm(end).unwrap();
    assert!(!seg_exists(3) && seg_exists(4));
    assert_eq!(wal.stats().backlog_bytes, 0);

    let past = Position {
        segment: SegmentId(4),
        offset: end.offset + FRAME_BYTES,
    };
    assert!(matches!(
        wal.confirm(past),
        Err(WalError::ConfirmPastEnd { .. })
    ));

    append_all(&wal, &[payload(20)]);
    wal.close().unwrap();
    let wal = Wal::open(small_config(dir.path())).unwrap();
    assert_eq!(wal.confirmed(), end);
    let replayed: Vec<_> = read_all(&wal).into_iter().map(|r| r.payload).collect();
    assert_eq!(replayed, [payload(20)]);
}
