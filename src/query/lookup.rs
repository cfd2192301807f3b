//! The small lookups: the series index (`/v1/series`), the latest readings (`/v1/latest`) and
//! whether a service is known at all.
//!
//! The series index is kept per bucket, so `/v1/series` answers with every series seen in a
//! bucket that overlaps `[from, to]`: at bucket granularity, by design of the index (one small
//! partition per bucket instead of scanning readings).
//!
//! A service is known when a latest table has a row of it; the latest tables hold every series
//! for the retention, so "unknown" means nothing arrived from it within the retention. Known
//! services are remembered for [`KNOWN_FOR`] so that a dashboard's queries cost no extra reads.
//!
//! Both answers are paged: entries are sorted by a key of names (series: instance, method,
//! path; latest: kind, service, instance, method, path), a page holds at most `limit` of them,
//! and its cursor is the key of its last entry. The store is read whole for each page, at most
//! `max_scan_rows` rows: past that the query is refused by name, never cut short silently.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{stream, StreamExt, TryStreamExt};

use super::answer::{InstanceSeries, LatestAnswer, MethodPath, ReadingOut, SeriesAnswer};
use super::cursor;
use super::params::ParamErrors;
use super::requests::{LatestRequest, SeriesRequest};
use super::{Queries, QueryError};
use crate::model::{
    ApiReading, HostReading, InstanceName, ReadingKind, Seq, ServiceName, TimeBucket,
};
use crate::store::Store;

/// How long a service seen in the latest tables stays known without a new look.
pub const KNOWN_FOR: Duration = Duration::from_secs(60);
/// Most services remembered; past this the memory is cleared (a re-check is one small read).
const MAX_REMEMBERED: usize = 10_000;

/// Services recently found in the latest tables.
#[derive(Debug, Default)]
pub struct KnownServices {
    seen: Mutex<HashMap<ServiceName, Instant>>,
}

impl KnownServices {
    fn recently_seen(&self, service: &ServiceName) -> bool {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.get(service).is_some_and(|at| at.elapsed() < KNOWN_FOR)
    }

    fn remember(&self, service: &ServiceName) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
        seen.insert(service.clone(), Instant::now());
    }
}

fn unknown_service(service: &ServiceName) -> QueryError {
    QueryError::Params(ParamErrors::one(
        "service",
        format!("unknown service `{service}`: nothing has arrived from it within the retention"),
    ))
}

impl<S: Store> Queries<S> {
    fn latest_shards(&self) -> Vec<Seq> {
        self.store.settings().latest_shards.all().collect()
    }

    /// Fails with a 400 on `service` unless it has a row in a latest table.
    pub(super) async fn known_service(&self, service: &ServiceName) -> Result<(), QueryError> {
        if self.known.recently_seen(service) {
            return Ok(());
        }
        let known = self.has_latest::<ApiReading>(service).await?
            || self.has_latest::<HostReading>(service).await?;
        if !known {
            return Err(unknown_service(service));
        }
        self.known.remember(service);
        Ok(())
    }

    /// Whether `service` has a latest reading of kind `K` (stops at the first shard with one).
    async fn has_latest<K: ReadingKind>(&self, service: &ServiceName) -> Result<bool, QueryError> {
        let store = &*self.store;
        let found = stream::iter(self.latest_shards())
            .map(|shard| store.read_latest::<K>(shard, Some(service)))
            .buffer_unordered(self.limits.concurrency)
            .try_filter(|rows| futures::future::ready(!rows.is_empty()));
        let mut found = std::pin::pin!(found);
        Ok(found.try_next().await?.is_some())
    }

    /// The latest reading of kind `K` of every series (of one service, or all), unsorted.
    /// `scanned` counts the rows read by this query so far: past `max_scan_rows` it is refused.
    async fn all_latest<K: ReadingKind>(
        &self,
        service: Option<&ServiceName>,
        scanned: &mut u64,
    ) -> Result<Vec<K>, QueryError> {
        let store = &*self.store;
        let mut reads = stream::iter(self.latest_shards())
            .map(|shard| store.read_latest::<K>(shard, service))
            .buffer_unordered(self.limits.concurrency);
        let mut all = Vec::new();
        while let Some(rows) = reads.try_next().await? {
            *scanned += rows.len() as u64;
            if *scanned > self.limits.max_scan_rows {
                return Err(match service {
                    None => self.too_many("service", "latest readings", "ask for one service"),
                    Some(_) => self.too_many("service", "latest readings", "it cannot be listed"),
                });
            }
            all.extend(rows);
        }
        Ok(all)
    }

    /// `GET /v1/series`: the instances of a service in `[from, to]` (bucket granularity) and
    /// each one's API methods, one page.
    pub async fn series(&self, request: &SeriesRequest) -> Result<SeriesAnswer, QueryError> {
        self.known_service(&request.service).await?;
        let store = &*self.store;
        let width = store.settings().bucket_width;
        let buckets = TimeBucket::covering(request.range.from, request.range.to, width);
        let mut reads = stream::iter(buckets)
            .map(|bucket| store.read_series(&request.service, bucket))
            .buffer_unordered(self.limits.concurrency);
        let mut instances: BTreeMap<InstanceName, BTreeSet<MethodPath>> = BTreeMap::new();
        let mut scanned = 0u64;
        while let Some(entries) = reads.try_next().await? {
            scanned += entries.len() as u64;
            if scanned > self.limits.max_scan_rows {
                return Err(self.too_many("from", "series entries", "narrow the range"));
            }
            for entry in entries {
                let methods = instances.entry(entry.instance).or_default();
                if let (Some(method), Some(path)) = (entry.method, entry.path) {
                    methods.insert(MethodPath {
                        method: method.to_string(),
                        path: path.to_string(),
                    });
                }
            }
        }
        // One entry per method of an instance, or one for an instance without any.
        let entries = instances.iter().flat_map(|(instance, methods)| {
            let none = methods.is_empty().then_some(None);
            none.into_iter()
                .chain(methods.iter().map(Some))
                .map(move |m| (instance, m))
        });
        let (page, next) = page_of(
            entries,
            series_key,
            request.resume.as_deref(),
            request.limit,
        );
        let mut out: Vec<InstanceSeries> = Vec::new();
        for (instance, method) in page {
            if out
                .last()
                .is_none_or(|last| last.instance != instance.as_str())
            {
                out.push(InstanceSeries {
                    instance: instance.to_string(),
                    methods: Vec::new(),
                });
            }
            let last = out.last_mut().expect("pushed above");
            last.methods.extend(method.cloned());
        }
        Ok(SeriesAnswer {
            service: request.service.to_string(),
            instances: out,
            next_cursor: next.map(|key| cursor::encode_names(&key, &request.fingerprint())),
        })
    }

    /// `GET /v1/latest`: the latest API reading of every series and host reading of every
    /// instance, of one service or all, one page.
    pub async fn latest(&self, request: &LatestRequest) -> Result<LatestAnswer, QueryError> {
        let service = request.service.as_ref();
        let mut scanned = 0u64;
        let api = self.all_latest::<ApiReading>(service, &mut scanned).await?;
        let host = self
            .all_latest::<HostReading>(service, &mut scanned)
            .await?;
        if let Some(service) = service {
            if api.is_empty() && host.is_empty() {
                return Err(unknown_service(service));
            }
            self.known.remember(service);
        }
        let mut entries: Vec<Latest<'_>> = api
            .iter()
            .map(Latest::Api)
            .chain(host.iter().map(Latest::Host))
            .collect();
        entries.sort_unstable_by(|a, b| latest_key(a).cmp(&latest_key(b)));
        let (page, next) = page_of(
            entries.into_iter(),
            latest_key,
            request.resume.as_deref(),
            request.limit,
        );
        let mut answer = LatestAnswer {
            api: Vec::new(),
            host: Vec::new(),
            next_cursor: next.map(|key| cursor::encode_names(&key, &request.fingerprint())),
        };
        for entry in page {
            match entry {
                Latest::Api(r) => answer.api.push(ReadingOut(r.clone())),
                Latest::Host(r) => answer.host.push(ReadingOut(r.clone())),
            }
        }
        Ok(answer)
    }

    /// A 400 on `field` for a query that would read more than `max_scan_rows` rows.
    fn too_many(&self, field: &str, what: &str, advice: &str) -> QueryError {
        QueryError::Params(ParamErrors::one(
            field,
            format!(
                "the answer needs more than {} {what}, the most one query may read \
                 (--query-max-scan-rows); {advice}",
                self.limits.max_scan_rows
            ),
        ))
    }
}

/// One entry of `/v1/latest`.
enum Latest<'a> {
    Api(&'a ApiReading),
    Host(&'a HostReading),
}

/// The sort key of a `/v1/latest` entry: the kind's name (API readings first), then the key of
/// its latest row (service and series).
fn latest_key<'a>(entry: &Latest<'a>) -> [&'a str; 5] {
    fn of<K: ReadingKind>(reading: &K) -> [&str; 5] {
        let ([service, a, b, c], _) = reading.series().latest_key();
        [K::INFO.name, service, a, b, c]
    }
    match entry {
        Latest::Api(r) => of(*r),
        Latest::Host(r) => of(*r),
    }
}

/// The sort key of a `/v1/series` entry: an instance without methods sorts before its methods.
fn series_key<'a>((instance, method): &(&'a InstanceName, Option<&'a MethodPath>)) -> [&'a str; 3] {
    let (m, p) = method.map_or(("", ""), |m| (m.method.as_str(), m.path.as_str()));
    [instance.as_str(), m, p]
}

/// The page of `entries` (sorted by `key`) after `resume`: at most `limit` entries, and the key
/// of the last one when more follow.
fn page_of<'k, T, const N: usize>(
    entries: impl Iterator<Item = T>,
    key: impl Fn(&T) -> [&'k str; N],
    resume: Option<&[String]>,
    limit: u32,
) -> (Vec<T>, Option<[&'k str; N]>) {
    let after = |entry: &T| {
        resume.is_none_or(|r| {
            key(entry)
                .iter()
                .copied()
                .cmp(r.iter().map(String::as_str))
                .is_gt()
        })
    };
    let mut rest = entries.filter(after);
    let page: Vec<T> = rest.by_ref().take(limit as usize).collect();
    let next = match (rest.next(), page.last()) {
        (Some(_), Some(last)) => Some(key(last)),
        _ => None,
    };
    (page, next)
}

#[cfg(test)]
mod tests;
