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
//! methods and paths, then the readings as a sequence of [`Row`], made as they are written (no
//! copy of the readings is built first).
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

/// One reading, its names as indexes into the record's lists; `G` is its host gauges, borrowed
/// when written and owned when read.
#[derive(Debug, Serialize, Deserialize)]
struct Row<G> {
    service: u32,
    instance: u32,
    /// Its timestamp minus the record's time.
    since: i64,
    /// Its id minus the previous reading's (the first: minus zero), wrapping.
    id_step: u128,
    /// What only its kind has.
    fields: Fields<G>,
}

/// The fields of a reading besides its service, instance, time and id.
#[derive(Debug, Serialize, Deserialize)]
enum Fields<G> {
    Api {
        method: u32,
        path: u32,
        code: StatusCode,
        duration_ms: f64,
        count: u32,
    },
    Host(G),
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

    /// Lists `name`, whose text is `text`, unless it is listed already.
    fn add(&mut self, name: &'a T, text: &str) {
        self.index.entry(key(text)).or_insert_with(|| {
            self.list.push(name);
            (self.list.len() - 1) as u32
        });
    }

    /// The index of the listed name whose text is `text`.
    fn of(&self, text: &str) -> u32 {
        self.index[&key(text)]
    }
}

/// A name's key: the address and length of its text.
fn key(text: &str) -> (usize, usize) {
    (text.as_ptr() as usize, text.len())
}

/// The names of a record's readings.
struct Dictionary<'a> {
    services: Names<'a, ServiceName>,
    instances: Names<'a, InstanceName>,
    methods: Names<'a, HttpMethod>,
    paths: Names<'a, ApiPath>,
}

impl<'a> Dictionary<'a> {
    /// Every name of `readings`.
    fn of(readings: &'a [Reading]) -> Self {
        let mut names = Self {
            services: Names::with_capacity(16),
            instances: Names::with_capacity(64),
            methods: Names::with_capacity(8),
            paths: Names::with_capacity(64),
        };
        for reading in readings {
            let (service, instance) = match reading {
                Reading::Api(r) => {
                    names.methods.add(&r.method, r.method.as_str());
                    names.paths.add(&r.path, r.path.as_str());
                    (&r.service, &r.instance)
                }
                Reading::Host(r) => (&r.service, &r.instance),
            };
            names.services.add(service, service.as_str());
            names.instances.add(instance, instance.as_str());
        }
        names
    }
}

/// A record's readings as [`Row`]s, made one at a time while they are serialized.
struct Rows<'a> {
    at: TimestampMs,
    readings: &'a [Reading],
    names: &'a Dictionary<'a>,
}

impl Serialize for Rows<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let names = self.names;
        let mut previous = 0u128;
        serializer.collect_seq(self.readings.iter().map(|reading| {
            let (service, instance, timestamp, id, fields) = match reading {
                Reading::Api(r) => {
                    let fields = Fields::Api {
                        method: names.methods.of(r.method.as_str()),
                        path: names.paths.of(r.path.as_str()),
                        code: r.code,
                        duration_ms: r.duration_ms,
                        count: r.count,
                    };
                    (&r.service, &r.instance, r.timestamp, r.id, fields)
                }
                Reading::Host(r) => (
                    &r.service,
                    &r.instance,
                    r.timestamp,
                    r.id,
                    Fields::Host(&r.gauges),
                ),
            };
            let id = id.uuid().as_u128();
            let id_step = id.wrapping_sub(previous);
            previous = id;
            Row {
                service: names.services.of(service.as_str()),
                instance: names.instances.of(instance.as_str()),
                since: timestamp.millis().wrapping_sub(self.at.millis()),
                id_step,
                fields,
            }
        }))
    }
}

/// Appends `accepted` in this format to `payload` (which holds the version byte).
pub(super) fn encode_into(accepted: &Accepted, payload: Vec<u8>) -> Vec<u8> {
    let readings = &accepted.readings;
    let names = Dictionary::of(readings);
    let record = (
        accepted.at,
        readings.len() as u64,
        &names.services.list,
        &names.instances.list,
        &names.methods.list,
        &names.paths.list,
        Rows {
            at: accepted.at,
            readings,
            names: &names,
        },
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
    for _ in 0..count {
        let (row, next) =
            postcard::take_from_bytes::<Row<HostGauges>>(rest).map_err(RecordError::from)?;
        rest = next;
        id = id.wrapping_add(row.id_step);
        let id = ReadingId::from_uuid(uuid::Uuid::from_u128(id));
        let service = pick(&services, row.service, "service")?;
        let instance = pick(&instances, row.instance, "instance")?;
        let timestamp = TimestampMs::from_millis(at.millis().wrapping_add(row.since));
        readings.push(match row.fields {
            Fields::Api {
                method,
                path,
                code,
                duration_ms,
                count,
            } => Reading::Api(ApiReading {
                id,
                service,
                instance,
                method: pick(&methods, method, "method")?,
                path: pick(&paths, path, "path")?,
                code,
                duration_ms,
                count,
                timestamp,
            }),
            Fields::Host(gauges) => Reading::Host(HostReading {
                id,
                service,
                instance,
                timestamp,
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
