//! From fetched readings to the samples of the series a selector matches.
//!
//! Counters (the request families) have one sample per instant at which the series has API
//! readings (readings of one millisecond are one sample). A sample's *increment* is what those
//! readings add: their `count` (`_count`), `count × seconds` (`_sum`), or their `count` when
//! `seconds ≤ le` and 0 otherwise (`_bucket`). A sample's *value* is the sum of increments since
//! the UTC midnight before it: counters restart at every UTC midnight, as if the service had
//! restarted then. Gauges (the host families) have one sample per host reading carrying the
//! gauge (of two readings of one millisecond, the later by reading id wins).
//!
//! A selector read for a level of rollups sees that level's events (`fetch`): parts of slots,
//! which give the same sums over its windows as the readings they stand for.

use promql_parser::label::Matcher;

use crate::model::ServiceName;
use crate::promql::families::{le_label, Family, Kind, LE_SECONDS};
use crate::promql::fetch::{ApiEvent, ApiKey, Fetched, HostEvent};
use crate::promql::labels::{Labels, METRIC_NAME};
use crate::promql::plan::{families, service_matches, Use, DAY_MS};
use crate::query::source::Level;

/// The samples of one series in a window, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSeries {
    /// The series.
    pub labels: Labels,
    /// Sample times, ms, strictly increasing.
    pub t: Vec<i64>,
    /// Values or increments (see [`Use`]).
    pub v: Vec<f64>,
}

fn api_labels(service: &ServiceName, key: &ApiKey, family: Family, le: Option<f64>) -> Labels {
    let mut labels = Labels::new([
        (METRIC_NAME, family.name().to_owned()),
        ("service", service.to_string()),
        ("job", service.to_string()),
        ("instance", key.instance.to_string()),
        ("method", key.method.to_string()),
        ("path", key.path.to_string()),
        ("code", key.code.get().to_string()),
    ]);
    if let Some(le) = le {
        labels.set("le", le_label(le));
    }
    labels
}

/// What one API event adds to a family's series (of bucket `le`, an index of `LE_SECONDS` or
/// its length for `+Inf`).
fn increment(family: Family, le: Option<usize>, e: &ApiEvent) -> f64 {
    match (family, le) {
        (Family::RequestSum, _) => e.seconds,
        (Family::RequestBucket, Some(le)) => e.requests.up_to(le) as f64,
        _ => e.requests.count() as f64,
    }
}

fn counter_samples(
    events: &[ApiEvent],
    add: impl Fn(&ApiEvent) -> f64,
    (lo, hi): (i64, i64),
    use_: Use,
) -> (Vec<i64>, Vec<f64>) {
    let first = match use_ {
        Use::Increments | Use::Sums => lo,
        Use::Values => lo.div_euclid(DAY_MS) * DAY_MS,
    };
    let mut i = events.partition_point(|e| e.t < first);
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    let (mut day, mut total) = (i64::MIN, 0.0);
    while i < events.len() && events[i].t <= hi {
        let t = events[i].t;
        let mut added = 0.0;
        while i < events.len() && events[i].t == t {
            added += add(&events[i]);
            i += 1;
        }
        let value = match use_ {
            Use::Increments | Use::Sums => added,
            Use::Values => {
                if t.div_euclid(DAY_MS) != day {
                    day = t.div_euclid(DAY_MS);
                    total = 0.0;
                }
                total += added;
                total
            }
        };
        if t >= lo {
            ts.push(t);
            vs.push(value);
        }
    }
    (ts, vs)
}

fn gauge_samples(
    events: &[HostEvent],
    value: impl Fn(&HostEvent) -> Option<f64>,
    (lo, hi): (i64, i64),
) -> (Vec<i64>, Vec<f64>) {
    let (mut ts, mut vs): (Vec<i64>, Vec<f64>) = (Vec::new(), Vec::new());
    let start = events.partition_point(|e| e.t < lo);
    for e in events[start..].iter().take_while(|e| e.t <= hi) {
        let Some(v) = value(e) else { continue };
        if ts.last() == Some(&e.t) {
            *vs.last_mut().expect("a value per time") = v;
        } else {
            ts.push(e.t);
            vs.push(v);
        }
    }
    (ts, vs)
}

/// The series matching `matchers` with at least one sample in `[lo, hi]`, sorted by labels,
/// from the data read for selectors served by `level`.
pub fn raw_series(
    data: &Fetched,
    matchers: &[Matcher],
    window: (i64, i64),
    use_: Use,
    level: Level,
) -> Vec<RawSeries> {
    let families = families(matchers);
    let mut out = Vec::new();
    let mut push = |labels: Labels, (t, v): (Vec<i64>, Vec<f64>)| {
        if !t.is_empty() {
            out.push(RawSeries { labels, t, v });
        }
    };
    for (service, sd) in &data.services {
        if !service_matches(matchers, service) {
            continue;
        }
        for &family in &families {
            match family.kind() {
                Kind::Api => {
                    let bounds: Vec<Option<usize>> = match family {
                        Family::RequestBucket => (0..=LE_SECONDS.len()).map(Some).collect(),
                        _ => vec![None],
                    };
                    let Some(api) = sd.api.get(&level) else {
                        continue;
                    };
                    for (key, events) in api {
                        for &le in &bounds {
                            let bound =
                                le.map(|i| LE_SECONDS.get(i).copied().unwrap_or(f64::INFINITY));
                            let labels = api_labels(service, key, family, bound);
                            if labels.matches(matchers) {
                                let add = |e: &ApiEvent| increment(family, le, e);
                                push(labels, counter_samples(events, add, window, use_));
                            }
                        }
                    }
                }
                Kind::Host => {
                    let Family::Host(field) = family else {
                        continue;
                    };
                    for (instance, events) in &sd.host {
                        let labels = Labels::new([
                            (METRIC_NAME, family.name().to_owned()),
                            ("service", service.to_string()),
                            ("job", service.to_string()),
                            ("instance", instance.to_string()),
                        ]);
                        if labels.matches(matchers) {
                            let value = |e: &HostEvent| field.value(&e.gauges);
                            push(labels, gauge_samples(events, value, window));
                        }
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}
