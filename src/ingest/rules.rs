//! The rules a reading's values must meet, whatever format it arrived in: our JSON (`parse`),
//! or a foreign format converted at the edge (`crate::foreign`). A kind's own rules are declared
//! with the kind ([`ReadingKind::from_values`]); what is checked here is what depends on the
//! request: the time window.

use super::parse::{FieldProblem, Window};
use super::problems::Problems;
use crate::model::kind::{Head, SeeKind};
use crate::model::{Reading, ReadingKind, TimestampMs};

pub use crate::model::reading::MAX_DURATION_MS;

/// A reading's time: within the window of acceptable timestamps. A refusal quotes the value as
/// it was `received`: a value outside the calendar (`9223372036854775807`) has no date to show.
/// `received` runs only on a refusal: describing every accepted timestamp (two dates formatted)
/// was the largest single cost of parsing a body.
pub fn timestamp(
    at: TimestampMs,
    window: &Window,
    received: impl FnOnce() -> String,
) -> Result<TimestampMs, String> {
    if at < window.oldest {
        Err(format!(
            "{} is older than the retention (oldest accepted: {})",
            received(),
            window.oldest.to_rfc3339()
        ))
    } else if at > window.newest {
        Err(format!(
            "{} is too far in the future (newest accepted: {})",
            received(),
            window.newest.to_rfc3339()
        ))
    } else {
        Ok(at)
    }
}

/// Epoch milliseconds as received, with the date when the calendar has one.
pub fn describe_millis(at: TimestampMs) -> String {
    if at.to_datetime().timestamp_millis() == at.millis() {
        format!("{} (epoch ms, {})", at.millis(), at.to_rfc3339())
    } else {
        format!("{} (epoch ms)", at.millis())
    }
}

/// Every problem of readings built outside our JSON parser (their names are valid by type),
/// with `index` the reading's position in `readings`: the kind's own rules
/// ([`ReadingKind::from_values`], the same check a parsed body gets) and the time window.
pub fn check(readings: &[Reading], window: &Window) -> Problems {
    let mut problems = Problems::default();
    for (index, reading) in readings.iter().enumerate() {
        let mut faults = Faults {
            window,
            faults: Vec::new(),
        };
        reading.see(&mut faults);
        for (field, problem) in faults.faults {
            problems.push(FieldProblem {
                index,
                kind: Some(reading.kind().name),
                field: field.to_owned(),
                problem,
            });
        }
    }
    problems
}

/// The broken rules of one reading, as `(field, problem)`.
struct Faults<'w> {
    window: &'w Window,
    faults: Vec<(&'static str, String)>,
}

impl SeeKind for Faults<'_> {
    fn see<K: ReadingKind>(&mut self, reading: &K) {
        let at = reading.timestamp();
        let head = Head {
            id: reading.id(),
            service: reading.service().clone(),
            timestamp: at,
        };
        if let Err(errors) = K::from_values(head, &reading.values()) {
            self.faults.extend(errors.0);
        }
        if let Err(problem) = timestamp(at, self.window, || describe_millis(at)) {
            self.faults.push(("timestamp", problem));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        ApiPath, ApiReading, HostGauges, HostReading, HttpMethod, InstanceName, ReadingId,
        ServiceName, StatusCode,
    };

    const NOW: i64 = 1_700_000_000_000;

    fn window() -> Window {
        Window::at(TimestampMs::from_millis(NOW), 3_600_000)
    }

    fn api(duration_ms: f64, count: u32, at: i64) -> Reading {
        Reading::Api(ApiReading {
            id: ReadingId::new(),
            service: ServiceName::parse("s").unwrap(),
            instance: InstanceName::parse("i").unwrap(),
            method: HttpMethod::parse("GET").unwrap(),
            path: ApiPath::parse("/").unwrap(),
            code: StatusCode::parse(200).unwrap(),
            duration_ms,
            count,
            timestamp: TimestampMs::from_millis(at),
        })
    }

    fn host(gauges: HostGauges) -> Reading {
        Reading::Host(HostReading {
            id: ReadingId::new(),
            service: ServiceName::parse("s").unwrap(),
            instance: InstanceName::parse("i").unwrap(),
            timestamp: TimestampMs::from_millis(NOW),
            gauges,
        })
    }

    #[test]
    fn built_readings_meet_the_same_rules_as_parsed_ones() {
        let ok_host = host(HostGauges {
            available: Some(true),
            ..HostGauges::default()
        });
        assert!(check(&[api(1.0, 1, NOW), ok_host], &window()).is_empty());
        let bad = [
            api(-1.0, 0, NOW + 3_600_000),
            host(HostGauges::default()),
            host(HostGauges {
                mem_used_bytes: Some(-5),
                ..HostGauges::default()
            }),
        ];
        let problems: Vec<(usize, String)> = check(&bad, &window())
            .into_iter()
            .map(|p| (p.index, p.field))
            .collect();
        let expected = [
            (0, "duration_ms"),
            (0, "count"),
            (0, "timestamp"),
            (1, "gauges"),
            (2, "mem_used_bytes"),
        ];
        assert_eq!(problems, expected.map(|(i, f)| (i, f.to_owned())).to_vec());
    }
}
