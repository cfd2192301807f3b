//! PromQL over rollups, end to end on both stores: the queries rollups can serve answer the
//! same read raw and read from rollups (flushed through a replay and two writers, compacted,
//! rebuilt), rows written before rows had the PromQL parts are read raw, and a rebuild makes
//! them serve again.

use timebucket::promql::source::queries::QueriesSource;
use timebucket::promql::{Answer, Engine, EngineConfig, Query, QueryValue};
use timebucket::query::source::Source as Sources;

use super::*;

/// The engine the HTTP API runs, over `store`.
fn engine<S: Store>(store: Arc<S>) -> Engine<QueriesSource<S>> {
    let queries = Queries::new(store, QueryLimits::default());
    Engine::new(QueriesSource::new(queries), EngineConfig::default())
}

async fn answer<S: Store>(
    engine: &Engine<QueriesSource<S>>,
    query: &str,
    (start, end, step): (i64, i64, i64),
    sources: Sources,
) -> Answer {
    let query = Query::parse(query).unwrap();
    let engine = engine.with_sources(sources);
    let at = TimestampMs::from_millis;
    let step = Duration::from_millis(step as u64);
    engine
        .range_answer(&query, at(start), at(end), step)
        .await
        .unwrap()
}

fn assert_same_matrix(what: &str, raw: &QueryValue, rolled: &QueryValue) {
    let (QueryValue::Matrix(a), QueryValue::Matrix(b)) = (raw, rolled) else {
        panic!("{what}: {raw:?} vs {rolled:?}");
    };
    assert_eq!(a.len(), b.len(), "{what}: series");
    assert!(!a.is_empty(), "{what}: no data");
    for (a, b) in a.iter().zip(b) {
        assert_eq!(a.labels, b.labels, "{what}");
        assert_eq!(a.points.len(), b.points.len(), "{what} {}", a.labels);
        for (p, q) in a.points.iter().zip(&b.points) {
            assert!(
                p.0 == q.0 && close(p.1, q.1),
                "{what} {}: {p:?} vs {q:?}",
                a.labels
            );
        }
    }
}

/// A query, its timeline `(start, end, step)` and the levels that serve it.
type Case = (String, (i64, i64, i64), Vec<&'static str>);

/// Queries over three hours of `service` from `base`, and the levels that serve them when
/// rollups hold every reading.
fn cases(service: &str, base: i64) -> Vec<Case> {
    let count = format!("http_server_request_duration_seconds_count{{service=\"{service}\"}}");
    let bucket = format!("http_server_request_duration_seconds_bucket{{service=\"{service}\"}}");
    let sum = format!("http_server_request_duration_seconds_sum{{service=\"{service}\"}}");
    vec![
        (
            format!("sum by (path) (increase({count}[1h]))"),
            (base + HOUR, base + 3 * HOUR, HOUR),
            vec!["1h"],
        ),
        (
            format!("histogram_quantile(0.99, sum by (le) (rate({bucket}[1h])))"),
            (base + HOUR, base + 3 * HOUR, HOUR),
            vec!["1h"],
        ),
        (
            format!("sum by (code, le) (increase({bucket}[10m]))"),
            (base + 10 * MINUTE, base + 3 * HOUR, 5 * MINUTE),
            vec!["1m"],
        ),
        (
            format!("rate({sum}[1m] offset 1m)"),
            (base + 2 * MINUTE, base + 3 * HOUR, MINUTE),
            vec!["1m"],
        ),
        (
            format!("increase({count}[90s])"),
            (base + HOUR, base + 2 * HOUR, 90_000),
            vec!["raw"],
        ),
    ]
}

/// Every case answers the same from raw readings and under `auto`; `auto` reads `levels`, or,
/// when rows without the PromQL parts hold the data (`old_rows`), raw readings for them.
async fn assert_promql_agrees<S: Store>(store: Arc<S>, service: &str, base: i64, old_rows: bool) {
    let engine = engine(store);
    for (query, timeline, levels) in cases(service, base) {
        let raw = answer(&engine, &query, timeline, Sources::Raw).await;
        let auto = answer(&engine, &query, timeline, Sources::Auto).await;
        assert_eq!(raw.source.levels, ["raw"]);
        if old_rows {
            // The level is still named when some slot of the range has no row at all.
            assert!(auto.source.levels.iter().any(|l| l == "raw"), "{query}");
        } else {
            assert_eq!(auto.source.levels, levels, "{query}");
        }
        assert_same_matrix(&query, &raw.value, &auto.value);
    }
}

async fn promql_agrees_through_replays_two_writers_and_compaction<S: Store>(store: Arc<S>) {
    let dir = tempfile::tempdir().unwrap();
    let base = base_ms(&*store);
    let service = "promql";
    let wal_a = Wal::open(WalConfig::new(dir.path().join("a"))).unwrap();
    flush(
        &wal_a,
        store.clone(),
        dir.path(),
        &records(11, service, base, 300),
        7,
    )
    .await;
    copy_unconfirmed(&dir.path().join("a"), &dir.path().join("replay"));
    let replay = Wal::open(WalConfig::new(dir.path().join("replay"))).unwrap();
    flush(&replay, store.clone(), dir.path(), &[], 1).await;
    let wal_b = Wal::open(WalConfig::new(dir.path().join("b"))).unwrap();
    flush(
        &wal_b,
        store.clone(),
        dir.path(),
        &records(12, service, base, 120),
        3,
    )
    .await;
    assert_promql_agrees(store.clone(), service, base, false).await;

    // More of writer A, then compacted: compacted rows carry the PromQL parts, so PromQL is
    // still served from rollups, with the same answers.
    drop(wal_a);
    let wal_a = Wal::open(WalConfig::new(dir.path().join("a"))).unwrap();
    flush(
        &wal_a,
        store.clone(),
        dir.path(),
        &records(14, service, base, 80),
        4,
    )
    .await;
    let writer_a = timebucket::rollup::writer_id::load_or_create(wal_a.dir()).unwrap();
    let name = ServiceName::parse(service).unwrap();
    let compacted = compact_since(&*store, &name, writer_a, wal_a.confirmed(), base - HOUR).await;
    assert!(compacted.written > 0, "{compacted:?}");
    assert_promql_agrees(store, service, base, false).await;
}

#[tokio::test]
async fn embedded_promql_from_rollups_answers_as_raw_readings() {
    let (store, _dir) = crate::support::embedded_store();
    promql_agrees_through_replays_two_writers_and_compaction(Arc::new(store)).await;
}

#[tokio::test]
async fn cql_promql_from_rollups_answers_as_raw_readings() {
    let (store, keyspace) = crate::support::cql_store().await;
    promql_agrees_through_replays_two_writers_and_compaction(Arc::new(store)).await;
    crate::support::drop_keyspace(&keyspace).await;
}

const OLD: &str = "oldrows";

/// Rollup rows as a version without the PromQL parts wrote them (rebuilt rows of `readings`,
/// which `store` holds, recorded complete): PromQL reads raw readings; a rebuild rewrites the
/// same rows with the parts, then PromQL reads them.
async fn old_rows_are_read_raw_until_rebuilt<S: Store>(
    store: Arc<S>,
    base: i64,
    readings: &[Reading],
) {
    let service = OLD;
    let mut rows = timebucket::rollup::partials(
        readings,
        timebucket::rollup::rebuild::REBUILT,
        TimestampMs::from_millis(i64::MIN),
    );
    for row in &mut rows {
        if let timebucket::rollup::Agg::Api(api) = &mut row.agg {
            api.prom = None;
        }
    }
    let settings = *store.settings();
    let mut batch = WriteBatch::build(Vec::new(), &settings, &SeriesSeen::new(10));
    batch.rollups = rows;
    store.write(&batch).await.unwrap();
    let at = TimestampMs::from_millis(base);
    store.lower_rollups_since(None, at).await.unwrap();
    // The stats read those rows; PromQL cannot.
    let queries = Queries::new(store.clone(), QueryLimits::default());
    let whole = format!(
        "service={service}&from={}&to={}&step=1h",
        at.to_rfc3339(),
        TimestampMs::from_millis(base + 3 * HOUR - 1).to_rfc3339()
    );
    assert_eq!(
        api_stats(&queries, &whole).await.source.unwrap().levels,
        ["1h"]
    );
    assert_promql_agrees(store.clone(), service, base, true).await;

    let request = RebuildRequest {
        from: at,
        to: TimestampMs::from_millis(Utc::now().timestamp_millis() + 2 * HOUR),
        service: None,
    };
    rebuild(store.clone(), &request, TimestampMs::now(), |_, _| {})
        .await
        .unwrap();
    assert_promql_agrees(store, service, base, false).await;
}

#[tokio::test]
async fn embedded_old_rollup_rows_are_read_raw_until_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let base = old_hours();
    let records = records(13, OLD, base, 200);
    let store = embedded_store_from_before_rollups(dir.path(), &records).await;
    old_rows_are_read_raw_until_rebuilt(Arc::new(store), base, &records.concat()).await;
}

#[tokio::test]
async fn cql_old_rollup_rows_are_read_raw_until_rebuilt() {
    let keyspace = crate::support::migrated_keyspace().await;
    let nodes = [crate::support::cql_node()];
    let store = timebucket::store::cql::CqlStore::open(&nodes, &keyspace)
        .await
        .unwrap();
    let base = old_hours();
    let records = records(13, OLD, base, 200);
    write_raw(&store, &records).await;
    // As a version without rollups left the keyspace: no record of them.
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
    old_rows_are_read_raw_until_rebuilt(Arc::new(store), base, &records.concat()).await;
    crate::support::drop_keyspace(&keyspace).await;
}
