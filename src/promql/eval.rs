//! The evaluator: an expression evaluated at every step of the timeline at once.
//!
//! Every node yields a value for all steps (Prometheus' range evaluation): a scalar is one
//! number per step, an instant vector a set of series each with an optional value per step.
//! Selectors turn the readings fetched once for the whole range into samples, then pick per
//! step the sample the window holds — so no step reads anything.
//!
//! Invariants: a vector never holds two series with the same labels that both have a value at
//! one step (that is the error Prometheus reports as "vector cannot contain metrics with the
//! same labelset"); series with no value at any step are dropped; every point computed is
//! charged against `--query-max-samples`, and the deadline is checked at every node.

pub mod aggregate;
pub mod binary;
pub mod functions;
mod quantile;
pub mod select;

use std::collections::HashMap;
use std::time::Instant;

use promql_parser::parser::{Expr, VectorSelector};

use super::error::PromqlError;
use super::fetch::{too_many_samples, Fetched};
use super::labels::{selector_matchers, Labels};
use super::limits::EngineConfig;
use super::plan::{level, offset_ms, sample_range, Timeline, Use};
use crate::query::source::Source as Sources;
use select::RawSeries;

/// One series of an instant vector over the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: Labels,
    /// Its value at each step, `None` where it has none.
    pub values: Vec<Option<f64>>,
}

impl Series {
    fn points(&self) -> usize {
        self.values.iter().filter(|v| v.is_some()).count()
    }
}

/// The value of an expression over the timeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// One number per step.
    Scalar(Vec<f64>),
    /// An instant vector.
    Vector(Vec<Series>),
    /// A string literal.
    String(String),
}

/// Builds a vector from points keyed by label set, refusing two values at one step.
#[derive(Debug)]
pub struct SeriesSet {
    steps: usize,
    index: HashMap<Labels, usize>,
    series: Vec<Series>,
}

impl SeriesSet {
    /// An empty vector over `steps` steps.
    pub fn new(steps: usize) -> Self {
        Self {
            steps,
            index: HashMap::new(),
            series: Vec::new(),
        }
    }

    /// Sets the value of series `labels` at `step`.
    pub fn set(&mut self, labels: &Labels, step: usize, value: f64) -> Result<(), PromqlError> {
        let i = match self.index.get(labels) {
            Some(&i) => i,
            None => {
                self.series.push(Series {
                    labels: labels.clone(),
                    values: vec![None; self.steps],
                });
                self.index.insert(labels.clone(), self.series.len() - 1);
                self.series.len() - 1
            }
        };
        let slot = &mut self.series[i].values[step];
        if slot.is_some() {
            return Err(PromqlError::Execution(format!(
                "vector cannot contain metrics with the same labelset {labels}"
            )));
        }
        *slot = Some(value);
        Ok(())
    }

    /// The series, sorted by labels.
    pub fn finish(mut self) -> Vec<Series> {
        self.series.sort_by(|a, b| a.labels.cmp(&b.labels));
        self.series
    }
}

/// The state of one evaluation.
pub struct Eval<'a> {
    /// The evaluation times.
    pub timeline: Timeline,
    /// The readings.
    pub data: &'a Fetched,
    /// Limits and lookback.
    pub config: &'a EngineConfig,
    /// Samples loaded and points computed so far.
    pub samples: usize,
    /// When the query times out.
    pub deadline: Instant,
    /// What selectors may read (the read of each selector was planned with the same).
    pub sources: Sources,
}

impl Eval<'_> {
    /// Counts `n` more samples against the budget.
    pub fn charge(&mut self, n: usize) -> Result<(), PromqlError> {
        self.samples += n;
        if self.samples > self.config.max_samples {
            return Err(too_many_samples(self.config.max_samples));
        }
        Ok(())
    }

    /// Refuses a vector of more than `--query-max-series` series.
    pub fn check_series(&self, n: usize) -> Result<(), PromqlError> {
        if n > self.config.max_series {
            return Err(PromqlError::Limit(format!(
                "the query would hold more than {} series at once (--query-max-series); add \
                 label matchers or aggregate",
                self.config.max_series
            )));
        }
        Ok(())
    }

    /// The steps of the timeline.
    pub fn steps(&self) -> usize {
        self.timeline.steps
    }

    /// Evaluates `expr` at every step.
    pub fn eval(&mut self, expr: &Expr) -> Result<Value, PromqlError> {
        if Instant::now() >= self.deadline {
            return Err(PromqlError::Timeout(self.config.timeout));
        }
        let value = match expr {
            Expr::NumberLiteral(n) => Value::Scalar(vec![n.val; self.steps()]),
            Expr::StringLiteral(s) => Value::String(s.val.clone()),
            Expr::Paren(p) => return self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Value::Scalar(v) => Value::Scalar(v.into_iter().map(|x| -x).collect()),
                Value::Vector(series) => {
                    let mut out = SeriesSet::new(self.steps());
                    for s in &series {
                        let labels = s.labels.without_name();
                        for (i, v) in s.values.iter().enumerate() {
                            if let Some(v) = v {
                                out.set(&labels, i, -v)?;
                            }
                        }
                    }
                    Value::Vector(out.finish())
                }
                Value::String(_) => {
                    return Err(PromqlError::BadData(
                        "unary minus needs a scalar or an instant vector, got a string".into(),
                    ))
                }
            },
            Expr::VectorSelector(vs) => Value::Vector(self.vector_selector(vs)?),
            Expr::MatrixSelector(_) => {
                return Err(PromqlError::BadData(
                    "a range vector is only allowed as the argument of a function here".into(),
                ))
            }
            Expr::Aggregate(a) => aggregate::eval(self, a)?,
            Expr::Binary(b) => binary::eval(self, b)?,
            Expr::Call(c) => functions::eval(self, c)?,
            Expr::Subquery(_) => return Err(PromqlError::unsupported("subqueries")),
            Expr::Extension(_) => return Err(PromqlError::unsupported("extensions")),
        };
        let points = match &value {
            Value::Scalar(v) => v.len(),
            Value::Vector(series) => {
                self.check_series(series.len())?;
                series.iter().map(Series::points).sum()
            }
            Value::String(_) => 0,
        };
        self.charge(points)?;
        Ok(value)
    }

    /// Evaluates `expr`, which must be an instant vector.
    pub fn vector(&mut self, expr: &Expr, what: &str) -> Result<Vec<Series>, PromqlError> {
        match self.eval(expr)? {
            Value::Vector(series) => Ok(series),
            other => Err(type_error(what, "an instant vector", &other)),
        }
    }

    /// Evaluates `expr`, which must be a scalar.
    pub fn scalar(&mut self, expr: &Expr, what: &str) -> Result<Vec<f64>, PromqlError> {
        match self.eval(expr)? {
            Value::Scalar(values) => Ok(values),
            other => Err(type_error(what, "a scalar", &other)),
        }
    }

    /// The samples of a selector in its window over the whole timeline, charged.
    pub fn raw(
        &mut self,
        vs: &VectorSelector,
        window_ms: i64,
        use_: Use,
    ) -> Result<Vec<RawSeries>, PromqlError> {
        let matchers = selector_matchers(vs);
        let offset = offset_ms(&vs.offset);
        let (lo, hi) = sample_range(&self.timeline, offset, window_ms);
        let level = level(use_, offset, window_ms, &self.timeline, self.sources);
        let raw = select::raw_series(self.data, &matchers, (lo, hi), use_, level);
        self.check_series(raw.len())?;
        self.charge(raw.iter().map(|r| r.t.len()).sum())?;
        Ok(raw)
    }

    /// An instant selector: at each step the newest sample of the lookback window.
    fn vector_selector(&mut self, vs: &VectorSelector) -> Result<Vec<Series>, PromqlError> {
        let lookback = self.config.lookback_ms;
        let raw = self.raw(vs, lookback, Use::Values)?;
        let offset = offset_ms(&vs.offset);
        let timeline = self.timeline;
        Ok(raw
            .into_iter()
            .filter_map(|r| {
                let mut next = 0;
                let values: Vec<Option<f64>> = (0..timeline.steps)
                    .map(|i| {
                        let at = timeline.at(i) - offset;
                        while next < r.t.len() && r.t[next] <= at {
                            next += 1;
                        }
                        (next > 0 && r.t[next - 1] > at - lookback).then(|| r.v[next - 1])
                    })
                    .collect();
                values.iter().any(Option::is_some).then_some(Series {
                    labels: r.labels,
                    values,
                })
            })
            .collect())
    }
}

fn type_error(what: &str, expected: &str, got: &Value) -> PromqlError {
    let got = match got {
        Value::Scalar(_) => "a scalar",
        Value::Vector(_) => "an instant vector",
        Value::String(_) => "a string",
    };
    PromqlError::BadData(format!("{what} needs {expected}, got {got}"))
}
