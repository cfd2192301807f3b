//! The newest reading of each series over several batches: the flusher writes latest rows once
//! per WAL piece instead of once per batch.
//!
//! Why: each batch of a piece holds most of the same series, so writing every batch's newest
//! readings upserts the same latest rows again and again (in the ingest bench, 960 series per
//! batch of about 37,000 readings, four batches per piece). A latest row is written with its
//! reading's own time as write timestamp, so writing only the piece's newest is the same end
//! state, reached with a quarter of the rows.

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

use super::{Batches, KindBatch, WriteBatch};
use crate::model::kind::{EachKind, EachKindMut, Family, PerKind, ALL};
use crate::model::{ReadingId, ReadingKind, TimestampMs};

/// The order of readings of one series: the newest is the latest, the id breaking ties.
pub(super) fn recency<K: ReadingKind>(reading: &K) -> (TimestampMs, ReadingId) {
    (reading.timestamp(), reading.id())
}

/// Latest-row candidates of one kind, any number per series.
pub enum Candidates {}

impl Family for Candidates {
    type Of<K: ReadingKind> = Vec<K>;
}

/// Latest-row candidates gathered from batches, each kind's newest per series kept at the end.
#[derive(Debug, Default)]
pub struct LatestRows(PerKind<Candidates>);

impl WriteBatch {
    /// How many latest rows the batch writes.
    pub fn latest_rows(&self) -> usize {
        struct Count(usize);
        impl EachKind<'_, Batches> for Count {
            fn each<K: ReadingKind>(&mut self, batch: &KindBatch<K>) {
                self.0 += batch.latest.len();
            }
        }
        let mut count = Count(0);
        self.kinds.each(&mut count);
        count.0
    }

    /// Moves the latest readings out of the batch: it then writes none.
    pub fn take_latest(&mut self) -> LatestRows {
        struct Take<'a>(&'a mut PerKind<Candidates>);
        impl EachKindMut<Batches> for Take<'_> {
            fn each<K: ReadingKind>(&mut self, batch: &mut KindBatch<K>) {
                *self.0.get_mut::<K>() = std::mem::take(&mut batch.latest);
            }
        }
        let mut taken = LatestRows::default();
        self.kinds.each_mut(&mut Take(&mut taken.0));
        taken
    }
}

impl LatestRows {
    /// Adds the candidates of `other`.
    pub fn append(&mut self, mut other: LatestRows) {
        // A kind added to the model needs its line here: this stops the build until it has it.
        const _: () = assert!(ALL.len() == 2, "a new reading kind needs its latest rows");
        self.0.api.append(&mut other.0.api);
        self.0.host.append(&mut other.0.host);
    }

    /// A batch of no readings holding the newest candidate of each series as its latest rows.
    pub fn into_batch(self) -> WriteBatch {
        struct Newest<'a>(&'a mut PerKind<Candidates>);
        impl EachKindMut<Batches> for Newest<'_> {
            fn each<K: ReadingKind>(&mut self, batch: &mut KindBatch<K>) {
                batch.latest = newest_per_series(std::mem::take(self.0.get_mut::<K>()));
            }
        }
        let mut candidates = self.0;
        let mut batch = WriteBatch::default();
        batch.kinds.each_mut(&mut Newest(&mut candidates));
        batch
    }
}

/// The newest of `candidates` in each series, in the order of their first candidate.
fn newest_per_series<K: ReadingKind>(candidates: Vec<K>) -> Vec<K> {
    // Per series, one entry of `keep`: the index of its newest candidate so far.
    let mut keep: Vec<usize> = Vec::new();
    {
        let mut entry_of: HashMap<_, usize> = HashMap::with_capacity(candidates.len());
        for (i, reading) in candidates.iter().enumerate() {
            match entry_of.entry(reading.series()) {
                Entry::Vacant(vacant) => {
                    vacant.insert(keep.len());
                    keep.push(i);
                }
                Entry::Occupied(seen) => {
                    let newest = &mut keep[*seen.get()];
                    if recency(reading) > recency(&candidates[*newest]) {
                        *newest = i;
                    }
                }
            }
        }
    }
    let mut slots: Vec<Option<K>> = candidates.into_iter().map(Some).collect();
    keep.into_iter()
        .map(|i| slots[i].take().expect("each series keeps one candidate"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiReading, Reading, Settings};
    use crate::store::batch::tests::api;
    use crate::store::{SeriesSeen, WriteBatchBuilder};

    fn batch(readings: Vec<Reading>) -> WriteBatch {
        let settings = Settings::default();
        let mut builder = WriteBatchBuilder::new(&settings);
        for reading in readings {
            builder.push(reading);
        }
        builder.finish(&SeriesSeen::new(16))
    }

    fn latest(batch: &WriteBatch) -> Vec<(String, i64)> {
        let mut rows: Vec<_> = batch
            .of::<ApiReading>()
            .latest
            .iter()
            .map(|r| (r.instance.as_str().to_owned(), r.timestamp.millis()))
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn the_newest_of_each_series_over_several_batches_is_kept() {
        let mut first = batch(vec![api("a", 1_000), api("b", 5_000), api("a", 2_000)]);
        let mut second = batch(vec![api("a", 1_500), api("b", 6_000), api("c", 1)]);
        let mut rows = first.take_latest();
        assert!(first.of::<ApiReading>().latest.is_empty(), "taken out");
        assert_eq!(first.readings(), 3, "the readings stay");
        rows.append(second.take_latest());
        let merged = rows.into_batch();
        assert_eq!(merged.readings(), 0);
        assert_eq!(
            latest(&merged),
            [("a".into(), 2_000), ("b".into(), 6_000), ("c".into(), 1)]
        );
    }

    #[test]
    fn the_id_breaks_a_tie_as_within_one_batch() {
        let (one, two) = (api("a", 7_000), api("a", 7_000));
        let within = batch(vec![one.clone(), two.clone()]);
        let mut rows = batch(vec![one]).take_latest();
        rows.append(batch(vec![two]).take_latest());
        let across = rows.into_batch();
        assert_eq!(
            across.of::<ApiReading>().latest,
            within.of::<ApiReading>().latest
        );
    }
}
