//! Validated names: service, instance, HTTP method, URL path and status code.
//!
//! Each newtype has one `parse` that states its rules; the error is a short human sentence that
//! the API returns as the `problem` of a field.
//!
//! Names are shown in tables and dashboards, so a name must look like what it is: control
//! characters are refused, and so are the characters that are invisible or reorder the text
//! around them (bidi overrides and isolates, zero-width spaces and joiners, line and paragraph
//! separators, ...), with which one service could pose as another.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::intern::intern;

/// Longest service or instance name, in bytes: long enough for a pod name or an IPv6 address with
/// port, short enough that a partition key stays small.
pub const MAX_NAME_BYTES: usize = 128;
/// Longest path template, in bytes.
pub const MAX_PATH_BYTES: usize = 512;

fn check_text(value: &str, max_bytes: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > max_bytes {
        return Err(format!(
            "must be at most {max_bytes} bytes, got {}",
            value.len()
        ));
    }
    // Every deceptive character is outside ASCII, and the ASCII control characters are the C0
    // range and DEL: an ASCII name (nearly all) is checked byte by byte, without decoding.
    if value.is_ascii() {
        if value.bytes().any(|b| b.is_ascii_control()) {
            return Err("must not contain control characters".into());
        }
        return Ok(());
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if let Some(c) = value.chars().find(|c| is_deceptive(*c)) {
        return Err(format!(
            "must not contain invisible or direction-changing characters (found U+{:04X})",
            u32::from(c)
        ));
    }
    Ok(())
}

/// Characters that draw nothing, or change how the text around them is drawn: the Unicode
/// format characters (category Cf) a name could hide, line and paragraph separators, fillers
/// that render blank, and variation selectors.
fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                 // soft hyphen
            | '\u{034F}'           // combining grapheme joiner
            | '\u{061C}'           // Arabic letter mark
            | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
            | '\u{17B4}' | '\u{17B5}' // Khmer inherent vowels
            | '\u{180B}'..='\u{180F}' // Mongolian variation selectors, vowel separator
            | '\u{200B}'..='\u{200F}' // zero-width space, (non-)joiner, LRM, RLM
            | '\u{2028}'..='\u{202E}' // line/paragraph separators, bidi embeddings/overrides
            | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, bidi isolates
            | '\u{FE00}'..='\u{FE0F}' // variation selectors
            | '\u{FEFF}'           // zero-width no-break space (BOM)
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
            | '\u{1D173}'..='\u{1D17A}' // musical formatting
            | '\u{E0000}'..='\u{E0FFF}' // tags, variation selectors supplement
    )
}

/// Deserializes text through `make` without copying it first: the input is borrowed where the
/// format allows (postcard, the CQL driver). Model types trust their input (see `model`), so for
/// names `make` only interns; an HTTP method must still be one of [`METHODS`].
fn deserialize_text<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    expecting: &'static str,
    make: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error> {
    struct Text<T> {
        expecting: &'static str,
        make: fn(&str) -> Result<T, String>,
    }
    impl<T> serde::de::Visitor<'_> for Text<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            (self.make)(v).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(Text { expecting, make })
}

/// Serializes a text newtype as its text; deserializes it through `$make`.
macro_rules! text_serde {
    ($name:ident, $expecting:literal, $make:expr) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserialize_text(deserializer, $expecting, $make)
            }
        }
    };
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        text_serde!($name, "a string", |text| Ok(Self(intern(text))));

        impl $name {
            /// Validates `value`: non-empty, bounded length, no control characters.
            pub fn parse(value: &str) -> Result<Self, String> {
                check_text(value, $max)?;
                Ok(Self(intern(value)))
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// A name equals its text: `reading.instance == "vm-3"`.
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }
    };
}

text_newtype!(
    /// The name of a monitored service: the first part of every partition key.
    ServiceName,
    MAX_NAME_BYTES
);
text_newtype!(
    /// One running copy of a service: an instance id, host name or `ip:port`.
    InstanceName,
    MAX_NAME_BYTES
);

/// A URL path or route template (`/users/{id}`). Must start with `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiPath(Arc<str>);

text_serde!(ApiPath, "a path", |text| Ok(Self(intern(text))));

impl ApiPath {
    /// Validates `value`: starts with `/`, bounded length, no control characters.
    pub fn parse(value: &str) -> Result<Self, String> {
        check_text(value, MAX_PATH_BYTES)?;
        if !value.starts_with('/') {
            return Err("must start with '/'".into());
        }
        Ok(Self(intern(value)))
    }

    /// The validated path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The request methods of RFC 9110 plus PATCH (RFC 5789).
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// An HTTP request method, stored upper-case (one of [`METHODS`], so never allocated).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HttpMethod(&'static str);

impl HttpMethod {
    /// Accepts a standard method in any case and stores it upper-case.
    pub fn parse(value: &str) -> Result<Self, String> {
        METHODS
            .iter()
            .find(|method| method.eq_ignore_ascii_case(value))
            .map(|method| Self(method))
            .ok_or_else(|| format!("must be one of {}", METHODS.join(", ")))
    }

    /// The upper-case method.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

text_serde!(HttpMethod, "an HTTP method", HttpMethod::parse);

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// An HTTP status code, 100 to 599.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StatusCode(u16);

impl StatusCode {
    /// Validates the range 100..=599.
    pub fn parse(value: i64) -> Result<Self, String> {
        match u16::try_from(value) {
            Ok(code) if (100..=599).contains(&code) => Ok(Self(code)),
            _ => Err(format!(
                "must be an HTTP status code from 100 to 599, got {value}"
            )),
        }
    }

    /// The numeric code.
    pub fn get(self) -> u16 {
        self.0
    }

    /// True for 5xx: the server failed the request.
    pub fn is_server_error(self) -> bool {
        self.0 >= 500
    }

    /// True for 4xx: the client sent a bad request.
    pub fn is_client_error(self) -> bool {
        (400..500).contains(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_the_wal_encoding_sharing_their_text() {
        let service = ServiceName::parse("checkout").unwrap();
        let method = HttpMethod::parse("patch").unwrap();
        let bytes = postcard::to_stdvec(&(&service, &method)).unwrap();
        let (back, method_back): (ServiceName, HttpMethod) = postcard::from_bytes(&bytes).unwrap();
        assert_eq!((&back, &method_back), (&service, &method));
        assert!(Arc::ptr_eq(&back.0, &service.0));
        assert!(
            postcard::from_bytes::<HttpMethod>(&postcard::to_stdvec("FETCH").unwrap()).is_err()
        );
    }

    #[test]
    fn names_reject_empty_long_and_control_characters() {
        assert!(ServiceName::parse("checkout").is_ok());
        assert!(ServiceName::parse("").is_err());
        assert!(ServiceName::parse(&"x".repeat(MAX_NAME_BYTES + 1)).is_err());
        assert!(InstanceName::parse("a\nb").is_err());
    }

    #[test]
    fn names_reject_invisible_and_direction_changing_characters() {
        for sneaky in [
            "check\u{202E}tuo",  // right-to-left override
            "pay\u{2066}ments",  // left-to-right isolate
            "check\u{200B}out",  // zero-width space
            "check\u{200D}out",  // zero-width joiner
            "check\u{FEFF}out",  // zero-width no-break space
            "check\u{2028}out",  // line separator
            "check\u{2029}out",  // paragraph separator
            "check\u{E0041}out", // tag letter
        ] {
            let problem = ServiceName::parse(sneaky).unwrap_err();
            assert!(problem.contains("invisible"), "{sneaky:?}: {problem}");
            assert!(InstanceName::parse(sneaky).is_err(), "{sneaky:?}");
            assert!(ApiPath::parse(&format!("/{sneaky}")).is_err(), "{sneaky:?}");
        }
        // Scripts other than Latin, and visible symbols, are names like any other.
        for fine in ["kassé", "支付-服务", "заказы", "שירות", "café-☕", "a b"] {
            assert!(ServiceName::parse(fine).is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn paths_start_with_a_slash() {
        assert!(ApiPath::parse("/users/{id}").is_ok());
        assert!(ApiPath::parse("users").is_err());
    }

    #[test]
    fn methods_are_normalised_to_upper_case() {
        assert_eq!(HttpMethod::parse("get").unwrap().as_str(), "GET");
        assert!(HttpMethod::parse("FETCH").is_err());
    }

    #[test]
    fn status_codes_are_bounded() {
        assert!(StatusCode::parse(99).is_err());
        assert!(StatusCode::parse(600).is_err());
        assert!(StatusCode::parse(-1).is_err());
        assert!(StatusCode::parse(503).unwrap().is_server_error());
        assert!(StatusCode::parse(404).unwrap().is_client_error());
    }
}
