//! The supported functions.
//!
//! Range functions see, at each step `t`, the samples in `(t − offset − range, t − offset]`.
//! Over our counters `rate`, `increase` and `irate` work on the increments, so they are exact:
//! `increase` is the number of requests (or seconds, or requests in a bucket) whose readings
//! fall in the window, `rate` that divided by the range in seconds — no extrapolation — and a
//! window without any reading of the series has no value. Being sums over the window, `rate`
//! and `increase` are what rollups can serve (`plan::rollup_level`); `irate` needs the
//! readings' times and always reads raw readings.
//!
//! As in Prometheus, every function but `label_replace` drops the metric name.

use promql_parser::parser::{Call, Expr, MatrixSelector};

use super::quantile::{bucket_quantile, quantile};
use super::{Eval, Series, SeriesSet, Value};
use crate::promql::error::PromqlError;
use crate::promql::labels::{selector_matchers, Labels, METRIC_NAME};
use crate::promql::plan::{offset_ms, Use};

/// A supported function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `rate(counter[r])`.
    Rate,
    /// `increase(counter[r])`.
    Increase,
    /// `irate(counter[r])`.
    Irate,
    /// `avg_over_time(v[r])`.
    AvgOverTime,
    /// `min_over_time(v[r])`.
    MinOverTime,
    /// `max_over_time(v[r])`.
    MaxOverTime,
    /// `sum_over_time(v[r])`.
    SumOverTime,
    /// `count_over_time(v[r])`.
    CountOverTime,
    /// `quantile_over_time(φ, v[r])`.
    QuantileOverTime,
    /// `histogram_quantile(φ, buckets)`.
    HistogramQuantile,
    /// `abs(v)`.
    Abs,
    /// `clamp_min(v, min)`.
    ClampMin,
    /// `clamp_max(v, max)`.
    ClampMax,
    /// `time()`.
    Time,
    /// `vector(s)`.
    Vector,
    /// `scalar(v)`.
    Scalar,
    /// `absent(v)`.
    Absent,
    /// `label_replace(v, dst, replacement, src, regex)`.
    LabelReplace,
}

/// Every supported function by name.
const FUNCTIONS: [(&str, Func); 18] = [
    ("abs", Func::Abs),
    ("absent", Func::Absent),
    ("avg_over_time", Func::AvgOverTime),
    ("clamp_max", Func::ClampMax),
    ("clamp_min", Func::ClampMin),
    ("count_over_time", Func::CountOverTime),
    ("histogram_quantile", Func::HistogramQuantile),
    ("increase", Func::Increase),
    ("irate", Func::Irate),
    ("label_replace", Func::LabelReplace),
    ("max_over_time", Func::MaxOverTime),
    ("min_over_time", Func::MinOverTime),
    ("quantile_over_time", Func::QuantileOverTime),
    ("rate", Func::Rate),
    ("scalar", Func::Scalar),
    ("sum_over_time", Func::SumOverTime),
    ("time", Func::Time),
    ("vector", Func::Vector),
];

impl Func {
    /// The function called `name`; a `bad_data` error naming it when it is not supported.
    pub fn from_name(name: &str) -> Result<Func, PromqlError> {
        FUNCTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
            .ok_or_else(|| PromqlError::unsupported(format!("the function {name}()")))
    }

    /// True for the functions over counter increments.
    pub fn is_counter_rate(self) -> bool {
        matches!(self, Func::Rate | Func::Increase | Func::Irate)
    }
}

fn arg(call: &Call, i: usize) -> Result<&Expr, PromqlError> {
    call.args.args.get(i).map(|a| &**a).ok_or_else(|| {
        PromqlError::BadData(format!("{}() needs argument {}", call.func.name, i + 1))
    })
}

fn matrix_arg(call: &Call, i: usize) -> Result<&MatrixSelector, PromqlError> {
    match arg(call, i)? {
        Expr::MatrixSelector(ms) => Ok(ms),
        _ => Err(PromqlError::unsupported(format!(
            "{}() of anything but a range selector (subqueries)",
            call.func.name
        ))),
    }
}

fn string_arg(call: &Call, i: usize) -> Result<&str, PromqlError> {
    match arg(call, i)? {
        Expr::StringLiteral(s) => Ok(&s.val),
        _ => Err(PromqlError::BadData(format!(
            "argument {} of {}() must be a string literal",
            i + 1,
            call.func.name
        ))),
    }
}

/// Evaluates a function call.
pub fn eval(ev: &mut Eval<'_>, call: &Call) -> Result<Value, PromqlError> {
    let func = Func::from_name(call.func.name)?;
    let name = call.func.name;
    let steps = ev.steps();
    Ok(match func {
        Func::Rate | Func::Increase | Func::Irate => {
            let ms = matrix_arg(call, 0)?;
            let seconds = ms.range.as_secs_f64();
            let f = move |_: usize, t: &[i64], v: &[f64]| -> Option<f64> {
                match func {
                    Func::Rate => Some(v.iter().sum::<f64>() / seconds),
                    Func::Increase => Some(v.iter().sum()),
                    _ => (t.len() >= 2).then(|| {
                        let n = t.len();
                        v[n - 1] / ((t[n - 1] - t[n - 2]) as f64 / 1000.0)
                    }),
                }
            };
            // Only irate needs the increments' times; rate and increase their sums.
            let use_ = if func == Func::Irate {
                Use::Increments
            } else {
                Use::Sums
            };
            Value::Vector(over_window(ev, ms, use_, f)?)
        }
        Func::AvgOverTime
        | Func::MinOverTime
        | Func::MaxOverTime
        | Func::SumOverTime
        | Func::CountOverTime => {
            let f = move |_: usize, _: &[i64], v: &[f64]| -> Option<f64> {
                Some(match func {
                    Func::AvgOverTime => v.iter().sum::<f64>() / v.len() as f64,
                    Func::MinOverTime => v.iter().copied().fold(f64::NAN, f64::min),
                    Func::MaxOverTime => v.iter().copied().fold(f64::NAN, f64::max),
                    Func::SumOverTime => v.iter().sum(),
                    _ => v.len() as f64,
                })
            };
            Value::Vector(over_window(ev, matrix_arg(call, 0)?, Use::Values, f)?)
        }
        Func::QuantileOverTime => {
            let phi = ev.scalar(arg(call, 0)?, name)?;
            let f = |i: usize, _: &[i64], v: &[f64]| Some(quantile(phi[i], &mut v.to_vec()));
            Value::Vector(over_window(ev, matrix_arg(call, 1)?, Use::Values, f)?)
        }
        Func::HistogramQuantile => {
            let phi = ev.scalar(arg(call, 0)?, name)?;
            let buckets = ev.vector(arg(call, 1)?, name)?;
            Value::Vector(histogram_quantile(&phi, &buckets, steps)?)
        }
        Func::Abs => Value::Vector(map(ev.vector(arg(call, 0)?, name)?, steps, |_, v| v.abs())?),
        Func::ClampMin | Func::ClampMax => {
            let series = ev.vector(arg(call, 0)?, name)?;
            let bound = ev.scalar(arg(call, 1)?, name)?;
            let min = func == Func::ClampMin;
            Value::Vector(map(series, steps, |i, v| {
                if min {
                    v.max(bound[i])
                } else {
                    v.min(bound[i])
                }
            })?)
        }
        Func::Time => Value::Scalar(
            (0..steps)
                .map(|i| ev.timeline.at(i) as f64 / 1000.0)
                .collect(),
        ),
        Func::Vector => {
            let values = ev.scalar(arg(call, 0)?, name)?;
            Value::Vector(vec![Series {
                labels: Labels::default(),
                values: values.into_iter().map(Some).collect(),
            }])
        }
        Func::Scalar => {
            let series = ev.vector(arg(call, 0)?, name)?;
            Value::Scalar(
                (0..steps)
                    .map(|i| {
                        let mut present = series.iter().filter_map(|s| s.values[i]);
                        match (present.next(), present.next()) {
                            (Some(v), None) => v,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            )
        }
        Func::Absent => {
            let argument = arg(call, 0)?;
            let series = ev.vector(argument, name)?;
            let values: Vec<Option<f64>> = (0..steps)
                .map(|i| series.iter().all(|s| s.values[i].is_none()).then_some(1.0))
                .collect();
            if values.iter().all(Option::is_none) {
                Value::Vector(Vec::new())
            } else {
                Value::Vector(vec![Series {
                    labels: absent_labels(argument),
                    values,
                }])
            }
        }
        Func::LabelReplace => {
            let series = ev.vector(arg(call, 0)?, name)?;
            label_replace(
                series,
                steps,
                [
                    string_arg(call, 1)?,
                    string_arg(call, 2)?,
                    string_arg(call, 3)?,
                    string_arg(call, 4)?,
                ],
            )?
        }
    })
}

/// Applies `f` to every value, dropping the metric name.
fn map(
    series: Vec<Series>,
    steps: usize,
    f: impl Fn(usize, f64) -> f64,
) -> Result<Vec<Series>, PromqlError> {
    let mut out = SeriesSet::new(steps);
    for s in &series {
        let labels = s.labels.without_name();
        for (i, v) in s.values.iter().enumerate() {
            if let Some(v) = v {
                out.set(&labels, i, f(i, *v))?;
            }
        }
    }
    Ok(out.finish())
}

/// Applies `f` to the samples of each window: `f(step, times, values)`.
fn over_window(
    ev: &mut Eval<'_>,
    ms: &MatrixSelector,
    use_: Use,
    f: impl Fn(usize, &[i64], &[f64]) -> Option<f64>,
) -> Result<Vec<Series>, PromqlError> {
    let range = ms.range.as_millis() as i64;
    let raw = ev.raw(&ms.vs, range, use_)?;
    let offset = offset_ms(&ms.vs.offset);
    let timeline = ev.timeline;
    let mut out = SeriesSet::new(timeline.steps);
    for r in &raw {
        let labels = r.labels.without_name();
        let (mut lo, mut hi) = (0, 0);
        for i in 0..timeline.steps {
            let at = timeline.at(i) - offset;
            while hi < r.t.len() && r.t[hi] <= at {
                hi += 1;
            }
            while lo < hi && r.t[lo] <= at - range {
                lo += 1;
            }
            if lo < hi {
                if let Some(v) = f(i, &r.t[lo..hi], &r.v[lo..hi]) {
                    out.set(&labels, i, v)?;
                }
            }
        }
    }
    Ok(out.finish())
}

fn histogram_quantile(
    phi: &[f64],
    buckets: &[Series],
    steps: usize,
) -> Result<Vec<Series>, PromqlError> {
    let mut groups: Vec<(Labels, Vec<(f64, &Series)>)> = Vec::new();
    for s in buckets {
        let le = match s.labels.get("le") {
            "+Inf" => f64::INFINITY,
            text => match text.parse::<f64>() {
                Ok(le) => le,
                Err(_) => continue,
            },
        };
        let labels = s.labels.without(&["le".to_owned()]);
        match groups.iter_mut().find(|(l, _)| *l == labels) {
            Some((_, members)) => members.push((le, s)),
            None => groups.push((labels, vec![(le, s)])),
        }
    }
    let mut out = SeriesSet::new(steps);
    for (labels, members) in &groups {
        for (i, &phi) in phi.iter().enumerate() {
            let mut counts: Vec<(f64, f64)> = members
                .iter()
                .filter_map(|(le, s)| s.values[i].map(|v| (*le, v)))
                .collect();
            if !counts.is_empty() {
                out.set(labels, i, bucket_quantile(phi, &mut counts))?;
            }
        }
    }
    Ok(out.finish())
}

/// The labels `absent(selector)` answers with: those the selector pins with `=` (a label pinned
/// twice, or also matched otherwise, is left out), as Prometheus does.
fn absent_labels(argument: &Expr) -> Labels {
    let Expr::VectorSelector(vs) = argument else {
        return Labels::default();
    };
    let mut labels = Labels::default();
    let mut seen: Vec<&str> = Vec::new();
    let matchers = selector_matchers(vs);
    for m in matchers.iter().filter(|m| m.name != METRIC_NAME) {
        let equal = matches!(m.op, promql_parser::label::MatchOp::Equal);
        if equal && !seen.contains(&m.name.as_str()) {
            labels.set(&m.name, m.value.clone());
        } else {
            labels.set(&m.name, String::new());
        }
        seen.push(&m.name);
    }
    labels
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn label_replace(
    series: Vec<Series>,
    steps: usize,
    [dst, replacement, src, pattern]: [&str; 4],
) -> Result<Value, PromqlError> {
    let regex = regex::Regex::new(&format!("^(?s:{pattern})$")).map_err(|e| {
        PromqlError::BadData(format!(
            "invalid regular expression in label_replace(): {pattern}: {e}"
        ))
    })?;
    if !valid_label_name(dst) {
        return Err(PromqlError::BadData(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut out = SeriesSet::new(steps);
    for s in series {
        let mut labels = s.labels.clone();
        if let Some(captures) = regex.captures(s.labels.get(src)) {
            let mut value = String::new();
            captures.expand(replacement, &mut value);
            labels.set(dst, value);
        }
        for (i, v) in s.values.iter().enumerate() {
            if let Some(v) = v {
                out.set(&labels, i, *v)?;
            }
        }
    }
    Ok(Value::Vector(out.finish()))
}
