//! The typed answers of the engine: what `/api/v1/query` and `/api/v1/query_range` serialize,
//! and what a rule evaluator reads.

use super::labels::Labels;
use crate::model::TimestampMs;

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series.
    pub labels: Labels,
    /// The evaluation time.
    pub t: TimestampMs,
    /// The value.
    pub v: f64,
}

/// One series of a range answer, its points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// The series.
    pub labels: Labels,
    /// `(time, value)`, oldest first; steps without a value are left out.
    pub points: Vec<(TimestampMs, f64)>,
}

/// The result of a query, in Prometheus' four result types.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// A number (`1 + 1`, `time()`, `scalar(...)`), with the evaluation time.
    Scalar {
        /// The evaluation time.
        t: TimestampMs,
        /// The value.
        v: f64,
    },
    /// A string literal, with the evaluation time.
    String {
        /// The evaluation time.
        t: TimestampMs,
        /// The text.
        s: String,
    },
    /// An instant vector, sorted by labels.
    Vector(Vec<Sample>),
    /// A range result (every range query; an instant query of a range selector), sorted by
    /// labels.
    Matrix(Vec<RangeSeries>),
}

impl QueryValue {
    /// Prometheus' name of the result type: `scalar`, `string`, `vector` or `matrix`.
    pub fn result_type(&self) -> &'static str {
        match self {
            QueryValue::Scalar { .. } => "scalar",
            QueryValue::String { .. } => "string",
            QueryValue::Vector(_) => "vector",
            QueryValue::Matrix(_) => "matrix",
        }
    }
}
