//! The `[[token]]` tables of a TOML file (the config file, or `--tokens-file`): one per token,
//! holding its hash, never the token.
//!
//! ```toml
//! [[token]]
//! name = "ci-writer"                 # letters, digits, `-`, `_`, `.`; unique; shown in /metrics
//! scope = ["write"]                  # read, write, admin (one or more)
//! services = ["checkout", "search"]  # optional: only these services (all when left out)
//! hash = "sha256:9f86d08..."         # from `timebucket token new`
//! readings_per_second = 5000         # optional: a token bucket refilled at this rate...
//! burst = 20000                      # ...holding this many (default: readings_per_second)
//! max_series_per_bucket = 10000      # optional: distinct series per service per time bucket
//! ```
//!
//! The whole file is checked before anything uses it: a bad entry refuses the start, or the
//! reload (the running tokens stay), with the entry's position and name. Other keys of the
//! file are left to the config-file reader.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::token::{Scopes, TokenHash};
use crate::model::ServiceName;

/// The key of the token tables.
pub const TOKEN_KEY: &str = "token";
/// Longest token name, bytes (it becomes a label value in `/metrics`).
const MAX_NAME_BYTES: usize = 64;

/// One configured token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// Its name: in logs, `/metrics` and error messages instead of the token.
    pub name: String,
    /// What it may do.
    pub scopes: Scopes,
    /// The services it may read or write; `None`: all.
    pub services: Option<BTreeSet<ServiceName>>,
    /// The SHA-256 of the token.
    pub hash: TokenHash,
    /// Its limits.
    pub limits: TokenLimits,
}

/// Per-token limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenLimits {
    /// Readings per second, sustained.
    pub readings_per_second: Option<NonZeroU32>,
    /// Readings at once after a quiet spell; defaults to `readings_per_second`.
    pub burst: Option<NonZeroU32>,
    /// Distinct series per service per time bucket.
    pub max_series_per_bucket: Option<NonZeroU32>,
}

/// Why the token tables cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file cannot be read.
    #[error("cannot read the tokens in {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("the tokens file {} is not valid TOML: {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// An entry is wrong.
    #[error("{}: [[token]] number {} ({name}): {problem}", path.display(), position + 1)]
    Entry {
        /// The file.
        path: PathBuf,
        /// Its position among the `[[token]]` tables, from 0.
        position: usize,
        /// Its name, or `?` when it has none.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

/// One `[[token]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Option<String>,
    scope: Option<OneOrMany>,
    services: Option<Vec<String>>,
    hash: Option<String>,
    readings_per_second: Option<u32>,
    burst: Option<u32>,
    max_series_per_bucket: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Reads the `[[token]]` tables of `path` (none: an empty list).
pub fn load(path: &Path) -> Result<Vec<TokenSpec>, TokensError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses the `[[token]]` tables of `text` (read from `path`, named in errors).
pub fn parse(text: &str, path: &Path) -> Result<Vec<TokenSpec>, TokensError> {
    let mut table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| TokensError::Syntax {
                path: path.to_owned(),
                reason: e.message().to_owned(),
            })?;
    let Some(tokens) = table.remove(TOKEN_KEY) else {
        return Ok(Vec::new());
    };
    let entry_error = |position: usize, name: &str, problem: String| TokensError::Entry {
        path: path.to_owned(),
        position,
        name: name.to_owned(),
        problem,
    };
    let toml::Value::Array(entries) = tokens else {
        return Err(entry_error(
            0,
            "?",
            "`token` must be [[token]] tables".into(),
        ));
    };
    let mut specs = Vec::with_capacity(entries.len());
    let mut names = HashSet::new();
    for (position, entry) in entries.into_iter().enumerate() {
        let name = entry
            .get("name")
            .and_then(toml::Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let raw = RawToken::deserialize(entry)
            .map_err(|e| entry_error(position, &name, e.message().to_owned()))?;
        let spec = check(raw).map_err(|problem| entry_error(position, &name, problem))?;
        if !names.insert(spec.name.clone()) {
            return Err(entry_error(
                position,
                &name,
                "another token has this name".into(),
            ));
        }
        if specs.iter().any(|s: &TokenSpec| s.hash.matches(&spec.hash)) {
            return Err(entry_error(
                position,
                &name,
                "another token has this hash".into(),
            ));
        }
        specs.push(spec);
    }
    Ok(specs)
}

fn check(raw: RawToken) -> Result<TokenSpec, String> {
    let name = raw.name.ok_or("`name` is missing")?;
    let valid_name = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid_name {
        return Err(format!(
            "`name` must be 1 to {MAX_NAME_BYTES} letters, digits, `-`, `_` or `.`"
        ));
    }
    let scopes = match raw.scope.ok_or("`scope` is missing")? {
        OneOrMany::One(one) => Scopes::parse(one.split(',')),
        OneOrMany::Many(many) => Scopes::parse(many.iter().map(String::as_str)),
    }
    .map_err(|e| format!("`scope` {e}"))?;
    let services = match raw.services {
        None => None,
        Some(list) if list.is_empty() => {
            return Err("`services` is empty: leave it out for every service".into())
        }
        Some(list) => Some(
            list.iter()
                .map(|s| ServiceName::parse(s).map_err(|e| format!("service `{s}`: {e}")))
                .collect::<Result<BTreeSet<_>, _>>()?,
        ),
    };
    let hash = TokenHash::parse(&raw.hash.ok_or("`hash` is missing")?)
        .map_err(|e| format!("`hash` {e}"))?;
    let positive = |key: &str, value: Option<u32>| match value {
        None => Ok(None),
        Some(n) => NonZeroU32::new(n)
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be at least 1 (leave it out for no limit)")),
    };
    let limits = TokenLimits {
        readings_per_second: positive("readings_per_second", raw.readings_per_second)?,
        burst: positive("burst", raw.burst)?,
        max_series_per_bucket: positive("max_series_per_bucket", raw.max_series_per_bucket)?,
    };
    if limits.burst.is_some() && limits.readings_per_second.is_none() {
        return Err("`burst` needs `readings_per_second`".into());
    }
    Ok(TokenSpec {
        name,
        scopes,
        services,
        hash,
        limits,
    })
}

/// The `[[token]]` table of `spec`, as `timebucket token new` prints it.
pub fn render(spec: &TokenSpec) -> String {
    let quoted = |items: Vec<&str>| {
        let items: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
        format!("[{}]", items.join(", "))
    };
    let mut out = String::from("[[token]]\n");
    let _ = writeln!(out, "name = {:?}", spec.name);
    let _ = writeln!(
        out,
        "scope = {}",
        quoted(spec.scopes.iter().map(|s| s.as_str()).collect())
    );
    if let Some(services) = &spec.services {
        let _ = writeln!(
            out,
            "services = {}",
            quoted(services.iter().map(|s| s.as_str()).collect())
        );
    }
    let _ = writeln!(out, "hash = \"{}\"", spec.hash);
    let limits = [
        ("readings_per_second", spec.limits.readings_per_second),
        ("burst", spec.limits.burst),
        ("max_series_per_bucket", spec.limits.max_series_per_bucket),
    ];
    for (key, value) in limits {
        if let Some(value) = value {
            let _ = writeln!(out, "{key} = {value}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn parse_text(text: &str) -> Result<Vec<TokenSpec>, String> {
        parse(text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn rendered_tables_parse_back_and_other_keys_are_left_alone() {
        let spec = TokenSpec {
            name: "ci-writer".into(),
            scopes: Scopes::parse(["write"]).unwrap(),
            services: Some(
                ["checkout", "search"]
                    .iter()
                    .map(|s| ServiceName::parse(s).unwrap())
                    .collect(),
            ),
            hash: TokenHash::parse(HASH).unwrap(),
            limits: TokenLimits {
                readings_per_second: NonZeroU32::new(100),
                burst: None,
                max_series_per_bucket: NonZeroU32::new(5),
            },
        };
        let file = format!(
            "keyspace = \"x\"\n[serve]\nlisten = \"127.0.0.1:1\"\n\n{}",
            render(&spec)
        );
        assert_eq!(parse_text(&file).unwrap(), vec![spec]);
        assert_eq!(parse_text("keyspace = \"x\"\n").unwrap(), vec![]);
    }

    #[test]
    fn a_bad_entry_is_refused_with_its_position_and_name() {
        let entry = |extra: &str| {
            format!("[[token]]\nname = \"a\"\nscope = \"read\"\nhash = \"{HASH}\"\n{extra}")
        };
        assert_eq!(parse_text(&entry("")).unwrap().len(), 1);
        for (extra, expected) in [
            ("services = []\n", "`services` is empty"),
            ("burst = 5\n", "`burst` needs `readings_per_second`"),
            ("readings_per_second = 0\n", "at least 1"),
            ("scopes = [\"read\"]\n", "unknown field `scopes`"),
            ("services = [\"\"]\n", "service ``"),
        ] {
            let error = parse_text(&entry(extra)).unwrap_err();
            assert!(error.contains("[[token]] number 1 (a)"), "{error}");
            assert!(error.contains(expected), "{extra}: {error}");
        }
        let twice = format!(
            "{}{}",
            entry(""),
            entry("").replace("name = \"a\"", "name = \"b\"")
        );
        assert!(parse_text(&twice)
            .unwrap_err()
            .contains("number 2 (b): another token has this hash"));
        let bad_name = entry("").replace("name = \"a\"", "name = \"a b\"");
        assert!(parse_text(&bad_name)
            .unwrap_err()
            .contains("`name` must be"));
        assert!(parse_text("token = 1")
            .unwrap_err()
            .contains("[[token]] tables"));
    }
}
