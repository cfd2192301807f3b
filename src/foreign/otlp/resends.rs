//! Resends of delta points: the same point (stream, start time, end time) arriving again, as it
//! does when an exporter retries a request whose success answer it never got.
//!
//! Delta points of one stream may legitimately arrive out of order (a Collector sends batches
//! concurrently), so "older than the last" is no test; an exact repeat of one of the stream's
//! last [`REMEMBERED`] points is. Memory is bounded: at capacity, the stream seen longest ago is
//! forgotten (its resends are then counted again, as our JSON ingest counts a resent body), and
//! streams silent past a cutoff are dropped by [`Resends::forget_idle`].

use std::collections::HashMap;

use super::attrs::StreamKey;
use crate::model::TimestampMs;

/// Points remembered per stream.
pub const REMEMBERED: usize = 4;

/// A point's identity within its stream: (start, end) in ns.
type PointId = (u64, u64);

#[derive(Debug, Clone)]
struct Recent {
    points: [Option<PointId>; REMEMBERED],
    next: usize,
    seen: TimestampMs,
}

/// The recent delta points of every stream.
#[derive(Debug)]
pub struct Resends {
    streams: HashMap<StreamKey, Recent>,
    capacity: usize,
}

/// What [`Resends::observe`] added, to take back with [`Resends::undo`].
#[derive(Debug)]
pub struct Added {
    key: StreamKey,
    point: PointId,
}

impl Resends {
    /// At most `capacity` streams (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            streams: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// `None` when the point was seen already (a resend); else remembers it.
    pub fn observe(
        &mut self,
        key: StreamKey,
        start_ns: u64,
        time_ns: u64,
        now: TimestampMs,
    ) -> Option<Added> {
        let point = (start_ns, time_ns);
        if !self.streams.contains_key(&key) && self.streams.len() >= self.capacity {
            let oldest = self
                .streams
                .iter()
                .min_by_key(|(_, r)| r.seen)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.streams.remove(&oldest);
            }
        }
        let recent = self.streams.entry(key).or_insert(Recent {
            points: [None; REMEMBERED],
            next: 0,
            seen: now,
        });
        if recent.points.contains(&Some(point)) {
            return None;
        }
        recent.points[recent.next] = Some(point);
        recent.next = (recent.next + 1) % REMEMBERED;
        recent.seen = now;
        Some(Added { key, point })
    }

    /// Forgets a point whose readings were not kept, so its resend counts.
    pub fn undo(&mut self, added: Added) {
        if let Some(recent) = self.streams.get_mut(&added.key) {
            for slot in &mut recent.points {
                if *slot == Some(added.point) {
                    *slot = None;
                }
            }
        }
    }

    /// Forgets streams not seen since `cutoff`.
    pub fn forget_idle(&mut self, cutoff: TimestampMs) {
        self.streams.retain(|_, r| r.seen >= cutoff);
    }
}

#[cfg(test)]
mod tests {
    use super::super::attrs::StreamHasher;
    use super::*;

    fn key(name: &str) -> StreamKey {
        StreamHasher::new().name(name).finish()
    }

    #[test]
    fn exact_repeats_are_resends_and_out_of_order_points_are_not() {
        let mut r = Resends::new(10);
        let now = TimestampMs::from_millis(0);
        assert!(r.observe(key("a"), 0, 20, now).is_some());
        assert!(
            r.observe(key("a"), 0, 10, now).is_some(),
            "late, not a resend"
        );
        assert!(r.observe(key("a"), 0, 20, now).is_none());
        assert!(r.observe(key("b"), 0, 20, now).is_some(), "another stream");
        let added = r.observe(key("a"), 20, 30, now).unwrap();
        r.undo(added);
        assert!(
            r.observe(key("a"), 20, 30, now).is_some(),
            "undone: counts again"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut r = Resends::new(2);
        r.observe(key("a"), 0, 1, TimestampMs::from_millis(1));
        r.observe(key("b"), 0, 1, TimestampMs::from_millis(2));
        r.observe(key("c"), 0, 1, TimestampMs::from_millis(3));
        assert_eq!(r.streams.len(), 2);
        r.forget_idle(TimestampMs::from_millis(3));
        assert_eq!(r.streams.len(), 1);
    }
}
