//! The ingest wire format, written: the bodies `POST /v1/metrics` reads (`ingest::parse`),
//! derived from the same kind declarations, so a client and the collector cannot disagree on a
//! field's name or type.
//!
//! A reading is a JSON object: `service`, every field of its kind that is present (absent
//! optional fields are left out), and `timestamp` in epoch milliseconds. The reading's id is not
//! sent: the collector fixes ids when it accepts a body. A JSON body groups readings by kind
//! (`{"api": [...], "host": [...]}`); an NDJSON body carries one reading per line with its
//! `kind`.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::model::kind::{SeeKind, ALL};
use crate::model::{Reading, ReadingKind};

/// One reading as a body line; with `kind`, as an NDJSON line.
struct Line<'a, K> {
    reading: &'a K,
    kind: bool,
}

impl<K: ReadingKind> Serialize for Line<'_, K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.reading;
        let mut map = serializer.serialize_map(None)?;
        if self.kind {
            map.serialize_entry("kind", K::INFO.name)?;
        }
        map.serialize_entry("service", r.service().as_str())?;
        for (name, value) in r.present_fields() {
            map.serialize_entry(name, &value)?;
        }
        map.serialize_entry("timestamp", &r.timestamp().millis())?;
        map.end()
    }
}

/// A JSON body of readings of one kind: `{"<kind>": [...]}`.
#[derive(Debug, Clone, Copy)]
pub struct JsonBody<'a, K>(pub &'a [K]);

impl<K: ReadingKind> Serialize for JsonBody<'_, K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(K::INFO.name, &Lines(self.0))?;
        map.end()
    }
}

struct Lines<'a, K>(&'a [K]);

impl<K: ReadingKind> Serialize for Lines<'_, K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for reading in self.0 {
            seq.serialize_element(&Line {
                reading,
                kind: false,
            })?;
        }
        seq.end()
    }
}

/// A reading of any kind as a body line, through its own kind.
struct AnyLine<'a> {
    reading: &'a Reading,
    kind: bool,
}

impl Serialize for AnyLine<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct As<S: Serializer> {
            serializer: Option<S>,
            kind: bool,
            out: Option<Result<S::Ok, S::Error>>,
        }
        impl<S: Serializer> SeeKind for As<S> {
            fn see<K: ReadingKind>(&mut self, reading: &K) {
                if let Some(serializer) = self.serializer.take() {
                    let line = Line {
                        reading,
                        kind: self.kind,
                    };
                    self.out = Some(line.serialize(serializer));
                }
            }
        }
        let mut line = As {
            serializer: Some(serializer),
            kind: self.kind,
            out: None,
        };
        self.reading.see(&mut line);
        line.out.expect("every reading has a kind")
    }
}

/// A JSON body of readings of any kinds: `{"api": [...], "host": [...]}` (kinds without
/// readings left out).
#[derive(Debug, Clone, Copy)]
pub struct MixedBody<'a>(pub &'a [Reading]);

impl Serialize for MixedBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct OfKind<'a>(&'a [Reading], usize);
        impl Serialize for OfKind<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let of_kind = self.0.iter().filter(|r| r.kind().index == self.1);
                serializer.collect_seq(of_kind.map(|reading| AnyLine {
                    reading,
                    kind: false,
                }))
            }
        }
        let mut map = serializer.serialize_map(None)?;
        for kind in ALL {
            if self.0.iter().any(|r| r.kind().index == kind.index) {
                map.serialize_entry(kind.name, &OfKind(self.0, kind.index))?;
            }
        }
        map.end()
    }
}

/// An NDJSON body: one line per reading, each with its `kind`.
pub fn ndjson(readings: &[Reading]) -> Vec<u8> {
    let mut body = Vec::new();
    for reading in readings {
        // Plain data into a Vec cannot fail.
        serde_json::to_writer(
            &mut body,
            &AnyLine {
                reading,
                kind: true,
            },
        )
        .expect("a reading serializes");
        body.push(b'\n');
    }
    body
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ingest::{parse_json, parse_ndjson, Window};
    use crate::model::reading::sample;
    use crate::model::{
        ApiPath, ApiReading, HostGauges, HostReading, HttpMethod, InstanceName, ReadingId,
        ServiceName, StatusCode, TimestampMs,
    };

    const NOW: i64 = 1_700_000_000_000;

    fn window() -> Window {
        Window::at(TimestampMs::from_millis(NOW), 7 * 24 * 3_600_000)
    }

    fn api() -> impl Strategy<Value = Reading> {
        let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"];
        (
            "[a-z][a-z0-9-]{0,12}",
            "[a-z0-9.:-]{1,20}",
            0..methods.len(),
            "(/[a-z{}é0-9_-]{0,8}){1,4}",
            100i64..600,
            // Eighths of a millisecond: decimals that every JSON reader reads back exactly.
            (0u32..691_200_000).prop_map(|n| f64::from(n) / 8.0),
            1u32..=i32::MAX as u32,
            -3_600_000i64..600_000,
        )
            .prop_map(
                move |(service, instance, method, path, code, duration, count, age)| {
                    Reading::Api(ApiReading {
                        id: ReadingId::new(),
                        service: ServiceName::parse(&service).unwrap(),
                        instance: InstanceName::parse(&instance).unwrap(),
                        method: HttpMethod::parse(methods[method]).unwrap(),
                        path: ApiPath::parse(&path).unwrap(),
                        code: StatusCode::parse(code).unwrap(),
                        duration_ms: duration,
                        count,
                        timestamp: TimestampMs::from_millis(NOW + age),
                    })
                },
            )
    }

    fn host() -> impl Strategy<Value = Reading> {
        let bytes = || proptest::option::of(0i64..i64::MAX);
        (
            "[a-z][a-z0-9-]{0,12}",
            (
                proptest::option::of((0u32..51_200).prop_map(|n| f64::from(n) / 8.0)),
                bytes(),
                bytes(),
            ),
            (bytes(), bytes(), proptest::option::of(any::<bool>())),
            (bytes(), bytes(), bytes()),
        )
            .prop_filter_map(
                "a host reading has a gauge",
                |(
                    service,
                    (cpu, mem_used, mem_total),
                    (disk_used, disk_total, up),
                    (heap, alloc, freed),
                )| {
                    let gauges = HostGauges {
                        cpu_percent: cpu,
                        mem_used_bytes: mem_used,
                        mem_total_bytes: mem_total,
                        disk_used_bytes: disk_used,
                        disk_total_bytes: disk_total,
                        available: up,
                        heap_bytes: heap,
                        allocated_bytes: alloc,
                        freed_bytes: freed,
                    };
                    (gauges != HostGauges::default()).then(|| {
                        Reading::Host(HostReading {
                            id: ReadingId::new(),
                            service: ServiceName::parse(&service).unwrap(),
                            instance: InstanceName::parse("host-1").unwrap(),
                            timestamp: TimestampMs::from_millis(NOW),
                            gauges,
                        })
                    })
                },
            )
    }

    /// The readings as the collector would store them: with the ids it fixed.
    fn with_ids_of(parsed: &[Reading], sent: &[Reading]) -> Vec<Reading> {
        sent.iter()
            .zip(parsed)
            .map(|(sent, parsed)| match (sent.clone(), parsed) {
                (Reading::Api(r), Reading::Api(p)) => Reading::Api(ApiReading { id: p.id, ..r }),
                (Reading::Host(r), Reading::Host(p)) => {
                    Reading::Host(HostReading { id: p.id, ..r })
                }
                (sent, _) => sent,
            })
            .collect()
    }

    proptest! {
        #[test]
        fn what_a_client_writes_the_server_reads_back(
            readings in proptest::collection::vec(prop_oneof![api(), host()], 1..20)
        ) {
            let ndjson = parse_ndjson(&ndjson(&readings), &window()).unwrap();
            prop_assert_eq!(&ndjson, &with_ids_of(&ndjson, &readings));

            let body = serde_json::to_vec(&MixedBody(&readings)).unwrap();
            let json = parse_json(&body, &window()).unwrap();
            // A JSON body groups its readings by kind.
            let mut grouped = readings.clone();
            grouped.sort_by_key(|r| r.kind().index);
            prop_assert_eq!(&json, &with_ids_of(&json, &grouped));
        }
    }

    #[test]
    fn a_one_kind_body_is_keyed_by_the_kind_and_leaves_absent_gauges_out() {
        let reading = HostReading {
            gauges: HostGauges {
                cpu_percent: Some(12.5),
                ..HostGauges::default()
            },
            ..sample::host()
        };
        let body = serde_json::to_value(JsonBody(std::slice::from_ref(&reading))).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"host": [{"service": "svc", "instance": "h-1",
                "cpu_percent": 12.5, "timestamp": sample::AT_MS}]})
        );
    }
}
