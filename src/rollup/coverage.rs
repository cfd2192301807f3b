//! From when rollups cover every reading, recorded in the store next to its deployment
//! settings, so that queries use rollups only where they are complete.
//!
//! Two instants, each a whole hour:
//! - **written since** (`rollups_written_since_ms`, [`WRITTEN_SINCE`]): recorded once, at the
//!   first open of the store by a version with rollups. A store that holds no readings then
//!   (a new one) gets [`EVERYTHING`]: every reading it will hold has rollups. One that holds
//!   readings (stored by a version without rollups) gets the first whole hour after that start
//!   and the ingest's future skew. The flusher writes partials only for slots from it on;
//!   earlier slots belong to `timebucket rollup rebuild` alone. So no slot gets both flusher
//!   partials and rebuilt rows, and neither can count a reading the other counted.
//! - **since** (`rollups_since_ms`, [`SINCE`], and `rollups_since_ms/<service>` for a rebuild of
//!   one service): queries read rollups from it on and raw readings before it. It starts at
//!   *written since* and only ever goes down, when a rebuild covers the hours up to it. A
//!   service's own value applies when lower than the global one.
//!
//! A reading older than *written since* that arrives after a rebuild (an upgrade backlog, an
//! agent that buffered for long) is in the raw readings but not in the rebuilt rows until the
//! rebuild runs again (which rewrites the same rows).

use crate::model::{ServiceName, TimestampMs};

/// The recorded first hour of flusher-written rollups.
pub const WRITTEN_SINCE: &str = "rollups_written_since_ms";
/// The recorded start of complete rollups, for every service.
pub const SINCE: &str = "rollups_since_ms";
/// How far ahead of the clock ingest accepts readings (`ingest::parse::MAX_FUTURE_SKEW_MS`):
/// readings stored by a version without rollups may be this far in the future.
pub const FUTURE_SKEW_MS: i64 = 10 * 60 * 1000;

const HOUR_MS: i64 = 3_600_000;

/// The name of the *since* value of `service` (`rollups_since_ms/<service>`), or of every
/// service ([`SINCE`]).
pub fn since_name(service: Option<&ServiceName>) -> String {
    match service {
        Some(service) => format!("{SINCE}/{service}"),
        None => SINCE.to_owned(),
    }
}

/// *Written since* of a store that held no readings when first opened with rollups: the
/// epoch, before any reading a store keeps.
pub const EVERYTHING: TimestampMs = TimestampMs::from_millis(0);

/// The *written since* instant of a store first opened with rollups at `now`, holding
/// readings already (`holds_readings`) or not.
pub fn first_written_since(now: TimestampMs, holds_readings: bool) -> TimestampMs {
    if !holds_readings {
        return EVERYTHING;
    }
    ceil_hour(TimestampMs::from_millis(now.millis() + FUTURE_SKEW_MS))
}

/// The first whole hour at or after `at`.
pub fn ceil_hour(at: TimestampMs) -> TimestampMs {
    let (hours, rest) = (
        at.millis().div_euclid(HOUR_MS),
        at.millis().rem_euclid(HOUR_MS),
    );
    TimestampMs::from_millis((hours + i64::from(rest != 0)) * HOUR_MS)
}

/// The whole hour at or before `at`.
pub fn floor_hour(at: TimestampMs) -> TimestampMs {
    TimestampMs::from_millis(at.millis().div_euclid(HOUR_MS) * HOUR_MS)
}

/// The *since* of a service from the recorded global and per-service values: the lower one;
/// with neither recorded (no store opened by a version with rollups yet), never.
pub fn effective_since(global: Option<i64>, service: Option<i64>) -> TimestampMs {
    let lowest = match (global, service) {
        (Some(g), Some(s)) => g.min(s),
        (Some(v), None) | (None, Some(v)) => v,
        (None, None) => i64::MAX,
    };
    TimestampMs::from_millis(lowest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_skew_is_the_ingest_s() {
        assert_eq!(FUTURE_SKEW_MS, crate::ingest::parse::MAX_FUTURE_SKEW_MS);
    }

    #[test]
    fn written_since_is_the_next_whole_hour_after_the_skew_unless_the_store_is_new() {
        let at = |ms| TimestampMs::from_millis(ms);
        assert_eq!(first_written_since(at(0), true), at(HOUR_MS));
        assert_eq!(
            first_written_since(at(HOUR_MS - FUTURE_SKEW_MS), true),
            at(HOUR_MS)
        );
        assert_eq!(
            first_written_since(at(HOUR_MS - FUTURE_SKEW_MS + 1), true),
            at(2 * HOUR_MS)
        );
        assert_eq!(ceil_hour(at(-1)), at(0));
        assert_eq!(floor_hour(at(HOUR_MS - 1)), at(0));
    }

    #[test]
    fn the_lower_of_the_global_and_the_service_value_applies() {
        assert_eq!(effective_since(Some(10), Some(5)).millis(), 5);
        assert_eq!(effective_since(Some(10), Some(50)).millis(), 10);
        assert_eq!(effective_since(None, Some(50)).millis(), 50);
        assert_eq!(effective_since(None, None).millis(), i64::MAX);
        let svc = ServiceName::parse("checkout").unwrap();
        assert_eq!(since_name(Some(&svc)), "rollups_since_ms/checkout");
    }
}
