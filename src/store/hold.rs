//! A hold on retention: data that someone still needs (the bucket archive, until it has exported
//! it) is kept past its TTL.
//!
//! The embedded store drops whole compaction windows; with a hold it drops only windows that end
//! at or before the hold's instant, whatever their age. The CQL store cannot honour a hold: its
//! rows carry their TTL from the moment they are written, so there the archive can only run
//! well ahead of retention and report when it falls behind (see `crate::archive::auto`).
//!
//! The instant is shared: the holder moves it forward as it goes, and the store reads it at
//! every expiry pass. It only ever moves forward.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::model::TimestampMs;

/// The instant (epoch ms) up to which retention may drop data, or none.
#[derive(Debug, Clone, Default)]
pub struct RetentionHold(Option<Arc<AtomicI64>>);

impl RetentionHold {
    /// No hold: retention drops whatever is past its TTL.
    pub fn none() -> Self {
        Self(None)
    }

    /// Retention may drop only data that ends at or before `until`.
    pub fn until(until: TimestampMs) -> Self {
        Self(Some(Arc::new(AtomicI64::new(until.millis()))))
    }

    /// Retention drops nothing (a store opened to be read, such as by an export).
    pub fn keep_all() -> Self {
        Self::until(TimestampMs::from_millis(i64::MIN))
    }

    /// Moves the hold forward to `until` (never back).
    pub fn release_until(&self, until: TimestampMs) {
        if let Some(at) = &self.0 {
            at.fetch_max(until.millis(), Ordering::AcqRel);
        }
    }

    /// Whether retention may drop data that ends at `end` (exclusive).
    pub fn may_drop(&self, end: TimestampMs) -> bool {
        self.0
            .as_ref()
            .is_none_or(|at| end.millis() <= at.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_keeps_what_ends_after_it_and_only_moves_forward() {
        let ms = TimestampMs::from_millis;
        assert!(RetentionHold::none().may_drop(ms(i64::MAX)));
        assert!(!RetentionHold::keep_all().may_drop(ms(0)));
        let hold = RetentionHold::until(ms(1_000));
        let shared = hold.clone();
        assert!(hold.may_drop(ms(1_000)));
        assert!(!hold.may_drop(ms(1_001)));
        shared.release_until(ms(5_000));
        assert!(hold.may_drop(ms(5_000)));
        shared.release_until(ms(2_000));
        assert!(hold.may_drop(ms(5_000)));
    }
}
