//! The access-control metrics: requests refused, by reason, and batches refused by a token's
//! limits, by token name and limit. No label ever holds a token: names come from the tokens file,
//! so they are bounded by the configuration.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// `{reason}` of `timebucket_access_denied_total`.
pub type ReasonLabel = [(&'static str, &'static str); 1];
/// `{token, limit}` of `timebucket_access_limited_total`.
pub type TokenLimit = [(&'static str, String); 2];

/// The access-control metrics.
#[derive(Default)]
pub struct AccessMetrics {
    /// Requests refused: `missing_token`, `malformed_token`, `unknown_token`, `missing_scope`,
    /// `service_outside_scope`, `host_not_allowed`.
    pub denied: Family<ReasonLabel, Counter>,
    /// Batches refused by a limit (`readings_per_second`, `burst`, `max_series_per_bucket`), by
    /// token name.
    pub limited: Family<TokenLimit, Counter>,
}

impl AccessMetrics {
    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "access_denied",
            "Requests refused by access control, by reason",
            self.denied.clone(),
        );
        registry.register(
            "access_limited",
            "Ingest batches refused by a token's limits, by token and limit",
            self.limited.clone(),
        );
    }

    /// Counts one refusal for `reason`.
    pub fn deny(&self, reason: &'static str) {
        self.denied.get_or_create(&[("reason", reason)]).inc();
    }
}
