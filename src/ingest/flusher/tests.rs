//! The flusher against a real WAL and embedded store: what the store refuses for good and what
//! cannot be decoded goes to the quarantine, and everything after it is still stored.

use std::time::{Duration, Instant};

use super::*;
use crate::ingest::quarantine::cli::{run, QuarantineAction, QuarantineArgs};
use crate::ingest::{parse_ndjson, Window};
use crate::model::reading::sample;
use crate::model::{
    ApiReading, InstanceName, Reading, ReadingKind, Seq, ServiceName, Settings, TimeBucket,
};
use crate::store::embedded::EmbeddedStore;
use crate::store::{PageRequest, SeriesEntry, WriteBatch};
use crate::wal::WalConfig;

/// The embedded store, refusing for good every batch with a reading of service `poison`.
struct Picky(EmbeddedStore);

impl Store for Picky {
    fn settings(&self) -> &Settings {
        self.0.settings()
    }

    async fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let readings = batch.to_readings();
        let poisoned = readings.iter().any(|r| r.service().as_str() == "poison");
        if poisoned {
            let refusal = std::io::Error::other("a value this store refuses");
            return Err(StoreError::rejected("writing readings", refusal));
        }
        self.0.write(batch).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().await
    }

    async fn read_page<K: ReadingKind>(&self, request: &PageRequest) -> Result<Vec<K>, StoreError> {
        self.0.read_page(request).await
    }

    async fn read_latest<K: ReadingKind>(
        &self,
        shard: Seq,
        service: Option<&ServiceName>,
    ) -> Result<Vec<K>, StoreError> {
        self.0.read_latest(shard, service).await
    }

    async fn read_series(
        &self,
        service: &ServiceName,
        bucket: TimeBucket,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        self.0.read_series(service, bucket).await
    }

    async fn read_rollups(
        &self,
        request: &crate::rollup::RollupRequest,
    ) -> Result<Vec<crate::rollup::RollupRow>, StoreError> {
        self.0.read_rollups(request).await
    }
}

fn record(service: &str, instance: &str) -> Vec<u8> {
    let reading = ApiReading {
        service: ServiceName::parse(service).unwrap(),
        instance: InstanceName::parse(instance).unwrap(),
        timestamp: TimestampMs::now(),
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
    let store = Arc::new(Picky(
        EmbeddedStore::open(&dir.path().join("store")).unwrap(),
    ));
    let metrics = Arc::new(Metrics::new());
    let config = FlusherConfig {
        // Records are appended once the flusher caught up with the previous one, so each is a
        // batch of its own (a batch ends where the reader finds no more records).
        max_read_bytes: 1,
        retry_initial: Duration::from_millis(1),
        retry_max: Duration::from_millis(10),
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

/// A store recording the ids it is given; `wal_ids` is what it answers to `Store::wal_ids`.
struct Ids {
    wal_ids: bool,
    seen: std::sync::Mutex<Vec<crate::model::ReadingId>>,
    settings: Settings,
}

impl Store for Ids {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn wal_ids(&self) -> bool {
        self.wal_ids
    }

    async fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        let readings = batch.to_readings();
        let ids = readings.iter().map(|r| match r {
            Reading::Api(r) => r.id,
            Reading::Host(r) => r.id,
        });
        self.seen.lock().unwrap().extend(ids);
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn read_page<K: ReadingKind>(&self, _: &PageRequest) -> Result<Vec<K>, StoreError> {
        Ok(Vec::new())
    }

    async fn read_latest<K: ReadingKind>(
        &self,
        _: Seq,
        _: Option<&ServiceName>,
    ) -> Result<Vec<K>, StoreError> {
        Ok(Vec::new())
    }

    async fn read_series(
        &self,
        _: &ServiceName,
        _: TimeBucket,
    ) -> Result<Vec<SeriesEntry>, StoreError> {
        Ok(Vec::new())
    }

    async fn read_rollups(
        &self,
        _: &crate::rollup::RollupRequest,
    ) -> Result<Vec<crate::rollup::RollupRow>, StoreError> {
        Ok(Vec::new())
    }
}

/// Flushes one record through a store answering `wal_ids`; returns the id it was accepted
/// with and the id the store got.
async fn flush_one(wal_ids: bool) -> (crate::model::ReadingId, crate::model::ReadingId) {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalConfig::new(dir.path().join("wal"))).unwrap();
    let store = Arc::new(Ids {
        wal_ids,
        seen: std::sync::Mutex::default(),
        settings: Settings::default(),
    });
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
