//! The two background tasks between the recorder and the collector.
//!
//! ```text
//!  Recorder::record ─try_send─► [buffer: `buffer` records] ─drained every DRAIN_EVERY─► collector task
//!                                                                                        │ aggregate (or raw lines)
//!                                every `interval` (raw: also at `max_batch` lines) ──────┤
//!                                                                                        ▼ try_send
//!                                            [send queue: `max_pending_batches` batches] ─► sender task
//!                                                                      gzip JSON, POST, retry with backoff + jitter
//! ```
//!
//! Invariants: neither task ever waits on the request path, and the collector never waits on the
//! network: when the send queue is full (the collector is down and the sender is retrying), the
//! new batch is dropped and counted, and aggregation goes on. Every request leaves the pipeline
//! counted exactly once: delivered, or dropped with its reason.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;

use super::aggregate::{Aggregator, ApiBatch, Clock, Source};
use super::exposition::MetricsEndpoint;
use super::normalise;
use super::recorder::{Counters, RequestRecord};
use super::Mode;
use crate::client::push::{self, Pusher, RetryPolicy};
use crate::client::wire::JsonBody;
use crate::model::ApiReading;

/// How often the collector empties the buffer. Polling (rather than a wake-up per record) keeps the
/// request path free of any scheduler work; the buffer must hold this long's worth of requests.
pub const DRAIN_EVERY: Duration = Duration::from_millis(10);

/// The collector task's settings.
#[derive(Debug, Clone)]
pub(crate) struct CollectSettings {
    /// Aggregate or raw readings.
    pub mode: Mode,
    /// Aggregation interval and push period.
    pub interval: Duration,
    /// Series cap per interval (aggregate mode).
    pub max_series: usize,
    /// Readings per batch.
    pub max_batch: usize,
    /// How often drops are logged.
    pub report_every: Duration,
    /// Where requests are also counted for scraping (when exposed).
    pub exposition: Option<MetricsEndpoint>,
}

/// Raw readings waiting for their batch, or the interval's aggregates.
enum State {
    /// Readings of single requests, shipped at `max_batch` or at the interval.
    Raw {
        source: Source,
        pending: Vec<ApiReading>,
    },
    /// The interval's summaries, shipped at the interval.
    Aggregate(Aggregator),
    /// Nothing is pushed (scrape only): a request is delivered once it is in the exposition.
    ExposeOnly,
}

/// The collector task's state.
struct Collector {
    /// The recorders' buffer.
    buffer: Receiver<RequestRecord>,
    state: State,
    /// Dates raw requests; re-anchored at every flush.
    clock: Clock,
    max_batch: usize,
    counters: Arc<Counters>,
    /// To the sender task; `try_send` only, so a stuck sender never stops aggregation.
    queue: mpsc::Sender<ApiBatch>,
    /// Classifies requests for the exposition.
    source: Source,
    /// The scrape endpoint's counters, when exposed.
    exposition: Option<MetricsEndpoint>,
}

/// Runs the collector until `stop` fires or every recorder is gone, then ships what it holds.
pub(crate) async fn collect(
    buffer: Receiver<RequestRecord>,
    source: Source,
    settings: CollectSettings,
    counters: Arc<Counters>,
    queue: mpsc::Sender<ApiBatch>,
    mut stop: oneshot::Receiver<()>,
    push: bool,
) {
    let state = match settings.mode {
        _ if !push => State::ExposeOnly,
        Mode::Raw => State::Raw {
            source: source.clone(),
            pending: Vec::new(),
        },
        Mode::Aggregate => State::Aggregate(Aggregator::new(source.clone(), settings.max_series)),
    };
    let mut collector = Collector {
        buffer,
        state,
        clock: Clock::now(),
        max_batch: settings.max_batch.max(1),
        counters,
        queue,
        source,
        exposition: settings.exposition,
    };
    let start = tokio::time::Instant::now();
    let mut drain = tokio::time::interval(DRAIN_EVERY);
    drain.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval_at(start + settings.interval, settings.interval);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut report = tokio::time::interval_at(start + settings.report_every, settings.report_every);
    let mut reported = 0;
    // A `Capture` dropped without `shutdown` detaches: capture goes on while any layer or
    // recorder lives, and ends (shipping what it holds) when the last one is gone.
    let mut detached = false;
    loop {
        tokio::select! {
            biased;
            stopped = &mut stop, if !detached => match stopped {
                Ok(()) => break,
                Err(_) => detached = true,
            },
            _ = flush.tick() => {
                collector.drain();
                collector.flush();
            }
            _ = report.tick() => reported = collector.report(reported),
            _ = drain.tick() => {
                if !collector.drain() {
                    break;
                }
            }
        }
    }
    collector.drain();
    collector.flush();
}

impl Collector {
    /// Takes everything out of the buffer; false once every recorder is gone.
    fn drain(&mut self) -> bool {
        let mut received = 0;
        let mut unrecordable = 0;
        let connected = loop {
            let record = match self.buffer.try_recv() {
                Ok(record) => record,
                Err(TryRecvError::Empty) => break true,
                Err(TryRecvError::Disconnected) => break false,
            };
            received += 1;
            if let Some(exposition) = &self.exposition {
                if let Some((method, code, path, ms)) = self.source.classify(&record) {
                    exposition.observe(
                        method.as_str(),
                        code.get(),
                        normalise::sanitise(&path).as_str(),
                        ms,
                    );
                }
            }
            let counted = match &mut self.state {
                State::ExposeOnly => {
                    let ok = self.source.classify(&record).is_some();
                    Counters::add(&self.counters.delivered, u64::from(ok));
                    ok
                }
                State::Aggregate(aggregator) => aggregator.add(&record),
                State::Raw { source, pending } => match source.reading(&record, &self.clock) {
                    Some(reading) => {
                        pending.push(reading);
                        true
                    }
                    None => false,
                },
            };
            unrecordable += u64::from(!counted);
            if matches!(&self.state, State::Raw { pending, .. } if pending.len() >= self.max_batch)
            {
                self.flush();
            }
        };
        Counters::add(&self.counters.received, received);
        Counters::add(&self.counters.dropped_unrecordable, unrecordable);
        connected
    }

    /// Ships the interval's readings and re-anchors the clock.
    fn flush(&mut self) {
        self.clock = Clock::now();
        let readings = match &mut self.state {
            State::Aggregate(aggregator) => aggregator.drain(self.clock.anchor_ms()),
            State::Raw { pending, .. } => std::mem::take(pending),
            State::ExposeOnly => return,
        };
        for batch in ApiBatch::split(readings, self.max_batch) {
            let requests = batch.requests;
            match self.queue.try_send(batch) {
                Ok(()) => Counters::add(&self.counters.in_flight, requests),
                Err(_) => Counters::add(&self.counters.dropped_unsent, requests),
            }
        }
    }

    /// Logs the drops since the last report; returns the new total.
    fn report(&self, reported: u64) -> u64 {
        let stats = self.counters.snapshot();
        if stats.dropped() > reported {
            tracing::warn!(
                dropped = stats.dropped() - reported,
                buffer_full = stats.dropped_buffer,
                unrecordable = stats.dropped_unrecordable,
                unsent = stats.dropped_unsent,
                delivered = stats.delivered,
                "capture dropped request readings"
            );
        }
        stats.dropped()
    }
}

/// Sends queued batches one at a time until the queue closes.
pub(crate) async fn send(
    mut queue: mpsc::Receiver<ApiBatch>,
    pusher: Pusher,
    retry: RetryPolicy,
    counters: Arc<Counters>,
) {
    let mut failing = false;
    while let Some(batch) = queue.recv().await {
        let requests = batch.requests;
        let outcome = match push::encode(&JsonBody(&batch.readings)) {
            Ok(body) => {
                pusher
                    .send_with_retry(body, &retry, |error| {
                        Counters::add(&counters.retries, 1);
                        tracing::debug!(%error, "push failed; retrying");
                    })
                    .await
            }
            Err(error) => Err(error),
        };
        counters.in_flight.fetch_sub(requests, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                Counters::add(&counters.delivered, requests);
                Counters::add(&counters.batches, 1);
                if std::mem::take(&mut failing) {
                    tracing::info!(url = %pusher.url(), "capture reaches the collector again");
                }
            }
            Err(error) => {
                Counters::add(&counters.dropped_unsent, requests);
                if !error.is_retryable() {
                    tracing::error!(%error, requests, "the collector refused a capture batch");
                } else if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%error, "capture cannot deliver to the collector; dropping batches until it answers");
                }
            }
        }
    }
}
