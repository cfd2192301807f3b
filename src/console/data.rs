//! The console's only door to the data: every figure on a page comes from
//! [`Queries`](crate::query::Queries), the code behind `/v1/stats`, `/v1/stats/host`,
//! `/v1/series`, `/v1/latest` and `/v1/readings`, never from a second implementation.
//!
//! Each request is written as the query-string pairs the JSON endpoint would get and checked by
//! that endpoint's own `parse`, so every limit (`--query-max-range`, `--query-max-points`, …)
//! and every parameter rule applies to the console exactly as to the API, with the same
//! messages. When the API's requests change (new limits, cursors), this file is the one place
//! to follow them.

use crate::query::answer::{
    HostStatsAnswer, LatestAnswer, ReadingsAnswer, SeriesAnswer, StatsAnswer,
};
use crate::query::params::Checker;
use crate::query::requests::{
    HostStatsRequest, LatestRequest, ReadingsRequest, SeriesRequest, StatsRequest,
};
use crate::query::{Queries, QueryError};
use crate::store::Store;

use super::range::PageRange;

/// Query-string pairs, as the JSON endpoints receive them.
type Pairs = Vec<(String, String)>;

fn pair(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

/// How finely a stats request slices the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steps {
    /// The page's chart step.
    Chart,
    /// One step holding the whole range: its totals.
    Whole,
}

/// The API filters of a readings or stats request (`None`: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Only this instance.
    pub instance: Option<String>,
    /// Only this method.
    pub method: Option<String>,
    /// Only this path.
    pub path: Option<String>,
    /// Only this status code.
    pub code: Option<String>,
}

impl Filters {
    fn push_into(&self, pairs: &mut Pairs) {
        let given = [
            ("instance", &self.instance),
            ("method", &self.method),
            ("path", &self.path),
            ("code", &self.code),
        ];
        for (name, value) in given {
            if let Some(value) = value {
                pairs.push(pair(name, value.as_str()));
            }
        }
    }
}

/// One page of readings, as `/v1/readings` is asked for it.
#[derive(Debug, Clone)]
pub struct ReadingsQuery<'a> {
    /// The service.
    pub service: &'a str,
    /// The range (fixed: a cursor is only valid for the same bounds).
    pub range: &'a PageRange,
    /// Filters.
    pub filters: &'a Filters,
    /// Readings per page.
    pub limit: u32,
    /// `asc` or `desc`.
    pub order: &'a str,
    /// Where the previous page ended.
    pub cursor: Option<&'a str>,
}

/// The query layer, as the console asks it.
pub struct ConsoleData<S> {
    queries: Queries<S>,
}

impl<S> Clone for ConsoleData<S> {
    fn clone(&self) -> Self {
        Self {
            queries: self.queries.clone(),
        }
    }
}

fn range_pairs(service: &str, range: &PageRange) -> Pairs {
    vec![
        pair("service", service),
        pair("from", range.from.millis().to_string()),
        pair("to", range.to.millis().to_string()),
    ]
}

impl<S: Store> ConsoleData<S> {
    /// Over the service's queries.
    pub fn new(queries: Queries<S>) -> Self {
        Self { queries }
    }

    /// Checks the range against `--query-max-range` with the endpoints' own check, so a page
    /// refuses a range even when it has nothing to ask (no service seen).
    pub fn check_range(&self, range: &PageRange) -> Result<(), QueryError> {
        let pairs = [
            pair("from", range.from.millis().to_string()),
            pair("to", range.to.millis().to_string()),
        ];
        let mut checker = Checker::new(&pairs, &["from", "to"]);
        let checked = checker.range(self.queries.limits());
        checker.finish(|| checked)?;
        Ok(())
    }

    /// `/v1/latest`: of one service, or of all (how the overview finds every service: the
    /// latest tables hold a row of every series heard within the retention).
    pub async fn latest(&self, service: Option<&str>) -> Result<LatestAnswer, QueryError> {
        let limits = self.queries.limits();
        let mut all: Option<LatestAnswer> = None;
        let mut cursor: Option<String> = None;
        loop {
            let mut pairs: Pairs = service.map(|s| pair("service", s)).into_iter().collect();
            pairs.push(pair("limit", limits.max_limit.to_string()));
            pairs.extend(cursor.take().map(|c| pair("cursor", c)));
            let page = self
                .queries
                .latest(&LatestRequest::parse(&pairs, limits)?)
                .await?;
            cursor = page.next_cursor.clone();
            match &mut all {
                None => all = Some(page),
                Some(all) => {
                    all.api.extend(page.api);
                    all.host.extend(page.host);
                }
            }
            if cursor.is_none() {
                return Ok(all.expect("at least one page"));
            }
        }
    }

    /// `/v1/stats` over the page's range.
    pub async fn stats(
        &self,
        service: &str,
        range: &PageRange,
        steps: Steps,
        group_by: Option<&str>,
        filters: &Filters,
    ) -> Result<StatsAnswer, QueryError> {
        let mut pairs = range_pairs(service, range);
        pairs.push(pair(
            "step",
            match steps {
                Steps::Chart => range.step_param(),
                Steps::Whole => range.whole_range_step_param(),
            },
        ));
        if let Some(group_by) = group_by {
            pairs.push(pair("group_by", group_by));
        }
        filters.push_into(&mut pairs);
        let request = StatsRequest::parse(&pairs, self.queries.limits())?;
        self.queries.stats(&request).await
    }

    /// `/v1/stats/host` over the page's range, per chart step.
    pub async fn host_stats(
        &self,
        service: &str,
        range: &PageRange,
    ) -> Result<HostStatsAnswer, QueryError> {
        let mut pairs = range_pairs(service, range);
        pairs.push(pair("step", range.step_param()));
        let request = HostStatsRequest::parse(&pairs, self.queries.limits())?;
        self.queries.host_stats(&request).await
    }

    /// `/v1/series` over the page's range.
    pub async fn series(
        &self,
        service: &str,
        range: &PageRange,
    ) -> Result<SeriesAnswer, QueryError> {
        let limits = self.queries.limits();
        let mut all: Option<SeriesAnswer> = None;
        let mut cursor: Option<String> = None;
        loop {
            let mut pairs = range_pairs(service, range);
            pairs.push(pair("limit", limits.max_limit.to_string()));
            pairs.extend(cursor.take().map(|c| pair("cursor", c)));
            let page = self
                .queries
                .series(&SeriesRequest::parse(&pairs, limits)?)
                .await?;
            cursor = page.next_cursor.clone();
            match &mut all {
                None => all = Some(page),
                Some(all) => {
                    // An instance's methods may continue on the next page.
                    for instance in page.instances {
                        match all.instances.last_mut() {
                            Some(last) if last.instance == instance.instance => {
                                last.methods.extend(instance.methods)
                            }
                            _ => all.instances.push(instance),
                        }
                    }
                }
            }
            if cursor.is_none() {
                return Ok(all.expect("at least one page"));
            }
        }
    }

    /// `/v1/readings`: one page.
    pub async fn readings(&self, query: &ReadingsQuery<'_>) -> Result<ReadingsAnswer, QueryError> {
        let mut pairs = range_pairs(query.service, query.range);
        query.filters.push_into(&mut pairs);
        pairs.push(pair("limit", query.limit.to_string()));
        pairs.push(pair("order", query.order));
        if let Some(cursor) = query.cursor {
            pairs.push(pair("cursor", cursor));
        }
        let request = ReadingsRequest::parse(&pairs, self.queries.limits())?;
        self.queries.readings(&request).await
    }
}
