use proptest::prelude::*;

use super::*;

fn weighted_sum(reps: &[Representative]) -> f64 {
    reps.iter().map(|r| r.count as f64 * r.duration_ms).sum()
}

/// Nearest-rank q-quantile of a request-weighted list of durations.
fn nearest_rank(mut weighted: Vec<(f64, u64)>, q: f64) -> f64 {
    weighted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = weighted.iter().map(|w| w.1).sum();
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (value, count) in weighted {
        seen += count;
        if seen >= rank {
            return value;
        }
    }
    f64::NAN
}

#[test]
fn a_feasible_sum_is_kept_exactly_and_every_representative_stays_in_its_bucket() {
    let bounds = [5.0, 10.0, 25.0, 50.0];
    let h = DurationHistogram::explicit(&bounds, &[2, 0, 3, 1, 0], Some(80.0), None, None).unwrap();
    let reps = h.representatives();
    assert_eq!(reps.iter().map(|r| r.count).collect::<Vec<_>>(), [2, 3, 1]);
    assert!((weighted_sum(&reps) - 80.0).abs() < 1e-9);
    assert!((0.0..=5.0).contains(&reps[0].duration_ms));
    assert!((10.0..=25.0).contains(&reps[1].duration_ms));
    assert!((25.0..=50.0).contains(&reps[2].duration_ms));
}

#[test]
fn an_impossible_sum_is_approached_from_the_nearest_edge() {
    let h =
        DurationHistogram::explicit(&[10.0, 20.0], &[0, 4, 0], Some(1000.0), None, None).unwrap();
    let reps = h.representatives();
    assert_eq!(
        reps,
        [Representative {
            count: 4,
            duration_ms: 20.0
        }]
    );
    // The bucket is (10, 20]: its lowest representative is just above 10.
    let h = DurationHistogram::explicit(&[10.0, 20.0], &[0, 4, 0], Some(1.0), None, None).unwrap();
    assert_eq!(h.representatives()[0].duration_ms, 10.0_f64.next_up());
}

#[test]
fn without_a_sum_representatives_are_midpoints() {
    let h = DurationHistogram::explicit(&[10.0, 20.0], &[1, 1, 1], None, None, None).unwrap();
    let reps: Vec<f64> = h.representatives().iter().map(|r| r.duration_ms).collect();
    assert_eq!(reps, [5.0, 15.0, 20.0_f64.next_up()]);
}

#[test]
fn an_unbounded_overflow_bucket_takes_the_rest_of_the_sum() {
    let h = DurationHistogram::explicit(&[10.0], &[2, 1], Some(10.0 + 300.0), None, None).unwrap();
    let reps = h.representatives();
    assert_eq!(reps[0].duration_ms, 5.0);
    assert!((reps[1].duration_ms - 300.0).abs() < 1e-9);
    // A sum too small for the overflow bucket's lower bound: it sits just above that bound
    // (which belongs to the bucket below) and the bounded buckets give way.
    let h = DurationHistogram::explicit(&[10.0], &[2, 1], Some(12.0), None, None).unwrap();
    let reps = h.representatives();
    assert_eq!(reps[1].duration_ms, 10.0_f64.next_up());
    assert!((weighted_sum(&reps) - 12.0).abs() < 1e-9);
}

#[test]
fn min_and_max_tighten_the_outer_buckets() {
    let h = DurationHistogram::explicit(&[10.0, 20.0], &[1, 0, 1], None, Some(4.0), Some(30.0))
        .unwrap();
    let reps: Vec<f64> = h.representatives().iter().map(|r| r.duration_ms).collect();
    assert_eq!(reps, [7.0, 25.0]);
}

#[test]
fn bad_layouts_are_refused() {
    assert!(matches!(
        DurationHistogram::explicit(&[1.0, 2.0], &[1, 1], None, None, None),
        Err(HistogramError::CountMismatch { .. })
    ));
    assert_eq!(
        DurationHistogram::explicit(&[2.0, 1.0], &[1, 1, 1], None, None, None),
        Err(HistogramError::BadBounds)
    );
    assert_eq!(
        DurationHistogram::explicit(&[1.0], &[1, 1], Some(f64::NAN), None, None),
        Err(HistogramError::NotFinite)
    );
    assert_eq!(
        DurationHistogram::cumulative_le(&[(1.0, 3.0), (2.0, 2.0), (f64::INFINITY, 4.0)], None),
        Err(HistogramError::BadCumulative)
    );
    assert_eq!(
        DurationHistogram::cumulative_le(&[(1.0, 3.0)], None),
        Err(HistogramError::BadCumulative)
    );
}

#[test]
fn prometheus_cumulative_buckets_become_per_bucket_counts() {
    let h = DurationHistogram::cumulative_le(
        &[(5.0, 2.0), (10.0, 2.0), (25.0, 5.0), (f64::INFINITY, 6.0)],
        Some(100.0),
    )
    .unwrap();
    assert_eq!(h.count(), 6);
    let counts: Vec<u64> = h.representatives().iter().map(|r| r.count).collect();
    assert_eq!(counts, [2, 3, 1]);
}

#[test]
fn a_cumulative_point_minus_the_previous_one_is_the_delta_and_a_decrease_is_a_reset() {
    let before = DurationHistogram::explicit(&[10.0], &[3, 1], Some(50.0), None, None).unwrap();
    let after = DurationHistogram::explicit(&[10.0], &[5, 1], Some(62.0), None, None).unwrap();
    let delta = after.since(&before).unwrap();
    assert_eq!(delta.count(), 2);
    assert_eq!(delta.sum_ms(), Some(12.0));
    let restarted = DurationHistogram::explicit(&[10.0], &[1, 0], Some(2.0), None, None).unwrap();
    assert_eq!(restarted.since(&after), None);
}

#[test]
fn an_exponential_histogram_downscaled_between_points_still_continues() {
    // Scale 1: base √2, buckets (√2^k, √2^(k+1)]; scale 0: base 2.
    let fine = Exponential {
        scale: 1,
        zero_count: 1,
        offset: 2,
        counts: &[1, 2, 3, 4],
    };
    let coarse = Exponential {
        scale: 0,
        zero_count: 2,
        offset: 1,
        counts: &[4, 8],
    };
    let before = DurationHistogram::exponential(&fine, 1.0, Some(30.0), None, None).unwrap();
    let after = DurationHistogram::exponential(&coarse, 1.0, Some(60.0), None, None).unwrap();
    let delta = after.since(&before).unwrap();
    assert_eq!(delta.count(), 14 - 11);
    let counts: Vec<u64> = delta.representatives().iter().map(|r| r.count).collect();
    assert_eq!(counts, [1, 1, 1], "zero bucket 2-1, (2,4] 4-3, (4,8] 8-7");
}

#[test]
fn exponential_buckets_have_the_documented_bounds() {
    let layout = Exponential {
        scale: 0,
        zero_count: 0,
        offset: -1,
        counts: &[1, 1],
    };
    // Seconds to ms: (0.5 s, 1 s] and (1 s, 2 s].
    let h = DurationHistogram::exponential(&layout, 1000.0, None, None, None).unwrap();
    let reps: Vec<f64> = h.representatives().iter().map(|r| r.duration_ms).collect();
    assert_eq!(reps, [750.0, 1500.0]);
}

#[test]
fn readings_split_counts_larger_than_one_reading_can_hold() {
    let series = ApiSeries {
        service: ServiceName::parse("checkout").unwrap(),
        instance: InstanceName::parse("i-1").unwrap(),
        method: HttpMethod::parse("GET").unwrap(),
        path: ApiPath::parse("/cart").unwrap(),
        code: StatusCode::parse(200).unwrap(),
    };
    let many = u64::try_from(i32::MAX).unwrap() + 5;
    let h = DurationHistogram::explicit(&[10.0], &[many, 0], None, None, None).unwrap();
    let readings = h.to_readings(&series, TimestampMs::from_millis(7));
    let counts: Vec<u32> = readings.iter().map(|r| r.count).collect();
    assert_eq!(counts, [i32::MAX as u32, 5]);
    assert!(readings
        .iter()
        .all(|r| r.timestamp.millis() == 7 && r.duration_ms == 5.0));
}

proptest! {
    /// For any set of durations: the representatives keep the count and the sum, and each
    /// percentile falls in the bucket of the true percentile.
    #[test]
    fn representatives_keep_sum_and_percentile_buckets(
        durations in prop::collection::vec(0.0f64..2_000.0, 1..300),
        q in 0.01f64..1.0,
    ) {
        let bounds = [5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0];
        let mut counts = vec![0u64; bounds.len() + 1];
        for d in &durations {
            let bucket = bounds.iter().position(|b| d <= b).unwrap_or(bounds.len());
            counts[bucket] += 1;
        }
        let sum: f64 = durations.iter().sum();
        let h = DurationHistogram::explicit(&bounds, &counts, Some(sum), None, None).unwrap();
        let reps = h.representatives();
        prop_assert_eq!(reps.iter().map(|r| r.count).sum::<u64>(), durations.len() as u64);
        prop_assert!((weighted_sum(&reps) - sum).abs() <= 1e-6 * sum.max(1.0));
        let bucket_of = |d: f64| bounds.iter().position(|b| d <= *b).unwrap_or(bounds.len());
        let truth = nearest_rank(durations.iter().map(|d| (*d, 1)).collect(), q);
        let ours = nearest_rank(reps.iter().map(|r| (r.duration_ms, r.count)).collect(), q);
        prop_assert_eq!(bucket_of(ours), bucket_of(truth));
    }
}
