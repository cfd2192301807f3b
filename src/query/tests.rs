//! The fan-out, merge and paging against a real backend (the embedded store, so these run
//! without a database), with tiny pages so that every partition takes many of them. The same
//! questions are asked of Cassandra over HTTP in `tests/it/query.rs`.

use std::sync::Arc;

use futures::TryStreamExt;

use super::fanout::{scan, OrderedMerge};
use super::params::{ApiFilter, TimeRange};
use super::plan::{plan, RangeRead};
use super::requests::ReadingsRequest;
use super::{Queries, QueryLimits};
use crate::model::{
    ApiPath, ApiReading, HttpMethod, InstanceName, Reading, ReadingId, ServiceName, StatusCode,
    TimestampMs,
};
use crate::store::embedded::EmbeddedStore;
use crate::store::{Order, ReadingKey, SeriesSeen, Store, WriteBatch};

const HOUR_MS: i64 = 3_600_000;

/// Readings over five hours, several on bucket boundaries and several sharing a timestamp.
fn dataset(start_ms: i64) -> Vec<ApiReading> {
    let mut rng = fastrand::Rng::with_seed(7);
    let service = ServiceName::parse("shop").unwrap();
    (0..1500)
        .map(|i| {
            let at = match i % 50 {
                0 => start_ms + HOUR_MS * rng.i64(0..5),
                1 => start_ms + 2 * HOUR_MS - 1,
                _ => start_ms + rng.i64(0..5 * HOUR_MS),
            };
            ApiReading {
                id: ReadingId::new(),
                service: service.clone(),
                instance: InstanceName::parse(&format!("i-{}", rng.u8(0..3))).unwrap(),
                method: HttpMethod::parse(["GET", "POST"][rng.usize(0..2)]).unwrap(),
                path: ApiPath::parse(["/a", "/b", "/c/{id}"][rng.usize(0..3)]).unwrap(),
                code: StatusCode::parse([200, 404, 503][rng.usize(0..3)]).unwrap(),
                duration_ms: rng.f64() * 100.0,
                count: rng.u32(1..4),
                timestamp: TimestampMs::from_millis(at),
            }
        })
        .collect()
}

fn key(r: &ApiReading) -> ReadingKey {
    ReadingKey::of(r)
}

async fn seeded() -> (tempfile::TempDir, Arc<EmbeddedStore>, Vec<ApiReading>, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let start = (TimestampMs::now().millis() / HOUR_MS - 8) * HOUR_MS;
    let mut readings = dataset(start);
    fastrand::Rng::with_seed(3).shuffle(&mut readings);
    for chunk in readings.chunks(400) {
        let batch: Vec<Reading> = chunk.iter().cloned().map(Reading::Api).collect();
        let batch = WriteBatch::build(batch, store.settings(), &SeriesSeen::new(0));
        store.write(&batch).await.unwrap();
    }
    (dir, store, readings, start)
}

fn expected(readings: &[ApiReading], range: TimeRange, order: Order) -> Vec<ReadingKey> {
    let mut keys: Vec<ReadingKey> = readings
        .iter()
        .filter(|r| range.contains(r.timestamp))
        .map(key)
        .collect();
    keys.sort();
    if order == Order::Desc {
        keys.reverse();
    }
    keys
}

fn tiny_pages() -> QueryLimits {
    QueryLimits {
        page_rows: 7,
        concurrency: 3,
        ..QueryLimits::default()
    }
}

#[tokio::test]
async fn merge_and_scan_return_every_reading_once_in_order() {
    let (_dir, store, readings, start) = seeded().await;
    let queries = Queries::new(store.clone(), tiny_pages());
    let service = ServiceName::parse("shop").unwrap();
    let ranges = [
        (start, start + 5 * HOUR_MS),
        (start + HOUR_MS, start + 2 * HOUR_MS),
        (start + 2 * HOUR_MS - 1, start + 2 * HOUR_MS - 1),
        (start + 90 * 60_000, start + 4 * HOUR_MS + 1),
    ];
    for (from, to) in ranges {
        let range = TimeRange {
            from: TimestampMs::from_millis(from),
            to: TimestampMs::from_millis(to),
        };
        for (order, read_ahead) in [
            (Order::Asc, false),
            (Order::Asc, true),
            (Order::Desc, false),
            (Order::Desc, true),
        ] {
            let read = RangeRead {
                service: &service,
                range,
                order,
                resume: None,
                shard: None,
                page_rows: 7,
            };
            let buckets = plan(&read, store.settings());
            let mut merge =
                OrderedMerge::<_, ApiReading>::new(queries.reads(), buckets, order, read_ahead);
            let mut got = Vec::new();
            while let Some(r) = merge.next().await.unwrap() {
                got.push(key(&r));
            }
            let want = expected(&readings, range, order);
            assert_eq!(got, want, "{range:?} {order:?} read ahead {read_ahead}");
        }
        let partitions = queries.all_partitions(&service, range, None);
        let pages: Vec<Vec<ApiReading>> = scan::<_, ApiReading>(&queries.reads(), partitions)
            .try_collect()
            .await
            .unwrap();
        let mut got: Vec<ReadingKey> = pages.iter().flatten().map(key).collect();
        got.sort();
        assert_eq!(got, expected(&readings, range, Order::Asc));
    }
}

#[tokio::test]
async fn pages_resume_exactly_after_the_cursor() {
    let (_dir, store, readings, start) = seeded().await;
    let queries = Queries::new(store, tiny_pages());
    let range = format!("service=shop&from={}&to={}", start, start + 5 * HOUR_MS);
    for (extra, filter) in [
        ("&order=asc", ApiFilter::default()),
        ("&order=desc", ApiFilter::default()),
        (
            "&path=/a&code=503",
            ApiFilter {
                path: Some(ApiPath::parse("/a").unwrap()),
                code: Some(StatusCode::parse(503).unwrap()),
                ..ApiFilter::default()
            },
        ),
    ] {
        let order = if extra.contains("desc") {
            Order::Desc
        } else {
            Order::Asc
        };
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = format!("{range}{extra}&limit=13");
            if let Some(c) = &cursor {
                query += &format!("&cursor={c}");
            }
            let pairs: Vec<(String, String)> = query
                .split('&')
                .map(|p| p.split_once('=').unwrap())
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            let request = ReadingsRequest::parse(&pairs, queries.limits()).unwrap();
            let page = queries.readings(&request).await.unwrap();
            assert!(page.readings.len() <= 13);
            got.extend(page.readings.iter().map(|r| r.0.id.uuid()));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let range = TimeRange {
            from: TimestampMs::from_millis(start),
            to: TimestampMs::from_millis(start + 5 * HOUR_MS),
        };
        let matching: Vec<ApiReading> = readings
            .iter()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect();
        let want: Vec<uuid::Uuid> = expected(&matching, range, order)
            .iter()
            .map(|k| k.id.uuid())
            .collect();
        assert_eq!(got, want, "{extra}");
    }
}
