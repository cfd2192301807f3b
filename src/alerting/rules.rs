//! Rule files in Prometheus' format, so a Prometheus user's files load unchanged:
//!
//! ```yaml
//! groups:
//!   - name: api                       # unique across every loaded file
//!     interval: 30s                   # default: --rule-evaluation-interval
//!     rules:
//!       - alert: HighErrorRate
//!         expr: sum by (service) (rate(...[5m])) / sum by (service) (rate(...[5m])) > 0.05
//!         for: 5m                     # pending this long before firing (default 0s)
//!         keep_firing_for: 0s         # keep firing this long after the condition clears
//!         labels: {severity: page}    # templates allowed in values
//!         annotations:
//!           summary: "{{ $labels.service }}: {{ humanizePercentage $value }} errors"
//! ```
//!
//! Every table is read with `deny_unknown_fields`, so a typo or a Prometheus feature we lack
//! (`limit`, `query_offset`, group `labels`) is named, never ignored; recording rules
//! (`record:`) are refused with the reason. Validation collects every problem of a file, each
//! with file, line, column, group and rule (as `promtool check rules` reports them): YAML by
//! `serde-saphyr`, whose `Spanned` values carry the line of each group, rule and field.
//! Expressions are parsed by the PromQL engine itself (so an unsupported function is an error
//! here, not at the first evaluation) and templates by the template engine.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use super::template;
use crate::promql::{PromqlError, Query};

/// One problem of a rule file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// The group's name, when the problem is inside one.
    pub group: Option<String>,
    /// The rule's name, when the problem is inside one.
    pub rule: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    /// `rules.yml:12:9: group "api": rule "HighErrorRate": expr: ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if let Some(group) = &self.group {
            write!(f, "group {group:?}: ")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, "rule {rule:?}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why rule files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// A file cannot be read.
    #[error("cannot read rule file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A `--rules` pattern is not a valid glob.
    #[error("--rules pattern {pattern:?} is not a valid glob: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// The files parse but have problems; every one is listed.
    #[error("{} problem(s) in the rule files:\n{}", problems.len(), Lines(problems))]
    Invalid {
        /// The problems, in file order.
        problems: Vec<Problem>,
    },
}

struct Lines<'a>(&'a [Problem]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  {problem}")?;
        }
        Ok(())
    }
}

/// A validated group of alerting rules.
#[derive(Debug, Clone)]
pub struct RuleGroup {
    /// Its name, unique across the loaded files (the key of its state in the store).
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// Time between two evaluations.
    pub interval: Duration,
    /// Its rules, in file order.
    pub rules: Vec<AlertRule>,
}

/// A validated alerting rule.
#[derive(Debug, Clone)]
pub struct AlertRule {
    /// `alert`: the `alertname` label of its alerts.
    pub name: String,
    /// `expr` as written.
    pub expr: String,
    /// `expr`, parsed and checked against the supported PromQL.
    pub query: Query,
    /// `for`: how long an alert stays pending before it fires.
    pub hold: Duration,
    /// `keep_firing_for`: how long a firing alert keeps firing after its condition cleared.
    pub keep_firing_for: Duration,
    /// `labels` (values are templates), sorted by name.
    pub labels: BTreeMap<String, String>,
    /// `annotations` (values are templates), sorted by name.
    pub annotations: BTreeMap<String, String>,
}

impl AlertRule {
    /// What makes a rule "the same" across a reload or a restart: its name, expression and
    /// labels. An alert's state is kept only while this stays the same (a changed `for` or
    /// annotation keeps it; a changed expression starts afresh).
    pub fn identity(&self) -> String {
        let mut hash = Sha256::new();
        for part in [self.name.as_str(), self.expr.trim()] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        for (name, value) in &self.labels {
            hash.update(name.as_bytes());
            hash.update([1]);
            hash.update(value.as_bytes());
            hash.update([0]);
        }
        hash.finalize()
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<Spanned<RawGroup>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    interval: Option<Spanned<String>>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    alert: Option<Spanned<String>>,
    record: Option<Spanned<String>>,
    expr: Option<Spanned<String>>,
    #[serde(rename = "for")]
    hold: Option<Spanned<String>>,
    keep_firing_for: Option<Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    annotations: BTreeMap<String, Spanned<String>>,
}

/// The files `patterns` name: each pattern a path or a glob (`rules/*.yml`), sorted and
/// without repeats. A glob that matches nothing is no error (as in Prometheus); a plain path
/// that does not exist is one, when it is read.
pub fn expand(patterns: &[String]) -> Result<Vec<PathBuf>, RulesError> {
    let mut files = BTreeSet::new();
    for pattern in patterns {
        if !pattern.contains(['*', '?', '[']) {
            files.insert(PathBuf::from(pattern));
            continue;
        }
        let paths = glob::glob(pattern).map_err(|e| RulesError::Pattern {
            pattern: pattern.clone(),
            reason: e.to_string(),
        })?;
        for path in paths {
            let path = path.map_err(|e| RulesError::Read {
                path: e.path().to_owned(),
                source: std::io::Error::new(e.error().kind(), e.error().to_string()),
            })?;
            files.insert(path);
        }
    }
    Ok(files.into_iter().collect())
}

/// One file's groups, or why it cannot be used.
type FileOutcome = Result<Vec<RuleGroup>, Vec<Problem>>;

/// Reads and validates every file of `patterns`, each on its own; a group name already used
/// by an earlier file is a problem of the later one. `Err` only for an unreadable file.
fn load_each(
    patterns: &[String],
    default_interval: Duration,
) -> Result<Vec<(PathBuf, FileOutcome)>, RulesError> {
    let mut seen: Vec<(String, PathBuf)> = Vec::new();
    let mut out = Vec::new();
    for file in expand(patterns)? {
        let text = std::fs::read_to_string(&file).map_err(|source| RulesError::Read {
            path: file.clone(),
            source,
        })?;
        let outcome = parse(&text, &file, default_interval).and_then(|groups| {
            let clashes: Vec<Problem> = groups
                .iter()
                .filter_map(|g| {
                    let (_, first) = seen.iter().find(|(name, _)| name == &g.name)?;
                    Some(Problem {
                        file: file.clone(),
                        line: 0,
                        column: 0,
                        group: Some(g.name.clone()),
                        rule: None,
                        message: format!(
                            "the group name is also used in {} (group names must be unique \
                             across rule files: they key the alerts' state)",
                            first.display()
                        ),
                    })
                })
                .collect();
            if clashes.is_empty() {
                Ok(groups)
            } else {
                Err(clashes)
            }
        });
        if let Ok(groups) = &outcome {
            seen.extend(groups.iter().map(|g| (g.name.clone(), file.clone())));
        }
        out.push((file, outcome));
    }
    Ok(out)
}

/// Reads and validates every file of `patterns`; group names must be unique across them.
pub fn load(patterns: &[String], default_interval: Duration) -> Result<Vec<RuleGroup>, RulesError> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for (_, outcome) in load_each(patterns, default_interval)? {
        match outcome {
            Ok(found) => groups.extend(found),
            Err(found) => problems.extend(found),
        }
    }
    if problems.is_empty() {
        Ok(groups)
    } else {
        Err(RulesError::Invalid { problems })
    }
}

/// What `timebucket rules check` prints, like `promtool check rules`, and whether every file
/// passed:
///
/// ```text
/// Checking examples/rules.yml
///   SUCCESS: 4 rules found
/// Checking bad.yml
///   FAILED:
/// bad.yml:6:15: group "api": rule "Bad": expr: parse error: ...
/// ```
pub fn check(patterns: &[String]) -> (String, bool) {
    let mut out = String::new();
    let mut passed = true;
    let files = match load_each(patterns, Duration::from_secs(60)) {
        Ok(files) => files,
        Err(error) => return (format!("  FAILED: {error}\n"), false),
    };
    if files.is_empty() {
        return (
            format!("  FAILED: no file matches {}\n", patterns.join(", ")),
            false,
        );
    }
    for (file, outcome) in files {
        out += &format!("Checking {}\n", file.display());
        match outcome {
            Ok(groups) => {
                let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
                out += &format!("  SUCCESS: {rules} rules found\n");
            }
            Err(problems) => {
                passed = false;
                out += "  FAILED:\n";
                for problem in problems {
                    out += &format!("{problem}\n");
                }
            }
        }
    }
    (out, passed)
}

/// Where a spanned value is: (line, column).
fn at<T>(value: &Spanned<T>) -> (u64, u64) {
    (value.referenced.line(), value.referenced.column())
}

/// Validates the text of one rule file read from `file`: its groups, or every problem.
pub fn parse(
    text: &str,
    file: &Path,
    default_interval: Duration,
) -> Result<Vec<RuleGroup>, Vec<Problem>> {
    let problem = |(line, column): (u64, u64),
                   group: Option<&str>,
                   rule: Option<&str>,
                   message: String| Problem {
        file: file.to_owned(),
        line,
        column,
        group: group.map(str::to_owned),
        rule: rule.map(str::to_owned),
        message,
    };
    let raw: RawFile = if text.trim().is_empty() {
        RawFile::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            let place = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            vec![problem(place, None, None, e.without_snippet().to_string())]
        })?
    };
    let mut problems = Vec::new();
    let mut groups = Vec::new();
    let mut names = BTreeSet::new();
    for spanned in raw.groups {
        let place = at(&spanned);
        let raw_group = spanned.value;
        let name = raw_group.name.value.clone();
        let group_name = Some(name.as_str());
        if name.trim().is_empty() {
            problems.push(problem(
                at(&raw_group.name),
                None,
                None,
                "group name must not be empty".into(),
            ));
        } else if !names.insert(name.clone()) {
            problems.push(problem(
                place,
                group_name,
                None,
                "the group name is used twice in this file".into(),
            ));
        }
        let interval = match &raw_group.interval {
            None => default_interval,
            Some(text) => match duration(&text.value) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => {
                    problems.push(problem(
                        at(text),
                        group_name,
                        None,
                        "interval must be more than zero".into(),
                    ));
                    default_interval
                }
                Err(e) => {
                    problems.push(problem(
                        at(text),
                        group_name,
                        None,
                        format!("interval: {e}"),
                    ));
                    default_interval
                }
            },
        };
        let mut rules = Vec::new();
        let mut rule_problems = Vec::new();
        for raw_rule in raw_group.rules {
            match rule(raw_rule, |place, rule, message| {
                rule_problems.push(problem(place, group_name, rule, message))
            }) {
                Some(r) => rules.push(r),
                None => continue,
            }
        }
        problems.extend(rule_problems);
        groups.push(RuleGroup {
            name,
            file: file.to_owned(),
            interval,
            rules,
        });
    }
    if problems.is_empty() {
        Ok(groups)
    } else {
        Err(problems)
    }
}

/// Validates one rule, reporting each problem through `report(place, rule name, message)`;
/// `None` when it has any.
fn rule(
    spanned: Spanned<RawRule>,
    mut report: impl FnMut((u64, u64), Option<&str>, String),
) -> Option<AlertRule> {
    let place = at(&spanned);
    let raw = spanned.value;
    let mut ok = true;
    let name = match (&raw.alert, &raw.record) {
        (Some(alert), None) if !alert.value.trim().is_empty() => alert.value.clone(),
        (Some(alert), None) => {
            report(at(alert), None, "alert name must not be empty".into());
            return None;
        }
        (_, Some(record)) => {
            report(
                at(record),
                Some(&record.value),
                "recording rules are not supported: their results would need a place among \
                 the readings; use the expression in the dashboard or alert directly"
                    .into(),
            );
            return None;
        }
        (None, None) => {
            report(place, None, "one of 'alert' or 'record' must be set".into());
            return None;
        }
    };
    let rule_name = Some(name.as_str());
    let mut fail = |place, message: String| {
        report(place, rule_name, message);
        ok = false;
    };
    let query = match &raw.expr {
        None => {
            fail(place, "field 'expr' must be set".into());
            None
        }
        Some(expr) if expr.value.trim().is_empty() => {
            fail(at(expr), "field 'expr' must not be empty".into());
            None
        }
        Some(expr) => match Query::parse(&expr.value) {
            Ok(q) if q.is_instant_or_scalar() => Some(q),
            Ok(_) => {
                fail(at(expr), "expr: an alerting rule needs an instant vector or a scalar, not a range vector or a string".into());
                None
            }
            Err(PromqlError::Parse(message)) => {
                fail(at(expr), format!("expr: parse error: {message}"));
                None
            }
            Err(e) => {
                fail(at(expr), format!("expr: {e}"));
                None
            }
        },
    };
    let mut durations = [Duration::ZERO; 2];
    for (slot, (key, value)) in durations.iter_mut().zip([
        ("for", &raw.hold),
        ("keep_firing_for", &raw.keep_firing_for),
    ]) {
        if let Some(text) = value {
            match duration(&text.value) {
                Ok(d) => *slot = d,
                Err(e) => fail(at(text), format!("{key}: {e}")),
            }
        }
    }
    for (kind, map) in [("label", &raw.labels), ("annotation", &raw.annotations)] {
        for (key, value) in map {
            if !valid_label_name(key) || (kind == "label" && key == "__name__") {
                fail(at(value), format!("invalid {kind} name {key:?}"));
            }
            if let Err(e) = template::check(&value.value) {
                fail(at(value), format!("{kind} {key}: template: {e}"));
            }
        }
    }
    if !ok {
        return None;
    }
    let expr = raw.expr.expect("checked above").value;
    Some(AlertRule {
        name: name.clone(),
        expr: expr.trim().to_owned(),
        query: query.expect("checked above"),
        hold: durations[0],
        keep_firing_for: durations[1],
        labels: raw.labels.into_iter().map(|(k, v)| (k, v.value)).collect(),
        annotations: raw
            .annotations
            .into_iter()
            .map(|(k, v)| (k, v.value))
            .collect(),
    })
}

/// A Prometheus duration (`30s`, `5m`, `1h30m`, `1d`).
fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    promql_parser::util::parse_duration(text)
        .map_err(|_| format!("`{text}` is not a duration like 30s, 5m or 1h30m"))
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, as Prometheus requires of label names.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
