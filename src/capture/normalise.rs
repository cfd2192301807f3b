//! The path normaliser: a raw URL path becomes a path template of bounded cardinality.
//!
//! A route template (`/users/{id}`, from the router) is always preferred; this is the fallback for
//! requests no router matched (404s, scanners) and for stacks with no router (plain hyper). It
//! replaces each path segment that looks like an identifier:
//!
//! | segment | becomes |
//! | --- | --- |
//! | only ASCII digits (`42`) | `{id}` |
//! | a UUID, 8-4-4-4-12 hex digits (`0b7e…-…`) | `{uuid}` |
//! | [`MIN_HEX_ID_CHARS`] or more hex digits with at least one digit (`5f2b9c1e`, a SHA) | `{hex}` |
//!
//! Invariant: whatever the input (and whatever a custom normaliser returns), the output is a valid
//! [`ApiPath`]: it starts with `/`, has no control characters and fits [`MAX_PATH_BYTES`], so a
//! strange request can never make the collector refuse a whole batch.

use std::fmt;
use std::sync::Arc;

use crate::model::names::MAX_PATH_BYTES;
use crate::model::ApiPath;

/// Shortest run of hex digits taken for an identifier: shorter ones are as likely to be words
/// (`cafe`, `add`, `bed`).
pub const MIN_HEX_ID_CHARS: usize = 8;

type Rewrite = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Turns a raw URL path into a template. Cheap to clone.
#[derive(Clone, Default)]
pub struct PathNormaliser {
    /// A caller's rewrite, replacing the built-in rules; `None` for the built-in rules.
    custom: Option<Rewrite>,
}

impl PathNormaliser {
    /// The built-in rules (see the module notes).
    pub fn builtin() -> Self {
        Self::default()
    }

    /// A caller's own rewrite, e.g. one that knows the app's slugs. Its output is still made a
    /// valid path (leading `/`, control characters removed, length bounded).
    pub fn custom(rewrite: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        Self {
            custom: Some(Arc::new(rewrite)),
        }
    }

    /// The template of `raw` (the path only, without the query string).
    pub fn normalise(&self, raw: &str) -> ApiPath {
        let rewritten = match &self.custom {
            Some(rewrite) => rewrite(raw),
            None => builtin(raw),
        };
        sanitise(&rewritten)
    }
}

impl fmt::Debug for PathNormaliser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.custom {
            Some(_) => "PathNormaliser(custom)",
            None => "PathNormaliser(builtin)",
        })
    }
}

/// The built-in rules: each identifier-looking segment replaced by its placeholder.
pub fn builtin(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for (i, segment) in raw.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(placeholder(segment).unwrap_or(segment));
    }
    out
}

fn placeholder(segment: &str) -> Option<&'static str> {
    let bytes = segment.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        return Some("{id}");
    }
    if is_uuid(bytes) {
        return Some("{uuid}");
    }
    let hex = bytes.len() >= MIN_HEX_ID_CHARS
        && bytes.iter().all(u8::is_ascii_hexdigit)
        && bytes.iter().any(u8::is_ascii_digit);
    hex.then_some("{hex}")
}

fn is_uuid(bytes: &[u8]) -> bool {
    const DASHES: [usize; 4] = [8, 13, 18, 23];
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| {
            if DASHES.contains(&i) {
                *b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// Makes any text a valid [`ApiPath`]: leading `/`, no control characters, at most
/// [`MAX_PATH_BYTES`] (cut at a character boundary).
pub(crate) fn sanitise(text: &str) -> ApiPath {
    let mut path = String::with_capacity(text.len() + 1);
    if !text.starts_with('/') {
        path.push('/');
    }
    for c in text.chars().filter(|c| !c.is_control()) {
        if path.len() + c.len_utf8() > MAX_PATH_BYTES {
            break;
        }
        path.push(c);
    }
    ApiPath::parse(&path)
        .expect("a sanitised path starts with '/', is bounded and has no control characters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_segments_become_placeholders() {
        let cases = [
            ("/users/42", "/users/{id}"),
            ("/users/42/orders/7", "/users/{id}/orders/{id}"),
            (
                "/items/0b7e2a52-3f4c-4d1e-9a8b-1c2d3e4f5a6b",
                "/items/{uuid}",
            ),
            (
                "/items/0B7E2A52-3F4C-4D1E-9A8B-1C2D3E4F5A6B/x",
                "/items/{uuid}/x",
            ),
            ("/commits/5f2b9c1e", "/commits/{hex}"),
            (
                "/commits/da39a3ee5e6b4b0d3255bfef95601890afd80709",
                "/commits/{hex}",
            ),
            ("/blobs/deadbeefcafe", "/blobs/deadbeefcafe"),
            ("/cafe/add/bed", "/cafe/add/bed"),
            ("/v1/users", "/v1/users"),
            ("/users/abc-42", "/users/abc-42"),
            ("/", "/"),
            ("/a//b/", "/a//b/"),
        ];
        for (raw, want) in cases {
            assert_eq!(
                PathNormaliser::builtin().normalise(raw).as_str(),
                want,
                "{raw}"
            );
        }
    }

    #[test]
    fn a_thousand_ids_make_one_template() {
        let normaliser = PathNormaliser::builtin();
        let templates: std::collections::HashSet<_> = (0..1000)
            .map(|i| normaliser.normalise(&format!("/users/{i}/cart")))
            .collect();
        assert_eq!(templates.len(), 1);
    }

    #[test]
    fn any_output_is_a_valid_path() {
        let long = PathNormaliser::custom(|_| "é".repeat(MAX_PATH_BYTES));
        let path = long.normalise("/x");
        assert!(path.as_str().len() <= MAX_PATH_BYTES);
        assert!(path.as_str().starts_with("/é"));
        let odd = PathNormaliser::custom(|raw| format!("no-slash\n{raw}"));
        assert_eq!(odd.normalise("/x").as_str(), "/no-slash/x");
        assert_eq!(
            PathNormaliser::custom(|_| String::new())
                .normalise("/x")
                .as_str(),
            "/"
        );
        assert_eq!(PathNormaliser::builtin().normalise("*").as_str(), "/*");
    }
}
