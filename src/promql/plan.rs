//! Before reading anything: check that a query stays inside the supported subset, and work out
//! which readings it needs.
//!
//! The supported subset is checked here, in one walk, so that an unsupported query is refused
//! with a `bad_data` error naming the feature before a single partition is read. The same walk
//! collects every selector with the time window it looks at; [`reads`] turns them into one read
//! per (service, kind of reading) covering every step of the query at once.
//!
//! Windows are left-open, as in Prometheus 3: a selector evaluated at `t` sees samples in
//! `(t - offset - window, t - offset]`, where the window is the lookback for an instant selector
//! and the range for a range selector.
//!
//! Rollups ([`rollup_level`]): a selector is read from rollups when only the sum of its
//! increments over each window matters (`rate`, `increase`) and every window edge of the query
//! is a slot boundary of the level (the coarsest such level; else raw readings). Its read then
//! covers whole slots, and [`Level`] is part of the read's key: a selector reading raw and one
//! reading rollups of the same service get their own data.

use std::collections::BTreeMap;

use promql_parser::label::Matcher;
use promql_parser::parser::{Expr, Offset, VectorSelector};

use super::error::PromqlError;
use super::eval::aggregate::AggOp;
use super::eval::binary::BinOp;
use super::eval::functions::Func;
use super::families::{Family, Kind};
use super::labels::{required_value, selector_matchers, METRIC_NAME};
use crate::model::{ApiPath, HttpMethod, InstanceName, ServiceName, StatusCode};
use crate::query::params::ApiFilter;
use crate::query::source::{Level, Source as Sources};
use crate::rollup::Resolution;

/// A UTC day in milliseconds: counters restart from zero at every UTC midnight (the anchor of
/// a bare counter's value).
pub const DAY_MS: i64 = 86_400_000;

/// The evaluation times of a query: `start + i × step` for `i < steps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// The first evaluation time, ms.
    pub start: i64,
    /// Between two evaluation times, ms (0 for an instant query).
    pub step: i64,
    /// How many evaluation times (at least 1).
    pub steps: usize,
}

impl Timeline {
    /// The `i`-th evaluation time.
    pub fn at(&self, i: usize) -> i64 {
        self.start + self.step * i as i64
    }

    /// The last evaluation time.
    pub fn last(&self) -> i64 {
        self.at(self.steps - 1)
    }
}

/// What a selector's samples are used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Sample values: a gauge's value, a counter's count since the UTC midnight before it.
    Values,
    /// Counter increments with their times (`irate`).
    Increments,
    /// Only the sum of a counter's increments over each window (`rate`, `increase`): what
    /// rollups can serve.
    Sums,
}

/// A selector of the query and how it is used.
#[derive(Debug, Clone)]
pub struct SelectorUse<'e> {
    /// The selector.
    pub selector: &'e VectorSelector,
    /// Lookback (instant selector) or range (range selector), ms.
    pub window_ms: i64,
    /// Values or increments.
    pub use_: Use,
}

/// How far back in time `offset` moves a selector, ms (negative: forward).
pub fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// The inclusive range of sample times a selector sees over the whole timeline.
pub fn sample_range(timeline: &Timeline, offset: i64, window_ms: i64) -> (i64, i64) {
    (
        timeline.start - offset - window_ms + 1,
        timeline.last() - offset,
    )
}

/// The coarsest level of rollups that serves a selector exactly, or why none can: only sums of
/// increments, and only when every window edge `t − offset` and `t − offset − window` of the
/// timeline is a slot boundary (slots are `[s, s + slot)`, windows `(a, b]`).
pub fn rollup_level(
    use_: Use,
    offset: i64,
    window_ms: i64,
    timeline: &Timeline,
) -> Result<Resolution, &'static str> {
    if use_ != Use::Sums {
        return Err("only rate() and increase() of the request families read rollups");
    }
    let aligned = |slot: i64| {
        (timeline.start - offset).rem_euclid(slot) == 0
            && window_ms % slot == 0
            && (timeline.steps == 1 || timeline.step % slot == 0)
    };
    [Resolution::Hour, Resolution::Minute]
        .into_iter()
        .find(|r| aligned(r.step_ms()))
        .ok_or(
            "its windows do not start and end on whole minutes (the range, the step, the offset \
             and the evaluation time must be whole minutes)",
        )
}

/// What serves a selector's reads under `sources`: raw readings, or the level of
/// [`rollup_level`].
pub fn level(
    use_: Use,
    offset: i64,
    window_ms: i64,
    timeline: &Timeline,
    sources: Sources,
) -> Level {
    match (sources, rollup_level(use_, offset, window_ms, timeline)) {
        (Sources::Raw, _) | (_, Err(_)) => Level::Raw,
        (_, Ok(resolution)) => Level::Rollup(resolution),
    }
}

/// Checks `expr` against the supported subset and lists its selectors.
pub fn check(expr: &Expr, lookback_ms: i64) -> Result<Vec<SelectorUse<'_>>, PromqlError> {
    let mut uses = Vec::new();
    walk(expr, lookback_ms, &mut uses)?;
    Ok(uses)
}

fn check_selector(vs: &VectorSelector) -> Result<(), PromqlError> {
    if vs.at.is_some() {
        return Err(PromqlError::unsupported("the @ modifier"));
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err(PromqlError::unsupported("`or` between label matchers"));
    }
    Ok(())
}

/// Refuses `rate()` and its kin over a selector that can match a gauge.
fn check_counters(vs: &VectorSelector, function: &str) -> Result<(), PromqlError> {
    match families(&selector_matchers(vs))
        .iter()
        .find(|f| !f.is_counter())
    {
        Some(gauge) => Err(PromqlError::BadData(format!(
            "{function}() needs counters, and `{vs}` can match the gauge `{}`; use the \
             *_over_time functions on gauges",
            gauge.name()
        ))),
        None => Ok(()),
    }
}

fn walk<'e>(
    expr: &'e Expr,
    lookback_ms: i64,
    uses: &mut Vec<SelectorUse<'e>>,
) -> Result<(), PromqlError> {
    match expr {
        Expr::Aggregate(a) => {
            AggOp::from_token(a.op)?;
            if let Some(param) = &a.param {
                walk(param, lookback_ms, uses)?;
            }
            walk(&a.expr, lookback_ms, uses)
        }
        Expr::Unary(u) => walk(&u.expr, lookback_ms, uses),
        Expr::Binary(b) => {
            BinOp::from_token(b.op)?;
            if let Some(m) = &b.modifier {
                if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                    return Err(PromqlError::unsupported("the fill modifiers"));
                }
            }
            walk(&b.lhs, lookback_ms, uses)?;
            walk(&b.rhs, lookback_ms, uses)
        }
        Expr::Paren(p) => walk(&p.expr, lookback_ms, uses),
        Expr::Subquery(_) => Err(PromqlError::unsupported("subqueries (`expr[range:step]`)")),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => {
            check_selector(vs)?;
            uses.push(SelectorUse {
                selector: vs,
                window_ms: lookback_ms,
                use_: Use::Values,
            });
            Ok(())
        }
        Expr::MatrixSelector(ms) => {
            check_selector(&ms.vs)?;
            uses.push(SelectorUse {
                selector: &ms.vs,
                window_ms: ms.range.as_millis() as i64,
                use_: Use::Values,
            });
            Ok(())
        }
        Expr::Call(call) => {
            let func = Func::from_name(call.func.name)?;
            for arg in &call.args.args {
                match (&**arg, func.is_counter_rate()) {
                    (Expr::MatrixSelector(ms), true) => {
                        check_selector(&ms.vs)?;
                        check_counters(&ms.vs, call.func.name)?;
                        uses.push(SelectorUse {
                            selector: &ms.vs,
                            window_ms: ms.range.as_millis() as i64,
                            use_: if func == Func::Irate {
                                Use::Increments
                            } else {
                                Use::Sums
                            },
                        });
                    }
                    (arg, _) => walk(arg, lookback_ms, uses)?,
                }
            }
            Ok(())
        }
        Expr::Extension(e) => Err(PromqlError::unsupported(format!(
            "the extension `{}`",
            e.expr.name()
        ))),
    }
}

/// The families a selector's matchers can select: its `__name__` matchers accept the name, and
/// every matcher on a label the family lacks accepts the empty value.
pub fn families(matchers: &[Matcher]) -> Vec<Family> {
    Family::ALL
        .into_iter()
        .filter(|family| {
            matchers.iter().all(|m| {
                if m.name == METRIC_NAME {
                    m.is_match(family.name())
                } else if family.label_names().contains(&m.name.as_str()) {
                    true
                } else {
                    m.is_match("")
                }
            })
        })
        .collect()
}

/// True when the `service` and `job` matchers accept `service` (they always have its name).
pub fn service_matches(matchers: &[Matcher], service: &ServiceName) -> bool {
    matchers
        .iter()
        .filter(|m| m.name == "service" || m.name == "job")
        .all(|m| m.is_match(service.as_str()))
}

/// The one service an equality matcher names, when there is one (then no listing is needed).
pub fn named_service(matchers: &[Matcher]) -> Option<&str> {
    required_value(matchers, "service").or_else(|| required_value(matchers, "job"))
}

/// The API filter the equality matchers of a selector imply; `None` when one of them can match
/// no API reading (a value that is not a valid instance, method, path or code).
pub fn api_filter(matchers: &[Matcher]) -> Option<ApiFilter> {
    fn parsed<T>(
        value: Option<&str>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match value {
            None => Some(None),
            Some(v) => parse(v).ok().map(Some),
        }
    }
    Some(ApiFilter {
        instance: parsed(required_value(matchers, "instance"), InstanceName::parse)?,
        method: parsed(required_value(matchers, "method"), |v| {
            // A method label must match exactly: `get` is not the series `GET`.
            HttpMethod::parse(v).and_then(|m| {
                if m.as_str() == v {
                    Ok(m)
                } else {
                    Err(String::new())
                }
            })
        })?,
        path: parsed(required_value(matchers, "path"), ApiPath::parse)?,
        code: parsed(required_value(matchers, "code"), |v| {
            let n: i64 = v.parse().map_err(|_| String::new())?;
            StatusCode::parse(n).and_then(|c| {
                if c.get().to_string() == v {
                    Ok(c)
                } else {
                    Err(String::new())
                }
            })
        })?,
    })
}

/// The host instance an equality matcher pins, `Some(None)` for all, `None` when the value
/// cannot be an instance.
pub fn host_instance(matchers: &[Matcher]) -> Option<Option<InstanceName>> {
    match required_value(matchers, "instance") {
        None => Some(None),
        Some(v) => InstanceName::parse(v).ok().map(Some),
    }
}

/// One read: a service's readings of one kind, for selectors served by one level.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReadKey {
    /// The service.
    pub service: ServiceName,
    /// API or host readings.
    pub kind: Kind,
    /// Raw readings, or rollups of a level (and raw readings where they cannot serve).
    pub level: Level,
}

/// What one read covers: the union of the windows of every selector needing it, and the
/// filters they all share.
#[derive(Debug, Clone)]
pub struct ReadSpec {
    /// First sample time, ms, inclusive.
    pub from: i64,
    /// Last sample time, ms, inclusive.
    pub to: i64,
    /// API reads: the equality filters every selector shares.
    pub api: ApiFilter,
    /// Host reads: the instance every selector pins.
    pub instance: Option<InstanceName>,
}

fn shared<T: PartialEq>(a: &mut Option<T>, b: Option<T>) {
    if *a != b {
        *a = None;
    }
}

impl ReadSpec {
    fn widen(&mut self, other: ReadSpec) {
        self.from = self.from.min(other.from);
        self.to = self.to.max(other.to);
        shared(&mut self.api.instance, other.api.instance);
        shared(&mut self.api.method, other.api.method);
        shared(&mut self.api.path, other.api.path);
        shared(&mut self.api.code, other.api.code);
        shared(&mut self.instance, other.instance);
    }
}

/// The reads a query needs: one per (service, kind, level), covering every step.
pub fn reads(
    uses: &[SelectorUse<'_>],
    timeline: &Timeline,
    services: &[ServiceName],
    sources: Sources,
) -> BTreeMap<ReadKey, ReadSpec> {
    let mut out: BTreeMap<ReadKey, ReadSpec> = BTreeMap::new();
    for u in uses {
        let matchers = selector_matchers(u.selector);
        let offset = offset_ms(&u.selector.offset);
        let (from, to) = sample_range(timeline, offset, u.window_ms);
        let level = level(u.use_, offset, u.window_ms, timeline, sources);
        // Whole slots: from the one starting at the first window's (excluded) left edge to the
        // one starting at the last window's right edge.
        let (from, to) = match level {
            Level::Raw => (from, to),
            Level::Rollup(r) => (from - 1, to + r.step_ms() - 1),
        };
        let families = families(&matchers);
        for kind in [Kind::Api, Kind::Host] {
            let of_kind: Vec<&Family> = families.iter().filter(|f| f.kind() == kind).collect();
            if of_kind.is_empty() {
                continue;
            }
            // A counter's value counts from the UTC midnight before its sample.
            let needs_anchor = u.use_ == Use::Values && of_kind.iter().any(|f| f.is_counter());
            let from = if needs_anchor {
                from.div_euclid(DAY_MS) * DAY_MS
            } else {
                from
            };
            let spec = match kind {
                Kind::Api => match api_filter(&matchers) {
                    Some(api) => ReadSpec {
                        from,
                        to,
                        api,
                        instance: None,
                    },
                    None => continue,
                },
                Kind::Host => match host_instance(&matchers) {
                    Some(instance) => ReadSpec {
                        from,
                        to,
                        api: ApiFilter::default(),
                        instance,
                    },
                    None => continue,
                },
            };
            for service in services.iter().filter(|s| service_matches(&matchers, s)) {
                let key = ReadKey {
                    service: service.clone(),
                    kind,
                    level: if kind == Kind::Api { level } else { Level::Raw },
                };
                match out.get_mut(&key) {
                    Some(existing) => existing.widen(spec.clone()),
                    None => {
                        out.insert(key, spec.clone());
                    }
                }
            }
        }
    }
    out
}

/// True when the matchers leave the service open, so every service must be listed.
pub fn needs_service_list(uses: &[SelectorUse<'_>]) -> bool {
    uses.iter()
        .any(|u| named_service(&selector_matchers(u.selector)).is_none())
}
