//! The request path's side of capture: hand a finished request over, never wait.
//!
//! [`Recorder::record`] does one `try_send` into a bounded, lock-free buffer
//! (`std::sync::mpsc::sync_channel`): no lock, no allocation, no await, no I/O. When the buffer is
//! full (the pipeline cannot keep up) or capture has stopped, the request is counted in
//! [`CaptureStats::dropped_buffer`] and forgotten. Everything else (path normalising, validation,
//! aggregation, HTTP) happens on the pipeline's task.
//!
//! Counters are kept where they are cheapest: the request path touches a shared atomic only when it
//! drops a request; the pipeline counts what it receives. So [`CaptureStats::requests`] lags by
//! what sits in the buffer, and after [`Capture::shutdown`](super::Capture::shutdown)
//! `requests == delivered + dropped()` holds exactly (for requests that ended before it; one
//! ending during the final drain may be lost uncounted).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::MatchedPath;
use axum::http::{Method, Uri};

/// Where the path of a recorded request comes from, best first.
#[derive(Debug, Clone)]
pub enum RoutePath {
    /// The route template axum matched (`/users/{id}`).
    Matched(MatchedPath),
    /// A template the caller knows (a tonic method, a hand-written router).
    Template(&'static str),
    /// The raw request URI; its path is normalised off the request path.
    Raw(Uri),
}

impl RoutePath {
    /// The route template if known, else the raw path (to be normalised).
    pub fn as_str(&self) -> &str {
        match self {
            RoutePath::Matched(m) => m.as_str(),
            RoutePath::Template(t) => t,
            RoutePath::Raw(uri) => uri.path(),
        }
    }

    /// True when [`as_str`](Self::as_str) is a template already.
    pub fn is_template(&self) -> bool {
        !matches!(self, RoutePath::Raw(_))
    }
}

/// One finished request.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// The request method.
    pub method: Method,
    /// The route or raw path.
    pub route: RoutePath,
    /// The response status (500 when the service failed without a response).
    pub status: u16,
    /// From the call to the response head.
    pub elapsed: Duration,
    /// When the response head was ready; its wall-clock time is worked out off the request path.
    pub ended: Instant,
}

/// Counters of the pipeline, shared by the recorder and the pipeline tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Records the pipeline took out of the buffer.
    pub received: AtomicU64,
    /// Requests lost because the buffer was full or capture had stopped.
    pub dropped_buffer: AtomicU64,
    /// Requests that cannot be a reading (a non-standard method or status, the series cap).
    pub dropped_unrecordable: AtomicU64,
    /// Requests whose batch was refused, given up on, or found no room in the send queue.
    pub dropped_unsent: AtomicU64,
    /// Requests whose batch the collector accepted.
    pub delivered: AtomicU64,
    /// Requests in batches queued or being sent.
    pub in_flight: AtomicU64,
    /// Batches the collector accepted.
    pub batches: AtomicU64,
    /// Failed attempts that were retried.
    pub retries: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CaptureStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let dropped_buffer = get(&self.dropped_buffer);
        CaptureStats {
            requests: get(&self.received) + dropped_buffer,
            delivered: get(&self.delivered),
            dropped_buffer,
            dropped_unrecordable: get(&self.dropped_unrecordable),
            dropped_unsent: get(&self.dropped_unsent),
            in_flight: get(&self.in_flight),
            batches: get(&self.batches),
            retries: get(&self.retries),
        }
    }
}

/// What capture has done so far, in requests (an aggregated reading of `count` requests counts
/// `count`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Requests recorded (exact after shutdown; before it, less what sits in the buffer).
    pub requests: u64,
    /// Requests the collector accepted.
    pub delivered: u64,
    /// Requests lost at the request path: the buffer was full, or capture had stopped.
    pub dropped_buffer: u64,
    /// Requests that cannot be a reading: a non-standard method or status, or past the series cap.
    pub dropped_unrecordable: u64,
    /// Requests lost on the way out: refused by the collector, retries exhausted, send queue full,
    /// or still unsent at shutdown.
    pub dropped_unsent: u64,
    /// Requests in batches queued or being sent.
    pub in_flight: u64,
    /// Batches the collector accepted.
    pub batches: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
}

impl CaptureStats {
    /// Every request lost, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_buffer + self.dropped_unrecordable + self.dropped_unsent
    }
}

/// Hands finished requests to the capture pipeline. Cheap to clone; never blocks.
#[derive(Debug, Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The bounded buffer to the pipeline.
    buffer: SyncSender<RequestRecord>,
    /// The pipeline's counters.
    counters: Arc<Counters>,
}

impl Recorder {
    pub(crate) fn new(buffer: SyncSender<RequestRecord>, counters: Arc<Counters>) -> Self {
        Self {
            shared: Arc::new(Shared { buffer, counters }),
        }
    }

    /// Records one finished request, or counts it dropped if the buffer is full.
    pub fn record(&self, record: RequestRecord) {
        if self.shared.buffer.try_send(record).is_err() {
            Counters::add(&self.shared.counters.dropped_buffer, 1);
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> CaptureStats {
        self.shared.counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RequestRecord {
        RequestRecord {
            method: Method::GET,
            route: RoutePath::Template("/x"),
            status: 200,
            elapsed: Duration::from_millis(1),
            ended: Instant::now(),
        }
    }

    #[test]
    fn a_full_buffer_drops_and_counts_without_blocking() {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let recorder = Recorder::new(tx, Arc::default());
        for _ in 0..10 {
            recorder.record(record());
        }
        assert_eq!(recorder.stats().dropped_buffer, 6);
        assert_eq!(rx.try_iter().count(), 4);
        drop(rx);
        recorder.record(record());
        assert_eq!(recorder.stats().dropped_buffer, 7);
    }
}
