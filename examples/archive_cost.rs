//! What the bucket archive costs on disk: generated API readings written to an embedded store,
//! exported with `timebucket archive export`'s code path; prints the export's summary (bytes
//! per reading of the Parquet files) and MiB per million readings.
//!
//! ```sh
//! cargo run --release --example archive_cost              # 1,000,000 readings
//! READINGS=200000 cargo run --example archive_cost
//! ```
//!
//! The shape is the ingest benchmark's: 8 services × 6 instances × 20 paths, 2 methods, 5 status
//! codes, log-normal durations (one reading in ten a summary of up to 50 requests), spread over
//! 6 one-hour buckets that ended before now; so 48 files of about 21,000 readings each.

use std::sync::Arc;

use timebucket::archive::Exporter;
use timebucket::model::{
    ApiPath, ApiReading, HttpMethod, InstanceName, Reading, ReadingId, ServiceName, StatusCode,
    TimestampMs,
};
use timebucket::store::embedded::EmbeddedStore;
use timebucket::store::{SeriesSeen, Store, WriteBatch};
use uuid::Uuid;

const HOUR_MS: i64 = 3_600_000;
const HOURS: i64 = 6;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let readings: usize = match std::env::var("READINGS") {
        Ok(n) => n.parse()?,
        Err(_) => 1_000_000,
    };
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(&dir.path().join("store"))?;
    let start = (TimestampMs::now().millis() / HOUR_MS - HOURS - 1) * HOUR_MS;
    let mut rng = fastrand::Rng::with_seed(22);
    let services: Vec<ServiceName> = (0..8)
        .map(|i| ServiceName::parse(&format!("service-{i}")).unwrap())
        .collect();
    let instances: Vec<InstanceName> = (0..6)
        .map(|i| InstanceName::parse(&format!("10.0.0.{i}:8080")).unwrap())
        .collect();
    let paths: Vec<ApiPath> = (0..20)
        .map(|i| ApiPath::parse(&format!("/api/v1/resource-{i}/{{id}}")).unwrap())
        .collect();
    let methods = ["GET", "POST"].map(|m| HttpMethod::parse(m).unwrap());
    let codes = [200, 200, 201, 404, 503].map(|c| StatusCode::parse(c).unwrap());
    let written = std::time::Instant::now();
    let mut left = readings;
    while left > 0 {
        let n = left.min(20_000);
        left -= n;
        let batch: Vec<Reading> = (0..n)
            .map(|_| {
                let at = start + rng.i64(0..HOURS * HOUR_MS);
                // A UUIDv7 of the reading's own time, as ingest would have given it then.
                let id = Uuid::new_v7(uuid::Timestamp::from_unix(
                    uuid::NoContext,
                    (at / 1000) as u64,
                    (at % 1000) as u32 * 1_000_000,
                ));
                Reading::Api(ApiReading {
                    id: ReadingId::from_uuid(id),
                    service: services[rng.usize(0..services.len())].clone(),
                    instance: instances[rng.usize(0..instances.len())].clone(),
                    method: methods[rng.usize(0..2)].clone(),
                    path: paths[rng.usize(0..paths.len())].clone(),
                    code: codes[rng.usize(0..codes.len())],
                    duration_ms: ((rng.f64() * 5.0).exp() * 2.0 * 1000.0).round() / 1000.0,
                    count: if rng.u8(0..10) == 0 {
                        rng.u32(2..=50)
                    } else {
                        1
                    },
                    timestamp: TimestampMs::from_millis(at),
                })
            })
            .collect();
        let batch = WriteBatch::build(batch, store.settings(), &SeriesSeen::new(0));
        store.write(&batch).await?;
    }
    println!("wrote {readings} readings in {:.1?}", written.elapsed());
    let out = tempfile::tempdir()?;
    let exported = std::time::Instant::now();
    let mut exporter = Exporter::open(Arc::new(store), out.path())?;
    let from = TimestampMs::from_millis(start);
    let to = TimestampMs::from_millis(start + HOURS * HOUR_MS);
    let summary = exporter.export_range(from, to, &services).await?;
    println!("{summary} in {:.1?}", exported.elapsed());
    println!(
        "archive: {:.1} MiB per million readings",
        summary.bytes as f64 / summary.rows as f64 * 1e6 / (1024.0 * 1024.0)
    );
    Ok(())
}
