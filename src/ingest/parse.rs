//! Turns a request body into validated readings, or into the list of every problem in it.
//!
//! Two encodings: a JSON object `{"api": [...], "host": [...]}`, and NDJSON with one reading per
//! line carrying `"kind": "api"` or `"host"`. A body with any problem is refused whole: nothing
//! is half-accepted. Problems name the reading (`index`: its position in its list, or its line
//! for NDJSON), its `kind`, the `field` and what is wrong.
//!
//! One generic reader serves every kind: a reading is `service`, `timestamp` and the kind's
//! declared fields ([`KindInfo::fields`]), each checked against its JSON type, then against the
//! kind's rules ([`ReadingKind::from_values`]). `client::wire` writes the same format.
//!
//! A body is read in one pass: its text is checked as UTF-8 once, and each reading object is
//! read straight into the [`Members`] slots of its names and checked before the next one is
//! read, so no tree of the body is built. Readings and problems come in the order of the body.

mod body;

use serde::de::DeserializeSeed;

use super::fields::Fields;
use super::lenient::Lenient;
use super::members::{slot_of_field, Members, KIND};
use super::problems::Problems;
use crate::model::kind::{
    EachKind, Head, KindInfo, Kinds, Presence, Value, Values, ALL, KINDS, MAX_FIELDS,
};
use crate::model::{Reading, ReadingIds, ReadingKind, ServiceName, TimestampMs};
use serde::Serialize;

pub use crate::model::reading::MAX_DURATION_MS;
/// How far ahead of our clock a reading's timestamp may be (clock skew), ms.
pub const MAX_FUTURE_SKEW_MS: i64 = 10 * 60 * 1000;

/// One problem with one field of one reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// Position of the reading in its list (JSON) or its line number from 0 (NDJSON).
    pub index: usize,
    /// `api` or `host`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// The field at fault.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The body is not JSON / NDJSON at all.
    Malformed(String),
    /// The body holds nothing.
    Empty,
    /// The body parsed, but some readings are invalid (the first ones listed, all counted).
    Invalid(Problems),
}

/// The window of acceptable timestamps and the time of receipt.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// When the request arrived: the default timestamp.
    pub now: TimestampMs,
    /// Oldest acceptable timestamp (now - retention).
    pub oldest: TimestampMs,
    /// Newest acceptable timestamp (now + clock skew).
    pub newest: TimestampMs,
}

impl Window {
    /// The window for a request arriving at `now` with `retention_ms` of retention.
    pub fn at(now: TimestampMs, retention_ms: i64) -> Self {
        Self {
            now,
            oldest: TimestampMs::from_millis(now.millis() - retention_ms),
            newest: TimestampMs::from_millis(now.millis() + MAX_FUTURE_SKEW_MS),
        }
    }
}

/// Parses a JSON object body `{"api": [...], "host": [...]}`, reading each reading as it
/// comes ([`body`]).
pub fn parse_json(body: &[u8], window: &Window) -> Result<Vec<Reading>, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let (readings, problems) = body::read(utf8(body)?, window)?;
    finish(readings, problems)
}

/// The body as text, checked once: serde_json then reads strings without checking each again.
fn utf8(body: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(body)
        .map_err(|e| ParseError::Malformed(format!("the body is not UTF-8: {e}")))
}

/// Parses an NDJSON body: one reading object per line with a `kind` field; blank lines are skipped.
pub fn parse_ndjson(body: &[u8], window: &Window) -> Result<Vec<Reading>, ParseError> {
    let mut readings = Vec::new();
    let mut problems = Problems::default();
    let mut members = Members::default();
    let mut ids = ReadingIds::at(window.now);
    let mut lines_seen = 0;
    for (index, line) in utf8(body)?.split('\n').enumerate() {
        if line.bytes().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        lines_seen += 1;
        let mut de = serde_json::Deserializer::from_str(line);
        let is_object = members
            .read()
            .deserialize(&mut de)
            .and_then(|is_object| de.end().map(|()| is_object))
            .map_err(|e| {
                ParseError::Malformed(format!("malformed JSON on line {}: {e}", index + 1))
            })?;
        if !is_object {
            problems.push(not_an_object(index, None));
            continue;
        }
        let kind = match members.take(KIND) {
            Some(Lenient::Str(name)) => KindInfo::named(&name),
            _ => None,
        };
        let Some(kind) = kind else {
            problems.push(FieldProblem {
                index,
                kind: None,
                field: "kind".into(),
                problem: format!("must be {}", kind_names(" or ")),
            });
            continue;
        };
        readings.extend(parse_reading(
            kind,
            &mut members,
            index,
            window,
            &mut ids,
            &mut problems,
        ));
    }
    if lines_seen == 0 {
        return Err(ParseError::Empty);
    }
    finish(readings, problems)
}

fn finish(readings: Vec<Reading>, problems: Problems) -> Result<Vec<Reading>, ParseError> {
    if problems.is_empty() {
        Ok(readings)
    } else {
        Err(ParseError::Invalid(problems))
    }
}

fn not_an_object(index: usize, kind: Option<&'static str>) -> FieldProblem {
    FieldProblem {
        index,
        kind,
        field: String::new(),
        problem: "a reading must be a JSON object".into(),
    }
}

/// Every kind's name, quoted, joined by `and`.
fn kind_names(and: &str) -> String {
    let names: Vec<String> = ALL.iter().map(|k| format!("\"{}\"", k.name)).collect();
    names.join(and)
}

/// Reads reading number `index` of kind `kind` from its members, or adds its problems.
fn parse_reading(
    kind: &'static KindInfo,
    members: &mut Members<'_>,
    index: usize,
    window: &Window,
    ids: &mut ReadingIds,
    problems: &mut Problems,
) -> Option<Reading> {
    let mut parse = ParseAs {
        kind,
        fields: Fields::new(members, index, kind.name, problems),
        window,
        ids,
        reading: None,
    };
    KINDS.each(&mut parse);
    let ParseAs {
        mut fields,
        reading,
        ..
    } = parse;
    fields.reject_unknown();
    reading.filter(|_| fields.is_clean())
}

/// Parses one reading as the kind `kind` names.
struct ParseAs<'k, 'a, 'body> {
    kind: &'static KindInfo,
    fields: Fields<'a, 'body>,
    window: &'k Window,
    ids: &'k mut ReadingIds,
    reading: Option<Reading>,
}

impl EachKind<'_, Kinds> for ParseAs<'_, '_, '_> {
    fn each<K: ReadingKind>(&mut self, _: &()) {
        if K::INFO.index == self.kind.index {
            self.reading =
                parse_kind::<K>(&mut self.fields, self.window, self.ids).map(K::into_reading);
        }
    }
}

/// One reading of kind `K`: `service`, the kind's fields, `timestamp`. Its id is fixed here.
fn parse_kind<K: ReadingKind>(
    f: &mut Fields<'_, '_>,
    window: &Window,
    ids: &mut ReadingIds,
) -> Option<K> {
    let declared = K::INFO.fields;
    let service = f.service(ServiceName::parse);
    let raw: [Option<Lenient<'_>>; MAX_FIELDS] = std::array::from_fn(|i| {
        (i < declared.len())
            .then(|| f.take(slot_of_field(K::INFO, i)))
            .flatten()
    });
    let timestamp = f.timestamp(window);
    let mut values = Values::default();
    let mut mistyped = [false; MAX_FIELDS];
    for (i, field) in declared.iter().enumerate() {
        let value = match f.typed(field, raw[i].as_ref()) {
            Some(value) => value,
            None => {
                mistyped[i] = true;
                Value::Absent
            }
        };
        values.push(match (value, field.presence) {
            (Value::Absent, Presence::Default(default)) => default,
            (value, _) => value,
        });
    }
    // The kind's rules run even when the head is wrong, so every problem is reported at once.
    let head_ok = service.is_some() && timestamp.is_some();
    let head = Head {
        id: ids.next_id(),
        service: service.unwrap_or_else(placeholder_service),
        timestamp: timestamp.unwrap_or(window.now),
    };
    match K::from_values(head, &values) {
        Ok(reading) => head_ok.then_some(reading),
        Err(errors) => {
            for (name, problem) in errors.0 {
                // A field of the wrong type was reported as such already.
                let at = declared.iter().position(|field| field.name == name);
                if !at.is_some_and(|i| mistyped[i]) {
                    f.problem(name, problem);
                }
            }
            None
        }
    }
}

/// Stands in for a missing or invalid service while the fields are checked.
fn placeholder_service() -> ServiceName {
    ServiceName::parse("-").expect("a valid name")
}

#[cfg(test)]
mod tests;
