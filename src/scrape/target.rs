//! One target's scrape loop: on its slot of every interval, fetch (with a timeout), parse,
//! convert, and hand the readings to the acceptor like any ingest body.
//!
//! Invariants: each target runs on its own task, so a slow or hanging target delays nobody
//! else, and its own scrapes never overlap (the timeout is at most the interval; a scrape
//! that overruns its slot makes the next slot be skipped, never queued). Every scrape ends in
//! readings or in a count: a failed one records a host reading `available: false`; one skipped
//! because ingest is refusing (WAL backlog over its limit) is counted and reads nothing, so
//! nothing is buffered in memory. No request is lost to a skip: the target's counters keep
//! running, and a scrape whose readings were refused has its series' totals rolled back, so
//! the next accepted scrape's deltas include them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use tokio::time::MissedTickBehavior;

use super::discovery::Target;
use super::shard;
use super::status::{Health, TargetInfo};
use crate::foreign::exposition::{parse, Converter, Dialect, ParseError};
use crate::ingest::{AcceptError, Acceptor};
use crate::model::{HostGauges, HostReading, Reading, ReadingId, TimestampMs};
use crate::telemetry::Metrics;

/// Largest exposition read, bytes (node-exporter's is ~100 KiB); a larger body fails the scrape.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Most series one target may have tracked at once (per shape); the least recently seen is
/// forgotten beyond it.
const MAX_SERIES_PER_TARGET: usize = 100_000;
/// Series not seen for this many intervals are forgotten (a target stopped exposing them).
const IDLE_INTERVALS: u32 = 10;
/// What we ask for, best first: the formats we parse, as Prometheus asks.
const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
    text/plain;version=0.0.4;q=0.3,*/*;q=0.1";

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// No answer within `scrape_timeout`.
    #[error("no answer within the scrape timeout ({0:?})")]
    Timeout(Duration),
    /// Connection refused, reset, or another transport error.
    #[error("cannot reach the target: {0}")]
    Unreachable(String),
    /// The target answered, but not 2xx.
    #[error("the target answered HTTP {0}")]
    Status(u16),
    /// The body is over [`MAX_BODY_BYTES`].
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// The body is not UTF-8 text.
    #[error("the body is not UTF-8 text")]
    NotText,
    /// The body is not an exposition.
    #[error("not a Prometheus exposition: {0}")]
    Parse(#[from] ParseError),
}

impl ScrapeError {
    /// The `outcome` label of `timebucket_scrapes_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            ScrapeError::Timeout(_) => "timeout",
            ScrapeError::Unreachable(_) => "unreachable",
            ScrapeError::Status(_) => "http_error",
            ScrapeError::TooLarge | ScrapeError::NotText | ScrapeError::Parse(_) => "bad_body",
        }
    }
}

/// What every target loop shares.
#[derive(Clone)]
pub(super) struct Shared {
    /// One connection pool for all targets.
    pub client: reqwest::Client,
    /// Where readings go.
    pub acceptor: Acceptor,
    /// Self-metrics.
    pub metrics: Arc<Metrics>,
}

/// Scrapes `target` on its slot of every interval, forever (the manager aborts the task).
pub(super) async fn run(target: Target, shared: Shared, status: Arc<Mutex<TargetInfo>>) {
    let job = target.job.clone();
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let offset = shard::offset(&job.name, &target.url, job.interval);
    let first = tokio::time::Instant::now() + shard::until_next(since_epoch, offset, job.interval);
    let mut ticker = tokio::time::interval_at(first, job.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut converter = Converter::new(MAX_SERIES_PER_TARGET);
    let job_label = [("job", job.name.clone())];
    loop {
        let slot = ticker.tick().await;
        shared
            .metrics
            .scrape_lateness_seconds
            .observe(slot.elapsed().as_secs_f64());
        let at = TimestampMs::now();
        if !shared.acceptor.has_room() {
            skipped(&shared, &status, &job.name, at);
            continue;
        }
        let started = Instant::now();
        // What the series' totals were before this scrape: restored if its readings cannot be
        // kept, so the next scrape's deltas include these requests.
        let before = converter.clone();
        let scraped = tokio::time::timeout(job.timeout, fetch(&shared.client, &target.url))
            .await
            .unwrap_or(Err(ScrapeError::Timeout(job.timeout)))
            .and_then(|(body, dialect)| {
                let exposition = parse(&body, dialect)?;
                Ok(converter.convert(&exposition, at, &target.origin, &job.mapping))
            });
        let elapsed = started.elapsed();
        shared
            .metrics
            .scrape_duration_seconds
            .observe(elapsed.as_secs_f64());
        let (readings, samples, unmapped, error) = match scraped {
            Ok(c) => (c.readings, c.samples, c.unmapped, None),
            Err(e) => (vec![unavailable(&target, at)], 0, 0, Some(e)),
        };
        let produced = readings.len();
        let outcome = match shared.acceptor.accept_readings(readings).await {
            Ok(_) => error.as_ref().map_or("ok", ScrapeError::outcome),
            Err(AcceptError::Backlog { .. }) => {
                converter = before;
                skipped(&shared, &status, &job.name, at);
                continue;
            }
            Err(refused) => {
                converter = before;
                tracing::warn!(job = %job.name, url = %target.url, error = %refused, "scraped readings were not accepted; the next scrape counts them");
                "refused"
            }
        };
        let stored = if outcome == "refused" { 0 } else { produced };
        let m = &shared.metrics;
        m.scrapes
            .get_or_create(&[("job", job.name.clone()), ("outcome", outcome.to_owned())])
            .inc();
        m.scrape_samples
            .get_or_create(&job_label)
            .inc_by(samples as u64);
        m.scrape_unmapped_samples
            .get_or_create(&job_label)
            .inc_by(unmapped as u64);
        m.scrape_readings
            .get_or_create(&job_label)
            .inc_by(stored as u64);
        {
            let mut s = status.lock().expect("target status lock");
            s.health = if error.is_none() {
                Health::Up
            } else {
                Health::Down
            };
            s.last_scrape = Some(at.to_rfc3339());
            s.last_scrape_duration_seconds = Some(elapsed.as_secs_f64());
            s.last_error = error.as_ref().map(ToString::to_string);
            s.last_samples_read = samples as u64;
            s.last_readings_produced = stored as u64;
            s.last_unmapped_samples = unmapped as u64;
            s.samples_read_total += samples as u64;
            s.readings_produced_total += stored as u64;
            s.scrapes_total += 1;
            s.failures_total += u64::from(error.is_some());
        }
        // Only a successful scrape shows which series a target stopped exposing; while it is
        // unreachable its series are kept, so their totals continue when it comes back.
        if error.is_none() {
            let idle =
                i64::try_from((job.interval * IDLE_INTERVALS).as_millis()).unwrap_or(i64::MAX);
            converter.forget_idle(TimestampMs::from_millis(at.millis().saturating_sub(idle)));
        }
    }
}

/// Counts a scrape skipped because ingest is refusing.
fn skipped(shared: &Shared, status: &Mutex<TargetInfo>, job: &str, at: TimestampMs) {
    shared
        .metrics
        .scrapes
        .get_or_create(&[("job", job.to_owned()), ("outcome", "skipped".to_owned())])
        .inc();
    let mut s = status.lock().expect("target status lock");
    s.skipped_total += 1;
    s.last_scrape = Some(at.to_rfc3339());
    s.last_error = Some("skipped: ingest is refusing (the WAL backlog is over its limit)".into());
}

/// The host reading of a failed scrape.
fn unavailable(target: &Target, at: TimestampMs) -> Reading {
    Reading::Host(HostReading {
        id: ReadingId::new(),
        service: target.origin.service.clone(),
        instance: target.origin.instance.clone(),
        timestamp: at,
        gauges: HostGauges {
            available: Some(false),
            ..HostGauges::default()
        },
    })
}

/// GETs `url`: its body as text and the dialect its Content-Type names.
async fn fetch(client: &reqwest::Client, url: &str) -> Result<(String, Dialect), ScrapeError> {
    let unreachable = |e: reqwest::Error| ScrapeError::Unreachable(e.to_string());
    let mut response = client
        .get(url)
        .header(ACCEPT, ACCEPT_HEADER)
        .send()
        .await
        .map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(ScrapeError::Status(response.status().as_u16()));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ScrapeError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| ScrapeError::NotText)?;
    Ok((text, Dialect::from_content_type(content_type.as_deref())))
}
