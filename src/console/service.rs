//! The service page (`/services/{service}`): key figures and charts of request rate, 5xx / 4xx
//! share and p50 / p90 / p99 over the range, a sortable, paged table per method and path, and
//! every instance with its latest host gauges and an availability strip.
//!
//! Six queries, run together: stats over the whole range (the key figures), stats per chart step
//! (the charts), stats per method and path over the whole range (the table), host stats per
//! chart step (the strips), the series index (every instance, including those that send only
//! API readings) and the service's latest readings (the gauges).

mod instances;
mod paths;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{html, Markup};

use super::chart::{Chart, Line};
use super::data::{Filters, Steps};
use super::error::ConsoleError;
use super::format;
use super::layout::{page, Frame, Picker, Section};
use super::params::{href, readings_path, service_path, Params};
use super::range::PageRange;
use super::steps;
use super::Console;
use crate::model::TimestampMs;
use crate::query::answer::StatsAnswer;
use crate::store::Store;

fn kpi(label: &str, key: &str, value: Option<f64>, text: String, class: Option<&str>) -> Markup {
    html! {
        div class={ "kpi " (class.unwrap_or("")) } {
            dt { (label) }
            dd data-kpi=(key) data-value=[value] { (text) }
        }
    }
}

fn key_figures(whole: &StatsAnswer, range: &PageRange) -> Markup {
    let total = whole.groups.first().and_then(|g| g.points.first());
    let dash = || "–".to_owned();
    let requests = total.map_or(0, |p| p.count);
    let rate = requests as f64 * 1000.0 / range.span_ms() as f64;
    let errors = total.map(|p| p.error_rate);
    let client = total.map(|p| p.client_error_rate);
    let pct = |v: Option<f64>| v.map_or_else(dash, format::percent);
    let ms = |v: Option<f64>| v.map_or_else(dash, format::duration_ms);
    html! {
        dl.kpis {
            (kpi("Requests", "count", Some(requests as f64), format::count(requests), None))
            (kpi("Rate", "rate", Some(rate), format::rate(rate), None))
            (kpi("5xx", "error_rate", errors, pct(errors), errors.filter(|e| *e >= format::HOT_ERROR_SHARE).map(|_| "bad")))
            (kpi("4xx", "client_error_rate", client, pct(client), client.filter(|e| *e >= 0.05).map(|_| "warn")))
            (kpi("p50", "p50_ms", total.map(|p| p.p50_ms), ms(total.map(|p| p.p50_ms)), None))
            (kpi("p90", "p90_ms", total.map(|p| p.p90_ms), ms(total.map(|p| p.p90_ms)), None))
            (kpi("p99", "p99_ms", total.map(|p| p.p99_ms), ms(total.map(|p| p.p99_ms)), None))
        }
    }
}

fn charts(chart: &StatsAnswer, range: &PageRange, steps: &[i64]) -> Markup {
    let rate = Chart {
        title: "Request rate",
        id: "chart-rate",
        format: format::rate,
        min_top: 1.0,
        steps,
        step_ms: range.step_ms,
        lines: vec![Line {
            label: "requests/s",
            class: "s1",
            values: steps::rate(chart, steps).into_iter().map(Some).collect(),
        }],
    };
    let errors = Chart {
        title: "Errors",
        id: "chart-errors",
        format: format::percent,
        min_top: 0.01,
        steps,
        step_ms: range.step_ms,
        lines: vec![
            Line {
                label: "5xx",
                class: "bad",
                values: steps::figure(chart, steps, |p| p.error_rate),
            },
            Line {
                label: "4xx",
                class: "warn",
                values: steps::figure(chart, steps, |p| p.client_error_rate),
            },
        ],
    };
    let latency = Chart {
        title: "Latency",
        id: "chart-latency",
        format: format::duration_ms,
        min_top: 1.0,
        steps,
        step_ms: range.step_ms,
        lines: vec![
            Line {
                label: "p50",
                class: "s1",
                values: steps::figure(chart, steps, |p| p.p50_ms),
            },
            Line {
                label: "p90",
                class: "s2",
                values: steps::figure(chart, steps, |p| p.p90_ms),
            },
            Line {
                label: "p99",
                class: "s3",
                values: steps::figure(chart, steps, |p| p.p99_ms),
            },
        ],
    };
    html! {
        section.charts aria-label="Charts" {
            (rate.render())
            (errors.render())
            (latency.render())
        }
    }
}

/// `GET /services/{service}`.
pub async fn service_page<S: Store>(
    State(console): State<Console<S>>,
    Path(service): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let params = Params::new(query.map(|Query(q)| q).unwrap_or_default());
    let range =
        PageRange::from_params(&params, TimestampMs::now()).map_err(ConsoleError::Params)?;
    console.data.check_range(&range)?;
    let data = &console.data;
    let none = Filters::default();
    let (whole, chart, per_path, host, series, latest) = tokio::try_join!(
        data.stats(&service, &range, Steps::Whole, None, &none),
        data.stats(&service, &range, Steps::Chart, None, &none),
        data.stats(&service, &range, Steps::Whole, Some("method,path"), &none),
        data.host_stats(&service, &range),
        data.series(&service, &range),
        data.latest(Some(&service)),
    )?;
    let steps: Vec<i64> = range.step_starts().collect();
    let path = service_path(&service);
    let range_params = range.params();
    let paths = paths::PathsTable::new(&service, &per_path, &range, &params);
    let frame = Frame {
        title: service.clone(),
        section: Section::Services,
        crumbs: vec![("Services".to_owned(), href("/", &range_params))],
        picker: Some(Picker {
            action: path.clone(),
            range: &range,
            keep: paths.keep_params(),
        }),
    };
    let instances = instances::Instances::new(&series, &host, &latest, &steps, range.step_ms);
    let body = html! {
        div.heading {
            div {
                h1 #service-name { (service) }
                p.sub {
                    (instances.len()) " instances · " (per_path.groups.len()) " API methods with requests"
                }
            }
            a.button #readings-link href=(href(&readings_path(&service), &range_params)) { "Raw readings →" }
        }
        (key_figures(&whole, &range))
        (charts(&chart, &range, &steps))
        (paths.render(&path))
        (instances.render(&steps))
    };
    Ok(super::html_response(page(&frame, body)))
}
