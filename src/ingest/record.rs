//! The WAL payload of one accepted request: a version byte, then [`Accepted`] in postcard (a
//! compact, stable serde format).
//!
//! Format 2 ([`dictionary`]) writes each name once per record and a reading as indexes into
//! them, a quarter of format 1's bytes; format 1 wrote [`Accepted`] as it is. Every payload is
//! written in format 2; format 1 is still read, so a WAL (or a quarantined item) written by an
//! older version replays.

mod dictionary;

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

/// Format 1: [`Accepted`] as serde lays it out (no longer written).
const FORMAT_V1: u8 = 1;
/// Format 2: names once per record ([`dictionary`]).
const FORMAT_V2: u8 = 2;

/// A payload that cannot be decoded: the WAL's CRC matched, so this means a format we do not know.
#[derive(Debug, thiserror::Error)]
#[error("WAL record cannot be decoded: {0}")]
pub struct RecordError(String);

/// Encodes an accepted request into a WAL payload.
pub fn encode(accepted: &Accepted) -> Vec<u8> {
    // Serialized straight after the version byte, into room for the usual size, not a buffer
    // grown (and copied) a dozen times.
    let mut payload = Vec::with_capacity(64 + accepted.readings.len() * USUAL_READING_BYTES);
    payload.push(FORMAT_V2);
    dictionary::encode_into(accepted, payload)
}

/// Room reserved per reading in a payload: an API reading of a request whose ids count up takes
/// 20-24 bytes, its names counted once per record.
const USUAL_READING_BYTES: usize = 24;

/// Decodes a WAL payload written by [`encode`].
pub fn decode(payload: &[u8]) -> Result<Accepted, RecordError> {
    match payload.split_first() {
        Some((&FORMAT_V2, body)) => dictionary::decode(body),
        Some((&FORMAT_V1, body)) => {
            postcard::from_bytes(body).map_err(|e| RecordError(e.to_string()))
        }
        Some((version, _)) => Err(RecordError(format!("unknown format version {version}"))),
        None => Err(RecordError("empty payload".into())),
    }
}

/// How many readings a payload written by [`encode`] holds, read from its first bytes only
/// (the version, the time, then the readings' count, in both formats), so a payload damaged
/// further on still tells: the WAL's repair counts what it drops with this. `None` for an
/// unknown version or a start too damaged to read.
pub fn reading_count(payload: &[u8]) -> Option<u64> {
    match payload.split_first() {
        // Format 1's sequence length is encoded as a varint, exactly like a u64.
        Some((&FORMAT_V1 | &FORMAT_V2, body)) => {
            postcard::take_from_bytes::<(TimestampMs, u64)>(body)
                .ok()
                .map(|((_, count), _)| count)
        }
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

    /// `accepted` in format 1, as versions before format 2 wrote it.
    fn encode_v1(accepted: &Accepted) -> Vec<u8> {
        let mut payload = vec![FORMAT_V1];
        payload.extend(postcard::to_allocvec(accepted).unwrap());
        payload
    }

    /// A request's readings as the API makes them: names parsed once per reading (so interned),
    /// ids counting up from one draw.
    fn request(readings: usize) -> Accepted {
        let at = TimestampMs::from_millis(1_700_000_000_000);
        let mut ids = ReadingIds::at(at);
        let readings = (0..readings)
            .map(|i| {
                Reading::Api(ApiReading {
                    id: ids.next_id(),
                    service: ServiceName::parse(["checkout", "payments"][i % 2]).unwrap(),
                    instance: InstanceName::parse(&format!("checkout-{}", i % 6)).unwrap(),
                    method: HttpMethod::parse("GET").unwrap(),
                    path: ApiPath::parse(&format!("/v1/orders/{}", i % 20)).unwrap(),
                    code: StatusCode::parse(200).unwrap(),
                    duration_ms: 12.5 + i as f64,
                    count: 1,
                    timestamp: TimestampMs::from_millis(at.millis() - 300_000 + i as i64),
                })
            })
            .collect();
        Accepted { at, readings }
    }

    proptest! {
        #[test]
        fn format_1_payloads_still_decode(readings in proptest::collection::vec(prop_oneof![api_reading(), host_reading()], 0..20)) {
            let accepted = Accepted { at: TimestampMs::from_millis(1_700_000_000_000), readings };
            let payload = encode_v1(&accepted);
            prop_assert_eq!(reading_count(&payload), Some(accepted.readings.len() as u64));
            prop_assert_eq!(decode(&payload).unwrap(), accepted);
        }
    }

    #[test]
    fn a_request_costs_under_a_third_of_format_1() {
        let accepted = request(1000);
        let (v1, v2) = (encode_v1(&accepted).len(), encode(&accepted).len());
        assert!(v2 * 3 <= v1, "format 2 {v2} bytes against format 1 {v1}");
        assert!(v2 < 1000 * 24, "{v2} bytes for 1000 readings");
        assert_eq!(decode(&encode(&accepted)).unwrap(), accepted);
    }

    #[test]
    fn damaged_format_2_payloads_are_errors_not_panics() {
        let payload = encode(&request(50));
        for cut in 1..payload.len() {
            assert!(decode(&payload[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = payload.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err(), "bytes past the last reading");
        // Every single-byte change decodes to an error or to some readings, never panics.
        for at in 1..payload.len() {
            let mut damaged = payload.clone();
            damaged[at] ^= 0x5a;
            let _ = decode(&damaged);
        }
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[9, 1, 2]).is_err());
        assert!(decode(&[FORMAT_V1, 0xff, 0xff]).is_err());
    }
}
