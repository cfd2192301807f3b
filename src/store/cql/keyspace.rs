//! The keyspace name: the one identifier we must splice into CQL text (DDL and `USE` take no
//! bind markers), so it is validated to a plain lower-case identifier first.

use std::fmt;
use std::str::FromStr;

/// A validated keyspace name: `[a-z][a-z0-9_]{0,47}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace(String);

impl Keyspace {
    /// The name, safe to place in CQL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Keyspace {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        let mut bytes = name.bytes();
        let starts_with_letter = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if starts_with_letter && rest_ok && name.len() <= 48 {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "keyspace '{name}' must be 1-48 characters of a-z, 0-9 and '_', starting with a letter"
            ))
        }
    }
}

impl fmt::Display for Keyspace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_pass() {
        assert!("timebucket".parse::<Keyspace>().is_ok());
        assert!("tb_test_42".parse::<Keyspace>().is_ok());
        for bad in ["", "1abc", "Upper", "a-b", "a;DROP", &"a".repeat(49)] {
            assert!(bad.parse::<Keyspace>().is_err(), "{bad}");
        }
    }
}
