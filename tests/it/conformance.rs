//! One conformance suite for every [`Store`] backend: the same cases run against the CQL store
//! (on the real node, in a fresh keyspace) and the embedded store (in a temp dir).
//!
//! Each case writes through [`Store::write`] and reads back through the partition-level read
//! API, comparing with answers computed here from the written readings.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::Utc;

use timebucket::model::{
    ApiPath, ApiReading, HostGauges, HostReading, HttpMethod, InstanceName, Reading, ReadingId,
    ReadingKind, ServiceName, StatusCode, TimeBucket, TimestampMs,
};
use timebucket::rollup::{partials, Piece, Resolution, RollupRequest};
use timebucket::store::{
    ApiColumns, ApiColumnsRequest, Order, PageRequest, PartitionKey, ReadingKey, RollupKey,
    RollupPageRequest, SeriesSeen, Store, WriteBatch,
};

/// Hour-aligned base time in the recent past, so every reading is within retention.
fn base_ms() -> i64 {
    let now = Utc::now().timestamp_millis();
    (now / 3_600_000 - 3) * 3_600_000
}

fn api(service: &str, instance: &str, path: &str, at_ms: i64, code: i64) -> ApiReading {
    ApiReading {
        id: ReadingId::new(),
        service: ServiceName::parse(service).unwrap(),
        instance: InstanceName::parse(instance).unwrap(),
        method: HttpMethod::parse("GET").unwrap(),
        path: ApiPath::parse(path).unwrap(),
        code: StatusCode::parse(code).unwrap(),
        duration_ms: (at_ms % 1000) as f64 / 10.0,
        count: 1 + (at_ms % 3) as u32,
        timestamp: TimestampMs::from_millis(at_ms),
    }
}

fn host(service: &str, instance: &str, at_ms: i64, cpu: f64) -> HostReading {
    HostReading {
        id: ReadingId::new(),
        service: ServiceName::parse(service).unwrap(),
        instance: InstanceName::parse(instance).unwrap(),
        timestamp: TimestampMs::from_millis(at_ms),
        gauges: HostGauges {
            cpu_percent: Some(cpu),
            mem_used_bytes: Some(1 << 20),
            available: Some(true),
            ..HostGauges::default()
        },
    }
}

async fn write<S: Store>(store: &S, readings: Vec<Reading>) {
    let batch = WriteBatch::build(readings, store.settings(), &SeriesSeen::new(1_000));
    store.write(&batch).await.unwrap();
}

/// Every partition of `service` covering `[from, to]`.
fn partitions<S: Store>(
    store: &S,
    service: &str,
    from: TimestampMs,
    to: TimestampMs,
) -> Vec<PartitionKey> {
    let settings = store.settings();
    TimeBucket::covering(from, to, settings.bucket_width)
        .into_iter()
        .flat_map(|bucket| {
            settings.shards.all().map(move |seq| PartitionKey {
                service: ServiceName::parse(service).unwrap(),
                bucket,
                seq,
            })
        })
        .collect()
}

/// Reads a whole partition range page by page; returns the pages.
async fn read_pages<S: Store>(
    store: &S,
    partition: PartitionKey,
    from: TimestampMs,
    to: TimestampMs,
    order: Order,
    limit: u32,
) -> Vec<Vec<ApiReading>> {
    let mut request = PageRequest {
        partition,
        after: order.start_of(from, to),
        until: order.end_of(from, to),
        order,
        limit,
    };
    let mut pages = Vec::new();
    loop {
        let page = store.read_page::<ApiReading>(&request).await.unwrap();
        let last = page.last().map(|r| ReadingKey {
            timestamp: r.timestamp,
            id: r.id,
        });
        let full = page.len() as u32 == limit;
        pages.push(page);
        match last {
            Some(last) if full => request = request.next_after(last),
            _ => return pages,
        }
    }
}

pub async fn read_all<S: Store>(
    store: &S,
    service: &str,
    from: TimestampMs,
    to: TimestampMs,
) -> Vec<ApiReading> {
    let mut all = Vec::new();
    for partition in partitions(store, service, from, to) {
        all.extend(
            read_pages(store, partition, from, to, Order::Asc, 1_000)
                .await
                .concat(),
        );
    }
    all.sort_by_key(|r| (r.timestamp, r.id));
    all
}

fn sorted(mut readings: Vec<ApiReading>) -> Vec<ApiReading> {
    readings.sort_by_key(|r| (r.timestamp, r.id));
    readings
}

pub async fn readings_round_trip_exactly<S: Store>(store: S) {
    let t = base_ms();
    let written: Vec<ApiReading> = (0..60)
        .map(|i| {
            api(
                "rt",
                &format!("i-{}", i % 3),
                &format!("/p{}", i % 4),
                t + i * 61_000,
                200 + (i % 4) * 100,
            )
        })
        .collect();
    write(&store, written.iter().cloned().map(Reading::Api).collect()).await;
    let (from, to) = (
        TimestampMs::from_millis(t),
        TimestampMs::from_millis(t + 3 * 3_600_000),
    );
    assert_eq!(
        read_all(&store, "rt", from, to).await,
        sorted(written.clone())
    );

    // A range inside: only the readings in [from, to], both ends inclusive.
    let (a, b) = (written[10].timestamp, written[20].timestamp);
    let inside: Vec<ApiReading> = written
        .iter()
        .filter(|r| r.timestamp >= a && r.timestamp <= b)
        .cloned()
        .collect();
    assert_eq!(read_all(&store, "rt", a, b).await, sorted(inside));
}

pub async fn paging_crosses_buckets_in_both_orders<S: Store>(store: S) {
    let t = base_ms();
    // 90 readings over three buckets, several sharing a timestamp, one exactly on each boundary.
    let mut written: Vec<ApiReading> = (0..90)
        .map(|i| api("pg", "i-1", "/x", t + (i / 2) * 240_000, 200))
        .collect();
    written.push(api("pg", "i-1", "/x", t + 3_600_000, 200));
    written.push(api("pg", "i-1", "/x", t + 7_200_000, 200));
    write(&store, written.iter().cloned().map(Reading::Api).collect()).await;
    let (from, to) = (
        TimestampMs::from_millis(t),
        TimestampMs::from_millis(t + 3 * 3_600_000 - 1),
    );
    for order in [Order::Asc, Order::Desc] {
        let mut seen = Vec::new();
        for partition in partitions(&store, "pg", from, to) {
            let pages = read_pages(&store, partition, from, to, order, 7).await;
            assert!(pages.iter().all(|p| p.len() <= 7));
            let rows = pages.concat();
            let keys: Vec<_> = rows.iter().map(|r| (r.timestamp, r.id)).collect();
            let mut expected = keys.clone();
            expected.sort();
            if order == Order::Desc {
                expected.reverse();
            }
            assert_eq!(keys, expected, "{order:?}: a partition is read in order");
            seen.extend(rows);
        }
        let ids: BTreeSet<ReadingId> = seen.iter().map(|r| r.id).collect();
        assert_eq!(
            ids.len(),
            seen.len(),
            "{order:?}: no reading repeated across pages"
        );
        assert_eq!(
            ids,
            written.iter().map(|r| r.id).collect(),
            "{order:?}: no reading lost"
        );
    }
}

pub async fn writes_are_idempotent<S: Store>(store: S) {
    let t = base_ms();
    let written: Vec<Reading> = (0..20)
        .map(|i| Reading::Api(api("idem", "i-1", "/y", t + i, 200)))
        .collect();
    write(&store, written.clone()).await;
    write(&store, written).await;
    let (from, to) = (
        TimestampMs::from_millis(t),
        TimestampMs::from_millis(t + 100),
    );
    assert_eq!(read_all(&store, "idem", from, to).await.len(), 20);
}

pub async fn latest_keeps_the_newest_even_when_older_arrives_later<S: Store>(store: S) {
    let t = base_ms();
    let newer = api("lt", "i-1", "/z", t + 5_000, 201);
    let older = api("lt", "i-1", "/z", t, 500);
    write(
        &store,
        vec![
            Reading::Api(newer.clone()),
            Reading::Host(host("lt", "h-1", t + 5_000, 50.0)),
        ],
    )
    .await;
    write(
        &store,
        vec![
            Reading::Api(older),
            Reading::Host(host("lt", "h-1", t, 99.0)),
        ],
    )
    .await;
    let service = ServiceName::parse("lt").unwrap();
    let mut api_rows = Vec::new();
    let mut host_rows = Vec::new();
    for shard in store.settings().latest_shards.all() {
        api_rows.extend(
            store
                .read_latest::<ApiReading>(shard, Some(&service))
                .await
                .unwrap(),
        );
        host_rows.extend(
            store
                .read_latest::<HostReading>(shard, Some(&service))
                .await
                .unwrap(),
        );
    }
    assert_eq!(api_rows.len(), 1);
    assert_eq!((api_rows[0].id, api_rows[0].code.get()), (newer.id, 201));
    assert_eq!(host_rows.len(), 1);
    assert_eq!(host_rows[0].gauges.cpu_percent, Some(50.0));
}

pub async fn series_lists_api_and_host_only_entries<S: Store>(store: S) {
    let t = base_ms();
    write(
        &store,
        vec![
            Reading::Api(api("sr", "i-1", "/a", t, 200)),
            Reading::Api(api("sr", "i-1", "/b", t + 1, 200)),
            Reading::Api(api("sr", "i-2", "/a", t + 2, 200)),
            Reading::Host(host("sr", "h-9", t, 1.0)),
        ],
    )
    .await;
    let service = ServiceName::parse("sr").unwrap();
    let bucket = TimeBucket::containing(TimestampMs::from_millis(t), store.settings().bucket_width);
    let entries: BTreeSet<(String, String, String)> = store
        .read_series(&service, bucket)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.instance.to_string(),
                e.method.map(|m| m.to_string()).unwrap_or_default(),
                e.path.map(|p| p.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = [
        ("i-1", "GET", "/a"),
        ("i-1", "GET", "/b"),
        ("i-2", "GET", "/a"),
        ("h-9", "", ""),
    ]
    .into_iter()
    .map(|(i, m, p)| (i.to_owned(), m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(entries, expected);
}

pub async fn host_readings_round_trip<S: Store>(store: S) {
    let t = base_ms();
    let written: Vec<HostReading> = (0..10)
        .map(|i| host("hr", "h-1", t + i * 1_000, i as f64))
        .collect();
    write(&store, written.iter().cloned().map(Reading::Host).collect()).await;
    let (from, to) = (
        TimestampMs::from_millis(t),
        TimestampMs::from_millis(t + 60_000),
    );
    let mut read = Vec::new();
    for partition in partitions(&store, "hr", from, to) {
        read.extend(
            store
                .read_page::<HostReading>(&PageRequest {
                    partition,
                    after: Order::Asc.start_of(from, to),
                    until: to,
                    order: Order::Asc,
                    limit: 100,
                })
                .await
                .unwrap(),
        );
    }
    read.sort_by_key(|r| r.timestamp);
    assert_eq!(read, written);
}

/// The instances with a latest reading (of either kind) of `service`.
async fn latest_instances<S: Store>(store: &S, service: &ServiceName) -> BTreeSet<String> {
    let mut instances = BTreeSet::new();
    for shard in store.settings().latest_shards.all() {
        let api = store.read_latest::<ApiReading>(shard, Some(service));
        instances.extend(
            api.await
                .unwrap()
                .into_iter()
                .map(|r| r.instance.to_string()),
        );
        let host = store.read_latest::<HostReading>(shard, Some(service));
        instances.extend(
            host.await
                .unwrap()
                .into_iter()
                .map(|r| r.instance.to_string()),
        );
    }
    instances
}

/// The instances in the series index of `service` for the bucket holding `at_ms`.
async fn series_instances<S: Store>(store: &S, service: &ServiceName, at_ms: i64) -> Vec<String> {
    let width = store.settings().bucket_width;
    let bucket = TimeBucket::containing(TimestampMs::from_millis(at_ms), width);
    let entries = store.read_series(service, bucket).await.unwrap();
    entries
        .into_iter()
        .map(|e| e.instance.to_string())
        .collect()
}

/// Latest rows expire once their reading is older than the retention, series entries once their
/// bucket's end is, whatever the backend: what is already older is never listed, and a latest
/// row disappears when its reading passes the retention.
pub async fn latest_and_series_expire_with_the_retention<S: Store>(store: S) {
    let settings = *store.settings();
    let ttl_ms = i64::from(settings.ttl_seconds) * 1000;
    let now = Utc::now().timestamp_millis();
    let old = now - ttl_ms - 2 * settings.bucket_width.millis();
    let soon = now - ttl_ms + 3_000;
    let fresh = now - 60_000;
    write(
        &store,
        vec![
            Reading::Api(api("ex", "old", "/a", old, 200)),
            Reading::Host(host("ex", "h-old", old, 1.0)),
            Reading::Api(api("ex", "soon", "/a", soon, 200)),
            Reading::Host(host("ex", "h-soon", soon, 1.0)),
            Reading::Api(api("ex", "fresh", "/a", fresh, 200)),
            Reading::Host(host("ex", "h-fresh", fresh, 1.0)),
        ],
    )
    .await;
    let service = ServiceName::parse("ex").unwrap();
    let listed = latest_instances(&store, &service).await;
    assert!(
        !listed.contains("old") && !listed.contains("h-old"),
        "{listed:?}"
    );
    assert!(
        listed.contains("fresh") && listed.contains("h-fresh"),
        "{listed:?}"
    );
    assert_eq!(
        series_instances(&store, &service, old).await,
        Vec::<String>::new()
    );
    let fresh_series = series_instances(&store, &service, fresh).await;
    assert!(
        fresh_series.contains(&"fresh".to_owned()),
        "{fresh_series:?}"
    );

    // The readings at the edge of the retention pass it within seconds; the fresh ones stay.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = latest_instances(&store, &service).await;
        if !listed.contains("soon") && !listed.contains("h-soon") {
            let fresh: BTreeSet<String> = ["fresh", "h-fresh"].map(String::from).into();
            assert_eq!(listed, fresh);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "latest rows past the retention are still listed: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Rollup rows of two minutes, many series, two writers and three pieces each, read page by
/// page with several page sizes: the pages together are exactly the whole read, in its order,
/// each within its limit, whether a page ends inside a series or between two.
async fn rollup_pages_resume_exactly<S: Store>(store: S) {
    let base = base_ms();
    let mut readings = Vec::new();
    for minute in 0..2 {
        for instance in 0..5 {
            for path in ["/a", "/b"] {
                let at = base + minute * 60_000 + instance * 100;
                readings.push(Reading::Api(api(
                    "paged",
                    &format!("i{instance}"),
                    path,
                    at,
                    200,
                )));
            }
            let at = base + minute * 60_000 + 7;
            readings.push(Reading::Host(host(
                "paged",
                &format!("i{instance}"),
                at,
                1.0,
            )));
        }
    }
    let mut rows = Vec::new();
    for writer in [uuid::Uuid::from_u128(7), uuid::Uuid::from_u128(3)] {
        for start in [16, 1_000, 2_000] {
            let piece = Piece {
                writer,
                segment: 1,
                start,
                last: start + 10,
            };
            rows.extend(partials(
                &readings,
                piece,
                TimestampMs::from_millis(i64::MIN),
            ));
        }
    }
    let batch = WriteBatch {
        rollups: rows,
        ..WriteBatch::default()
    };
    store.write(&batch).await.unwrap();
    let slot = TimestampMs::from_millis(base);
    for kind in [ApiReading::INFO.index, HostReading::INFO.index] {
        let request = RollupRequest {
            service: ServiceName::parse("paged").unwrap(),
            kind,
            resolution: Resolution::Minute,
            partition: Resolution::Minute.partition_of(slot),
            from: slot,
            to: TimestampMs::from_millis(base + 60_000),
        };
        let whole = store.read_rollups(&request).await.unwrap();
        let series = if kind == ApiReading::INFO.index {
            10
        } else {
            5
        };
        assert_eq!(whole.len(), 2 * series * 2 * 3, "kind {kind}");
        for limit in [1, 2, 7, 1_000] {
            let mut page = RollupPageRequest {
                rows: request.clone(),
                after: None,
                limit,
            };
            let mut paged = Vec::new();
            loop {
                let rows = store.read_rollup_page(&page).await.unwrap();
                assert!(
                    rows.len() <= limit as usize,
                    "{} rows over {limit}",
                    rows.len()
                );
                let last = rows.len() < limit as usize;
                page.after = rows.last().map(RollupKey::of);
                paged.extend(rows);
                if last {
                    break;
                }
            }
            assert_eq!(paged, whole, "kind {kind}, pages of {limit}");
        }
    }
}

/// A row as both reads can tell it: series, time, code, duration, count.
type Row = (String, String, String, i64, u16, u64, u32);

/// Every row of a projected answer, sorted.
fn projected_rows(columns: &ApiColumns) -> Vec<Row> {
    let mut rows = Vec::new();
    for s in &columns.series {
        assert!(
            s.codes.len() == s.len()
                && s.durations_ms.len() == s.len()
                && s.counts.len() == s.len()
        );
        for i in 0..s.len() {
            rows.push((
                s.instance.to_string(),
                s.method.to_string(),
                s.path.to_string(),
                s.timestamps[i].millis(),
                s.codes[i].get(),
                s.durations_ms[i].to_bits(),
                s.counts[i],
            ));
        }
    }
    rows.sort();
    rows
}

/// The projected read of the stats scan gives exactly the rows the full read gives, whatever
/// the range, the page size of the default implementation or the number of writes (blocks)
/// holding a partition; host readings in the same partitions stay out.
pub async fn projected_api_columns_are_the_full_readings<S: Store>(store: S) {
    let t = base_ms();
    let written: Vec<ApiReading> = (0..150)
        .map(|i| {
            api(
                "proj",
                &format!("i-{}", i % 4),
                &format!("/p{}", i % 3),
                t + i * 47_000 + (i % 7),
                [200, 201, 404, 500][(i % 4) as usize],
            )
        })
        .collect();
    // Three writes: the embedded store holds each partition in several blocks.
    for chunk in written.chunks(50) {
        let mut readings: Vec<Reading> = chunk.iter().cloned().map(Reading::Api).collect();
        readings.push(Reading::Host(host(
            "proj",
            "i-1",
            chunk[0].timestamp.millis(),
            5.0,
        )));
        write(&store, readings).await;
    }
    let end = written.last().unwrap().timestamp;
    let ranges = [
        (TimestampMs::from_millis(t), end),
        (written[17].timestamp, written[101].timestamp),
        (written[40].timestamp, written[40].timestamp),
    ];
    for (from, to) in ranges {
        let mut checked = 0;
        for partition in partitions(&store, "proj", from, to) {
            let full: Vec<Row> = {
                let pages = read_pages(&store, partition.clone(), from, to, Order::Asc, 1_000);
                let mut rows: Vec<Row> = pages
                    .await
                    .concat()
                    .into_iter()
                    .map(|r| {
                        let (i, m, p) = (
                            r.instance.to_string(),
                            r.method.to_string(),
                            r.path.to_string(),
                        );
                        (
                            i,
                            m,
                            p,
                            r.timestamp.millis(),
                            r.code.get(),
                            r.duration_ms.to_bits(),
                            r.count,
                        )
                    })
                    .collect();
                rows.sort();
                rows
            };
            for page_rows in [1, 7, 1_000] {
                let request = ApiColumnsRequest {
                    partition: partition.clone(),
                    from,
                    to,
                    page_rows,
                    max_rows: u64::MAX,
                };
                let projected = store.read_api_columns(&request).await.unwrap();
                assert_eq!(projected.rows(), full.len() as u64);
                assert_eq!(
                    projected_rows(&projected),
                    full,
                    "{from:?}..{to:?}, pages of {page_rows}"
                );
                // Cut short only past the budget.
                let budget = ApiColumnsRequest {
                    max_rows: 3,
                    ..request
                };
                let short = store.read_api_columns(&budget).await.unwrap();
                assert!(
                    short.rows() == full.len() as u64 || short.rows() > 3,
                    "{}",
                    short.rows()
                );
            }
            checked += full.len();
        }
        let expected = written
            .iter()
            .filter(|r| r.timestamp >= from && r.timestamp <= to)
            .count();
        assert_eq!(checked, expected);
    }
}

/// Runs every case against one backend; `$open` is an async expression giving a fresh store.
macro_rules! conformance_suite {
    ($backend:ident, $open:expr) => {
        mod $backend {
            #[tokio::test]
            async fn readings_round_trip_exactly() {
                let fixture = $open;
                super::readings_round_trip_exactly(fixture.0).await;
            }

            #[tokio::test]
            async fn paging_crosses_buckets_in_both_orders() {
                let fixture = $open;
                super::paging_crosses_buckets_in_both_orders(fixture.0).await;
            }

            #[tokio::test]
            async fn writes_are_idempotent() {
                let fixture = $open;
                super::writes_are_idempotent(fixture.0).await;
            }

            #[tokio::test]
            async fn latest_keeps_the_newest_even_when_older_arrives_later() {
                let fixture = $open;
                super::latest_keeps_the_newest_even_when_older_arrives_later(fixture.0).await;
            }

            #[tokio::test]
            async fn series_lists_api_and_host_only_entries() {
                let fixture = $open;
                super::series_lists_api_and_host_only_entries(fixture.0).await;
            }

            #[tokio::test]
            async fn host_readings_round_trip() {
                let fixture = $open;
                super::host_readings_round_trip(fixture.0).await;
            }

            #[tokio::test]
            async fn rollup_pages_resume_exactly() {
                let fixture = $open;
                super::rollup_pages_resume_exactly(fixture.0).await;
            }

            #[tokio::test]
            async fn projected_api_columns_are_the_full_readings() {
                let fixture = $open;
                super::projected_api_columns_are_the_full_readings(fixture.0).await;
            }

            #[tokio::test]
            async fn latest_and_series_expire_with_the_retention() {
                let fixture = $open;
                super::latest_and_series_expire_with_the_retention(fixture.0).await;
            }
        }
    };
}

conformance_suite!(cql, crate::support::cql_store().await);
conformance_suite!(embedded, crate::support::embedded_store());

/// The CQL store writes a latest row with the TTL its reading has left, not the table's: the
/// node drops it when the reading passes the retention, as the embedded store does.
#[tokio::test]
async fn cql_latest_rows_live_as_long_as_their_reading_is_within_the_retention() {
    let keyspace = crate::support::migrated_keyspace().await;
    let node = crate::support::cql_node();
    let store = timebucket::store::cql::CqlStore::open(&[node], &keyspace)
        .await
        .unwrap();
    let ttl_ms = i64::from(store.settings().ttl_seconds) * 1000;
    let left_ms = 3_600_000;
    let reading = api(
        "ttl",
        "i-1",
        "/t",
        Utc::now().timestamp_millis() - ttl_ms + left_ms,
        200,
    );
    write(&store, vec![Reading::Api(reading.clone())]).await;
    let shard = reading
        .series()
        .latest_shard(store.settings().latest_shards);
    let text = format!(
        "SELECT TTL(code) FROM {keyspace}.latest_api_readings WHERE shard = ? AND service_name = ?"
    );
    let rows = store
        .session()
        .query_unpaged(text, (shard.get(), "ttl"))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let (ttl,): (Option<i32>,) = rows.single_row().unwrap();
    let ttl = i64::from(ttl.expect("the row has a TTL"));
    assert!(
        ttl <= left_ms / 1000 && ttl > left_ms / 1000 - 120,
        "TTL {ttl} s, the reading has {} s left",
        left_ms / 1000
    );
}
