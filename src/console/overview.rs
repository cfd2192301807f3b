//! The overview (`/`): every service seen in the range, with its request rate and trend, error
//! share, p99 and instances up, sorted by error share by default.
//!
//! Services are found the way `/v1/latest` finds them (the latest tables: one row per series
//! heard within the retention); a service is *seen in the range* when its newest reading is
//! not older than `from` and it has requests or host samples in `[from, to]`. Per service, three
//! queries run (stats over the whole range, stats per chart step, host stats), a few services at
//! a time.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use futures::{stream, StreamExt, TryStreamExt};
use maud::{html, Markup};

use super::chart::sparkline;
use super::data::{ConsoleData, Filters, Steps};
use super::error::ConsoleError;
use super::format;
use super::layout::{page, Frame, Picker, Section};
use super::params::{href, service_path, Params};
use super::range::PageRange;
use super::status;
use super::steps;
use super::table::{by_option, Column, Links, Paging, Sort};
use super::Console;
use crate::model::TimestampMs;
use crate::query::QueryError;
use crate::store::Store;

/// Services summarised at once: each runs three queries, each fanned out over partitions.
const CONCURRENT_SERVICES: usize = 8;

/// One service's line of the overview.
#[derive(Debug, Clone)]
struct ServiceRow {
    name: String,
    requests: u64,
    /// Requests per second over the range.
    rate: f64,
    /// 5xx share; `None` without requests.
    errors: Option<f64>,
    p99_ms: Option<f64>,
    /// Rate per chart step.
    trend: Vec<f64>,
    up: usize,
    instances: usize,
    /// Why the figures are missing (a query limit), when they are.
    problem: Option<String>,
}

const COLUMNS: [Column; 5] = [
    Column {
        key: "name",
        label: "Service",
        numeric: false,
    },
    Column {
        key: "rate",
        label: "Requests/s",
        numeric: true,
    },
    Column {
        key: "errors",
        label: "5xx",
        numeric: true,
    },
    Column {
        key: "p99",
        label: "p99",
        numeric: true,
    },
    Column {
        key: "up",
        label: "Instances up",
        numeric: true,
    },
];

const DEFAULT_SORT: Sort = Sort {
    key: "errors",
    descending: true,
};

async fn summarise<S: Store>(
    data: &ConsoleData<S>,
    name: String,
    range: &PageRange,
) -> Result<ServiceRow, QueryError> {
    let none = Filters::default();
    let queried = tokio::try_join!(
        data.stats(&name, range, Steps::Whole, None, &none),
        data.stats(&name, range, Steps::Chart, None, &none),
        data.host_stats(&name, range),
    );
    let (whole, chart, host) = match queried {
        Ok(answers) => answers,
        // A service over a query limit still gets its line, with the reason.
        Err(QueryError::Params(problems)) => {
            return Ok(ServiceRow {
                problem: Some(
                    problems
                        .0
                        .iter()
                        .map(|p| p.problem.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                ..ServiceRow::empty(name)
            })
        }
        Err(e) => return Err(e),
    };
    let steps: Vec<i64> = range.step_starts().collect();
    let now = TimestampMs::now();
    let total = whole.groups.first().and_then(|g| g.points.first());
    let up = host
        .instances
        .iter()
        .filter(|series| status::is_up(&status::beats(series, &steps, range.step_ms, now)))
        .count();
    Ok(ServiceRow {
        requests: total.map_or(0, |p| p.count),
        rate: total.map_or(0.0, |p| p.count as f64 * 1000.0 / range.span_ms() as f64),
        errors: total.map(|p| p.error_rate),
        p99_ms: total.map(|p| p.p99_ms),
        trend: steps::rate(&chart, &steps),
        up,
        instances: host.instances.len(),
        ..ServiceRow::empty(name)
    })
}

impl ServiceRow {
    fn empty(name: String) -> Self {
        Self {
            name,
            requests: 0,
            rate: 0.0,
            errors: None,
            p99_ms: None,
            trend: Vec::new(),
            up: 0,
            instances: 0,
            problem: None,
        }
    }

    fn up_share(&self) -> Option<f64> {
        (self.instances > 0).then(|| self.up as f64 / self.instances as f64)
    }
}

/// Every service seen in the range, summarised.
async fn services<S: Store>(
    data: &ConsoleData<S>,
    range: &PageRange,
) -> Result<Vec<ServiceRow>, QueryError> {
    let latest = data.latest(None).await?;
    let mut newest: BTreeMap<String, TimestampMs> = BTreeMap::new();
    let heard = latest
        .api
        .iter()
        .map(|r| (&r.service, &r.timestamp))
        .chain(latest.host.iter().map(|r| (&r.service, &r.timestamp)));
    for (service, at) in heard {
        if let Ok(at) = TimestampMs::parse(at) {
            let entry = newest.entry(service.clone()).or_insert(at);
            *entry = (*entry).max(at);
        }
    }
    let names: Vec<String> = newest
        .into_iter()
        .filter(|(_, at)| *at >= range.from)
        .map(|(name, _)| name)
        .collect();
    let rows: Vec<ServiceRow> = stream::iter(names)
        .map(|name| summarise(data, name, range))
        .buffered(CONCURRENT_SERVICES)
        .try_collect()
        .await?;
    Ok(rows
        .into_iter()
        .filter(|row| row.requests > 0 || row.instances > 0 || row.problem.is_some())
        .collect())
}

fn sort_rows(rows: &mut [ServiceRow], sort: Sort) {
    rows.sort_by(|a, b| {
        let ordering = match sort.key {
            "rate" => sort.apply(a.rate.total_cmp(&b.rate)),
            "errors" => by_option(a.errors, b.errors, sort),
            "p99" => by_option(a.p99_ms, b.p99_ms, sort),
            "up" => by_option(a.up_share(), b.up_share(), sort),
            _ => sort.apply(a.name.cmp(&b.name)),
        };
        ordering.then_with(|| a.name.cmp(&b.name))
    });
}

fn row(r: &ServiceRow, range_params: &[(&'static str, String)]) -> Markup {
    let link = href(&service_path(&r.name), range_params);
    let errors_hot = r.errors.is_some_and(|e| e >= format::HOT_ERROR_SHARE);
    html! {
        tr data-service=(r.name) {
            td.name { a href=(link) { (r.name) } }
            @if let Some(problem) = &r.problem {
                td.wrap colspan="5" { span.muted { (problem) } }
            } @else {
                td.num data-col="rate" data-value=(r.rate) { (format::rate(r.rate)) }
                td.hide-narrow { (sparkline(&r.trend, &format!("Request rate of {}", r.name))) }
                td.num.bad[errors_hot] data-col="errors"
                    data-value=[r.errors] {
                    (r.errors.map_or("–".to_owned(), format::percent))
                }
                td.num data-col="p99" data-value=[r.p99_ms] {
                    (r.p99_ms.map_or("–".to_owned(), format::duration_ms))
                }
                td.num data-col="up" data-up=(r.up) data-instances=(r.instances) {
                    @if r.instances == 0 {
                        span.muted title="No host readings in this range" { "–" }
                    } @else {
                        span.status {
                            span class={"dot " (if r.up == r.instances { "up" } else if r.up == 0 { "down" } else { "part" })} {}
                            (r.up) "/" (r.instances)
                        }
                    }
                }
            }
        }
    }
}

fn totals(rows: &[ServiceRow], range: &PageRange) -> Markup {
    let requests: u64 = rows.iter().map(|r| r.requests).sum();
    let errors: f64 = rows
        .iter()
        .map(|r| r.errors.unwrap_or(0.0) * r.requests as f64)
        .sum();
    let share = if requests > 0 {
        errors / requests as f64
    } else {
        0.0
    };
    let rate = requests as f64 * 1000.0 / range.span_ms() as f64;
    html! {
        p.sub {
            (rows.len()) " services · " (format::rate(rate)) " · "
            (format::count(requests)) " requests · " (format::percent(share)) " answered 5xx"
        }
    }
}

fn empty_state() -> Markup {
    html! {
        div.notice #no-services {
            h2 { "No service has sent readings in this range" }
            p { "Readings appear here within seconds of arriving. Send one:" }
            pre { code {
                "curl -s http://127.0.0.1:8080/v1/metrics -H 'content-type: application/json' \\\n"
                "  -d '{\"api\": [{\"service\": \"checkout\", \"instance\": \"i-1\", \"method\": \"GET\",\n"
                "       \"path\": \"/cart\", \"code\": 200, \"duration_ms\": 12.5}]}'"
            } }
            p { "or pick a longer range above." }
        }
    }
}

/// `GET /`.
pub async fn overview_page<S: Store>(
    State(console): State<Console<S>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let params = Params::new(query.map(|Query(q)| q).unwrap_or_default());
    let range =
        PageRange::from_params(&params, TimestampMs::now()).map_err(ConsoleError::Params)?;
    console.data.check_range(&range)?;
    let sort = Sort::from_params(&params, &COLUMNS, DEFAULT_SORT);
    let filter = params.get("q").map(str::to_owned);
    let mut rows = services(&console.data, &range).await?;
    let seen = rows.len();
    if let Some(q) = &filter {
        let q = q.to_lowercase();
        rows.retain(|r| r.name.to_lowercase().contains(&q));
    }
    sort_rows(&mut rows, sort);
    let paging = Paging::from_params(&params, rows.len());
    let range_params = range.params();
    let mut keep = range_params.clone();
    keep.extend(filter.clone().map(|q| ("q", q)));
    let links = Links {
        path: "/",
        keep,
        sort,
    };
    let mut picker_keep: Vec<(&'static str, String)> = links.sort_params().into();
    picker_keep.extend(filter.clone().map(|q| ("q", q)));
    let frame = Frame {
        title: "Services".to_owned(),
        section: Section::Services,
        crumbs: Vec::new(),
        picker: Some(Picker {
            action: "/".to_owned(),
            range: &range,
            keep: picker_keep,
        }),
    };
    let body = html! {
        div.heading {
            div {
                h1 { "Services" }
                (totals(&rows, &range))
            }
            @if seen > 0 {
                form.filters method="get" action="/" role="search" {
                    @for (name, value) in range_params.iter().chain(links.sort_params().iter()) {
                        input type="hidden" name=(name) value=(value);
                    }
                    label {
                        "Find a service"
                        input type="search" name="q" value=[filter.as_deref()] placeholder="name contains…";
                    }
                    button type="submit" { "Find" }
                }
            }
        }
        @if seen == 0 {
            (empty_state())
        } @else {
            div.table-wrap {
                table #services {
                    caption.skip { "Services seen in the range" }
                    thead { tr {
                        (links.header(&COLUMNS[0]))
                        (links.header(&COLUMNS[1]))
                        th.hide-narrow scope="col" { "Trend" }
                        (links.header(&COLUMNS[2]))
                        (links.header(&COLUMNS[3]))
                        (links.header(&COLUMNS[4]))
                    } }
                    tbody {
                        @for r in &rows[paging.rows()] {
                            (row(r, &range_params))
                        }
                    }
                }
            }
            (links.pager(&paging, "Services"))
        }
    };
    Ok(super::html_response(page(&frame, body)))
}
