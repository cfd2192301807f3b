//! The aggregates a rollup row holds, mergeable in any order and any grouping.
//!
//! [`ApiAgg`]: requests, 5xx and 4xx requests, the sum of durations (× count) and the duration
//! sketch of `query::sketch` (exact min and max, percentiles within ±1%). [`HostAgg`]: samples,
//! per numeric gauge its samples, sum, min and max, and availability counts. Counts and max are
//! exact under any merge; sums are floating point, equal up to rounding order.
//!
//! An API aggregate also carries the PromQL parts of `rollup::prom` (`prom`); rows written
//! before they existed decode with `prom: None`. A merge keeps them only when every input has
//! them.
//!
//! Stored form (postcard, [`Agg`]'s serde): the variant index is the format's tag, so tags are
//! only ever added. `1` is a host aggregate; `2` an API aggregate with its PromQL parts inline
//! and its sketch and buckets dense or sparse, whichever is shorter
//! (`query::sketch::counts`). `0` is the API aggregate rows stored before that: dense, with the
//! PromQL parts (when any) appended after the aggregate. Rows of tag 0 are read, never written
//! (`legacy`); versions before tag 2 cannot read the rows this one writes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::prom::PromParts;
use crate::model::kind::FieldType;
use crate::model::{ApiReading, HostReading, ReadingKind, StatusCode};
use crate::query::sketch::Sketch;

pub(crate) mod legacy;

/// The aggregate of API readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiAgg {
    /// Requests (the sum of `count`).
    pub count: u64,
    /// Requests answered 5xx.
    pub server_errors: u64,
    /// Requests answered 4xx.
    pub client_errors: u64,
    /// Σ duration × count, ms.
    pub duration_sum: f64,
    /// Request-weighted durations.
    pub sketch: Sketch,
    /// The PromQL parts; `None` in rows written before they existed.
    pub prom: Option<Box<PromParts>>,
}

impl Default for ApiAgg {
    /// Empty, with (empty) PromQL parts.
    fn default() -> Self {
        Self {
            count: 0,
            server_errors: 0,
            client_errors: 0,
            duration_sum: 0.0,
            sketch: Sketch::default(),
            prom: Some(Box::default()),
        }
    }
}

impl ApiAgg {
    /// Adds one reading, stamped exactly at the start of the aggregate's slot or not.
    pub fn add(&mut self, r: &ApiReading, at_slot_start: bool) {
        let count = u64::from(r.count);
        self.add_unsketched(r.code, r.duration_ms, count, at_slot_start);
        self.sketch.add(r.duration_ms, count);
    }

    /// [`ApiAgg::add`] of `count` requests answered `code` in `duration_ms` each, but for the
    /// sketch: the caller adds `(duration_ms, count)` to it later, in bulk
    /// ([`Sketch::add_all`]).
    pub fn add_unsketched(
        &mut self,
        code: StatusCode,
        duration_ms: f64,
        count: u64,
        at_slot_start: bool,
    ) {
        self.count += count;
        if code.is_server_error() {
            self.server_errors += count;
        } else if code.is_client_error() {
            self.client_errors += count;
        }
        self.duration_sum += duration_ms * count as f64;
        if let Some(prom) = &mut self.prom {
            prom.add(duration_ms, count, at_slot_start);
        }
    }

    /// Adds everything of `other`, an aggregate of the same slot.
    pub fn merge(&mut self, other: &ApiAgg) {
        self.merge_finer(other, true);
    }

    /// Adds everything of `other`, the aggregate of a slot within this one's (a minute of an
    /// hour): what it has at its slot's start is at this slot's start only when both slots
    /// start together (`same_start`), see [`PromParts::merge_finer`].
    pub fn merge_finer(&mut self, other: &ApiAgg, same_start: bool) {
        self.count += other.count;
        self.server_errors += other.server_errors;
        self.client_errors += other.client_errors;
        self.duration_sum += other.duration_sum;
        self.sketch.merge(&other.sketch);
        match (&mut self.prom, &other.prom) {
            (Some(mine), Some(theirs)) => mine.merge_finer(theirs, same_start),
            // A row without the parts cannot say which of its readings were at the slot start.
            _ => self.prom = None,
        }
    }
}

/// Samples, sum, min and max of one gauge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GaugeAgg {
    /// Samples that carried the gauge.
    pub samples: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest (meaningless while `samples` is 0).
    pub min: f64,
    /// The largest (meaningless while `samples` is 0).
    pub max: f64,
}

impl GaugeAgg {
    /// Adds one value.
    pub fn add(&mut self, v: f64) {
        self.merge(&GaugeAgg {
            samples: 1,
            sum: v,
            min: v,
            max: v,
        });
    }

    /// Adds everything of `other`.
    pub fn merge(&mut self, other: &GaugeAgg) {
        if other.samples == 0 {
            return;
        }
        if self.samples == 0 {
            *self = *other;
            return;
        }
        self.samples += other.samples;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// The aggregate of host readings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostAgg {
    /// Host readings.
    pub samples: u64,
    /// By field index of the host kind (non-numeric fields stay empty); as long as the kind's
    /// field list when written, so a gauge added later reads as never carried.
    pub gauges: Vec<GaugeAgg>,
    /// Samples that reported `available: true`.
    pub available: u64,
    /// Samples that reported `available` at all.
    pub reported: u64,
}

/// Whether a host field is a gauge averaged over a step (a number).
pub fn is_gauge(ty: FieldType) -> bool {
    matches!(ty, FieldType::Double | FieldType::BigInt | FieldType::Int)
}

impl HostAgg {
    /// Adds one reading.
    pub fn add(&mut self, r: &HostReading) {
        let fields = HostReading::INFO.fields;
        if self.gauges.len() < fields.len() {
            self.gauges.resize(fields.len(), GaugeAgg::default());
        }
        for (i, field) in fields.iter().enumerate() {
            if let Some(v) = r.value(i).number().filter(|_| is_gauge(field.ty)) {
                self.gauges[i].add(v);
            }
        }
        self.samples += 1;
        if let Some(available) = r.gauges.available {
            self.reported += 1;
            self.available += u64::from(available);
        }
    }

    /// Adds everything of `other`.
    pub fn merge(&mut self, other: &HostAgg) {
        if self.gauges.len() < other.gauges.len() {
            self.gauges.resize(other.gauges.len(), GaugeAgg::default());
        }
        for (mine, theirs) in self.gauges.iter_mut().zip(&other.gauges) {
            mine.merge(theirs);
        }
        self.samples += other.samples;
        self.available += other.available;
        self.reported += other.reported;
    }
}

/// The aggregate of one rollup row, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Agg {
    /// API readings.
    Api(ApiAgg),
    /// Host readings.
    Host(HostAgg),
}

impl Agg {
    /// The kind's index ([`crate::model::kind::KindInfo::index`]): part of the row's key.
    pub fn kind(&self) -> usize {
        match self {
            Agg::Api(_) => ApiReading::INFO.index,
            Agg::Host(_) => HostReading::INFO.index,
        }
    }

    /// The stored bytes (postcard).
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("an aggregate always serializes")
    }

    /// Reads, from the bytes left after this aggregate's encoding, the PromQL parts a row of
    /// tag 0 appended after it (none left: a row written before the parts existed). Rows of
    /// tag 2 carry their parts inline and leave nothing.
    pub fn read_extension(&mut self, rest: &[u8]) -> Result<(), postcard::Error> {
        if let (Agg::Api(api), false) = (self, rest.is_empty()) {
            let parts: legacy::LegacyPromParts = postcard::from_bytes(rest)?;
            api.prom = Some(Box::new(parts.into()));
        }
        Ok(())
    }

    /// Reads stored bytes back (a tag 0 row's appended parts when present).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let (mut agg, rest): (Agg, &[u8]) = postcard::take_from_bytes(bytes)?;
        agg.read_extension(rest)?;
        Ok(agg)
    }
}

impl Serialize for Agg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Agg::Host(host) => s.serialize_newtype_variant("Agg", 1, "Host", host),
            Agg::Api(api) => s.serialize_newtype_variant("Agg", 2, "Api", api),
        }
    }
}

/// The stored forms of an aggregate, by tag (the variant index): only ever appended to.
#[derive(Deserialize)]
enum Stored {
    LegacyApi(legacy::LegacyApiAgg),
    Host(HostAgg),
    Api(ApiAgg),
}

impl<'de> Deserialize<'de> for Agg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Stored::deserialize(d)? {
            Stored::LegacyApi(api) => Agg::Api(api.into()),
            Stored::Host(host) => Agg::Host(host),
            Stored::Api(api) => Agg::Api(api),
        })
    }
}
