//! The Prometheus text format (0.0.4) and OpenMetrics text (1.0) tokenised line by line into
//! samples, with each sample's family found from the `# TYPE` lines.
//!
//! Hand-written: see the parent module for the crates evaluated and why none fits. The grammar
//! is the one Prometheus' own `textparse` package accepts:
//!
//! ```text
//! line     = "" | "# HELP ..." | "# TYPE name type" | "# UNIT ..." | "# EOF" | "# other comment"
//!          | name [ "{" [ label { "," label } [","] ] "}" ] value [ timestamp ] [ " # " exemplar ]
//! label    = label_name "=" '"' escaped text ('\\', '\"', '\n') '"'   (blanks allowed around)
//! value    = a float, "NaN", "+Inf", "-Inf"
//! timestamp= integer ms (Prometheus text) | float seconds (OpenMetrics)
//! ```
//!
//! Invariants: the result borrows from the body (a label value is copied only when it holds an
//! escape); a malformed sample line fails the whole exposition with its line number, as it fails
//! a Prometheus scrape: half a histogram would be worse than none. Things that cannot change a
//! value — comments, HELP and UNIT text, blank lines, unknown TYPE words, exemplars — never fail
//! it.

use std::borrow::Cow;
use std::collections::HashMap;

/// Which text format a target answered in (from its Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `text/plain; version=0.0.4`: timestamps are integer milliseconds.
    Prometheus,
    /// `application/openmetrics-text`: timestamps are float seconds; `# EOF` ends the body.
    OpenMetrics,
}

impl Dialect {
    /// The dialect a `Content-Type` header names (Prometheus text when absent or unknown, as
    /// Prometheus itself falls back).
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        match content_type {
            Some(ct) if ct.trim_start().starts_with("application/openmetrics-text") => {
                Dialect::OpenMetrics
            }
            _ => Dialect::Prometheus,
        }
    }
}

/// A family's type, from its `# TYPE` line (`Unknown` without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// A running total.
    Counter,
    /// A current value.
    Gauge,
    /// Cumulative `_bucket{le}` counts, `_sum`, `_count`.
    Histogram,
    /// `{quantile}` values, `_sum`, `_count`.
    Summary,
    /// Anything else (`untyped`, `unknown`, `info`, `stateset`, `gaugehistogram`, none).
    Unknown,
}

impl MetricType {
    fn parse(word: &str) -> Self {
        match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            _ => MetricType::Unknown,
        }
    }
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The sample's own name (`http_requests_total`, `x_bucket`).
    pub name: &'a str,
    /// Label pairs in the order written.
    pub labels: Vec<(&'a str, Cow<'a, str>)>,
    /// The value.
    pub value: f64,
    /// The sample's own timestamp, epoch ms, when it carries one.
    pub timestamp_ms: Option<i64>,
}

impl Sample<'_> {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// The suffix that ties a sample to its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suffix {
    /// The sample is named like its family.
    None,
    /// `_bucket`
    Bucket,
    /// `_sum`
    Sum,
    /// `_count`
    Count,
    /// `_total` (OpenMetrics counters)
    Total,
    /// `_created`
    Created,
}

const SUFFIXES: [(&str, Suffix); 5] = [
    ("_bucket", Suffix::Bucket),
    ("_sum", Suffix::Sum),
    ("_count", Suffix::Count),
    ("_total", Suffix::Total),
    ("_created", Suffix::Created),
];

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition<'a> {
    /// Every sample, in order.
    pub samples: Vec<Sample<'a>>,
    types: HashMap<&'a str, MetricType>,
}

impl<'a> Exposition<'a> {
    /// The family a sample named `name` belongs to: its name, type and the sample's suffix. A
    /// `# TYPE` for the exact name wins (Prometheus text types `x_total` itself); otherwise the
    /// name less a known suffix (OpenMetrics types `x` for `x_total`, both formats `x` for
    /// `x_bucket`); otherwise the name itself, untyped.
    pub fn family_of<'n>(&self, name: &'n str) -> (&'n str, MetricType, Suffix) {
        if let Some(t) = self.types.get(name) {
            return (name, *t, Suffix::None);
        }
        for (text, suffix) in SUFFIXES {
            if let Some(base) = name.strip_suffix(text) {
                if let Some(t) = self.types.get(base) {
                    return (base, *t, suffix);
                }
            }
        }
        (name, MetricType::Unknown, Suffix::None)
    }
}

/// Why an exposition cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub problem: &'static str,
}

/// Tokenises `text`.
pub fn parse(text: &str, dialect: Dialect) -> Result<Exposition<'_>, ParseError> {
    let mut out = Exposition::default();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let fail = |problem| ParseError {
            line: index + 1,
            problem,
        };
        let trimmed = line.trim_matches(|c| c == ' ' || c == '\t');
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let mut words = comment.split_ascii_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("EOF"), None, _) => break,
                (Some("TYPE"), Some(name), Some(kind)) if is_metric_name(name) => {
                    out.types.insert(name, MetricType::parse(kind));
                }
                (Some("TYPE"), _, _) => return Err(fail("malformed # TYPE line")),
                _ => {}
            }
            continue;
        }
        out.samples.push(sample(trimmed, dialect).map_err(fail)?);
    }
    Ok(out)
}

/// One sample line (not blank, not a comment).
fn sample(line: &str, dialect: Dialect) -> Result<Sample<'_>, &'static str> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err("expected a metric name");
    }
    let mut rest = skip_blanks(&line[name_end..]);
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = label_set(after, &mut labels)?;
    }
    if rest.len() == line.len() - name_end && !rest.is_empty() && !starts_blank(rest) {
        return Err("expected a blank after the metric name");
    }
    let rest = skip_blanks(rest);
    // An OpenMetrics exemplar (` # {...} v [ts]`) carries nothing we keep.
    let rest = rest.split(" # ").next().unwrap_or(rest);
    let mut fields = rest.split_ascii_whitespace();
    let value = fields.next().ok_or("expected a value")?;
    let value = parse_float(value).ok_or("the value is not a number")?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(ts) => Some(timestamp(ts, dialect).ok_or("the timestamp is not a number")?),
    };
    if fields.next().is_some() {
        return Err("unexpected text after the timestamp");
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// Reads `name="value", ...}` and returns what follows the `}`.
fn label_set<'a>(
    mut rest: &'a str,
    labels: &mut Vec<(&'a str, Cow<'a, str>)>,
) -> Result<&'a str, &'static str> {
    loop {
        rest = skip_blanks(rest);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err("expected a label name");
        }
        rest = skip_blanks(&rest[end..]);
        rest = skip_blanks(
            rest.strip_prefix('=')
                .ok_or("expected '=' after a label name")?,
        );
        rest = rest
            .strip_prefix('"')
            .ok_or("expected a quoted label value")?;
        let (value, after) = quoted(rest)?;
        labels.push((name, value));
        rest = skip_blanks(after);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("expected ',' or '}' after a label");
        }
    }
}

/// The text up to the closing quote (unescaped) and what follows it.
fn quoted(text: &str) -> Result<(Cow<'_, str>, &str), &'static str> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut escaped = false;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => break,
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
    if i >= bytes.len() {
        return Err("unterminated label value");
    }
    let raw = &text[..i];
    let value = if escaped {
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => return Err("unterminated escape in a label value"),
            }
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(raw)
    };
    Ok((value, &text[i + 1..]))
}

fn is_metric_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn skip_blanks(text: &str) -> &str {
    text.trim_start_matches([' ', '\t'])
}

fn starts_blank(text: &str) -> bool {
    text.starts_with([' ', '\t'])
}

/// Go's `ParseFloat` spellings: Rust's parser already takes `NaN`, `Inf`, `+Inf` in any case.
fn parse_float(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

fn timestamp(text: &str, dialect: Dialect) -> Option<i64> {
    match dialect {
        Dialect::Prometheus => text.parse::<i64>().ok(),
        Dialect::OpenMetrics => {
            let seconds = text.parse::<f64>().ok().filter(|s| s.is_finite())?;
            Some((seconds * 1000.0).round() as i64)
        }
    }
}

#[cfg(test)]
mod tests;
