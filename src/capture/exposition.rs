//! Pull instead of push: the capture layer's requests served as a Prometheus (OpenMetrics)
//! endpoint, so timebucket — or Prometheus — can scrape the app instead of it pushing.
//!
//! Two families, with the standard names timebucket's scraper reads (see
//! `crate::foreign::exposition::api`):
//!
//! - `http_server_request_duration_seconds{http_request_method, http_route,
//!   http_response_status_code}`: a histogram with OpenTelemetry's default HTTP-server buckets
//!   (5 ms to 10 s), the name OpenTelemetry's Prometheus exporter gives it;
//! - `http_requests_total{method, route, code}`: a counter of the same requests.
//!
//! Both are cumulative since the capture started, as every Prometheus counter is; the scraper
//! turns them into per-interval deltas. They are fed by the pipeline's collector task (the
//! request path still only does its `try_send`), so a scrape sees requests that ended up to
//! one drain period (10 ms) earlier. Series are the same `(method, route template, code)` as
//! pushed readings, so cardinality stays bounded by the route templates.
//!
//! The encoding is `prometheus-client`'s (already used for the service's own `/metrics`).

use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`MetricsEndpoint::render`].
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// OpenTelemetry's default bucket bounds for HTTP-server durations, seconds.
const BUCKETS_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SemconvLabels {
    http_request_method: &'static str,
    http_route: String,
    http_response_status_code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassicLabels {
    method: &'static str,
    route: String,
    code: u16,
}

type Histograms = Family<SemconvLabels, Histogram, fn() -> Histogram>;

struct Inner {
    registry: Registry,
    durations: Histograms,
    requests: Family<ClassicLabels, Counter>,
}

/// The exposition of a capture's requests. Cheap to clone; every clone is the same endpoint.
#[derive(Clone)]
pub struct MetricsEndpoint {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint").finish_non_exhaustive()
    }
}

impl Default for MetricsEndpoint {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsEndpoint {
    /// An endpoint with no requests yet.
    pub fn new() -> Self {
        let durations: Histograms =
            Family::new_with_constructor(|| Histogram::new(BUCKETS_SECONDS));
        let requests = Family::<ClassicLabels, Counter>::default();
        let mut registry = Registry::default();
        registry.register(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests",
            durations.clone(),
        );
        registry.register("http_requests", "HTTP requests served", requests.clone());
        Self {
            inner: Arc::new(Inner {
                registry,
                durations,
                requests,
            }),
        }
    }

    /// Counts one request (called by the pipeline's collector task).
    pub(crate) fn observe(&self, method: &'static str, code: u16, route: &str, duration_ms: f64) {
        self.inner
            .durations
            .get_or_create(&SemconvLabels {
                http_request_method: method,
                http_route: route.to_owned(),
                http_response_status_code: code,
            })
            .observe(duration_ms / 1000.0);
        self.inner
            .requests
            .get_or_create(&ClassicLabels {
                method,
                route: route.to_owned(),
                code,
            })
            .inc();
    }

    /// The OpenMetrics text of every series (serve it with [`CONTENT_TYPE_OPENMETRICS`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        encode(&mut out, &self.inner.registry).expect("encoding into a String");
        out
    }

    /// A router answering `GET /metrics`; merge it into the app's (outside the capture layer,
    /// so scrapes are not counted as requests).
    pub fn router(&self) -> Router {
        let endpoint = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let endpoint = endpoint.clone();
                async move {
                    (
                        [(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)],
                        endpoint.render(),
                    )
                }
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foreign::exposition::{parse, Dialect, MetricType, Suffix};

    #[test]
    fn the_exposition_is_openmetrics_our_parser_reads_with_the_standard_families() {
        let endpoint = MetricsEndpoint::new();
        endpoint.observe("GET", 200, "/users/{id}", 12.0);
        endpoint.observe("GET", 200, "/users/{id}", 30.0);
        endpoint.observe("POST", 503, "/pay", 2_000.0);
        let text = endpoint.render();
        let e = parse(&text, Dialect::OpenMetrics).unwrap();
        let family = e.family_of("http_server_request_duration_seconds_bucket");
        assert_eq!(
            family,
            (
                "http_server_request_duration_seconds",
                MetricType::Histogram,
                Suffix::Bucket
            )
        );
        let count = e
            .samples
            .iter()
            .find(|s| {
                s.name == "http_server_request_duration_seconds_count"
                    && s.label("http_route") == Some("/users/{id}")
            })
            .unwrap();
        assert_eq!(count.value, 2.0);
        let counter = e
            .samples
            .iter()
            .find(|s| s.name == "http_requests_total" && s.label("code") == Some("503"))
            .unwrap();
        assert_eq!((counter.value, counter.label("route")), (1.0, Some("/pay")));
    }
}
