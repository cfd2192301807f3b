//! The web console at `/`: server-rendered pages over the query layer, for a person who would
//! rather look at a chart than read JSON.
//!
//! ```text
//!  GET /                          overview: every service seen in the range
//!  GET /services/{service}        charts, per-path table, instances (gauges, availability)
//!  GET /services/{service}/readings   raw readings: filters and cursor paging
//!  GET /alerts                    firing and pending alerts (an AlertSource; none yet)
//!  GET /assets/{console.css,console.js}
//!       │
//!       ▼
//!  data::ConsoleData ──► query::Queries (the code behind /v1/stats, /v1/stats/host, /v1/series,
//!                                        /v1/latest, /v1/readings; requests checked by the same
//!                                        parse, so the same limits apply)
//! ```
//!
//! Every page's URL holds its time range (`?range=1h`, or `?from=…&to=…`), its sort order and
//! its filters, so a link shows the same view to whoever opens it. Pages are complete without
//! JavaScript; the one small script of ours (`assets/console.js`) only adds conveniences.
//!
//! **Why `maud`.** Templates are Rust code checked by the compiler with the rest: a misspelled
//! field or a wrong type fails the build, not a page view. Every spliced value is HTML-escaped
//! unless wrapped in `PreEscaped`, which this module never does with data, so service names
//! and paths (user input) cannot inject markup. Pages are composed of plain functions (a chart,
//! a sortable header, a pager) without template files to keep in step, and render into one
//! `String` (a 1,000-row table in well under a millisecond). askama would escape as well, but
//! its templates live in separate files with their own syntax and context structs.
//!
//! Invariants: no figure is computed from raw readings here, only taken or combined from the
//! query layer's answers (rates over a range are `count / span`); every response carries a
//! content security policy that allows no inline or foreign script, so even a markup bug could
//! not run injected code; nothing is fetched from another origin.

pub mod alerts;
mod assets;
mod chart;
pub mod data;
mod error;
pub mod format;
mod layout;
mod overview;
pub mod params;
pub mod range;
mod readings;
mod service;
mod status;
mod steps;
mod table;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::Markup;

use crate::alerting::AlertsView;
use crate::query::Queries;
use crate::store::Store;

pub use alerts::AlertSnapshot;
pub use error::ConsoleError;

/// What every console page reads from.
pub struct Console<S> {
    data: data::ConsoleData<S>,
    alerts: AlertsView,
}

impl<S> Clone for Console<S> {
    fn clone(&self) -> Self {
        Self {
            data: self.data.clone(),
            alerts: self.alerts.clone(),
        }
    }
}

impl<S: Store> Console<S> {
    /// A console over `queries`, its alerts page showing `alerts`.
    pub fn new(queries: Queries<S>, alerts: AlertsView) -> Self {
        Self {
            data: data::ConsoleData::new(queries),
            alerts,
        }
    }
}

/// The console's routes.
pub fn router<S: Store>(console: Console<S>) -> Router {
    Router::new()
        .route("/", get(overview::overview_page::<S>))
        .route("/services/{service}", get(service::service_page::<S>))
        .route(
            "/services/{service}/readings",
            get(readings::readings_page::<S>),
        )
        .route("/alerts", get(alerts::alerts_page::<S>))
        .route("/assets/{name}", get(assets::serve))
        .with_state(console)
}

/// Scripts only from this origin (and none inline), styles from this origin plus the inline
/// positions of chart labels, images from this origin or inline (the icon).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A page as a response: HTML, never cached (figures change), with the security headers.
pub(crate) fn html_response(markup: Markup) -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup,
    )
        .into_response()
}
