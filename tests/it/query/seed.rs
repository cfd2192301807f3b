//! The seeded keyspace of the query tests, and the answers computed from it independently.
//!
//! Five hours of API readings of `shop` (plus `other`, which must never leak in), written
//! straight through the store in shuffled batches: readings exactly on bucket boundaries and
//! one millisecond before, several readings sharing one instant (in one partition and across
//! shards), summaries with `count` up to 50, and a late older reading written after a newer
//! one of its series. Host samples of two instances that also serve API readings and of one
//! host-only instance.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat};
use serde_json::{json, Value};
use timebucket::model::{
    ApiPath, ApiReading, HostGauges, HostReading, HttpMethod, InstanceName, Reading, ReadingId,
    ServiceName, StatusCode, TimestampMs,
};
use timebucket::query::QueryLimits;
use timebucket::store::cql::CqlStore;
use timebucket::store::{SeriesSeen, Store, WriteBatch};

use crate::support::{cql_node, drop_keyspace, spawn_app, AppOptions, TestApp};

/// The seed's start: a bucket start (one-hour buckets) eight hours ago, so the five hours of
/// readings lie within the retention, which both stores count from the readings' own time.
pub fn t0() -> i64 {
    static START: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| {
        let now = chrono::Utc::now().timestamp_millis();
        (now / HOUR - 8) * HOUR
    });
    *START
}

pub const HOUR: i64 = 3_600_000;
pub const MINUTE: i64 = 60_000;

/// What was written.
pub struct Seed {
    pub api: Vec<ApiReading>,
    pub host: Vec<HostReading>,
}

fn api(service: &str, instance: &str, method: &str, path: &str, code: i64, at: i64) -> ApiReading {
    ApiReading {
        id: ReadingId::new(),
        service: ServiceName::parse(service).unwrap(),
        instance: InstanceName::parse(instance).unwrap(),
        method: HttpMethod::parse(method).unwrap(),
        path: ApiPath::parse(path).unwrap(),
        code: StatusCode::parse(code).unwrap(),
        duration_ms: 1.0,
        count: 1,
        timestamp: TimestampMs::from_millis(at),
    }
}

fn generate() -> (Vec<ApiReading>, Vec<HostReading>, ApiReading) {
    let mut rng = fastrand::Rng::with_seed(20240301);
    let instances = ["i-1", "i-2", "i-3"];
    let paths = ["/cart", "/pay", "/users/{id}"];
    let codes = [200, 200, 200, 201, 404, 500, 503];
    let random = |service: &str, at: i64, rng: &mut fastrand::Rng| {
        let mut r = api(
            service,
            instances[rng.usize(0..3)],
            ["GET", "POST"][rng.usize(0..2)],
            paths[rng.usize(0..3)],
            codes[rng.usize(0..codes.len())],
            at,
        );
        // Log-normal-ish durations; one reading in three summarises up to 50 requests.
        r.duration_ms = (rng.f64() * 6.0).exp() * 0.5;
        if rng.u8(0..3) == 0 {
            r.count = rng.u32(2..=50);
        }
        r
    };
    let mut readings: Vec<ApiReading> = (0..2400)
        .map(|_| random("shop", t0() + rng.i64(0..5 * HOUR), &mut rng))
        .collect();
    // Bucket boundaries, and the last millisecond before them, in three shards at once.
    for k in 0..=5 {
        for at in [t0() + k * HOUR, t0() + k * HOUR - 1] {
            for instance in instances {
                let mut r = random("shop", at, &mut rng);
                r.instance = InstanceName::parse(instance).unwrap();
                readings.push(r);
            }
        }
    }
    // Readings of one series at one instant: one partition, ordered by id alone.
    for _ in 0..4 {
        let mut r = api("shop", "i-2", "GET", "/pay", 200, t0() + 2 * HOUR + 777);
        r.duration_ms = 3.25;
        readings.push(r);
    }
    // The newest reading of (i-1, POST, /cart), then a late one that is older.
    readings.push(api(
        "shop",
        "i-1",
        "POST",
        "/cart",
        200,
        t0() + 5 * HOUR - 3 * MINUTE,
    ));
    let late = api("shop", "i-1", "POST", "/cart", 503, t0() + 30 * MINUTE);
    // Another service at the same times, which no `shop` answer may contain.
    readings.extend((0..300).map(|_| random("other", t0() + rng.i64(0..5 * HOUR), &mut rng)));

    let mut host = Vec::new();
    for (i, instance) in ["i-1", "i-2", "h-9"].into_iter().enumerate() {
        for step in 0..30 {
            let at = t0() + step * 10 * MINUTE + i as i64 * 1000;
            host.push(HostReading {
                id: ReadingId::new(),
                service: ServiceName::parse("shop").unwrap(),
                instance: InstanceName::parse(instance).unwrap(),
                timestamp: TimestampMs::from_millis(at),
                gauges: HostGauges {
                    cpu_percent: Some(rng.f64() * 100.0),
                    mem_used_bytes: Some(rng.i64(1 << 20..1 << 30)),
                    mem_total_bytes: Some(1 << 30),
                    available: (step % 7 != 0).then(|| rng.u8(0..4) != 0),
                    heap_bytes: (i == 0).then(|| rng.i64(0..1 << 24)),
                    ..HostGauges::default()
                },
            });
        }
    }
    (readings, host, late)
}

/// A running service over a keyspace holding the seed, with `limits`.
pub async fn seeded_app(limits: QueryLimits) -> (TestApp, Seed) {
    let app = spawn_app(AppOptions {
        query: limits,
        ..AppOptions::default()
    })
    .await;
    let store = CqlStore::open(&[cql_node()], &app.keyspace).await.unwrap();
    let (mut api, host, late) = generate();
    fastrand::Rng::with_seed(9).shuffle(&mut api);
    let mut batches: Vec<Vec<Reading>> = api
        .chunks(700)
        .map(|chunk| chunk.iter().cloned().map(Reading::Api).collect())
        .collect();
    batches.push(host.iter().cloned().map(Reading::Host).collect());
    batches.push(vec![Reading::Api(late.clone())]);
    // Written as the flusher writes: each batch with its partial rollups (the keyspace is new,
    // so queries read rollups wherever the step allows), under a piece of its own.
    let writer = uuid::Uuid::new_v4();
    for (i, batch) in batches.into_iter().enumerate() {
        let piece = timebucket::rollup::Piece {
            writer,
            segment: i as u64,
            start: 0,
            last: 0,
        };
        let rollups = timebucket::rollup::partials(&batch, piece, TimestampMs::from_millis(0));
        let mut batch = WriteBatch::build(batch, store.settings(), &SeriesSeen::new(0));
        batch.rollups = rollups;
        store.write(&batch).await.unwrap();
    }
    api.push(late);
    (app, Seed { api, host })
}

/// Stops the service and drops its keyspace (a passing test leaves nothing behind: hundreds of
/// leftover keyspaces exhaust a small test node's heap).
pub async fn finish(app: TestApp) {
    let keyspace = app.keyspace.clone();
    app.stop().await.unwrap();
    drop_keyspace(&keyspace).await;
}

/// `2024-03-01T08:00:00.000Z` (RFC 3339, milliseconds, UTC)
pub fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `value` as the test reads it back from an answer: serde_json's default number parser is not
/// correctly rounded in the last bit, so expected values take the same text round trip as the
/// answers (the text itself, shortest round-trip digits, is the same on both sides).
pub fn as_parsed(value: Value) -> Value {
    serde_json::from_str(&value.to_string()).unwrap()
}

/// An API reading as `/v1/readings` and `/v1/latest` must show it.
pub fn api_json(r: &ApiReading) -> Value {
    as_parsed(json!({
        "id": r.id.uuid().to_string(),
        "service": r.service.as_str(),
        "instance": r.instance.as_str(),
        "method": r.method.as_str(),
        "path": r.path.as_str(),
        "code": r.code.get(),
        "duration_ms": r.duration_ms,
        "count": r.count,
        "timestamp": rfc3339(r.timestamp.millis()),
    }))
}

/// The `shop` readings in `[from, to]` passing `keep`, oldest first by `(timestamp, id)`.
pub fn shop_in(
    seed: &Seed,
    from: i64,
    to: i64,
    keep: impl Fn(&ApiReading) -> bool,
) -> Vec<&ApiReading> {
    let mut out: Vec<&ApiReading> = seed
        .api
        .iter()
        .filter(|r| r.service.as_str() == "shop")
        .filter(|r| (from..=to).contains(&r.timestamp.millis()) && keep(r))
        .collect();
    out.sort_by_key(|r| (r.timestamp, r.id));
    out
}

/// `instance -> {(method, path)}` of `shop` over the one-hour buckets overlapping `[from, to]`.
pub fn series_in(seed: &Seed, from: i64, to: i64) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let bucket = |ms: i64| ms.div_euclid(HOUR);
    let buckets = bucket(from)..=bucket(to);
    let mut out: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for r in seed.api.iter().filter(|r| r.service.as_str() == "shop") {
        if buckets.contains(&bucket(r.timestamp.millis())) {
            out.entry(r.instance.to_string())
                .or_default()
                .insert((r.method.to_string(), r.path.to_string()));
        }
    }
    for h in &seed.host {
        if buckets.contains(&bucket(h.timestamp.millis())) {
            out.entry(h.instance.to_string()).or_default();
        }
    }
    out
}

/// The exact nearest-rank quantile of durations weighted by count.
pub fn weighted_quantile(readings: &[&ApiReading], per_mille: u64) -> f64 {
    let mut sorted: Vec<(f64, u64)> = readings
        .iter()
        .map(|r| (r.duration_ms, u64::from(r.count)))
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = sorted.iter().map(|(_, c)| c).sum();
    let rank = (total * per_mille).div_ceil(1000).max(1);
    let mut seen = 0;
    for (duration, count) in sorted {
        seen += count;
        if seen >= rank {
            return duration;
        }
    }
    unreachable!("the rank is within the total")
}
