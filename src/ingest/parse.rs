//! Turns a request body into validated readings, or into the list of every problem in it.
//!
//! Two encodings: a JSON object `{"api": [...], "host": [...]}`, and NDJSON with one reading per
//! line carrying `"kind": "api"` or `"host"`. A body with any problem is refused whole: nothing
//! is half-accepted. Problems name the reading (`index`: its position in its list, or its line
//! for NDJSON), its `kind`, the `field` and what is wrong.

use super::fields::Fields;
use super::lenient::{take, Lenient, Object};
use super::problems::Problems;
use super::rules;
use crate::model::{
    ApiPath, ApiReading, HostGauges, HostReading, HttpMethod, InstanceName, Reading, ReadingId,
    ServiceName, StatusCode, TimestampMs,
};
use serde::Serialize;

pub use super::rules::MAX_DURATION_MS;
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

/// Parses a JSON object body `{"api": [...], "host": [...]}`.
pub fn parse_json(body: &[u8], window: &Window) -> Result<Vec<Reading>, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let value: Lenient = serde_json::from_slice(body)
        .map_err(|e| ParseError::Malformed(format!("malformed JSON: {e}")))?;
    let Lenient::Object(mut top) = value else {
        return Err(ParseError::Malformed(
            "the body must be a JSON object {\"api\": [...], \"host\": [...]}".into(),
        ));
    };
    let mut readings = Vec::new();
    let mut problems = Problems::default();
    // Problems come in key order, as they did when objects were sorted maps.
    top.sort_by(|(a, _), (b, _)| a.cmp(b));
    for (key, list) in top {
        if let Lenient::Repeated = list {
            problems.push(FieldProblem {
                index: 0,
                kind: None,
                field: key.into_owned(),
                problem: "given more than once".into(),
            });
            continue;
        }
        let kind = match key.as_ref() {
            "api" => "api",
            "host" => "host",
            other => {
                problems.push(FieldProblem {
                    index: 0,
                    kind: None,
                    field: other.to_owned(),
                    problem: "unknown top-level key; expected \"api\" and/or \"host\"".into(),
                });
                continue;
            }
        };
        let Lenient::Array(items) = list else {
            problems.push(FieldProblem {
                index: 0,
                kind: Some(kind),
                field: kind.to_owned(),
                problem: "must be an array of readings".into(),
            });
            continue;
        };
        for (index, item) in items.into_iter().enumerate() {
            match item {
                Lenient::Object(object) => {
                    readings.extend(parse_reading(kind, object, index, window, &mut problems))
                }
                _ => problems.push(not_an_object(index, Some(kind))),
            }
        }
    }
    finish(readings, problems)
}

/// Parses an NDJSON body: one reading object per line with a `kind` field; blank lines are skipped.
pub fn parse_ndjson(body: &[u8], window: &Window) -> Result<Vec<Reading>, ParseError> {
    let mut readings = Vec::new();
    let mut problems = Problems::default();
    let mut lines_seen = 0;
    for (index, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        lines_seen += 1;
        let mut object = match serde_json::from_slice::<Lenient>(line) {
            Ok(Lenient::Object(object)) => object,
            Ok(_) => {
                problems.push(not_an_object(index, None));
                continue;
            }
            Err(e) => {
                return Err(ParseError::Malformed(format!(
                    "malformed JSON on line {}: {e}",
                    index + 1
                )))
            }
        };
        let kind = match take(&mut object, "kind") {
            Some(Lenient::Str(k)) if k == "api" => "api",
            Some(Lenient::Str(k)) if k == "host" => "host",
            _ => {
                problems.push(FieldProblem {
                    index,
                    kind: None,
                    field: "kind".into(),
                    problem: "must be \"api\" or \"host\"".into(),
                });
                continue;
            }
        };
        readings.extend(parse_reading(kind, object, index, window, &mut problems));
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

fn parse_reading(
    kind: &'static str,
    object: Object<'_>,
    index: usize,
    window: &Window,
    problems: &mut Problems,
) -> Option<Reading> {
    let mut fields = Fields::new(object, index, kind, problems);
    let reading = match kind {
        "api" => parse_api(&mut fields, window).map(Reading::Api),
        _ => parse_host(&mut fields, window).map(Reading::Host),
    };
    fields.reject_unknown();
    reading.filter(|_| fields.is_clean())
}

fn parse_api(f: &mut Fields<'_, '_>, window: &Window) -> Option<ApiReading> {
    let service = f.required_text("service", ServiceName::parse);
    let instance = f.required_text("instance", InstanceName::parse);
    let method = f.required_text("method", HttpMethod::parse);
    let path = f.required_text("path", ApiPath::parse);
    let code = f.required_integer("code", StatusCode::parse);
    let duration_ms = f.required_number("duration_ms", rules::duration_ms);
    let count = f.optional_integer("count", rules::count);
    let timestamp = f.timestamp(window);
    Some(ApiReading {
        id: ReadingId::new(),
        service: service?,
        instance: instance?,
        method: method?,
        path: path?,
        code: code?,
        duration_ms: duration_ms?,
        count: count?.unwrap_or(1),
        timestamp: timestamp?,
    })
}

fn parse_host(f: &mut Fields<'_, '_>, window: &Window) -> Option<HostReading> {
    let service = f.required_text("service", ServiceName::parse);
    let instance = f.required_text("instance", InstanceName::parse);
    let timestamp = f.timestamp(window);
    let cpu_percent = f.optional_number("cpu_percent", rules::cpu_percent);
    let bytes = rules::bytes;
    let mem_used_bytes = f.optional_integer("mem_used_bytes", bytes);
    let mem_total_bytes = f.optional_integer("mem_total_bytes", bytes);
    let disk_used_bytes = f.optional_integer("disk_used_bytes", bytes);
    let disk_total_bytes = f.optional_integer("disk_total_bytes", bytes);
    let available = f.optional_bool("available");
    let heap_bytes = f.optional_integer("heap_bytes", bytes);
    let allocated_bytes = f.optional_integer("allocated_bytes", bytes);
    let freed_bytes = f.optional_integer("freed_bytes", bytes);
    let gauges = HostGauges {
        cpu_percent: cpu_percent?,
        mem_used_bytes: mem_used_bytes?,
        mem_total_bytes: mem_total_bytes?,
        disk_used_bytes: disk_used_bytes?,
        disk_total_bytes: disk_total_bytes?,
        available: available?,
        heap_bytes: heap_bytes?,
        allocated_bytes: allocated_bytes?,
        freed_bytes: freed_bytes?,
    };
    if gauges == HostGauges::default() {
        f.problem("gauges", rules::NO_GAUGE);
        return None;
    }
    Some(HostReading {
        id: ReadingId::new(),
        service: service?,
        instance: instance?,
        timestamp: timestamp?,
        gauges,
    })
}

#[cfg(test)]
mod tests;
