//! Partial rollup rows: what one piece of the WAL adds to each (series, slot), and the read
//! request of one rollup partition.

use hashbrown::{Equivalent, HashMap};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::aggregate::{Agg, ApiAgg, HostAgg};
use super::Resolution;
use crate::model::kind::ALL;
use crate::model::{
    ApiPath, ApiReading, HostReading, HttpMethod, InstanceName, Reading, ServiceName, StatusCode,
    TimestampMs,
};
use crate::store::{Partition, WriteBatch};

/// The series of a rollup row: an API series with its status code, or an instance (host).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RollupSeries {
    /// The instance.
    pub instance: InstanceName,
    /// The method (API rows only).
    pub method: Option<HttpMethod>,
    /// The path (API rows only).
    pub path: Option<ApiPath>,
    /// The status code (API rows only).
    pub code: Option<StatusCode>,
}

impl RollupSeries {
    /// Whether `other` is a series of the same endpoint (instance, method and path; any
    /// code). A store may keep an endpoint's codes in one row (`store::cql`), so the compactor
    /// takes an endpoint's series together.
    pub fn same_endpoint(&self, other: &RollupSeries) -> bool {
        self.instance == other.instance && self.method == other.method && self.path == other.path
    }
}

/// The WAL piece a partial was aggregated from (see the module note of `rollup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Piece {
    /// The writer (one per WAL directory).
    pub writer: Uuid,
    /// The WAL segment.
    pub segment: u64,
    /// Offset of the piece's first record: part of the key.
    pub start: u64,
    /// Offset of the piece's last record: a value, used to find contained pieces.
    pub last: u64,
}

impl Piece {
    /// True when `other` lies within this piece (same writer and segment).
    pub fn contains(&self, other: &Piece) -> bool {
        self.writer == other.writer
            && self.segment == other.segment
            && self.start <= other.start
            && other.last <= self.last
    }
}

/// One partial rollup row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollupRow {
    /// The service.
    pub service: ServiceName,
    /// The level.
    pub resolution: Resolution,
    /// The slot's start.
    pub slot: TimestampMs,
    /// The series.
    pub series: RollupSeries,
    /// Where in the WAL it came from.
    pub piece: Piece,
    /// The aggregate (its variant is the kind). Last, so that the PromQL parts a row of an
    /// older format appended to its aggregate are the row's last bytes.
    pub agg: Agg,
}

impl RollupRow {
    /// A whole row's stored bytes (postcard; the embedded store's value).
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("a rollup row always serializes")
    }

    /// Reads [`RollupRow::to_bytes`] back, and rows of the older formats (see
    /// `rollup::aggregate`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let (mut row, rest): (RollupRow, &[u8]) = postcard::take_from_bytes(bytes)?;
        row.agg.read_extension(rest)?;
        Ok(row)
    }
}

/// Every partial row of one rollup partition (service, kind, level, partition start) whose
/// slot is in `[from, to]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRequest {
    /// The service.
    pub service: ServiceName,
    /// The kind's index.
    pub kind: usize,
    /// The level.
    pub resolution: Resolution,
    /// The partition's start, epoch seconds ([`Resolution::partition_of`]).
    pub partition: i64,
    /// The first slot, inclusive.
    pub from: TimestampMs,
    /// The last slot, inclusive.
    pub to: TimestampMs,
}

/// A cell's key: the service, the minute slot and the series.
type CellKey = (ServiceName, TimestampMs, RollupSeries);

/// A [`CellKey`], borrowed from a reading, so that adding to an existing cell copies no
/// name (`HashMap::entry_ref` copies them only for a new cell, through `From`). Fields in
/// `CellKey`'s order (the series' fields flattened), so the hashes agree.
#[derive(Hash)]
struct CellKeyRef<'a> {
    service: &'a ServiceName,
    slot: TimestampMs,
    instance: &'a InstanceName,
    method: Option<&'a HttpMethod>,
    path: Option<&'a ApiPath>,
    code: Option<StatusCode>,
}

impl Equivalent<CellKey> for CellKeyRef<'_> {
    fn equivalent(&self, (service, slot, series): &CellKey) -> bool {
        self.slot == *slot
            && *self.service == *service
            && *self.instance == series.instance
            && self.method == series.method.as_ref()
            && self.path == series.path.as_ref()
            && self.code == series.code
    }
}

impl From<&CellKeyRef<'_>> for CellKey {
    fn from(key: &CellKeyRef<'_>) -> Self {
        let series = RollupSeries {
            instance: key.instance.clone(),
            method: key.method.cloned(),
            path: key.path.cloned(),
            code: key.code,
        };
        (key.service.clone(), key.slot, series)
    }
}

/// The minute aggregates of some readings, per (service, minute, series), before they are
/// given the piece they came from: the flusher adds the readings of each batch it stored and
/// turns the cells into rows of both levels once the piece ends.
///
/// Why only minutes: an hour's partial is the merge of its minutes' (counts, sums and sketches
/// merge exactly; an hour keeps as at its start only what its first minute has at its start), so
/// each reading is looked up and aggregated once instead of once per level, and the few hour
/// aggregates are merged from the minute ones when the piece ends.
#[derive(Debug, Default)]
pub struct Cells {
    api: HashMap<CellKey, ApiCell>,
    host: HashMap<CellKey, HostAgg>,
}

impl Cells {
    /// The cells of the readings of `readings` at or after `since` (a whole hour, so a slot is
    /// either wholly in or out).
    pub fn of(readings: &[Reading], since: TimestampMs) -> Self {
        let mut cells = Cells::default();
        for reading in readings {
            cells.add(reading, since);
        }
        cells
    }

    /// How many aggregates (series × minute) the cells hold.
    pub fn cell_count(&self) -> usize {
        self.api.len() + self.host.len()
    }

    /// Adds `reading` to its minute, unless it is before `since`.
    pub fn add(&mut self, reading: &Reading, since: TimestampMs) {
        match reading {
            Reading::Api(r) => self.add_api(r, since),
            Reading::Host(r) => self.add_host(r, since),
        }
    }

    /// Adds every reading `batch` writes, unless it is before `since`: the flusher adds each
    /// batch the store took straight into the cells of its piece, so no cells are made per
    /// batch only to be merged into the piece's (at a few readings per cell and batch, those
    /// cells' allocations and merges cost as much as the aggregation itself).
    pub fn add_batch(&mut self, batch: &WriteBatch, since: TimestampMs) {
        // A kind added to the model needs its cells here (and in `add`, which the compiler
        // checks): this stops the build until it has them.
        const _: () = assert!(ALL.len() == 2, "a new reading kind needs rollup cells");
        for r in rows(&batch.kinds.get::<ApiReading>().partitions) {
            self.add_api(r, since);
        }
        for r in rows(&batch.kinds.get::<HostReading>().partitions) {
            self.add_host(r, since);
        }
    }

    fn add_api(&mut self, r: &ApiReading, since: TimestampMs) {
        if r.timestamp < since {
            return;
        }
        let slot = Resolution::Minute.slot_of(r.timestamp);
        let key = CellKeyRef {
            service: &r.service,
            slot,
            instance: &r.instance,
            method: Some(&r.method),
            path: Some(&r.path),
            code: Some(r.code),
        };
        self.api
            .entry_ref(&key)
            .or_default()
            .add(r, slot == r.timestamp);
    }

    fn add_host(&mut self, r: &HostReading, since: TimestampMs) {
        if r.timestamp < since {
            return;
        }
        let key = CellKeyRef {
            service: &r.service,
            slot: Resolution::Minute.slot_of(r.timestamp),
            instance: &r.instance,
            method: None,
            path: None,
            code: None,
        };
        self.host.entry_ref(&key).or_default().add(r);
    }

    /// The partial rows of these cells, of both levels, all read from `piece` of the WAL.
    pub fn into_rows(self, piece: Piece) -> Vec<RollupRow> {
        let api = self.api.into_iter().map(|(key, cell)| {
            let code = key.2.code.expect("an API cell's series has its code");
            (key, cell.into_agg(code))
        });
        let mut rows = Vec::with_capacity(self.host.len() + api.len());
        with_hours(api, piece, Agg::Api, &mut rows);
        with_hours(self.host.into_iter(), piece, Agg::Host, &mut rows);
        rows
    }
}

/// An aggregate of a minute, merged into its hour's.
trait Minute: Default {
    /// Adds `self` to `hour`'s aggregate; `same_start`: the minute is the hour's first.
    fn merge_into(&self, hour: &mut Self, same_start: bool);

    /// Drops what a merged hour holds beyond its contents: a row waits for its write.
    fn shrink_to_fit(&mut self) {}
}

impl Minute for ApiAgg {
    fn merge_into(&self, hour: &mut Self, same_start: bool) {
        hour.merge_finer(self, same_start);
    }

    fn shrink_to_fit(&mut self) {
        self.sketch.shrink_to_fit();
    }
}

impl Minute for HostAgg {
    fn merge_into(&self, hour: &mut Self, _same_start: bool) {
        hour.merge(self);
    }
}

/// Pushes onto `rows` the minute rows of `minutes` and the hour rows merged from them.
fn with_hours<A: Minute>(
    minutes: impl Iterator<Item = (CellKey, A)>,
    piece: Piece,
    wrap: fn(A) -> Agg,
    rows: &mut Vec<RollupRow>,
) {
    let row = |resolution, (service, slot, series): CellKey, agg| RollupRow {
        service,
        resolution,
        slot,
        series,
        piece,
        agg: wrap(agg),
    };
    let mut hours: HashMap<CellKey, A> = HashMap::new();
    for (key, agg) in minutes {
        let (service, minute, series) = &key;
        let hour = Resolution::Hour.slot_of(*minute);
        // Borrowed: the names are copied once per hour, not once per minute.
        let hour_key = CellKeyRef {
            service,
            slot: hour,
            instance: &series.instance,
            method: series.method.as_ref(),
            path: series.path.as_ref(),
            code: series.code,
        };
        agg.merge_into(hours.entry_ref(&hour_key).or_default(), hour == *minute);
        rows.push(row(Resolution::Minute, key, agg));
    }
    rows.extend(hours.into_iter().map(|(key, mut agg)| {
        agg.shrink_to_fit();
        row(Resolution::Hour, key, agg)
    }));
}

/// Readings an [`ApiCell`] keeps as they came before folding them into its aggregate.
const PENDING: usize = 8;

/// An API cell: its first readings kept as they came, a few bytes each, and folded into an
/// aggregate [`PENDING`] at a time, the sketch taking them at once
/// ([`Sketch::add_all`](crate::query::sketch::Sketch::add_all)), so that a cell's sketch is
/// allocated once at its final size. Most cells of a piece hold a few readings (a series in a
/// minute, from one 16 MiB stretch of the WAL): they allocate no aggregate until the piece
/// ends. Such a cell is a 200-byte hash-table slot (key and cell) and nothing on the heap,
/// where a cell with its aggregate took 328 bytes and a boxed 128-byte PromQL part.
#[derive(Debug, Default)]
struct ApiCell {
    /// Every reading folded so far; `None` until the first fold.
    agg: Option<Box<ApiAgg>>,
    /// The durations of the readings not folded yet.
    durations: [f64; PENDING],
    /// Their counts.
    counts: [u32; PENDING],
    /// Bit `i`: reading `i` is stamped exactly at its slot's start.
    at_slot_start: u8,
    /// How many readings are not folded yet.
    len: u8,
}

impl ApiCell {
    fn add(&mut self, r: &ApiReading, at_slot_start: bool) {
        if usize::from(self.len) == PENDING {
            self.fold(r.code);
        }
        let i = usize::from(self.len);
        self.durations[i] = r.duration_ms;
        self.counts[i] = r.count;
        self.at_slot_start |= u8::from(at_slot_start) << i;
        self.len += 1;
    }

    /// Adds the readings not folded yet to the aggregate; `code` is the cell's (its series').
    fn fold(&mut self, code: StatusCode) {
        let agg = self.agg.get_or_insert_with(Box::default);
        let mut sketched = [(0.0, 0); PENDING];
        for (i, slot) in sketched.iter_mut().enumerate().take(usize::from(self.len)) {
            let (duration_ms, count) = (self.durations[i], u64::from(self.counts[i]));
            agg.add_unsketched(code, duration_ms, count, self.at_slot_start & (1 << i) != 0);
            *slot = (duration_ms, count);
        }
        agg.sketch.add_all(&sketched[..usize::from(self.len)]);
        self.len = 0;
        self.at_slot_start = 0;
    }

    /// The whole aggregate. A row waits for its write: its sketch keeps only its buckets, not
    /// the capacity they grew with.
    fn into_agg(mut self, code: StatusCode) -> ApiAgg {
        self.fold(code);
        let mut agg = *self.agg.take().expect("fold() made the aggregate");
        agg.sketch.shrink_to_fit();
        agg
    }
}

/// The rows of every partition.
fn rows<R>(partitions: &[Partition<R>]) -> impl Iterator<Item = &R> {
    partitions.iter().flat_map(|p| &p.rows)
}

/// The partial rows of both levels for the readings of `readings` at or after `since` (a whole
/// hour, so a slot is either wholly in or out), all read from `piece` of the WAL.
pub fn partials(readings: &[Reading], piece: Piece, since: TimestampMs) -> Vec<RollupRow> {
    Cells::of(readings, since).into_rows(piece)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::model::reading::sample;

    /// The aggregates of `readings` built one reading at a time with [`ApiAgg::add`].
    fn one_by_one(readings: &[Reading]) -> HashMap<(Resolution, TimestampMs, RollupSeries), Agg> {
        let mut aggs: HashMap<_, ApiAgg> = HashMap::new();
        for reading in readings {
            let Reading::Api(r) = reading else {
                continue;
            };
            for resolution in Resolution::ALL {
                let slot = resolution.slot_of(r.timestamp);
                let series = RollupSeries {
                    instance: r.instance.clone(),
                    method: Some(r.method.clone()),
                    path: Some(r.path.clone()),
                    code: Some(r.code),
                };
                aggs.entry((resolution, slot, series))
                    .or_default()
                    .add(r, slot == r.timestamp);
            }
        }
        aggs.into_iter().map(|(k, a)| (k, Agg::Api(a))).collect()
    }

    /// An API aggregate with its duration sums set apart (zero in it): an hour merged from its
    /// minutes adds the same durations in another order, equal up to rounding.
    fn sums_apart(agg: Agg) -> (Agg, [f64; 2]) {
        let Agg::Api(mut api) = agg else {
            panic!("API readings only")
        };
        let at_start = api.prom.as_mut().and_then(|p| p.at_start.as_mut());
        let sums = [
            std::mem::take(&mut api.duration_sum),
            at_start.map_or(0.0, |part| std::mem::take(&mut part.duration_sum)),
        ];
        (Agg::Api(api), sums)
    }

    proptest! {
        /// A cell keeps its first readings as they came and folds them in eights, and an hour
        /// is merged from its minutes: whatever the number of readings, the rows are the
        /// aggregates of adding them one by one (the sums up to rounding).
        #[test]
        fn cells_aggregate_as_adding_one_by_one(
            readings in proptest::collection::vec(
                (-2i64..3, 0u8..4, 0u16..3, 0.0f64..2_000.0, 1u32..50),
                0..60,
            )
        ) {
            let readings: Vec<Reading> = readings
                .into_iter()
                .map(|(minute, second, code, duration_ms, count)| {
                    Reading::Api(ApiReading {
                        // Some exactly at a minute's (and the hour's) start.
                        timestamp: TimestampMs::from_millis(
                            sample::AT_MS / 3_600_000 * 3_600_000
                                + minute * 60_000
                                + i64::from(second) * 15_000,
                        ),
                        code: StatusCode::parse(i64::from(200 + 150 * code)).unwrap(),
                        duration_ms,
                        count,
                        ..sample::api()
                    })
                })
                .collect();
            let piece = Piece { writer: uuid::Uuid::nil(), segment: 1, start: 0, last: 0 };
            let rows: HashMap<_, Agg> = partials(&readings, piece, TimestampMs::from_millis(0))
                .into_iter()
                .map(|row| ((row.resolution, row.slot, row.series), row.agg))
                .collect();
            let expected = one_by_one(&readings);
            prop_assert_eq!(rows.len(), expected.len());
            for (key, agg) in rows {
                let (agg, sums) = sums_apart(agg);
                let (want, want_sums) = sums_apart(expected[&key].clone());
                prop_assert_eq!(&agg, &want, "{:?}", key);
                for (sum, want_sum) in sums.into_iter().zip(want_sums) {
                    prop_assert!((sum - want_sum).abs() <= 1e-9 * want_sum.abs(), "{:?}: {} vs {}", key, sum, want_sum);
                }
            }
        }
    }
}
