//! Compaction: parts and young blocks rewritten into blocks of one aligned window, larger as the
//! window ages (15 min → 1 h → 4 h).
//!
//! A window of 4 h is the target of its readings once it has ended; else their 1 h window once
//! that has ended; else their 15 min window. A pass takes every part and every block whose
//! target has grown, and for each target window they touch rewrites the window's readings from
//! all of them (and from the window's own block, if any) into one block; then, in one manifest
//! batch, lists the new blocks and unlists every input. A reading is never in two live blocks,
//! and a crash before the batch leaves only files that the next open deletes.
//!
//! Memory: a window is rewritten one partition at a time ([`Writer`] streams each partition's
//! columns to the new file), so a pass holds one partition's decoded rows — one bucket of one
//! shard of one service — and the window's partition list, never a window's readings.
//!
//! A write compacts first when [`MAX_PARTS_WAITING`] parts wait (the thread fell behind).
//! A pass runs when parts pile up ([`MAX_PARTS`]), when the oldest part has waited
//! [`PART_AGE`], or when a window has aged into a larger target; `force` runs it regardless.
//! The current 15 min window is rewritten at most once per pass, so its write amplification
//! is bounded by the number of passes within 15 minutes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use fjall::{Database, PersistMode};

use super::file::Writer;
use super::{Block, Blocks, Entry, Live, Staged};
use crate::model::kind::{EachKind, Kinds, KINDS};
use crate::model::{ReadingKind, Seq, TimestampMs};
use crate::store::{PartitionKey, StoreError};

/// Window lengths in seconds, largest first.
const SPANS: [u32; 3] = [4 * 3600, 3600, 15 * 60];
/// A pass runs once this many parts of a kind wait.
pub const MAX_PARTS: usize = 8;
/// A write runs (or waits for) a pass itself once this many parts wait: they pile up only
/// while the compactor thread falls behind the writes, and this bounds them, and with them
/// the part indexes in memory and the parts every read and the next pass go through.
pub const MAX_PARTS_WAITING: usize = 4 * MAX_PARTS;
/// A pass runs once the oldest part has waited this long.
pub const PART_AGE: Duration = Duration::from_secs(30);

/// The target window `(span, start)` of a reading at `at_s` (epoch seconds) at `now_s`.
fn target(at_s: i64, now_s: i64) -> (u32, i64) {
    for span in SPANS {
        let start = at_s.div_euclid(i64::from(span)) * i64::from(span);
        if start + i64::from(span) <= now_s || span == SPANS[SPANS.len() - 1] {
            return (span, start);
        }
    }
    unreachable!("the last span always matches")
}

impl Blocks {
    /// How many parts (of every kind) wait for compaction.
    pub fn parts(&self) -> usize {
        let live = self
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        live.values().filter(|l| l.entry.span == 0).count()
    }

    /// Before a write: compacts now (or waits for the pass under way) when
    /// [`MAX_PARTS_WAITING`] parts wait. A failed pass is only logged: the write goes on, and
    /// the compactor thread tries again.
    pub fn keep_up(&self, db: &Database, now: TimestampMs) {
        if self.parts() < MAX_PARTS_WAITING {
            return;
        }
        if let Err(error) = self.compact(db, now, false) {
            tracing::warn!(%error, "compacting blocks before a write failed; retrying later");
        }
    }

    /// Runs a pass if one is due (or `force`); returns how many blocks it wrote.
    pub fn compact(
        &self,
        db: &Database,
        now: TimestampMs,
        force: bool,
    ) -> Result<usize, StoreError> {
        let _one = self
            .compacting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut pass = Pass {
            blocks: self,
            db,
            now_s: now.millis().div_euclid(1000),
            force,
            written: 0,
            failed: None,
        };
        KINDS.each(&mut pass);
        match pass.failed {
            Some(error) => Err(error),
            None => Ok(pass.written),
        }
    }
}

/// A partition of a window and where its rows are: blocks and the partition's place in each.
type Sources = (PartitionKey, Vec<(Arc<Block>, usize)>);

struct Pass<'a> {
    blocks: &'a Blocks,
    db: &'a Database,
    now_s: i64,
    force: bool,
    written: usize,
    failed: Option<StoreError>,
}

impl EachKind<'_, Kinds> for Pass<'_> {
    fn each<K: ReadingKind>(&mut self, _: &()) {
        if self.failed.is_none() {
            match self.kind::<K>() {
                Ok(n) => self.written += n,
                Err(error) => self.failed = Some(error),
            }
        }
    }
}

impl Pass<'_> {
    /// The target windows the pass rewrites for the blocks of one kind, if it is due.
    fn dirty(&self, snapshot: &[(u64, Live)]) -> BTreeSet<(u32, i64)> {
        let mut dirty = BTreeSet::new();
        let parts: Vec<&Live> = snapshot
            .iter()
            .map(|(_, l)| l)
            .filter(|l| l.entry.span == 0)
            .collect();
        let due = self.force
            || parts.len() >= MAX_PARTS
            || parts.iter().any(|l| l.since.elapsed() >= PART_AGE);
        if due {
            let step = i64::from(SPANS[SPANS.len() - 1]);
            for part in &parts {
                for p in &part.block.index.partitions {
                    let mut at = p.min_ts.div_euclid(1000).div_euclid(step) * step;
                    while at <= p.max_ts.div_euclid(1000) {
                        dirty.insert(target(at, self.now_s));
                        at += step;
                    }
                }
            }
        }
        for (_, l) in snapshot.iter().filter(|(_, l)| l.entry.span > 0) {
            let want = target(l.entry.window, self.now_s);
            if want != (l.entry.span, l.entry.window) {
                dirty.insert(want);
            }
        }
        dirty
    }

    fn kind<K: ReadingKind>(&self) -> Result<usize, StoreError> {
        const WHAT: &str = "compacting blocks";
        let snapshot = self.blocks.snapshot(K::INFO.tag);
        let dirty = self.dirty(&snapshot);
        if dirty.is_empty() {
            return Ok(0);
        }
        let mut inputs: BTreeSet<u64> = BTreeSet::new();
        let mut outputs: Vec<Staged> = Vec::new();
        let result = self.rewrite::<K>(&snapshot, &dirty, &mut inputs, &mut outputs);
        if let Err(error) = result {
            self.blocks.discard(outputs);
            return Err(error.into_store(WHAT));
        }
        let inputs: Vec<u64> = inputs.into_iter().collect();
        let mut batch = self.db.batch();
        self.blocks.unlist(&mut batch, &inputs);
        self.blocks.record(&mut batch, &outputs, None);
        let committed = batch
            .commit()
            .and_then(|()| self.db.persist(PersistMode::SyncData));
        if let Err(error) = committed {
            self.blocks.discard(outputs);
            return Err(StoreError::unavailable(WHAT, error));
        }
        let written = outputs.len();
        tracing::debug!(
            inputs = inputs.len(),
            written,
            kind = K::INFO.name,
            "compacted blocks"
        );
        self.blocks.replace(outputs, &inputs);
        Ok(written)
    }

    /// Writes one block per dirty window from every block with readings in it, one partition
    /// at a time: what a pass holds is the window's partition list (metadata only) and the rows
    /// of one partition (one bucket of one shard of one service), never the window's readings.
    fn rewrite<K: ReadingKind>(
        &self,
        snapshot: &[(u64, Live)],
        dirty: &BTreeSet<(u32, i64)>,
        inputs: &mut BTreeSet<u64>,
        outputs: &mut Vec<Staged>,
    ) -> Result<(), super::BlockError> {
        for &(span, start) in dirty {
            let end = start + i64::from(span);
            let (lo, hi) = (start * 1000, end * 1000 - 1);
            // Per partition, sorted as a block lists them: the input blocks holding it.
            let mut sources: BTreeMap<(String, i64, Seq), Sources> = BTreeMap::new();
            for (id, l) in snapshot {
                let member = if l.entry.span == 0 {
                    l.block.index.min_ts <= hi && l.block.index.max_ts >= lo
                } else {
                    l.entry.window >= start && l.entry.window + i64::from(l.entry.span) <= end
                };
                if !member {
                    continue;
                }
                inputs.insert(*id);
                for (i, meta) in l.block.index.partitions.iter().enumerate() {
                    if !meta.overlaps(lo, hi) {
                        continue;
                    }
                    let key = l.block.key_of(meta)?;
                    let sort = (key.service.as_str().to_owned(), meta.bucket, meta.seq);
                    sources
                        .entry(sort)
                        .or_insert_with(|| (key, Vec::new()))
                        .1
                        .push((l.block.clone(), i));
                }
            }
            let mut output: Option<(u64, Writer)> = None;
            for (key, from) in sources.into_values() {
                let mut rows: Vec<K> = Vec::new();
                for (block, i) in &from {
                    rows.extend(block.rows::<K>(
                        &block.index.partitions[*i],
                        &key.service,
                        TimestampMs::from_millis(lo),
                        TimestampMs::from_millis(hi),
                    )?);
                }
                rows.sort_by_key(|r| (r.timestamp(), r.id()));
                rows.dedup_by_key(|r| (r.timestamp(), r.id()));
                if rows.is_empty() {
                    continue;
                }
                if output.is_none() {
                    output = Some(self.blocks.start_block()?);
                }
                let (_, writer) = output.as_mut().expect("started above");
                writer.add(&key, &rows)?;
            }
            if let Some((id, writer)) = output {
                writer.finish::<K>()?;
                let entry = Entry {
                    kind: K::INFO.tag,
                    span,
                    window: start,
                };
                outputs.push(self.blocks.opened(id, entry)?);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_grow_as_they_age() {
        let now = 10 * 14_400 + 5_000; // 1 h 23 min 20 s into a 4 h window
        assert_eq!(target(now - 100, now), (900, now - 100 - (now - 100) % 900));
        assert_eq!(target(10 * 14_400 + 10, now), (3600, 10 * 14_400));
        assert_eq!(target(9 * 14_400 + 7_000, now), (14_400, 9 * 14_400));
    }
}
