//! Per-token limits: a rate of readings, and a cap on the distinct series a token makes per
//! service and time bucket (the guard against a client that puts user ids into paths).
//!
//! - **Rate** (`readings_per_second`, `burst`): a token bucket holding `burst` readings,
//!   refilled at `readings_per_second`; a batch of n readings takes n at once, or is refused
//!   whole with the wait until n are there. `governor`'s GCRA is exactly this bucket, kept as
//!   one timestamp instead of a counter and a refill timer, so we use it rather than our own.
//! - **Series** (`max_series_per_bucket`): per service, the distinct series (an API reading's
//!   instance, method and path; a host reading's instance) the token wrote in each time bucket of
//!   the store. A batch that would take one bucket past the cap is refused whole until the next
//!   bucket begins; series already known pass. Only the [`TRACKED_BUCKETS`] newest buckets of a
//!   service are remembered, so memory stays at most `cap × TRACKED_BUCKETS` hashes per service.
//!
//! Checks run in that order, and a batch counts against a limit only when it passes both; the
//! state is in memory, per process (replicas each apply the limits to what they receive).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::tokens_file::TokenLimits;
use crate::ingest::gate::Refusal;
use crate::model::{BucketWidth, Reading, ServiceName, TimeBucket, TimestampMs};

/// Time buckets remembered per service by the series guard.
pub const TRACKED_BUCKETS: usize = 4;

/// The limit state of one token.
pub struct LimitState {
    limits: TokenLimits,
    rate: Option<DefaultDirectRateLimiter>,
    series: Mutex<HashMap<ServiceName, BTreeMap<TimeBucket, HashSet<u64>>>>,
}

impl std::fmt::Debug for LimitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitState")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl LimitState {
    /// A fresh state for `limits`.
    pub fn new(limits: TokenLimits) -> Self {
        Self::refilled_over(limits, Duration::from_secs(1))
    }

    /// A fresh state whose rate bucket refills `readings_per_second` readings every `period`
    /// (tests use an hour, so that no refill can happen while they run).
    fn refilled_over(limits: TokenLimits, period: Duration) -> Self {
        let rate = limits.readings_per_second.map(|rate| {
            let quota = Quota::with_period(period / rate.get()).expect("a rate is at least 1");
            RateLimiter::direct(quota.allow_burst(limits.burst.unwrap_or(rate)))
        });
        Self {
            limits,
            rate,
            series: Mutex::default(),
        }
    }

    /// The limits it applies.
    pub fn limits(&self) -> TokenLimits {
        self.limits
    }

    /// Checks `readings` against both limits and counts them when they pass.
    pub fn admit(
        &self,
        token: &str,
        readings: &[Reading],
        width: BucketWidth,
    ) -> Result<(), Refusal> {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = match self.limits.max_series_per_bucket {
            Some(cap) => Some(new_series(&series, readings, width, cap, token)?),
            None => None,
        };
        self.take(token, readings.len())?;
        if let Some(fresh) = fresh {
            for ((service, bucket), hashes) in fresh {
                let buckets = series.entry(service).or_default();
                buckets.entry(bucket).or_default().extend(hashes);
                while buckets.len() > TRACKED_BUCKETS {
                    buckets.pop_first();
                }
            }
        }
        Ok(())
    }

    /// Takes `count` readings from the rate bucket.
    fn take(&self, token: &str, count: usize) -> Result<(), Refusal> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        // More than u32::MAX readings is more than any burst: refused below.
        let Some(n) = NonZeroU32::new(u32::try_from(count).unwrap_or(u32::MAX)) else {
            return Ok(());
        };
        match rate.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(Refusal::Limited {
                    message: format!(
                        "token {token} is over its rate of {} readings per second (burst {}); \
                         nothing was accepted, retry later",
                        self.limits.readings_per_second.map_or(0, NonZeroU32::get),
                        self.burst()
                    ),
                    limit: "readings_per_second",
                    retry_after: wait.max(Duration::from_secs(1)),
                })
            }
            Err(_) => Err(over_burst(token, count, self.limits)),
        }
    }

    fn burst(&self) -> u32 {
        burst_of(self.limits)
    }
}

fn burst_of(limits: TokenLimits) -> u32 {
    limits
        .burst
        .or(limits.readings_per_second)
        .map_or(0, NonZeroU32::get)
}

fn over_burst(token: &str, count: usize, limits: TokenLimits) -> Refusal {
    Refusal::Limited {
        message: format!(
            "a batch of {count} readings is more than token {token} may send at once (burst {}); \
             send smaller batches",
            burst_of(limits)
        ),
        limit: "burst",
        retry_after: Duration::from_secs(1),
    }
}

type Fresh = HashMap<(ServiceName, TimeBucket), HashSet<u64>>;

/// The series of `readings` not yet known, per service and bucket; refused when one bucket would
/// go past `cap`.
fn new_series(
    known: &HashMap<ServiceName, BTreeMap<TimeBucket, HashSet<u64>>>,
    readings: &[Reading],
    width: BucketWidth,
    cap: NonZeroU32,
    token: &str,
) -> Result<Fresh, Refusal> {
    let mut fresh: Fresh = HashMap::new();
    for reading in readings {
        let (service, bucket, hash) = series_of(reading, width);
        let seen = known
            .get(service)
            .and_then(|b| b.get(&bucket))
            .is_some_and(|set| set.contains(&hash));
        if seen {
            continue;
        }
        let added = fresh.entry((service.clone(), bucket)).or_default();
        added.insert(hash);
        let before = known
            .get(service)
            .and_then(|b| b.get(&bucket))
            .map_or(0, HashSet::len);
        if before + added.len() > cap.get() as usize {
            let next = bucket.epoch_seconds() * 1000 + width.millis();
            let wait = (next - TimestampMs::now().millis()).max(1000);
            return Err(Refusal::Limited {
                message: format!(
                    "token {token} may write at most {cap} distinct series of service {service} \
                     per time bucket (max_series_per_bucket), and this batch goes past it in the \
                     bucket starting {}; nothing was accepted",
                    TimestampMs::from_millis(bucket.epoch_seconds() * 1000).to_rfc3339()
                ),
                limit: "max_series_per_bucket",
                retry_after: Duration::from_millis(wait.unsigned_abs()),
            });
        }
    }
    Ok(fresh)
}

/// A reading's service, bucket and series hash.
fn series_of(reading: &Reading, width: BucketWidth) -> (&ServiceName, TimeBucket, u64) {
    let mut hasher = DefaultHasher::new();
    match reading {
        Reading::Api(r) => {
            (
                "api",
                r.instance.as_str(),
                r.method.as_str(),
                r.path.as_str(),
            )
                .hash(&mut hasher);
            (&r.service, r.bucket(width), hasher.finish())
        }
        Reading::Host(r) => {
            ("host", r.instance.as_str()).hash(&mut hasher);
            (&r.service, r.bucket(width), hasher.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiPath, ApiReading, HttpMethod, InstanceName, ReadingId, StatusCode};

    fn api(service: &str, path: &str, at: i64) -> Reading {
        Reading::Api(ApiReading {
            id: ReadingId::new(),
            service: ServiceName::parse(service).unwrap(),
            instance: InstanceName::parse("i-1").unwrap(),
            method: HttpMethod::parse("GET").unwrap(),
            path: ApiPath::parse(path).unwrap(),
            code: StatusCode::parse(200).unwrap(),
            duration_ms: 1.0,
            count: 1,
            timestamp: TimestampMs::from_millis(at),
        })
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn limits(rate: Option<u32>, burst: Option<u32>, series: Option<u32>) -> TokenLimits {
        TokenLimits {
            readings_per_second: rate.and_then(NonZeroU32::new),
            burst: burst.and_then(NonZeroU32::new),
            max_series_per_bucket: series.and_then(NonZeroU32::new),
        }
    }

    fn limit_of(outcome: Result<(), Refusal>) -> Option<&'static str> {
        match outcome {
            Ok(()) => None,
            Err(Refusal::Limited {
                limit, retry_after, ..
            }) => {
                assert!(retry_after >= Duration::from_secs(1));
                Some(limit)
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_series_cap_holds_per_service_and_bucket_and_known_series_pass() {
        let width = BucketWidth::from_seconds(3600).unwrap();
        let state = LimitState::new(limits(None, None, Some(2)));
        let hour = 3_600_000;
        let now = TimestampMs::now().millis() / hour * hour;
        let admit = |readings: &[Reading]| limit_of(state.admit("t", readings, width));
        assert_eq!(admit(&[api("a", "/1", now), api("a", "/2", now)]), None);
        // A third series is refused, with the batch's known series: nothing is counted.
        assert_eq!(
            admit(&[api("a", "/1", now), api("a", "/3", now)]),
            Some("max_series_per_bucket")
        );
        assert_eq!(admit(&[api("a", "/2", now), api("a", "/1", now + 1)]), None);
        // Another service and another bucket have caps of their own.
        assert_eq!(admit(&[api("b", "/3", now), api("b", "/4", now)]), None);
        assert_eq!(
            admit(&[api("a", "/3", now - hour), api("a", "/4", now - hour)]),
            None
        );
        assert_eq!(
            admit(&[api("a", "/5", now - hour)]),
            Some("max_series_per_bucket")
        );
    }

    #[test]
    fn the_rate_refuses_a_batch_past_the_bucket_and_one_past_the_burst() {
        let width = BucketWidth::from_seconds(3600).unwrap();
        let now = TimestampMs::now().millis();
        let batch = |n: usize| vec![api("a", "/1", now); n];
        let state = LimitState::refilled_over(limits(Some(1), Some(3), None), HOUR);
        assert_eq!(limit_of(state.admit("t", &batch(4), width)), Some("burst"));
        assert_eq!(limit_of(state.admit("t", &batch(3), width)), None);
        assert_eq!(
            limit_of(state.admit("t", &batch(3), width)),
            Some("readings_per_second")
        );
        let unlimited = LimitState::new(TokenLimits::default());
        assert_eq!(limit_of(unlimited.admit("t", &batch(10_000), width)), None);
    }

    #[test]
    fn a_batch_refused_by_the_rate_adds_no_series() {
        let width = BucketWidth::from_seconds(3600).unwrap();
        let now = TimestampMs::now().millis();
        let state = LimitState::refilled_over(limits(Some(1), Some(1), Some(1)), HOUR);
        assert_eq!(
            limit_of(state.admit("t", &[api("a", "/1", now)], width)),
            None
        );
        assert_eq!(
            limit_of(state.admit("t", &[api("a", "/1", now)], width)),
            Some("readings_per_second")
        );
        let known = state.series.lock().unwrap();
        assert_eq!(
            known
                .values()
                .flat_map(|b| b.values())
                .map(HashSet::len)
                .sum::<usize>(),
            1
        );
    }
}
