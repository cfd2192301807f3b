//! Readings: one API request (or a summary of `count` of them, [`api`]) and one host sample
//! ([`host`]); each kind declares its shape in its own file (see [`super::kind`]).
//!
//! A reading's [`ReadingId`] is given when the reading is accepted (a UUIDv7) and travels with it
//! through the WAL. For a store written by one WAL only (the embedded store, see
//! `Store::wal_ids`) the flusher replaces it with one derived from the reading's place in the WAL
//! ([`ReadingId::from_wal`]) when it reads the record back: a replay gives every reading the id
//! it had, the store can tell from an id alone which record it came from, and the id costs
//! about a byte in a block instead of 16 random ones. A shared store (CQL, written by several
//! replicas whose WAL positions collide) keeps the acceptance ids.
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

    /// The id of the `index`-th reading of the WAL record at `offset` of `segment`: the same
    /// every time the record is read back, so a replay gives each reading the id it had.
    ///
    /// A UUIDv8 whose 122 free bits are, from the most significant: 0xFF (8 bits), segment (40),
    /// offset (40), index (24), zeros (10). It sorts after every UUIDv7 (whose first bytes are a
    /// millisecond time) in byte order as in CQL's `uuid` order (version first), and among
    /// themselves in WAL order. Segments and offsets past 40 bits, and indexes past 24, wrap
    /// (a WAL would have to write a terabyte per segment first).
    pub fn from_wal(segment: u64, offset: u64, index: u32) -> Self {
        const MASK40: u128 = (1 << 40) - 1;
        let payload = (0xFF << 114)
            | ((u128::from(segment) & MASK40) << 74)
            | ((u128::from(offset) & MASK40) << 34)
            | ((u128::from(index) & 0xFF_FFFF) << 10);
        let id = ((payload >> 74) << 80)
            | (0x8 << 76)
            | (((payload >> 62) & 0xFFF) << 64)
            | (0b10 << 62)
            | (payload & ((1 << 62) - 1));
        Self(Uuid::from_u128(id))
    }

    /// The `(segment, offset)` of the WAL record an id made by [`ReadingId::from_wal`] names;
    /// `None` for any other id.
    pub fn wal_record(self) -> Option<(u64, u64)> {
        const MASK40: u128 = (1 << 40) - 1;
        let id = self.0.as_u128();
        if (id >> 76) & 0xF != 0x8 || (id >> 62) & 0b11 != 0b10 {
            return None;
        }
        let payload = ((id >> 80) << 74) | (((id >> 64) & 0xFFF) << 62) | (id & ((1 << 62) - 1));
        if payload >> 114 != 0xFF {
            return None;
        }
        let segment = ((payload >> 74) & MASK40) as u64;
        let offset = ((payload >> 34) & MASK40) as u64;
        Some((segment, offset))
    }
}

/// The ids of the readings of one request: UUIDv7s of one millisecond whose 74 random bits
/// start at one random draw and count up. So the ids of a request sort in its order, as
/// [`ReadingId::new`]'s do, and one costs an addition where `Uuid::now_v7` reads the clock and
/// takes a lock (4% of the service's CPU at ingest).
///
/// Unique as `now_v7`'s are: two requests of the same millisecond collide only if their random
/// starts (73 bits) fall within a request's length of each other.
#[derive(Debug)]
pub struct ReadingIds {
    /// Unix milliseconds, the 48 bits of the time field.
    millis: u128,
    /// The next id's 74 random bits.
    next: u128,
}

impl ReadingIds {
    /// Ids of millisecond `at` (clamped to the UUIDv7 range).
    pub fn at(at: TimestampMs) -> Self {
        const MILLIS: u128 = (1 << 48) - 1;
        // 73 bits: counting up from them never carries out of the 74.
        let start = Uuid::new_v4().as_u128() & ((1 << 73) - 1);
        Self {
            millis: u128::try_from(at.millis()).unwrap_or(0).min(MILLIS),
            next: start,
        }
    }

    /// The next id.
    pub fn next_id(&mut self) -> ReadingId {
        let random = self.next;
        self.next += 1;
        let id = (self.millis << 80)
            | (0x7 << 76)
            | ((random >> 62) << 64)
            | (0b10 << 62)
            | (random & ((1 << 62) - 1));
        ReadingId(Uuid::from_u128(id))
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
    /// Replaces the reading's id (see [`ReadingId::from_wal`]).
    pub fn set_id(&mut self, id: ReadingId) {
        match self {
            Reading::Api(r) => r.id = id,
            Reading::Host(r) => r.id = id,
        }
    }

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
    fn wal_ids_name_their_record_and_sort_in_wal_order_after_every_v7_id() {
        let a = ReadingId::from_wal(7, 16, 0);
        let b = ReadingId::from_wal(7, 16, 70_000);
        let c = ReadingId::from_wal(7, 4_000_000, 1);
        let d = ReadingId::from_wal(8, 16, 0);
        assert!(ReadingId::new() < a && a < b && b < c && c < d);
        assert_eq!(a.uuid().get_version_num(), 8);
        assert_eq!(c.wal_record(), Some((7, 4_000_000)));
        assert_eq!(d.wal_record(), Some((8, 16)));
        assert_eq!(ReadingId::new().wal_record(), None);
    }

    #[test]
    fn ids_of_a_request_are_uuid_v7_of_its_millisecond_in_order() {
        let at = TimestampMs::from_millis(1_700_000_000_123);
        let mut ids = ReadingIds::at(at);
        let made: Vec<ReadingId> = (0..1000).map(|_| ids.next_id()).collect();
        for id in &made {
            assert_eq!(id.uuid().get_version_num(), 7);
            assert_eq!(id.uuid().get_variant(), uuid::Variant::RFC4122);
            let (seconds, nanos) = id.uuid().get_timestamp().unwrap().to_unix();
            assert_eq!(
                seconds * 1000 + u64::from(nanos) / 1_000_000,
                1_700_000_000_123
            );
            assert_eq!(id.wal_record(), None);
        }
        assert!(
            made.windows(2).all(|w| w[0] < w[1]),
            "in the request's order"
        );
        let mut other = ReadingIds::at(at);
        assert!(
            !made.contains(&other.next_id()),
            "another request draws anew"
        );
    }

    #[test]
    fn timestamps_parse_rfc3339_and_epoch_millis() {
        let a = TimestampMs::parse("2014-09-27T18:15:00Z").unwrap();
        let b = TimestampMs::parse("1411841700000").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_rfc3339(), "2014-09-27T18:15:00.000Z");
        assert!(TimestampMs::parse("yesterday").is_err());
    }
}
