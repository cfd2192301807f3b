//! Payload format 2: each name once per record, readings as indexes into it.
//!
//! A request's readings repeat a handful of names (services, instances, methods, paths), and
//! their ids count up from one draw (`model::ReadingIds`). Format 1 wrote every reading whole:
//! its four names and its 16-byte id, about 88 of its ~90 bytes in the ingest bench. Here a
//! record lists each distinct name once, per kind of name, and a reading holds its names'
//! indexes, its time as an offset from the record's, and its id as the step from the previous
//! reading's (1 for ids of one request): about 22 bytes. The WAL then writes, checksums, reads
//! and fsyncs a quarter of the bytes, a WAL chunk (a rollup piece, `rollup::chunk`) holds four
//! times the readings, and decoding interns each name once per record instead of once per
//! reading.
//!
//! Layout (postcard): the record's time, the number of readings (where format 1 has its
//! readings' length, so [`super::reading_count`] reads both alike), the services, instances,
//! methods and paths, then the readings as a sequence of [`Row`].
//!
//! Names are keyed by the address of their text: names parsed from one request share one
//! interned copy (`model::intern`), so a lookup hashes a pointer, not the text. Two copies of
//! the same text only cost a second entry. Decoding checks every index and the count.

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use super::{Accepted, RecordError};
use crate::model::{
    ApiPath, ApiReading, HostGauges, HostReading, HttpMethod, InstanceName, Reading, ReadingId,
    ServiceName, StatusCode, TimestampMs,
};

/// One reading, its names as indexes into the record's lists.
#[derive(Debug, Serialize, Deserialize)]
enum Row {
    Api {
        service: u32,
        instance: u32,
        method: u32,
        path: u32,
        code: StatusCode,
        duration_ms: f64,
        count: u32,
        /// Its timestamp minus the record's time.
        since: i64,
        /// Its id minus the previous reading's (the first: minus zero), wrapping.
        id_step: u128,
    },
    Host {
        service: u32,
        instance: u32,
        since: i64,
        id_step: u128,
        gauges: HostGauges,
    },
}

/// The distinct values of one kind of name in first-seen order, keyed by their text's address.
struct Names<'a, T> {
    index: HashMap<(usize, usize), u32>,
    list: Vec<&'a T>,
}

impl<'a, T> Names<'a, T> {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            index: HashMap::with_capacity(capacity),
            list: Vec::with_capacity(capacity),
        }
    }

    /// The index of `name`, whose text is `text`.
    fn of(&mut self, name: &'a T, text: &str) -> u32 {
        let key = (text.as_ptr() as usize, text.len());
        *self.index.entry(key).or_insert_with(|| {
            self.list.push(name);
            (self.list.len() - 1) as u32
        })
    }
}

/// Appends `accepted` in this format to `payload` (which holds the version byte).
pub(super) fn encode_into(accepted: &Accepted, payload: Vec<u8>) -> Vec<u8> {
    let readings = &accepted.readings;
    let mut services = Names::with_capacity(16);
    let mut instances = Names::with_capacity(64);
    let mut methods = Names::with_capacity(8);
    let mut paths = Names::with_capacity(64);
    let mut previous = 0u128;
    let at = accepted.at.millis();
    let rows: Vec<Row> = readings
        .iter()
        .map(|reading| {
            let mut step = |id: ReadingId| {
                let id = id.uuid().as_u128();
                let step = id.wrapping_sub(previous);
                previous = id;
                step
            };
            match reading {
                Reading::Api(r) => Row::Api {
                    service: services.of(&r.service, r.service.as_str()),
                    instance: instances.of(&r.instance, r.instance.as_str()),
                    method: methods.of(&r.method, r.method.as_str()),
                    path: paths.of(&r.path, r.path.as_str()),
                    code: r.code,
                    duration_ms: r.duration_ms,
                    count: r.count,
                    since: r.timestamp.millis().wrapping_sub(at),
                    id_step: step(r.id),
                },
                Reading::Host(r) => Row::Host {
                    service: services.of(&r.service, r.service.as_str()),
                    instance: instances.of(&r.instance, r.instance.as_str()),
                    since: r.timestamp.millis().wrapping_sub(at),
                    id_step: step(r.id),
                    gauges: r.gauges.clone(),
                },
            }
        })
        .collect();
    let record = (
        accepted.at,
        readings.len() as u64,
        &services.list,
        &instances.list,
        &methods.list,
        &paths.list,
        &rows,
    );
    // Serializing plain data into a Vec cannot fail.
    postcard::to_extend(&record, payload).expect("readings serialize")
}

/// The record's lists of names.
type Head = (
    TimestampMs,
    u64,
    Vec<ServiceName>,
    Vec<InstanceName>,
    Vec<HttpMethod>,
    Vec<ApiPath>,
);

/// Decodes a payload body (after the version byte) written by [`encode_into`].
pub(super) fn decode(body: &[u8]) -> Result<Accepted, RecordError> {
    let ((at, count, services, instances, methods, paths), rest): (Head, _) =
        postcard::take_from_bytes(body).map_err(RecordError::from)?;
    let (len, mut rest) = postcard::take_from_bytes::<u64>(rest).map_err(RecordError::from)?;
    if len != count {
        return Err(RecordError(format!(
            "the record declares {count} readings and holds {len}"
        )));
    }
    // A row takes at least a few bytes: a damaged count cannot make us allocate much.
    let mut readings = Vec::with_capacity((count as usize).min(rest.len()));
    let mut id = 0u128;
    let time = |since: i64| TimestampMs::from_millis(at.millis().wrapping_add(since));
    for _ in 0..count {
        let (row, next) = postcard::take_from_bytes::<Row>(rest).map_err(RecordError::from)?;
        rest = next;
        let mut next_id = |step: u128| {
            id = id.wrapping_add(step);
            ReadingId::from_uuid(uuid::Uuid::from_u128(id))
        };
        readings.push(match row {
            Row::Api {
                service,
                instance,
                method,
                path,
                code,
                duration_ms,
                count,
                since,
                id_step,
            } => Reading::Api(ApiReading {
                id: next_id(id_step),
                service: pick(&services, service, "service")?,
                instance: pick(&instances, instance, "instance")?,
                method: pick(&methods, method, "method")?,
                path: pick(&paths, path, "path")?,
                code,
                duration_ms,
                count,
                timestamp: time(since),
            }),
            Row::Host {
                service,
                instance,
                since,
                id_step,
                gauges,
            } => Reading::Host(HostReading {
                id: next_id(id_step),
                service: pick(&services, service, "service")?,
                instance: pick(&instances, instance, "instance")?,
                timestamp: time(since),
                gauges,
            }),
        });
    }
    if !rest.is_empty() {
        return Err(RecordError(format!(
            "{} bytes follow the last reading",
            rest.len()
        )));
    }
    Ok(Accepted { at, readings })
}

/// The `index`-th name of `list` (of `what`), or why the record is damaged.
fn pick<T: Clone>(list: &[T], index: u32, what: &str) -> Result<T, RecordError> {
    list.get(index as usize).cloned().ok_or_else(|| {
        RecordError(format!(
            "{what} {index} is past the record's {} {what}s",
            list.len()
        ))
    })
}

impl From<postcard::Error> for RecordError {
    fn from(error: postcard::Error) -> Self {
        RecordError(error.to_string())
    }
}
