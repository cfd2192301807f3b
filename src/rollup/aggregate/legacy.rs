//! API aggregates as rollup rows stored them before the sparse encoding (tag 0, see the parent
//! module): read only. The aggregate's sketch is dense (`DenseSketch`), and its PromQL parts,
//! when the row has them, follow the aggregate with dense buckets.

use serde::Deserialize;

use super::ApiAgg;
use crate::query::sketch::DenseSketch;
use crate::rollup::prom::{Part, PromParts, BUCKETS};

/// An API aggregate of tag 0, without its appended parts.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct LegacyApiAgg {
    count: u64,
    server_errors: u64,
    client_errors: u64,
    duration_sum: f64,
    sketch: DenseSketch,
}

impl From<LegacyApiAgg> for ApiAgg {
    fn from(old: LegacyApiAgg) -> Self {
        Self {
            count: old.count,
            server_errors: old.server_errors,
            client_errors: old.client_errors,
            duration_sum: old.duration_sum,
            sketch: old.sketch.into(),
            prom: None,
        }
    }
}

/// The PromQL parts a tag 0 row appended.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct LegacyPromParts {
    buckets: [u64; BUCKETS],
    at_start: Option<LegacyPart>,
}

/// A [`Part`] of [`LegacyPromParts`].
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct LegacyPart {
    count: u64,
    duration_sum: f64,
    buckets: [u64; BUCKETS],
}

impl From<LegacyPromParts> for PromParts {
    fn from(old: LegacyPromParts) -> Self {
        Self {
            buckets: old.buckets,
            at_start: old.at_start.map(|part| {
                Box::new(Part {
                    count: part.count,
                    duration_sum: part.duration_sum,
                    buckets: part.buckets,
                })
            }),
        }
    }
}

/// What a version before tag 2 wrote for `agg`: the aggregate as tag 0, then its parts.
#[cfg(test)]
pub fn encode(agg: &super::Agg) -> Vec<u8> {
    #[derive(serde::Serialize)]
    enum Old<'a> {
        Api(LegacyApiAgg),
        Host(&'a super::HostAgg),
    }
    let (old, parts) = match agg {
        super::Agg::Api(api) => {
            let old = LegacyApiAgg {
                count: api.count,
                server_errors: api.server_errors,
                client_errors: api.client_errors,
                duration_sum: api.duration_sum,
                sketch: api.sketch.clone().into(),
            };
            let parts = api.prom.as_ref().map(|p| LegacyPromParts {
                buckets: p.buckets,
                at_start: p.at_start.as_ref().map(|part| LegacyPart {
                    count: part.count,
                    duration_sum: part.duration_sum,
                    buckets: part.buckets,
                }),
            });
            (Old::Api(old), parts)
        }
        super::Agg::Host(host) => (Old::Host(host), None),
    };
    let bytes = postcard::to_allocvec(&old).expect("serializes");
    match parts {
        Some(parts) => postcard::to_extend(&parts, bytes).expect("serializes"),
        None => bytes,
    }
}
