//! Reading kinds: each kind of reading (an API request, a host sample) declares its shape once,
//! and every layer derives what it needs from that declaration.
//!
//! A kind is a model type implementing [`ReadingKind`]. Its [`KindInfo`] names the kind on the
//! wire (`"api"`), its tables and its embedded-store tag, and lists its [`Field`]s — name (the
//! JSON key and the column name alike), type and presence — in stored order. Every reading also
//! carries the fields of [`Head`] (`id`, `service`, `timestamp`), which every layer handles the
//! same way. From this:
//!
//! | layer | derived |
//! | --- | --- |
//! | ingest (`ingest::parse`) and the client (`client::wire`) | the JSON fields, their types and defaults |
//! | CQL (`store::cql`) | the statements, the bind values of a row, the decoding of a row |
//! | embedded store | the value codec of a row |
//! | grouping (`store::batch`) | partition shard (from [`ReadingKind::series`]), latest key |
//! | queries and the CLI | answer serialization, table columns, host stats gauges |
//!
//! A reading reaches the fields through [`ReadingKind::value`] (a borrowed [`Value`], no
//! allocation) and is rebuilt from values by [`ReadingKind::from_values`], the one place where a
//! kind's rules are checked (for a body, a CQL row and an embedded row alike).
//!
//! Adding a field (a gauge): the model struct, its [`Field`] entry and its accessors, all in the
//! kind's own file; then a migration adding the column, and a new WAL payload version (the
//! payload is the model's serde layout). Adding a kind: its file under `model/reading/`, a
//! variant of [`Reading`](crate::model::Reading), a line in [`ALL`], and one line in each list
//! of [`list`] (`common!`, [`PerKind`] and its methods, [`KINDS`], the matches of `Reading`'s
//! methods).

pub mod list;
mod values;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::bucket::{BucketWidth, Seq, ShardCount, TimeBucket};
use super::names::{ApiPath, HttpMethod, InstanceName, ServiceName};
use super::reading::{ApiReading, HostReading};

pub use list::{Common, EachKind, EachKindMut, Family, Kinds, PerKind, SeeKind, TakeKind, KINDS};
pub use values::{Check, FieldErrors, Head, Value, Values};

/// Most fields a kind may declare (values of a reading are kept on the stack).
pub const MAX_FIELDS: usize = 16;

/// Every kind, in [`KindInfo::index`] order.
pub const ALL: [&KindInfo; 2] = [ApiReading::INFO, HostReading::INFO];

/// The type of a field: its CQL column type and its JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text (`text`; a JSON string).
    Text,
    /// A whole number from 0 to `i32::MAX` (`int`; a JSON number). The embedded codec stores it
    /// unsigned.
    Int,
    /// A whole number (`bigint`; a JSON number).
    BigInt,
    /// A finite floating-point number (`double`; a JSON number).
    Double,
    /// `boolean`; JSON `true` or `false`.
    Bool,
}

impl FieldType {
    /// The CQL column type.
    pub const fn cql(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Int => "int",
            FieldType::BigInt => "bigint",
            FieldType::Double => "double",
            FieldType::Bool => "boolean",
        }
    }
}

/// Whether a field must be given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Presence {
    /// Always present.
    Required,
    /// May be left out on the wire, where it takes this value; always stored.
    Default(Value<'static>),
    /// May be absent anywhere: left out on the wire, null (or unset) in CQL, `None` in the model.
    Optional,
}

/// One field of a kind (beyond the [`Head`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field {
    /// The JSON key and the column name.
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// Whether it must be given.
    pub presence: Presence,
}

impl Field {
    /// A field that must always be given.
    pub const fn required(name: &'static str, ty: FieldType) -> Self {
        Self {
            name,
            ty,
            presence: Presence::Required,
        }
    }

    /// A field that may be absent.
    pub const fn optional(name: &'static str, ty: FieldType) -> Self {
        Self {
            name,
            ty,
            presence: Presence::Optional,
        }
    }

    /// A field that takes `value` when left out of a body.
    pub const fn defaulted(name: &'static str, ty: FieldType, value: Value<'static>) -> Self {
        Self {
            name,
            ty,
            presence: Presence::Default(value),
        }
    }

    /// True when the field may be absent from a stored row.
    pub fn is_optional(&self) -> bool {
        self.presence == Presence::Optional
    }
}

/// Everything about a kind that is not tied to its Rust type.
#[derive(Debug)]
pub struct KindInfo {
    /// Position in [`ALL`].
    pub index: usize,
    /// `api` or `host`: the key of the kind's list in a JSON body, the `kind` of an NDJSON line,
    /// the key of its list in `/v1/latest`.
    pub name: &'static str,
    /// The CQL table of the readings.
    pub table: &'static str,
    /// The CQL table of the latest reading of each series.
    pub latest_table: &'static str,
    /// The first byte of the kind's keys in the embedded store.
    pub tag: u8,
    /// The fields after the head, in stored order (the embedded codec depends on it).
    pub fields: &'static [Field],
}

impl KindInfo {
    /// The kind called `name` on the wire.
    pub fn named(name: &str) -> Option<&'static KindInfo> {
        ALL.into_iter().find(|kind| kind.name == name)
    }
}

/// A series: what a kind's readings replace each other in as "latest", and how it appears in the
/// series index (`series_by_bucket`: instance, then method and path for API series).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesRef<'a> {
    /// The service.
    pub service: &'a ServiceName,
    /// The instance.
    pub instance: &'a InstanceName,
    /// The API method, or `None` for a series without one.
    pub method: Option<&'a HttpMethod>,
    /// The API path, or `None` for a series without one.
    pub path: Option<&'a ApiPath>,
}

impl<'a> SeriesRef<'a> {
    /// The series of an instance (no method or path).
    pub fn instance(service: &'a ServiceName, instance: &'a InstanceName) -> Self {
        Self {
            service,
            instance,
            method: None,
            path: None,
        }
    }

    /// This series narrowed to one API method and path.
    pub fn api(self, method: &'a HttpMethod, path: &'a ApiPath) -> Self {
        Self {
            method: Some(method),
            path: Some(path),
            ..self
        }
    }

    /// The series' names within its service.
    fn parts(&self) -> ([&'a str; 3], usize) {
        let mut parts = [self.instance.as_str(), "", ""];
        let mut len = 1;
        for part in [
            self.method.map(HttpMethod::as_str),
            self.path.map(ApiPath::as_str),
        ]
        .into_iter()
        .flatten()
        {
            parts[len] = part;
            len += 1;
        }
        (parts, len)
    }

    /// The shard of the series within a bucket of its service (the `seq` of its partition).
    pub fn seq(&self, shards: ShardCount) -> Seq {
        let (parts, len) = self.parts();
        shards.shard_of(&parts[..len])
    }

    /// The service and the series' names: the key of its latest row.
    pub fn latest_key(&self) -> ([&'a str; 4], usize) {
        let (parts, len) = self.parts();
        let mut key = [self.service.as_str(), "", "", ""];
        key[1..=len].copy_from_slice(&parts[..len]);
        (key, len + 1)
    }

    /// The latest-readings shard of the series.
    pub fn latest_shard(&self, shards: ShardCount) -> Seq {
        let (key, len) = self.latest_key();
        shards.shard_of(&key[..len])
    }
}

/// A kind of reading: a model type together with the declaration of its shape.
pub trait ReadingKind:
    Common + Clone + fmt::Debug + PartialEq + Send + Sync + Serialize + DeserializeOwned + 'static
{
    /// The declaration.
    const INFO: &'static KindInfo;

    /// The series the reading belongs to.
    fn series(&self) -> SeriesRef<'_>;

    /// The value of field `i` of [`KindInfo::fields`].
    fn value(&self, i: usize) -> Value<'_>;

    /// Builds a reading from its head and its field values (in field order), checking every rule
    /// of the kind: the one validation of bodies, CQL rows and embedded rows.
    fn from_values(head: Head, values: &Values<'_>) -> Result<Self, FieldErrors>;

    /// The bucket the reading belongs to.
    fn bucket_of(&self, width: BucketWidth) -> TimeBucket {
        TimeBucket::containing(self.timestamp(), width)
    }

    /// Every field's value, in field order.
    fn values(&self) -> Values<'_> {
        let mut values = Values::default();
        for i in 0..Self::INFO.fields.len() {
            values.push(self.value(i));
        }
        values
    }

    /// The fields that are present, with their names.
    fn present_fields(&self) -> impl Iterator<Item = (&'static str, Value<'_>)> {
        Self::INFO
            .fields
            .iter()
            .enumerate()
            .map(|(i, field)| (field.name, self.value(i)))
            .filter(|(_, value)| *value != Value::Absent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_listed_at_their_index_with_distinct_names_and_tags() {
        for (i, kind) in ALL.iter().enumerate() {
            assert_eq!(kind.index, i, "{}", kind.name);
            assert!(kind.fields.len() <= MAX_FIELDS, "{}", kind.name);
            assert_eq!(KindInfo::named(kind.name).map(|k| k.index), Some(i));
        }
        assert_ne!(ALL[0].tag, ALL[1].tag);
    }

    #[test]
    fn series_parts_give_the_shards_the_stores_have_always_used() {
        let shards = ShardCount::new(16).unwrap();
        let service = ServiceName::parse("s").unwrap();
        let instance = InstanceName::parse("i").unwrap();
        let method = HttpMethod::parse("GET").unwrap();
        let path = ApiPath::parse("/p").unwrap();
        let host = SeriesRef::instance(&service, &instance);
        let api = host.api(&method, &path);
        assert_eq!(api.seq(shards), shards.shard_of(&["i", "GET", "/p"]));
        assert_eq!(
            api.latest_shard(shards),
            shards.shard_of(&["s", "i", "GET", "/p"])
        );
        assert_eq!(host.seq(shards), shards.shard_of(&["i"]));
        assert_eq!(host.latest_shard(shards), shards.shard_of(&["s", "i"]));
    }
}
