//! A borrowed JSON value for validation: every value keeps its JSON type, so a wrong type is
//! reported per field instead of failing the whole body, and strings without escapes borrow
//! from the request body instead of being copied.
//!
//! `serde_json::Value` would do the same job, but it copies every key and string and keeps
//! objects in a `BTreeMap`; on the ingest path that was the largest share of the service's CPU.
//!
//! Hostile objects stay cheap: an object may hold at most [`MAX_OBJECT_KEYS`] members (far more
//! than a reading has), so looking for a repeated key costs at most that many comparisons per
//! key: the whole check is linear in the body. A repeated key is never silently resolved: its
//! first value is kept and the key is marked [`Lenient::Repeated`], so the reader of the object
//! reports it by name.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// One JSON value, borrowing its strings from the body where it can.
#[derive(Debug, Clone, PartialEq)]
pub enum Lenient<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// Any number, as serde_json reads it.
    Number(Number),
    /// A string.
    Str(Cow<'a, str>),
    /// An array.
    Array(Vec<Lenient<'a>>),
    /// An object; a key given twice keeps its first value and is listed once more, with
    /// [`Lenient::Repeated`] as its value.
    Object(Object<'a>),
    /// Stands in an object for the second (and any later) occurrence of a key; never appears
    /// anywhere else.
    Repeated,
}

/// The members of a JSON object, in the order they appeared.
pub type Object<'a> = Vec<(Cow<'a, str>, Lenient<'a>)>;

/// The most members one object may have. A reading has at most 14 fields, the top level two;
/// bigger objects are refused before their keys cost anything more.
pub const MAX_OBJECT_KEYS: usize = 64;

impl Lenient<'_> {
    /// The JSON type, as used in problem messages ("must be a string, got a number").
    pub fn type_name(&self) -> &'static str {
        match self {
            Lenient::Null => "null",
            Lenient::Bool(_) => "a boolean",
            Lenient::Number(_) => "a number",
            Lenient::Str(_) => "a string",
            Lenient::Array(_) => "an array",
            Lenient::Object(_) => "an object",
            Lenient::Repeated => "a repeated key",
        }
    }
}

/// Removes `key` from an object, returning its (first) value; a [`Lenient::Repeated`] marker
/// of the key stays for the object's reader to report.
pub fn take<'a>(object: &mut Object<'a>, key: &str) -> Option<Lenient<'a>> {
    // Removal reorders the members, so the marker may now come first: skip it.
    let at = object
        .iter()
        .position(|(k, v)| k == key && !matches!(v, Lenient::Repeated))?;
    Some(object.swap_remove(at).1)
}

impl<'de> Deserialize<'de> for Lenient<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor)
    }
}

struct LenientVisitor;

impl<'de> Visitor<'de> for LenientVisitor {
    type Value = Lenient<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Lenient::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Lenient::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Lenient::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Number::from_f64(v)
            .map(Lenient::Number)
            .ok_or_else(|| E::custom("a number must be finite"))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Lenient::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Lenient::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Lenient::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Lenient::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object: Object<'de> = Vec::with_capacity(map.size_hint().unwrap_or(10));
        // Keys already marked `Repeated`, so a key given three times is reported once.
        let mut repeated: Vec<usize> = Vec::new();
        // A key is read as a value: JSON keys are strings, so it is a (borrowed) `Str`.
        while let Some(key) = map.next_key::<Lenient<'de>>()? {
            let Lenient::Str(key) = key else {
                return Err(serde::de::Error::custom("an object key must be a string"));
            };
            if object.len() == MAX_OBJECT_KEYS {
                return Err(serde::de::Error::custom(format_args!(
                    "an object has more than {MAX_OBJECT_KEYS} keys; a reading has at most 14"
                )));
            }
            let value = map.next_value()?;
            // At most MAX_OBJECT_KEYS comparisons: the cap is what keeps this linear.
            match object.iter().position(|(k, _)| *k == key) {
                Some(first) if repeated.contains(&first) => {}
                Some(first) => {
                    repeated.push(first);
                    object.push((key, Lenient::Repeated));
                }
                None => object.push((key, value)),
            }
        }
        Ok(Lenient::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Lenient<'_> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn plain_strings_and_keys_borrow_from_the_body() {
        let Lenient::Object(object) = parse(r#"{"service": "checkout"}"#) else {
            panic!("not an object")
        };
        assert!(matches!(object[0].0, Cow::Borrowed("service")));
        assert!(matches!(
            object[0].1,
            Lenient::Str(Cow::Borrowed("checkout"))
        ));
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let Lenient::Object(object) = parse(r#"{"pa\"th": "a\nb"}"#) else {
            panic!("not an object")
        };
        assert_eq!(object[0].0, "pa\"th");
        assert_eq!(object[0].1, Lenient::Str(Cow::Owned("a\nb".into())));
    }

    #[test]
    fn every_type_is_kept() {
        let value = parse(r#"[null, true, -3, 18446744073709551615, 1.5, "s", [1], {"a": {}}]"#);
        let Lenient::Array(items) = value else {
            panic!("not an array")
        };
        let names: Vec<_> = items.iter().map(Lenient::type_name).collect();
        assert_eq!(
            names,
            [
                "null",
                "a boolean",
                "a number",
                "a number",
                "a number",
                "a string",
                "an array",
                "an object"
            ]
        );
        assert_eq!(items[2], Lenient::Number((-3).into()));
        assert_eq!(items[3], Lenient::Number(u64::MAX.into()));
        assert_eq!(items[4], Lenient::Number(Number::from_f64(1.5).unwrap()));
    }

    #[test]
    fn a_repeated_key_keeps_its_first_value_and_is_marked_once() {
        let Lenient::Object(mut object) =
            parse(r#"{"code": 200, "code": 500, "path": "/a", "code": 404}"#)
        else {
            panic!("not an object")
        };
        assert_eq!(object.len(), 3, "{object:?}");
        assert_eq!(take(&mut object, "code"), Some(Lenient::Number(200.into())));
        assert_eq!(take(&mut object, "code"), None);
        assert_eq!(object.len(), 2, "the marker stays to be reported");
        assert!(object.contains(&("code".into(), Lenient::Repeated)));
    }

    #[test]
    fn the_first_value_is_taken_even_after_removals_reorder_the_object() {
        let Lenient::Object(mut object) = parse(r#"{"a": 1, "service": "x", "service": "y"}"#)
        else {
            panic!("not an object")
        };
        // Taking `a` moves the last member (the marker) to the front.
        take(&mut object, "a");
        assert_eq!(object[0].1, Lenient::Repeated);
        assert_eq!(
            take(&mut object, "service"),
            Some(Lenient::Str(Cow::Borrowed("x")))
        );
    }

    #[test]
    fn repeated_keys_are_found_among_many() {
        let keys: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
        let text = format!("{{{}, \"k3\": 0, \"k39\": 0, \"k3\": 1}}", keys.join(", "));
        let Lenient::Object(object) = parse(&text) else {
            panic!("not an object")
        };
        let repeated: Vec<&str> = object
            .iter()
            .filter(|(_, v)| *v == Lenient::Repeated)
            .map(|(k, _)| k.as_ref())
            .collect();
        assert_eq!(repeated, ["k3", "k39"]);
        assert_eq!(object.len(), 42);
        assert_eq!(
            object[3].1,
            Lenient::Number(3.into()),
            "the first value is kept"
        );
    }

    #[test]
    fn an_object_with_far_more_keys_than_a_reading_is_refused() {
        let fits: Vec<String> = (0..MAX_OBJECT_KEYS)
            .map(|i| format!("\"k{i}\": 0"))
            .collect();
        assert!(serde_json::from_str::<Lenient>(&format!("{{{}}}", fits.join(","))).is_ok());
        // 200k keys: refused after the 65th, without the quadratic cost of checking them all.
        let many: Vec<String> = (0..200_000).map(|i| format!("\"k{i}\": 0")).collect();
        let error = serde_json::from_str::<Lenient>(&format!("{{{}}}", many.join(",")))
            .unwrap_err()
            .to_string();
        assert!(error.contains("more than 64 keys"), "{error}");
    }
}
