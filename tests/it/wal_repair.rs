//! `--wal-repair` as `serve` runs it: a damaged record is dropped alone, the records after it
//! are kept, and the report counts the dropped readings from the damaged payload itself.

use std::sync::Arc;

use serde_json::json;
use timebucket::ingest::record::reading_count;
use timebucket::ingest::{gate, AcceptConfig, Acceptor, BodyFormat};
use timebucket::telemetry::Metrics;
use timebucket::wal::{Wal, WalConfig, WalError};

fn body(batch: usize, readings: usize) -> bytes::Bytes {
    let t = chrono::Utc::now().timestamp_millis();
    let readings: Vec<_> = (0..readings)
        .map(|i| {
            json!({"service": "repair", "instance": "i", "method": "GET",
            "path": format!("/b{batch}/r{i}"), "code": 200, "duration_ms": 1, "timestamp": t})
        })
        .collect();
    serde_json::to_vec(&json!({ "api": readings }))
        .unwrap()
        .into()
}

#[tokio::test]
async fn repair_drops_one_damaged_record_keeps_the_rest_and_counts_its_readings() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        count_readings: reading_count,
        ..WalConfig::new(dir.path())
    };
    let wal = Wal::open(config.clone()).unwrap();
    let acceptor = Acceptor::new(
        wal.clone(),
        AcceptConfig {
            limits: timebucket::ingest::AcceptLimits {
                max_concurrent: 1,
                ..Default::default()
            },
            retention_ms: 24 * 3600 * 1000,
        },
        Arc::new(Metrics::new()),
    );
    for (batch, readings) in [10, 20, 30].into_iter().enumerate() {
        let slot = acceptor.admit().await.unwrap();
        acceptor
            .accept(
                slot,
                body(batch, readings),
                false,
                BodyFormat::Json,
                gate::open(),
            )
            .await
            .unwrap();
    }
    let records = wal.reader(wal.confirmed()).next_batch(usize::MAX).unwrap();
    assert_eq!(records.len(), 3);
    let middle = &records[1];
    drop(acceptor);
    wal.close().unwrap();

    // A bit flip in the middle of the second record's payload.
    let segment = dir
        .path()
        .join(format!("{:020}.seg", middle.position.segment.0));
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = (middle.position.offset + 8) as usize + middle.payload.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&segment, bytes).unwrap();

    let err = Wal::open(config.clone())
        .err()
        .expect("corruption is refused");
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("--wal-repair"), "{err}");

    let wal = Wal::open(WalConfig {
        repair: true,
        ..config
    })
    .unwrap();
    let report = wal.repair_report();
    assert_eq!((report.dropped_records, report.dropped_readings), (1, 20));
    assert!(!report.has_unknown_loss(), "{report:?}");
    let kept: Vec<_> = wal
        .reader(wal.confirmed())
        .next_batch(usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| reading_count(&r.payload))
        .collect();
    assert_eq!(kept, [Some(10), Some(30)]);
}
