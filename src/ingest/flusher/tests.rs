//! The flusher against a real WAL and embedded store: what the store refuses for good and what
//! cannot be decoded goes to the quarantine, and everything after it is still stored.

use std::time::{Duration, Instant};

use super::*;
use crate::ingest::quarantine::cli::{run, QuarantineAction, QuarantineArgs};
use crate::ingest::{parse_ndjson, Window};
use crate::model::reading::sample;
use crate::model::{
    ApiReading, InstanceName, Reading, ReadingId, ReadingKind, Seq, ServiceName, Settings,
    TimeBucket,
};
use crate::store::embedded::EmbeddedStore;
use crate::store::{PageRequest, SeriesEntry, WriteBatch};
use crate::wal::WalConfig;

/// The embedded store, refusing for good every batch with a reading of service `poison`,
/// recording the ids of the readings it stores, and answering `wal_ids` as told.
struct Picky {
    store: EmbeddedStore,
    /// What it answers to `Store::wal_ids`.
    wal_ids: bool,
    /// The ids of the readings written, in order.
    seen: std::sync::Mutex<Vec<ReadingId>>,
    /// The latest rows of each write that had any.
    latest: std::sync::Mutex<Vec<usize>>,
}

impl Picky {
    fn new(store: EmbeddedStore, wal_ids: bool) -> Self {
        Picky {
            store,
            wal_ids,
            seen: std::sync::Mutex::default(),
            latest: std::sync::Mutex::default(),
        }
    }
}

impl Store for Picky {
    fn settings(&self) -> &Settings {
        self.store.settings()
    }

    fn wal_ids(&self, writer: uuid::Uuid) -> bool {
        self.wal_ids && self.store.wal_ids(writer)
    }

    async fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let readings = batch.to_readings();
        let poisoned = readings.iter().any(|r| r.service().as_str() == "poison");
        if poisoned {
            let refusal = std::io::Error::other("a value this store refuses");
            return Err(StoreError::rejected("writing readings", refusal));
        }
        self.store.write(batch).await?;
        let ids = readings.iter().map(|r| match r {
            Reading::Api(r) => r.id,
            Reading::Host(r) => r.id,
        });
        self.seen.lock().unwrap().extend(ids);
        if batch.latest_rows() > 0 {
            self.latest.lock().unwrap().push(batch.latest_rows());
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    async fn read_page<K: ReadingKind>(&self, request: &PageRequest) -> Result<Vec<K>, StoreError> {
        self.store.read_page(request).await
    }

    async fn read_latest<K: ReadingKind>(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<K>, StoreError> {
        self.store.read_latest(shard, service).await
    }

    async fn read_series(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        self.store.read_series(service, bucket).await
    }

    fn rollups_written_since(&self) -> TimestampMs {
        self.store.rollups_written_since()
    }

    async fn rollups_since(&self, service: &ServiceName) -> Result<TimestampMs, StoreError> {
        self.store.rollups_since(service).await
    }

    async fn lower_rollups_since(
        &self,
        service: Option<&ServiceName>,
        at: TimestampMs,
    ) -> Result<(), StoreError> {
        self.store.lower_rollups_since(service, at).await
    }

    async fn delete_rollups(&self, rows: &[crate::rollup::RollupRow]) -> Result<(), StoreError> {
        self.store.delete_rollups(rows).await
    }

    async fn read_rollups(
        &self,
        request: &crate::rollup::RollupRequest,
    ) -> Result<Vec<crate::rollup::RollupRow>, StoreError> {
        self.store.read_rollups(request).await
    }

    async fn read_rollup_page(
        &self,
        request: &crate::store::RollupPageRequest,
    ) -> Result<Vec<crate::rollup::RollupRow>, StoreError> {
        self.store.read_rollup_page(request).await
    }
}

fn record(service: &str, instance: &str) -> Vec<u8> {
    record_at(service, instance, TimestampMs::now())
}

fn record_at(service: &str, instance: &str, at: TimestampMs) -> Vec<u8> {
    let reading = ApiReading {
        service: ServiceName::parse(service).unwrap(),
        instance: InstanceName::parse(instance).unwrap(),
        timestamp: at,
        ..sample::api()
    };
    encode(&Accepted {
        at: TimestampMs::now(),
        readings: vec![Reading::Api(reading)],
    })
}

#[tokio::test]
async fn refused_batches_and_undecodable_records_go_aside_and_the_rest_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalConfig::new(dir.path().join("wal"))).unwrap();
    let store = Arc::new(Picky::new(
        EmbeddedStore::open(&dir.path().join("store")).unwrap(),
        false,
    ));
    let metrics = Arc::new(Metrics::new());
    let config = FlusherConfig {
        // Records are appended once the flusher caught up with the previous one, so each is a
        // batch of its own (a batch ends where the reader finds no more records).
        max_read_bytes: 1,
        retry_initial: Duration::from_millis(1),
        retry_max: Duration::from_millis(10),
        // Each record confirmed once stored: this test waits for that.
        min_piece_age: Duration::ZERO,
        ..FlusherConfig::default()
    };
    let quarantine = Quarantine::in_data_dir(dir.path());
    let (healthy, _) = watch::channel(true);
    let (flusher, handle) = Flusher::new(
        wal.clone(),
        store.clone(),
        metrics.clone(),
        config,
        quarantine.clone(),
        healthy,
    );
    let running = tokio::spawn(flusher.run());
    let deadline = Instant::now() + Duration::from_secs(30);
    for payload in [
        record("ok", "i-1"),
        vec![9, 1, 2],
        record("poison", "i-1"),
        record("ok", "i-2"),
    ] {
        wal.append(payload).await.unwrap();
        while wal.stats().backlog_bytes > 0 {
            assert!(Instant::now() < deadline, "the flusher is stuck");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    handle.drain();
    running.await.unwrap().unwrap();

    let ok = ServiceName::parse("ok").unwrap();
    let mut stored = Vec::new();
    for shard in store.settings().latest_shards.all() {
        stored.extend(
            store
                .read_latest::<ApiReading>(shard, Some(&ok))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        stored.len(),
        2,
        "both readings after the bad ones are stored"
    );

    let items = quarantine.list().unwrap();
    let whats: Vec<What> = items.iter().map(|(_, h)| h.what).collect();
    assert_eq!(whats, [What::Record, What::Batch]);
    let rendered = metrics.render();
    for line in [
        "timebucket_quarantined_total{what=\"record\"} 1",
        "timebucket_quarantined_total{what=\"batch\"} 1",
        "timebucket_quarantined_readings_total 1",
        "timebucket_store_errors_total{cause=\"rejected\"} 1",
    ] {
        assert!(rendered.contains(line), "{line} in\n{rendered}");
    }

    // The refused reading, as a body to send again.
    let show = |file: &str, ndjson| {
        run(&QuarantineArgs {
            data_dir: dir.path().to_owned(),
            action: QuarantineAction::Show {
                file: file.to_owned(),
                ndjson,
            },
        })
    };
    let body = show(&items[1].0, true).unwrap();
    let window = Window::at(TimestampMs::now(), 3_600_000);
    let readings = parse_ndjson(body.as_bytes(), &window).unwrap();
    assert!(matches!(&readings[..], [Reading::Api(r)] if r.service.as_str() == "poison"));
    assert!(
        show(&items[0].0, true).is_err(),
        "an undecodable record has no body"
    );
    assert!(show(&items[0].0, false)
        .unwrap()
        .contains("cannot be decoded"));
}

/// Runs a flusher over what `wal` holds until drained, reading one record per batch (what was
/// appended before it started is one piece); its metrics.
async fn drain_one_batch_per_record<S: Store>(
    wal: &Wal,
    store: Arc<S>,
    dir: &std::path::Path,
) -> Arc<Metrics> {
    let config = FlusherConfig {
        max_read_bytes: 1,
        retry_initial: Duration::from_millis(1),
        retry_max: Duration::from_millis(10),
        ..FlusherConfig::default()
    };
    let (healthy, _) = watch::channel(true);
    let metrics = Arc::new(Metrics::new());
    let (flusher, handle) = Flusher::new(
        wal.clone(),
        store,
        metrics.clone(),
        config,
        Quarantine::in_data_dir(dir),
        healthy,
    );
    handle.drain();
    flusher.run().await.unwrap();
    metrics
}

/// A piece's latest rows are written once, after its last batch: the newest reading of each
/// series over every batch of the piece the store took, none of a batch it refused.
#[tokio::test]
async fn a_piece_writes_the_newest_reading_of_each_series_once() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalConfig::new(dir.path().join("wal"))).unwrap();
    let store = Arc::new(Picky::new(
        EmbeddedStore::open(&dir.path().join("store")).unwrap(),
        false,
    ));
    let now = TimestampMs::now().millis();
    let at = |seconds_ago: i64| TimestampMs::from_millis(now - seconds_ago * 1000);
    // Appended before the flusher starts: one piece, a batch per record.
    for (service, instance, seconds_ago) in [
        ("ok", "i-0", 30),
        ("ok", "i-1", 20),
        ("poison", "i-0", 1),
        ("ok", "i-0", 10),
        ("ok", "i-1", 40),
    ] {
        wal.append(record_at(service, instance, at(seconds_ago)))
            .await
            .unwrap();
    }
    let metrics = drain_one_batch_per_record(&wal, store.clone(), dir.path()).await;
    assert!(metrics
        .render()
        .contains("timebucket_readings_flushed_total 5"));

    assert_eq!(
        *store.latest.lock().unwrap(),
        [2],
        "one write of latest rows, one per series"
    );
    let mut stored = Vec::new();
    for shard in store.settings().latest_shards.all() {
        stored.extend(store.read_latest::<ApiReading>(shard, None).await.unwrap());
    }
    let mut stored: Vec<(String, String, TimestampMs)> = stored
        .into_iter()
        .map(|r| (r.service.to_string(), r.instance.to_string(), r.timestamp))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            ("ok".into(), "i-0".into(), at(10)),
            ("ok".into(), "i-1".into(), at(20)),
        ]
    );
}

/// Records appended before the flusher starts are one piece (all in one chunk, read before
/// the reader catches up) however small the batches: one partial per (series, slot), written
/// after the last batch and covering every record.
#[tokio::test]
async fn a_piece_spans_batches_and_writes_one_partial_per_slot() {
    use crate::rollup::{Resolution, RollupRequest};

    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalConfig::new(dir.path().join("wal"))).unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("store")).unwrap());
    let minute = TimestampMs::now().millis() / 60_000 * 60_000 - 3_600_000;
    let at = TimestampMs::from_millis(minute + 30_000);
    let mut offsets = Vec::new();
    for i in 0..10 {
        let reading = ApiReading {
            service: ServiceName::parse("ok").unwrap(),
            instance: InstanceName::parse(&format!("i-{}", i % 2)).unwrap(),
            timestamp: at,
            ..sample::api()
        };
        let payload = encode(&Accepted {
            at,
            readings: vec![Reading::Api(reading)],
        });
        offsets.push(wal.append(payload).await.unwrap());
    }
    let metrics = drain_one_batch_per_record(&wal, store.clone(), dir.path()).await;
    assert_eq!(wal.stats().backlog_bytes, 0, "the piece's end is confirmed");
    assert!(
        metrics
            .render()
            .contains("timebucket_flush_duration_seconds_count 10"),
        "one batch per record"
    );

    let slot = Resolution::Minute.slot_of(at);
    let rows = store
        .read_rollups(&RollupRequest {
            service: ServiceName::parse("ok").unwrap(),
            kind: ApiReading::INFO.index,
            resolution: Resolution::Minute,
            partition: Resolution::Minute.partition_of(slot),
            from: slot,
            to: slot,
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "one partial per series: {rows:?}");
    let requests = 5 * u64::from(sample::api().count);
    for row in &rows {
        assert_eq!(row.piece.start, offsets[0].offset);
        assert_eq!(row.piece.last, offsets[9].offset);
        assert!(matches!(&row.agg, crate::rollup::Agg::Api(a) if a.count == requests));
    }
}

/// Flushes one record through a store answering `wal_ids`; returns the id it was accepted
/// with and the id the store got.
async fn flush_one(wal_ids: bool) -> (ReadingId, ReadingId) {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalConfig::new(dir.path().join("wal"))).unwrap();
    let store = Arc::new(Picky::new(
        EmbeddedStore::open(&dir.path().join("store")).unwrap(),
        wal_ids,
    ));
    let (healthy, _) = watch::channel(true);
    let (flusher, handle) = Flusher::new(
        wal.clone(),
        store.clone(),
        Arc::new(Metrics::new()),
        FlusherConfig::default(),
        Quarantine::in_data_dir(dir.path()),
        healthy,
    );
    let running = tokio::spawn(flusher.run());
    let reading = sample::api();
    let accepted = reading.id;
    wal.append(encode(&Accepted {
        at: TimestampMs::now(),
        readings: vec![Reading::Api(reading)],
    }))
    .await
    .unwrap();
    handle.drain();
    running.await.unwrap().unwrap();
    let seen = store.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    (accepted, seen[0])
}

#[tokio::test]
async fn readings_get_wal_ids_only_when_the_store_asks_for_them() {
    // A shared store (CQL) keeps the acceptance id: WAL positions of replicas collide.
    let (accepted, stored) = flush_one(false).await;
    assert_eq!(stored, accepted);
    // The embedded store gets the id of the reading's place in the WAL.
    let (accepted, stored) = flush_one(true).await;
    assert_ne!(stored, accepted);
    assert!(stored.wal_record().is_some(), "{stored:?}");
}
