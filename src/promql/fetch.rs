//! Runs the reads a query needs, once each for the whole range, and keeps the readings in a
//! compact form: per service, per API series `(instance, method, path, code)` the events
//! `(time, seconds, requests per bucket)`, per host instance its samples — each sorted by time.
//!
//! A read for a level of rollups covers whole slots: raw readings before the service's rollups
//! are complete (`query::source::plan`, as the stats endpoints split a range), rollup rows from
//! then on. A slot's rows become two events, the readings stamped at its start (`t = s`) and the
//! rest (`t = s + 1 ms`): every window `(a, b]` with `a` and `b` slot boundaries then holds
//! exactly the events of the readings it holds (`rollup::prom`). A slot with a row written
//! before rows had those parts is read raw instead.
//!
//! Invariant: every reading or rollup row kept is charged against the query's sample budget, so
//! memory is bounded by `--query-max-samples` whatever the range.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::stream::{self, StreamExt, TryStreamExt};
use futures::FutureExt;

use super::error::PromqlError;
use super::families::Kind;
use super::plan::{ReadKey, ReadSpec};
use super::source::Source;
use crate::model::{
    ApiPath, HostGauges, HttpMethod, InstanceName, ServiceName, StatusCode, TimestampMs,
};
use crate::query::params::{ApiFilter, Step, TimeRange};
use crate::query::source::{plan, Level, Source as Sources};
use crate::rollup::prom::{bucket_of, Part, BUCKETS};
use crate::rollup::{Agg, Resolution, RollupRow};

/// Reads of one query running at once (each fans out over its partitions by itself).
const READS_IN_FLIGHT: usize = 4;

/// The identity of an API series within a service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKey {
    /// The instance.
    pub instance: InstanceName,
    /// The method.
    pub method: HttpMethod,
    /// The path.
    pub path: ApiPath,
    /// The status code.
    pub code: StatusCode,
}

/// The requests of an event: how many, and in which duration buckets
/// (`rollup::prom::bucket_of`).
#[derive(Debug, Clone, PartialEq)]
pub enum Requests {
    /// A raw reading: `count` requests, all in bucket `bucket`.
    One {
        /// Requests.
        count: u32,
        /// Their bucket.
        bucket: u8,
    },
    /// A part of a rollup slot: requests per bucket, non-cumulative (boxed: an event stays 32
    /// bytes, the size that matters for the raw readings of a long range).
    Many(Box<[u64; BUCKETS]>),
}

impl Requests {
    /// Requests in all.
    pub fn count(&self) -> u64 {
        match self {
            Requests::One { count, .. } => u64::from(*count),
            Requests::Many(per) => per.iter().sum(),
        }
    }

    /// Requests in buckets up to `le` (an index of `rollup::prom::bucket_of`).
    pub fn up_to(&self, le: usize) -> u64 {
        match self {
            Requests::One { count, bucket } if usize::from(*bucket) <= le => u64::from(*count),
            Requests::One { .. } => 0,
            Requests::Many(per) => per[..=le].iter().sum(),
        }
    }
}

/// One API reading, or a part of a rollup slot, as the families need it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiEvent {
    /// Time, ms.
    pub t: i64,
    /// The requests' summed duration, seconds (a reading: `count × duration_ms / 1000`).
    pub seconds: f64,
    /// Its requests.
    pub requests: Requests,
}

impl ApiEvent {
    fn of_part(t: i64, part: Part) -> Self {
        Self {
            t,
            seconds: part.duration_sum / 1000.0,
            requests: Requests::Many(Box::new(part.buckets)),
        }
    }
}

/// One host reading.
#[derive(Debug, Clone, PartialEq)]
pub struct HostEvent {
    /// Time, ms.
    pub t: i64,
    /// Its gauges.
    pub gauges: HostGauges,
}

/// API events per series, sorted by time.
pub type ApiSeries = HashMap<ApiKey, Vec<ApiEvent>>;

/// The readings of one service.
#[derive(Debug, Default)]
pub struct ServiceData {
    /// API events per series, by the level of the selectors they were read for.
    pub api: HashMap<Level, ApiSeries>,
    /// Host events per instance, sorted by time.
    pub host: HashMap<InstanceName, Vec<HostEvent>>,
}

/// Every reading a query needs.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Per service.
    pub services: BTreeMap<ServiceName, ServiceData>,
    /// The levels the reads actually used.
    pub used: BTreeSet<Level>,
    /// The latest *since* of the services read for rollups (`rollup::coverage`).
    pub rollups_since: Option<TimestampMs>,
}

/// Counts readings against the sample budget.
struct Budget {
    max: usize,
    used: usize,
}

impl Budget {
    fn charge(&mut self, n: usize) -> Result<(), PromqlError> {
        self.used += n;
        if self.used > self.max {
            return Err(too_many_samples(self.max));
        }
        Ok(())
    }
}

/// The refusal past `--query-max-samples`.
pub fn too_many_samples(max: usize) -> PromqlError {
    PromqlError::Limit(format!(
        "query processing would load too many samples into memory (more than {max}, \
         --query-max-samples); narrow the time range, use a larger step or add label matchers"
    ))
}

/// What one read brought back.
enum ReadData {
    Api(ApiSeries),
    Host(HashMap<InstanceName, Vec<HostEvent>>),
}

/// One read's outcome: its data, rows read, levels used and the service's *since*.
struct Read {
    data: ReadData,
    rows: usize,
    used: BTreeSet<Level>,
    since: Option<TimestampMs>,
}

/// Counts rows read by one read against `max_samples`.
fn count_rows(rows: &mut usize, n: usize, max_samples: usize) -> Result<(), PromqlError> {
    *rows += n;
    if *rows > max_samples {
        return Err(too_many_samples(max_samples));
    }
    Ok(())
}

/// What reads of one service's API data share.
struct ApiRead<'a, S> {
    source: &'a S,
    service: &'a ServiceName,
    filter: &'a ApiFilter,
    max_samples: usize,
    series: ApiSeries,
    rows: usize,
    used: BTreeSet<Level>,
}

impl<S: Source> ApiRead<'_, S> {
    /// The raw readings of `range`.
    async fn raw(&mut self, range: TimeRange) -> Result<(), PromqlError> {
        let mut pages = self.source.api_readings(self.service, range, self.filter);
        while let Some(page) = pages.try_next().await? {
            count_rows(&mut self.rows, page.len(), self.max_samples)?;
            for r in page {
                let key = ApiKey {
                    instance: r.instance,
                    method: r.method,
                    path: r.path,
                    code: r.code,
                };
                let count = r.count;
                self.series.entry(key).or_default().push(ApiEvent {
                    t: r.timestamp.millis(),
                    seconds: f64::from(count) * (r.duration_ms / 1000.0),
                    requests: Requests::One {
                        count,
                        bucket: bucket_of(r.duration_ms) as u8,
                    },
                });
            }
        }
        self.used.insert(Level::Raw);
        Ok(())
    }

    /// Whole slots of `range` for selectors served by `resolution`: rollups where complete,
    /// raw readings elsewhere. Returns the service's *since*.
    async fn rollups(
        &mut self,
        resolution: Resolution,
        range: TimeRange,
    ) -> Result<TimestampMs, PromqlError> {
        let since = self.source.rollups_since(self.service).await?;
        let step = Step::parse(resolution.name()).expect("a level's name is a step");
        for span in plan(range, step, Sources::Auto, since) {
            let Level::Rollup(level) = span.level else {
                self.raw(span.range).await?;
                continue;
            };
            let rows = self
                .source
                .api_rollups(self.service, level, span.range, self.filter)
                .await?;
            count_rows(&mut self.rows, rows.len(), self.max_samples)?;
            let (events, old) = rollup_events(rows);
            for (key, event) in events {
                self.series.entry(key).or_default().push(event);
            }
            let slots = (span.range.to.millis() + 1 - span.range.from.millis()) / level.step_ms();
            if (old.len() as i64) < slots {
                self.used.insert(span.level);
            }
            // Slots with a row written before rows had the PromQL parts: raw readings, one read
            // per run of consecutive slots.
            let mut old = old.into_iter().peekable();
            while let Some(first) = old.next() {
                let mut last = first;
                while old.peek() == Some(&(last + level.step_ms())) {
                    last = old.next().expect("peeked");
                }
                let range = TimeRange {
                    from: TimestampMs::from_millis(first),
                    to: TimestampMs::from_millis(last + level.step_ms() - 1),
                };
                self.raw(range).await?;
            }
        }
        Ok(since)
    }
}

/// The two events of each row, and the slots (their start, ms) that have a row without the
/// PromQL parts: no event comes from those slots.
fn rollup_events(rows: Vec<RollupRow>) -> (Vec<(ApiKey, ApiEvent)>, BTreeSet<i64>) {
    let old: BTreeSet<i64> = rows
        .iter()
        .filter(|row| matches!(&row.agg, Agg::Api(agg) if agg.prom.is_none()))
        .map(|row| row.slot.millis())
        .collect();
    let mut out = Vec::with_capacity(rows.len() * 2);
    for row in rows {
        let slot = row.slot.millis();
        let Agg::Api(agg) = row.agg else { continue };
        let (Some(prom), false) = (agg.prom.as_ref(), old.contains(&slot)) else {
            continue;
        };
        let (Some(method), Some(path), Some(code)) =
            (row.series.method, row.series.path, row.series.code)
        else {
            continue;
        };
        let key = ApiKey {
            instance: row.series.instance,
            method,
            path,
            code,
        };
        let (at_start, rest) = prom.split(agg.count, agg.duration_sum);
        if let Some(part) = at_start {
            out.push((key.clone(), ApiEvent::of_part(slot, part)));
        }
        if let Some(part) = rest {
            out.push((key, ApiEvent::of_part(slot + 1, part)));
        }
    }
    (out, old)
}

async fn read_one<S: Source>(
    source: &S,
    key: &ReadKey,
    spec: &ReadSpec,
    max_samples: usize,
) -> Result<Read, PromqlError> {
    let range = TimeRange {
        from: TimestampMs::from_millis(spec.from),
        to: TimestampMs::from_millis(spec.to),
    };
    match key.kind {
        Kind::Api => {
            let mut read = ApiRead {
                source,
                service: &key.service,
                filter: &spec.api,
                max_samples,
                series: ApiSeries::new(),
                rows: 0,
                used: BTreeSet::new(),
            };
            let since = match key.level {
                Level::Raw => {
                    read.raw(range).await?;
                    None
                }
                Level::Rollup(resolution) => Some(read.rollups(resolution, range).await?),
            };
            for events in read.series.values_mut() {
                events.sort_by_key(|e| e.t);
            }
            Ok(Read {
                data: ReadData::Api(read.series),
                rows: read.rows,
                used: read.used,
                since,
            })
        }
        Kind::Host => {
            let mut rows = 0;
            let mut pages = source.host_readings(&key.service, range, spec.instance.as_ref());
            let mut series: HashMap<InstanceName, Vec<HostEvent>> = HashMap::new();
            while let Some(page) = pages.try_next().await? {
                count_rows(&mut rows, page.len(), max_samples)?;
                for r in page {
                    series.entry(r.instance).or_default().push(HostEvent {
                        t: r.timestamp.millis(),
                        gauges: r.gauges,
                    });
                }
            }
            for events in series.values_mut() {
                // Stable: readings of one instant keep the store's order (by reading id).
                events.sort_by_key(|e| e.t);
            }
            Ok(Read {
                data: ReadData::Host(series),
                rows,
                used: BTreeSet::from([Level::Raw]),
                since: None,
            })
        }
    }
}

/// Runs every read, a few at a time; fails past `max_samples` readings.
pub async fn fetch<S: Source>(
    source: &S,
    reads: BTreeMap<ReadKey, ReadSpec>,
    max_samples: usize,
) -> Result<(Fetched, usize), PromqlError> {
    let mut budget = Budget {
        max: max_samples,
        used: 0,
    };
    let mut fetched = Fetched::default();
    // Boxed futures over owned reads keep the stream `Send` for any lifetime of `source`.
    let mut parts = stream::iter(reads)
        .map(|(key, spec)| {
            async move {
                let part = read_one(source, &key, &spec, max_samples).await?;
                Ok::<_, PromqlError>((key, part))
            }
            .boxed()
        })
        .buffer_unordered(READS_IN_FLIGHT);
    while let Some((key, read)) = parts.try_next().await? {
        budget.charge(read.rows)?;
        fetched.used.extend(read.used);
        if let Some(since) = read.since {
            fetched.rollups_since = fetched.rollups_since.max(Some(since));
        }
        let data = fetched.services.entry(key.service.clone()).or_default();
        match read.data {
            ReadData::Api(series) => {
                data.api.insert(key.level, series);
            }
            ReadData::Host(series) => data.host = series,
        }
    }
    Ok((fetched, budget.used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_stays_small() {
        assert_eq!(std::mem::size_of::<ApiEvent>(), 32);
    }
}
