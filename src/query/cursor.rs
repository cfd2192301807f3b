//! The opaque `/v1/readings` cursor: where a page ended, bound to the query that made it.
//!
//! ```text
//! base64url (no padding) of 33 bytes:
//!   version:u8 (1) | timestamp:i64 BE | reading_id:16 | check:8
//!   check = SHA-256(version | fingerprint of the query parameters | timestamp | reading_id)[..8]
//! ```
//!
//! The key is the `(timestamp, reading_id)` of the last reading the page consumed; the next page
//! holds exactly the readings strictly after it in the query's order. Keys are unique and every
//! partition is sorted by them, so resuming is exact across bucket and shard boundaries: nothing
//! is lost or repeated. The check makes a cursor used with other parameters (or edited) a
//! clear 400 instead of a silently wrong page; it is an integrity check, not a secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::{ReadingId, TimestampMs};
use crate::store::ReadingKey;

/// The layout version written by this build.
const VERSION: u8 = 1;
/// Bytes of an encoded cursor.
const LEN: usize = 1 + 8 + 16 + 8;

fn check(fingerprint: &str, timestamp: i64, id: &Uuid) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update([VERSION])
        .chain_update(fingerprint.as_bytes())
        .chain_update(timestamp.to_be_bytes())
        .chain_update(id.as_bytes())
        .finalize();
    let mut out = [0; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// The cursor for "continue after `key`" in the query with this `fingerprint`.
pub fn encode(key: ReadingKey, fingerprint: &str) -> String {
    let timestamp = key.timestamp.millis();
    let id = key.id.uuid();
    let mut bytes = Vec::with_capacity(LEN);
    bytes.push(VERSION);
    bytes.extend_from_slice(&timestamp.to_be_bytes());
    bytes.extend_from_slice(id.as_bytes());
    bytes.extend_from_slice(&check(fingerprint, timestamp, &id));
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The key a cursor resumes after, if it was made by [`encode`] for this `fingerprint`; the
/// error is the problem to report on the `cursor` parameter.
pub fn decode(text: &str, fingerprint: &str) -> Result<ReadingKey, String> {
    const NOT_OURS: &str = "is not a cursor from a previous page (pass `next_cursor` unchanged)";
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| NOT_OURS.to_owned())?;
    match bytes.first() {
        Some(&VERSION) if bytes.len() == LEN => {}
        Some(&VERSION) | None => return Err(NOT_OURS.into()),
        Some(other) => {
            return Err(format!(
                "was made by another version of timebucket (cursor version {other}); start again without a cursor"
            ))
        }
    }
    let timestamp = i64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
    let id = Uuid::from_slice(&bytes[9..25]).expect("16 bytes");
    if bytes[25..] != check(fingerprint, timestamp, &id) {
        return Err(
            "was made for other parameters (service, from, to, filters and order must stay the same) or was altered"
                .into(),
        );
    }
    Ok(ReadingKey {
        timestamp: TimestampMs::from_millis(timestamp),
        id: ReadingId::from_uuid(id),
    })
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

    proptest! {
        #[test]
        fn a_cursor_round_trips(ms in any::<i64>(), id in any::<u128>(), fp in ".{0,40}") {
            let k = key(ms, id);
            prop_assert_eq!(decode(&encode(k, &fp), &fp), Ok(k));
        }

        #[test]
        fn any_altered_character_is_refused(ms in any::<i64>(), id in any::<u128>(), at in 0usize..44, by in 1u8..63) {
            const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let text = encode(key(ms, id), "fp");
            let mut bytes = text.into_bytes();
            let i = at % bytes.len();
            let pos = ALPHABET.iter().position(|c| *c == bytes[i]).unwrap();
            bytes[i] = ALPHABET[(pos + usize::from(by)) % 64];
            let altered = String::from_utf8(bytes).unwrap();
            prop_assert!(decode(&altered, "fp").is_err());
        }
    }

    #[test]
    fn other_parameters_garbage_and_versions_are_refused() {
        let text = encode(key(1, 2), "service=a");
        assert!(decode(&text, "service=b")
            .unwrap_err()
            .contains("other parameters"));
        assert!(decode("not base64!", "x").is_err());
        assert!(decode("", "x").is_err());
        let mut v2 = URL_SAFE_NO_PAD.decode(&text).unwrap();
        v2[0] = 2;
        assert!(decode(&URL_SAFE_NO_PAD.encode(v2), "service=a")
            .unwrap_err()
            .contains("another version"));
    }
}
