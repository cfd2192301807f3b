//! `/v1/series` and `/v1/latest` page by page on the embedded store: following the cursors
//! gives exactly the whole answer, and a store holding more than a query may read is refused
//! by name, never answered in part.

use std::sync::Arc;

use super::super::answer::{LatestAnswer, SeriesAnswer};
use super::super::requests::{LatestRequest, SeriesRequest};
use super::super::{Queries, QueryError, QueryLimits};
use crate::model::{
    ApiPath, ApiReading, HostGauges, HostReading, HttpMethod, InstanceName, Reading, ReadingId,
    ServiceName, StatusCode, TimestampMs,
};
use crate::store::embedded::EmbeddedStore;
use crate::store::{SeriesSeen, Store, WriteBatch};

/// Three services × four instances × several methods and paths, host readings for some
/// instances, and host-only instances: 114 API series and 15 host instances in all.
async fn seeded() -> (tempfile::TempDir, Arc<EmbeddedStore>, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let now = TimestampMs::now().millis() - 60_000;
    let mut readings = Vec::new();
    for (s, service) in ["a", "b", "c"].into_iter().enumerate() {
        for i in 0..4 {
            let instance = format!("i-{i}");
            for p in 0..(3 + s * 2 + i) {
                for method in ["GET", "POST"].iter().take(1 + (p % 2)) {
                    readings.push(Reading::Api(ApiReading {
                        id: ReadingId::new(),
                        service: ServiceName::parse(service).unwrap(),
                        instance: InstanceName::parse(&instance).unwrap(),
                        method: HttpMethod::parse(method).unwrap(),
                        path: ApiPath::parse(&format!("/p{p}")).unwrap(),
                        code: StatusCode::parse(200).unwrap(),
                        duration_ms: 1.0,
                        count: 1,
                        timestamp: TimestampMs::from_millis(now),
                    }));
                }
            }
        }
        for instance in ["i-0", "i-2", "host-only-1", "host-only-2", "z"] {
            readings.push(Reading::Host(HostReading {
                id: ReadingId::new(),
                service: ServiceName::parse(service).unwrap(),
                instance: InstanceName::parse(instance).unwrap(),
                timestamp: TimestampMs::from_millis(now),
                gauges: HostGauges {
                    cpu_percent: Some(1.0),
                    ..HostGauges::default()
                },
            }));
        }
    }
    let batch = WriteBatch::build(readings, store.settings(), &SeriesSeen::new(0));
    store.write(&batch).await.unwrap();
    (dir, store, now)
}

fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap())
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

async fn latest_pages(queries: &Queries<EmbeddedStore>, query: &str, limit: u32) -> LatestAnswer {
    let mut all: Option<LatestAnswer> = None;
    let mut cursor = String::new();
    loop {
        let request = LatestRequest::parse(
            &pairs(&format!("{query}&limit={limit}{cursor}")),
            queries.limits(),
        )
        .unwrap();
        let page = queries.latest(&request).await.unwrap();
        assert!(page.api.len() + page.host.len() <= limit as usize);
        let next = page.next_cursor.clone();
        match &mut all {
            None => all = Some(page),
            Some(all) => {
                all.api.extend(page.api);
                all.host.extend(page.host);
                all.next_cursor = page.next_cursor;
            }
        }
        match next {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return all.unwrap(),
        }
    }
}

#[tokio::test]
async fn latest_pages_add_up_to_the_whole_answer() {
    let (_dir, store, _) = seeded().await;
    let queries = Queries::new(store, QueryLimits::default());
    let whole = latest_pages(&queries, "", 10_000).await;
    assert_eq!((whole.api.len(), whole.host.len()), (114, 15));
    assert!(whole.next_cursor.is_none());
    for limit in [1, 2, 7, 113, 114, 115, 129] {
        let paged = latest_pages(&queries, "", limit).await;
        assert_eq!(paged.api, whole.api, "limit {limit}");
        assert_eq!(paged.host, whole.host, "limit {limit}");
    }
    let b = latest_pages(&queries, "service=b", 5).await;
    assert_eq!(b.api.len(), 38);
    assert!(b.api.iter().all(|r| r.service == "b"));
    assert_eq!(b.host.len(), 5);

    // A page's cursor is bound to the parameters, but not to the limit.
    let first = LatestRequest::parse(&pairs("service=a&limit=3"), queries.limits()).unwrap();
    let next = queries.latest(&first).await.unwrap().next_cursor.unwrap();
    let other = LatestRequest::parse(
        &pairs(&format!("service=b&cursor={next}")),
        queries.limits(),
    );
    assert_eq!(other.unwrap_err().0[0].field, "cursor");
    let bigger = LatestRequest::parse(
        &pairs(&format!("service=a&limit=9&cursor={next}")),
        queries.limits(),
    );
    assert!(bigger.unwrap().resume.is_some());
}

async fn series_pages(queries: &Queries<EmbeddedStore>, range: &str, limit: u32) -> SeriesAnswer {
    let mut all: Option<SeriesAnswer> = None;
    let mut cursor = String::new();
    loop {
        let request = SeriesRequest::parse(
            &pairs(&format!("{range}&limit={limit}{cursor}")),
            queries.limits(),
        )
        .unwrap();
        let page = queries.series(&request).await.unwrap();
        let entries: usize = page.instances.iter().map(|i| i.methods.len().max(1)).sum();
        assert!(entries <= limit as usize, "{entries} entries > {limit}");
        let next = page.next_cursor.clone();
        match &mut all {
            None => all = Some(page),
            Some(all) => {
                let mut instances = page.instances.into_iter().peekable();
                let last = all.instances.last_mut().unwrap();
                if instances
                    .peek()
                    .is_some_and(|i| i.instance == last.instance)
                {
                    last.methods.extend(instances.next().unwrap().methods);
                }
                all.instances.extend(instances);
                all.next_cursor = page.next_cursor;
            }
        }
        match next {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return all.unwrap(),
        }
    }
}

#[tokio::test]
async fn series_pages_add_up_to_the_whole_answer() {
    let (_dir, store, now) = seeded().await;
    let queries = Queries::new(store, QueryLimits::default());
    let range = format!("service=c&from={}&to={}", now - 1000, now + 1000);
    let whole = series_pages(&queries, &range, 10_000).await;
    let names: Vec<&str> = whole
        .instances
        .iter()
        .map(|i| i.instance.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "host-only-1",
            "host-only-2",
            "i-0",
            "i-1",
            "i-2",
            "i-3",
            "z"
        ]
    );
    assert!(whole.instances[0].methods.is_empty());
    for limit in [1, 2, 5, 13, 100] {
        let paged = series_pages(&queries, &range, limit).await;
        assert_eq!(paged, whole, "limit {limit}");
    }
}

#[tokio::test]
async fn more_rows_than_a_query_may_read_are_refused_not_cut() {
    let (_dir, store, now) = seeded().await;
    let queries = Queries::new(
        store,
        QueryLimits {
            max_scan_rows: 30,
            ..QueryLimits::default()
        },
    );
    let request = LatestRequest::parse(&[], queries.limits()).unwrap();
    let Err(QueryError::Params(problems)) = queries.latest(&request).await else {
        panic!("a latest answer past max_scan_rows was not refused")
    };
    assert_eq!(problems.0[0].field, "service");
    assert!(problems.0[0].problem.contains("--query-max-scan-rows"));
    let range = format!("service=c&from={}&to={}", now - 1000, now + 1000);
    let request = SeriesRequest::parse(&pairs(&range), queries.limits()).unwrap();
    let Err(QueryError::Params(problems)) = queries.series(&request).await else {
        panic!("a series answer past max_scan_rows was not refused")
    };
    assert_eq!(problems.0[0].field, "from");
}
