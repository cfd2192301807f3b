//! Engine tests over readings held in memory: the semantics, each case computed by hand.

mod cases;
mod rollups;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};

use super::source::{Pages, Source, SourceError};
use super::{Engine, EngineConfig, PromqlError, Query, QueryValue};
use crate::model::{
    ApiPath, ApiReading, HostGauges, HostReading, HttpMethod, InstanceName, ReadingId, ServiceName,
    StatusCode, TimestampMs,
};
use crate::query::params::{ApiFilter, TimeRange};

/// 2024-03-01T00:00:00Z, a UTC midnight.
const DAY: i64 = 1_709_251_200_000;
const MIN: i64 = 60_000;

/// Readings in memory; remembers every read it answered.
#[derive(Default)]
struct Memory {
    api: Vec<ApiReading>,
    host: Vec<HostReading>,
    reads: Arc<Mutex<Vec<String>>>,
    /// Every page waits this long (for the timeout test).
    delay: Duration,
    /// Rollups, complete from this instant on, computed from the readings (`rollups::Rollups`).
    rollups: Option<rollups::Rollups>,
}

fn pages<R: Send + 'static>(rows: Vec<R>, delay: Duration) -> Pages<R> {
    let mut chunks: Vec<Vec<R>> = Vec::new();
    for row in rows {
        match chunks.last_mut() {
            Some(chunk) if chunk.len() < 3 => chunk.push(row),
            _ => chunks.push(vec![row]),
        }
    }
    stream::iter(chunks)
        .then(move |chunk| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, SourceError>(chunk)
        })
        .boxed()
}

impl Source for Memory {
    async fn services(&self) -> Result<Vec<ServiceName>, SourceError> {
        let mut all: Vec<ServiceName> = self.api.iter().map(|r| r.service.clone()).collect();
        all.extend(self.host.iter().map(|r| r.service.clone()));
        all.sort();
        all.dedup();
        Ok(all)
    }

    fn api_readings(
        &self,
        service: &ServiceName,
        range: TimeRange,
        filter: &ApiFilter,
    ) -> Pages<ApiReading> {
        self.reads.lock().unwrap().push(format!("api {service}"));
        let rows: Vec<ApiReading> = self
            .api
            .iter()
            .rev()
            .filter(|r| r.service == *service && range.contains(r.timestamp) && filter.matches(r))
            .cloned()
            .collect();
        pages(rows, self.delay)
    }

    fn host_readings(
        &self,
        service: &ServiceName,
        range: TimeRange,
        instance: Option<&InstanceName>,
    ) -> Pages<HostReading> {
        self.reads.lock().unwrap().push(format!("host {service}"));
        let rows: Vec<HostReading> = self
            .host
            .iter()
            .filter(|r| r.service == *service && range.contains(r.timestamp))
            .filter(|r| instance.is_none_or(|i| *i == r.instance))
            .cloned()
            .collect();
        pages(rows, self.delay)
    }

    async fn rollups_since(&self, _service: &ServiceName) -> Result<TimestampMs, SourceError> {
        Ok(self
            .rollups
            .as_ref()
            .map_or(TimestampMs::from_millis(i64::MAX), |r| r.since))
    }

    async fn api_rollups(
        &self,
        service: &ServiceName,
        resolution: crate::rollup::Resolution,
        range: TimeRange,
        filter: &ApiFilter,
    ) -> Result<Vec<crate::rollup::RollupRow>, SourceError> {
        self.reads
            .lock()
            .unwrap()
            .push(format!("rollups {service}"));
        Ok(self.rollups.as_ref().map_or_else(Vec::new, |r| {
            r.rows(&self.api, service, resolution, range, filter)
        }))
    }
}

/// An API reading.
#[allow(clippy::too_many_arguments)]
fn api(
    service: &str,
    instance: &str,
    path: &str,
    code: i64,
    duration_ms: f64,
    count: u32,
    at: i64,
) -> ApiReading {
    ApiReading {
        id: ReadingId::new(),
        service: ServiceName::parse(service).unwrap(),
        instance: InstanceName::parse(instance).unwrap(),
        method: HttpMethod::parse("GET").unwrap(),
        path: ApiPath::parse(path).unwrap(),
        code: StatusCode::parse(code).unwrap(),
        duration_ms,
        count,
        timestamp: TimestampMs::from_millis(at),
    }
}

/// A host reading with a CPU figure and availability.
fn host(service: &str, instance: &str, at: i64, cpu: f64, available: bool) -> HostReading {
    HostReading {
        id: ReadingId::new(),
        service: ServiceName::parse(service).unwrap(),
        instance: InstanceName::parse(instance).unwrap(),
        timestamp: TimestampMs::from_millis(at),
        gauges: HostGauges {
            cpu_percent: Some(cpu),
            available: Some(available),
            ..HostGauges::default()
        },
    }
}

fn engine(memory: Memory) -> Engine<Memory> {
    Engine::new(memory, EngineConfig::default())
}

async fn instant(engine: &Engine<Memory>, query: &str, at: i64) -> Result<QueryValue, PromqlError> {
    engine
        .instant(&Query::parse(query)?, TimestampMs::from_millis(at))
        .await
}

/// An instant vector as `labels → value`, labels written as Prometheus prints them.
async fn vector(engine: &Engine<Memory>, query: &str, at: i64) -> Vec<(String, f64)> {
    match instant(engine, query, at).await {
        Ok(QueryValue::Vector(samples)) => samples
            .into_iter()
            .map(|s| (s.labels.to_string(), s.v))
            .collect(),
        other => panic!("{query}: expected a vector, got {other:?}"),
    }
}

/// A range answer as `labels → [(ms, value)]`.
async fn matrix(
    engine: &Engine<Memory>,
    query: &str,
    (start, end, step): (i64, i64, i64),
) -> Vec<(String, Vec<(i64, f64)>)> {
    let value = engine
        .range(
            &Query::parse(query).unwrap(),
            TimestampMs::from_millis(start),
            TimestampMs::from_millis(end),
            Duration::from_millis(step as u64),
        )
        .await;
    match value {
        Ok(QueryValue::Matrix(series)) => series
            .into_iter()
            .map(|s| {
                let points = s.points.into_iter().map(|(t, v)| (t.millis(), v)).collect();
                (s.labels.to_string(), points)
            })
            .collect(),
        other => panic!("{query}: expected a matrix, got {other:?}"),
    }
}
