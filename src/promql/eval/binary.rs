//! Binary operators: arithmetic (`+ - * / % ^`), comparisons (`== != > < >= <=`, filtering
//! or with `bool`), and the set operators `and`, `or`, `unless`, between scalars and vectors.
//!
//! Vector-to-vector operations match series per step by their labels (without the metric name),
//! or by the `on (…)` labels, or without the `ignoring (…)` ones. One-to-one matching refuses
//! duplicates on either side; `group_left` / `group_right` allow many series on one side and
//! copy the listed labels from the "one" side — with the same errors, in the same words, as
//! Prometheus. Arithmetic and `bool` comparisons drop the metric name; filtering comparisons
//! keep the left-hand series (its value, its labels).

use std::collections::{HashMap, HashSet};

use promql_parser::parser::token::TokenType;
use promql_parser::parser::token::{
    T_ADD, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD, T_MUL,
    T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::{Eval, Series, SeriesSet, Value};
use crate::promql::error::PromqlError;
use crate::promql::labels::Labels;

/// A supported binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Mod,
    /// `^`.
    Pow,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `>`.
    Gt,
    /// `<`.
    Lt,
    /// `>=`.
    Ge,
    /// `<=`.
    Le,
    /// `and`.
    And,
    /// `or`.
    Or,
    /// `unless`.
    Unless,
}

impl BinOp {
    /// The operator of a token; a `bad_data` error naming it when it is not supported.
    pub fn from_token(op: TokenType) -> Result<BinOp, PromqlError> {
        Ok(match op.id() {
            T_ADD => BinOp::Add,
            T_SUB => BinOp::Sub,
            T_MUL => BinOp::Mul,
            T_DIV => BinOp::Div,
            T_MOD => BinOp::Mod,
            T_POW => BinOp::Pow,
            T_EQLC => BinOp::Eq,
            T_NEQ => BinOp::Ne,
            T_GTR => BinOp::Gt,
            T_LSS => BinOp::Lt,
            T_GTE => BinOp::Ge,
            T_LTE => BinOp::Le,
            T_LAND => BinOp::And,
            T_LOR => BinOp::Or,
            T_LUNLESS => BinOp::Unless,
            _ => return Err(PromqlError::unsupported(format!("the operator {op}"))),
        })
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }

    fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }

    /// `l op r`: the value, and for comparisons whether it holds.
    fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            BinOp::Add => (l + r, true),
            BinOp::Sub => (l - r, true),
            BinOp::Mul => (l * r, true),
            BinOp::Div => (l / r, true),
            BinOp::Mod => (l % r, true),
            BinOp::Pow => (l.powf(r), true),
            BinOp::Eq => (l, l == r),
            BinOp::Ne => (l, l != r),
            BinOp::Gt => (l, l > r),
            BinOp::Lt => (l, l < r),
            BinOp::Ge => (l, l >= r),
            BinOp::Le => (l, l <= r),
            BinOp::And | BinOp::Or | BinOp::Unless => (l, true),
        }
    }
}

/// Evaluates a binary expression.
pub fn eval(ev: &mut Eval<'_>, b: &BinaryExpr) -> Result<Value, PromqlError> {
    let op = BinOp::from_token(b.op)?;
    let default = BinModifier::default();
    let modifier = b.modifier.as_ref().unwrap_or(&default);
    let lhs = ev.eval(&b.lhs)?;
    let rhs = ev.eval(&b.rhs)?;
    let steps = ev.steps();
    let bool_ = modifier.return_bool;
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => Ok(Value::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&l, &r)| match op.apply(l, r) {
                    (_, holds) if op.is_comparison() => f64::from(u8::from(holds)),
                    (v, _) => v,
                })
                .collect(),
        )),
        (Value::Vector(v), Value::Scalar(s)) => scalar_op(op, bool_, v, &s, false, steps),
        (Value::Scalar(s), Value::Vector(v)) => scalar_op(op, bool_, v, &s, true, steps),
        (Value::Vector(l), Value::Vector(r)) if op.is_set() => {
            Ok(Value::Vector(set_op(op, modifier, l, r, steps)?))
        }
        (Value::Vector(l), Value::Vector(r)) => {
            Ok(Value::Vector(vector_op(op, modifier, &l, &r, steps)?))
        }
        _ => Err(PromqlError::BadData(format!(
            "operator {} needs scalars or instant vectors on both sides",
            b.op
        ))),
    }
}

/// A vector and a scalar; `swapped` when the scalar is on the left.
fn scalar_op(
    op: BinOp,
    bool_: bool,
    vector: Vec<Series>,
    scalar: &[f64],
    swapped: bool,
    steps: usize,
) -> Result<Value, PromqlError> {
    if op.is_set() {
        return Err(PromqlError::BadData(format!(
            "set operator {op:?} is only allowed between instant vectors"
        )));
    }
    let mut out = SeriesSet::new(steps);
    for s in &vector {
        let labels = if op.is_comparison() && !bool_ {
            s.labels.clone()
        } else {
            s.labels.without_name()
        };
        for (i, v) in s.values.iter().enumerate() {
            let Some(v) = *v else { continue };
            let (l, r) = if swapped {
                (scalar[i], v)
            } else {
                (v, scalar[i])
            };
            let (value, holds) = op.apply(l, r);
            match (op.is_comparison(), bool_) {
                (false, _) => out.set(&labels, i, value)?,
                (true, true) => out.set(&labels, i, f64::from(u8::from(holds)))?,
                // A filter keeps the vector's own value, whichever side it is on.
                (true, false) if holds => out.set(&labels, i, v)?,
                (true, false) => {}
            }
        }
    }
    Ok(Value::Vector(out.finish()))
}

/// The labels two series are matched on.
fn signature(labels: &Labels, matching: &Option<LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => labels.keep(&on.labels),
        Some(LabelModifier::Exclude(ignoring)) => labels.without(&ignoring.labels),
        None => labels.without_name(),
    }
}

fn set_op(
    op: BinOp,
    modifier: &BinModifier,
    lhs: Vec<Series>,
    rhs: Vec<Series>,
    steps: usize,
) -> Result<Vec<Series>, PromqlError> {
    let lsig: Vec<Labels> = lhs
        .iter()
        .map(|s| signature(&s.labels, &modifier.matching))
        .collect();
    let rsig: Vec<Labels> = rhs
        .iter()
        .map(|s| signature(&s.labels, &modifier.matching))
        .collect();
    let mut out = SeriesSet::new(steps);
    for i in 0..steps {
        let present = |series: &[Series], sigs: &[Labels]| -> HashSet<Labels> {
            series
                .iter()
                .zip(sigs)
                .filter(|(s, _)| s.values[i].is_some())
                .map(|(_, sig)| sig.clone())
                .collect()
        };
        let right = present(&rhs, &rsig);
        for (s, sig) in lhs.iter().zip(&lsig) {
            let Some(v) = s.values[i] else { continue };
            let keep = match op {
                BinOp::And => right.contains(sig),
                BinOp::Unless => !right.contains(sig),
                _ => true,
            };
            if keep {
                out.set(&s.labels, i, v)?;
            }
        }
        if op == BinOp::Or {
            let left = present(&lhs, &lsig);
            for (s, sig) in rhs.iter().zip(&rsig) {
                if let Some(v) = s.values[i] {
                    if !left.contains(sig) {
                        out.set(&s.labels, i, v)?;
                    }
                }
            }
        }
    }
    Ok(out.finish())
}

/// The labels of a result series: `many` (the side that may repeat) combined with `one`.
fn result_labels(op: BinOp, bool_: bool, many: &Labels, one: &Labels, m: &BinModifier) -> Labels {
    let mut labels = if op.is_comparison() && !bool_ {
        many.clone()
    } else {
        many.without_name()
    };
    if m.card == VectorMatchCardinality::OneToOne {
        labels = match &m.matching {
            Some(LabelModifier::Include(on)) => labels.keep(&on.labels),
            Some(LabelModifier::Exclude(ignoring)) => {
                let mut kept = labels.clone();
                for name in &ignoring.labels {
                    kept.set(name, String::new());
                }
                kept
            }
            None => labels,
        };
    }
    if let Some(include) = m.card.labels() {
        for name in &include.labels {
            labels.set(name, one.get(name).to_owned());
        }
    }
    labels
}

fn vector_op(
    op: BinOp,
    m: &BinModifier,
    lhs: &[Series],
    rhs: &[Series],
    steps: usize,
) -> Result<Vec<Series>, PromqlError> {
    // The "one" side is the right one, except for group_right.
    let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
    let (many, one, one_side) = if one_to_many {
        (rhs, lhs, "left")
    } else {
        (lhs, rhs, "right")
    };
    let many_sig: Vec<Labels> = many
        .iter()
        .map(|s| signature(&s.labels, &m.matching))
        .collect();
    let one_sig: Vec<Labels> = one
        .iter()
        .map(|s| signature(&s.labels, &m.matching))
        .collect();
    let mut out = SeriesSet::new(steps);
    for i in 0..steps {
        let mut ones: HashMap<&Labels, &Series> = HashMap::new();
        for (s, sig) in one
            .iter()
            .zip(&one_sig)
            .filter(|(s, _)| s.values[i].is_some())
        {
            if let Some(other) = ones.insert(sig, s) {
                return Err(PromqlError::Execution(format!(
                    "found duplicate series for the match group {sig} on the {one_side} hand-side \
                     of the operation: [{}, {}];many-to-many matching not allowed: matching \
                     labels must be unique on one side",
                    s.labels, other.labels
                )));
            }
        }
        let mut matched: HashMap<&Labels, HashSet<Labels>> = HashMap::new();
        for (s, sig) in many.iter().zip(&many_sig) {
            let (Some(mv), Some(o)) = (s.values[i], ones.get(sig)) else {
                continue;
            };
            let ov = o.values[i].expect("present at this step");
            let (l, r) = if one_to_many { (ov, mv) } else { (mv, ov) };
            let (value, holds) = op.apply(l, r);
            let labels = result_labels(op, m.return_bool, &s.labels, &o.labels, m);
            let results = matched.entry(sig).or_default();
            if m.card == VectorMatchCardinality::OneToOne && !results.is_empty() {
                return Err(PromqlError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit \
                     (group_left/group_right)"
                        .into(),
                ));
            }
            if !results.insert(labels.clone()) {
                return Err(PromqlError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
            match (op.is_comparison(), m.return_bool) {
                (false, _) => out.set(&labels, i, value)?,
                (true, true) => out.set(&labels, i, f64::from(u8::from(holds)))?,
                (true, false) if holds => out.set(&labels, i, l)?,
                (true, false) => {}
            }
        }
    }
    Ok(out.finish())
}
