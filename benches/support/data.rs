//! Realistic, reproducible readings: a fleet of services with instances and endpoints, a skewed
//! endpoint popularity, a realistic status mix and log-normal durations.
//!
//! Everything is generated from one seed before any timing starts, and the request bodies are
//! serialized up front, so the load generator spends no CPU on JSON while it is measured.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// SplitMix64: tiny, fast and good enough for synthetic data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Picks from `(weight, value)` pairs.
    pub fn weighted<T: Copy>(&mut self, table: &[(f64, T)]) -> T {
        let total: f64 = table.iter().map(|(w, _)| w).sum();
        let mut x = self.unit() * total;
        for &(w, v) in table {
            if x < w {
                return v;
            }
            x -= w;
        }
        table[table.len() - 1].1
    }
}

/// The shape of the generated fleet.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub services: usize,
    pub instances: usize,
    pub paths: usize,
    /// Timestamps are spread over the last `spread_seconds`.
    pub spread_seconds: i64,
    pub seed: u64,
}

impl Shape {
    /// `SERVICES` (default `services`), `INSTANCES` (6), `PATHS` (20) and `SEED` (42) from the
    /// environment, timestamps over the last `spread_seconds`.
    pub fn from_env(services: usize, spread_seconds: i64) -> anyhow::Result<Self> {
        use super::options::env_or;
        Ok(Self {
            services: env_or("SERVICES", services)?,
            instances: env_or("INSTANCES", 6)?,
            paths: env_or("PATHS", 20)?,
            spread_seconds,
            seed: env_or("SEED", 42)?,
        })
    }
}

/// One endpoint of a service.
pub struct Endpoint {
    pub method: &'static str,
    pub path: String,
    /// Median duration, ms.
    pub median_ms: f64,
    /// Relative popularity (Zipf-like).
    pub weight: f64,
}

/// A service with its instances and endpoints.
pub struct Service {
    pub name: String,
    pub instances: Vec<String>,
    pub endpoints: Vec<Endpoint>,
}

/// One generated API reading, by reference into the fleet.
#[derive(Debug, Clone, Copy)]
pub struct GenReading {
    pub service: u16,
    pub instance: u16,
    pub endpoint: u16,
    pub code: u16,
    pub duration_ms: f64,
    pub count: u32,
    pub timestamp_ms: i64,
}

/// The fleet, the readings and the request bodies.
pub struct Dataset {
    pub fleet: Vec<Service>,
    pub readings: Vec<GenReading>,
    /// `readings` in order, `batch` per body, as `{"api": [...]}` JSON.
    pub bodies: Vec<Bytes>,
}

const SERVICE_NAMES: &[&str] = &[
    "checkout",
    "payments",
    "catalog",
    "search",
    "users",
    "inventory",
    "shipping",
    "auth",
    "notifications",
    "reviews",
    "recommendations",
    "pricing",
];
const RESOURCES: &[&str] = &[
    "orders",
    "carts",
    "items",
    "products",
    "accounts",
    "sessions",
    "invoices",
    "refunds",
    "addresses",
    "coupons",
    "shipments",
    "profiles",
    "tokens",
    "reviews",
    "prices",
    "stocks",
];

fn fleet(shape: &Shape, rng: &mut Rng) -> Vec<Service> {
    (0..shape.services)
        .map(|s| {
            let name = SERVICE_NAMES
                .get(s)
                .map_or_else(|| format!("service-{s}"), |n| (*n).to_owned());
            let deployment = format!("{:09x}", rng.next_u64() & 0xf_ffff_ffff);
            let instances = (0..shape.instances)
                .map(|_| {
                    let pod: String = (0..5)
                        .map(|_| (b'a' + rng.below(26) as u8) as char)
                        .collect();
                    format!("{name}-{deployment}-{pod}")
                })
                .collect();
            let endpoints = (0..shape.paths)
                .map(|p| {
                    let resource = RESOURCES[(s * 7 + p) % RESOURCES.len()];
                    let (method, path) = match p % 5 {
                        0 => ("GET", format!("/api/v1/{resource}")),
                        1 => ("GET", format!("/api/v1/{resource}/{{id}}")),
                        2 => ("POST", format!("/api/v1/{resource}")),
                        3 => ("PUT", format!("/api/v1/{resource}/{{id}}")),
                        _ => (
                            if p % 10 == 4 { "DELETE" } else { "GET" },
                            format!("/api/v2/{resource}/{{id}}/history"),
                        ),
                    };
                    let path = if p >= 5 * RESOURCES.len() {
                        format!("{path}/{p}")
                    } else {
                        path
                    };
                    Endpoint {
                        method,
                        path,
                        median_ms: 3.0 + 120.0 * rng.unit() * rng.unit(),
                        weight: 1.0 / (p as f64 + 1.0),
                    }
                })
                .collect();
            Service {
                name,
                instances,
                endpoints,
            }
        })
        .collect()
}

fn status(rng: &mut Rng, method: &str) -> u16 {
    let ok = match method {
        "POST" => 201,
        "DELETE" => 204,
        _ => 200,
    };
    rng.weighted(&[
        (90.0, ok),
        (2.0, 304),
        (3.0, 400),
        (1.0, 401),
        (0.5, 403),
        (2.0, 404),
        (0.5, 409),
        (0.6, 500),
        (0.3, 502),
        (0.1, 504),
    ])
}

/// One reading of a request body. Read back by the pipeline bench as its baseline: the same
/// bytes into plain borrowed strings and numbers, nothing checked.
#[derive(Serialize, Deserialize)]
pub struct JsonReading<'a> {
    pub service: &'a str,
    pub instance: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub code: u16,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "is_one", default = "one")]
    pub count: u32,
    pub timestamp: i64,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn one() -> u32 {
    1
}

/// A request body: `{"api": [...]}`.
#[derive(Serialize, Deserialize)]
pub struct JsonBody<'a> {
    #[serde(borrow)]
    pub api: Vec<JsonReading<'a>>,
}

/// Per-service endpoint weights, for [`Rng::weighted`].
fn endpoint_weights(fleet: &[Service]) -> Vec<Vec<(f64, u16)>> {
    fleet
        .iter()
        .map(|s| {
            s.endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| (e.weight, i as u16))
                .collect()
        })
        .collect()
}

/// One reading of `fleet`, timestamped in the `spread_seconds` before `now_ms`.
fn gen_reading(
    fleet: &[Service],
    weights: &[Vec<(f64, u16)>],
    rng: &mut Rng,
    spread_seconds: i64,
    now_ms: i64,
) -> GenReading {
    let service = rng.below(fleet.len());
    let endpoint = rng.weighted(&weights[service]);
    let e = &fleet[service].endpoints[endpoint as usize];
    let code = status(rng, e.method);
    let mut duration = e.median_ms * (0.6 * rng.normal()).exp();
    if code >= 500 {
        duration *= 5.0;
    }
    // Milliseconds with microsecond resolution, as agents usually report them.
    let duration_ms = ((duration * 1000.0).round() / 1000.0).min(60_000.0);
    let count = if rng.unit() < 0.05 {
        2 + rng.below(50) as u32
    } else {
        1
    };
    GenReading {
        service: service as u16,
        instance: rng.below(fleet[service].instances.len()) as u16,
        endpoint,
        code,
        duration_ms,
        count,
        timestamp_ms: now_ms - (rng.unit() * spread_seconds as f64 * 1000.0) as i64,
    }
}

/// `{"api": [...]}` of `chunk`.
fn body(fleet: &[Service], chunk: &[GenReading]) -> Bytes {
    let api = chunk
        .iter()
        .map(|r| {
            let s = &fleet[r.service as usize];
            let e = &s.endpoints[r.endpoint as usize];
            JsonReading {
                service: &s.name,
                instance: &s.instances[r.instance as usize],
                method: e.method,
                path: &e.path,
                code: r.code,
                duration_ms: r.duration_ms,
                count: r.count,
                timestamp: r.timestamp_ms,
            }
        })
        .collect();
    Bytes::from(serde_json::to_vec(&JsonBody { api }).expect("serializable"))
}

impl Dataset {
    /// `total` readings (rounded up to whole batches) with timestamps in the last
    /// `shape.spread_seconds` before `now_ms`.
    pub fn generate(shape: &Shape, total: usize, batch: usize, now_ms: i64) -> Dataset {
        let mut rng = Rng::new(shape.seed);
        let fleet = fleet(shape, &mut rng);
        let weights = endpoint_weights(&fleet);
        let total = total.div_ceil(batch) * batch;
        let readings: Vec<GenReading> = (0..total)
            .map(|_| gen_reading(&fleet, &weights, &mut rng, shape.spread_seconds, now_ms))
            .collect();
        let bodies = readings.chunks(batch).map(|c| body(&fleet, c)).collect();
        Dataset {
            fleet,
            readings,
            bodies,
        }
    }

    pub fn names(&self, r: &GenReading) -> (&str, &str, &str, &str) {
        let s = &self.fleet[r.service as usize];
        let e = &s.endpoints[r.endpoint as usize];
        (
            &s.name,
            &s.instances[r.instance as usize],
            e.method,
            &e.path,
        )
    }

    /// Fingerprint of a generated reading, comparable with [`fingerprint`] of a stored row.
    pub fn fingerprint(&self, r: &GenReading) -> u64 {
        let (service, instance, method, path) = self.names(r);
        fingerprint(
            service,
            instance,
            method,
            path,
            i32::from(r.code),
            r.timestamp_ms,
            r.duration_ms,
            i32::try_from(r.count).unwrap_or(i32::MAX),
        )
    }

    pub fn body_bytes(&self) -> usize {
        self.bodies.iter().map(Bytes::len).sum()
    }

    /// Distinct series (service, instance, method, path) the fleet can produce.
    pub fn series(&self) -> usize {
        self.fleet
            .iter()
            .map(|s| s.instances.len() * s.endpoints.len())
            .sum()
    }
}

/// A content fingerprint of one reading: everything but its server-assigned id.
#[allow(clippy::too_many_arguments)]
pub fn fingerprint(
    service: &str,
    instance: &str,
    method: &str,
    path: &str,
    code: i32,
    timestamp_ms: i64,
    duration_ms: f64,
    count: i32,
) -> u64 {
    let mut h = DefaultHasher::new();
    (service, instance, method, path, code, timestamp_ms).hash(&mut h);
    duration_ms.to_bits().hash(&mut h);
    count.hash(&mut h);
    h.finish()
}

/// The same fleet and reading mix as [`Dataset`], generated one request body at a time and
/// kept nowhere: for runs too large to hold in memory (tens of millions of readings).
///
/// Time moves forward with the body's index, as in a live fleet: the `spread_seconds` before
/// `now_ms` are cut into one slice per body, and body `i` holds readings of slice `i` only.
pub struct Stream {
    fleet: Vec<Service>,
    weights: Vec<Vec<(f64, u16)>>,
    shape: Shape,
    now_ms: i64,
    bodies: usize,
}

impl Stream {
    /// A stream of `bodies` bodies ending at `now_ms`.
    pub fn new(shape: &Shape, now_ms: i64, bodies: usize) -> Stream {
        let fleet = fleet(shape, &mut Rng::new(shape.seed));
        Stream {
            weights: endpoint_weights(&fleet),
            fleet,
            shape: *shape,
            now_ms,
            bodies: bodies.max(1),
        }
    }

    /// Body number `index` (`batch` readings): the same body for the same index on every call.
    pub fn body(&self, index: usize, batch: usize) -> Bytes {
        let mut rng =
            Rng::new(self.shape.seed ^ (index as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let slice_ms = (self.shape.spread_seconds * 1000 / self.bodies as i64).max(1);
        let later_slices = (self.bodies - 1 - index.min(self.bodies - 1)) as i64;
        let slice_end = self.now_ms - later_slices * slice_ms;
        let chunk: Vec<GenReading> = (0..batch)
            .map(|_| {
                let r = gen_reading(&self.fleet, &self.weights, &mut rng, 0, 0);
                GenReading {
                    timestamp_ms: slice_end - (rng.unit() * slice_ms as f64) as i64,
                    ..r
                }
            })
            .collect();
        body(&self.fleet, &chunk)
    }

    /// Distinct series (service, instance, method, path) the fleet can produce.
    pub fn series(&self) -> usize {
        self.fleet
            .iter()
            .map(|s| s.instances.len() * s.endpoints.len())
            .sum()
    }

    pub fn service_name(&self, index: usize) -> &str {
        &self.fleet[index].name
    }
}
