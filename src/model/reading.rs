//! Readings: one API request (or a summary of `count` of them, [`api`]) and one host sample
//! ([`host`]); each kind declares its shape in its own file (see [`super::kind`]).
//!
//! A reading's [`ReadingId`] is chosen once, when the reading is accepted, and travels with it
//! through the WAL into the store's clustering key: a replay rewrites the same row.
//!
//! The serde layout of these types is the WAL payload (postcard, see `ingest::record`): a field
//! added to a reading needs a new payload version.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub mod api;
pub mod host;

pub use api::{ApiReading, MAX_DURATION_MS};
pub use host::{HostGauges, HostReading};

/// An instant in epoch milliseconds: the precision of a CQL `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimestampMs(i64);

impl TimestampMs {
    /// Wraps epoch milliseconds.
    pub fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    /// Epoch milliseconds.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Epoch microseconds: the CQL write timestamp of "latest" upserts.
    pub fn micros(self) -> i64 {
        self.0.saturating_mul(1000)
    }

    /// As a chrono UTC time (out-of-range values clamp to the epoch).
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or_default()
    }

    /// RFC 3339 with millisecond precision and a `Z` suffix.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Parses RFC 3339 text or a string of epoch milliseconds.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(millis) = text.parse::<i64>() {
            return Ok(Self(millis));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|t| Self(t.timestamp_millis()))
            .map_err(|_| "must be RFC 3339 (2024-01-31T12:00:00Z) or epoch milliseconds".into())
    }
}

/// The identity of one accepted reading; part of its row's clustering key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReadingId(Uuid);

impl ReadingId {
    /// A new id (UUIDv7: time-ordered, so ids of one batch sort in arrival order).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an id read back from the store.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The UUID.
    pub fn uuid(self) -> Uuid {
        self.0
    }
}

impl Default for ReadingId {
    fn default() -> Self {
        Self::new()
    }
}

/// Either kind of reading, as stored in one WAL record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reading {
    /// An API request reading.
    Api(ApiReading),
    /// A host sample.
    Host(HostReading),
}

impl Reading {
    /// The reading's time.
    pub fn timestamp(&self) -> TimestampMs {
        match self {
            Reading::Api(r) => r.timestamp,
            Reading::Host(r) => r.timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_rfc3339_and_epoch_millis() {
        let a = TimestampMs::parse("2014-09-27T18:15:00Z").unwrap();
        let b = TimestampMs::parse("1411841700000").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_rfc3339(), "2014-09-27T18:15:00.000Z");
        assert!(TimestampMs::parse("yesterday").is_err());
    }
}
