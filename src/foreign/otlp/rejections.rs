//! Partial-success accounting: the data points of a request that did not become readings, with
//! the reason for the first one and a count per metric name.
//!
//! OTLP answers such a request with success and `partial_success { rejected_data_points,
//! error_message }`: the points are not retried (retrying would not change the answer), and the
//! message tells the operator what to fix. `/metrics` counts them per metric name.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;

/// The rejected data points of one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rejections {
    /// Data points rejected, all metrics.
    pub points: u64,
    /// Why the first rejected point was rejected, naming its metric.
    pub first: Option<String>,
    /// Rejected points per metric name.
    pub by_metric: BTreeMap<String, u64>,
}

impl Rejections {
    /// Records `points` points of `metric` rejected because of `reason`.
    pub fn reject(&mut self, metric: &str, points: u64, reason: impl FnOnce() -> String) {
        if points == 0 {
            return;
        }
        self.points += points;
        if self.first.is_none() {
            self.first = Some(format!("metric `{metric}`: {}", reason()));
        }
        *self.by_metric.entry(metric.to_owned()).or_default() += points;
    }

    /// True when no point was rejected.
    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// The OTLP `partial_success` for these rejections (`None` when there are none).
    pub fn partial_success(&self) -> Option<ExportMetricsPartialSuccess> {
        let first = self.first.as_ref()?;
        let error_message = format!("{} data point(s) rejected; the first: {first}", self.points);
        Some(ExportMetricsPartialSuccess {
            rejected_data_points: i64::try_from(self.points).unwrap_or(i64::MAX),
            error_message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_is_kept_and_every_point_counted_by_metric() {
        let mut r = Rejections::default();
        assert_eq!(r.partial_success(), None);
        r.reject("a.b", 0, || unreachable!("nothing rejected"));
        r.reject("jvm.gc", 3, || "not a metric timebucket maps".into());
        r.reject("x", 1, || "later".into());
        r.reject("jvm.gc", 2, || "again".into());
        let partial = r.partial_success().unwrap();
        assert_eq!(partial.rejected_data_points, 6);
        assert_eq!(
            partial.error_message,
            "6 data point(s) rejected; the first: metric `jvm.gc`: not a metric timebucket maps"
        );
        assert_eq!(r.by_metric.get("jvm.gc"), Some(&5));
    }
}
