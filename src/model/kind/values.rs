//! Field values: a reading's fields as borrowed [`Value`]s, kept on the stack ([`Values`]), and
//! the checks that rebuild a reading from them ([`Check`]), collecting every problem by field.

use std::fmt;

use serde::{Serialize, Serializer};

use super::{Field, MAX_FIELDS};
use crate::model::{ReadingId, ServiceName, TimestampMs};

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
