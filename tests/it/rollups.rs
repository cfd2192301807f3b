//! Rollups end to end, on both stores: readings go through a real WAL and the flusher, then
//! `/v1/stats` and `/v1/stats/host` answer from raw readings and from rollups alike.
//!
//! The data has late arrivals (records whose readings are older than earlier records'),
//! readings on minute and hour boundaries, two writers (two WAL directories) on the same
//! minutes, and a full replay: the WAL of the first writer is copied without its checkpoint and
//! flushed again, with other batch cuts, as after a kill -9 before any confirmation. Counts,
//! max and percentiles must be equal (the sketch merges bucket for bucket), means and rates
//! equal up to float rounding, and the total must be the readings' total: nothing is counted
//! twice.

mod per_code;
mod promql;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;

use timebucket::ingest::flusher::FlusherHandle;
use timebucket::ingest::quarantine::Quarantine;
use timebucket::ingest::record::{encode, Accepted};
use timebucket::ingest::{Flusher, FlusherConfig};
use timebucket::model::ReadingKind;
use timebucket::model::{
    ApiPath, ApiReading, HostGauges, HostReading, HttpMethod, InstanceName, Reading, ReadingId,
    ServiceName, StatusCode, TimestampMs,
};
use timebucket::query::answer::{HostStatsAnswer, StatsAnswer};
use timebucket::query::requests::{HostStatsRequest, StatsRequest};
use timebucket::query::{Queries, QueryLimits};
use timebucket::rollup::rebuild::{rebuild, RebuildRequest};
use timebucket::rollup::{coverage, Resolution, RollupRequest};
use timebucket::store::{SeriesSeen, Store, WriteBatch};
use timebucket::telemetry::Metrics;
use timebucket::wal::{Wal, WalConfig};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// An hour-aligned start four hours ago: the data spans three hours, within every retention.
/// The store is new, so the flusher writes rollups for every reading.
fn base_ms<S: Store>(store: &S) -> i64 {
    assert_eq!(store.rollups_written_since(), coverage::EVERYTHING);
    (Utc::now().timestamp_millis() / HOUR - 4) * HOUR
}

/// Records (each a list of readings) of `service` spread over three hours from `base`.
fn records(seed: u64, service: &str, base: i64, n: usize) -> Vec<Vec<Reading>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let service = ServiceName::parse(service).unwrap();
    (0..n)
        .map(|i| {
            // Records mostly move forward in time; every fifth is late by up to an hour.
            let mut at = base + (i as i64 * 3 * HOUR) / n as i64;
            if i % 5 == 4 {
                at = (at - rng.i64(0..HOUR)).max(base);
            }
            (0..rng.usize(1..20))
                .map(|j| {
                    let t = match j % 7 {
                        // On a minute boundary, on the last ms of a minute, on an hour boundary.
                        0 => at / MINUTE * MINUTE,
                        1 => at / MINUTE * MINUTE - 1,
                        2 => at / HOUR * HOUR,
                        _ => at + rng.i64(0..5 * MINUTE),
                    }
                    .clamp(base, base + 3 * HOUR - 1);
                    let instance = InstanceName::parse(&format!("i-{}", rng.u8(0..3))).unwrap();
                    if j % 4 == 3 {
                        Reading::Host(HostReading {
                            id: ReadingId::new(),
                            service: service.clone(),
                            instance,
                            timestamp: TimestampMs::from_millis(t),
                            gauges: HostGauges {
                                cpu_percent: Some(rng.f64() * 400.0),
                                mem_used_bytes: Some(rng.i64(0..1 << 30)),
                                available: rng.bool().then(|| rng.bool()),
                                ..HostGauges::default()
                            },
                        })
                    } else {
                        Reading::Api(ApiReading {
                            id: ReadingId::new(),
                            service: service.clone(),
                            instance,
                            method: HttpMethod::parse(["GET", "POST"][rng.usize(0..2)]).unwrap(),
                            path: ApiPath::parse(["/a", "/b", "/c"][rng.usize(0..3)]).unwrap(),
                            code: StatusCode::parse([200, 404, 503][rng.usize(0..3)]).unwrap(),
                            duration_ms: rng.f64() * 250.0,
                            count: rng.u32(1..5),
                            timestamp: TimestampMs::from_millis(t),
                        })
                    }
                })
                .collect()
        })
        .collect()
}

/// Runs a flusher over `wal` into `store`, appending `records` in `steps` groups and waiting
/// for each group to be flushed (so pieces end where the reader ran dry: no minimum age), then
/// drains it.
async fn flush<S: Store>(
    wal: &Wal,
    store: Arc<S>,
    data: &Path,
    records: &[Vec<Reading>],
    steps: usize,
) {
    let config = FlusherConfig {
        retry_initial: Duration::from_millis(5),
        min_piece_age: Duration::ZERO,
        ..FlusherConfig::default()
    };
    let (flusher, handle, _) = flusher(wal, store, data, config);
    let running = tokio::spawn(flusher.run());
    let per_step = records.len().div_ceil(steps.max(1)).max(1);
    for group in records.chunks(per_step) {
        append(wal, group).await;
        wait_flushed(wal).await;
    }
    wait_flushed(wal).await;
    handle.drain();
    running.await.unwrap().unwrap();
}

async fn wait_flushed(wal: &Wal) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while wal.stats().backlog_bytes > 0 {
        assert!(Instant::now() < deadline, "the flusher is stuck");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Copies every file of `from` into `to` but the WAL checkpoint: a WAL nothing of which was
/// confirmed, as after a crash before the first confirmation.
fn copy_unconfirmed(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.starts_with("confirmed")) {
            continue;
        }
        std::fs::copy(entry.path(), to.join(name)).unwrap();
    }
}

fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

async fn api_stats<S: Store>(queries: &Queries<S>, query: &str) -> StatsAnswer {
    let request = StatsRequest::parse(&pairs(query), queries.limits()).unwrap();
    queries.stats(&request).await.unwrap()
}

async fn host_stats<S: Store>(queries: &Queries<S>, query: &str) -> HostStatsAnswer {
    let request = HostStatsRequest::parse(&pairs(query), queries.limits()).unwrap();
    queries.host_stats(&request).await.unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn assert_same_api(raw: &StatsAnswer, rolled: &StatsAnswer, what: &str) {
    assert_eq!(raw.groups.len(), rolled.groups.len(), "{what}: groups");
    for (r, o) in raw.groups.iter().zip(&rolled.groups) {
        assert_eq!(r.key, o.key, "{what}");
        assert_eq!(r.points.len(), o.points.len(), "{what} {:?}: points", r.key);
        for (p, q) in r.points.iter().zip(&o.points) {
            let at = format!("{what} {:?} at {}", r.key, p.t);
            assert_eq!((&p.t, p.count, p.max_ms), (&q.t, q.count, q.max_ms), "{at}");
            assert_eq!(
                (p.p50_ms, p.p90_ms, p.p99_ms),
                (q.p50_ms, q.p90_ms, q.p99_ms),
                "{at}"
            );
            for (a, b) in [
                (p.rate, q.rate),
                (p.mean_ms, q.mean_ms),
                (p.error_rate, q.error_rate),
                (p.client_error_rate, q.client_error_rate),
            ] {
                assert!(close(a, b), "{at}: {a} vs {b}");
            }
        }
    }
}

fn assert_same_host(raw: &HostStatsAnswer, rolled: &HostStatsAnswer, what: &str) {
    assert_eq!(raw.instances.len(), rolled.instances.len(), "{what}");
    for (r, o) in raw.instances.iter().zip(&rolled.instances) {
        assert_eq!(r.points.len(), o.points.len(), "{what} {}", r.instance);
        for (p, q) in r.points.iter().zip(&o.points) {
            let at = format!("{what} {} at {}", r.instance, p.t);
            assert_eq!((&p.t, p.samples), (&q.t, q.samples), "{at}");
            assert_eq!(
                p.gauges.keys().collect::<Vec<_>>(),
                q.gauges.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (name, g) in &p.gauges {
                let h = &q.gauges[name];
                assert_eq!(g.max, h.max, "{at} {name} max");
                assert!(
                    close(g.mean, h.mean),
                    "{at} {name}: {} vs {}",
                    g.mean,
                    h.mean
                );
            }
            match (p.availability, q.availability) {
                (Some(a), Some(b)) => assert!(close(a, b), "{at}: availability"),
                (a, b) => assert_eq!(a, b, "{at}: availability"),
            }
        }
    }
}

/// The case both stores run.
async fn raw_and_rollups_agree_through_replays_and_two_writers<S: Store>(store: Arc<S>) {
    let dir = tempfile::tempdir().unwrap();
    let base = base_ms(&*store);
    let service = "rollups";
    let first = records(1, service, base, 300);
    let second = records(2, service, base, 120);

    // Writer A, flushed in steps; then its WAL replayed whole from a copy with the same writer
    // id (a different cut of the same records); then writer B on the same minutes.
    let wal_a = Wal::open(WalConfig::new(dir.path().join("a"))).unwrap();
    flush(&wal_a, store.clone(), dir.path(), &first, 7).await;
    copy_unconfirmed(&dir.path().join("a"), &dir.path().join("replay"));
    let replay = Wal::open(WalConfig::new(dir.path().join("replay"))).unwrap();
    flush(&replay, store.clone(), dir.path(), &[], 1).await;
    let wal_b = Wal::open(WalConfig::new(dir.path().join("b"))).unwrap();
    flush(&wal_b, store.clone(), dir.path(), &second, 3).await;

    let requests = requests(&first) + requests(&second);
    let queries = Queries::new(store, QueryLimits::default());
    // Ranges with sub-minute and sub-hour edges, so every level and the raw edges are read.
    let from = TimestampMs::from_millis(base - 7_000).to_rfc3339();
    let to = TimestampMs::from_millis(base + 3 * HOUR - 13 * MINUTE + 1_234).to_rfc3339();
    let cases = [
        ("1h", "", vec!["1h", "1m", "raw"]),
        ("1m", "&group_by=path,code", vec!["1m", "raw"]),
        ("5m", "&group_by=instance,method", vec!["1m", "raw"]),
    ];
    for (step, extra, levels) in cases {
        let query = format!("service={service}&from={from}&to={to}&step={step}{extra}");
        let raw = api_stats(&queries, &format!("{query}&source=raw")).await;
        let rolled = api_stats(&queries, &format!("{query}&source=rollup")).await;
        assert_eq!(raw.source.as_ref().unwrap().levels, ["raw"]);
        let used = rolled.source.as_ref().unwrap();
        assert_eq!(
            (
                used.used.as_str(),
                used.levels.iter().map(String::as_str).collect::<Vec<_>>()
            ),
            ("rollup", levels),
            "step {step}"
        );
        assert_same_api(&raw, &rolled, &format!("step {step}{extra}"));
        let auto = api_stats(&queries, &format!("{query}&source=auto")).await;
        assert_eq!(auto.source, rolled.source, "auto reads rollups");
        let default = api_stats(&queries, &query).await;
        assert_eq!(default.source, auto.source, "auto unless asked");
    }
    // The whole data set from rollups alone: every request once.
    let all = format!(
        "service={service}&from={}&to={}&step=1h&source=rollup",
        TimestampMs::from_millis(base).to_rfc3339(),
        TimestampMs::from_millis(base + 3 * HOUR - 1).to_rfc3339()
    );
    let rolled = api_stats(&queries, &all).await;
    assert_eq!(rolled.source.as_ref().unwrap().levels, ["1h"]);
    let total: u64 = rolled
        .groups
        .iter()
        .flat_map(|g| &g.points)
        .map(|p| p.count)
        .sum();
    assert_eq!(total, requests, "every request counted exactly once");

    for (step, extra) in [("1h", ""), ("1m", "&instance=i-1")] {
        let query = format!("service={service}&from={from}&to={to}&step={step}{extra}");
        let raw = host_stats(&queries, &format!("{query}&source=raw")).await;
        let rolled = host_stats(&queries, &format!("{query}&source=rollup")).await;
        assert_eq!(rolled.source.as_ref().unwrap().used, "rollup");
        assert_same_host(&raw, &rolled, &format!("host step {step}{extra}"));
    }
}

#[tokio::test]
async fn embedded_raw_and_rollups_agree_through_replays_and_two_writers() {
    let (store, _dir) = crate::support::embedded_store();
    raw_and_rollups_agree_through_replays_and_two_writers(Arc::new(store)).await;
}

#[tokio::test]
async fn cql_raw_and_rollups_agree_through_replays_and_two_writers() {
    let (store, _keyspace) = crate::support::cql_store().await;
    raw_and_rollups_agree_through_replays_and_two_writers(Arc::new(store)).await;
}

/// `source=rollup` needs a step of whole minutes; an unknown source is named.
/// A flusher of `wal` into `store` with `config`, its quarantine in `data`; and its metrics.
fn flusher<S: Store>(
    wal: &Wal,
    store: Arc<S>,
    data: &Path,
    config: FlusherConfig,
) -> (Flusher<S>, FlusherHandle, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let (flusher, handle) = Flusher::new(
        wal.clone(),
        store,
        metrics.clone(),
        config,
        Quarantine::in_data_dir(data),
        watch::channel(true).0,
    );
    (flusher, handle, metrics)
}

/// Appends `records` to `wal`.
async fn append(wal: &Wal, records: &[Vec<Reading>]) {
    for readings in records {
        let payload = encode(&Accepted {
            at: TimestampMs::now(),
            readings: readings.clone(),
        });
        wal.append(payload).await.unwrap();
    }
}

/// Flushes what `wal` holds with `config` and drains it: everything is there to read, so
/// where pieces end depends on `config` alone.
async fn drain<S: Store>(wal: &Wal, store: Arc<S>, data: &Path, config: FlusherConfig) {
    let (flusher, handle, _) = flusher(wal, store, data, config);
    handle.drain();
    flusher.run().await.unwrap();
}

/// Requests of every API reading of `records`.
fn requests(records: &[Vec<Reading>]) -> u64 {
    records
        .iter()
        .flatten()
        .filter_map(|r| match r {
            Reading::Api(a) => Some(u64::from(a.count)),
            Reading::Host(_) => None,
        })
        .sum()
}

/// Records that arrive in steps, each step stored before the next comes (the reader catches up
/// after each, as under a steady load the store keeps up with): with no minimum age a piece
/// ends at every catch-up and writes partial rows for every series it touched; while a piece
/// is younger than `min_piece_age` it stays open (its WAL position is not confirmed, its
/// readings are stored) and the steps share one piece's rows, as many as when the same records
/// are flushed in one go. Raw and rollup answers agree either way.
#[tokio::test]
async fn a_young_piece_stays_open_where_the_reader_catches_up() {
    let (store, _store_dir) = crate::support::embedded_store();
    let store = Arc::new(store);
    let base = base_ms(&*store);
    let queries = Queries::new(store.clone(), QueryLimits::default());
    let stats = |service: &str, source: &str| {
        format!(
            "service={service}&from={}&to={}&step=1h&source={source}",
            TimestampMs::from_millis(base).to_rfc3339(),
            TimestampMs::from_millis(base + 3 * HOUR - 1).to_rfc3339()
        )
    };
    // The same records (same seed) in one go: one piece.
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalConfig::new(dir.path().join("wal"))).unwrap();
    append(&wal, &records(5, "whole", base, 60)).await;
    drain(&wal, store.clone(), dir.path(), FlusherConfig::default()).await;
    let mut rows = vec![stored_rows(&*store, "whole", base).await];
    for (service, min_piece_age) in [
        ("steps", Duration::ZERO),
        ("young", Duration::from_secs(3600)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(WalConfig::new(dir.path().join("wal"))).unwrap();
        let data = records(5, service, base, 60);
        let config = FlusherConfig {
            min_piece_age,
            ..FlusherConfig::default()
        };
        let (flusher, handle, metrics) = flusher(&wal, store.clone(), dir.path(), config);
        let running = tokio::spawn(flusher.run());
        for group in data.chunks(10) {
            // Each group is read (a batch of it written) before the next comes, so the reader
            // catches up in between.
            let before = batches_written(&metrics);
            append(&wal, group).await;
            let deadline = Instant::now() + Duration::from_secs(60);
            while batches_written(&metrics) == before {
                assert!(
                    Instant::now() < deadline,
                    "{service}: the group is not read"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        // (A drain asked for while the reader is still reading what came before the last
        // records would stop short of them: they would wait in the WAL for the next start.)
        if min_piece_age > Duration::ZERO {
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(wal.stats().backlog_bytes > 0, "the young piece is open");
        } else {
            wait_flushed(&wal).await;
        }
        handle.drain();
        running.await.unwrap().unwrap();
        assert_eq!(wal.stats().backlog_bytes, 0, "{service}: drained");
        let raw = api_stats(&queries, &stats(service, "raw")).await;
        let rolled = api_stats(&queries, &stats(service, "rollup")).await;
        assert_same_api(&raw, &rolled, service);
        assert_eq!(
            total(&rolled),
            requests(&data),
            "{service}: every request once"
        );
        let stored = stored_rows(&*store, service, base).await;
        assert_eq!(
            metrics.rollup.partial_rows.get(),
            stored as u64,
            "{service}: counted"
        );
        let pieces = metrics.rollup.pieces.get();
        if min_piece_age > Duration::ZERO {
            assert_eq!(pieces, 1, "the young piece ended once, at the drain");
        } else {
            assert!(pieces > 1, "a piece per step: {pieces}");
        }
        rows.push(stored);
    }
    let [whole, steps, young] = rows[..] else {
        unreachable!()
    };
    assert!(
        steps > whole,
        "a piece per step: {steps} rows, {whole} in one go"
    );
    assert_eq!(young, whole, "one piece however the steps came");
}

/// Batches the flusher has written (`timebucket_flush_duration_seconds_count`).
fn batches_written(metrics: &Metrics) -> f64 {
    let text = metrics.render();
    crate::support::sample(&text, "timebucket_flush_duration_seconds_count")
        .unwrap_or_else(|| panic!("no flush count in\n{text}"))
}

/// A piece that reaches the cell budget is recorded before its partials are written, and a
/// replay from its start (a kill -9 before its end was confirmed, with more records behind it)
/// ends its first piece where it ended, however it cuts its batches: every request is counted
/// once. The control: the same replay without the record ends pieces early elsewhere, one of
/// them across the crashed piece's end, and counts the readings between the two ends twice.
#[tokio::test]
async fn a_replay_ends_a_piece_that_reached_the_cell_budget_where_it_ended() {
    let (raw, rolled, expected) = replay_after_crash_past_the_budget(true).await;
    assert_eq!(total(&rolled), expected, "every request counted once");
    assert_same_api(&raw, &rolled, "after the replay");

    let (_, rolled, expected) = replay_after_crash_past_the_budget(false).await;
    assert!(
        total(&rolled) > expected,
        "without the record a replayed piece crosses the crashed one's end"
    );
}

/// A flusher with a budget of 100 cells writes one piece of 80 records (one batch), then more
/// records arrive in the same segment and the process dies before confirming; the WAL is
/// replayed in a batch per record (with the piece's record, or without it). The stats of the
/// three hours from raw readings and from rollups, and the requests posted.
async fn replay_after_crash_past_the_budget(keep_record: bool) -> (StatsAnswer, StatsAnswer, u64) {
    use timebucket::rollup::open_piece::FILE_NAME;

    let (store, _store_dir) = crate::support::embedded_store();
    let store = Arc::new(store);
    let dir = tempfile::tempdir().unwrap();
    let base = base_ms(&*store);
    let service = "budget";
    let (flushed, behind) = (records(3, service, base, 80), records(4, service, base, 40));
    let budget = FlusherConfig {
        max_piece_cells: 100,
        ..FlusherConfig::default()
    };
    let crashed = dir.path().join("crashed");
    let wal = Wal::open(WalConfig::new(&crashed)).unwrap();
    append(&wal, &flushed).await;
    drain(&wal, store.clone(), dir.path(), budget).await;
    assert!(crashed.join(FILE_NAME).exists(), "the piece is recorded");
    append(&wal, &behind).await;
    drop(wal);

    let replayed = dir.path().join("replayed");
    copy_unconfirmed(&crashed, &replayed);
    if !keep_record {
        std::fs::remove_file(replayed.join(FILE_NAME)).unwrap();
    }
    let wal = Wal::open(WalConfig::new(&replayed)).unwrap();
    // A batch per record: without the record, the budget ends pieces every few records.
    let small_batches = FlusherConfig {
        max_read_bytes: 1,
        ..budget
    };
    drain(&wal, store.clone(), dir.path(), small_batches).await;

    let queries = Queries::new(store, QueryLimits::default());
    let query = format!(
        "service={service}&from={}&to={}&step=1h",
        TimestampMs::from_millis(base).to_rfc3339(),
        TimestampMs::from_millis(base + 3 * HOUR - 1).to_rfc3339()
    );
    let raw = api_stats(&queries, &format!("{query}&source=raw")).await;
    let rolled = api_stats(&queries, &format!("{query}&source=rollup")).await;
    (raw, rolled, requests(&flushed) + requests(&behind))
}

#[test]
fn a_source_the_step_cannot_use_is_refused_by_name() {
    let limits = QueryLimits::default();
    let query = "service=s&from=0&to=3600000&step=90s&source=rollup";
    let error = StatsRequest::parse(&pairs(query), &limits).unwrap_err();
    assert_eq!(error.fields(), "source");
    let query = "service=s&from=0&to=3600000&step=1m&source=cache";
    let error = HostStatsRequest::parse(&pairs(query), &limits).unwrap_err();
    assert_eq!(error.fields(), "source");
}

/// Writes `records` straight through the store, as a version without rollups did: raw
/// readings only.
async fn write_raw<S: Store>(store: &S, records: &[Vec<Reading>]) {
    let settings = *store.settings();
    let readings: Vec<Reading> = records.iter().flatten().cloned().collect();
    for chunk in readings.chunks(500) {
        let batch = WriteBatch::build(chunk.to_vec(), &settings, &SeriesSeen::new(1000));
        store.write(&batch).await.unwrap();
    }
}

fn total(answer: &StatsAnswer) -> u64 {
    answer
        .groups
        .iter()
        .flat_map(|g| &g.points)
        .map(|p| p.count)
        .sum()
}

/// Readings stored before rollups: `auto` reads them raw; a rebuild computes their rollups and
/// lowers the recorded start, after which `auto` reads rollups with the same answers; a rerun
/// rewrites the same rows (same answers, no double counting).
async fn rebuild_fills_the_hours_before_the_flusher_s<S: Store>(store: Arc<S>, base: i64) {
    let service = "rebuilt";
    let now = Utc::now().timestamp_millis();
    assert!(
        store.rollups_written_since().millis() > now,
        "a store of readings before rollups"
    );
    let queries = Queries::new(store.clone(), QueryLimits::default());
    let from = TimestampMs::from_millis(base - 7_000).to_rfc3339();
    let to = TimestampMs::from_millis(base + 3 * HOUR - 13 * MINUTE + 1_234).to_rfc3339();
    let query = format!("service={service}&from={from}&to={to}&step=1h");
    let raw = api_stats(&queries, &format!("{query}&source=raw")).await;
    let before = api_stats(&queries, &query).await;
    assert_eq!(
        before.source.as_ref().unwrap().levels,
        ["raw"],
        "no rollups yet"
    );
    assert_same_api(&raw, &before, "before the rebuild");

    let request = RebuildRequest {
        from: TimestampMs::from_millis(base),
        // Past the flusher's first hour: cut there.
        to: TimestampMs::from_millis(now + 2 * HOUR),
        service: None,
    };
    let first = rebuild(store.clone(), &request, TimestampMs::now(), |_, _| {})
        .await
        .unwrap();
    assert!(first.range.cut_by_flusher, "{first:?}");
    assert_eq!(first.range.from.millis(), base);
    assert!(first.services >= 1 && first.rows > 0, "{first:?}");
    assert_eq!(first.since_lowered_to, Some(TimestampMs::from_millis(base)));
    let service_name = ServiceName::parse(service).unwrap();
    assert_eq!(
        store.rollups_since(&service_name).await.unwrap().millis(),
        base
    );

    for step in ["1h", "1m", "5m"] {
        let query = format!("service={service}&from={from}&to={to}&step={step}&group_by=code");
        let raw = api_stats(&queries, &format!("{query}&source=raw")).await;
        let auto = api_stats(&queries, &query).await;
        assert_eq!(auto.source.as_ref().unwrap().used, "rollup", "step {step}");
        assert_same_api(&raw, &auto, &format!("rebuilt, step {step}"));
    }
    let host_query = format!("service={service}&from={from}&to={to}&step=1h");
    let raw_host = host_stats(&queries, &format!("{host_query}&source=raw")).await;
    let auto_host = host_stats(&queries, &host_query).await;
    assert_same_host(&raw_host, &auto_host, "rebuilt host stats");

    // A rerun rewrites the same rows: the same answer, every request once.
    let again = rebuild(store.clone(), &request, TimestampMs::now(), |_, _| {})
        .await
        .unwrap();
    assert_eq!((again.rows, again.readings), (first.rows, first.readings));
    let whole = format!(
        "service={service}&from={}&to={}&step=1h",
        TimestampMs::from_millis(base).to_rfc3339(),
        TimestampMs::from_millis(base + 3 * HOUR - 1).to_rfc3339()
    );
    let rolled = api_stats(&queries, &whole).await;
    assert_eq!(rolled.source.as_ref().unwrap().levels, ["1h"]);
    let raw = api_stats(&queries, &format!("{whole}&source=raw")).await;
    assert_eq!(total(&rolled), total(&raw), "a rerun counts nothing twice");
    assert_same_api(&raw, &rolled, "after a rerun");
}

#[tokio::test]
async fn embedded_rebuild_fills_the_hours_before_the_flusher_s_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let base = old_hours();
    let store =
        embedded_store_from_before_rollups(dir.path(), &records(3, "rebuilt", base, 200)).await;
    rebuild_fills_the_hours_before_the_flusher_s(Arc::new(store), base).await;
}

/// The start of three hours of data, five hours ago.
fn old_hours() -> i64 {
    (Utc::now().timestamp_millis() / HOUR - 5) * HOUR
}

/// An embedded store holding `records` as a version without rollups left it: raw readings,
/// and no record of rollups (removed from its `meta` keyspace, where a version without rollups
/// never wrote it).
async fn embedded_store_from_before_rollups(
    dir: &Path,
    records: &[Vec<Reading>],
) -> timebucket::store::embedded::EmbeddedStore {
    let store = timebucket::store::embedded::EmbeddedStore::open(dir).unwrap();
    write_raw(&store, records).await;
    drop(store);
    {
        let db = fjall::Database::builder(dir).open().unwrap();
        let meta = db
            .keyspace("meta", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        for name in [coverage::WRITTEN_SINCE, coverage::SINCE] {
            meta.remove(name).unwrap();
        }
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    timebucket::store::embedded::EmbeddedStore::open(dir).unwrap()
}

#[tokio::test]
async fn cql_rebuild_fills_the_hours_before_the_flusher_s_idempotently() {
    let keyspace = crate::support::migrated_keyspace().await;
    let nodes = [crate::support::cql_node()];
    let store = timebucket::store::cql::CqlStore::open(&nodes, &keyspace)
        .await
        .unwrap();
    let base = old_hours();
    write_raw(&store, &records(3, "rebuilt", base, 200)).await;
    // As a version without rollups left it: no record of them.
    let session = crate::support::session().await;
    let forget = format!("DELETE FROM {keyspace}.timebucket_settings WHERE name IN (?, ?)");
    let name = timebucket::store::cql::rollup_coverage_name;
    session
        .query_unpaged(
            forget,
            (name(coverage::WRITTEN_SINCE), name(coverage::SINCE)),
        )
        .await
        .unwrap();
    let store = timebucket::store::cql::CqlStore::open(&nodes, &keyspace)
        .await
        .unwrap();
    rebuild_fills_the_hours_before_the_flusher_s(Arc::new(store), base).await;
}

/// The command as a user types it: refused with a clear message while another process holds
/// the embedded store, then run with a summary.
#[tokio::test]
async fn the_rebuild_command_names_a_held_store_then_runs() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("store");
    let now = Utc::now().timestamp_millis();
    let base = (now / HOUR - 3) * HOUR;
    let store = embedded_store_from_before_rollups(&dir, &records(4, "cli", base, 50)).await;
    let rebuild = |data: &Path| {
        crate::support::timebucket_command()
            .env_remove("TIMEBUCKET_CQL_NODES")
            .args(["rollup", "rebuild", "--from", &base.to_string(), "--to"])
            .arg((now + 2 * HOUR).to_string())
            .args(["--service", "cli", "--data-dir"])
            .arg(data)
            .output()
            .unwrap()
    };
    let held = rebuild(data.path());
    assert_eq!(held.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&held.stderr);
    assert!(stderr.contains("is in use"), "{stderr}");
    drop(store);
    let done = rebuild(data.path());
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        stdout.contains("rebuilt the rollups of 1 service(s), "),
        "{stdout}"
    );
    assert!(stdout.contains("queries read rollups from"), "{stdout}");
}

/// Retentions as `--rollup-minute-retention 1h --rollup-hour-retention 1d` ask for them.
fn short_rollup_retentions() -> timebucket::migrate::SettingsRequest {
    let args = timebucket::cli::SettingsArgs {
        bucket_width: None,
        shards: None,
        latest_shards: None,
        retention: None,
        compaction_window: None,
        rollup_minute_retention: Some(Duration::from_secs(3600)),
        rollup_hour_retention: Some(Duration::from_secs(24 * 3600)),
    };
    args.request().unwrap()
}

/// Each level keeps its rows for its own retention: rows of slots past it are neither written
/// nor read, those within it are.
async fn each_level_keeps_its_own_retention<S: Store>(store: &S) {
    let settings = *store.settings();
    assert_eq!(settings.rollups.minute_ttl_seconds, 3600);
    assert_eq!(settings.rollups.hour_ttl_seconds, 24 * 3600);
    let service = ServiceName::parse("retained").unwrap();
    let now = Utc::now().timestamp_millis();
    // Three hours ago (past the minutes' hour, within the hours' day), and 5 minutes ago.
    let old = (now / HOUR - 3) * HOUR + 5 * MINUTE;
    let recent = (now / MINUTE - 5) * MINUTE;
    let readings: Vec<Reading> = [old, recent]
        .iter()
        .map(|&t| {
            Reading::Api(ApiReading {
                id: ReadingId::new(),
                service: service.clone(),
                instance: InstanceName::parse("i-1").unwrap(),
                method: HttpMethod::parse("GET").unwrap(),
                path: ApiPath::parse("/p").unwrap(),
                code: StatusCode::parse(200).unwrap(),
                duration_ms: 1.5,
                count: 3,
                timestamp: TimestampMs::from_millis(t),
            })
        })
        .collect();
    let piece = timebucket::rollup::Piece {
        writer: uuid::Uuid::new_v4(),
        segment: 1,
        start: 16,
        last: 16,
    };
    let batch = WriteBatch {
        rollups: timebucket::rollup::partials(&readings, piece, TimestampMs::from_millis(0)),
        ..WriteBatch::default()
    };
    store.write(&batch).await.unwrap();
    let slots = |resolution: Resolution, at: i64| {
        let slot = resolution.slot_of(TimestampMs::from_millis(at));
        RollupRequest {
            service: service.clone(),
            kind: ApiReading::INFO.index,
            resolution,
            partition: resolution.partition_of(slot),
            from: slot,
            to: slot,
        }
    };
    let count = |rows: Vec<timebucket::rollup::RollupRow>| rows.len();
    let minute_old = store.read_rollups(&slots(Resolution::Minute, old)).await;
    let minute_new = store.read_rollups(&slots(Resolution::Minute, recent)).await;
    let hour_old = store.read_rollups(&slots(Resolution::Hour, old)).await;
    assert_eq!(count(minute_old.unwrap()), 0, "minutes past their hour");
    assert_eq!(count(minute_new.unwrap()), 1, "minutes within their hour");
    assert_eq!(count(hour_old.unwrap()), 1, "hours within their day");
}

#[tokio::test]
async fn embedded_each_rollup_level_keeps_its_own_retention() {
    let dir = tempfile::tempdir().unwrap();
    let settings = short_rollup_retentions().resolve_fresh().unwrap();
    let store =
        timebucket::store::embedded::EmbeddedStore::open_with(dir.path(), settings).unwrap();
    each_level_keeps_its_own_retention(&store).await;
    // Windows go whole once past their level's retention: the minute windows (a day each)
    // two days on, the hour windows (ten days each) only past a day after their end.
    let later = TimestampMs::from_millis(Utc::now().timestamp_millis() + 2 * 24 * HOUR);
    let dropped = store.drop_expired_rollup_windows(later).unwrap();
    assert!(dropped >= 1, "the minute windows go");
    drop(store);
    // The retentions are recorded: a reopen with default flags keeps them.
    let store = timebucket::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.settings().rollups.minute_ttl_seconds, 3600);
}

#[tokio::test]
async fn cql_each_rollup_level_keeps_its_own_retention() {
    let keyspace = crate::support::fresh_keyspace();
    let migrations =
        timebucket::migrate::source::load_dir(&crate::support::migrations_dir()).unwrap();
    let mut options = crate::support::up_options(&keyspace);
    options.settings = short_rollup_retentions();
    let session = crate::support::session().await;
    timebucket::migrate::up(&session, &migrations, &options)
        .await
        .unwrap();
    let store = timebucket::store::cql::CqlStore::open(&[crate::support::cql_node()], &keyspace)
        .await
        .unwrap();
    each_level_keeps_its_own_retention(&store).await;
}

/// `kill -9` of a real `serve` while it flushes: the restarted service replays the WAL from
/// its last confirmation, with other batch cuts; the rollups still count every stored
/// reading exactly once (equal to the raw answer, counts and percentiles alike).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_flushing_counts_every_reading_once_in_the_rollups() {
    use crate::crash::{free_port, start, stop_gracefully, wait_for_empty_backlog, wait_healthy};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let data_dir = tempfile::tempdir().unwrap();
    let now = Utc::now().timestamp_millis();
    let store_dir = data_dir.path().join("store");

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let backend = crate::crash::Backend::Embedded;
    let mut child = start(backend, "unused", data_dir.path(), port);
    wait_healthy(&url).await;
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..6 {
        let (acked, stop, url) = (acked.clone(), stop.clone(), url.clone());
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut batch: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                // Readings over the last few minutes, on and off minute boundaries.
                let readings: Vec<_> = (0..20)
                    .map(|i: i64| {
                        let t = (now / MINUTE - (batch + i) % 4) * MINUTE - (i % 3) * 7;
                        let code = if i % 2 == 0 { 200 } else { 503 };
                        serde_json::json!({"service": "crash-rollups", "instance": format!("i-{writer}"),
                            "method": "GET", "path": format!("/p{}", i % 3), "code": code,
                            "duration_ms": (batch * 7 + i) % 300, "count": 1 + i % 3, "timestamp": t})
                    })
                    .collect();
                batch += 1;
                let sent = client
                    .post(format!("{url}/v1/metrics"))
                    .json(&serde_json::json!({ "api": readings }))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => {
                        // Requests: the sum of the readings' counts.
                        acked.fetch_add((0..20).map(|i| 1 + i % 3).sum(), Ordering::Relaxed);
                    }
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.load(Ordering::Relaxed) < 6_000 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "serve exited before the kill"
        );
        assert!(Instant::now() < deadline, "ingest did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL, mid-flush
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let mut child = start(backend, "unused", data_dir.path(), port);
    wait_healthy(&url).await;
    wait_for_empty_backlog(&url).await;
    stop_gracefully(&mut child);

    let store = timebucket::store::embedded::EmbeddedStore::open(&store_dir).unwrap();
    assert_eq!(
        store.rollups_written_since(),
        coverage::EVERYTHING,
        "a new store"
    );
    let queries = Queries::new(Arc::new(store), QueryLimits::default());
    let from = TimestampMs::from_millis(now - HOUR).to_rfc3339();
    let to = TimestampMs::from_millis(now + HOUR).to_rfc3339();
    for step in ["1h", "1m"] {
        let query =
            format!("service=crash-rollups&from={from}&to={to}&step={step}&group_by=instance,code");
        let raw = api_stats(&queries, &format!("{query}&source=raw")).await;
        let rolled = api_stats(&queries, &format!("{query}&source=rollup")).await;
        assert_eq!(
            rolled.source.as_ref().unwrap().used,
            "rollup",
            "step {step}"
        );
        assert_same_api(&raw, &rolled, &format!("after kill -9, step {step}"));
        let readings = total(&raw);
        assert!(
            readings >= acked.load(Ordering::Relaxed),
            "acknowledged requests are stored"
        );
    }
}

/// All rows of `service` at both levels from `from` on, unmerged (as stored).
async fn stored_rows<S: Store>(store: &S, service: &str, from: i64) -> usize {
    let service = ServiceName::parse(service).unwrap();
    let closed = Utc::now().timestamp_millis();
    let mut count = 0;
    for resolution in Resolution::ALL {
        for request in timebucket::rollup::compactor::requests(&service, resolution, from, closed) {
            count += store.read_rollups(&request).await.unwrap().len();
        }
    }
    count
}

/// Compacts `writer`'s partials (up to `upto`) of every closed minute and hour of `service`
/// from `since` on, as the compaction job does, but reading pages of 5 rows: most series of a
/// slot then span two pages, and most pages hold several series.
async fn compact_since<S: Store>(
    store: &S,
    service: &ServiceName,
    writer: uuid::Uuid,
    upto: timebucket::wal::Position,
    since: i64,
) -> timebucket::rollup::compactor::Compacted {
    use timebucket::rollup::compactor::{compact_partitions, requests};
    let closed = Utc::now().timestamp_millis();
    let mut reads = requests(service, Resolution::Minute, since, closed);
    reads.extend(requests(service, Resolution::Hour, since, closed));
    compact_partitions(store, writer, upto, reads, 5)
        .await
        .unwrap()
}

/// Compaction merges a writer's confirmed partials and keeps every answer: through a rerun,
/// a second writer on the same minutes, and more batches of the first one after it.
async fn compaction_keeps_every_answer<S: Store>(store: Arc<S>) {
    let dir = tempfile::tempdir().unwrap();
    let base = base_ms(&*store);
    let service = "compacted";
    let name = ServiceName::parse(service).unwrap();
    let wal_a = Wal::open(WalConfig::new(dir.path().join("a"))).unwrap();
    flush(
        &wal_a,
        store.clone(),
        dir.path(),
        &records(5, service, base, 200),
        9,
    )
    .await;
    let writer_a = timebucket::rollup::writer_id::load_or_create(wal_a.dir()).unwrap();
    let compact = |upto| compact_since(&*store, &name, writer_a, upto, base - HOUR);
    let queries = Queries::new(store.clone(), QueryLimits::default());
    let from = TimestampMs::from_millis(base - 7_000).to_rfc3339();
    let to = TimestampMs::from_millis(base + 3 * HOUR - 13 * MINUTE + 1_234).to_rfc3339();
    let check = |what: &'static str| {
        let queries = queries.clone();
        let (from, to) = (from.clone(), to.clone());
        async move {
            for step in ["1h", "1m"] {
                let query =
                    format!("service={service}&from={from}&to={to}&step={step}&group_by=path,code");
                let raw = api_stats(&queries, &format!("{query}&source=raw")).await;
                let rolled = api_stats(&queries, &format!("{query}&source=rollup")).await;
                assert_same_api(&raw, &rolled, &format!("{what}, step {step}"));
            }
            let query = format!("service={service}&from={from}&to={to}&step=1h");
            let raw = host_stats(&queries, &format!("{query}&source=raw")).await;
            let rolled = host_stats(&queries, &format!("{query}&source=rollup")).await;
            assert_same_host(&raw, &rolled, what);
        }
    };
    let before = stored_rows(&*store, service, base - HOUR).await;
    let first = compact(wal_a.confirmed()).await;
    assert!(
        first.written > 0 && first.deleted > first.written,
        "{first:?}"
    );
    let after = stored_rows(&*store, service, base - HOUR).await;
    assert_eq!(
        after,
        before - first.deleted + first.written,
        "rows {before} -> {after}"
    );
    check("compacted").await;
    // A rerun with the same mark changes nothing.
    assert_eq!(compact(wal_a.confirmed()).await.written, 0);
    check("compacted twice").await;
    // A second writer on the same minutes, and more of the first: compacted again.
    let wal_b = Wal::open(WalConfig::new(dir.path().join("b"))).unwrap();
    flush(
        &wal_b,
        store.clone(),
        dir.path(),
        &records(6, service, base, 80),
        3,
    )
    .await;
    let wal_a = Wal::open(WalConfig::new(dir.path().join("a"))).unwrap();
    flush(
        &wal_a,
        store.clone(),
        dir.path(),
        &records(7, service, base, 80),
        4,
    )
    .await;
    check("two writers, partly compacted").await;
    let again = compact(wal_a.confirmed()).await;
    assert!(again.written > 0, "{again:?}");
    check("compacted again").await;
}

#[tokio::test]
async fn embedded_compaction_keeps_every_answer() {
    let (store, _dir) = crate::support::embedded_store();
    compaction_keeps_every_answer(Arc::new(store)).await;
}

#[tokio::test]
async fn cql_compaction_keeps_every_answer() {
    let (store, _keyspace) = crate::support::cql_store().await;
    compaction_keeps_every_answer(Arc::new(store)).await;
}
