//! The data model shared by ingest, the WAL payload, the stores and queries: validated names,
//! readings and the declaration of each kind of reading ([`kind`]), buckets, shards, settings.
//!
//! Invariant: every value of these types has been validated. Strings from the outside enter only
//! through the `parse` constructors of the newtypes in [`names`], so an unchecked string can never
//! reach a CQL statement or a WAL record. Deserialization (from the WAL, which is our own,
//! CRC-checked format) trusts its input and does not re-validate.

pub mod bucket;
pub mod intern;
pub mod kind;
pub mod names;
pub mod reading;
pub mod settings;

pub use bucket::{BucketWidth, Seq, ShardCount, TimeBucket};
pub use kind::{ReadingKind, SeriesRef};
pub use names::{ApiPath, HttpMethod, InstanceName, ServiceName, StatusCode};
pub use reading::{
    ApiReading, HostGauges, HostReading, Reading, ReadingId, ReadingIds, TimestampMs,
};
pub use settings::{RollupRetention, Settings};
