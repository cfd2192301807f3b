//! The typed requests of each query endpoint, checked from the query string by [`Checker`].
//!
//! Invariant: a value of any of these types satisfies every limit in [`QueryLimits`] that can
//! be checked before reading (range, page size, points per step, a cursor made for exactly these
//! parameters), so the executing code never re-validates.

#[cfg(test)]
mod tests;

use super::cursor;
use super::limits::QueryLimits;
use super::params::{ApiFilter, Checker, ParamErrors, Step, TimeRange};
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
        let max = limits.max_limit;
        let limit = c.optional("limit", |v| match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "must be a whole number from 1 to {max} (--query-max-limit), got `{v}`"
            )),
        });
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
    /// `cursor`), as one string: a cursor is only valid with the same fingerprint.
    pub fn fingerprint(&self) -> String {
        let f = &self.filter;
        let or_empty = |v: Option<&str>| v.unwrap_or("").to_owned();
        [
            "readings".to_owned(),
            self.service.to_string(),
            self.range.from.millis().to_string(),
            self.range.to.millis().to_string(),
            or_empty(f.instance.as_ref().map(|i| i.as_str())),
            or_empty(f.method.as_ref().map(|m| m.as_str())),
            or_empty(f.path.as_ref().map(|p| p.as_str())),
            f.code.map(|c| c.get().to_string()).unwrap_or_default(),
            format!("{:?}", self.order),
        ]
        .join("\0")
    }
}

/// `GET /v1/series`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRequest {
    /// The service.
    pub service: ServiceName,
    /// The inclusive time range.
    pub range: TimeRange,
}

impl SeriesRequest {
    /// Checks the query string.
    pub fn parse(pairs: &[(String, String)], limits: &QueryLimits) -> Result<Self, ParamErrors> {
        let mut c = Checker::new(pairs, &["service", "from", "to"]);
        let service = c.required("service", ServiceName::parse);
        let range = c.range(limits);
        c.finish(|| {
            Some(Self {
                service: service?,
                range: range?,
            })
        })
    }
}

/// `GET /v1/latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestRequest {
    /// One service, or every service.
    pub service: Option<ServiceName>,
}

impl LatestRequest {
    /// Checks the query string.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ParamErrors> {
        let mut c = Checker::new(pairs, &["service"]);
        let service = c.optional("service", ServiceName::parse);
        c.finish(|| Some(Self { service }))
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
}

impl StatsRequest {
    /// Checks the query string.
    pub fn parse(pairs: &[(String, String)], limits: &QueryLimits) -> Result<Self, ParamErrors> {
        let allowed = [
            "service", "from", "to", "step", "group_by", "instance", "method", "path", "code",
        ];
        let mut c = Checker::new(pairs, &allowed);
        let service = c.required("service", ServiceName::parse);
        let range = c.range(limits);
        let step = c.step(range, limits);
        let group_by = c.optional("group_by", GroupBy::parse);
        let filter = c.api_filter();
        c.finish(|| {
            Some(Self {
                service: service?,
                range: range?,
                step: step?,
                group_by: group_by.unwrap_or_default(),
                filter,
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
}

impl HostStatsRequest {
    /// Checks the query string.
    pub fn parse(pairs: &[(String, String)], limits: &QueryLimits) -> Result<Self, ParamErrors> {
        let mut c = Checker::new(pairs, &["service", "from", "to", "step", "instance"]);
        let service = c.required("service", ServiceName::parse);
        let range = c.range(limits);
        let step = c.step(range, limits);
        let instance = c.optional("instance", InstanceName::parse);
        c.finish(|| {
            Some(Self {
                service: service?,
                range: range?,
                step: step?,
                instance,
            })
        })
    }
}
