//! The Arrow schema of a kind's archive files, and the conversions between readings and Arrow
//! record batches — all derived from the kind's declaration ([`KindInfo::fields`]), never
//! written per kind.
//!
//! Columns, in order: the [`Head`] minus the service (which is in the file's path and metadata,
//! so that Hive-partitioned readers do not see it twice), then every declared field:
//!
//! | column | Arrow type | Parquet |
//! | --- | --- | --- |
//! | `id` | `FixedSizeBinary(16)`, canonical `arrow.uuid` extension | `UUID` |
//! | `timestamp` | `Timestamp(ms, "UTC")` | `TIMESTAMP(MILLIS, UTC)` |
//! | [`FieldType::Text`] | `Dictionary(Int32, Utf8)` | dictionary-encoded `STRING` |
//! | [`FieldType::Int`] | `Int32` | `INT32` |
//! | [`FieldType::BigInt`] | `Int64` | `INT64` |
//! | [`FieldType::Double`] | `Float64` | `DOUBLE` |
//! | [`FieldType::Bool`] | `Boolean` | `BOOLEAN` |
//!
//! A field is nullable exactly when its presence is [`Presence::Optional`]. Reading back goes
//! through [`ReadingKind::from_values`], so an archive file is checked by the same rules as an
//! ingest body; text columns are also accepted as plain strings, for files another tool
//! rewrote.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, FixedSizeBinaryBuilder, Float64Builder, Int32Builder, Int64Builder,
    StringDictionaryBuilder, TimestampMillisecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayAccessor, ArrayRef, RecordBatch, StringArray};
use arrow_schema::extension::Uuid as UuidExtension;
use arrow_schema::{DataType, Field as ArrowField, Schema, SchemaRef, TimeUnit};
use uuid::Uuid;

use crate::model::kind::{Field, FieldType, Head, Presence, Value, Values};
use crate::model::{ReadingId, ReadingKind, ServiceName, TimestampMs};

/// The column of the reading id.
pub const ID: &str = "id";
/// The column of the reading's time.
pub const TIMESTAMP: &str = "timestamp";
/// The time zone of the timestamp column: readings are instants, shown in UTC.
const UTC: &str = "UTC";

/// What is wrong with a record batch read from an archive file.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A column is missing or has another type.
    #[error("column `{column}` is missing or is not {expected}")]
    Column {
        /// The column.
        column: &'static str,
        /// The type it should have.
        expected: &'static str,
    },
    /// A row breaks the kind's rules.
    #[error("row {row}: {problem}")]
    Row {
        /// The row's index in its batch.
        row: usize,
        /// What is wrong.
        problem: String,
    },
}

/// The Arrow schema of kind `K`'s archive files.
pub fn schema<K: ReadingKind>() -> SchemaRef {
    let mut fields = vec![
        ArrowField::new(ID, DataType::FixedSizeBinary(16), false)
            .with_extension_type(UuidExtension),
        ArrowField::new(
            TIMESTAMP,
            DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into())),
            false,
        ),
    ];
    fields.extend(K::INFO.fields.iter().map(|field| {
        let nullable = field.presence == Presence::Optional;
        ArrowField::new(field.name, arrow_type(field.ty), nullable)
    }));
    Arc::new(Schema::new(fields))
}

fn arrow_type(ty: FieldType) -> DataType {
    match ty {
        FieldType::Text => {
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
        }
        FieldType::Int => DataType::Int32,
        FieldType::BigInt => DataType::Int64,
        FieldType::Double => DataType::Float64,
        FieldType::Bool => DataType::Boolean,
    }
}

/// One column being built.
enum Builder {
    Text(StringDictionaryBuilder<Int32Type>),
    Int(Int32Builder),
    BigInt(Int64Builder),
    Double(Float64Builder),
    Bool(BooleanBuilder),
}

impl Builder {
    fn new(ty: FieldType) -> Self {
        match ty {
            FieldType::Text => Builder::Text(StringDictionaryBuilder::new()),
            FieldType::Int => Builder::Int(Int32Builder::new()),
            FieldType::BigInt => Builder::BigInt(Int64Builder::new()),
            FieldType::Double => Builder::Double(Float64Builder::new()),
            FieldType::Bool => Builder::Bool(BooleanBuilder::new()),
        }
    }

    /// Appends `value`. A value of another type than the column's is a bug in the kind's
    /// declaration (its `value` and `fields` disagree), caught by the unit tests of every kind.
    fn append(&mut self, value: Value<'_>) {
        match (self, value) {
            (Builder::Text(b), Value::Text(text)) => {
                b.append_value(text);
            }
            (Builder::Int(b), Value::Int(n)) => {
                b.append_value(i32::try_from(n).expect("an Int field holds an i32"))
            }
            (Builder::BigInt(b), Value::Int(n)) => b.append_value(n),
            (Builder::Double(b), Value::Double(v)) => b.append_value(v),
            (Builder::Bool(b), Value::Bool(v)) => b.append_value(v),
            (Builder::Text(b), Value::Absent) => b.append_null(),
            (Builder::Int(b), Value::Absent) => b.append_null(),
            (Builder::BigInt(b), Value::Absent) => b.append_null(),
            (Builder::Double(b), Value::Absent) => b.append_null(),
            (Builder::Bool(b), Value::Absent) => b.append_null(),
            (_, value) => panic!("a kind's value {value:?} does not match its field type"),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::BigInt(b) => Arc::new(b.finish()),
            Builder::Double(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
        }
    }
}

/// Readings of kind `K` turned into record batches, row by row.
pub struct BatchBuilder<K: ReadingKind> {
    schema: SchemaRef,
    ids: FixedSizeBinaryBuilder,
    times: TimestampMillisecondBuilder,
    fields: Vec<Builder>,
    rows: usize,
    kind: std::marker::PhantomData<K>,
}

impl<K: ReadingKind> Default for BatchBuilder<K> {
    fn default() -> Self {
        Self {
            schema: schema::<K>(),
            ids: FixedSizeBinaryBuilder::new(16),
            times: TimestampMillisecondBuilder::new().with_timezone(UTC),
            fields: K::INFO.fields.iter().map(|f| Builder::new(f.ty)).collect(),
            rows: 0,
            kind: std::marker::PhantomData,
        }
    }
}

impl<K: ReadingKind> BatchBuilder<K> {
    /// Adds one reading as a row.
    pub fn push(&mut self, reading: &K) {
        self.ids
            .append_value(reading.id().uuid().as_bytes())
            .expect("a UUID is 16 bytes");
        self.times.append_value(reading.timestamp().millis());
        for (i, column) in self.fields.iter_mut().enumerate() {
            column.append(reading.value(i));
        }
        self.rows += 1;
    }

    /// Rows added since the last [`BatchBuilder::finish`].
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row was added since the last [`BatchBuilder::finish`].
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The rows added so far as one record batch; the builder starts over empty.
    pub fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> =
            vec![Arc::new(self.ids.finish()), Arc::new(self.times.finish())];
        columns.extend(self.fields.iter_mut().map(Builder::finish));
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), columns)
            .expect("the columns are built from the schema")
    }
}

/// A text column as written (dictionary) or as another tool may rewrite it (plain strings).
enum TextColumn<'a> {
    Dictionary(arrow_array::TypedDictionaryArray<'a, Int32Type, StringArray>),
    Plain(&'a StringArray),
}

/// One field column of a batch being read.
enum Reader<'a> {
    Text(TextColumn<'a>),
    Int(&'a arrow_array::Int32Array),
    BigInt(&'a arrow_array::Int64Array),
    Double(&'a arrow_array::Float64Array),
    Bool(&'a arrow_array::BooleanArray),
}

impl<'a> Reader<'a> {
    fn of(batch: &'a RecordBatch, field: &Field) -> Result<Self, SchemaError> {
        let missing = |expected| SchemaError::Column {
            column: field.name,
            expected,
        };
        let column = batch.column_by_name(field.name);
        let reader = match field.ty {
            FieldType::Text => {
                let dictionary = column
                    .and_then(|c| c.as_dictionary_opt::<Int32Type>())
                    .and_then(|d| d.downcast_dict::<StringArray>());
                match dictionary {
                    Some(d) => Reader::Text(TextColumn::Dictionary(d)),
                    None => column
                        .and_then(|c| c.as_string_opt::<i32>())
                        .map(|s| Reader::Text(TextColumn::Plain(s)))
                        .ok_or_else(|| missing("text"))?,
                }
            }
            FieldType::Int => Reader::Int(
                column
                    .and_then(|c| c.as_primitive_opt::<Int32Type>())
                    .ok_or_else(|| missing("int32"))?,
            ),
            FieldType::BigInt => Reader::BigInt(
                column
                    .and_then(|c| c.as_primitive_opt::<Int64Type>())
                    .ok_or_else(|| missing("int64"))?,
            ),
            FieldType::Double => Reader::Double(
                column
                    .and_then(|c| c.as_primitive_opt())
                    .ok_or_else(|| missing("double"))?,
            ),
            FieldType::Bool => Reader::Bool(
                column
                    .and_then(|c| c.as_boolean_opt())
                    .ok_or_else(|| missing("boolean"))?,
            ),
        };
        Ok(reader)
    }

    fn value(&self, row: usize) -> Value<'a> {
        let present = |array: &dyn Array| array.is_valid(row);
        match self {
            Reader::Text(TextColumn::Dictionary(d)) if d.is_valid(row) => Value::Text(d.value(row)),
            Reader::Text(TextColumn::Plain(s)) if present(*s) => Value::Text(s.value(row)),
            Reader::Int(a) if present(*a) => Value::Int(i64::from(a.value(row))),
            Reader::BigInt(a) if present(*a) => Value::Int(a.value(row)),
            Reader::Double(a) if present(*a) => Value::Double(a.value(row)),
            Reader::Bool(a) if present(*a) => Value::Bool(a.value(row)),
            _ => Value::Absent,
        }
    }
}

/// Every row of `batch` as a reading of kind `K` of `service`, each checked by the kind's rules.
pub fn readings<K: ReadingKind>(
    batch: &RecordBatch,
    service: &ServiceName,
) -> Result<Vec<K>, SchemaError> {
    let ids = batch
        .column_by_name(ID)
        .and_then(|c| c.as_fixed_size_binary_opt())
        .filter(|c| c.value_length() == 16)
        .ok_or(SchemaError::Column {
            column: ID,
            expected: "a 16-byte UUID",
        })?;
    let times = batch
        .column_by_name(TIMESTAMP)
        .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
        .ok_or(SchemaError::Column {
            column: TIMESTAMP,
            expected: "a millisecond timestamp",
        })?;
    let fields: Vec<Reader<'_>> = K::INFO
        .fields
        .iter()
        .map(|field| Reader::of(batch, field))
        .collect::<Result<_, _>>()?;
    (0..batch.num_rows())
        .map(|row| {
            if ids.is_null(row) || times.is_null(row) {
                return Err(SchemaError::Row {
                    row,
                    problem: "id and timestamp are required".into(),
                });
            }
            let id = Uuid::from_slice(ids.value(row)).expect("16 bytes, checked above");
            let head = Head {
                id: ReadingId::from_uuid(id),
                service: service.clone(),
                timestamp: TimestampMs::from_millis(times.value(row)),
            };
            let mut values = Values::default();
            for field in &fields {
                values.push(field.value(row));
            }
            K::from_values(head, &values).map_err(|e| SchemaError::Row {
                row,
                problem: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kind::{EachKind, Kinds, KINDS};
    use crate::model::reading::sample;
    use crate::model::{ApiReading, HostReading};

    fn round_trip<K: ReadingKind>(readings: &[K]) {
        let mut builder = BatchBuilder::<K>::default();
        for r in readings {
            builder.push(r);
        }
        assert_eq!(builder.len(), readings.len());
        let batch = builder.finish();
        assert!(builder.is_empty());
        assert_eq!(batch.schema(), schema::<K>());
        let back: Vec<K> = super::readings(&batch, readings[0].service()).unwrap();
        assert_eq!(back, readings);
    }

    #[test]
    fn readings_survive_a_record_batch_unchanged() {
        let api = sample::api();
        let other = ApiReading {
            id: ReadingId::new(),
            duration_ms: 0.25,
            count: 7,
            ..api.clone()
        };
        round_trip(&[api, other]);
        let host = sample::host();
        let sparse = HostReading {
            id: ReadingId::new(),
            gauges: crate::model::reading::HostGauges {
                available: Some(false),
                ..Default::default()
            },
            ..host.clone()
        };
        round_trip(&[host, sparse]);
    }

    /// Every declared field has a column of its type, nullable exactly when optional.
    struct Columns;

    impl EachKind<'_, Kinds> for Columns {
        fn each<K: ReadingKind>(&mut self, _: &()) {
            let schema = schema::<K>();
            assert_eq!(schema.fields().len(), K::INFO.fields.len() + 2);
            for field in K::INFO.fields {
                let column = schema.field_with_name(field.name).unwrap();
                assert_eq!(column.data_type(), &arrow_type(field.ty), "{}", field.name);
                assert_eq!(column.is_nullable(), field.is_optional(), "{}", field.name);
            }
        }
    }

    #[test]
    fn every_field_of_every_kind_has_its_column() {
        KINDS.each(&mut Columns);
    }

    #[test]
    fn a_row_breaking_the_kinds_rules_is_refused_with_its_index() {
        let mut builder = BatchBuilder::<ApiReading>::default();
        builder.push(&sample::api());
        let batch = builder.finish();
        let mut columns = batch.columns().to_vec();
        let code = K_CODE;
        columns[code] = Arc::new(arrow_array::Int32Array::from(vec![42]));
        let bad = RecordBatch::try_new(batch.schema(), columns).unwrap();
        let error = super::readings::<ApiReading>(&bad, &sample::api().service).unwrap_err();
        assert!(matches!(error, SchemaError::Row { row: 0, .. }), "{error}");
        assert!(error.to_string().contains("code"), "{error}");
    }

    /// The column index of `code` in an API batch (after `id` and `timestamp`).
    const K_CODE: usize = 2 + 3;
}
