//! The API reading: one request, or `count` requests summarised over an interval ending at
//! `timestamp`; and its declaration as a [`ReadingKind`].

use serde::{Deserialize, Serialize};

use super::{ReadingId, TimestampMs};
use crate::model::bucket::{BucketWidth, Seq, ShardCount, TimeBucket};
use crate::model::kind::{
    Check, Field, FieldErrors, FieldType, Head, KindInfo, ReadingKind, SeriesRef, Value, Values,
};
use crate::model::names::{ApiPath, HttpMethod, InstanceName, ServiceName, StatusCode};

/// The longest a single reading may claim to have taken: one day, in ms.
pub const MAX_DURATION_MS: f64 = 86_400_000.0;

/// One API request, or `count` requests summarised over an interval ending at `timestamp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiReading {
    /// Fixed at acceptance; makes writes idempotent.
    pub id: ReadingId,
    /// The service that served the requests.
    pub service: ServiceName,
    /// The instance of the service.
    pub instance: InstanceName,
    /// The request method.
    pub method: HttpMethod,
    /// The URL path or route template.
    pub path: ApiPath,
    /// The response status.
    pub code: StatusCode,
    /// Duration of the request in ms; for a summary (`count > 1`), the mean duration.
    pub duration_ms: f64,
    /// How many requests this reading stands for (at least 1).
    pub count: u32,
    /// When the request ended (or the summarised interval ended).
    pub timestamp: TimestampMs,
}

impl ApiReading {
    /// The shard of this reading's series `(instance, method, path)` within its bucket.
    pub fn seq(&self, shards: ShardCount) -> Seq {
        self.series().seq(shards)
    }

    /// The bucket this reading belongs to.
    pub fn bucket(&self, width: BucketWidth) -> TimeBucket {
        self.bucket_of(width)
    }
}

const INSTANCE: usize = 0;
const METHOD: usize = 1;
const PATH: usize = 2;
const CODE: usize = 3;
const DURATION_MS: usize = 4;
const COUNT: usize = 5;

/// The fields, indexed by the constants above; the embedded store keeps them in this order.
const FIELDS: [Field; 6] = [
    Field::required("instance", FieldType::Text),
    Field::required("method", FieldType::Text),
    Field::required("path", FieldType::Text),
    Field::required("code", FieldType::Int),
    Field::required("duration_ms", FieldType::Double),
    Field::defaulted("count", FieldType::Int, Value::Int(1)),
];

const INFO: KindInfo = KindInfo {
    index: 0,
    name: "api",
    table: "metric_readings",
    latest_table: "latest_api_readings",
    tag: b'a',
    fields: &FIELDS,
};

fn duration(d: f64) -> Result<f64, String> {
    if (0.0..=MAX_DURATION_MS).contains(&d) {
        Ok(d)
    } else {
        Err(format!("must be from 0 to {MAX_DURATION_MS} ms, got {d}"))
    }
}

/// At least 1, and stored as a CQL `int`.
fn count(n: i64) -> Result<u32, String> {
    match u32::try_from(n) {
        Ok(n) if n >= 1 && i32::try_from(n).is_ok() => Ok(n),
        _ => Err(format!(
            "must be a whole number from 1 to {}, got {n}",
            i32::MAX
        )),
    }
}

impl ReadingKind for ApiReading {
    const INFO: &'static KindInfo = &INFO;

    fn series(&self) -> SeriesRef<'_> {
        SeriesRef::instance(&self.service, &self.instance).api(&self.method, &self.path)
    }

    fn value(&self, i: usize) -> Value<'_> {
        match i {
            INSTANCE => Value::Text(self.instance.as_str()),
            METHOD => Value::Text(self.method.as_str()),
            PATH => Value::Text(self.path.as_str()),
            CODE => Value::Int(i64::from(self.code.get())),
            DURATION_MS => Value::Double(self.duration_ms),
            COUNT => Value::Int(i64::from(self.count)),
            _ => Value::Absent,
        }
    }

    fn from_values(head: Head, values: &Values<'_>) -> Result<Self, FieldErrors> {
        let mut c = Check::new(&FIELDS, values);
        let instance = c.text(INSTANCE, InstanceName::parse);
        let method = c.text(METHOD, HttpMethod::parse);
        let path = c.text(PATH, ApiPath::parse);
        let code = c.int(CODE, StatusCode::parse);
        let duration_ms = c.double(DURATION_MS, duration);
        let count = c.int(COUNT, count);
        c.finish(|| {
            Some(ApiReading {
                id: head.id,
                service: head.service,
                instance: instance?,
                method: method?,
                path: path?,
                code: code?,
                duration_ms: duration_ms?,
                count: count?,
                timestamp: head.timestamp,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reading::sample;

    #[test]
    fn values_rebuild_the_same_reading() {
        let r = sample::api();
        assert_eq!(
            ApiReading::from_values(sample::head_of(&r), &r.values()),
            Ok(r)
        );
    }

    #[test]
    fn every_broken_rule_is_named_by_its_field() {
        let mut values = Values::default();
        for v in [
            Value::Text(""),
            Value::Text("FETCH"),
            Value::Text("pay"),
            Value::Int(42),
            Value::Double(-1.0),
            Value::Int(0),
        ] {
            values.push(v);
        }
        let head = sample::head_of(&sample::api());
        let errors = ApiReading::from_values(head, &values).unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            ["instance", "method", "path", "code", "duration_ms", "count"]
        );
    }
}
