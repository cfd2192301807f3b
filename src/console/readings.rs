//! The readings explorer (`/services/{service}/readings`): the raw API readings of a service,
//! one page of `/v1/readings` at a time, with its filters (instance, method, path, code), order
//! and page size.
//!
//! Paging follows the cursor: "Next page" carries `next_cursor` with the same parameters, as
//! `/v1/readings` requires. A cursor is only valid for the exact `[from, to]` it was made for,
//! so every link out of this page fixes the range: a preset ("last hour") is frozen into its
//! bounds at the first page, and paging does not slide with the clock.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{html, Markup};

use super::data::{Filters, ReadingsQuery};
use super::error::ConsoleError;
use super::format;
use super::layout::{page, Frame, Picker, Section};
use super::params::{href, readings_path, service_path, Params};
use super::range::{PageRange, Window};
use super::Console;
use crate::model::TimestampMs;
use crate::query::answer::{ApiReadingOut, SeriesAnswer};
use crate::store::Store;

/// Page sizes offered; the first is the default.
const LIMITS: [u32; 3] = [50, 100, 500];

/// The explorer's own parameters.
struct Explore {
    filters: Filters,
    /// `desc` (newest first, the default) or `asc`.
    order: &'static str,
    limit: u32,
    cursor: Option<String>,
    /// The page's number, for the reader (the cursor is what positions it).
    number: u32,
}

impl Explore {
    fn from_params(params: &Params) -> Result<Self, ConsoleError> {
        let mut problems = Vec::new();
        let order = match params.get("order") {
            None | Some("desc") => "desc",
            Some("asc") => "asc",
            Some(other) => {
                problems.push((
                    "order".to_owned(),
                    format!("must be asc or desc, got `{other}`"),
                ));
                "desc"
            }
        };
        let limit = match params.get("limit") {
            None => LIMITS[0],
            Some(text) => match text.parse::<u32>() {
                Ok(n) if LIMITS.contains(&n) => n,
                _ => {
                    problems.push((
                        "limit".to_owned(),
                        format!("must be 50, 100 or 500, got `{text}`"),
                    ));
                    LIMITS[0]
                }
            },
        };
        if !problems.is_empty() {
            return Err(ConsoleError::Params(problems));
        }
        let owned = |name| params.get(name).map(str::to_owned);
        Ok(Self {
            filters: Filters {
                instance: owned("instance"),
                method: owned("method").map(|m| m.to_uppercase()),
                path: owned("path"),
                code: owned("code"),
            },
            order,
            limit,
            cursor: owned("cursor"),
            number: params
                .get("n")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1)
                .max(1),
        })
    }

    /// The parameters of this view without its cursor, on the fixed range.
    fn params(&self, range: &PageRange) -> Vec<(&'static str, String)> {
        let mut out = range.frozen_bounds();
        out.extend(self.keep());
        out
    }

    /// The filters, order and page size: what a change of range keeps.
    fn keep(&self) -> Vec<(&'static str, String)> {
        let f = &self.filters;
        let mut out: Vec<(&'static str, String)> = [
            ("instance", &f.instance),
            ("method", &f.method),
            ("path", &f.path),
            ("code", &f.code),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|v| (name, v)))
        .collect();
        out.push(("order", self.order.to_owned()));
        out.push(("limit", self.limit.to_string()));
        out
    }
}

fn select(name: &str, label: &str, any: &str, options: &[String], chosen: Option<&str>) -> Markup {
    html! {
        label {
            (label)
            select name=(name) {
                option value="" { (any) }
                @for option in options {
                    option value=(option) selected[chosen == Some(option.as_str())] { (option) }
                }
            }
        }
    }
}

fn filter_form(
    explore: &Explore,
    series: &SeriesAnswer,
    range: &PageRange,
    action: &str,
) -> Markup {
    let f = &explore.filters;
    let instances: Vec<String> = series
        .instances
        .iter()
        .map(|i| i.instance.clone())
        .collect();
    let mut paths: Vec<String> = series
        .instances
        .iter()
        .flat_map(|i| i.methods.iter().map(|m| m.path.clone()))
        .collect();
    paths.sort();
    paths.dedup();
    let methods: Vec<String> = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        .map(String::from)
        .to_vec();
    html! {
        form.filters #reading-filters method="get" action=(action) {
            @for (name, value) in range.params() {
                input type="hidden" name=(name) value=(value);
            }
            (select("instance", "Instance", "any", &instances, f.instance.as_deref()))
            (select("method", "Method", "any", &methods, f.method.as_deref()))
            label {
                "Path"
                input type="text" name="path" list="known-paths" value=[f.path.as_deref()] placeholder="any";
                datalist #known-paths { @for p in &paths { option value=(p) {} } }
            }
            label {
                "Code"
                input type="number" name="code" min="100" max="599" value=[f.code.as_deref()] placeholder="any" style="width: 6em";
            }
            label {
                "Order"
                select name="order" {
                    option value="desc" selected[explore.order == "desc"] { "Newest first" }
                    option value="asc" selected[explore.order == "asc"] { "Oldest first" }
                }
            }
            label {
                "Per page"
                select name="limit" {
                    @for n in LIMITS { option value=(n) selected[explore.limit == n] { (n) } }
                }
            }
            button type="submit" { "Show" }
            a.button.quiet href=(href(action, &range.params())) { "Clear" }
        }
    }
}

fn reading_row(r: &ApiReadingOut) -> Markup {
    let at = TimestampMs::parse(&r.timestamp).ok();
    html! {
        tr data-id=(r.id) {
            td.mono {
                @if let Some(at) = at {
                    @let (date, time) = format::date_and_time_ms(at);
                    span.date { (date) " " } (time)
                } @else {
                    (r.timestamp)
                }
            }
            td { (r.instance) }
            td.method { (r.method) }
            td.wrap { code { (r.path) } }
            td class={ "num code-" (r.code / 100) } data-col="code" { (r.code) }
            td.num data-col="duration_ms" data-value=(r.duration_ms) { (format::duration_ms(r.duration_ms)) }
            td.num data-col="count" data-value=(r.count) { (format::count(u64::from(r.count))) }
        }
    }
}

/// `GET /services/{service}/readings`.
pub async fn readings_page<S: Store>(
    State(console): State<Console<S>>,
    Path(service): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let params = Params::new(query.map(|Query(q)| q).unwrap_or_default());
    let range =
        PageRange::from_params(&params, TimestampMs::now()).map_err(ConsoleError::Params)?;
    console.data.check_range(&range)?;
    let explore = Explore::from_params(&params)?;
    let data = &console.data;
    let request = ReadingsQuery {
        service: &service,
        range: &range,
        filters: &explore.filters,
        limit: explore.limit,
        order: explore.order,
        cursor: explore.cursor.as_deref(),
    };
    let (answer, series) =
        tokio::try_join!(data.readings(&request), data.series(&service, &range))?;
    let action = readings_path(&service);
    let first_page = href(&action, &explore.params(&range));
    let next_page = answer.next_cursor.as_ref().map(|cursor| {
        let mut next = explore.params(&range);
        next.push(("cursor", cursor.clone()));
        next.push(("n", (explore.number + 1).to_string()));
        href(&action, &next)
    });
    let frame = Frame {
        title: format!("Readings of {service}"),
        section: Section::Services,
        crumbs: vec![
            ("Services".to_owned(), href("/", &range.params())),
            (
                service.clone(),
                href(&service_path(&service), &range.params()),
            ),
        ],
        picker: Some(Picker {
            action: action.clone(),
            range: &range,
            keep: explore.keep(),
        }),
    };
    let first_shown = u64::from(explore.number - 1) * u64::from(explore.limit) + 1;
    let body = html! {
        h1 { "Readings of " span #service-name { (service) } }
        p.sub {
            "Raw API readings, " (if explore.order == "desc" { "newest" } else { "oldest" }) " first"
            @if range.window != Window::Custom { ", from " (format::instant(range.from)) " to " (format::instant(range.to)) }
            "."
        }
        (filter_form(&explore, &series, &range, &action))
        @if answer.readings.is_empty() {
            div.empty #no-readings { "No readings match on this page." }
        } @else {
            div.table-wrap {
                table #readings {
                    thead { tr {
                        th scope="col" { "Time (UTC)" } th scope="col" { "Instance" }
                        th scope="col" { "Method" } th scope="col" { "Path" }
                        th.num scope="col" { "Code" } th.num scope="col" { "Duration" }
                        th.num scope="col" { "Count" }
                    } }
                    tbody { @for r in &answer.readings { (reading_row(r)) } }
                }
            }
        }
        nav.pager aria-label="Pages of readings" {
            @if !answer.readings.is_empty() {
                span {
                    "Page " (explore.number) " · readings " (format::count(first_shown)) "–"
                    (format::count(first_shown + answer.readings.len() as u64 - 1))
                }
            }
            span.spacer {}
            @if explore.cursor.is_some() {
                a.button.quiet #first-page href=(first_page) { "↞ First page" }
            }
            @if let Some(next) = next_page {
                a.button.quiet #next-page rel="next" href=(next) { "Next page →" }
            } @else {
                span #last-page { "End of the readings" }
            }
        }
    };
    Ok(super::html_response(page(&frame, body)))
}
