//! A kind's rows as the driver sends and receives them, derived from the kind's declaration:
//! [`RowValues`] and [`LatestValues`] bind a reading without copying it, [`decode`] rebuilds a
//! reading from a row through the kind's own checks.
//!
//! Column order is the one of [`super::statements`]: the head columns, then the kind's fields in
//! declared order. Absent optional fields are bound unset in readings rows (writing nothing,
//! so no tombstone) and null in latest rows (the row must be exactly the newest reading).

use scylla::deserialize::row::ColumnIterator;
use scylla::deserialize::value::DeserializeValue;
use scylla::deserialize::DeserializationError;
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::value::SerializeValue;
use scylla::serialize::writers::RowWriter;
use scylla::serialize::SerializationError;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::statements::{LATEST_HEAD, ROW_HEAD};
use crate::model::kind::{FieldType, Head, Value, Values};
use crate::model::{ReadingId, ReadingKind, ServiceName, TimestampMs};
use crate::store::{PartitionKey, StoreError};

/// A bind value that does not fit its column (a bug in a kind's declaration or the schema).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BindError(String);

/// The bind values of one readings row.
#[derive(Debug, Clone, Copy)]
pub struct RowValues<'a, K> {
    /// The row's partition.
    pub partition: &'a PartitionKey,
    /// The reading.
    pub reading: &'a K,
}

impl<K: ReadingKind> SerializeRow for RowValues<'_, K> {
    fn serialize(
        &self,
        ctx: &RowSerializationContext<'_>,
        writer: &mut RowWriter,
    ) -> Result<(), SerializationError> {
        let mut cells = Cells::new(ctx, writer, ROW_HEAD.len() + K::INFO.fields.len())?;
        cells.put(self.partition.service.as_str())?;
        cells.put(&self.partition.bucket.epoch_seconds())?;
        cells.put(&self.partition.seq.get())?;
        cells.put(&CqlTimestamp(self.reading.timestamp().millis()))?;
        cells.put(&self.reading.id().uuid())?;
        cells.fields(self.reading, Absent::Unset)
    }

    fn is_empty(&self) -> bool {
        false
    }
}

/// The bind values of one latest row.
#[derive(Debug, Clone, Copy)]
pub struct LatestValues<'a, K> {
    /// The latest-readings shard of the reading's series.
    pub shard: i32,
    /// The reading.
    pub reading: &'a K,
    /// Seconds until the reading is past the retention (at least 1).
    pub ttl_seconds: i32,
}

impl<K: ReadingKind> SerializeRow for LatestValues<'_, K> {
    fn serialize(
        &self,
        ctx: &RowSerializationContext<'_>,
        writer: &mut RowWriter,
    ) -> Result<(), SerializationError> {
        let at = self.reading.timestamp();
        // The fields, then USING TIMESTAMP and TTL.
        let mut cells = Cells::new(ctx, writer, LATEST_HEAD.len() + K::INFO.fields.len() + 2)?;
        cells.put(&self.shard)?;
        cells.put(self.reading.service().as_str())?;
        cells.put(&CqlTimestamp(at.millis()))?;
        cells.put(&self.reading.id().uuid())?;
        cells.fields(self.reading, Absent::Null)?;
        cells.put(&at.micros())?;
        cells.put(&self.ttl_seconds)
    }

    fn is_empty(&self) -> bool {
        false
    }
}

/// How an absent optional field is bound.
#[derive(Clone, Copy)]
enum Absent {
    Unset,
    Null,
}

/// Writes a row's cells in statement order, each typed by its column.
struct Cells<'c, 'w, 'b> {
    specs: std::slice::Iter<'c, scylla::frame::response::result::ColumnSpec<'c>>,
    writer: &'w mut RowWriter<'b>,
}

impl<'c, 'w, 'b> Cells<'c, 'w, 'b> {
    fn new(
        ctx: &'c RowSerializationContext<'c>,
        writer: &'w mut RowWriter<'b>,
        values: usize,
    ) -> Result<Self, SerializationError> {
        let specs = ctx.columns();
        if specs.len() != values {
            return Err(SerializationError::new(BindError(format!(
                "the statement has {} bind markers, the row {values} values",
                specs.len()
            ))));
        }
        Ok(Self {
            specs: specs.iter(),
            writer,
        })
    }

    fn put<V: SerializeValue + ?Sized>(&mut self, value: &V) -> Result<(), SerializationError> {
        let spec = self.specs.next().expect("counted in `new`");
        value.serialize(spec.typ(), self.writer.make_cell_writer())?;
        Ok(())
    }

    fn fields<K: ReadingKind>(
        &mut self,
        reading: &K,
        absent: Absent,
    ) -> Result<(), SerializationError> {
        for (i, field) in K::INFO.fields.iter().enumerate() {
            match (reading.value(i), field.ty) {
                (Value::Absent, _) => {
                    self.specs.next();
                    let cell = self.writer.make_cell_writer();
                    match absent {
                        Absent::Unset => cell.set_unset(),
                        Absent::Null => cell.set_null(),
                    };
                }
                (Value::Text(text), _) => self.put(text)?,
                (Value::Int(n), FieldType::Int) => {
                    let n = i32::try_from(n).map_err(|_| {
                        SerializationError::new(BindError(format!(
                            "{} = {n} does not fit a CQL int",
                            field.name
                        )))
                    })?;
                    self.put(&n)?
                }
                (Value::Int(n), _) => self.put(&n)?,
                (Value::Double(v), _) => self.put(&v)?,
                (Value::Bool(b), _) => self.put(&b)?,
            }
        }
        Ok(())
    }
}

/// Reads the next column as `T` (`None` for null).
fn next<'f, T>(columns: &mut ColumnIterator<'f, 'f>) -> Result<Option<T>, DeserializationError>
where
    T: DeserializeValue<'f, 'f>,
{
    let column = columns.next().ok_or_else(|| {
        DeserializationError::new(BindError("the row has too few columns".into()))
    })??;
    let typ = column.spec.typ();
    <Option<T> as DeserializeValue>::type_check(typ).map_err(DeserializationError::new)?;
    <Option<T> as DeserializeValue>::deserialize(typ, column.slice)
}

/// The next column of a field of type `ty`.
fn field<'f>(
    columns: &mut ColumnIterator<'f, 'f>,
    ty: FieldType,
) -> Result<Value<'f>, DeserializationError> {
    Ok(match ty {
        FieldType::Text => next::<&str>(columns)?.map(Value::Text),
        FieldType::Int => next::<i32>(columns)?.map(|n| Value::Int(n.into())),
        FieldType::BigInt => next::<i64>(columns)?.map(Value::Int),
        FieldType::Double => next::<f64>(columns)?.map(Value::Double),
        FieldType::Bool => next::<bool>(columns)?.map(Value::Bool),
    }
    .unwrap_or(Value::Absent))
}

/// Rebuilds a reading of kind `K` from a row of `timestamp, reading_id, fields…`, preceded by
/// `service_name` unless the partition's `service` is given.
pub fn decode<'f, K: ReadingKind>(
    what: &'static str,
    service: Option<&ServiceName>,
    mut columns: ColumnIterator<'f, 'f>,
) -> Result<K, StoreError> {
    let bad = |e: DeserializationError| StoreError::decode(what, e);
    let missing = |column: &str| StoreError::decode(what, format!("column {column} is null"));
    let service = match service {
        Some(service) => service.clone(),
        None => {
            let name = next::<&str>(&mut columns)
                .map_err(bad)?
                .ok_or_else(|| missing("service_name"))?;
            ServiceName::parse(name)
                .map_err(|e| StoreError::decode(what, format!("column service_name {e}")))?
        }
    };
    let timestamp = next::<CqlTimestamp>(&mut columns)
        .map_err(bad)?
        .ok_or_else(|| missing("timestamp"))?;
    let id = next::<Uuid>(&mut columns)
        .map_err(bad)?
        .ok_or_else(|| missing("reading_id"))?;
    let mut values = Values::default();
    for f in K::INFO.fields {
        values.push(field(&mut columns, f.ty).map_err(bad)?);
    }
    let head = Head {
        id: ReadingId::from_uuid(id),
        service,
        timestamp: TimestampMs::from_millis(timestamp.0),
    };
    K::from_values(head, &values).map_err(|e| StoreError::decode(what, e))
}
