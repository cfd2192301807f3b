//! One stored rollup row per endpoint: the partials of one slot, endpoint (instance, method,
//! path; a host row's instance) and piece, one per status code, written as one CQL row whose
//! `aggs` holds every code's aggregate (migration 0004).
//!
//! Why: the node's cost of a rollup write is mostly per row (the clustering key, the memtable
//! insert, the flush and compaction of one more cell set), not per byte, and on typical traffic
//! an endpoint answers with a few codes in a minute: one row instead of one per code is about a
//! third of the rows (BENCHMARKS.md, "Rollups at ingest").
//!
//! `aggs` is postcard: a length, then per code its number (0 for host rows) and the aggregate as
//! `rollup::aggregate` serializes it; sorted by code, so the same partials give the same bytes.
//!
//! Invariant the callers keep: **every row of one stored key arrives in one `Store::write`** (a
//! piece's partials are written at once by the flusher, a (service, hour) by `rollup rebuild`, a
//! file's by `archive import`, an endpoint's compacted rows by the compactor, which plans an
//! endpoint's codes together): a stored row is overwritten whole, so a write of some codes only
//! would drop the others.

use crate::rollup::{Agg, RollupRow};

/// `rows`' `aggs` bytes: the rows of one stored key, in any order. Each pair is (code, aggregate)
/// with code 0 in host rows; the aggregates are serialized where they lie, not copied.
pub(super) fn encode(rows: &[&RollupRow]) -> Vec<u8> {
    let mut aggs: Vec<(u16, &Agg)> = rows
        .iter()
        .map(|row| (row.series.code.map_or(0, |c| c.get()), &row.agg))
        .collect();
    aggs.sort_by_key(|(code, _)| *code);
    postcard::to_allocvec(&aggs).expect("rollup aggregates always serialize")
}

/// The (code, aggregate) pairs of stored `aggs` bytes; code 0 in host rows.
pub(super) fn decode(bytes: &[u8]) -> Result<Vec<(u16, Agg)>, postcard::Error> {
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reading::sample;
    use crate::model::{ApiReading, Reading, StatusCode, TimestampMs};
    use crate::rollup::{partials, Piece};

    fn rows_of_one_endpoint() -> Vec<RollupRow> {
        let readings: Vec<Reading> = [200u16, 500, 200, 404]
            .into_iter()
            .enumerate()
            .map(|(i, code)| {
                Reading::Api(ApiReading {
                    code: StatusCode::parse(i64::from(code)).unwrap(),
                    duration_ms: 10.0 * (i + 1) as f64,
                    timestamp: TimestampMs::from_millis(sample::AT_MS + i as i64),
                    ..sample::api()
                })
            })
            .collect();
        let piece = Piece {
            writer: uuid::Uuid::from_u128(7),
            segment: 1,
            start: 0,
            last: 9,
        };
        partials(&readings, piece, TimestampMs::from_millis(0))
            .into_iter()
            .filter(|row| row.resolution == crate::rollup::Resolution::Minute)
            .collect()
    }

    #[test]
    fn every_code_comes_back_once_whatever_the_order() {
        let rows = rows_of_one_endpoint();
        assert_eq!(rows.len(), 3, "one partial per code: {rows:?}");
        let forward: Vec<&RollupRow> = rows.iter().collect();
        let backward: Vec<&RollupRow> = rows.iter().rev().collect();
        let bytes = encode(&forward);
        assert_eq!(
            bytes,
            encode(&backward),
            "the order of the rows is not stored"
        );
        let decoded = decode(&bytes).unwrap();
        assert_eq!(
            decoded.iter().map(|(code, _)| *code).collect::<Vec<_>>(),
            [200, 404, 500]
        );
        for (code, agg) in decoded {
            let row = rows
                .iter()
                .find(|r| r.series.code.map(|c| c.get()) == Some(code))
                .unwrap();
            assert_eq!(agg, row.agg);
        }
    }

    #[test]
    fn truncated_bytes_are_refused() {
        let rows = rows_of_one_endpoint();
        let bytes = encode(&rows.iter().collect::<Vec<_>>());
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
