//! The host reading: one sample of an instance's gauges; and its declaration as a
//! [`ReadingKind`].
//!
//! The gauges are declared once, in [`GAUGES`]: name, type and the accessors of their
//! [`HostGauges`] field. Everything else (the wire format, the columns, the stats of
//! `/v1/stats/host`, the CLI tables) follows from that list.

use serde::{Deserialize, Serialize};

use super::{ReadingId, TimestampMs};
use crate::model::bucket::{BucketWidth, Seq, ShardCount, TimeBucket};
use crate::model::kind::{
    Check, Field, FieldErrors, FieldType, Head, KindInfo, ReadingKind, SeriesRef, Value, Values,
};
use crate::model::names::{InstanceName, ServiceName};

/// The gauges of a host sample; each is optional, at least one is present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostGauges {
    /// CPU usage, 0 to 100 per core summed (so up to 100 × cores).
    pub cpu_percent: Option<f64>,
    /// Memory in use, bytes.
    pub mem_used_bytes: Option<i64>,
    /// Memory installed, bytes.
    pub mem_total_bytes: Option<i64>,
    /// Disk in use, bytes.
    pub disk_used_bytes: Option<i64>,
    /// Disk size, bytes.
    pub disk_total_bytes: Option<i64>,
    /// Whether the instance considers itself available.
    pub available: Option<bool>,
    /// Heap size of the watched process, bytes.
    pub heap_bytes: Option<i64>,
    /// Bytes allocated since the previous sample.
    pub allocated_bytes: Option<i64>,
    /// Bytes freed since the previous sample.
    pub freed_bytes: Option<i64>,
}

/// One host-level sample of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostReading {
    /// Fixed at acceptance; makes writes idempotent.
    pub id: ReadingId,
    /// The service the host runs.
    pub service: ServiceName,
    /// The instance sampled.
    pub instance: InstanceName,
    /// When the sample was taken.
    pub timestamp: TimestampMs,
    /// The sampled values.
    pub gauges: HostGauges,
}

impl HostReading {
    /// The shard of this instance within its bucket.
    pub fn seq(&self, shards: ShardCount) -> Seq {
        self.series().seq(shards)
    }

    /// The bucket this reading belongs to.
    pub fn bucket(&self, width: BucketWidth) -> TimeBucket {
        self.bucket_of(width)
    }
}

/// One gauge: its field and how to reach it in [`HostGauges`].
#[derive(Debug, Clone, Copy)]
pub struct Gauge {
    /// Name and type.
    pub field: Field,
    /// Reads the gauge.
    pub get: fn(&HostGauges) -> Value<'static>,
    /// Sets the gauge (to nothing for [`Value::Absent`]).
    pub set: fn(&mut HostGauges, Value<'_>),
}

/// The [`Gauge`] of `HostGauges::$name`, of type `$ty`, read back from a value by `$from`: its
/// field name and its accessors come from the one name, so they cannot drift apart.
macro_rules! gauge {
    ($name:ident, $ty:ident, $from:ident) => {
        Gauge {
            field: Field::optional(stringify!($name), FieldType::$ty),
            get: |g| g.$name.into(),
            set: |g, v| g.$name = v.$from(),
        }
    };
}

/// Every gauge, in stored order (the embedded store and the WAL keep [`HostGauges`] in it).
pub const GAUGES: [Gauge; 9] = [
    gauge!(cpu_percent, Double, number),
    gauge!(mem_used_bytes, BigInt, int),
    gauge!(mem_total_bytes, BigInt, int),
    gauge!(disk_used_bytes, BigInt, int),
    gauge!(disk_total_bytes, BigInt, int),
    gauge!(available, Bool, boolean),
    gauge!(heap_bytes, BigInt, int),
    gauge!(allocated_bytes, BigInt, int),
    gauge!(freed_bytes, BigInt, int),
];

const INSTANCE: usize = 0;
/// Field `FIRST_GAUGE + i` is `GAUGES[i]`.
const FIRST_GAUGE: usize = 1;

/// The instance, then every gauge.
const FIELDS: [Field; FIRST_GAUGE + GAUGES.len()] = {
    let mut fields = [Field::required("instance", FieldType::Text); FIRST_GAUGE + GAUGES.len()];
    let mut i = 0;
    while i < GAUGES.len() {
        fields[FIRST_GAUGE + i] = GAUGES[i].field;
        i += 1;
    }
    fields
};

const INFO: KindInfo = KindInfo {
    index: 1,
    name: "host",
    table: "host_readings",
    latest_table: "latest_host_readings",
    tag: b'h',
    fields: &FIELDS,
};

/// Gauges are amounts: none is negative.
fn not_negative(value: Value<'_>) -> Result<(), String> {
    match value {
        Value::Int(n) if n < 0 => Err(format!("must not be negative, got {n}")),
        Value::Double(v) if v < 0.0 => Err(format!("must not be negative, got {v}")),
        _ => Ok(()),
    }
}

impl ReadingKind for HostReading {
    const INFO: &'static KindInfo = &INFO;

    fn series(&self) -> SeriesRef<'_> {
        SeriesRef::instance(&self.service, &self.instance)
    }

    fn value(&self, i: usize) -> Value<'_> {
        match i {
            INSTANCE => Value::Text(self.instance.as_str()),
            i => GAUGES
                .get(i.wrapping_sub(FIRST_GAUGE))
                .map_or(Value::Absent, |gauge| (gauge.get)(&self.gauges)),
        }
    }

    fn from_values(head: Head, values: &Values<'_>) -> Result<Self, FieldErrors> {
        let mut c = Check::new(&FIELDS, values);
        let instance = c.text(INSTANCE, InstanceName::parse);
        let mut gauges = HostGauges::default();
        let mut given = false;
        for (i, gauge) in GAUGES.iter().enumerate() {
            given |= c.value(FIRST_GAUGE + i) != Value::Absent;
            (gauge.set)(&mut gauges, c.optional(FIRST_GAUGE + i, not_negative));
        }
        if !given {
            let names: Vec<&str> = GAUGES.iter().map(|g| g.field.name).collect();
            c.problem(
                "gauges",
                format!("at least one of {} is required", names.join(", ")),
            );
        }
        c.finish(|| {
            Some(HostReading {
                id: head.id,
                service: head.service,
                instance: instance?,
                timestamp: head.timestamp,
                gauges,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reading::sample;

    #[test]
    fn every_gauge_round_trips_through_its_value() {
        let reading = sample::host();
        let back = HostReading::from_values(sample::head_of(&reading), &reading.values());
        assert_eq!(back, Ok(reading.clone()));
        assert_eq!(reading.present_fields().count(), FIELDS.len());
    }

    #[test]
    fn a_sample_needs_a_gauge_and_gauges_are_not_negative() {
        let head = || sample::head_of(&sample::host());
        let mut values = Values::default();
        values.push(Value::Text("h-1"));
        let errors = HostReading::from_values(head(), &values).unwrap_err();
        assert_eq!(errors.0[0].0, "gauges");
        assert!(errors.0[0].1.contains("cpu_percent, mem_used_bytes"));

        values.push(Value::Double(-1.0));
        let errors = HostReading::from_values(head(), &values).unwrap_err();
        assert_eq!(
            errors.0,
            [("cpu_percent", "must not be negative, got -1".into())]
        );
    }
}
