//! The rules a reading's values must meet, whatever format it arrived in: our JSON (`parse`),
//! or a foreign format converted at the edge (`crate::foreign`). Names are checked by their
//! types' `parse`; the numbers and the time are checked here, once.

use super::parse::{FieldProblem, Window};
use super::problems::Problems;
use crate::model::{ApiReading, HostGauges, HostReading, Reading, TimestampMs};

/// The longest a single reading may claim to have taken: one day, in ms.
pub const MAX_DURATION_MS: f64 = 86_400_000.0;

/// A request duration in ms: from 0 to [`MAX_DURATION_MS`].
pub fn duration_ms(d: f64) -> Result<f64, String> {
    if (0.0..=MAX_DURATION_MS).contains(&d) {
        Ok(d)
    } else {
        Err(format!("must be from 0 to {MAX_DURATION_MS} ms, got {d}"))
    }
}

/// How many requests a reading stands for: 1 to `i32::MAX` (a CQL `int`).
pub fn count(n: i64) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(n) if n >= 1 && i32::try_from(n).is_ok() => Ok(n),
        _ => Err(format!(
            "must be a whole number from 1 to {}, got {n}",
            i32::MAX
        )),
    }
}

/// CPU usage in percent: not negative (up to 100 per core).
pub fn cpu_percent(v: f64) -> Result<f64, String> {
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must not be negative, got {v}"))
    }
}

/// A byte count: not negative.
pub fn bytes(n: i64) -> Result<i64, String> {
    if n >= 0 {
        Ok(n)
    } else {
        Err(format!("must not be negative, got {n}"))
    }
}

/// The problem of a host reading without any gauge.
pub const NO_GAUGE: &str = "at least one of cpu_percent, mem_used_bytes, mem_total_bytes, \
     disk_used_bytes, disk_total_bytes, available, heap_bytes, allocated_bytes, freed_bytes is required";

/// A reading's time: within the window of acceptable timestamps. A refusal quotes the value as
/// it was `received`: a value outside the calendar (`9223372036854775807`) has no date to show.
pub fn timestamp(at: TimestampMs, window: &Window, received: &str) -> Result<TimestampMs, String> {
    if at < window.oldest {
        Err(format!(
            "{received} is older than the retention (oldest accepted: {})",
            window.oldest.to_rfc3339()
        ))
    } else if at > window.newest {
        Err(format!(
            "{received} is too far in the future (newest accepted: {})",
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
/// with `index` the reading's position in `readings`.
pub fn check(readings: &[Reading], window: &Window) -> Problems {
    let mut problems = Problems::default();
    for (index, reading) in readings.iter().enumerate() {
        let (kind, faults) = match reading {
            Reading::Api(r) => ("api", api_faults(r, window)),
            Reading::Host(r) => ("host", host_faults(r, window)),
        };
        for (field, problem) in faults {
            problems.push(FieldProblem {
                index,
                kind: Some(kind),
                field: field.to_owned(),
                problem,
            });
        }
    }
    problems
}

fn api_faults(r: &ApiReading, window: &Window) -> Vec<(&'static str, String)> {
    [
        ("duration_ms", duration_ms(r.duration_ms).err()),
        ("count", count(i64::from(r.count)).err()),
        (
            "timestamp",
            timestamp(r.timestamp, window, &describe_millis(r.timestamp)).err(),
        ),
    ]
    .into_iter()
    .filter_map(|(field, problem)| problem.map(|p| (field, p)))
    .collect()
}

fn host_faults(r: &HostReading, window: &Window) -> Vec<(&'static str, String)> {
    let g = &r.gauges;
    let received = describe_millis(r.timestamp);
    let mut faults = vec![("timestamp", timestamp(r.timestamp, window, &received).err())];
    faults.push((
        "cpu_percent",
        g.cpu_percent.and_then(|v| cpu_percent(v).err()),
    ));
    for (field, value) in [
        ("mem_used_bytes", g.mem_used_bytes),
        ("mem_total_bytes", g.mem_total_bytes),
        ("disk_used_bytes", g.disk_used_bytes),
        ("disk_total_bytes", g.disk_total_bytes),
        ("heap_bytes", g.heap_bytes),
        ("allocated_bytes", g.allocated_bytes),
        ("freed_bytes", g.freed_bytes),
    ] {
        faults.push((field, value.and_then(|n| bytes(n).err())));
    }
    if *g == HostGauges::default() {
        faults.push(("gauges", Some(NO_GAUGE.to_owned())));
    }
    faults
        .into_iter()
        .filter_map(|(field, problem)| problem.map(|p| (field, p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiPath, HttpMethod, InstanceName, ReadingId, ServiceName, StatusCode};

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
