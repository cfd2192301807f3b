//! The two quantile estimates of PromQL, exactly as Prometheus computes them.
//!
//! - [`quantile`] (`quantile_over_time`): φ-quantile of a set of values, interpolating linearly
//!   between the two closest ranks (`rank = φ × (n − 1)`).
//! - [`bucket_quantile`] (`histogram_quantile`): φ-quantile of cumulative buckets: find the
//!   bucket holding rank `φ × total`, interpolate linearly inside it (from 0 for the first
//!   bucket); a rank in the `+Inf` bucket answers the highest finite bound.

/// φ-quantile of `values` (any order); NaN when empty.
pub fn quantile(phi: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let rank = phi * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// φ-quantile of cumulative buckets `(upper bound, count)` in any order.
pub fn bucket_quantile(phi: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Buckets of one bound (from several series) are one bucket.
    buckets.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 += next.1;
            true
        } else {
            false
        }
    });
    // Counts must not fall from one bucket to the next (rates of separately scraped buckets
    // can); Prometheus forces them monotonic.
    let mut max = f64::NEG_INFINITY;
    for b in buckets.iter_mut() {
        max = max.max(b.1);
        b.1 = max;
    }
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let total = buckets[buckets.len() - 1].1;
    if total == 0.0 {
        return f64::NAN;
    }
    let mut rank = phi * total;
    let b = buckets[..buckets.len() - 1].partition_point(|b| b.1 < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_between_ranks() {
        assert_eq!(quantile(0.5, &mut [3.0, 1.0, 2.0, 4.0]), 2.5);
        assert_eq!(quantile(0.0, &mut [3.0, 1.0]), 1.0);
        assert_eq!(quantile(1.0, &mut [3.0, 1.0]), 3.0);
        assert_eq!(quantile(2.0, &mut [3.0]), f64::INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn bucket_quantile_interpolates_inside_the_bucket() {
        // 10 requests ≤ 0.1 s, 10 more ≤ 0.5 s, none slower.
        let mut b = vec![(0.5, 20.0), (0.1, 10.0), (f64::INFINITY, 20.0)];
        assert_eq!(bucket_quantile(0.5, &mut b.clone()), 0.1);
        assert_eq!(bucket_quantile(0.25, &mut b.clone()), 0.05);
        assert!((bucket_quantile(0.75, &mut b) - 0.3).abs() < 1e-12);
        // A rank in the +Inf bucket answers the highest finite bound.
        let mut slow = vec![(0.1, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.9, &mut slow), 0.1);
        let mut no_inf = vec![(0.1, 1.0)];
        assert!(bucket_quantile(0.5, &mut no_inf).is_nan());
        let mut empty = vec![(0.1, 0.0), (f64::INFINITY, 0.0)];
        assert!(bucket_quantile(0.5, &mut empty).is_nan());
    }
}
