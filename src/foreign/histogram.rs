//! A histogram of request durations, as OTLP and Prometheus exporters send it, turned into API
//! readings that keep its distribution and its sum.
//!
//! A histogram data point summarises many requests: per bucket, how many fell in it, plus
//! (usually) the sum of all durations and sometimes their min and max. Each non-empty bucket
//! becomes readings with that bucket's count and one representative duration inside the bucket.
//!
//! **How representatives are chosen.** Bucket `i` spans `[lo_i, hi_i]` (the first starts at 0,
//! or at `min` when known; the overflow bucket ends at `max` when known, else is unbounded). With
//! the point's sum `S` known and every non-empty bucket bounded, every representative moves by the
//! same fraction `t` of its bucket: `rep_i = lo_i + t (hi_i - lo_i)`, where `t` solves
//! `Σ c_i rep_i = S`. When `Σ c_i lo_i <= S <= Σ c_i hi_i` (always, for a truthful exporter) the
//! sum is preserved exactly; otherwise `t` is clamped to 0 or 1, the nearest the buckets allow.
//! An unbounded, non-empty overflow bucket takes what the other buckets (at their midpoints)
//! leave of the sum, but never less than its lower bound. Without a sum, representatives are the
//! midpoints (the overflow bucket: its lower bound). A representative is never exactly a
//! positive lower bound, which belongs to the bucket below: it moves up by one ulp.
//!
//! **What that means for `/v1/stats`.** Every request is represented by a duration inside its own
//! bucket, so counts and the mean are exact (when `S` is feasible) and a percentile lands in the
//! bucket of the true percentile: its error is at most that bucket's width (plus the sketch's
//! ±1%). In an unbounded overflow bucket the error is unbounded, as it is for Prometheus'
//! `histogram_quantile`, which answers the last finite bound there.

use crate::ingest::rules::MAX_DURATION_MS;
use crate::model::{
    ApiPath, ApiReading, HttpMethod, InstanceName, ReadingId, ServiceName, StatusCode, TimestampMs,
};

/// Relative tolerance when matching bucket boundaries of two points (exponential bounds are
/// computed with `powf` and may differ in the last bits between scales).
const BOUND_TOLERANCE: f64 = 1e-9;

/// One bucket: requests with a duration in `(lo, hi]`, in ms; `hi` is `None` for an unbounded
/// overflow bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    lo: f64,
    hi: Option<f64>,
    count: u64,
}

/// A histogram of request durations in milliseconds; counts are per bucket (not cumulative).
#[derive(Debug, Clone, PartialEq)]
pub struct DurationHistogram {
    buckets: Vec<Bucket>,
    sum_ms: Option<f64>,
    min_ms: Option<f64>,
    max_ms: Option<f64>,
}

/// A histogram that cannot describe request durations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramError {
    /// Explicit buckets need one count more than bounds.
    #[error("{counts} bucket counts for {bounds} bounds (expected bounds + 1)")]
    CountMismatch {
        /// Bounds received.
        bounds: usize,
        /// Counts received.
        counts: usize,
    },
    /// Bounds must be finite and strictly increasing.
    #[error("bucket bounds must be finite and strictly increasing")]
    BadBounds,
    /// Cumulative (Prometheus `le`) buckets must not decrease and must end with `+Inf`.
    #[error("cumulative buckets must not decrease and must end with le=\"+Inf\"")]
    BadCumulative,
    /// Durations cannot be negative.
    #[error("negative durations cannot be request durations")]
    Negative,
    /// Sum, min or max is not a finite number.
    #[error("sum, min and max must be finite numbers")]
    NotFinite,
}

/// One reading's worth of a bucket: `count` requests represented by `duration_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Representative {
    /// Requests in the bucket.
    pub count: u64,
    /// The duration standing for each of them, ms (within the bucket, at most one day).
    pub duration_ms: f64,
}

/// The positive buckets of an OTLP exponential histogram: bucket `offset + k` spans
/// `(base^(offset+k), base^(offset+k+1)]` with `base = 2^(2^-scale)`.
#[derive(Debug, Clone, Copy)]
pub struct Exponential<'a> {
    /// Resolution: larger is finer.
    pub scale: i32,
    /// Requests that took (about) no time.
    pub zero_count: u64,
    /// Index of the first bucket in `counts`.
    pub offset: i32,
    /// Requests per bucket.
    pub counts: &'a [u64],
}

/// The validated series an HTTP-server histogram belongs to.
#[derive(Debug, Clone)]
pub struct ApiSeries {
    /// `service.name` / `job`.
    pub service: ServiceName,
    /// `service.instance.id`, host, or target.
    pub instance: InstanceName,
    /// The request method.
    pub method: HttpMethod,
    /// The route template.
    pub path: ApiPath,
    /// The response status.
    pub code: StatusCode,
}

impl DurationHistogram {
    /// Explicit buckets: `bounds_ms` are the upper bounds (the first bucket starts at 0, the last
    /// one, past the final bound, is unbounded), `counts` has one entry more than `bounds_ms`.
    pub fn explicit(
        bounds_ms: &[f64],
        counts: &[u64],
        sum_ms: Option<f64>,
        min_ms: Option<f64>,
        max_ms: Option<f64>,
    ) -> Result<Self, HistogramError> {
        if counts.len() != bounds_ms.len() + 1 {
            return Err(HistogramError::CountMismatch {
                bounds: bounds_ms.len(),
                counts: counts.len(),
            });
        }
        let increasing = bounds_ms.windows(2).all(|w| w[0] < w[1]);
        if !increasing || bounds_ms.iter().any(|b| !b.is_finite()) {
            return Err(HistogramError::BadBounds);
        }
        let mut lo = 0.0_f64;
        let mut buckets = Vec::with_capacity(counts.len());
        for (i, &count) in counts.iter().enumerate() {
            let hi = bounds_ms.get(i).copied();
            if count > 0 && hi.is_some_and(|hi| hi < 0.0) {
                return Err(HistogramError::Negative);
            }
            buckets.push(Bucket {
                lo: lo.max(0.0),
                hi: hi.map(|h| h.max(0.0)),
                count,
            });
            lo = hi.unwrap_or(lo);
        }
        Self::finish(buckets, sum_ms, min_ms, max_ms)
    }

    /// Prometheus buckets: `(le, cumulative count)` pairs in increasing `le`, the last one
    /// `+Inf` (its count is the total).
    pub fn cumulative_le(
        le_ms: &[(f64, f64)],
        sum_ms: Option<f64>,
    ) -> Result<Self, HistogramError> {
        let Some(&(last, _)) = le_ms.last() else {
            return Err(HistogramError::BadCumulative);
        };
        if last != f64::INFINITY {
            return Err(HistogramError::BadCumulative);
        }
        let mut bounds = Vec::with_capacity(le_ms.len() - 1);
        let mut counts = Vec::with_capacity(le_ms.len());
        let mut below = 0.0;
        for &(le, cumulative) in le_ms {
            if !cumulative.is_finite() || cumulative < below {
                return Err(HistogramError::BadCumulative);
            }
            counts.push((cumulative - below).round() as u64);
            below = cumulative;
            if le.is_finite() {
                bounds.push(le);
            }
        }
        Self::explicit(&bounds, &counts, sum_ms, None, None)
    }

    /// OTLP exponential buckets (positive range only), in units of `unit_ms` (see
    /// [`Exponential`]). A non-empty negative range is refused by the caller before this
    /// (durations are never negative).
    pub fn exponential(
        layout: &Exponential<'_>,
        unit_ms: f64,
        sum_ms: Option<f64>,
        min_ms: Option<f64>,
        max_ms: Option<f64>,
    ) -> Result<Self, HistogramError> {
        let base = 2f64.powf(2f64.powi(-layout.scale));
        let mut buckets = Vec::with_capacity(layout.counts.len() + 1);
        if layout.zero_count > 0 {
            buckets.push(Bucket {
                lo: 0.0,
                hi: Some(0.0),
                count: layout.zero_count,
            });
        }
        for (k, &count) in layout.counts.iter().enumerate() {
            let index = f64::from(layout.offset) + k as f64;
            let lo = base.powf(index) * unit_ms;
            let hi = base.powf(index + 1.0) * unit_ms;
            if !lo.is_finite() || !hi.is_finite() {
                return Err(HistogramError::BadBounds);
            }
            buckets.push(Bucket {
                lo,
                hi: Some(hi),
                count,
            });
        }
        Self::finish(buckets, sum_ms, min_ms, max_ms)
    }

    fn finish(
        buckets: Vec<Bucket>,
        sum_ms: Option<f64>,
        min_ms: Option<f64>,
        max_ms: Option<f64>,
    ) -> Result<Self, HistogramError> {
        let finite = |v: Option<f64>| v.is_none_or(f64::is_finite);
        if !finite(sum_ms) || !finite(min_ms) || !finite(max_ms) {
            return Err(HistogramError::NotFinite);
        }
        if [sum_ms, min_ms, max_ms].iter().flatten().any(|v| *v < 0.0) {
            return Err(HistogramError::Negative);
        }
        Ok(Self {
            buckets,
            sum_ms,
            min_ms,
            max_ms,
        })
    }

    /// Requests counted, all buckets.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.count).sum()
    }

    /// The sum of all durations, ms, when the exporter sent it.
    pub fn sum_ms(&self) -> Option<f64> {
        self.sum_ms
    }

    /// `self - earlier` for cumulative points of one stream, or `None` when `self` does not
    /// continue `earlier`: a count or the sum went down (a reset), or a bucket of `earlier` fits
    /// in none of `self`'s (the layout changed other than by merging buckets). An exponential
    /// histogram that was downscaled between the points is a continuation: each earlier bucket
    /// lies inside one later bucket. Min and max are dropped: they cover the whole cumulative
    /// period, not the delta.
    pub fn since(&self, earlier: &Self) -> Option<Self> {
        let mut buckets = self.buckets.clone();
        for old in earlier.buckets.iter().filter(|b| b.count > 0) {
            let target = buckets.iter_mut().find(|b| contains(b, old))?;
            target.count = target.count.checked_sub(old.count)?;
        }
        let sum_ms = match (self.sum_ms, earlier.sum_ms) {
            (Some(now), Some(before)) if now + before * BOUND_TOLERANCE < before => return None,
            (Some(now), Some(before)) => Some((now - before).max(0.0)),
            _ => None,
        };
        Some(Self {
            buckets,
            sum_ms,
            min_ms: None,
            max_ms: None,
        })
    }

    /// One representative per non-empty bucket, in bucket order (see the module doc).
    pub fn representatives(&self) -> Vec<Representative> {
        let spans = self.spans();
        let reps = match self.sum_ms {
            Some(sum) => fit_sum(&spans, sum),
            None => spans
                .iter()
                .map(|s| s.hi.map_or(s.lo, |hi| (s.lo + hi) / 2.0))
                .collect(),
        };
        spans
            .iter()
            .zip(reps)
            .map(|(span, rep)| Representative {
                count: span.count,
                duration_ms: inside(span, rep).clamp(0.0, MAX_DURATION_MS),
            })
            .collect()
    }

    /// The API readings of this histogram for `series` at `at`: one per non-empty bucket (more
    /// when a bucket holds more requests than one reading's `count` can say).
    pub fn to_readings(&self, series: &ApiSeries, at: TimestampMs) -> Vec<ApiReading> {
        let most = u64::try_from(i32::MAX).unwrap_or(u64::MAX);
        let mut readings = Vec::new();
        for rep in self.representatives() {
            let mut left = rep.count;
            while left > 0 {
                let count = left.min(most);
                left -= count;
                readings.push(ApiReading {
                    id: ReadingId::new(),
                    service: series.service.clone(),
                    instance: series.instance.clone(),
                    method: series.method.clone(),
                    path: series.path.clone(),
                    code: series.code,
                    duration_ms: rep.duration_ms,
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                    timestamp: at,
                });
            }
        }
        readings
    }

    /// The non-empty buckets, tightened by min and max where known.
    fn spans(&self) -> Vec<Bucket> {
        let mut spans: Vec<Bucket> = self
            .buckets
            .iter()
            .copied()
            .filter(|b| b.count > 0)
            .collect();
        if let (Some(min), Some(first)) = (self.min_ms, spans.first_mut()) {
            if first.hi.is_none_or(|hi| min <= hi) && min > first.lo {
                first.lo = min;
            }
        }
        if let (Some(max), Some(last)) = (self.max_ms, spans.last_mut()) {
            if max >= last.lo && last.hi.is_none_or(|hi| max < hi) {
                last.hi = Some(max);
            }
        }
        spans
    }
}

/// `rep` moved just above a positive lower bound it sits on: buckets hold `(lo, hi]`
/// (Prometheus `le`, OpenTelemetry explicit and exponential bounds), so a representative at
/// exactly `lo` would count in the bucket below wherever `le` buckets are counted again.
fn inside(span: &Bucket, rep: f64) -> f64 {
    let above_lo = span.lo.next_up();
    if span.lo > 0.0 && rep < above_lo && span.hi.is_none_or(|hi| hi >= above_lo) {
        above_lo
    } else {
        rep
    }
}

/// Whether `outer` contains `inner` (within the boundary tolerance).
fn contains(outer: &Bucket, inner: &Bucket) -> bool {
    let close = |a: f64, b: f64| (a - b).abs() <= BOUND_TOLERANCE * a.abs().max(b.abs());
    let lo_ok = outer.lo <= inner.lo || close(outer.lo, inner.lo);
    let hi_ok = match (outer.hi, inner.hi) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => i <= o || close(i, o),
    };
    lo_ok && hi_ok
}

/// Representatives inside `spans` whose count-weighted sum is `sum` (as near as the spans allow).
fn fit_sum(spans: &[Bucket], sum: f64) -> Vec<f64> {
    let overflow = spans.last().filter(|s| s.hi.is_none());
    let bounded = &spans[..spans.len() - usize::from(overflow.is_some())];
    let mut target = sum;
    let mut overflow_rep = None;
    if let Some(over) = overflow {
        let mids: f64 = bounded
            .iter()
            .map(|s| s.count as f64 * (s.lo + s.hi.unwrap_or(s.lo)) / 2.0)
            .sum();
        let rest = (sum - mids) / over.count as f64;
        if rest >= over.lo {
            let mut reps: Vec<f64> = bounded
                .iter()
                .map(|s| (s.lo + s.hi.unwrap_or(s.lo)) / 2.0)
                .collect();
            reps.push(rest);
            return reps;
        }
        overflow_rep = Some(over.lo);
        target -= over.count as f64 * over.lo;
    }
    let low: f64 = bounded.iter().map(|s| s.count as f64 * s.lo).sum();
    let width: f64 = bounded
        .iter()
        .map(|s| s.count as f64 * (s.hi.unwrap_or(s.lo) - s.lo))
        .sum();
    let t = if width > 0.0 {
        ((target - low) / width).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mut reps: Vec<f64> = bounded
        .iter()
        .map(|s| s.lo + t * (s.hi.unwrap_or(s.lo) - s.lo))
        .collect();
    reps.extend(overflow_rep);
    reps
}

#[cfg(test)]
mod tests;
