//! The value of an embedded readings row: a reading's fields in declared order, postcard-encoded
//! from the kind's declaration.
//!
//! ```text
//! value := field*                       (every field of the kind, in declared order)
//! field := text | int | bigint | double | bool        required or defaulted fields
//!        | 0x00 | 0x01 (text | … | bool)             optional fields (postcard Option)
//! text  := varint(len) bytes    int := varint(u32)    bigint := varint(zigzag(i64))
//! double := 8 bytes LE          bool := 0x00 | 0x01
//! ```
//!
//! This is byte for byte what the store wrote before kinds were declared (a struct of the same
//! fields through serde), so existing stores read back unchanged. Reading borrows text from the
//! stored bytes: a row is rebuilt without copying its names first.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, SeqAccess, Visitor};
#[cfg(test)]
use serde::ser::{Error as _, SerializeTuple, Serializer};
use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;

use crate::model::kind::{Field, FieldType, Head, Value, Values};
use crate::model::ReadingKind;

/// Encodes the fields of `reading` (only tests write rows of this format now).
#[cfg(test)]
pub fn encode<K: ReadingKind>(reading: &K) -> Vec<u8> {
    // Plain data into a Vec cannot fail; a value that does not fit its type is a kind's bug.
    postcard::to_stdvec(&Fields(reading)).expect("fields serialize")
}

/// Decodes a value written by [`encode`] into a reading with `head`.
pub fn decode<K: ReadingKind>(head: Head, bytes: &[u8]) -> Result<K, String> {
    let mut deserializer = postcard::Deserializer::from_bytes(bytes);
    let values = FieldsSeed(K::INFO.fields)
        .deserialize(&mut deserializer)
        .map_err(|e| e.to_string())?;
    K::from_values(head, &values).map_err(|e| e.to_string())
}

#[cfg(test)]
struct Fields<'a, K>(&'a K);

#[cfg(test)]
impl<K: ReadingKind> Serialize for Fields<'_, K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = K::INFO.fields;
        let mut tuple = serializer.serialize_tuple(fields.len())?;
        for (i, field) in fields.iter().enumerate() {
            tuple.serialize_element(&Cell(field, self.0.value(i)))?;
        }
        tuple.end()
    }
}

#[cfg(test)]
struct Cell<'a>(&'static Field, Value<'a>);

#[cfg(test)]
impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Cell(field, value) = *self;
        match (field.is_optional(), value) {
            (true, Value::Absent) => serializer.serialize_none(),
            (true, value) => serializer.serialize_some(&Plain(field, value)),
            (false, value) => Plain(field, value).serialize(serializer),
        }
    }
}

#[cfg(test)]
struct Plain<'a>(&'static Field, Value<'a>);

#[cfg(test)]
impl Serialize for Plain<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Plain(field, value) = *self;
        match (field.ty, value) {
            (FieldType::Text, Value::Text(text)) => serializer.serialize_str(text),
            (FieldType::Int, Value::Int(n)) => match u32::try_from(n) {
                Ok(n) => serializer.serialize_u32(n),
                Err(_) => Err(S::Error::custom(format!(
                    "{} = {n} is not stored",
                    field.name
                ))),
            },
            (FieldType::BigInt, Value::Int(n)) => serializer.serialize_i64(n),
            (FieldType::Double, Value::Double(v)) => serializer.serialize_f64(v),
            (FieldType::Bool, Value::Bool(b)) => serializer.serialize_bool(b),
            (_, value) => Err(S::Error::custom(format!(
                "{} does not hold a {:?}: {value:?}",
                field.name, field.ty
            ))),
        }
    }
}

/// Reads every field of a kind, in order.
struct FieldsSeed(&'static [Field]);

impl<'de> DeserializeSeed<'de> for FieldsSeed {
    type Value = Values<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Values<'de>, D::Error> {
        deserializer.deserialize_tuple(self.0.len(), self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed {
    type Value = Values<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} fields", self.0.len())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values<'de>, A::Error> {
        let mut values = Values::default();
        for field in self.0 {
            let value = seq
                .next_element_seed(CellSeed(field))?
                .ok_or_else(|| A::Error::custom(format!("field {} is missing", field.name)))?;
            values.push(value);
        }
        Ok(values)
    }
}

/// Reads one field, optional ones with their `Option` tag.
struct CellSeed(&'static Field);

impl<'de> DeserializeSeed<'de> for CellSeed {
    type Value = Value<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value<'de>, D::Error> {
        if self.0.is_optional() {
            deserializer.deserialize_option(self)
        } else {
            PlainSeed(self.0.ty).deserialize(deserializer)
        }
    }
}

impl<'de> Visitor<'de> for CellSeed {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an optional {}", self.0.name)
    }

    fn visit_none<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Absent)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value<'de>, D::Error> {
        PlainSeed(self.0.ty).deserialize(deserializer)
    }
}

/// Reads one present value of a type.
struct PlainSeed(FieldType);

impl<'de> DeserializeSeed<'de> for PlainSeed {
    type Value = Value<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value<'de>, D::Error> {
        Ok(match self.0 {
            FieldType::Text => Value::Text(<&'de str>::deserialize(deserializer)?),
            FieldType::Int => Value::Int(u32::deserialize(deserializer)?.into()),
            FieldType::BigInt => Value::Int(i64::deserialize(deserializer)?),
            FieldType::Double => Value::Double(f64::deserialize(deserializer)?),
            FieldType::Bool => Value::Bool(bool::deserialize(deserializer)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reading::sample;
    use crate::model::{ApiReading, HostGauges, HostReading};

    #[test]
    fn api_rows_keep_the_layout_stores_were_written_with() {
        let reading = sample::api();
        // The former value struct: instance, method, path, code: u16, duration_ms, count: u32.
        let written = postcard::to_stdvec(&("i-1", "GET", "/p", 200u16, 1.5f64, 3u32)).unwrap();
        assert_eq!(encode(&reading), written);
        let head = sample::head_of(&reading);
        assert_eq!(decode::<ApiReading>(head, &written), Ok(reading));
    }

    #[test]
    fn host_rows_keep_the_layout_stores_were_written_with() {
        let gauges = HostGauges {
            mem_total_bytes: None,
            available: Some(true),
            freed_bytes: Some(0),
            ..sample::host().gauges
        };
        let reading = HostReading {
            gauges: gauges.clone(),
            ..sample::host()
        };
        // The former value struct: the instance, then the gauges struct.
        let written = postcard::to_stdvec(&("h-1", gauges)).unwrap();
        assert_eq!(encode(&reading), written);
        let head = sample::head_of(&reading);
        assert_eq!(decode::<HostReading>(head, &written), Ok(reading));
    }

    #[test]
    fn a_truncated_or_invalid_value_is_an_error() {
        let head = || sample::head_of(&sample::api());
        assert!(decode::<ApiReading>(head(), &[3, b'i', b'-']).is_err());
        let bad_code = postcard::to_stdvec(&("i-1", "GET", "/p", 42u16, 1.5f64, 3u32)).unwrap();
        let error = decode::<ApiReading>(head(), &bad_code).unwrap_err();
        assert!(error.contains("code"), "{error}");
    }
}
