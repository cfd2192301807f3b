//! The typed requests of each query endpoint, checked from the query string by [`Checker`].
//!
//! Invariant: a value of any of these types satisfies every limit in [`QueryLimits`] that can
//! be checked before reading (range, page size, points per step, a cursor made for exactly these
//! parameters), so the executing code never re-validates.

#[cfg(test)]
mod tests;

use super::cursor::{self, Fingerprint};
use super::limits::QueryLimits;
use super::params::{ApiFilter, Checker, ParamErrors, Step, TimeRange};
use super::source::Source;
use crate::model::{InstanceName, ServiceName};
use crate::store::{Order, ReadingKey};

/// `GET /v1/readings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadingsRequest {
    /// The service.
    pub service: ServiceName,
    /// The inclusive time range.
    pub range: TimeRange,
    /// Filters on the readings.
    pub filter: ApiFilter,
    /// Most readings in this page.
    pub limit: u32,
    /// Oldest or newest first.
    pub order: Order,
    /// Where the previous page ended: the answer continues strictly after it.
    pub resume: Option<ReadingKey>,
}

impl ReadingsRequest {
    /// The parameters this endpoint accepts.
    pub const PARAMS: &'static [&'static str] = &[
        "service", "from", "to", "instance", "method", "path", "code", "limit", "order", "cursor",
    ];

    /// Checks the query string.
    pub fn parse(pairs: &[(String, String)], limits: &QueryLimits) -> Result<Self, ParamErrors> {
        let mut c = Checker::new(pairs, Self::PARAMS);
        let service = c.required("service", ServiceName::parse);
        let range = c.range(limits);
        let filter = c.api_filter();
        let limit = limit(&mut c, limits);
        let order = c.optional("order", |v| match v {
            "asc" => Ok(Order::Asc),
            "desc" => Ok(Order::Desc),
            _ => Err(format!("must be `asc` or `desc`, got `{v}`")),
        });
        let mut request = c.finish(|| {
            Some(Self {
                service: service?,
                range: range?,
                filter,
                limit: limit.unwrap_or(limits.default_limit()),
                order: order.unwrap_or_default(),
                resume: None,
            })
        })?;
        // The cursor is checked against the other parameters, so it comes last.
        let mut c = Checker::new(pairs, Self::PARAMS);
        let fingerprint = request.fingerprint();
        let range = request.range;
        request.resume = c.optional("cursor", |text| {
            let key = cursor::decode(text, &fingerprint)?;
            if range.contains(key.timestamp) {
                Ok(key)
            } else {
                Err("points outside [from, to]; start again without a cursor".into())
            }
        });
        c.finish(|| Some(request))
    }

    /// Every parameter that decides which readings the pages hold (all but `limit` and
    /// `cursor`): a cursor is only valid with the same fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        let f = &self.filter;
        let code = f.code.map(|c| c.get().to_string());
        Fingerprint::new("readings")
            .text(self.service.as_str())
            .int(self.range.from.millis())
            .int(self.range.to.millis())
            .optional(f.instance.as_ref().map(|i| i.as_str()))
            .optional(f.method.as_ref().map(|m| m.as_str()))
            .optional(f.path.as_ref().map(|p| p.as_str()))
            .optional(code.as_deref())
            .text(match self.order {
                Order::Asc => "asc",
                Order::Desc => "desc",
            })
    }
}

/// `limit`: from 1 to `--query-max-limit`.
fn limit(c: &mut Checker<'_>, limits: &QueryLimits) -> Option<u32> {
    let max = limits.max_limit;
    c.optional("limit", |v| match v.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "must be a whole number from 1 to {max} (--query-max-limit), got `{v}`"
        )),
    })
}

/// `source` (default `auto`), checked against the step; `None` when invalid (recorded).
fn source(c: &mut Checker<'_>, step: Option<Step>) -> Option<Source> {
    let source = c.optional("source", Source::parse);
    if source.is_none() && c.has("source") {
        return None;
    }
    let source = source.unwrap_or_default();
    if let Some(step) = step {
        if let Err(problem) = source.check(step) {
            c.problem("source", problem);
            return None;
        }
    }
    Some(source)
}

/// `cursor` of a names-keyed endpoint: the sort key of the entry the previous page ended on.
/// Checked last, against the fingerprint of the other parameters.
fn names_cursor(
    pairs: &[(String, String)],
    allowed: &[&str],
    fingerprint: &Fingerprint,
    names: usize,
) -> Result<Option<Vec<String>>, ParamErrors> {
    let mut c = Checker::new(pairs, allowed);
    let resume = c.optional("cursor", |text| {
        let key = cursor::decode_names(text, fingerprint)?;
        if key.len() == names {
            Ok(key)
        } else {
            Err("is not a cursor from a previous page (pass `next_cursor` unchanged)".into())
        }
    });
    c.finish(|| Some(resume))
}

/// `GET /v1/series`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRequest {
    /// The service.
    pub service: ServiceName,
    /// The inclusive time range.
    pub range: TimeRange,
    /// Most entries (an instance's method + path, or a host-only instance) in this page.
    pub limit: u32,
    /// The sort key `[instance, method, path]` the previous page ended on.
    pub resume: Option<Vec<String>>,
}

impl SeriesRequest {
    /// The parameters this endpoint accepts.
    pub const PARAMS: &'static [&'static str] = &["service", "from", "to", "limit", "cursor"];

    /// Checks the query string.
    pub fn parse(pairs: &[(String, String)], limits: &QueryLimits) -> Result<Self, ParamErrors> {
        let mut c = Checker::new(pairs, Self::PARAMS);
        let service = c.required("service", ServiceName::parse);
        let range = c.range(limits);
        let limit = limit(&mut c, limits);
        let mut request = c.finish(|| {
            Some(Self {
                service: service?,
                range: range?,
                limit: limit.unwrap_or(limits.default_lookup_limit()),
                resume: None,
            })
        })?;
        request.resume = names_cursor(pairs, Self::PARAMS, &request.fingerprint(), 3)?;
        Ok(request)
    }

    /// The parameters a cursor is bound to: all but `limit` and `cursor`.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::new("series")
            .text(self.service.as_str())
            .int(self.range.from.millis())
            .int(self.range.to.millis())
    }
}

/// `GET /v1/latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestRequest {
    /// One service, or every service.
    pub service: Option<ServiceName>,
    /// Most readings (API and host together) in this page.
    pub limit: u32,
    /// The sort key `[kind, service, instance, method, path]` the previous page ended on.
    pub resume: Option<Vec<String>>,
}

impl LatestRequest {
    /// The parameters this endpoint accepts.
    pub const PARAMS: &'static [&'static str] = &["service", "limit", "cursor"];

    /// Checks the query string.
    pub fn parse(pairs: &[(String, String)], limits: &QueryLimits) -> Result<Self, ParamErrors> {
        let mut c = Checker::new(pairs, Self::PARAMS);
        let service = c.optional("service", ServiceName::parse);
        let limit = limit(&mut c, limits);
        let mut request = c.finish(|| {
            Some(Self {
                service,
                limit: limit.unwrap_or(limits.default_lookup_limit()),
                resume: None,
            })
        })?;
        request.resume = names_cursor(pairs, Self::PARAMS, &request.fingerprint(), 5)?;
        Ok(request)
    }

    /// The parameters a cursor is bound to: all but `limit` and `cursor`.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::new("latest").optional(self.service.as_ref().map(|s| s.as_str()))
    }
}

/// What API stats are grouped by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct GroupBy {
    /// Per instance.
    pub instance: bool,
    /// Per method.
    pub method: bool,
    /// Per path.
    pub path: bool,
    /// Per status code.
    pub code: bool,
}

impl GroupBy {
    /// Parses a comma-separated list of `instance`, `method`, `path`, `code`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut group = Self::default();
        for name in text.split(',').map(str::trim) {
            let flag = match name {
                "instance" => &mut group.instance,
                "method" => &mut group.method,
                "path" => &mut group.path,
                "code" => &mut group.code,
                _ => {
                    return Err(format!(
                        "`{name}` is not a group; use a comma-separated list of instance, method, path, code"
                    ))
                }
            };
            if *flag {
                return Err(format!("`{name}` is listed twice"));
            }
            *flag = true;
        }
        Ok(group)
    }

    /// True when readings are split into groups at all.
    pub fn any(self) -> bool {
        self.instance || self.method || self.path || self.code
    }
}

/// `GET /v1/stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsRequest {
    /// The service.
    pub service: ServiceName,
    /// The inclusive time range.
    pub range: TimeRange,
    /// The width of a point.
    pub step: Step,
    /// How readings are grouped.
    pub group_by: GroupBy,
    /// Which readings count.
    pub filter: ApiFilter,
    /// Raw readings, rollups or either (`?source=`).
    pub source: Source,
}

impl StatsRequest {
    /// Checks the query string.
    pub fn parse(pairs: &[(String, String)], limits: &QueryLimits) -> Result<Self, ParamErrors> {
        let allowed = [
            "service", "from", "to", "step", "group_by", "instance", "method", "path", "code",
            "source",
        ];
        let mut c = Checker::new(pairs, &allowed);
        let service = c.required("service", ServiceName::parse);
        let range = c.range(limits);
        let step = c.step(range, limits);
        let group_by = c.optional("group_by", GroupBy::parse);
        let filter = c.api_filter();
        let source = source(&mut c, step);
        c.finish(|| {
            Some(Self {
                service: service?,
                range: range?,
                step: step?,
                group_by: group_by.unwrap_or_default(),
                filter,
                source: source?,
            })
        })
    }
}

/// `GET /v1/stats/host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStatsRequest {
    /// The service.
    pub service: ServiceName,
    /// The inclusive time range.
    pub range: TimeRange,
    /// The width of a point.
    pub step: Step,
    /// Only this instance.
    pub instance: Option<InstanceName>,
    /// Raw readings, rollups or either (`?source=`).
    pub source: Source,
}

impl HostStatsRequest {
    /// Checks the query string.
    pub fn parse(pairs: &[(String, String)], limits: &QueryLimits) -> Result<Self, ParamErrors> {
        let allowed = ["service", "from", "to", "step", "instance", "source"];
        let mut c = Checker::new(pairs, &allowed);
        let service = c.required("service", ServiceName::parse);
        let range = c.range(limits);
        let step = c.step(range, limits);
        let instance = c.optional("instance", InstanceName::parse);
        let source = source(&mut c, step);
        c.finish(|| {
            Some(Self {
                service: service?,
                range: range?,
                step: step?,
                instance,
                source: source?,
            })
        })
    }
}
