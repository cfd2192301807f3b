//! Validated names: service, instance, HTTP method, URL path and status code.
//!
//! Each newtype has one `parse` that states its rules; the error is a short human sentence that
//! the API returns as the `problem` of a field.

use std::fmt;

use serde::{Deserialize, Serialize};

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
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `value`: non-empty, bounded length, no control characters.
            pub fn parse(value: &str) -> Result<Self, String> {
                check_text(value, $max)?;
                Ok(Self(value.to_owned()))
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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiPath(String);

impl ApiPath {
    /// Validates `value`: starts with `/`, bounded length, no control characters.
    pub fn parse(value: &str) -> Result<Self, String> {
        check_text(value, MAX_PATH_BYTES)?;
        if !value.starts_with('/') {
            return Err("must start with '/'".into());
        }
        Ok(Self(value.to_owned()))
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

/// An HTTP request method, stored upper-case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HttpMethod(String);

impl HttpMethod {
    /// Accepts a standard method in any case and stores it upper-case.
    pub fn parse(value: &str) -> Result<Self, String> {
        let upper = value.to_ascii_uppercase();
        if METHODS.contains(&upper.as_str()) {
            Ok(Self(upper))
        } else {
            Err(format!("must be one of {}", METHODS.join(", ")))
        }
    }

    /// The upper-case method.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
    fn names_reject_empty_long_and_control_characters() {
        assert!(ServiceName::parse("checkout").is_ok());
        assert!(ServiceName::parse("").is_err());
        assert!(ServiceName::parse(&"x".repeat(MAX_NAME_BYTES + 1)).is_err());
        assert!(InstanceName::parse("a\nb").is_err());
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
