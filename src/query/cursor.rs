//! The opaque cursors of the paged endpoints: where a page ended, bound to the query that made it.
//!
//! ```text
//! base64url (no padding) of:
//!   version:u8 (2) | position | check:8
//!   check = SHA-256(version | fingerprint | position)[..8]
//!
//! position of /v1/readings:           timestamp:i64 BE | reading_id:16
//! position of /v1/series, /v1/latest: count:u8 | (len:u16 BE | UTF-8 name) × count
//! fingerprint: the query's parameters, each as  0x00 (absent)
//!                                             | 0x01 len:u32 BE | UTF-8 text
//!                                             | 0x02 i64 BE
//! ```
//!
//! A readings position is the `(timestamp, reading_id)` of the last reading the page consumed;
//! the next page holds exactly the readings strictly after it in the query's order. Keys are
//! unique and every partition is sorted by them, so resuming is exact across bucket and shard
//! boundaries: nothing is lost or repeated. A series or latest position is the sort key (a few
//! names) of the last entry returned, and the next page starts strictly after it.
//!
//! The check makes a cursor used with other parameters (or edited) a clear 400 instead of a
//! silently wrong page; it is an integrity check, not a secret. The fingerprint is a fixed byte
//! encoding of the parameter values, never a `Debug` rendering, so renaming a Rust type cannot
//! invalidate cursors in clients' hands.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::{ReadingId, TimestampMs};
use crate::store::ReadingKey;

/// The layout version written by this build (1 fingerprinted a text rendering).
const VERSION: u8 = 2;
/// Bytes of a readings position.
const READING_POSITION: usize = 8 + 16;
/// Bytes of the check.
const CHECK: usize = 8;
/// Most names in a position.
const MAX_NAMES: usize = 8;

/// The parameters a cursor is bound to, in a stable byte encoding (see the module note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<u8>);

impl Fingerprint {
    /// The fingerprint of a query of `endpoint`; add its parameters in a fixed order.
    pub fn new(endpoint: &str) -> Self {
        Self(Vec::new()).text(endpoint)
    }

    /// Adds a text parameter.
    pub fn text(mut self, value: &str) -> Self {
        let len = u32::try_from(value.len()).expect("parameters are far below 4 GiB");
        self.0.push(1);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(value.as_bytes());
        self
    }

    /// Adds an optional text parameter.
    pub fn optional(self, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.text(value),
            None => self.absent(),
        }
    }

    /// Adds a number parameter.
    pub fn int(mut self, value: i64) -> Self {
        self.0.push(2);
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    fn absent(mut self) -> Self {
        self.0.push(0);
        self
    }

    /// The encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn check(fingerprint: &Fingerprint, position: &[u8]) -> [u8; CHECK] {
    let digest = Sha256::new()
        .chain_update([VERSION])
        .chain_update(fingerprint.as_bytes())
        .chain_update(position)
        .finalize();
    let mut out = [0; CHECK];
    out.copy_from_slice(&digest[..CHECK]);
    out
}

fn seal(position: &[u8], fingerprint: &Fingerprint) -> String {
    let mut bytes = Vec::with_capacity(1 + position.len() + CHECK);
    bytes.push(VERSION);
    bytes.extend_from_slice(position);
    bytes.extend_from_slice(&check(fingerprint, position));
    URL_SAFE_NO_PAD.encode(bytes)
}

const NOT_OURS: &str = "is not a cursor from a previous page (pass `next_cursor` unchanged)";

/// The position inside a cursor made by [`seal`] for this `fingerprint`.
fn open(text: &str, fingerprint: &Fingerprint) -> Result<Vec<u8>, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| NOT_OURS.to_owned())?;
    match bytes.first() {
        Some(&VERSION) if bytes.len() > 1 + CHECK => {}
        Some(&VERSION) | None => return Err(NOT_OURS.into()),
        Some(other) => {
            return Err(format!(
                "was made by another version of timebucket (cursor version {other}); start again without a cursor"
            ))
        }
    }
    let (position, sum) = bytes[1..].split_at(bytes.len() - 1 - CHECK);
    if sum != check(fingerprint, position) {
        return Err(
            "was made for other parameters (every parameter but `limit` must stay the same) or was altered"
                .into(),
        );
    }
    Ok(position.to_vec())
}

/// The cursor for "continue after `key`" in the readings query with this `fingerprint`.
pub fn encode(key: ReadingKey, fingerprint: &Fingerprint) -> String {
    let mut position = Vec::with_capacity(READING_POSITION);
    position.extend_from_slice(&key.timestamp.millis().to_be_bytes());
    position.extend_from_slice(key.id.uuid().as_bytes());
    seal(&position, fingerprint)
}

/// The key a readings cursor resumes after, if it was made by [`encode`] for this
/// `fingerprint`; the error is the problem to report on the `cursor` parameter.
pub fn decode(text: &str, fingerprint: &Fingerprint) -> Result<ReadingKey, String> {
    let position = open(text, fingerprint)?;
    if position.len() != READING_POSITION {
        return Err(NOT_OURS.into());
    }
    let timestamp = i64::from_be_bytes(position[..8].try_into().expect("8 bytes"));
    let id = Uuid::from_slice(&position[8..]).expect("16 bytes");
    Ok(ReadingKey {
        timestamp: TimestampMs::from_millis(timestamp),
        id: ReadingId::from_uuid(id),
    })
}

/// The cursor for "continue after the entry with sort key `names`" in the query with this
/// `fingerprint`.
pub fn encode_names(names: &[&str], fingerprint: &Fingerprint) -> String {
    assert!(names.len() <= MAX_NAMES, "a sort key has a few names");
    let mut position = vec![names.len() as u8];
    for name in names {
        let len = u16::try_from(name.len()).expect("names are at most 512 bytes");
        position.extend_from_slice(&len.to_be_bytes());
        position.extend_from_slice(name.as_bytes());
    }
    seal(&position, fingerprint)
}

/// The sort key a names cursor resumes after, if it was made by [`encode_names`] for this
/// `fingerprint`.
pub fn decode_names(text: &str, fingerprint: &Fingerprint) -> Result<Vec<String>, String> {
    let position = open(text, fingerprint)?;
    let (&count, mut rest) = position.split_first().ok_or(NOT_OURS)?;
    let mut names = Vec::with_capacity(usize::from(count).min(MAX_NAMES));
    for _ in 0..count {
        let (len, tail) = rest.split_at_checked(2).ok_or(NOT_OURS)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (name, tail) = tail.split_at_checked(len).ok_or(NOT_OURS)?;
        names.push(String::from_utf8(name.to_vec()).map_err(|_| NOT_OURS.to_owned())?);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(NOT_OURS.into());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(ms: i64, id: u128) -> ReadingKey {
        ReadingKey {
            timestamp: TimestampMs::from_millis(ms),
            id: ReadingId::from_uuid(Uuid::from_u128(id)),
        }
    }

    fn fp(text: &str) -> Fingerprint {
        Fingerprint::new("test").text(text)
    }

    proptest! {
        #[test]
        fn a_cursor_round_trips(ms in any::<i64>(), id in any::<u128>(), text in ".{0,40}") {
            let k = key(ms, id);
            prop_assert_eq!(decode(&encode(k, &fp(&text)), &fp(&text)), Ok(k));
        }

        #[test]
        fn a_names_cursor_round_trips(names in proptest::collection::vec(".{0,20}", 0..5)) {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let text = encode_names(&names, &fp("x"));
            prop_assert_eq!(decode_names(&text, &fp("x")), Ok(names.iter().map(|n| n.to_string()).collect()));
        }

        #[test]
        fn any_altered_character_is_refused(ms in any::<i64>(), id in any::<u128>(), at in 0usize..44, by in 1u8..63) {
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let text = encode(key(ms, id), &fp("fp"));
            let mut bytes = text.into_bytes();
            let i = at % bytes.len();
            let pos = ALPHABET.iter().position(|c| *c == bytes[i]).unwrap();
            bytes[i] = ALPHABET[(pos + usize::from(by)) % 64];
            let altered = String::from_utf8(bytes).unwrap();
            prop_assert!(decode(&altered, &fp("fp")).is_err());
        }
    }

    #[test]
    fn other_parameters_garbage_and_versions_are_refused() {
        let text = encode(key(1, 2), &fp("service=a"));
        assert!(decode(&text, &fp("service=b"))
            .unwrap_err()
            .contains("other parameters"));
        assert!(decode("not base64!", &fp("x")).is_err());
        assert!(decode("", &fp("x")).is_err());
        let mut v1 = URL_SAFE_NO_PAD.decode(&text).unwrap();
        v1[0] = 1;
        assert!(decode(&URL_SAFE_NO_PAD.encode(v1), &fp("service=a"))
            .unwrap_err()
            .contains("another version"));
        // A names cursor is no readings cursor, even with the right check.
        let names = encode_names(&["a", "b"], &fp("x"));
        assert!(decode(&names, &fp("x")).is_err());
    }

    #[test]
    fn the_fingerprint_is_a_fixed_encoding_of_the_values() {
        let fingerprint = Fingerprint::new("readings")
            .text("shop")
            .int(-2)
            .optional(None)
            .optional(Some(""));
        let mut want = vec![1, 0, 0, 0, 8];
        want.extend_from_slice(b"readings");
        want.extend_from_slice(&[1, 0, 0, 0, 4]);
        want.extend_from_slice(b"shop");
        want.extend_from_slice(&[2, 255, 255, 255, 255, 255, 255, 255, 254]);
        want.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
        assert_eq!(fingerprint.as_bytes(), want.as_slice());
        // Field boundaries are part of the encoding: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(
            Fingerprint::new("x").text("ab").text("c"),
            Fingerprint::new("x").text("a").text("bc")
        );
    }
}
