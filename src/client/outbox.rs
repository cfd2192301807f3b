//! An outbox: readings wait in a bounded backlog until the collector has them (the host agent's
//! delivery).
//!
//! Producing and delivery are separate tasks, so a slow or absent collector never delays a
//! sample: the agent's heartbeat keeps its rhythm, and readings taken while the collector was
//! down are delivered with their own timestamps once it is back (so history shows the host up,
//! and only a host that was really silent shows a gap). The backlog is bounded: past
//! [`MAX_BACKLOG_READINGS`] the oldest reading is dropped and counted.
//!
//! Invariant: a reading leaves the backlog only when the collector accepted it, refused it for
//! good (4xx), or it was pushed out as the oldest of a full backlog. Readings carry a sequence
//! number, so confirming a push removes exactly what it sent even if older ones were pushed out
//! meanwhile.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::push::{self, Pusher, RetryPolicy};
use super::wire::JsonBody;
use crate::model::ReadingKind;

/// Most readings held while the collector is unreachable: one day at the agent's default 10 s
/// interval.
pub const MAX_BACKLOG_READINGS: usize = 8640;
/// Most readings per POST (about 250 bytes each before compression).
pub const MAX_READINGS_PER_PUSH: usize = 1000;

/// The outbox's counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Readings produced (samples taken, for the agent).
    pub samples: AtomicU64,
    /// Readings the collector accepted.
    pub delivered: AtomicU64,
    /// Readings lost: pushed out of a full backlog, refused, or unsent at shutdown.
    pub dropped: AtomicU64,
    /// Push attempts that failed.
    pub failed_pushes: AtomicU64,
}

#[derive(Debug)]
struct Queue<K> {
    /// Oldest first, each with its sequence number.
    readings: VecDeque<(u64, K)>,
    /// The sequence number of the next reading.
    next_seq: u64,
    /// The sampler has stopped.
    closed: bool,
}

/// Readings of kind `K` waiting for the collector.
#[derive(Debug)]
pub struct Backlog<K> {
    /// Held only to push, peek or confirm: never across an await.
    queue: Mutex<Queue<K>>,
    /// Wakes the delivery task: a new reading, or the close.
    wake: Notify,
    /// Shared with the sampler.
    pub counters: Arc<Counters>,
}

impl<K> Default for Backlog<K> {
    fn default() -> Self {
        Self {
            queue: Mutex::new(Queue {
                readings: VecDeque::new(),
                next_seq: 0,
                closed: false,
            }),
            wake: Notify::new(),
            counters: Arc::default(),
        }
    }
}

impl<K: ReadingKind> Backlog<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<K>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a reading, pushing the oldest out when full.
    pub fn push(&self, reading: K) {
        let mut queue = self.lock();
        if queue.readings.len() >= MAX_BACKLOG_READINGS {
            queue.readings.pop_front();
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        let seq = queue.next_seq;
        queue.next_seq += 1;
        queue.readings.push_back((seq, reading));
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
        self.lock().readings.len()
    }

    /// The oldest readings (up to one push) and the sequence number of the last; `None` if empty.
    fn peek(&self) -> Option<(Vec<K>, u64)> {
        let queue = self.lock();
        let readings: Vec<_> = queue.readings.iter().take(MAX_READINGS_PER_PUSH).collect();
        let last = readings.last()?.0;
        Some((readings.into_iter().map(|(_, r)| r.clone()).collect(), last))
    }

    /// Removes every reading up to sequence number `last`.
    fn confirm(&self, last: u64) {
        let mut queue = self.lock();
        while queue.readings.front().is_some_and(|(seq, _)| *seq <= last) {
            queue.readings.pop_front();
        }
    }
}

/// Delivers the backlog until it is closed and empty, retrying with backoff and jitter.
pub async fn run<K: ReadingKind>(backlog: Arc<Backlog<K>>, pusher: Pusher, retry: RetryPolicy) {
    let counters = backlog.counters.clone();
    let mut failures: u32 = 0;
    loop {
        let Some((readings, last)) = backlog.peek() else {
            if backlog.lock().closed {
                return;
            }
            backlog.wake.notified().await;
            continue;
        };
        let n = readings.len() as u64;
        let outcome = match push::encode(&JsonBody(&readings)) {
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
                    tracing::warn!(%error, kind = K::INFO.name, "cannot push readings; keeping them and retrying");
                }
                tokio::time::sleep(retry.delay(failures, error.retry_after())).await;
                failures = failures.saturating_add(1);
            }
            Err(error) => {
                backlog.confirm(last);
                counters.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::error!(%error, readings = n, kind = K::INFO.name, "the collector refused readings; dropped");
            }
        }
    }
}
