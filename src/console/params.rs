//! A page's query string, and the links between pages.
//!
//! Pages are forgiving where the JSON API is strict: a form submits every field, filled or not,
//! so an empty value means "not given", and a parameter a page does not use is ignored rather
//! than refused (an old bookmark keeps working). Values that are used are still checked, by the
//! query layer's own rules, and a bad one is a 400 page naming it.
//!
//! Links are built here only: names are percent-encoded into paths and query strings, and the
//! markup escapes the result again as an attribute, so no user text can leave its place.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What a path segment or a query value keeps unencoded: RFC 3986's unreserved characters
/// (everything else, `&`, `=`, `+`, `/`, `#` and spaces included, is percent-encoded).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The `(name, value)` pairs of a query string, in order.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Wraps decoded pairs.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    }
}

/// `/services/NAME`, the name percent-encoded (a `/` in it stays inside the segment).
pub fn service_path(service: &str) -> String {
    format!("/services/{}", utf8_percent_encode(service, UNRESERVED))
}

/// `/services/NAME/readings`.
pub fn readings_path(service: &str) -> String {
    format!("{}/readings", service_path(service))
}

/// `path?k=v&…`, names and values percent-encoded; just `path` without pairs.
pub fn href<K: AsRef<str>, V: AsRef<str>>(path: &str, pairs: &[(K, V)]) -> String {
    let mut out = path.to_owned();
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.extend(utf8_percent_encode(k.as_ref(), UNRESERVED));
        out.push('=');
        out.extend(utf8_percent_encode(v.as_ref(), UNRESERVED));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_not_given() {
        let params = Params::new(vec![
            ("path".into(), "".into()),
            ("path".into(), "/pay".into()),
            ("code".into(), "  ".into()),
        ]);
        assert_eq!(params.get("path"), Some("/pay"));
        assert_eq!(params.get("code"), None);
        assert_eq!(params.get("other"), None);
    }

    #[test]
    fn names_cannot_escape_their_place_in_a_link() {
        assert_eq!(
            service_path("a/b <script>"),
            "/services/a%2Fb%20%3Cscript%3E"
        );
        assert_eq!(readings_path("shop"), "/services/shop/readings");
        assert_eq!(
            href("/x", &[("path", "/a&b=c d+"), ("q", "é")]),
            "/x?path=%2Fa%26b%3Dc%20d%2B&q=%C3%A9"
        );
        assert_eq!(href::<&str, &str>("/x", &[]), "/x");
    }
}
