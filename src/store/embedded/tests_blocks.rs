//! The embedded store on blocks: exactly once under WAL replays, compaction, orphan files and
//! the conversion of the row format.

use super::*;
use crate::model::{
    ApiPath, ApiReading, HttpMethod, InstanceName, Reading, ReadingId, ServiceName, StatusCode,
};
use crate::store::{Order, PageRequest, PartitionKey, SeriesSeen};

const HOUR_MS: i64 = 3_600_000;

/// `n` readings of records `(1, first_record..)`, five per record, every 7 s from `at_ms`.
fn wal_readings(at_ms: i64, first_record: u64, n: usize) -> Vec<Reading> {
    (0..n)
        .map(|i| {
            let record = 16 + (first_record + (i / 5) as u64) * 1_000;
            Reading::Api(ApiReading {
                id: ReadingId::from_wal(1, record, (i % 5) as u32),
                service: ServiceName::parse("blocks").unwrap(),
                instance: InstanceName::parse(&format!("i-{}", i % 3)).unwrap(),
                method: HttpMethod::parse("GET").unwrap(),
                path: ApiPath::parse(&format!("/p/{}", i % 5)).unwrap(),
                code: StatusCode::parse(if i % 9 == 0 { 503 } else { 200 }).unwrap(),
                duration_ms: (i % 400) as f64 / 4.0,
                count: 1,
                timestamp: TimestampMs::from_millis(at_ms + i as i64 * 7_000),
            })
        })
        .collect()
}

async fn write(store: &EmbeddedStore, readings: Vec<Reading>) {
    let batch = WriteBatch::build(readings, store.settings(), &SeriesSeen::new(10));
    store.write(&batch).await.unwrap();
}

/// Every API reading of service `blocks` in `[from, to]`, partition by partition, in pages of 7
/// read in `order`.
async fn read_all(store: &EmbeddedStore, from: i64, to: i64, order: Order) -> Vec<ApiReading> {
    let settings = *store.settings();
    let (from, to) = (TimestampMs::from_millis(from), TimestampMs::from_millis(to));
    let mut all = Vec::new();
    for bucket in TimeBucket::covering(from, to, settings.bucket_width) {
        for seq in settings.shards.all() {
            let mut request = PageRequest {
                partition: PartitionKey {
                    service: ServiceName::parse("blocks").unwrap(),
                    bucket,
                    seq,
                },
                after: order.start_of(from, to),
                until: order.end_of(from, to),
                order,
                limit: 7,
            };
            loop {
                let page: Vec<ApiReading> = store.read_page(&request).await.unwrap();
                let full = page.len() == 7;
                let last = page.last().map(crate::store::ReadingKey::of);
                all.extend(page);
                match last {
                    Some(last) if full => request = request.next_after(last),
                    _ => break,
                }
            }
        }
    }
    all
}

fn sorted(mut readings: Vec<ApiReading>) -> Vec<ApiReading> {
    readings.sort_by_key(|r| (r.timestamp, r.id));
    readings
}

fn api(readings: &[Reading]) -> Vec<ApiReading> {
    readings
        .iter()
        .map(|r| match r {
            Reading::Api(r) => r.clone(),
            Reading::Host(_) => unreachable!("only API readings here"),
        })
        .collect()
}

#[tokio::test]
async fn a_replayed_wal_record_is_stored_once_even_after_compaction_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let at = TimestampMs::now().millis() - 30 * HOUR_MS;
    let first = wal_readings(at, 0, 200);
    let second = wal_readings(at + 1_000, 40, 200);
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        write(&store, first.clone()).await;
        store.compact().unwrap();
        // A crash before the WAL confirmed: the flusher replays the first records, and a
        // longer batch holds them together with new ones.
        let mut replay = first[100..].to_vec();
        replay.extend(second.clone());
        write(&store, replay).await;
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    write(&store, first.clone()).await;
    let mut expected = api(&first);
    expected.extend(api(&second));
    let to = at + 3_000 * 1_000;
    assert_eq!(
        sorted(read_all(&store, at, to, Order::Asc).await),
        sorted(expected.clone())
    );
    store.compact().unwrap();
    let mut desc = read_all(&store, at, to, Order::Desc).await;
    desc.reverse();
    assert_eq!(sorted(desc), sorted(expected));
}

#[tokio::test]
async fn compaction_ends_with_window_blocks_and_changes_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let at = TimestampMs::now().millis() - 20 * HOUR_MS;
    let mut written = Vec::new();
    for part in 0..6u64 {
        // Each part spans about 2 h 20 min, so parts overlap several windows.
        let readings = wal_readings(at + part as i64 * 2 * HOUR_MS, part * 1_000, 1_200);
        written.extend(api(&readings));
        write(&store, readings).await;
    }
    assert_eq!(store.block_count(), 6);
    let to = at + 16 * HOUR_MS;
    let before = read_all(&store, at, to, Order::Asc).await;
    assert_eq!(sorted(before.clone()), sorted(written));
    let bytes_before = store.inner.blocks.disk_bytes();
    store.compact().unwrap();
    let live = store.inner.blocks.snapshot(b'a');
    assert!(live.iter().all(|(_, l)| l.entry.span > 0), "parts remain");
    assert!(live.iter().all(|(_, l)| {
        let (lo, hi) = (
            l.entry.window * 1000,
            (l.entry.window + i64::from(l.entry.span)) * 1000,
        );
        l.block.index.min_ts >= lo && l.block.index.max_ts < hi
    }));
    assert!(store.inner.blocks.disk_bytes() < bytes_before);
    assert_eq!(read_all(&store, at, to, Order::Asc).await, before);
}

#[tokio::test]
async fn retention_deletes_whole_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let now = TimestampMs::now();
    let day_ms = 24 * HOUR_MS;
    write(&store, wal_readings(now.millis() - 6 * day_ms, 0, 50)).await;
    let recent = wal_readings(now.millis() - HOUR_MS, 100, 50);
    write(&store, recent.clone()).await;
    store.compact().unwrap();
    let old = now.millis() - 6 * day_ms;
    let old_blocks = store
        .inner
        .blocks
        .snapshot(b'a')
        .iter()
        .filter(|(_, l)| l.block.index.max_ts < old + day_ms)
        .count();
    assert!(old_blocks >= 1);
    let count = store.block_count();
    let later = TimestampMs::from_millis(now.millis() + 2 * day_ms);
    store.drop_expired_windows(later).unwrap();
    assert_eq!(store.block_count(), count - old_blocks);
    assert!(read_all(&store, old, old + day_ms, Order::Asc)
        .await
        .is_empty());
    let got = read_all(&store, now.millis() - HOUR_MS, now.millis(), Order::Asc).await;
    assert_eq!(sorted(got), sorted(api(&recent)));
}

#[tokio::test]
async fn a_block_file_no_manifest_lists_is_deleted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let at = TimestampMs::now().millis() - 2 * HOUR_MS;
    let readings = wal_readings(at, 0, 30);
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        write(&store, readings.clone()).await;
    }
    let stray = dir.path().join(BLOCKS_DIR).join("00000000000000099999.blk");
    std::fs::write(&stray, b"left by a crash before its manifest entry").unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(!stray.exists());
    let got = read_all(&store, at, at + HOUR_MS, Order::Asc).await;
    assert_eq!(sorted(got), sorted(api(&readings)));
}

#[tokio::test]
async fn a_store_with_row_format_readings_is_refused_until_converted() {
    let dir = tempfile::tempdir().unwrap();
    let at = TimestampMs::now().millis() - 3 * HOUR_MS;
    // Readings as earlier versions stored them: one row each, random ids.
    let old: Vec<ApiReading> = api(&wal_readings(at, 0, 120))
        .into_iter()
        .map(|r| ApiReading {
            id: ReadingId::new(),
            ..r
        })
        .collect();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let settings = *store.settings();
        for r in &old {
            let partition = PartitionKey {
                service: r.service.clone(),
                bucket: r.bucket(settings.bucket_width),
                seq: r.seq(settings.shards),
            };
            let prefix = codec::partition_prefix(b'a', &partition);
            store
                .window_of(partition.bucket)
                .unwrap()
                .insert(
                    codec::row_key(&prefix, r.timestamp, r.id),
                    fields::encode(r),
                )
                .unwrap();
        }
    }
    let refused = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(refused, StoreError::OldFormat { .. }), "{refused}");
    assert!(refused
        .to_string()
        .contains("timebucket store convert --data-dir"));
    {
        let store = EmbeddedStore::open_to_convert(dir.path(), Settings::default()).unwrap();
        assert_eq!(store.legacy_rows().unwrap(), 120);
        let mut seen = Vec::new();
        assert_eq!(store.convert(&mut |n| seen.push(n)).unwrap(), 120);
        assert_eq!(seen.last(), Some(&120));
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let got = read_all(&store, at, at + 2 * HOUR_MS, Order::Asc).await;
    assert_eq!(sorted(got), sorted(old));
}

#[test]
fn wal_ids_go_to_the_first_wal_that_asks_only_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert!(store.wal_ids(first));
        assert!(store.wal_ids(first));
        // Its positions would collide with the first WAL's: it keeps acceptance ids.
        assert!(!store.wal_ids(second));
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(!store.wal_ids(second));
    assert!(store.wal_ids(first));
}

#[tokio::test]
async fn a_retention_hold_keeps_expired_blocks_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let now = TimestampMs::now();
    let old = now.millis() - 6 * 24 * HOUR_MS;
    let hold = RetentionHold::until(TimestampMs::from_millis(old));
    let store = EmbeddedStore::open_held(dir.path(), Settings::default(), hold.clone()).unwrap();
    let readings = wal_readings(old, 0, 20);
    write(&store, readings.clone()).await;
    let later = TimestampMs::from_millis(now.millis() + 2 * 24 * HOUR_MS);
    store.drop_expired_windows(later).unwrap();
    let got = read_all(&store, old, old + HOUR_MS, Order::Asc).await;
    assert_eq!(sorted(got), sorted(api(&readings)), "held past their TTL");
    hold.release_until(TimestampMs::from_millis(old + HOUR_MS));
    store.drop_expired_windows(later).unwrap();
    assert_eq!(store.block_count(), 0);
}

#[tokio::test]
async fn parts_stay_bounded_when_writes_outrun_the_compactor_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let at = TimestampMs::now().millis() - 2 * HOUR_MS;
    let n = blocks::MAX_PARTS_WAITING + 10;
    let mut all = Vec::new();
    // Faster than the thread's first pass (every few seconds): every write is a part.
    for i in 0..n {
        let readings = wal_readings(at + i as i64 * 1_000, i as u64 * 10, 5);
        all.extend(readings.clone());
        write(&store, readings).await;
        assert!(
            store.inner.blocks.parts() <= blocks::MAX_PARTS_WAITING,
            "{} parts after {} writes",
            store.inner.blocks.parts(),
            i + 1
        );
    }
    let got = read_all(&store, at, at + HOUR_MS, Order::Asc).await;
    assert_eq!(sorted(got), sorted(api(&all)));
}
