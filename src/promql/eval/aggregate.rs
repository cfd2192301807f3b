//! Aggregations: `sum`, `avg`, `min`, `max`, `count`, `topk`, `bottomk`, with `by` / `without`.
//!
//! Groups are formed per step from the series that have a value there. `by (l…)` keeps only
//! the listed labels, `without (l…)` drops them and the metric name, no clause makes one group.
//! `topk` / `bottomk` keep the selected series whole (labels included); the others answer one
//! series per group.

use std::collections::HashMap;

use promql_parser::parser::token::TokenType;
use promql_parser::parser::token::{T_AVG, T_BOTTOMK, T_COUNT, T_MAX, T_MIN, T_SUM, T_TOPK};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::{Eval, Series, Value};
use crate::promql::error::PromqlError;
use crate::promql::labels::Labels;

/// A supported aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    /// `sum`.
    Sum,
    /// `avg`.
    Avg,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `count`.
    Count,
    /// `topk`.
    Topk,
    /// `bottomk`.
    Bottomk,
}

impl AggOp {
    /// The aggregation of a token; a `bad_data` error naming it when it is not supported.
    pub fn from_token(op: TokenType) -> Result<AggOp, PromqlError> {
        Ok(match op.id() {
            T_SUM => AggOp::Sum,
            T_AVG => AggOp::Avg,
            T_MIN => AggOp::Min,
            T_MAX => AggOp::Max,
            T_COUNT => AggOp::Count,
            T_TOPK => AggOp::Topk,
            T_BOTTOMK => AggOp::Bottomk,
            _ => return Err(PromqlError::unsupported(format!("the aggregation {op}"))),
        })
    }
}

fn group_labels(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::default(),
        Some(LabelModifier::Include(names)) => labels.keep(&names.labels),
        Some(LabelModifier::Exclude(names)) => labels.without(&names.labels),
    }
}

/// Running totals of one group at one step.
#[derive(Debug, Clone, Copy)]
struct Acc {
    count: usize,
    value: f64,
}

/// Evaluates an aggregation.
pub fn eval(ev: &mut Eval<'_>, a: &AggregateExpr) -> Result<Value, PromqlError> {
    let op = AggOp::from_token(a.op)?;
    let steps = ev.steps();
    let what = a.op.to_string();
    let k = match &a.param {
        Some(param) if matches!(op, AggOp::Topk | AggOp::Bottomk) => Some(ev.scalar(param, &what)?),
        _ => None,
    };
    let series = ev.vector(&a.expr, &what)?;
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Labels> = Vec::new();
    let member_of: Vec<usize> = series
        .iter()
        .map(|s| {
            let labels = group_labels(&s.labels, &a.modifier);
            *index.entry(labels.clone()).or_insert_with(|| {
                groups.push(labels);
                groups.len() - 1
            })
        })
        .collect();
    if let Some(k) = k {
        return Ok(Value::Vector(select_k(
            op,
            &k,
            series,
            &member_of,
            groups.len(),
        )));
    }
    let mut acc: Vec<Vec<Option<Acc>>> = vec![vec![None; steps]; groups.len()];
    for (s, &g) in series.iter().zip(&member_of) {
        for (i, v) in s.values.iter().enumerate() {
            let Some(v) = *v else { continue };
            let slot = &mut acc[g][i];
            *slot = Some(match *slot {
                None => Acc { count: 1, value: v },
                Some(Acc { count, value }) => Acc {
                    count: count + 1,
                    value: match op {
                        AggOp::Min if value > v || value.is_nan() => v,
                        AggOp::Max if value < v || value.is_nan() => v,
                        AggOp::Min | AggOp::Max => value,
                        _ => value + v,
                    },
                },
            });
        }
    }
    let out = groups
        .into_iter()
        .zip(acc)
        .map(|(labels, cells)| Series {
            labels,
            values: cells
                .into_iter()
                .map(|cell| {
                    cell.map(|Acc { count, value }| match op {
                        AggOp::Avg => value / count as f64,
                        AggOp::Count => count as f64,
                        _ => value,
                    })
                })
                .collect(),
        })
        .collect::<Vec<_>>();
    let mut out = out;
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(Value::Vector(out))
}

/// `topk` / `bottomk`: per step and group, the `k` largest (smallest) values; NaN counts as
/// the smallest for both, as in Prometheus' heap.
fn select_k(
    op: AggOp,
    k: &[f64],
    series: Vec<Series>,
    member_of: &[usize],
    groups: usize,
) -> Vec<Series> {
    let steps = k.len();
    let mut keep = vec![vec![false; steps]; series.len()];
    for (i, &k) in k.iter().enumerate() {
        let k = if k.is_nan() || k < 1.0 { 0 } else { k as usize };
        let mut candidates: Vec<Vec<(f64, usize)>> = vec![Vec::new(); groups];
        for (n, s) in series.iter().enumerate() {
            if let Some(v) = s.values[i] {
                candidates[member_of[n]].push((v, n));
            }
        }
        for mut members in candidates {
            members.sort_by(|a, b| {
                let (x, y) = if op == AggOp::Topk {
                    (b.0, a.0)
                } else {
                    (a.0, b.0)
                };
                match (x.is_nan(), y.is_nan()) {
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ => x.total_cmp(&y),
                }
            });
            for (_, n) in members.into_iter().take(k) {
                keep[n][i] = true;
            }
        }
    }
    let mut out: Vec<Series> = series
        .into_iter()
        .zip(keep)
        .filter_map(|(s, keep)| {
            let values: Vec<Option<f64>> = s
                .values
                .into_iter()
                .zip(keep)
                .map(|(v, k)| v.filter(|_| k))
                .collect();
            values.iter().any(Option::is_some).then_some(Series {
                labels: s.labels,
                values,
            })
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}
