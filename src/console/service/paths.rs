//! The service page's table per method and path: the figures of the key figures, per group of
//! `/v1/stats?group_by=method,path` over the whole range; sortable by every column, filtered by
//! a path substring (`q`), 50 rows a page.

use maud::{html, Markup};

use crate::console::format;
use crate::console::params::{href, readings_path, Params};
use crate::console::range::PageRange;
use crate::console::table::{Column, Links, Paging, Sort};
use crate::query::answer::{StatsAnswer, StatsPoint};

const COLUMNS: [Column; 9] = [
    Column {
        key: "method",
        label: "Method",
        numeric: false,
    },
    Column {
        key: "path",
        label: "Path",
        numeric: false,
    },
    Column {
        key: "count",
        label: "Requests",
        numeric: true,
    },
    Column {
        key: "rate",
        label: "Rate",
        numeric: true,
    },
    Column {
        key: "errors",
        label: "5xx",
        numeric: true,
    },
    Column {
        key: "client_errors",
        label: "4xx",
        numeric: true,
    },
    Column {
        key: "p50",
        label: "p50",
        numeric: true,
    },
    Column {
        key: "p90",
        label: "p90",
        numeric: true,
    },
    Column {
        key: "p99",
        label: "p99",
        numeric: true,
    },
];

const DEFAULT_SORT: Sort = Sort {
    key: "count",
    descending: true,
};

/// One method + path over the range.
struct PathRow<'a> {
    method: &'a str,
    path: &'a str,
    total: &'a StatsPoint,
    rate: f64,
}

/// The table, its rows filtered and sorted, and its links.
pub struct PathsTable<'a> {
    service: &'a str,
    rows: Vec<PathRow<'a>>,
    /// Rows before the filter.
    all: usize,
    filter: Option<String>,
    sort: Sort,
    paging: Paging,
    range: &'a PageRange,
}

impl<'a> PathsTable<'a> {
    /// The table of `answer` (stats grouped by method and path over the whole range).
    pub fn new(
        service: &'a str,
        answer: &'a StatsAnswer,
        range: &'a PageRange,
        params: &Params,
    ) -> Self {
        let span_s = range.span_ms() as f64 / 1000.0;
        let all: Vec<PathRow> = answer
            .groups
            .iter()
            .filter_map(|g| {
                Some(PathRow {
                    method: g.key.method.as_deref()?,
                    path: g.key.path.as_deref()?,
                    total: g.points.first()?,
                    rate: g.points.first()?.count as f64 / span_s,
                })
            })
            .collect();
        let count = all.len();
        let filter = params.get("q").map(str::to_owned);
        let mut rows: Vec<PathRow> = match &filter {
            Some(q) => {
                let q = q.to_lowercase();
                all.into_iter()
                    .filter(|r| r.path.to_lowercase().contains(&q))
                    .collect()
            }
            None => all,
        };
        let sort = Sort::from_params(params, &COLUMNS, DEFAULT_SORT);
        rows.sort_by(|a, b| {
            let (x, y) = (a.total, b.total);
            let ordering = match sort.key {
                "method" => a.method.cmp(b.method),
                "path" => a.path.cmp(b.path),
                "count" | "rate" => x.count.cmp(&y.count),
                "errors" => x.error_rate.total_cmp(&y.error_rate),
                "client_errors" => x.client_error_rate.total_cmp(&y.client_error_rate),
                "p50" => x.p50_ms.total_cmp(&y.p50_ms),
                "p90" => x.p90_ms.total_cmp(&y.p90_ms),
                _ => x.p99_ms.total_cmp(&y.p99_ms),
            };
            sort.apply(ordering)
                .then_with(|| (a.path, a.method).cmp(&(b.path, b.method)))
        });
        let paging = Paging::from_params(params, rows.len());
        Self {
            service,
            rows,
            all: count,
            filter,
            sort,
            paging,
            range,
        }
    }

    /// The table's parameters a range change keeps: its sort and filter.
    pub fn keep_params(&self) -> Vec<(&'static str, String)> {
        let mut keep: Vec<(&'static str, String)> = self.links("").sort_params().into();
        keep.extend(self.filter.clone().map(|q| ("q", q)));
        keep
    }

    fn links<'p>(&self, path: &'p str) -> Links<'p> {
        let mut keep = self.range.params();
        keep.extend(self.filter.clone().map(|q| ("q", q)));
        Links {
            path,
            keep,
            sort: self.sort,
        }
    }

    fn row(&self, r: &PathRow) -> Markup {
        let t = r.total;
        let readings = href(
            &readings_path(self.service),
            &[
                self.range.params(),
                vec![("method", r.method.to_owned()), ("path", r.path.to_owned())],
            ]
            .concat(),
        );
        html! {
            tr data-method=(r.method) data-path=(r.path) {
                td.method { (r.method) }
                td.name.wrap { a href=(readings) title="Raw readings of this path" { code { (r.path) } } }
                td.num data-col="count" data-value=(t.count) { (format::count(t.count)) }
                td.num data-col="rate" data-value=(r.rate) { (format::rate(r.rate)) }
                td.num.bad[t.error_rate >= format::HOT_ERROR_SHARE] data-col="error_rate" data-value=(t.error_rate) {
                    (format::percent(t.error_rate))
                }
                td.num data-col="client_error_rate" data-value=(t.client_error_rate) { (format::percent(t.client_error_rate)) }
                td.num data-col="p50_ms" data-value=(t.p50_ms) { (format::duration_ms(t.p50_ms)) }
                td.num data-col="p90_ms" data-value=(t.p90_ms) { (format::duration_ms(t.p90_ms)) }
                td.num data-col="p99_ms" data-value=(t.p99_ms) { (format::duration_ms(t.p99_ms)) }
            }
        }
    }

    /// The section: heading, filter, table, pager.
    pub fn render(&self, page_path: &str) -> Markup {
        let links = self.links(page_path);
        let mut hidden = self.range.params();
        hidden.extend(links.sort_params());
        html! {
            section #paths aria-labelledby="paths-title" {
                div.heading {
                    h2 #paths-title { "Paths" }
                    @if self.all > 0 {
                        form.filters method="get" action=(page_path) role="search" {
                            @for (name, value) in &hidden {
                                input type="hidden" name=(name) value=(value);
                            }
                            label {
                                "Find a path"
                                input type="search" name="q" value=[self.filter.as_deref()] placeholder="path contains…";
                            }
                            button type="submit" { "Find" }
                        }
                    }
                }
                @if self.all == 0 {
                    div.empty { "No API requests in this range." }
                } @else {
                    div.table-wrap {
                        table #paths-table {
                            thead { tr { @for column in &COLUMNS { (links.header(column)) } } }
                            tbody {
                                @for r in &self.rows[self.paging.rows()] { (self.row(r)) }
                            }
                        }
                    }
                    (links.pager(&self.paging, "Paths"))
                }
            }
        }
    }
}
