//! Query-string parameters: raw `(name, value)` pairs checked into the typed values the rest
//! of the query code trusts (a [`TimeRange`] always has `from <= to` within the range limit, a
//! [`Step`] is at least a second, and so on).
//!
//! Checking collects every problem rather than stopping at the first, and each problem names
//! its parameter, so a client sees all that is wrong with a request in one 400. Unknown and
//! repeated parameters are problems too: a typo like `form=` must not silently widen a query.

use serde::Serialize;

use super::limits::QueryLimits;
use crate::model::{ApiPath, ApiReading, HttpMethod, InstanceName, StatusCode, TimestampMs};

/// One problem with one query parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamProblem {
    /// The parameter's name.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Every problem found in a request's parameters (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid query parameter(s): {}", self.fields())]
pub struct ParamErrors(pub Vec<ParamProblem>);

impl ParamErrors {
    /// A single problem.
    pub fn one(field: &str, problem: impl Into<String>) -> Self {
        Self(vec![ParamProblem {
            field: field.to_owned(),
            problem: problem.into(),
        }])
    }

    /// The names of the parameters at fault, comma-separated.
    pub fn fields(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|p| p.field.as_str()).collect();
        names.join(", ")
    }
}

/// Checks the parameters of one request, collecting problems.
#[derive(Debug)]
pub struct Checker<'a> {
    pairs: &'a [(String, String)],
    problems: Vec<ParamProblem>,
}

impl<'a> Checker<'a> {
    /// Starts checking `pairs`; names outside `allowed`, and names given twice, are problems.
    pub fn new(pairs: &'a [(String, String)], allowed: &[&str]) -> Self {
        let mut checker = Self {
            pairs,
            problems: Vec::new(),
        };
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&name.as_str()) {
                checker.problem(
                    name,
                    format!("unknown parameter; expected one of {}", allowed.join(", ")),
                );
            } else if pairs[..i].iter().any(|(earlier, _)| earlier == name) {
                checker.problem(name, "given more than once");
            }
        }
        checker
    }

    /// Records a problem.
    pub fn problem(&mut self, field: &str, problem: impl Into<String>) {
        self.problems.push(ParamProblem {
            field: field.to_owned(),
            problem: problem.into(),
        });
    }

    /// True when parameter `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.raw(name).is_some()
    }

    fn raw(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The parsed value of an optional parameter; `None` when absent or invalid (recorded).
    pub fn optional<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = self.raw(name)?;
        parse(raw)
            .map_err(|problem| self.problem(name, problem))
            .ok()
    }

    /// The parsed value of a required parameter; `None` when absent or invalid (recorded).
    pub fn required<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if self.raw(name).is_none() {
            self.problem(name, "is required");
            return None;
        }
        self.optional(name, parse)
    }

    /// The checked value when no problem was found. Every method above that returns `None`
    /// records a problem, so `build` has all it needs whenever there is none.
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ParamErrors> {
        if !self.problems.is_empty() {
            return Err(ParamErrors(self.problems));
        }
        build().ok_or_else(|| ParamErrors::one("query", "is incomplete"))
    }

    /// `from` and `to`, checked against each other and against `limits.max_range_ms`.
    pub fn range(&mut self, limits: &QueryLimits) -> Option<TimeRange> {
        let from = self.required("from", TimestampMs::parse);
        let to = self.required("to", TimestampMs::parse);
        let (from, to) = (from?, to?);
        if from > to {
            self.problem(
                "from",
                format!(
                    "must not be after `to` ({} > {})",
                    from.to_rfc3339(),
                    to.to_rfc3339()
                ),
            );
            return None;
        }
        let span = to.millis().saturating_sub(from.millis());
        if span > limits.max_range_ms {
            self.problem(
                "to",
                format!(
                    "[from, to] spans {}, more than the {} one query may cover (--query-max-range)",
                    human_ms(span),
                    human_ms(limits.max_range_ms)
                ),
            );
            return None;
        }
        Some(TimeRange { from, to })
    }

    /// `instance`, `method`, `path` and `code`, each optional.
    pub fn api_filter(&mut self) -> ApiFilter {
        ApiFilter {
            instance: self.optional("instance", InstanceName::parse),
            method: self.optional("method", HttpMethod::parse),
            path: self.optional("path", ApiPath::parse),
            code: self.optional("code", |v| {
                let n = v
                    .parse::<i64>()
                    .map_err(|_| format!("must be a number, got `{v}`"))?;
                StatusCode::parse(n)
            }),
        }
    }

    /// `step`, which must make at most `limits.max_points` points over `range`.
    pub fn step(&mut self, range: Option<TimeRange>, limits: &QueryLimits) -> Option<Step> {
        let step = self.required("step", Step::parse)?;
        let range = range?;
        let points = step.points_in(range);
        if points > limits.max_points as u64 {
            self.problem(
                "step",
                format!(
                    "makes {points} points over [from, to], more than {} (--query-max-points); use a larger step",
                    limits.max_points
                ),
            );
            return None;
        }
        Some(step)
    }
}

/// A duration in ms as humantime text (`90000` → `1m 30s`).
pub fn human_ms(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
}

/// A checked, inclusive time range: `from <= to`, within the range limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeRange {
    /// The oldest instant, inclusive.
    pub from: TimestampMs,
    /// The newest instant, inclusive.
    pub to: TimestampMs,
}

impl TimeRange {
    /// True when `at` is inside the range.
    pub fn contains(&self, at: TimestampMs) -> bool {
        self.from <= at && at <= self.to
    }
}

/// A stats step: whole milliseconds, at least one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Step(i64);

impl Step {
    /// Parses a duration with a unit (`60s`, `5m`, `1h`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let duration = humantime::parse_duration(text).map_err(|_| {
            format!("must be a duration with a unit, like 60s, 5m or 1h; got `{text}`")
        })?;
        if duration.subsec_nanos() % 1_000_000 != 0 {
            return Err("must be whole milliseconds".into());
        }
        let ms = i64::try_from(duration.as_millis()).map_err(|_| "is too long".to_owned())?;
        if ms < 1000 {
            return Err(format!("must be at least 1s, got {text}"));
        }
        Ok(Self(ms))
    }

    /// The step in milliseconds.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// The start of the step holding `at`: steps are aligned to multiples of the step since
    /// the epoch, so the points of different queries line up.
    pub fn start_of(self, at: TimestampMs) -> TimestampMs {
        TimestampMs::from_millis(at.millis().div_euclid(self.0) * self.0)
    }

    /// How many steps overlap `range`.
    pub fn points_in(self, range: TimeRange) -> u64 {
        let first = range.from.millis().div_euclid(self.0);
        let last = range.to.millis().div_euclid(self.0);
        (last - first + 1) as u64
    }
}

/// The API-reading filters of a query; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ApiFilter {
    /// Only this instance.
    pub instance: Option<InstanceName>,
    /// Only this method.
    pub method: Option<HttpMethod>,
    /// Only this path.
    pub path: Option<ApiPath>,
    /// Only this status code.
    pub code: Option<StatusCode>,
}

impl ApiFilter {
    /// True when no filter is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// True when `r` passes every filter.
    pub fn matches(&self, r: &ApiReading) -> bool {
        self.matches_series(&r.instance, &r.method, &r.path) && self.matches_code(r.code)
    }

    /// True when the series `(instance, method, path)` passes the filters on names.
    pub fn matches_series(
        &self,
        instance: &InstanceName,
        method: &HttpMethod,
        path: &ApiPath,
    ) -> bool {
        self.instance.as_ref().is_none_or(|i| i == instance)
            && self.method.as_ref().is_none_or(|m| m == method)
            && self.path.as_ref().is_none_or(|p| p == path)
    }

    /// True when `code` passes the filter on codes.
    pub fn matches_code(&self, code: StatusCode) -> bool {
        self.code.is_none_or(|c| c == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn steps_parse_with_units_and_align_to_the_epoch() {
        assert_eq!(Step::parse("60s").unwrap().millis(), 60_000);
        assert_eq!(Step::parse("1m 30s").unwrap().millis(), 90_000);
        for bad in ["60", "0s", "500ms", "1.5ms", "soon"] {
            assert!(Step::parse(bad).is_err(), "{bad}");
        }
        let step = Step::parse("1m").unwrap();
        let at = TimestampMs::from_millis(125_000);
        assert_eq!(step.start_of(at).millis(), 120_000);
        let range = TimeRange {
            from: TimestampMs::from_millis(59_999),
            to: TimestampMs::from_millis(120_000),
        };
        assert_eq!(step.points_in(range), 3);
    }

    #[test]
    fn every_problem_is_reported_with_its_parameter() {
        let raw = pairs(&[("from", "x"), ("to", "1"), ("to", "2"), ("colour", "red")]);
        let mut c = Checker::new(&raw, &["from", "to", "service"]);
        let range = c.range(&QueryLimits::default());
        let errors = c.finish(|| range).unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["to", "colour", "from"]);
    }
}
