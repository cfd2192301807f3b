//! The overview (`/`): every service seen in the range, with its request rate and trend, error
//! share, p99 and instances up, sorted by error share by default.
//!
//! Services are found the way `/v1/latest` finds them (the latest tables: one row per series
//! heard within the retention); a service is *seen in the range* when its newest reading is
//! not older than `from` and it has requests or host samples in `[from, to]`. The figures are
//! gathered in two passes ([`summary`]): totals for every service, then trend and instances for
//! the 50 rows shown.

mod summary;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::{html, Markup};

use super::chart::sparkline;
use super::error::ConsoleError;
use super::format;
use super::layout::{page, Frame, Picker, Section};
use super::params::{href, service_path, Params};
use super::range::PageRange;
use super::table::{by_option, Column, Links, Paging, Sort};
use super::Console;
use crate::model::TimestampMs;
use crate::store::Store;
use summary::{Instances, ServiceRow};

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
                td.hide-narrow {
                    @if let Some(trend) = &r.trend {
                        (sparkline(trend, &format!("Request rate of {}", r.name)))
                    }
                }
                td.num.bad[errors_hot] data-col="errors"
                    data-value=[r.errors] {
                    (r.errors.map_or("–".to_owned(), format::percent))
                }
                td.num data-col="p99" data-value=[r.p99_ms] {
                    (r.p99_ms.map_or("–".to_owned(), format::duration_ms))
                }
                @let i = r.instances.unwrap_or(Instances { up: 0, total: 0 });
                td.num data-col="up" data-up=(i.up) data-instances=(i.total) {
                    @if i.total == 0 {
                        span.muted title="No host readings in this range" { "–" }
                    } @else {
                        span.status {
                            span class={"dot " (if i.up == i.total { "up" } else if i.up == 0 { "down" } else { "part" })} {}
                            (i.up) "/" (i.total)
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
    let mut rows = summary::gather(&console.data, &range, sort.key == "up").await?;
    let seen = rows.len();
    if let Some(q) = &filter {
        let q = q.to_lowercase();
        rows.retain(|r| r.name.to_lowercase().contains(&q));
    }
    sort_rows(&mut rows, sort);
    let paging = Paging::from_params(&params, rows.len());
    let shown = summary::complete(&console.data, rows[paging.rows()].to_vec(), &range).await?;
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
                        @for r in &shown {
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
