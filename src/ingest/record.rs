//! The WAL payload of one accepted request: a version byte, then [`Accepted`] in postcard (a
//! compact, stable serde format).

use serde::{Deserialize, Serialize};

use crate::model::{Reading, TimestampMs};

/// One accepted request, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    /// When it was accepted: the flusher reports its lag from this.
    pub at: TimestampMs,
    /// The validated readings, ids fixed.
    pub readings: Vec<Reading>,
}

/// The payload format version; bumped if the layout of [`Reading`] ever changes.
const FORMAT_V1: u8 = 1;

/// A payload that cannot be decoded: the WAL's CRC matched, so this means a format we do not know.
#[derive(Debug, thiserror::Error)]
#[error("WAL record cannot be decoded: {0}")]
pub struct RecordError(String);

/// Encodes an accepted request into a WAL payload.
pub fn encode(accepted: &Accepted) -> Vec<u8> {
    // Serialized straight after the version byte, not into a second buffer that is then
    // copied, and into room for the usual size, not a buffer grown (and copied) a dozen times.
    // Serializing plain data into a Vec cannot fail.
    let mut payload = Vec::with_capacity(1 + accepted.readings.len() * USUAL_READING_BYTES);
    payload.push(FORMAT_V1);
    postcard::to_extend(accepted, payload).expect("readings serialize")
}

/// Room reserved per reading in a payload: an API reading with names of a few dozen characters
/// takes 80-90 bytes (the ingest bench's WAL: 17.2 MiB for 200,000 readings).
const USUAL_READING_BYTES: usize = 96;

/// Decodes a WAL payload written by [`encode`].
pub fn decode(payload: &[u8]) -> Result<Accepted, RecordError> {
    match payload.split_first() {
        Some((&FORMAT_V1, body)) => {
            postcard::from_bytes(body).map_err(|e| RecordError(e.to_string()))
        }
        Some((version, _)) => Err(RecordError(format!("unknown format version {version}"))),
        None => Err(RecordError("empty payload".into())),
    }
}

/// How many readings a payload written by [`encode`] holds, read from its first bytes only
/// (the version, the time, then the readings' count), so a payload damaged further on still
/// tells: the WAL's repair counts what it drops with this. `None` for an unknown version or a
/// start too damaged to read.
pub fn reading_count(payload: &[u8]) -> Option<u64> {
    match payload.split_first() {
        // A sequence's length is encoded as a varint, exactly like a u64.
        Some((&FORMAT_V1, body)) => postcard::take_from_bytes::<(TimestampMs, u64)>(body)
            .ok()
            .map(|((_, count), _)| count),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::*;

    fn api_reading() -> impl Strategy<Value = Reading> {
        (
            "[a-z]{1,12}",
            "[a-z0-9.-]{1,20}",
            100u16..600,
            0.0f64..1e6,
            1u32..1000,
            0i64..4_000_000_000_000,
        )
            .prop_map(|(service, instance, code, duration_ms, count, at)| {
                Reading::Api(ApiReading {
                    id: ReadingId::new(),
                    service: ServiceName::parse(&service).unwrap(),
                    instance: InstanceName::parse(&instance).unwrap(),
                    method: HttpMethod::parse("POST").unwrap(),
                    path: ApiPath::parse(&format!("/{service}")).unwrap(),
                    code: StatusCode::parse(i64::from(code)).unwrap(),
                    duration_ms,
                    count,
                    timestamp: TimestampMs::from_millis(at),
                })
            })
    }

    fn host_reading() -> impl Strategy<Value = Reading> {
        (
            "[a-z]{1,12}",
            proptest::option::of(0.0f64..400.0),
            proptest::option::of(0i64..i64::MAX),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(service, cpu, mem, available)| {
                Reading::Host(HostReading {
                    id: ReadingId::new(),
                    service: ServiceName::parse(&service).unwrap(),
                    instance: InstanceName::parse("host-1").unwrap(),
                    timestamp: TimestampMs::from_millis(1_700_000_000_000),
                    gauges: HostGauges {
                        cpu_percent: cpu,
                        mem_used_bytes: mem,
                        available,
                        ..HostGauges::default()
                    },
                })
            })
    }

    proptest! {
        #[test]
        fn payloads_round_trip(readings in proptest::collection::vec(prop_oneof![api_reading(), host_reading()], 0..50)) {
            let accepted = Accepted { at: TimestampMs::from_millis(1_700_000_000_000), readings };
            prop_assert_eq!(decode(&encode(&accepted)).unwrap(), accepted);
        }
    }

    #[test]
    fn reading_counts_come_from_the_start_of_a_payload() {
        let readings: Vec<Reading> = (0..300)
            .map(|i| {
                Reading::Host(HostReading {
                    id: ReadingId::new(),
                    service: ServiceName::parse("svc").unwrap(),
                    instance: InstanceName::parse("host-1").unwrap(),
                    timestamp: TimestampMs::from_millis(1_700_000_000_000 + i),
                    gauges: HostGauges {
                        cpu_percent: Some(i as f64),
                        ..HostGauges::default()
                    },
                })
            })
            .collect();
        let accepted = Accepted {
            at: TimestampMs::from_millis(1_700_000_000_000),
            readings,
        };
        let mut payload = encode(&accepted);
        assert_eq!(reading_count(&payload), Some(300));
        // Damage past the head does not hide the count.
        let last = payload.len() - 1;
        payload[last] ^= 0xff;
        payload.truncate(last - 100);
        assert!(decode(&payload).is_err());
        assert_eq!(reading_count(&payload), Some(300));
        assert_eq!(reading_count(&[9, 1, 2]), None);
        assert_eq!(reading_count(&[FORMAT_V1]), None);
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[9, 1, 2]).is_err());
        assert!(decode(&[FORMAT_V1, 0xff, 0xff]).is_err());
    }
}
