//! One member's value of a reading object, read for validation: every value keeps its JSON
//! type, so a wrong type is reported per field instead of failing the whole body, and strings
//! without escapes borrow from the request body instead of being copied.
//!
//! A reading's fields are scalars, so an array or an object given as a field's value is read
//! past (its members are not kept) and only its type is remembered, for the problem message.
//! `serde_json::Value` would keep it all, copying every key and string into a `BTreeMap`; on the
//! ingest path that was the largest share of the service's CPU.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// One JSON value, borrowing its string from the body where it can.
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
    /// An array (read past).
    Array,
    /// An object (read past).
    Object,
}

impl Lenient<'_> {
    /// The JSON type, as used in problem messages ("must be a string, got a number").
    pub fn type_name(&self) -> &'static str {
        match self {
            Lenient::Null => "null",
            Lenient::Bool(_) => "a boolean",
            Lenient::Number(_) => "a number",
            Lenient::Str(_) => "a string",
            Lenient::Array => "an array",
            Lenient::Object => "an object",
        }
    }
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
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Lenient::Object)
    }
}

/// The `visit_*` methods of every JSON scalar and `null`, each answering `self.other_shape()`:
/// for a visitor that wants one shape (an array, an object) and reads past any other value.
/// The visitor's own methods take its shape and read past the other container.
macro_rules! read_past_scalars {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(self.other_shape())
        }

        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(self.other_shape())
        }

        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(self.other_shape())
        }

        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(self.other_shape())
        }

        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(self.other_shape())
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(self.other_shape())
        }
    };
}
pub(crate) use read_past_scalars;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Lenient<'_> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn plain_strings_borrow_from_the_body() {
        assert!(matches!(
            parse(r#""checkout""#),
            Lenient::Str(Cow::Borrowed("checkout"))
        ));
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        assert_eq!(parse(r#""a\nb""#), Lenient::Str(Cow::Owned("a\nb".into())));
    }

    #[test]
    fn every_type_is_kept() {
        let texts = [
            "null",
            "true",
            "-3",
            "18446744073709551615",
            "1.5",
            r#""s""#,
            "[1, [2], {}]",
            r#"{"a": {"b": [1]}, "a": 2}"#,
        ];
        let names: Vec<_> = texts.iter().map(|t| parse(t).type_name()).collect();
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
        assert_eq!(parse("-3"), Lenient::Number((-3).into()));
        assert_eq!(
            parse("18446744073709551615"),
            Lenient::Number(u64::MAX.into())
        );
        assert_eq!(
            parse("1.5"),
            Lenient::Number(Number::from_f64(1.5).unwrap())
        );
    }

    #[test]
    fn a_value_is_read_past_whole_and_malformed_ones_still_fail() {
        let value: Vec<Lenient> = serde_json::from_str(r#"[{"x": [1, {"y": null}]}, 2]"#).unwrap();
        assert_eq!(value, [Lenient::Object, Lenient::Number(2.into())]);
        assert!(serde_json::from_str::<Lenient>(r#"{"x": [1,}"#).is_err());
    }
}
