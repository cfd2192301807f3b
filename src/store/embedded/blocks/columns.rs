//! The columns of one partition of a block: a kind's readings, sorted by `(timestamp, id)`,
//! turned into one numeric column per piece of the reading, derived from the kind's declaration
//! ([`KindInfo::fields`](crate::model::kind::KindInfo::fields)), never per kind.
//!
//! ```text
//! column        type  holds                                           present
//! timestamp     i64   epoch ms                                        always
//! id_hi, id_lo  u64   the reading id's two halves (big-endian)        always
//! tuple         u32   ordinal of the row's text fields in the         when the kind has text fields
//!                     partition's tuple dictionary (names: block-wide)
//! presence      u32   bit j: the j-th optional field is present       when the kind has optional fields
//! field i       i64 (Int, BigInt) | f64 (Double) | u32 (Bool)         per non-text field, present rows only
//! ```
//!
//! Every column is compressed on its own with `pco` (Pcodec). Why pco: it is a maintained crate
//! made for exactly this (numeric columns), pure Rust, and it chooses per column what the
//! classic TSDB codecs hand-pick: delta encoding up to the order that pays (delta-of-delta for
//! regular timestamps), binning plus tANS entropy coding (a constant or few-valued column, such
//! as codes, counts or tuple ordinals, costs a few bits per row or less, like run-length or
//! dictionary encoding), and float modes that find a common multiplier or quantum (the
//! scaled-integer encoding of millisecond durations). Its output is already entropy coded, so
//! no general compressor runs over the columns; only the block index is zstd-compressed.
//! Text fields are dictionary-encoded together: a row's texts (instance, method, path) form one
//! tuple, stored once per partition, whose names are stored once per block.

use std::collections::HashMap;

use pco::standalone::{simple_compress, simple_decompress};
use pco::ChunkConfig;
use uuid::Uuid;

use super::BlockError;
use crate::model::kind::{Field, FieldType, Head, Value, Values};
use crate::model::{ReadingId, ReadingKind, ServiceName, TimestampMs};

/// Tuple slot of an absent optional text field.
const ABSENT: u32 = u32::MAX;

/// Every name of one block, each stored once.
#[derive(Debug, Default)]
pub struct Names {
    index: HashMap<String, u32>,
    /// The names, by number.
    pub list: Vec<String>,
}

impl Names {
    /// The number of `name`, added if new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&n) = self.index.get(name) {
            return n;
        }
        let n = u32::try_from(self.list.len()).expect("fewer than 2^32 names in a block");
        self.list.push(name.to_owned());
        self.index.insert(name.to_owned(), n);
        n
    }
}

/// One partition's rows as compressed columns.
#[derive(Debug)]
pub struct Encoded {
    /// The distinct text tuples, as name numbers, in order of first appearance.
    pub tuples: Vec<Vec<u32>>,
    /// The columns, in the order of the table above.
    pub columns: Vec<Vec<u8>>,
}

fn is_text(field: &Field) -> bool {
    field.ty == FieldType::Text
}

fn has_texts(fields: &[Field]) -> bool {
    fields.iter().any(is_text)
}

fn has_optionals(fields: &[Field]) -> bool {
    fields.iter().any(Field::is_optional)
}

fn pack<T: pco::data_types::Number>(values: &[T]) -> Vec<u8> {
    if values.is_empty() {
        return Vec::new();
    }
    // Compressing numbers in memory cannot fail for a valid default configuration.
    simple_compress(values, &ChunkConfig::default()).expect("pco compresses")
}

fn unpack<T: pco::data_types::Number>(bytes: &[u8]) -> Result<Vec<T>, BlockError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    simple_decompress(bytes).map_err(|e| BlockError::Damaged(format!("a column: {e}")))
}

/// Encodes `rows` (one partition's, sorted by `(timestamp, id)`), adding their names to `names`.
pub fn encode<K: ReadingKind>(rows: &[K], names: &mut Names) -> Encoded {
    let fields = K::INFO.fields;
    let optional: Vec<usize> = (0..fields.len())
        .filter(|&i| fields[i].is_optional())
        .collect();
    let mut timestamps = Vec::with_capacity(rows.len());
    let (mut hi, mut lo) = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    let mut tuples: Vec<Vec<u32>> = Vec::new();
    let mut tuple_of: HashMap<Vec<u32>, u32> = HashMap::new();
    let mut ordinals = Vec::with_capacity(rows.len());
    let mut presence = Vec::with_capacity(rows.len());
    let mut ints: Vec<Vec<i64>> = vec![Vec::new(); fields.len()];
    let mut doubles: Vec<Vec<f64>> = vec![Vec::new(); fields.len()];
    let mut bools: Vec<Vec<u32>> = vec![Vec::new(); fields.len()];
    // One buffer for every row's names; a tuple is copied only the first time it is seen.
    let mut tuple = Vec::new();
    for row in rows {
        timestamps.push(row.timestamp().millis());
        let id = row.id().uuid().as_u128();
        hi.push((id >> 64) as u64);
        lo.push(id as u64);
        tuple.clear();
        let mut present = 0u32;
        for (i, field) in fields.iter().enumerate() {
            let value = row.value(i);
            if value != Value::Absent {
                if let Some(bit) = optional.iter().position(|&o| o == i) {
                    present |= 1 << bit;
                }
            }
            match value {
                Value::Text(text) => tuple.push(names.intern(text)),
                Value::Absent if is_text(field) => tuple.push(ABSENT),
                Value::Int(n) => ints[i].push(n),
                Value::Double(v) => doubles[i].push(v),
                Value::Bool(b) => bools[i].push(u32::from(b)),
                Value::Absent => {}
            }
        }
        if has_texts(fields) {
            let ordinal = match tuple_of.get(tuple.as_slice()) {
                Some(&ordinal) => ordinal,
                None => {
                    let next = tuples.len() as u32;
                    tuple_of.insert(tuple.clone(), next);
                    tuples.push(tuple.clone());
                    next
                }
            };
            ordinals.push(ordinal);
        }
        presence.push(present);
    }
    let mut columns = vec![pack(&timestamps), pack(&hi), pack(&lo)];
    if has_texts(fields) {
        columns.push(pack(&ordinals));
    }
    if has_optionals(fields) {
        columns.push(pack(&presence));
    }
    for (i, field) in fields.iter().enumerate() {
        match field.ty {
            FieldType::Text => {}
            FieldType::Int | FieldType::BigInt => columns.push(pack(&ints[i])),
            FieldType::Double => columns.push(pack(&doubles[i])),
            FieldType::Bool => columns.push(pack(&bools[i])),
        }
    }
    Encoded { tuples, columns }
}

/// How many columns a partition of kind `K` has.
pub fn column_count<K: ReadingKind>() -> usize {
    let fields = K::INFO.fields;
    3 + usize::from(has_texts(fields))
        + usize::from(has_optionals(fields))
        + fields.iter().filter(|f| !is_text(f)).count()
}

/// The keys `(timestamp, id)` of a partition's rows, in order: decodes three columns only.
pub fn keys(columns: &[&[u8]]) -> Result<Vec<(TimestampMs, ReadingId)>, BlockError> {
    if columns.len() < 3 {
        return Err(BlockError::Damaged(
            "a partition without its key columns".into(),
        ));
    }
    let timestamps: Vec<i64> = unpack(columns[0])?;
    let hi: Vec<u64> = unpack(columns[1])?;
    let lo: Vec<u64> = unpack(columns[2])?;
    if hi.len() != timestamps.len() || lo.len() != timestamps.len() {
        return Err(BlockError::Damaged(
            "key columns of different lengths".into(),
        ));
    }
    Ok(timestamps
        .into_iter()
        .zip(hi.into_iter().zip(lo))
        .map(|(t, (hi, lo))| {
            let id = Uuid::from_u128((u128::from(hi) << 64) | u128::from(lo));
            (TimestampMs::from_millis(t), ReadingId::from_uuid(id))
        })
        .collect())
}

/// A decoded numeric column.
#[derive(Debug)]
pub enum Column {
    /// An `Int` or `BigInt` field.
    Int(Vec<i64>),
    /// A `Double` field.
    Double(Vec<f64>),
}

/// Some columns of a partition, decoded.
#[derive(Debug)]
pub struct Projection {
    /// Each row's time, epoch ms.
    pub timestamps: Vec<i64>,
    /// Each row's tuple ordinal; empty when the kind has no text fields.
    pub ordinals: Vec<u32>,
    /// The wanted fields' columns, in the order asked for.
    pub columns: Vec<Column>,
}

/// A partition's timestamps, tuple ordinals and the columns of fields `wanted` (indexes into
/// `K`'s fields, each a required or defaulted `Int`, `BigInt` or `Double` field, so that every
/// row has a value): decodes only those columns, never the ids or the other fields.
pub fn project<K: ReadingKind>(
    columns: &[&[u8]],
    wanted: &[usize],
) -> Result<Projection, BlockError> {
    let fields = K::INFO.fields;
    let first = 3 + usize::from(has_texts(fields)) + usize::from(has_optionals(fields));
    let column = |at: usize| {
        columns
            .get(at)
            .copied()
            .ok_or_else(|| BlockError::Damaged("a partition without a column".into()))
    };
    let timestamps: Vec<i64> = unpack(column(0)?)?;
    let ordinals: Vec<u32> = if has_texts(fields) {
        unpack(column(3)?)?
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(wanted.len());
    for &i in wanted {
        let field = &fields[i];
        debug_assert!(
            !field.is_optional(),
            "a projected field is present on every row"
        );
        let at = first + fields[..i].iter().filter(|f| !is_text(f)).count();
        let values = match field.ty {
            FieldType::Int | FieldType::BigInt => Column::Int(unpack(column(at)?)?),
            FieldType::Double => Column::Double(unpack(column(at)?)?),
            FieldType::Text | FieldType::Bool => {
                return Err(BlockError::Damaged(format!(
                    "field {} cannot be projected",
                    field.name
                )))
            }
        };
        let len = match &values {
            Column::Int(v) => v.len(),
            Column::Double(v) => v.len(),
        };
        if len != timestamps.len() {
            return Err(BlockError::Damaged(format!(
                "column {} has {len} rows, the partition {}",
                field.name,
                timestamps.len()
            )));
        }
        out.push(values);
    }
    if has_texts(fields) && ordinals.len() != timestamps.len() {
        return Err(BlockError::Damaged(
            "tuple and time columns of different lengths".into(),
        ));
    }
    Ok(Projection {
        timestamps,
        ordinals,
        columns: out,
    })
}

/// Rebuilds rows `rows` (a range of positions) of a partition of `service` from its columns,
/// keys (from [`keys`]), tuples and the block's names; `rows` in the order wanted.
pub fn decode<K: ReadingKind>(
    columns: &[&[u8]],
    keys: &[(TimestampMs, ReadingId)],
    tuples: &[Vec<u32>],
    names: &[String],
    service: &ServiceName,
    rows: impl Iterator<Item = usize>,
) -> Result<Vec<K>, BlockError> {
    let fields = K::INFO.fields;
    let n = keys.len();
    let mut next = 3;
    let ordinals: Vec<u32> = if has_texts(fields) {
        next += 1;
        unpack(columns[next - 1])?
    } else {
        Vec::new()
    };
    let presence: Vec<u32> = if has_optionals(fields) {
        next += 1;
        unpack(columns[next - 1])?
    } else {
        vec![0; n]
    };
    // Per non-text field: its decoded values, and for each row the position of its value.
    let mut ints: Vec<Vec<i64>> = vec![Vec::new(); fields.len()];
    let mut doubles: Vec<Vec<f64>> = vec![Vec::new(); fields.len()];
    let mut bools: Vec<Vec<u32>> = vec![Vec::new(); fields.len()];
    for (i, field) in fields.iter().enumerate() {
        match field.ty {
            FieldType::Text => continue,
            FieldType::Int | FieldType::BigInt => ints[i] = unpack(columns[next])?,
            FieldType::Double => doubles[i] = unpack(columns[next])?,
            FieldType::Bool => bools[i] = unpack(columns[next])?,
        }
        next += 1;
    }
    let optional: Vec<usize> = (0..fields.len())
        .filter(|&i| fields[i].is_optional())
        .collect();
    let is_present = |row: usize, i: usize| match optional.iter().position(|&o| o == i) {
        Some(bit) => presence[row] & (1 << bit) != 0,
        None => true,
    };
    // The position of each row's value in each field's column: running counts of presence.
    let mut slot = vec![vec![0usize; n]; fields.len()];
    for (i, slots) in slot.iter_mut().enumerate() {
        let mut count = 0;
        for (row, s) in slots.iter_mut().enumerate() {
            *s = count;
            count += usize::from(is_present(row, i));
        }
    }
    let bad = |what: &str| BlockError::Damaged(format!("{what} out of range"));
    let mut out = Vec::new();
    for row in rows {
        let (timestamp, id) = *keys.get(row).ok_or_else(|| bad("a row"))?;
        let tuple = match ordinals.get(row) {
            Some(&o) => tuples
                .get(o as usize)
                .ok_or_else(|| bad("a tuple"))?
                .as_slice(),
            None => &[],
        };
        let mut texts = tuple.iter();
        let mut values = Values::default();
        for (i, field) in fields.iter().enumerate() {
            let s = slot[i][row];
            let value = if field.ty == FieldType::Text {
                match *texts.next().ok_or_else(|| bad("a text"))? {
                    ABSENT => Value::Absent,
                    name => Value::Text(names.get(name as usize).ok_or_else(|| bad("a name"))?),
                }
            } else if !is_present(row, i) {
                Value::Absent
            } else {
                match field.ty {
                    FieldType::Int | FieldType::BigInt => {
                        Value::Int(*ints[i].get(s).ok_or_else(|| bad("an int"))?)
                    }
                    FieldType::Double => {
                        Value::Double(*doubles[i].get(s).ok_or_else(|| bad("a double"))?)
                    }
                    FieldType::Bool => {
                        Value::Bool(*bools[i].get(s).ok_or_else(|| bad("a bool"))? != 0)
                    }
                    FieldType::Text => Value::Absent,
                }
            };
            values.push(value);
        }
        let head = Head {
            id,
            service: service.clone(),
            timestamp,
        };
        out.push(K::from_values(head, &values).map_err(|e| BlockError::Damaged(e.to_string()))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reading::sample;
    use crate::model::{ApiReading, HostGauges, HostReading};

    fn round_trip<K: ReadingKind>(rows: Vec<K>) -> (Vec<K>, usize) {
        let mut names = Names::default();
        let encoded = encode(&rows, &mut names);
        assert_eq!(encoded.columns.len(), column_count::<K>());
        let columns: Vec<&[u8]> = encoded.columns.iter().map(Vec::as_slice).collect();
        let keys = keys(&columns).unwrap();
        let service = rows[0].service().clone();
        let back = decode(
            &columns,
            &keys,
            &encoded.tuples,
            &names.list,
            &service,
            0..keys.len(),
        )
        .unwrap();
        let bytes = encoded.columns.iter().map(Vec::len).sum();
        (back, bytes)
    }

    #[test]
    fn api_rows_round_trip_and_compress_far_below_their_ids() {
        let rows: Vec<ApiReading> = (0..10_000u32)
            .map(|i| ApiReading {
                id: ReadingId::from_wal(3, 16 + u64::from(i / 20) * 2_000, i % 20),
                path: crate::model::ApiPath::parse(&format!("/p/{}", i % 7)).unwrap(),
                duration_ms: f64::from(i % 500) / 10.0,
                code: crate::model::StatusCode::parse(if i % 50 == 0 { 500 } else { 200 }).unwrap(),
                timestamp: TimestampMs::from_millis(sample::AT_MS + i64::from(i) * 86),
                ..sample::api()
            })
            .collect();
        let (back, bytes) = round_trip(rows.clone());
        assert_eq!(back, rows);
        assert!(
            bytes < rows.len() * 6,
            "{bytes} bytes for {} rows",
            rows.len()
        );
    }

    #[test]
    fn host_rows_with_absent_gauges_round_trip() {
        let full = sample::host();
        let sparse = HostReading {
            id: ReadingId::new(),
            timestamp: TimestampMs::from_millis(sample::AT_MS + 1),
            gauges: HostGauges {
                cpu_percent: Some(3.25),
                available: Some(true),
                ..HostGauges::default()
            },
            ..sample::host()
        };
        let (back, _) = round_trip(vec![full.clone(), sparse.clone()]);
        assert_eq!(back, vec![full, sparse]);
    }
}
