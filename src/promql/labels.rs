//! Label sets and label matchers, as PromQL sees them.
//!
//! Invariants of [`Labels`]: pairs are sorted by name, names are unique, and no value is empty
//! (in PromQL an empty value and an absent label are the same thing, so the empty value is never
//! stored). Two label sets are equal exactly when they name the same series.

use std::fmt;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::VectorSelector;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// The label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// A series' labels, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// A label set from pairs in any order; empty values are dropped, a repeated name keeps the
    /// last value.
    pub fn new<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut labels = Self::default();
        for (name, value) in pairs {
            labels.set(&name.into(), value.into());
        }
        labels
    }

    /// The value of `name`, or `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        self.position(name).map_or("", |i| self.0[i].1.as_str())
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: String) {
        match (self.position(name), value.is_empty()) {
            (Ok(i), true) => {
                self.0.remove(i);
            }
            (Ok(i), false) => self.0[i].1 = value,
            (Err(_), true) => {}
            (Err(i), false) => self.0.insert(i, (name.to_owned(), value)),
        }
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same labels without the metric name.
    pub fn without_name(&self) -> Self {
        self.without(&[])
    }

    /// Only the labels named in `names`.
    pub fn keep(&self, names: &[String]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(n, _)| names.contains(n))
                .cloned()
                .collect(),
        )
    }

    /// Every label except the metric name and those named in `names`.
    pub fn without(&self, names: &[String]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(n, _)| n != METRIC_NAME && !names.contains(n))
                .cloned()
                .collect(),
        )
    }

    /// True when every matcher accepts these labels (an absent label reads as `""`).
    pub fn matches(&self, matchers: &[Matcher]) -> bool {
        matchers.iter().all(|m| m.is_match(self.get(&m.name)))
    }
}

impl fmt::Display for Labels {
    /// `{a="1", b="2"}`, as Prometheus prints label sets in its error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Every matcher of a selector, the metric name (`x{...}`) included as a `__name__` matcher.
pub fn selector_matchers(selector: &VectorSelector) -> Vec<Matcher> {
    let mut matchers = selector.matchers.matchers.clone();
    if let Some(name) = &selector.name {
        matchers.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
    }
    matchers
}

/// The value an equality matcher on `name` requires, when there is one.
pub fn required_value<'m>(matchers: &'m [Matcher], name: &str) -> Option<&'m str> {
    matchers
        .iter()
        .find(|m| m.name == name && matches!(m.op, MatchOp::Equal))
        .map(|m| m.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_sorted_and_drop_empty_values() {
        let mut l = Labels::new([("b", "2"), ("a", "1"), ("c", "")]);
        assert_eq!(l.to_string(), r#"{a="1", b="2"}"#);
        l.set("a", String::new());
        assert_eq!(l.get("a"), "");
        l.set("__name__", "x".into());
        assert_eq!(l.without_name(), Labels::new([("b", "2")]));
        assert_eq!(l.keep(&["b".into()]), Labels::new([("b", "2")]));
    }
}
