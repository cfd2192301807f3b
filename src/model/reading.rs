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
    pub const fn from_millis(millis: i64) -> Self {
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

/// Readings for unit tests: valid, every field set; change them with struct update syntax.
#[cfg(test)]
pub(crate) mod sample {
    use super::*;
    use crate::model::kind::{Head, ReadingKind};
    use crate::model::{ApiPath, HttpMethod, InstanceName, ServiceName, StatusCode};

    /// The time of the samples.
    pub const AT_MS: i64 = 1_700_000_000_000;

    /// An API reading of `svc`, `i-1`: `GET /p` answered 200, 3 requests of 1.5 ms.
    pub fn api() -> ApiReading {
        ApiReading {
            id: ReadingId::new(),
            service: ServiceName::parse("svc").unwrap(),
            instance: InstanceName::parse("i-1").unwrap(),
            method: HttpMethod::parse("GET").unwrap(),
            path: ApiPath::parse("/p").unwrap(),
            code: StatusCode::parse(200).unwrap(),
            duration_ms: 1.5,
            count: 3,
            timestamp: TimestampMs::from_millis(AT_MS),
        }
    }

    /// A host reading of `svc`, `h-1` with every gauge.
    pub fn host() -> HostReading {
        HostReading {
            id: ReadingId::new(),
            service: ServiceName::parse("svc").unwrap(),
            instance: InstanceName::parse("h-1").unwrap(),
            timestamp: TimestampMs::from_millis(AT_MS),
            gauges: HostGauges {
                cpu_percent: Some(1.5),
                mem_used_bytes: Some(2),
                mem_total_bytes: Some(3),
                disk_used_bytes: Some(4),
                disk_total_bytes: Some(5),
                available: Some(false),
                heap_bytes: Some(6),
                allocated_bytes: Some(7),
                freed_bytes: Some(8),
            },
        }
    }

    /// The head of `reading`.
    pub fn head_of<K: ReadingKind>(reading: &K) -> Head {
        Head {
            id: reading.id(),
            service: reading.service().clone(),
            timestamp: reading.timestamp(),
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
