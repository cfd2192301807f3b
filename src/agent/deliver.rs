//! The agent's outbox: samples wait in a bounded backlog until the collector has them.
//!
//! Sampling and delivery are separate tasks, so a slow or absent collector never delays a sample:
//! the heartbeat keeps its rhythm, and readings taken while the collector was down are delivered
//! with their own timestamps once it is back (so history shows the host up, and only a host that
//! was really silent shows a gap). The backlog is bounded: past [`MAX_BACKLOG_READINGS`] the
//! oldest reading is dropped and counted.
//!
//! Invariant: a reading leaves the backlog only when the collector accepted it, refused it for
//! good (4xx), or it was pushed out as the oldest of a full backlog. Readings carry a sequence
//! number, so confirming a push removes exactly what it sent even if older ones were pushed out
//! meanwhile.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::sync::Notify;

use crate::capture::push::{self, Pusher, RetryPolicy};

/// Most readings held while the collector is unreachable: one day at the default 10 s interval.
pub const MAX_BACKLOG_READINGS: usize = 8640;
/// Most readings per POST (about 250 bytes each before compression).
pub const MAX_READINGS_PER_PUSH: usize = 1000;

/// One host reading as the collector's JSON wants it; absent gauges are left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostLine {
    /// The service name.
    pub service: String,
    /// The instance name.
    pub instance: String,
    /// When the sample was taken, epoch ms.
    pub timestamp: i64,
    /// See [`super::sample`] for each gauge.
    pub available: bool,
    /// Summed usage of every core.
    pub cpu_percent: f64,
    /// Memory in use, bytes.
    pub mem_used_bytes: i64,
    /// Memory installed, bytes.
    pub mem_total_bytes: i64,
    /// Disk in use on the watched mount, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_used_bytes: Option<i64>,
    /// Size of the watched mount, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_total_bytes: Option<i64>,
    /// RSS of the watched process, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heap_bytes: Option<i64>,
    /// Growth of that RSS since the last sample, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocated_bytes: Option<i64>,
    /// Shrinking of that RSS since the last sample, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freed_bytes: Option<i64>,
}

/// One `POST /v1/metrics` body: `{"host": [...]}`.
#[derive(Serialize)]
struct HostBatch<'a> {
    host: Vec<&'a HostLine>,
}

/// The agent's counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Samples taken.
    pub samples: AtomicU64,
    /// Readings the collector accepted.
    pub delivered: AtomicU64,
    /// Readings lost: pushed out of a full backlog, refused, or unsent at shutdown.
    pub dropped: AtomicU64,
    /// Push attempts that failed.
    pub failed_pushes: AtomicU64,
}

#[derive(Debug, Default)]
struct Queue {
    /// Oldest first, each with its sequence number.
    lines: VecDeque<(u64, HostLine)>,
    /// The sequence number of the next reading.
    next_seq: u64,
    /// The sampler has stopped.
    closed: bool,
}

/// Readings waiting for the collector.
#[derive(Debug, Default)]
pub struct Backlog {
    /// Held only to push, peek or confirm: never across an await.
    queue: Mutex<Queue>,
    /// Wakes the delivery task: a new reading, or the close.
    wake: Notify,
    /// Shared with the sampler.
    pub counters: Arc<Counters>,
}

impl Backlog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a reading, pushing the oldest out when full.
    pub fn push(&self, line: HostLine) {
        let mut queue = self.lock();
        if queue.lines.len() >= MAX_BACKLOG_READINGS {
            queue.lines.pop_front();
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        let seq = queue.next_seq;
        queue.next_seq += 1;
        queue.lines.push_back((seq, line));
        drop(queue);
        self.wake.notify_one();
    }

    /// No more readings will come; delivery ends once the backlog is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// How many readings wait.
    pub(crate) fn len(&self) -> usize {
        self.lock().lines.len()
    }

    /// The oldest readings (up to one push) and the sequence number of the last; `None` if empty.
    fn peek(&self) -> Option<(Vec<HostLine>, u64)> {
        let queue = self.lock();
        let lines: Vec<_> = queue.lines.iter().take(MAX_READINGS_PER_PUSH).collect();
        let last = lines.last()?.0;
        Some((lines.into_iter().map(|(_, l)| l.clone()).collect(), last))
    }

    /// Removes every reading up to sequence number `last`.
    fn confirm(&self, last: u64) {
        let mut queue = self.lock();
        while queue.lines.front().is_some_and(|(seq, _)| *seq <= last) {
            queue.lines.pop_front();
        }
    }
}

/// Delivers the backlog until it is closed and empty, retrying with backoff and jitter.
pub async fn run(backlog: Arc<Backlog>, pusher: Pusher, retry: RetryPolicy) {
    let counters = backlog.counters.clone();
    let mut failures: u32 = 0;
    loop {
        let Some((lines, last)) = backlog.peek() else {
            if backlog.lock().closed {
                return;
            }
            backlog.wake.notified().await;
            continue;
        };
        let n = lines.len() as u64;
        let outcome = match push::encode(&HostBatch {
            host: lines.iter().collect(),
        }) {
            Ok(body) => pusher.send(body).await,
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => {
                backlog.confirm(last);
                counters.delivered.fetch_add(n, Ordering::Relaxed);
                if std::mem::take(&mut failures) > 0 {
                    tracing::info!(url = %pusher.url(), "the collector answers again");
                }
            }
            Err(error) if error.is_retryable() => {
                counters.failed_pushes.fetch_add(1, Ordering::Relaxed);
                if failures == 0 {
                    tracing::warn!(%error, "cannot push host readings; keeping them and retrying");
                }
                tokio::time::sleep(retry.delay(failures, error.retry_after())).await;
                failures = failures.saturating_add(1);
            }
            Err(error) => {
                backlog.confirm(last);
                counters.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!(%error, readings = n, "the collector refused host readings; dropped");
            }
        }
    }
}
