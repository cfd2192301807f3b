//! A JSON object body, read as it comes: each reading is checked as soon as its object has
//! been read into one reused [`Members`], so the body never becomes a tree of values first.
//!
//! Problems are listed in the order of the body.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{kind_names, not_an_object, parse_reading, FieldProblem, ParseError, Window};
use crate::ingest::lenient::{read_past_scalars, Lenient};
use crate::ingest::members::{Members, MAX_OBJECT_KEYS};
use crate::ingest::problems::Problems;
use crate::model::kind::{KindInfo, ALL};
use crate::model::{Reading, ReadingIds};

/// Reads a non-blank body: its valid readings and the problems of the others.
pub(super) fn read(body: &str, window: &Window) -> Result<(Vec<Reading>, Problems), ParseError> {
    if !body
        .trim_start_matches(|c: char| c.is_ascii_whitespace())
        .starts_with('{')
    {
        return Err(ParseError::Malformed(
            "the body must be a JSON object {\"api\": [...], \"host\": [...]}".into(),
        ));
    }
    let mut state = Body {
        window,
        ids: ReadingIds::at(window.now),
        readings: Vec::new(),
        problems: Problems::default(),
        members: Members::default(),
    };
    let mut de = serde_json::Deserializer::from_str(body);
    de.deserialize_map(&mut state)
        .and_then(|()| de.end())
        .map_err(|e| ParseError::Malformed(format!("malformed JSON: {e}")))?;
    Ok((state.readings, state.problems))
}

/// What has been read so far.
struct Body<'w, 'de> {
    window: &'w Window,
    /// The ids of this body's readings.
    ids: ReadingIds,
    readings: Vec<Reading>,
    problems: Problems,
    /// The reading being read.
    members: Members<'de>,
}

impl Body<'_, '_> {
    fn problem(&mut self, kind: Option<&'static str>, field: &str, problem: String) {
        self.problems.push(FieldProblem {
            index: 0,
            kind,
            field: field.to_owned(),
            problem,
        });
    }
}

/// The top-level object: one list of readings per kind.
impl<'de> Visitor<'de> for &mut Body<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Each key once, with whether it was reported as given more than once.
        let mut keys: Vec<(Cow<'de, str>, bool)> = Vec::new();
        while let Some(key) = map.next_key::<Lenient<'de>>()? {
            let Lenient::Str(key) = key else {
                return Err(A::Error::custom("an object key must be a string"));
            };
            if let Some((_, reported)) = keys.iter_mut().find(|(known, _)| *known == key) {
                if !*reported {
                    *reported = true;
                    self.problem(None, &key, "given more than once".into());
                }
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if keys.len() == MAX_OBJECT_KEYS {
                return Err(A::Error::custom(format_args!(
                    "an object has more than {MAX_OBJECT_KEYS} keys; a body has at most {}",
                    ALL.len()
                )));
            }
            match KindInfo::named(&key) {
                Some(kind) => map.next_value_seed(List { kind, body: self })?,
                None => {
                    let problem =
                        format!("unknown top-level key; expected {}", kind_names(" and/or "));
                    self.problem(None, &key, problem);
                    map.next_value::<IgnoredAny>()?;
                }
            }
            keys.push((key, false));
        }
        Ok(())
    }
}

/// The list of readings of one kind.
struct List<'b, 'w, 'de> {
    kind: &'static KindInfo,
    body: &'b mut Body<'w, 'de>,
}

impl List<'_, '_, '_> {
    /// A value that is not an array.
    fn other_shape(self) {
        let kind = self.kind.name;
        self.body
            .problem(Some(kind), kind, "must be an array of readings".into());
    }
}

impl<'de> DeserializeSeed<'de> for List<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for List<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of readings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Body {
            window,
            ids,
            readings,
            problems,
            members,
        } = self.body;
        let mut index = 0;
        while let Some(is_object) = seq.next_element_seed(members.read())? {
            if is_object {
                readings.extend(parse_reading(
                    self.kind, members, index, window, ids, problems,
                ));
            } else {
                problems.push(not_an_object(index, Some(self.kind.name)));
            }
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.other_shape();
        Ok(())
    }

    read_past_scalars!();
}
