//! OTLP attributes: looking up a semantic-convention key (current name first, then the names
//! older conventions used), and hashing attribute sets into stream identities.
//!
//! Attribute values are `AnyValue`s; the conventions we read are strings or integers, but
//! exporters differ (a status code sent as the string `"200"`), so lookups accept both where the
//! meaning is unambiguous.

use std::hash::{DefaultHasher, Hash, Hasher};

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};

/// The first of `keys` present in `attrs`.
fn find<'a>(attrs: &'a [KeyValue], keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|key| {
        attrs
            .iter()
            .find(|kv| kv.key == *key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    })
}

/// The text of the first of `keys` present (integers are written out; other kinds are absent).
pub fn text<'a>(attrs: &'a [KeyValue], keys: &[&str]) -> Option<std::borrow::Cow<'a, str>> {
    match find(attrs, keys)? {
        Value::StringValue(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
        Value::IntValue(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// The integer of the first of `keys` present: an int, or a string holding one.
pub fn integer(attrs: &[KeyValue], keys: &[&str]) -> Option<Result<i64, String>> {
    Some(match find(attrs, keys)? {
        Value::IntValue(n) => Ok(*n),
        Value::StringValue(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a whole number")),
        other => Err(format!("{other:?} is not a whole number")),
    })
}

/// A 128-bit identity of a stream: resource, scope, metric name and point attributes. Two
/// independently seeded 64-bit hashes, so two live streams colliding is out of reach (about
/// 2^-128 per pair), without keeping every attribute set in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey(u64, u64);

/// Builds a [`StreamKey`] from the parts of a stream, outermost first.
#[derive(Clone)]
pub struct StreamHasher(DefaultHasher, DefaultHasher);

impl StreamHasher {
    /// An empty identity.
    pub fn new() -> Self {
        let mut second = DefaultHasher::new();
        // A different seed for the second half, so the two hashes are independent.
        0x9e37_79b9_7f4a_7c15_u64.hash(&mut second);
        Self(DefaultHasher::new(), second)
    }

    /// Adds a name (metric name, scope name).
    pub fn name(mut self, name: &str) -> Self {
        name.hash(&mut self.0);
        name.hash(&mut self.1);
        self
    }

    /// Adds an attribute set; the order of its keys does not matter.
    pub fn attributes(mut self, attrs: &[KeyValue]) -> Self {
        let mut sorted: Vec<&KeyValue> = attrs.iter().collect();
        sorted.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        sorted.len().hash(&mut self.0);
        sorted.len().hash(&mut self.1);
        for kv in sorted {
            for h in [&mut self.0, &mut self.1] {
                kv.key.hash(h);
                hash_value(kv.value.as_ref(), h);
            }
        }
        self
    }

    /// The identity.
    pub fn finish(&self) -> StreamKey {
        StreamKey(self.0.finish(), self.1.finish())
    }
}

impl Default for StreamHasher {
    fn default() -> Self {
        Self::new()
    }
}

fn hash_value(value: Option<&AnyValue>, h: &mut DefaultHasher) {
    match value.and_then(|v| v.value.as_ref()) {
        None => 0u8.hash(h),
        Some(Value::StringValue(s)) => (1u8, s).hash(h),
        Some(Value::BoolValue(b)) => (2u8, b).hash(h),
        Some(Value::IntValue(n)) => (3u8, n).hash(h),
        Some(Value::DoubleValue(d)) => (4u8, d.to_bits()).hash(h),
        Some(Value::BytesValue(b)) => (5u8, b).hash(h),
        Some(Value::ArrayValue(a)) => {
            (6u8, a.values.len()).hash(h);
            for v in &a.values {
                hash_value(Some(v), h);
            }
        }
        Some(Value::KvlistValue(list)) => {
            (7u8, list.values.len()).hash(h);
            for kv in &list.values {
                kv.key.hash(h);
                hash_value(kv.value.as_ref(), h);
            }
        }
        Some(_) => 8u8.hash(h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn lookups_prefer_the_current_name_and_read_ints_from_strings() {
        let attrs = [
            kv("http.status_code", Value::StringValue("404".into())),
            kv("http.response.status_code", Value::IntValue(200)),
        ];
        let code = integer(&attrs, &["http.response.status_code", "http.status_code"]);
        assert_eq!(code, Some(Ok(200)));
        assert_eq!(integer(&attrs[..1], &["http.status_code"]), Some(Ok(404)));
        assert!(integer(&attrs, &["nope"]).is_none());
        let text_of = text(&attrs[1..], &["http.response.status_code"]);
        assert_eq!(text_of.as_deref(), Some("200"));
    }

    #[test]
    fn stream_keys_ignore_attribute_order_but_not_values_or_names() {
        let a = [kv("a", Value::IntValue(1)), kv("b", Value::BoolValue(true))];
        let b = [kv("b", Value::BoolValue(true)), kv("a", Value::IntValue(1))];
        let c = [
            kv("b", Value::BoolValue(false)),
            kv("a", Value::IntValue(1)),
        ];
        let key = |attrs: &[KeyValue], name: &str| {
            StreamHasher::new().name(name).attributes(attrs).finish()
        };
        assert_eq!(key(&a, "m"), key(&b, "m"));
        assert_ne!(key(&a, "m"), key(&c, "m"));
        assert_ne!(key(&a, "m"), key(&a, "n"));
    }
}
