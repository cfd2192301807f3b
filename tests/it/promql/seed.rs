//! The readings the PromQL tests query, and the answers computed from them here, without the
//! engine: plain loops over the readings.
//!
//! Three hours of `shop` (and some `other`, which must never leak in) ending at the last full
//! hour: four paths, two of them non-ASCII, summaries with `count` up to 20, durations from
//! 0.2 ms to 8 s. Host samples of `i-1` and `i-2` every 30 s, `i-2` silent for the middle hour.

use timebucket::model::{
    ApiPath, ApiReading, HostGauges, HostReading, HttpMethod, InstanceName, Reading, ReadingId,
    ServiceName, StatusCode, TimestampMs,
};
use timebucket::store::{SeriesSeen, Store, WriteBatch};

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;
pub const PATHS: [&str; 4] = ["/cart", "/users/{id}", "/café/ñ", "/用户/{id}"];
/// The bucket bounds of the duration histogram, seconds (OpenTelemetry's defaults).
pub const LE: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// What was written.
pub struct Seed {
    /// The first instant with readings (an hour start).
    pub t0: i64,
    pub api: Vec<ApiReading>,
    pub host: Vec<HostReading>,
}

impl Seed {
    /// Three hours ending at the last full hour before now.
    pub fn generate() -> Self {
        let t0 = TimestampMs::now().millis().div_euclid(HOUR) * HOUR - 3 * HOUR;
        let mut rng = fastrand::Rng::with_seed(14);
        let mut api = Vec::new();
        let mut at = t0;
        while at < t0 + 3 * HOUR {
            at += rng.i64(1_000..14_000);
            let service = if rng.u8(0..10) == 0 { "other" } else { "shop" };
            api.push(ApiReading {
                id: ReadingId::new(),
                service: ServiceName::parse(service).unwrap(),
                instance: InstanceName::parse(["i-1", "i-2"][rng.usize(0..2)]).unwrap(),
                method: HttpMethod::parse(["GET", "POST"][rng.usize(0..2)]).unwrap(),
                path: ApiPath::parse(PATHS[rng.usize(0..4)]).unwrap(),
                code: StatusCode::parse([200, 200, 200, 404, 500][rng.usize(0..5)]).unwrap(),
                duration_ms: ((rng.f64() * 10.5).exp() * 0.2).min(8_000.0),
                count: if rng.u8(0..3) == 0 {
                    rng.u32(2..=20)
                } else {
                    1
                },
                timestamp: TimestampMs::from_millis(at.min(t0 + 3 * HOUR)),
            });
        }
        let mut host = Vec::new();
        for (n, instance) in ["i-1", "i-2"].into_iter().enumerate() {
            for k in 0..360 {
                let at = t0 + k * 30_000 + n as i64 * 1_000;
                if instance == "i-2" && (t0 + HOUR..t0 + 2 * HOUR).contains(&at) {
                    continue;
                }
                host.push(HostReading {
                    id: ReadingId::new(),
                    service: ServiceName::parse("shop").unwrap(),
                    instance: InstanceName::parse(instance).unwrap(),
                    timestamp: TimestampMs::from_millis(at),
                    gauges: HostGauges {
                        cpu_percent: Some((rng.f64() * 1000.0).round() / 10.0),
                        mem_used_bytes: Some(rng.i64(1 << 28..1 << 30)),
                        mem_total_bytes: Some(1 << 31),
                        available: Some(rng.u8(0..8) != 0),
                        ..HostGauges::default()
                    },
                });
            }
        }
        Self { t0, api, host }
    }

    /// Writes every reading into `store`, in shuffled batches.
    pub async fn write<S: Store>(&self, store: &S) {
        let mut readings: Vec<Reading> = self
            .api
            .iter()
            .cloned()
            .map(Reading::Api)
            .chain(self.host.iter().cloned().map(Reading::Host))
            .collect();
        fastrand::Rng::with_seed(3).shuffle(&mut readings);
        // With their rollups, as the flusher writes them (a new store's rollups cover every
        // reading, so queries read them where they can), each batch a piece of its own.
        let writer = uuid::Uuid::new_v4();
        for (i, chunk) in readings.chunks(500).enumerate() {
            let piece = timebucket::rollup::Piece {
                writer,
                segment: i as u64,
                start: 0,
                last: 0,
            };
            let mut batch =
                WriteBatch::build(chunk.to_vec(), store.settings(), &SeriesSeen::new(0));
            batch.rollups = timebucket::rollup::partials(chunk, piece, TimestampMs::from_millis(0));
            store.write(&batch).await.unwrap();
        }
    }

    /// The `shop` API readings in the left-open window `(lo, hi]` passing `keep`.
    pub fn shop_in<'a>(
        &'a self,
        (lo, hi): (i64, i64),
        keep: impl Fn(&ApiReading) -> bool + 'a,
    ) -> impl Iterator<Item = &'a ApiReading> + 'a {
        self.api.iter().filter(move |r| {
            let t = r.timestamp.millis();
            r.service.as_str() == "shop" && lo < t && t <= hi && keep(r)
        })
    }

    /// Requests (sum of `count`) in `(lo, hi]` passing `keep`; `None` when no reading.
    pub fn requests(&self, window: (i64, i64), keep: impl Fn(&ApiReading) -> bool) -> Option<f64> {
        let counts: Vec<u32> = self.shop_in(window, keep).map(|r| r.count).collect();
        (!counts.is_empty()).then(|| counts.iter().map(|&c| f64::from(c)).sum())
    }

    /// The newest host sample of `instance` in `(at − 5m, at]`.
    pub fn host_at(&self, instance: &str, at: i64) -> Option<&HostReading> {
        self.host
            .iter()
            .filter(|h| h.instance.as_str() == instance)
            .filter(|h| at - 5 * MINUTE < h.timestamp.millis() && h.timestamp.millis() <= at)
            .max_by_key(|h| h.timestamp)
    }

    /// The host samples of `instance` in `(lo, hi]`.
    pub fn host_in(&self, instance: &str, (lo, hi): (i64, i64)) -> Vec<&HostReading> {
        self.host
            .iter()
            .filter(|h| h.instance.as_str() == instance)
            .filter(|h| lo < h.timestamp.millis() && h.timestamp.millis() <= hi)
            .collect()
    }
}

/// Cumulative bucket counts `(le, requests with seconds ≤ le)` of `readings`, `+Inf` last.
pub fn buckets<'a>(readings: impl Iterator<Item = &'a ApiReading>) -> Vec<(f64, f64)> {
    let readings: Vec<&ApiReading> = readings.collect();
    LE.iter()
        .copied()
        .chain([f64::INFINITY])
        .map(|le| {
            let n: u32 = readings
                .iter()
                .filter(|r| r.duration_ms / 1000.0 <= le)
                .map(|r| r.count)
                .sum();
            (le, f64::from(n))
        })
        .collect()
}

/// Prometheus' `histogram_quantile` over cumulative buckets sorted by bound, `+Inf` last.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    let total = buckets.last().unwrap().1;
    quantile_at_rank(q * total, buckets)
}

/// The other answer `histogram_quantile` may give over *rates* when the rank `q × total` falls
/// exactly on a bucket's count: rates are counts divided by the range, summed in some order, so
/// the last bit decides whether the rank is reached in that bucket or just after it.
pub fn histogram_quantile_past_boundary(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last().unwrap().1;
    let rank = q * total;
    buckets[..buckets.len() - 1]
        .iter()
        .any(|&(_, c)| c == rank)
        .then(|| quantile_at_rank(rank * (1.0 + 1e-12), buckets))
}

fn quantile_at_rank(rank: f64, buckets: &[(f64, f64)]) -> f64 {
    let total = buckets.last().unwrap().1;
    if total == 0.0 {
        return f64::NAN;
    }
    let b = buckets.iter().position(|&(_, c)| c >= rank).unwrap();
    if b == buckets.len() - 1 {
        return buckets[b - 1].0;
    }
    let (lower, below) = if b == 0 { (0.0, 0.0) } else { buckets[b - 1] };
    let (upper, count) = buckets[b];
    lower + (upper - lower) * (rank - below) / (count - below)
}

/// The exact request-weighted nearest-rank quantile of durations, seconds.
pub fn exact_quantile<'a>(q: f64, readings: impl Iterator<Item = &'a ApiReading>) -> f64 {
    let mut d: Vec<(f64, u32)> = readings
        .map(|r| (r.duration_ms / 1000.0, r.count))
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u32 = d.iter().map(|x| x.1).sum();
    let rank = (q * f64::from(total)).ceil().max(1.0) as u32;
    let mut seen = 0;
    for (seconds, count) in d {
        seen += count;
        if seen >= rank {
            return seconds;
        }
    }
    unreachable!("the rank is within the total")
}
