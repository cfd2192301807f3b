//! Cumulative values → deltas, per stream.
//!
//! OTLP points with cumulative temporality and every Prometheus counter or histogram report a
//! running total since the stream started. Our readings are deltas (each reading counts its own
//! requests), so a [`Tracker`] remembers the last total of each stream and turns the next one
//! into what happened in between.
//!
//! Rules, per stream:
//! - a point older than (or as old as) the last one seen is stale: a resend or out of order,
//!   never counted twice;
//! - a new start time (OTLP `start_time_unix_nano` moved forward) is a reset: the whole new
//!   total happened since that start;
//! - a total that went down (any bucket of a histogram, or the sum) is a reset, as Prometheus
//!   defines it: the counter restarted from zero, so the new total is the delta;
//! - the first point of a stream the tracker does not know follows [`FirstPoint`].
//!
//! Memory is bounded: at `capacity` streams, the one seen longest ago is forgotten (its next point
//! is then a first point again); [`Tracker::forget_idle`] drops streams that stopped reporting.
//! With [`FirstPoint::CountIfStartedAfter`], forgetting a stream moves that instant past the
//! stream's last point, so a forgotten stream's next point is primed, never counted whole again.
//!
//! A caller that could not keep what a point counted (its store refused it) hands the
//! [`Undo`] of [`Tracker::observe_undoable`] back to [`Tracker::undo`]: the stream is as before,
//! so a resend of the point counts it again instead of being stale.

use std::collections::HashMap;
use std::hash::Hash;

use super::histogram::DurationHistogram;
use crate::model::TimestampMs;

/// A running total that can be subtracted from a later total of the same stream.
pub trait Cumulative: Clone {
    /// `self - earlier`, or `None` when `self` does not continue `earlier` (a reset).
    fn since(&self, earlier: &Self) -> Option<Self>;
}

impl Cumulative for f64 {
    fn since(&self, earlier: &Self) -> Option<Self> {
        (*self >= *earlier).then(|| self - earlier)
    }
}

impl Cumulative for DurationHistogram {
    fn since(&self, earlier: &Self) -> Option<Self> {
        DurationHistogram::since(self, earlier)
    }
}

/// What to do with the first point of a stream the tracker has not seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstPoint {
    /// Remember it, count nothing (Prometheus scrapes: the first scrape only primes a series,
    /// since what the counter held before is not known to be new).
    Prime,
    /// Count the whole total when the stream started at or after this instant (it began while we
    /// were listening, so all of it is new), else prime. With the instant set to the process
    /// start, a restart of timebucket never counts a stream's history twice; the cost is at most
    /// one interval per stream that was already running (its first point after the restart).
    CountIfStartedAfter(TimestampMs),
    /// Count the whole total: the stream is known to have begun since the source was last read
    /// (a series that appears in a Prometheus target already scraped did not exist at the
    /// previous scrape, so everything it counts is new).
    Count,
}

/// The outcome of one observed point.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta<V> {
    /// First point of the stream: remembered, nothing to count.
    Primed,
    /// Older than (or as old as) the last point seen: ignored.
    Stale,
    /// What happened since the previous point.
    Increase(V),
    /// The stream restarted; this is everything since the restart.
    Reset(V),
}

#[derive(Debug, Clone)]
struct Stream<V> {
    start: Option<TimestampMs>,
    total: V,
    at: TimestampMs,
}

/// The last total of each stream. `Clone`, so a caller can keep the state from before a batch
/// of points and go back to it when what it made of them could not be kept.
#[derive(Debug, Clone)]
pub struct Tracker<K, V> {
    streams: HashMap<K, Stream<V>>,
    capacity: usize,
    first: FirstPoint,
}

impl<K: Hash + Eq + Clone, V: Cumulative> Tracker<K, V> {
    /// A tracker of at most `capacity` streams (at least one).
    pub fn new(capacity: usize, first: FirstPoint) -> Self {
        Self {
            streams: HashMap::new(),
            capacity: capacity.max(1),
            first,
        }
    }

    /// Streams remembered.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// True when no stream is remembered.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Takes the point `total` of stream `key` at `at` (which started at `start`, when the format
    /// says) and says what to count.
    pub fn observe(
        &mut self,
        key: &K,
        start: Option<TimestampMs>,
        total: V,
        at: TimestampMs,
    ) -> Delta<V> {
        self.observe_with(key, start, total, at, self.first).0
    }

    /// [`observe`](Self::observe), with `first` instead of the tracker's own rule for a stream
    /// it does not know.
    pub fn observe_as(
        &mut self,
        key: &K,
        start: Option<TimestampMs>,
        total: V,
        at: TimestampMs,
        first: FirstPoint,
    ) -> Delta<V> {
        self.observe_with(key, start, total, at, first).0
    }

    /// [`Tracker::observe`], and what it replaced (`None` when it changed nothing: a stale
    /// point), to give to [`Tracker::undo`] if what was counted cannot be kept.
    pub fn observe_undoable(
        &mut self,
        key: &K,
        start: Option<TimestampMs>,
        total: V,
        at: TimestampMs,
    ) -> (Delta<V>, Option<Undo<K, V>>) {
        self.observe_with(key, start, total, at, self.first)
    }

    fn observe_with(
        &mut self,
        key: &K,
        start: Option<TimestampMs>,
        total: V,
        at: TimestampMs,
        first: FirstPoint,
    ) -> (Delta<V>, Option<Undo<K, V>>) {
        let Some(stream) = self.streams.get_mut(key) else {
            let outcome = match (first, start) {
                (FirstPoint::CountIfStartedAfter(since), Some(start)) if start >= since => {
                    Delta::Reset(total.clone())
                }
                (FirstPoint::Count, _) => Delta::Reset(total.clone()),
                _ => Delta::Primed,
            };
            self.insert(key.clone(), Stream { start, total, at });
            let undo = Undo {
                key: key.clone(),
                replaced: None,
                at,
            };
            return (outcome, Some(undo));
        };
        if at <= stream.at {
            return (Delta::Stale, None);
        }
        let restarted = matches!((stream.start, start), (Some(old), Some(new)) if new > old);
        let outcome = match total.since(&stream.total) {
            Some(increase) if !restarted => Delta::Increase(increase),
            _ => Delta::Reset(total.clone()),
        };
        let replaced = std::mem::replace(stream, Stream { start, total, at });
        let undo = Undo {
            key: key.clone(),
            replaced: Some(replaced),
            at,
        };
        (outcome, Some(undo))
    }

    /// Puts a stream back as it was before the observation `undo` came from, unless a later
    /// point has moved it on since (then that point's delta already covers this one's). Undo
    /// the observations of one batch in reverse order.
    pub fn undo(&mut self, undo: Undo<K, V>) {
        if self.streams.get(&undo.key).is_none_or(|s| s.at != undo.at) {
            return;
        }
        match undo.replaced {
            Some(previous) => {
                self.streams.insert(undo.key, previous);
            }
            None => {
                self.streams.remove(&undo.key);
            }
        }
    }

    /// Forgets streams whose last point is older than `cutoff`; returns how many.
    pub fn forget_idle(&mut self, cutoff: TimestampMs) -> usize {
        let before = self.streams.len();
        let mut latest_forgotten = None;
        self.streams.retain(|_, s| {
            let keep = s.at >= cutoff;
            if !keep {
                latest_forgotten = latest_forgotten.max(Some(s.at));
            }
            keep
        });
        if let Some(at) = latest_forgotten {
            self.forgot(at);
        }
        before - self.streams.len()
    }

    fn insert(&mut self, key: K, stream: Stream<V>) {
        if self.streams.len() >= self.capacity {
            let oldest = self
                .streams
                .iter()
                .min_by_key(|(_, s)| s.at)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                if let Some(gone) = self.streams.remove(&oldest) {
                    self.forgot(gone.at);
                }
            }
        }
        self.streams.insert(key, stream);
    }

    /// A stream whose last point was at `at` was forgotten: its start is at or before `at`, so
    /// moving the count-whole instant past `at` makes its next point a first point that primes.
    fn forgot(&mut self, at: TimestampMs) {
        if let FirstPoint::CountIfStartedAfter(since) = self.first {
            let past = TimestampMs::from_millis(at.millis().saturating_add(1));
            self.first = FirstPoint::CountIfStartedAfter(since.max(past));
        }
    }
}

/// What one observation replaced; see [`Tracker::undo`].
#[derive(Debug)]
pub struct Undo<K, V> {
    key: K,
    replaced: Option<Stream<V>>,
    at: TimestampMs,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> TimestampMs {
        TimestampMs::from_millis(ms)
    }

    #[test]
    fn prometheus_counters_prime_then_count_increases_and_resets() {
        let mut t = Tracker::new(10, FirstPoint::Prime);
        let key = "requests{path=/a}";
        assert_eq!(t.observe(&key, None, 100.0, at(1)), Delta::Primed);
        assert_eq!(t.observe(&key, None, 130.0, at(2)), Delta::Increase(30.0));
        assert_eq!(t.observe(&key, None, 130.0, at(3)), Delta::Increase(0.0));
        assert_eq!(t.observe(&key, None, 7.0, at(4)), Delta::Reset(7.0));
        assert_eq!(t.observe(&key, None, 9.0, at(5)), Delta::Increase(2.0));
    }

    #[test]
    fn a_stream_known_to_be_new_counts_its_first_total() {
        let mut t = Tracker::new(10, FirstPoint::Prime);
        assert_eq!(
            t.observe_as(&"new", None, 4.0, at(1), FirstPoint::Count),
            Delta::Reset(4.0)
        );
        assert_eq!(
            t.observe_as(&"new", None, 6.0, at(2), FirstPoint::Count),
            Delta::Increase(2.0),
            "the rule only applies to a stream the tracker does not know"
        );
    }

    #[test]
    fn resends_and_late_points_are_never_counted_twice() {
        let mut t = Tracker::new(10, FirstPoint::Prime);
        t.observe(&1, None, 10.0, at(10));
        t.observe(&1, None, 20.0, at(20));
        assert_eq!(t.observe(&1, None, 20.0, at(20)), Delta::Stale);
        assert_eq!(t.observe(&1, None, 15.0, at(15)), Delta::Stale);
        assert_eq!(t.observe(&1, None, 25.0, at(30)), Delta::Increase(5.0));
    }

    #[test]
    fn otlp_streams_count_their_first_point_only_when_they_started_after_us() {
        let us = at(1_000);
        let mut t = Tracker::new(10, FirstPoint::CountIfStartedAfter(us));
        // Running before we started: what it counted may have been stored before a restart.
        assert_eq!(
            t.observe(&"old", Some(at(500)), 40.0, at(2_000)),
            Delta::Primed
        );
        // Started after us: all of it is new.
        assert_eq!(
            t.observe(&"new", Some(at(1_500)), 4.0, at(2_000)),
            Delta::Reset(4.0)
        );
        assert_eq!(
            t.observe(&"new", Some(at(1_500)), 6.0, at(3_000)),
            Delta::Increase(2.0)
        );
        // The exporter restarted: a later start time, even with a larger total, is a reset.
        assert_eq!(
            t.observe(&"new", Some(at(2_500)), 9.0, at(4_000)),
            Delta::Reset(9.0)
        );
    }

    #[test]
    fn memory_is_bounded_by_forgetting_the_stream_seen_longest_ago() {
        let mut t = Tracker::new(2, FirstPoint::Prime);
        t.observe(&"a", None, 1.0, at(1));
        t.observe(&"b", None, 1.0, at(2));
        t.observe(&"c", None, 1.0, at(3));
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.observe(&"a", None, 5.0, at(4)),
            Delta::Primed,
            "a was forgotten"
        );
        assert_eq!(
            t.forget_idle(at(4)),
            1,
            "c (seen at 3) is idle; b was evicted for a"
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_forgotten_stream_that_started_after_us_is_never_counted_whole_again() {
        let us = at(1_000);
        let mut t = Tracker::new(1, FirstPoint::CountIfStartedAfter(us));
        let started = Some(at(1_500));
        assert_eq!(t.observe(&"a", started, 4.0, at(2_000)), Delta::Reset(4.0));
        // "b" evicts "a" (capacity 1); "b" started after us too, so it counts whole.
        assert_eq!(
            t.observe(&"b", Some(at(1_600)), 1.0, at(2_100)),
            Delta::Reset(1.0)
        );
        // "a" comes back: its 4 were counted before it was forgotten.
        assert_eq!(t.observe(&"a", started, 6.0, at(3_000)), Delta::Primed);
        assert_eq!(
            t.observe(&"a", started, 7.0, at(4_000)),
            Delta::Increase(1.0)
        );
        t.forget_idle(at(5_000));
        assert_eq!(t.observe(&"a", started, 9.0, at(6_000)), Delta::Primed);
    }

    #[test]
    fn an_undone_observation_is_counted_again_when_resent() {
        let mut t = Tracker::new(10, FirstPoint::Prime);
        t.observe(&1, None, 10.0, at(10));
        let (delta, undo) = t.observe_undoable(&1, None, 25.0, at(20));
        assert_eq!(delta, Delta::Increase(15.0));
        t.undo(undo.unwrap());
        assert_eq!(t.observe(&1, None, 25.0, at(20)), Delta::Increase(15.0));
        // A first point undone is forgotten; a later point moved on is left alone.
        let (_, first) = t.observe_undoable(&2, None, 1.0, at(10));
        t.undo(first.unwrap());
        assert!(t.observe(&2, None, 1.0, at(10)) == Delta::Primed);
        let (_, stale_undo) = t.observe_undoable(&1, None, 30.0, at(30));
        t.observe(&1, None, 32.0, at(40));
        t.undo(stale_undo.unwrap());
        assert_eq!(t.observe(&1, None, 33.0, at(50)), Delta::Increase(1.0));
    }

    #[test]
    fn histograms_are_tracked_like_counters() {
        let h = |counts: &[u64], sum: f64| {
            DurationHistogram::explicit(&[10.0], counts, Some(sum), None, None).unwrap()
        };
        let mut t = Tracker::new(10, FirstPoint::Prime);
        assert_eq!(
            t.observe(&"h", None, h(&[1, 1], 20.0), at(1)),
            Delta::Primed
        );
        let Delta::Increase(delta) = t.observe(&"h", None, h(&[3, 1], 30.0), at(2)) else {
            panic!("expected an increase");
        };
        assert_eq!((delta.count(), delta.sum_ms()), (2, Some(10.0)));
        assert!(matches!(
            t.observe(&"h", None, h(&[1, 0], 2.0), at(3)),
            Delta::Reset(_)
        ));
    }
}
