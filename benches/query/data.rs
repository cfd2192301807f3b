//! The bench's data and its baseline reader, straight through the driver.

use std::time::Duration;

use anyhow::Context;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::value::CqlTimestamp;
use timebucket::migrate::{self, Replication, SettingsRequest, UpOptions};
use timebucket::model::{
    ApiPath, ApiReading, HttpMethod, InstanceName, Reading, ReadingId, ServiceName, Settings,
    StatusCode, TimeBucket, TimestampMs,
};
use timebucket::store::cql::{CqlStore, Keyspace};
use timebucket::store::{SeriesSeen, Store, WriteBatch};

/// A fresh keyspace with every shipped migration applied (default settings, RF 1).
pub async fn migrated_keyspace(session: &Session) -> anyhow::Result<Keyspace> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let keyspace: Keyspace = format!("tb_bench_query_{}", &id[..10])
        .parse()
        .map_err(anyhow::Error::msg)?;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let options = UpOptions {
        keyspace: keyspace.clone(),
        replication: Replication::Simple(1),
        settings: SettingsRequest::default(),
        lock_wait: Duration::from_secs(120),
    };
    migrate::up(session, &migrate::source::load_dir(&dir)?, &options)
        .await
        .with_context(|| format!("migrate up {keyspace}"))?;
    Ok(keyspace)
}

/// `readings` API readings of `service` spread evenly at random over `[start, start + span)`:
/// `instances` × `paths` series, mostly 2xx, log-normal durations, one in ten a summary.
pub fn readings(
    service: &str,
    start_ms: i64,
    span_ms: i64,
    readings: usize,
    instances: usize,
    paths: usize,
    seed: u64,
) -> Vec<ApiReading> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let service = ServiceName::parse(service).expect("valid");
    let instances: Vec<InstanceName> = (0..instances)
        .map(|i| InstanceName::parse(&format!("{service}-{i}")).expect("valid"))
        .collect();
    let paths: Vec<ApiPath> = (0..paths)
        .map(|p| ApiPath::parse(&format!("/api/v1/resource{p}/{{id}}")).expect("valid"))
        .collect();
    let methods = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
        .map(|m| HttpMethod::parse(m).expect("valid"));
    let codes = [200, 200, 200, 200, 200, 201, 204, 304, 400, 404, 500, 503];
    (0..readings)
        .map(|_| ApiReading {
            id: ReadingId::new(),
            service: service.clone(),
            instance: instances[rng.usize(..instances.len())].clone(),
            method: methods[rng.usize(..methods.len())].clone(),
            path: paths[rng.usize(..paths.len())].clone(),
            code: StatusCode::parse(codes[rng.usize(..codes.len())]).expect("valid"),
            duration_ms: (rng.f64() * 2.0 + rng.f64() * 2.0).exp(),
            count: if rng.u8(..10) == 0 {
                rng.u32(2..=50)
            } else {
                1
            },
            timestamp: TimestampMs::from_millis(start_ms + rng.i64(0..span_ms)),
        })
        .collect()
}

/// Writes `readings` through the store's own (driver) write path, 20,000 at a time.
pub async fn seed(store: &CqlStore, readings: &[ApiReading]) -> anyhow::Result<()> {
    for chunk in readings.chunks(20_000) {
        let batch: Vec<Reading> = chunk.iter().cloned().map(Reading::Api).collect();
        let batch = WriteBatch::build(batch, store.settings(), &SeriesSeen::new(0));
        store.write(&batch).await.context("seeding")?;
    }
    Ok(())
}

/// A row as the baseline decodes it: every column of the reading, owned.
pub type Row = (
    CqlTimestamp,
    uuid::Uuid,
    String,
    String,
    String,
    i32,
    f64,
    i32,
);

/// The baseline: one plain paged query per partition (`page_rows` per page), one partition
/// after another, every row decoded and kept.
pub async fn sequential(
    session: &Session,
    statement: &scylla::statement::prepared::PreparedStatement,
    service: &str,
    settings: &Settings,
    (from, to): (i64, i64),
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let buckets = TimeBucket::covering(
        TimestampMs::from_millis(from),
        TimestampMs::from_millis(to),
        settings.bucket_width,
    );
    for bucket in buckets {
        for seq in settings.shards.all() {
            let values = (
                service,
                bucket.epoch_seconds(),
                seq.get(),
                CqlTimestamp(from),
                CqlTimestamp(to),
            );
            let mut stream = session
                .execute_iter(statement.clone(), values)
                .await?
                .rows_stream::<Row>()?;
            while let Some(row) = stream.try_next().await? {
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// The baseline's statement: the plain range query of one partition.
pub async fn prepare_baseline(
    session: &Session,
    keyspace: &Keyspace,
    page_rows: u32,
) -> anyhow::Result<scylla::statement::prepared::PreparedStatement> {
    let mut statement = session
        .prepare(format!(
            "SELECT timestamp, reading_id, instance, method, path, code, duration_ms, count \
             FROM {keyspace}.metric_readings WHERE service_name = ? AND time_bucket = ? AND seq = ? \
             AND timestamp >= ? AND timestamp <= ?"
        ))
        .await?;
    statement.set_page_size(i32::try_from(page_rows)?);
    Ok(statement)
}
