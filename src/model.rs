//! The data model shared by ingest, the WAL payload, the stores and queries.
//!
//! Invariant: every value of these types has been validated. Strings from the outside enter only
//! through the `parse` constructors of the newtypes in [`names`], so an unchecked string can never
//! reach a CQL statement or a WAL record. Deserialization (from the WAL, which is our own,
//! CRC-checked format) trusts its input and does not re-validate.

pub mod bucket;
pub mod intern;
pub mod names;
pub mod reading;
pub mod settings;

pub use bucket::{BucketWidth, Seq, ShardCount, TimeBucket};
pub use names::{ApiPath, HttpMethod, InstanceName, ServiceName, StatusCode};
pub use reading::{ApiReading, HostGauges, HostReading, Reading, ReadingId, TimestampMs};
pub use settings::Settings;
