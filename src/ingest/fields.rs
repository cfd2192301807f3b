//! Typed access to the fields of one reading object, collecting every problem instead of
//! stopping at the first. A kind's fields are checked against their declared JSON type here
//! ([`Fields::typed`]), and against the kind's own rules by the kind.
//!
//! Each accessor takes its field from the object's [`Members`], so whatever remains at the end is
//! unknown and reported ([`Fields::reject_unknown`]): a typo like `duration` for `duration_ms` is
//! an error, not a silently dropped value.

use super::lenient::Lenient;
use super::members::{Members, SERVICE, TIMESTAMP};

use super::parse::{FieldProblem, Window};
use super::problems::Problems;
use super::rules;
use crate::model::kind::{Field, FieldType, Value};
use crate::model::TimestampMs;

/// The fields of one reading and the shared problem list.
pub struct Fields<'a, 'body> {
    members: &'a mut Members<'body>,
    index: usize,
    kind: &'static str,
    problems: &'a mut Problems,
    problems_before: usize,
}

impl<'a, 'body> Fields<'a, 'body> {
    /// Wraps reading number `index` of kind `kind`.
    pub fn new(
        members: &'a mut Members<'body>,
        index: usize,
        kind: &'static str,
        problems: &'a mut Problems,
    ) -> Self {
        let problems_before = problems.total();
        Self {
            members,
            index,
            kind,
            problems,
            problems_before,
        }
    }

    /// Records a problem with `field`.
    pub fn problem(&mut self, field: &str, problem: impl Into<String>) {
        self.problems.push(FieldProblem {
            index: self.index,
            kind: Some(self.kind),
            field: field.to_owned(),
            problem: problem.into(),
        });
    }

    /// True when this reading has no problems so far.
    pub fn is_clean(&self) -> bool {
        self.problems.total() == self.problems_before
    }

    /// Reports every field no accessor took, and every field given more than once.
    pub fn reject_unknown(&mut self) {
        for (field, repeated) in self.members.leftovers() {
            let problem = if repeated {
                "given more than once"
            } else {
                "unknown field"
            };
            self.problem(&field, problem);
        }
    }

    fn check<T>(&mut self, field: &str, outcome: Result<T, String>) -> Option<T> {
        outcome.map_err(|problem| self.problem(field, problem)).ok()
    }

    /// The `service` field, validated by `parse`.
    pub fn service<T>(&mut self, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let outcome = match self.members.take(SERVICE) {
            Some(Lenient::Str(text)) => parse(&text),
            Some(other) => Err(format!("must be a string, got {}", other.type_name())),
            None => Err("is required".into()),
        };
        self.check("service", outcome)
    }

    /// Removes the member in `slot` (see [`members`](super::members)), returning its raw value.
    pub fn take(&mut self, slot: usize) -> Option<Lenient<'body>> {
        self.members.take(slot)
    }

    /// The value of `field`, taken earlier as `raw`, if it has the field's JSON type
    /// ([`Value::Absent`] when left out or null; the field's presence is checked later, with
    /// its other rules).
    pub fn typed<'v>(
        &mut self,
        field: &Field,
        raw: Option<&'v Lenient<'body>>,
    ) -> Option<Value<'v>> {
        let outcome = match (field.ty, raw) {
            (FieldType::Text, None) => Ok(Value::Absent),
            (FieldType::Text, Some(Lenient::Str(text))) => Ok(Value::Text(text)),
            (FieldType::Text, Some(other)) => {
                Err(format!("must be a string, got {}", other.type_name()))
            }
            (_, None | Some(Lenient::Null)) => Ok(Value::Absent),
            (FieldType::Int | FieldType::BigInt, Some(Lenient::Number(n))) => n
                .as_i64()
                .map(Value::Int)
                .ok_or_else(|| format!("must be a whole number, got {n}")),
            (FieldType::Double, Some(Lenient::Number(n))) => n
                .as_f64()
                .filter(|v| v.is_finite())
                .map(Value::Double)
                .ok_or_else(|| format!("must be a finite number, got {n}")),
            (FieldType::Bool, Some(Lenient::Bool(b))) => Ok(Value::Bool(*b)),
            (FieldType::Bool, Some(other)) => {
                Err(format!("must be true or false, got {}", other.type_name()))
            }
            (_, Some(other)) => Err(format!("must be a number, got {}", other.type_name())),
        };
        self.check(field.name, outcome)
    }

    /// The `timestamp` field (RFC 3339 text or epoch ms), defaulting to the time of receipt,
    /// and within the window. A refused timestamp is quoted as it was received: a value outside
    /// the calendar (`9223372036854775807`) has no date to show.
    pub fn timestamp(&mut self, window: &Window) -> Option<TimestampMs> {
        let outcome = match self.members.take(TIMESTAMP) {
            None | Some(Lenient::Null) => rules::timestamp(window.now, window, String::new),
            Some(Lenient::Str(text)) => TimestampMs::parse(&text)
                .and_then(|at| rules::timestamp(at, window, || format!("`{text}`"))),
            Some(Lenient::Number(n)) => match n.as_i64().map(TimestampMs::from_millis) {
                Some(at) => rules::timestamp(at, window, || rules::describe_millis(at)),
                None => Err(format!(
                    "epoch milliseconds must be a whole number, got {n}"
                )),
            },
            Some(other) => Err(format!(
                "must be RFC 3339 text or epoch milliseconds, got {}",
                other.type_name()
            )),
        };
        self.check("timestamp", outcome)
    }
}
