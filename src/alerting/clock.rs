//! The time rule evaluation runs on: the wall clock in service, a hand-moved one in tests.
//!
//! Evaluation times are the only thing the clock decides: a group evaluates at its slots
//! (`k × interval + offset`) as the clock reaches them, and every timestamp of an alert
//! (`activeAt`, `startsAt`, ...) is a slot time. Timeouts, retries and the evaluator lease
//! always run on real time (tokio's), so a test that moves the clock by hours still sees
//! requests time out as they would.
//!
//! Invariant of [`ManualClock`]: time only moves forward, and a sleeper wakes exactly when
//! the clock reaches its time, never before.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::model::TimestampMs;

/// A source of time that can also wait for a time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> TimestampMs;

    /// Resolves once [`Clock::now`] has reached `at`.
    fn sleep_until(&self, at: TimestampMs) -> BoxFuture<'static, ()>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> TimestampMs {
        TimestampMs::now()
    }

    fn sleep_until(&self, at: TimestampMs) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Re-check after waking: the wall clock may have been stepped while sleeping.
            loop {
                let left = at.millis() - TimestampMs::now().millis();
                if left <= 0 {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(left as u64)).await;
            }
        })
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<i64>>,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: TimestampMs) -> Self {
        Self {
            now: Arc::new(watch::Sender::new(at.millis())),
        }
    }

    /// Moves the clock to `at` (never backwards), waking every sleeper whose time has come.
    pub fn set(&self, at: TimestampMs) {
        self.now.send_if_modified(|now| {
            let moved = at.millis() > *now;
            if moved {
                *now = at.millis();
            }
            moved
        });
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let at = *self.now.borrow() + by.as_millis() as i64;
        self.set(TimestampMs::from_millis(at));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> TimestampMs {
        TimestampMs::from_millis(*self.now.borrow())
    }

    fn sleep_until(&self, at: TimestampMs) -> BoxFuture<'static, ()> {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as any clone of the clock; if all are gone, time stops
            // and the sleeper never wakes, as a test's stopped clock means.
            if now.wait_for(|t| *t >= at.millis()).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_sleeper_wakes_when_the_manual_clock_reaches_its_time() {
        let clock = ManualClock::new(TimestampMs::from_millis(1_000));
        let sleeper = tokio::spawn(clock.sleep_until(TimestampMs::from_millis(5_000)));
        clock.advance(Duration::from_secs(3));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.set(TimestampMs::from_millis(2_000));
        assert_eq!(clock.now().millis(), 4_000, "time never goes back");
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woken")
            .unwrap();
    }
}
