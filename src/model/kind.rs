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
//! variant of [`Reading`], and one line in each list of this file ([`ALL`], `common!`,
//! [`PerKind`] and its methods, [`KINDS`], and the matches of [`Reading`]'s methods here).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

use super::bucket::{BucketWidth, Seq, ShardCount, TimeBucket};
use super::names::{ApiPath, HttpMethod, InstanceName, ServiceName};
use super::reading::{ApiReading, HostReading, Reading, ReadingId, TimestampMs};

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

/// One field's value, borrowed from a reading, a row or a body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Not given (an optional field).
    Absent,
    /// A [`FieldType::Text`] value.
    Text(&'a str),
    /// A [`FieldType::Int`] or [`FieldType::BigInt`] value.
    Int(i64),
    /// A [`FieldType::Double`] value.
    Double(f64),
    /// A [`FieldType::Bool`] value.
    Bool(bool),
}

impl Value<'_> {
    /// The number, for a numeric value.
    pub fn number(self) -> Option<f64> {
        match self {
            Value::Int(n) => Some(n as f64),
            Value::Double(v) => Some(v),
            _ => None,
        }
    }

    /// The whole number, for an integer value.
    pub fn int(self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(n),
            _ => None,
        }
    }

    /// The floating-point number, for a double value.
    pub fn double(self) -> Option<f64> {
        match self {
            Value::Double(v) => Some(v),
            _ => None,
        }
    }

    /// The boolean, for a boolean value.
    pub fn boolean(self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
}

impl From<Option<f64>> for Value<'_> {
    fn from(value: Option<f64>) -> Self {
        value.map_or(Value::Absent, Value::Double)
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(value: Option<i64>) -> Self {
        value.map_or(Value::Absent, Value::Int)
    }
}

impl From<Option<bool>> for Value<'_> {
    fn from(value: Option<bool>) -> Self {
        value.map_or(Value::Absent, Value::Bool)
    }
}

/// As JSON: a string, a number or a boolean; an absent value as `null`.
impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Value::Absent => serializer.serialize_none(),
            Value::Text(text) => serializer.serialize_str(text),
            Value::Int(n) => serializer.serialize_i64(n),
            Value::Double(v) => serializer.serialize_f64(v),
            Value::Bool(b) => serializer.serialize_bool(b),
        }
    }
}

/// The values of one reading's fields, in field order, kept on the stack.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    items: [Value<'a>; MAX_FIELDS],
    len: usize,
}

impl Default for Values<'_> {
    fn default() -> Self {
        Self {
            items: [Value::Absent; MAX_FIELDS],
            len: 0,
        }
    }
}

impl<'a> Values<'a> {
    /// Appends the next field's value; a value past [`MAX_FIELDS`] is a bug in a kind.
    pub fn push(&mut self, value: Value<'a>) {
        self.items[self.len] = value;
        self.len += 1;
    }

    /// The value of field `i` ([`Value::Absent`] when not given).
    pub fn get(&self, i: usize) -> Value<'a> {
        if i < self.len {
            self.items[i]
        } else {
            Value::Absent
        }
    }

    /// How many values were given.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no value was given.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What every reading carries besides its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// Fixed at acceptance.
    pub id: ReadingId,
    /// The service.
    pub service: ServiceName,
    /// The reading's time.
    pub timestamp: TimestampMs,
}

/// The problems of the fields of one reading: `(field, problem)`, in field order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<(&'static str, String)>);

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (field, problem)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{field} {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

/// Checks the values of one reading field by field, collecting every problem.
#[derive(Debug)]
pub struct Check<'v, 'a> {
    fields: &'static [Field],
    values: &'v Values<'a>,
    errors: FieldErrors,
}

impl<'v, 'a> Check<'v, 'a> {
    /// Starts checking `values` of a kind with `fields`.
    pub fn new(fields: &'static [Field], values: &'v Values<'a>) -> Self {
        Self {
            fields,
            values,
            errors: FieldErrors::default(),
        }
    }

    /// The value of field `i`, as given.
    pub fn value(&self, i: usize) -> Value<'a> {
        self.values.get(i)
    }

    /// Records a problem with `field`.
    pub fn problem(&mut self, field: &'static str, problem: impl Into<String>) {
        self.errors.0.push((field, problem.into()));
    }

    fn checked<T>(&mut self, i: usize, outcome: Result<T, String>) -> Option<T> {
        outcome
            .map_err(|problem| self.problem(self.fields[i].name, problem))
            .ok()
    }

    fn given<T>(&mut self, i: usize, pick: fn(Value<'a>) -> Option<T>, ty: &str) -> Option<T> {
        let outcome = match self.values.get(i) {
            Value::Absent => Err("is required".to_owned()),
            value => pick(value).ok_or_else(|| format!("must be {ty}")),
        };
        self.checked(i, outcome)
    }

    /// Required text field `i`, validated by `parse`.
    pub fn text<T>(
        &mut self,
        i: usize,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.given(
            i,
            |v| match v {
                Value::Text(t) => Some(t),
                _ => None,
            },
            "text",
        )?;
        self.checked(i, parse(text))
    }

    /// Required whole-number field `i`, validated by `parse`.
    pub fn int<T>(&mut self, i: usize, parse: impl FnOnce(i64) -> Result<T, String>) -> Option<T> {
        let n = self.given(i, Value::int, "a whole number")?;
        self.checked(i, parse(n))
    }

    /// Required floating-point field `i`, validated by `parse`.
    pub fn double<T>(
        &mut self,
        i: usize,
        parse: impl FnOnce(f64) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.given(i, Value::number, "a number")?;
        self.checked(i, parse(v))
    }

    /// Optional field `i` as given, checked by `rule` when present.
    pub fn optional(
        &mut self,
        i: usize,
        rule: impl FnOnce(Value<'a>) -> Result<(), String>,
    ) -> Value<'a> {
        let value = self.values.get(i);
        if value == Value::Absent {
            return value;
        }
        match self.checked(i, rule(value)) {
            Some(()) => value,
            None => Value::Absent,
        }
    }

    /// The reading `build` makes of the checked fields, or every problem found.
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, FieldErrors> {
        match build() {
            Some(reading) if self.errors.0.is_empty() => Ok(reading),
            _ => Err(self.errors),
        }
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

/// What every kind has alike, written once by `common!` for each: its [`Head`] fields (every
/// kind's struct has `id`, `service` and `timestamp`), and its place in the lists of this file
/// (its [`PerKind`] entry and its [`Reading`] variant).
pub trait Common: Sized {
    /// The id fixed at acceptance.
    fn id(&self) -> ReadingId;

    /// The service.
    fn service(&self) -> &ServiceName;

    /// The reading's time.
    fn timestamp(&self) -> TimestampMs;

    /// This kind's entry of `all`.
    fn pick<F: Family>(all: &PerKind<F>) -> &F::Of<Self>
    where
        Self: ReadingKind;

    /// This kind's entry of `all`, to change.
    fn pick_mut<F: Family>(all: &mut PerKind<F>) -> &mut F::Of<Self>
    where
        Self: ReadingKind;

    /// As the enum the WAL stores.
    fn into_reading(self) -> Reading;
}

/// [`Common`] for kind `$kind`, listed as field `$entry` of [`PerKind`] and variant `$variant`
/// of [`Reading`].
macro_rules! common {
    ($kind:ty, $entry:ident, $variant:ident) => {
        impl Common for $kind {
            fn id(&self) -> ReadingId {
                self.id
            }

            fn service(&self) -> &ServiceName {
                &self.service
            }

            fn timestamp(&self) -> TimestampMs {
                self.timestamp
            }

            fn pick<F: Family>(all: &PerKind<F>) -> &F::Of<Self> {
                &all.$entry
            }

            fn pick_mut<F: Family>(all: &mut PerKind<F>) -> &mut F::Of<Self> {
                &mut all.$entry
            }

            fn into_reading(self) -> Reading {
                Reading::$variant(self)
            }
        }
    };
}

common!(ApiReading, api, Api);
common!(HostReading, host, Host);

/// A type per kind: `Of<K>` is what a [`PerKind`] holds for kind `K`.
pub trait Family {
    /// The value for kind `K`.
    type Of<K: ReadingKind>;
}

/// One value per kind, typed by the kind: the one list of kinds that generic code iterates.
pub struct PerKind<F: Family> {
    /// For API readings.
    pub api: F::Of<ApiReading>,
    /// For host readings.
    pub host: F::Of<HostReading>,
}

/// Nothing per kind: [`KINDS`] visits the kinds themselves.
#[derive(Debug)]
pub enum Kinds {}

impl Family for Kinds {
    type Of<K: ReadingKind> = ();
}

/// Every kind, as types: `KINDS.each(&mut work)` runs `work` once per kind.
pub const KINDS: PerKind<Kinds> = PerKind { api: (), host: () };

/// Work done for every kind's entry of a [`PerKind`], in turn.
pub trait EachKind<'a, F: Family> {
    /// Called with kind `K`'s entry.
    fn each<K: ReadingKind>(&mut self, entry: &'a F::Of<K>);
}

/// Work done for every kind's entry of a [`PerKind`], which it may change.
pub trait EachKindMut<F: Family> {
    /// Called with kind `K`'s entry.
    fn each<K: ReadingKind>(&mut self, entry: &mut F::Of<K>);
}

impl<F: Family> PerKind<F> {
    /// Kind `K`'s entry.
    pub fn get<K: ReadingKind>(&self) -> &F::Of<K> {
        K::pick(self)
    }

    /// Kind `K`'s entry, to change.
    pub fn get_mut<K: ReadingKind>(&mut self) -> &mut F::Of<K> {
        K::pick_mut(self)
    }

    /// Runs `work` on every kind's entry.
    pub fn each<'a>(&'a self, work: &mut impl EachKind<'a, F>) {
        work.each::<ApiReading>(&self.api);
        work.each::<HostReading>(&self.host);
    }

    /// Runs `work` on every kind's entry, which it may change.
    pub fn each_mut(&mut self, work: &mut impl EachKindMut<F>) {
        work.each::<ApiReading>(&mut self.api);
        work.each::<HostReading>(&mut self.host);
    }
}

impl<F: Family> Default for PerKind<F>
where
    F::Of<ApiReading>: Default,
    F::Of<HostReading>: Default,
{
    fn default() -> Self {
        Self {
            api: Default::default(),
            host: Default::default(),
        }
    }
}

impl<F: Family> fmt::Debug for PerKind<F>
where
    F::Of<ApiReading>: fmt::Debug,
    F::Of<HostReading>: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerKind")
            .field("api", &self.api)
            .field("host", &self.host)
            .finish()
    }
}

/// Receives a reading as its own kind (see [`Reading::into_kind`]).
pub trait TakeKind {
    /// Called with the reading.
    fn take<K: ReadingKind>(&mut self, reading: K);
}

/// Looks at a reading as its own kind (see [`Reading::see`]).
pub trait SeeKind {
    /// Called with the reading.
    fn see<K: ReadingKind>(&mut self, reading: &K);
}

impl Reading {
    /// Shows the reading to `viewer` as its own kind.
    pub fn see(&self, viewer: &mut impl SeeKind) {
        match self {
            Reading::Api(r) => viewer.see(r),
            Reading::Host(r) => viewer.see(r),
        }
    }

    /// Hands the reading to `sink` as its own kind.
    pub fn into_kind(self, sink: &mut impl TakeKind) {
        match self {
            Reading::Api(r) => sink.take(r),
            Reading::Host(r) => sink.take(r),
        }
    }

    /// The service of the reading.
    pub fn service(&self) -> &ServiceName {
        match self {
            Reading::Api(r) => r.service(),
            Reading::Host(r) => r.service(),
        }
    }

    /// The declaration of the reading's kind.
    pub fn kind(&self) -> &'static KindInfo {
        match self {
            Reading::Api(_) => ApiReading::INFO,
            Reading::Host(_) => HostReading::INFO,
        }
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
