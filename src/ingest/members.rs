//! The members of one reading object, read straight into one slot per name a reading may have,
//! instead of into a list of keys and values that every field then searches.
//!
//! The names are those of every kind's fields, `service`, `timestamp` and (for NDJSON) `kind`:
//! the slot of a member is found as its key is read, usually at the first guess (clients write
//! a kind's fields in declared order, and the guess is the slot after the last one filled). A
//! key no kind declares is kept aside, to be reported by name; an array or object given as a
//! value is read past ([`Lenient`]).
//!
//! Hostile objects stay cheap: an object may hold at most [`MAX_OBJECT_KEYS`] members (far more
//! than a reading has), so looking for an unknown key given twice costs at most that many
//! comparisons per key: the whole read is linear in the body. A repeated key is never silently
//! resolved: its first value is kept and the key is reported by name.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::lenient::{read_past_scalars, Lenient};
use crate::model::kind::{KindInfo, ALL, MAX_FIELDS};

/// The most members one object may have. A reading has at most 14 fields, the top level two;
/// bigger objects are refused before their keys cost anything more.
pub const MAX_OBJECT_KEYS: usize = 64;

/// The slot of `kind` (an NDJSON line's kind).
pub const KIND: usize = 0;
/// The slot of `service`.
pub const SERVICE: usize = 1;
/// The slot of `timestamp`.
pub const TIMESTAMP: usize = 2;

/// Room for every name: the three above and every field of every kind (shared names take one).
const MAX_NAMES: usize = 3 + MAX_FIELDS * ALL.len();

/// Every name a reading may have, and where each kind's fields are among them.
struct Names {
    names: Vec<&'static str>,
    /// For each kind (by index), the slot of each of its fields (in field order).
    of_kind: [[usize; MAX_FIELDS]; ALL.len()],
}

static NAMES: LazyLock<Names> = LazyLock::new(|| {
    let mut names = vec!["kind", "service", "timestamp"];
    let mut of_kind = [[0; MAX_FIELDS]; ALL.len()];
    for kind in ALL {
        for (i, field) in kind.fields.iter().enumerate() {
            of_kind[kind.index][i] = match names.iter().position(|name| *name == field.name) {
                Some(at) => at,
                None => {
                    names.push(field.name);
                    names.len() - 1
                }
            };
        }
    }
    Names { names, of_kind }
});

impl Names {
    /// The slot of `key`, trying `guess` first.
    fn slot(&self, key: &str, guess: usize) -> Option<usize> {
        if self.names.get(guess) == Some(&key) {
            return Some(guess);
        }
        self.names.iter().position(|name| *name == key)
    }
}

/// The slot of field `i` of `kind`.
pub fn slot_of_field(kind: &KindInfo, i: usize) -> usize {
    NAMES.of_kind[kind.index][i]
}

/// The members of one object, by name. Read one with [`Members::read`]; take the values a kind
/// uses, then report the [`Members::leftovers`].
#[derive(Debug)]
pub struct Members<'de> {
    slots: [Option<Lenient<'de>>; MAX_NAMES],
    /// One bit per slot that holds a value.
    filled: u64,
    /// One bit per slot given more than once.
    repeated: u64,
    /// Keys no kind has, each with whether it was given more than once.
    unknown: Vec<(Cow<'de, str>, bool)>,
    count: usize,
}

impl Default for Members<'_> {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| None),
            filled: 0,
            repeated: 0,
            unknown: Vec::new(),
            count: 0,
        }
    }
}

impl<'de> Members<'de> {
    /// A seed that reads one value into these (emptied) members and answers whether it was an
    /// object: anything else is read past.
    pub fn read(&mut self) -> ReadMembers<'_, 'de> {
        for slot in bits(self.filled) {
            self.slots[slot] = None;
        }
        self.filled = 0;
        self.repeated = 0;
        self.unknown.clear();
        self.count = 0;
        ReadMembers(self)
    }

    /// Removes the value in `slot`.
    pub fn take(&mut self, slot: usize) -> Option<Lenient<'de>> {
        self.filled &= !(1 << slot);
        self.slots[slot].take()
    }

    /// The members nobody took, each with `false`, and every key given more than once, with
    /// `true`; sorted.
    pub fn leftovers(&mut self) -> Vec<(String, bool)> {
        let names = &NAMES.names;
        let untaken = bits(self.filled).map(|slot| (names[slot].to_owned(), false));
        let repeated = bits(self.repeated).map(|slot| (names[slot].to_owned(), true));
        let mut left: Vec<(String, bool)> = untaken.chain(repeated).collect();
        for (key, repeated) in self.unknown.drain(..) {
            if repeated {
                left.push((key.to_string(), true));
            }
            left.push((key.into_owned(), false));
        }
        left.sort_unstable();
        left
    }

    fn insert<A: MapAccess<'de>>(
        &mut self,
        key: Cow<'de, str>,
        guess: usize,
        map: &mut A,
    ) -> Result<Option<usize>, A::Error> {
        let Some(slot) = NAMES.slot(&key, guess) else {
            map.next_value::<IgnoredAny>()?;
            match self.unknown.iter_mut().find(|(known, _)| *known == key) {
                Some((_, repeated)) => *repeated = true,
                None => self.unknown.push((key, false)),
            }
            return Ok(None);
        };
        if self.slots[slot].is_some() {
            self.repeated |= 1 << slot;
            map.next_value::<IgnoredAny>()?;
        } else {
            self.slots[slot] = Some(map.next_value()?);
            self.filled |= 1 << slot;
        }
        Ok(Some(slot))
    }
}

/// The positions of the bits set in `set`, lowest first.
fn bits(mut set: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let at = set.trailing_zeros() as usize;
        set &= set.wrapping_sub(1);
        (at < 64).then_some(at)
    })
}

/// Reads one value into [`Members`]; see [`Members::read`].
pub struct ReadMembers<'m, 'de>(&'m mut Members<'de>);

impl ReadMembers<'_, '_> {
    /// A value that is not an object.
    fn other_shape(self) -> bool {
        false
    }
}

impl<'de> DeserializeSeed<'de> for ReadMembers<'_, 'de> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ReadMembers<'_, 'de> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a reading")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let members = self.0;
        let mut guess = 0;
        // A key is read as a value: JSON keys are strings, so it is a (borrowed) `Str`.
        while let Some(key) = map.next_key::<Lenient<'de>>()? {
            let Lenient::Str(key) = key else {
                return Err(serde::de::Error::custom("an object key must be a string"));
            };
            if members.count == MAX_OBJECT_KEYS {
                return Err(serde::de::Error::custom(format_args!(
                    "an object has more than {MAX_OBJECT_KEYS} keys; a reading has at most 14"
                )));
            }
            members.count += 1;
            if let Some(slot) = members.insert(key, guess, &mut map)? {
                guess = slot + 1;
            }
        }
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.other_shape())
    }

    read_past_scalars!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `text` into members; `None` when it is not an object.
    fn read(text: &str) -> Option<Members<'_>> {
        let mut members = Members::default();
        let mut de = serde_json::Deserializer::from_str(text);
        let is_object = members.read().deserialize(&mut de).unwrap();
        de.end().unwrap();
        is_object.then_some(members)
    }

    #[test]
    fn every_name_fits_and_has_one_slot() {
        let names = &NAMES.names;
        assert!(names.len() <= MAX_NAMES && MAX_NAMES <= 64, "{names:?}");
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "{names:?}");
        assert_eq!(
            [names[KIND], names[SERVICE], names[TIMESTAMP]],
            ["kind", "service", "timestamp"]
        );
        for kind in ALL {
            for (i, field) in kind.fields.iter().enumerate() {
                assert_eq!(names[slot_of_field(kind, i)], field.name);
            }
        }
    }

    #[test]
    fn plain_values_borrow_from_the_body_and_escaped_keys_are_found() {
        let mut members = read(r#"{"service": "checkout", "\u0074imestamp": 5}"#).unwrap();
        assert!(matches!(
            members.take(SERVICE),
            Some(Lenient::Str(Cow::Borrowed("checkout")))
        ));
        assert_eq!(members.take(TIMESTAMP), Some(Lenient::Number(5.into())));
        assert_eq!(members.take(SERVICE), None, "taken once");
        assert!(members.leftovers().is_empty());
    }

    #[test]
    fn a_repeated_key_keeps_its_first_value_and_is_reported_once() {
        let mut members =
            read(r#"{"service": "a", "service": "b", "x": 1, "service": "c", "x": 2}"#).unwrap();
        assert_eq!(members.take(SERVICE), Some(Lenient::Str("a".into())));
        assert_eq!(
            members.leftovers(),
            [
                ("service".to_owned(), true),
                ("x".to_owned(), false),
                ("x".to_owned(), true)
            ]
        );
    }

    #[test]
    fn members_nobody_took_are_left_over() {
        let mut members = read(r#"{"kind": "api", "service": "s", "path": {"a": [1]}}"#).unwrap();
        assert_eq!(members.take(SERVICE), Some(Lenient::Str("s".into())));
        let left: Vec<String> = members.leftovers().into_iter().map(|(k, _)| k).collect();
        assert_eq!(left, ["kind", "path"]);
    }

    #[test]
    fn anything_but_an_object_is_read_past() {
        for text in ["[1, {\"a\": 2}]", "1", "-1", "1.5", "\"s\"", "true", "null"] {
            assert!(read(text).is_none(), "{text}");
        }
    }

    #[test]
    fn an_object_with_far_more_keys_than_a_reading_is_refused() {
        let object = |n: usize| {
            let keys: Vec<String> = (0..n).map(|i| format!("\"k{i}\": 0")).collect();
            format!("{{{}}}", keys.join(","))
        };
        let mut members = Members::default();
        let fits = object(MAX_OBJECT_KEYS);
        let mut de = serde_json::Deserializer::from_str(&fits);
        assert!(members.read().deserialize(&mut de).unwrap());
        // 200k keys: refused after the 65th, without the quadratic cost of checking them all.
        let many = object(200_000);
        let mut de = serde_json::Deserializer::from_str(&many);
        let error = members.read().deserialize(&mut de).unwrap_err().to_string();
        assert!(error.contains("more than 64 keys"), "{error}");
    }
}
