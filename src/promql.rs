//! A PromQL engine over the readings: the virtual metric families of [`families`], a subset of
//! PromQL parsed by the `promql-parser` crate (GreptimeDB's port of Prometheus' own grammar:
//! parsing is the part most easily got subtly wrong, so we do not write our own), and an
//! evaluator built for our data.
//!
//! ```text
//!  query text ──promql-parser──► AST ──plan::check──► supported? selectors + windows
//!                                                          │
//!     plan::reads: one read per (service, API|host, level) for all steps, filters every
//!     selector shares; rate/increase with slot-aligned windows: a level of rollups
//!                                                          │
//!     fetch: Source pages / rollup rows ──► compact events per series (charged against max
//!            samples)
//!                                                          │
//!     eval: every node over all steps at once ──► QueryValue (scalar, string, vector, matrix)
//! ```
//!
//! The engine knows nothing of HTTP (the handlers are in `api::prometheus`) and reads only
//! through [`source::Source`], so rules can be evaluated with [`Engine::instant`] directly.
//!
//! Invariants: an unsupported feature is refused with a `bad_data` error naming it before any
//! read; each partition a query needs is read once for the whole range (once per level serving
//! its selectors); every limit of [`limits::EngineConfig`] is enforced with an error naming its
//! flag; an answer served from rollups equals the raw one (counts exact, sums up to rounding).

pub mod error;
mod eval;
pub mod families;
mod fetch;
pub mod labels;
pub mod limits;
mod plan;
pub mod source;
#[cfg(test)]
mod tests;
pub mod value;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use promql_parser::label::Matcher;
use promql_parser::parser::{self, Expr};

pub use error::{ErrorType, PromqlError};
pub use labels::Labels;
pub use limits::EngineConfig;
pub use value::{QueryValue, RangeSeries, Sample};

use crate::model::{ServiceName, TimestampMs};
use crate::query::source::{Level, Source as Sources, SourceUsed};
use eval::{Eval, Value};
use fetch::{fetch, Fetched};
use labels::selector_matchers;
use plan::{SelectorUse, Timeline, Use};
use source::Source;

/// A parsed query, checked against the supported subset.
#[derive(Debug, Clone)]
pub struct Query {
    expr: Expr,
}

impl Query {
    /// Parses `text`; a `bad_data` error when it does not parse or uses an unsupported feature.
    pub fn parse(text: &str) -> Result<Self, PromqlError> {
        let expr = parser::parse(text).map_err(PromqlError::Parse)?;
        plan::check(&expr, 1)?;
        Ok(Self { expr })
    }

    /// True when the query's value is an instant vector or a scalar: what an alerting rule's
    /// expression must be.
    pub fn is_instant_or_scalar(&self) -> bool {
        matches!(
            self.expr.value_type(),
            parser::value::ValueType::Vector | parser::value::ValueType::Scalar
        )
    }

    /// Prometheus' canonical (pretty) form of the query.
    pub fn pretty(&self) -> String {
        self.expr.prettify()
    }

    /// The matchers of a series selector (`match[]` of the metadata endpoints).
    pub fn selector(text: &str) -> Result<Vec<Matcher>, PromqlError> {
        match parser::parse(text).map_err(PromqlError::Parse)? {
            Expr::VectorSelector(vs) if vs.at.is_none() && vs.offset.is_none() => {
                if !vs.matchers.or_matchers.is_empty() {
                    return Err(PromqlError::unsupported("`or` between label matchers"));
                }
                Ok(selector_matchers(&vs))
            }
            _ => Err(PromqlError::BadData(format!(
                "invalid parameter \"match[]\": {text} is not a series selector"
            ))),
        }
    }
}

/// An answer and what served it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The value.
    pub value: QueryValue,
    /// Raw readings, rollups of which levels (as `/v1/stats` says it).
    pub source: SourceUsed,
}

/// The engine over one source.
pub struct Engine<S> {
    source: Arc<S>,
    config: EngineConfig,
    sources: Sources,
}

impl<S> Clone for Engine<S> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            config: self.config,
            sources: self.sources,
        }
    }
}

impl<S: Source> Engine<S> {
    /// An engine reading from `source`.
    pub fn new(source: S, config: EngineConfig) -> Self {
        Self {
            source: Arc::new(source),
            config,
            sources: Sources::Auto,
        }
    }

    /// The same engine reading `sources` (`?source=`; the default is `auto`): `raw` reads raw
    /// readings only, `auto` rollups where they serve exactly, `rollup` refuses a query with a
    /// selector they cannot serve.
    pub fn with_sources(&self, sources: Sources) -> Self {
        let mut engine = self.clone();
        engine.sources = sources;
        engine
    }

    /// Its limits and lookback.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Evaluates `query` at one instant.
    pub async fn instant(&self, query: &Query, at: TimestampMs) -> Result<QueryValue, PromqlError> {
        Ok(self.instant_answer(query, at).await?.value)
    }

    /// Evaluates `query` at one instant, saying what served it.
    pub async fn instant_answer(
        &self,
        query: &Query,
        at: TimestampMs,
    ) -> Result<Answer, PromqlError> {
        let timeline = Timeline {
            start: at.millis(),
            step: 0,
            steps: 1,
        };
        self.run(query, timeline).await
    }

    /// Evaluates `query` at `start`, `start + step`, … up to `end`.
    pub async fn range(
        &self,
        query: &Query,
        start: TimestampMs,
        end: TimestampMs,
        step: Duration,
    ) -> Result<QueryValue, PromqlError> {
        Ok(self.range_answer(query, start, end, step).await?.value)
    }

    /// Evaluates `query` at `start`, `start + step`, … up to `end`, saying what served it.
    pub async fn range_answer(
        &self,
        query: &Query,
        start: TimestampMs,
        end: TimestampMs,
        step: Duration,
    ) -> Result<Answer, PromqlError> {
        let step_ms = step.as_millis() as i64;
        if step_ms <= 0 {
            return Err(PromqlError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive \
                 integer"
                    .into(),
            ));
        }
        if end < start {
            return Err(PromqlError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        let steps = (end.millis() - start.millis()) / step_ms + 1;
        if steps > self.config.max_steps as i64 {
            return Err(PromqlError::BadData(format!(
                "exceeded maximum resolution of {} points per timeseries (--query-max-steps). \
                 Try decreasing the query resolution (?step=XX)",
                self.config.max_steps
            )));
        }
        if matches!(query.expr, Expr::MatrixSelector(_) | Expr::StringLiteral(_)) {
            return Err(PromqlError::BadData(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                match query.expr {
                    Expr::StringLiteral(_) => "string",
                    _ => "range vector",
                }
            )));
        }
        let timeline = Timeline {
            start: start.millis(),
            step: step_ms,
            steps: steps as usize,
        };
        self.run(query, timeline).await
    }

    /// The same engine with a timeout of at most `timeout` (a request's `timeout` parameter).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        let mut engine = self.clone();
        engine.config.timeout = engine.config.timeout.min(timeout);
        engine
    }

    async fn run(&self, query: &Query, timeline: Timeline) -> Result<Answer, PromqlError> {
        let timeout = self.config.timeout;
        let deadline = Instant::now() + timeout;
        let sources = self.sources;
        let work = async {
            let uses = plan::check(&query.expr, self.config.lookback_ms)?;
            if sources == Sources::Rollup {
                only_rollups(&uses, &timeline)?;
            }
            let (fetched, used) = self.fetch_for(&uses, &timeline).await?;
            let levels: Vec<Level> = fetched.used.iter().copied().collect();
            let since = match sources {
                Sources::Raw => None,
                Sources::Rollup | Sources::Auto => fetched.rollups_since,
            };
            let source = SourceUsed::of_levels(&levels, since);
            let expr = query.expr.clone();
            let config = self.config;
            let value = tokio::task::spawn_blocking(move || {
                let mut ev = Eval {
                    timeline,
                    data: &fetched,
                    config: &config,
                    samples: used,
                    deadline,
                    sources,
                };
                answer(&mut ev, &expr)
            })
            .await
            .map_err(|e| PromqlError::Execution(format!("the evaluation failed: {e}")))??;
            Ok(Answer { value, source })
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| PromqlError::Timeout(timeout))?
    }

    async fn fetch_for(
        &self,
        uses: &[SelectorUse<'_>],
        timeline: &Timeline,
    ) -> Result<(Fetched, usize), PromqlError> {
        let services: Vec<ServiceName> = if plan::needs_service_list(uses) {
            self.source.services().await?
        } else {
            let named: BTreeSet<ServiceName> = uses
                .iter()
                .filter_map(|u| {
                    let matchers = selector_matchers(u.selector);
                    plan::named_service(&matchers).and_then(|s| ServiceName::parse(s).ok())
                })
                .collect();
            named.into_iter().collect()
        };
        let reads = plan::reads(uses, timeline, &services, self.sources);
        fetch(&*self.source, reads, self.config.max_samples).await
    }

    /// The label sets of every series matching any of `selectors` with a sample in
    /// `[start, end]`, sorted.
    pub async fn series(
        &self,
        selectors: &[Vec<Matcher>],
        start: TimestampMs,
        end: TimestampMs,
    ) -> Result<Vec<Labels>, PromqlError> {
        let timeline = Timeline {
            start: end.millis(),
            step: 0,
            steps: 1,
        };
        let window = end.millis() - start.millis() + 1;
        let vectors: Vec<parser::VectorSelector> = selectors
            .iter()
            .map(|matchers| parser::VectorSelector {
                matchers: promql_parser::label::Matchers::new(matchers.clone()),
                ..parser::VectorSelector::default()
            })
            .collect();
        let uses: Vec<SelectorUse<'_>> = vectors
            .iter()
            .map(|selector| SelectorUse {
                selector,
                window_ms: window,
                use_: Use::Increments,
            })
            .collect();
        let work = async {
            let (fetched, _) = self.fetch_for(&uses, &timeline).await?;
            let mut out = BTreeSet::new();
            for matchers in selectors {
                let raw = eval::select::raw_series(
                    &fetched,
                    matchers,
                    (start.millis(), end.millis()),
                    Use::Increments,
                    Level::Raw,
                );
                out.extend(raw.into_iter().map(|r| r.labels));
                if out.len() > self.config.max_series {
                    return Err(PromqlError::Limit(format!(
                        "more than {} series match (--query-max-series); add label matchers",
                        self.config.max_series
                    )));
                }
            }
            Ok(out.into_iter().collect())
        };
        tokio::time::timeout(self.config.timeout, work)
            .await
            .map_err(|_| PromqlError::Timeout(self.config.timeout))?
    }
}

/// With `source=rollup`: refuses a query with a selector rollups cannot serve, naming it and
/// why.
fn only_rollups(uses: &[SelectorUse<'_>], timeline: &Timeline) -> Result<(), PromqlError> {
    for u in uses {
        let offset = plan::offset_ms(&u.selector.offset);
        if let Err(why) = plan::rollup_level(u.use_, offset, u.window_ms, timeline) {
            return Err(PromqlError::BadData(format!(
                "with source=rollup every selector must be one rollups can serve, and `{}` is \
                 not: {why}; use source=auto or source=raw",
                u.selector
            )));
        }
    }
    Ok(())
}

/// Evaluates the whole query and shapes the answer.
fn answer(ev: &mut Eval<'_>, expr: &Expr) -> Result<QueryValue, PromqlError> {
    let timeline = ev.timeline;
    let at = |i: usize| TimestampMs::from_millis(timeline.at(i));
    let instant = timeline.steps == 1 && timeline.step == 0;
    if let (Expr::MatrixSelector(ms), true) = (expr, instant) {
        let raw = ev.raw(&ms.vs, ms.range.as_millis() as i64, Use::Values)?;
        return Ok(QueryValue::Matrix(
            raw.into_iter()
                .map(|r| RangeSeries {
                    labels: r.labels,
                    points: r
                        .t
                        .into_iter()
                        .map(TimestampMs::from_millis)
                        .zip(r.v)
                        .collect(),
                })
                .collect(),
        ));
    }
    Ok(match (ev.eval(expr)?, instant) {
        (Value::Scalar(v), true) => QueryValue::Scalar { t: at(0), v: v[0] },
        (Value::String(s), true) => QueryValue::String { t: at(0), s },
        (Value::Vector(series), true) => QueryValue::Vector(
            series
                .into_iter()
                .filter_map(|s| {
                    s.values[0].map(|v| Sample {
                        labels: s.labels,
                        t: at(0),
                        v,
                    })
                })
                .collect(),
        ),
        (Value::Scalar(v), false) => QueryValue::Matrix(vec![RangeSeries {
            labels: Labels::default(),
            points: v.into_iter().enumerate().map(|(i, v)| (at(i), v)).collect(),
        }]),
        (Value::Vector(series), false) => QueryValue::Matrix(
            series
                .into_iter()
                .map(|s| RangeSeries {
                    labels: s.labels,
                    points: s
                        .values
                        .into_iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|v| (at(i), v)))
                        .collect(),
                })
                .filter(|s| !s.points.is_empty())
                .collect(),
        ),
        (Value::String(_), false) => {
            return Err(PromqlError::BadData(
                "invalid expression type \"string\" for range query, must be Scalar or instant \
                 Vector"
                    .into(),
            ))
        }
    })
}
