//! The first stage of a flush: read the next records from the WAL, decode them and group them
//! into a [`WriteBatch`], while the writer stage is still writing the previous one (and adding
//! the readings it stored to the partial rollups of their piece). A record that cannot be decoded goes to the quarantine, and
//! the batch goes on without it.
//!
//! Batches hold at most about `max_read_bytes` of records; the pieces of `rollup::chunk` may
//! span several of them, so each batch says whether it must end a piece: its rollups, and the
//! WAL confirmation, wait for that batch. The writer may also end a piece early, after any
//! batch, when its aggregates reach `rollup::open_piece::MAX_PIECE_CELLS`; a replay of a piece
//! that reached them (its extent recorded in `rollup::open_piece`) ends exactly where it did.
//!
//! Where the reader catches up, a piece ends only once it is `min_piece_age` old or holds a
//! full batch's worth of records (`max_read_bytes`). Under a steady load short of the store's
//! pace the reader catches up after nearly every batch, and a piece per batch would write a
//! partial rollup row per minute and hour, and a latest row, for every series of every batch
//! (more rows than the readings' own). A smaller, younger piece stays open; when no more
//! records come before it is old enough (or the flusher drains), the preparer ends it with
//! [`Ready::EndPiece`] at the last record it handed over. That is still a place where the
//! reader caught up, so a replay, which reads a backlog and catches up only at its end, still
//! cuts pieces that contain it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use uuid::Uuid;

use super::wal_retry::WalRetry;
use super::FlushError;
use crate::ingest::quarantine::{Header, Item, Quarantine, What};
use crate::ingest::record::decode;
use crate::model::{ReadingId, Settings, TimestampMs};
use crate::rollup::chunk::same_chunk_prefix;
use crate::rollup::{open_piece, writer_id};
use crate::store::{SeriesSeen, WriteBatch, WriteBatchBuilder};
use crate::telemetry::Metrics;
use crate::wal::{Position, Wal, WalError, WalReader, WalRecord};

/// Series-bucket entries remembered as written (about 100 bytes each).
const SERIES_SEEN_CAPACITY: usize = 100_000;

/// A flush ready to write.
pub(super) struct Prepared {
    /// The grouped readings.
    pub batch: WriteBatch,
    /// Whether the piece ends after this batch: its partials are written after the batch
    /// that ends it, and only then is it confirmed.
    pub piece_end: PieceEnd,
    /// The WAL position of the batch's first record.
    pub first: Position,
    /// The WAL position of the batch's last record.
    pub last: Position,
    /// The WAL position after the batch's last record: confirmed once the piece it ends is
    /// stored.
    pub end: Position,
    /// The earliest acceptance time in the batch, for the flush-lag gauge.
    pub oldest: TimestampMs,
}

/// What the preparer hands the writer.
pub(super) enum Ready {
    /// A batch to write (boxed: a batch's bookkeeping is a few hundred bytes, an end none).
    Batch(Box<Prepared>),
    /// The open piece ends after the batches already handed over: the reader caught up and the
    /// piece is old enough, or the flusher drains.
    EndPiece,
}

/// Whether a batch ends its piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PieceEnd {
    /// It must: at a chunk boundary, where the reader caught up, or where a replayed piece
    /// ended.
    Here,
    /// If the piece's aggregates reached the cell budget (the writer decides).
    IfFull,
    /// It must not: a replayed recorded piece (`rollup::open_piece`) ends later, where it
    /// ended before.
    NotYet,
}

/// Reads, decodes and groups the WAL in order, one batch ahead of the writer.
pub(super) struct Preparer {
    pub wal: Wal,
    pub settings: Settings,
    /// Give readings ids derived from their WAL position (see `Store::wal_ids`), as the store
    /// answered for this WAL.
    pub wal_ids: bool,
    pub max_read_bytes: usize,
    /// How old a piece must be to end where the reader catches up.
    pub min_piece_age: Duration,
    pub drain: watch::Receiver<bool>,
    pub quarantine: Quarantine,
    pub metrics: Arc<Metrics>,
    pub retry: WalRetry,
}

impl Preparer {
    /// Sends batches until the WAL is drained (after a drain request) or the writer is gone.
    ///
    /// Series entries are remembered as soon as a batch is handed over: the writer stores batches
    /// in order and retries each until it succeeds, so a later batch is never confirmed before
    /// the entries of an earlier one are stored. After a crash the WAL is replayed with nothing
    /// remembered.
    pub async fn run(mut self, ready: mpsc::Sender<Ready>) -> Result<(), FlushError> {
        let from = self.wal.confirmed();
        // A recorded piece whose partials may be partly written ends where it did.
        let mut forced_end = self.open_piece().await?.and_then(|p| p.forced_end(from));
        let mut reader = self.wal.reader(from);
        let mut durable = self.wal.durable_end();
        let mut seen = SeriesSeen::new(SERIES_SEEN_CAPACITY);
        let mut read_failures = 0;
        // Records read but not handed over yet: at most one batch's worth plus one read.
        let mut pending: Vec<WalRecord> = Vec::new();
        // The open piece, once a batch of it was handed over.
        let mut opened: Option<Opened> = None;
        loop {
            let Some((back, records)) = read_blocking(reader, self.max_read_bytes).await else {
                // The runtime is shutting down: nothing unconfirmed is lost.
                return Ok(());
            };
            reader = back;
            let records = match records {
                Ok(records) => records,
                Err(error) => {
                    self.retry
                        .pause(error, &mut read_failures, "reading")
                        .await?;
                    continue;
                }
            };
            read_failures = 0;
            let caught_up = records.is_empty();
            pending.extend(records);
            // Hand over every full batch; a piece ends at a chunk boundary or, once the reader
            // found no more durable records, at the durable end (see `rollup::chunk`), never
            // where a read happened to stop.
            while let Some(cut) = next_cut(&pending, self.max_read_bytes, caught_up, forced_end) {
                // A batch is grouped only once the writer has taken the previous one: one batch
                // being written and one ready, never a third waiting to be queued.
                let Ok(slot) = ready.reserve().await else {
                    return Ok(());
                };
                let rest = pending.split_off(cut.take);
                let batch = std::mem::replace(&mut pending, rest);
                let open = opened.get_or_insert_with(Opened::now);
                open.bytes += batch.iter().map(|r| r.payload.len()).sum::<usize>();
                let piece_end = match cut.ends {
                    CutEnds::Boundary => PieceEnd::Here,
                    CutEnds::CaughtUp if forced_end.is_some() || self.ripe(open) => PieceEnd::Here,
                    _ if forced_end.is_some() => PieceEnd::NotYet,
                    _ => PieceEnd::IfFull,
                };
                if piece_end == PieceEnd::Here {
                    forced_end = None;
                    opened = None;
                }
                let prepared = self.prepare(batch, piece_end, &mut seen).await;
                slot.send(Ready::Batch(Box::new(prepared)));
            }
            if caught_up && pending.is_empty() {
                // A replayed recorded piece ends at its record only (the reader cannot catch up
                // before it: it was durable before the crash).
                let may_end = forced_end.is_none();
                if let Some(open) = opened.filter(|open| may_end && self.ripe(open)) {
                    // Nothing came while the piece grew old enough: it ends here.
                    if ready.send(Ready::EndPiece).await.is_err() {
                        return Ok(());
                    }
                    opened = None;
                    tracing::trace!(age = ?open.at.elapsed(), "a piece ended where the reader caught up");
                    continue;
                }
                if *self.drain.borrow() {
                    return Ok(());
                }
                let deadline = opened
                    .filter(|_| may_end)
                    .map(|open| open.at + self.min_piece_age);
                tokio::select! {
                    _ = durable.changed() => {}
                    _ = self.drain.changed() => {}
                    _ = sleep_until(deadline) => {}
                }
            }
        }
    }

    /// Whether the open piece may end where the reader caught up: it is `min_piece_age` old,
    /// or it holds a full batch's worth of records (its rows are few per reading already: the
    /// last piece of a burst ends at once), or the flusher drains.
    fn ripe(&self, open: &Opened) -> bool {
        open.at.elapsed() >= self.min_piece_age
            || open.bytes >= self.max_read_bytes
            || *self.drain.borrow()
    }

    /// This WAL's rollup writer id, read (or created) off the async workers.
    pub async fn writer_id(&self) -> Result<Uuid, FlushError> {
        Ok(self
            .retry
            .in_dir(&self.wal, "reading", writer_id::load_or_create)
            .await?)
    }

    /// The piece last recorded in this WAL as reaching the cell budget (see
    /// `rollup::open_piece`). A damaged record is logged and ignored: the rename that writes it
    /// leaves the old or the new one whole, so damage is the disk's.
    async fn open_piece(&self) -> Result<Option<open_piece::OpenPiece>, FlushError> {
        let load = |dir: &std::path::Path| match open_piece::load(dir) {
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                tracing::warn!(%error, "ignoring a damaged record of a rollup piece");
                Ok(None)
            }
            loaded => loaded,
        };
        Ok(self.retry.in_dir(&self.wal, "reading", load).await?)
    }

    /// Decodes the records of one batch and groups them.
    async fn prepare(
        &self,
        records: Vec<WalRecord>,
        piece_end: PieceEnd,
        seen: &mut SeriesSeen,
    ) -> Prepared {
        let first = records[0].position;
        let last = records[records.len() - 1].position;
        let end = records[records.len() - 1].next;
        // Each record's readings go straight into the batch: a batch's readings are never
        // gathered in one list (a record holds one request's readings).
        let mut builder = WriteBatchBuilder::new(&self.settings);
        let mut oldest: Option<TimestampMs> = None;
        for record in records {
            match decode(&record.payload) {
                Ok(accepted) => {
                    oldest = Some(oldest.map_or(accepted.at, |o| o.min(accepted.at)));
                    let (segment, offset) = (record.position.segment.0, record.position.offset);
                    for (index, mut reading) in accepted.readings.into_iter().enumerate() {
                        // Ids follow from the WAL position: the same on every replay.
                        if self.wal_ids {
                            let index = u32::try_from(index).unwrap_or(u32::MAX);
                            reading.set_id(ReadingId::from_wal(segment, offset, index));
                        }
                        builder.push(reading);
                    }
                }
                Err(error) => self.set_aside(record, &error.to_string()).await,
            }
        }
        let batch = builder.finish(seen);
        seen.remember(&batch.series);
        Prepared {
            batch,
            piece_end,
            first,
            last,
            end,
            // Only undecodable records: nothing waits.
            oldest: oldest.unwrap_or_else(TimestampMs::now),
        }
    }
}

/// The open piece, as the preparer sees it.
#[derive(Debug, Clone, Copy)]
struct Opened {
    /// When its first batch was handed over.
    at: Instant,
    /// Payload bytes of the records handed over in it.
    bytes: usize,
}

impl Opened {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            bytes: 0,
        }
    }
}

/// Where the next batch ends.
struct Cut {
    /// Records in the batch.
    take: usize,
    /// Whether, and why, the batch ends its piece.
    ends: CutEnds,
}

/// Whether a batch ends its piece, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CutEnds {
    /// It does not: it is full, and more of its piece follows.
    No,
    /// At a chunk boundary (a record past it follows) or at a replayed piece's recorded end.
    Boundary,
    /// It takes every pending record and the reader caught up.
    CaughtUp,
}

/// The next batch of `pending`: the records of the first one's chunk, and when the piece must
/// end at `forced_end`, at or before it; up to `max_bytes` of payload (at least one record). It
/// ends its piece when a record past those follows it, when its last record is at
/// `forced_end`, or when it takes every pending record and the reader is `caught_up`. `None`
/// while that is not known yet: the batch would take every pending record and more may be
/// coming.
fn next_cut(
    pending: &[WalRecord],
    max_bytes: usize,
    caught_up: bool,
    forced_end: Option<Position>,
) -> Option<Cut> {
    let mut in_piece = same_chunk_prefix(pending.iter().map(|r| r.position));
    let mut at_forced_end = false;
    if let Some(end) = forced_end {
        in_piece = pending[..in_piece]
            .iter()
            .take_while(|r| r.position <= end)
            .count();
        at_forced_end = in_piece > 0 && pending[in_piece - 1].position == end;
    }
    let mut bytes = 0;
    let full = pending[..in_piece].iter().position(|r| {
        bytes += r.payload.len();
        bytes >= max_bytes
    });
    match full {
        Some(i) if i + 1 < in_piece => Some(Cut {
            take: i + 1,
            ends: CutEnds::No,
        }),
        _ if in_piece > 0 && (in_piece < pending.len() || at_forced_end) => Some(Cut {
            take: in_piece,
            ends: CutEnds::Boundary,
        }),
        _ if in_piece > 0 && caught_up => Some(Cut {
            take: in_piece,
            ends: CutEnds::CaughtUp,
        }),
        _ => None,
    }
}

impl Preparer {
    /// Puts a record whose payload cannot be decoded in the quarantine.
    async fn set_aside(&self, record: WalRecord, reason: &str) {
        let item = Item {
            header: Header {
                what: What::Record,
                at: TimestampMs::now().to_rfc3339(),
                wal: record.position.to_string(),
                readings: None,
                reason: reason.to_owned(),
            },
            payload: record.payload,
            position: record.position,
        };
        self.quarantine.set_aside(item, &self.metrics).await;
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Reads the next records off the async workers (blocking file reads); `None` when the runtime
/// shuts down before the read ran.
async fn read_blocking(
    mut reader: WalReader,
    max_bytes: usize,
) -> Option<(WalReader, Result<Vec<WalRecord>, WalError>)> {
    let read = tokio::task::spawn_blocking(move || {
        let records = reader.next_batch(max_bytes);
        (reader, records)
    })
    .await;
    match read {
        Ok(read) => Some(read),
        Err(error) if error.is_cancelled() => None,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::chunk::CHUNK_BYTES;

    /// Records of 10 bytes at `offsets` of segment 1.
    fn records(offsets: &[u64]) -> Vec<WalRecord> {
        offsets
            .iter()
            .map(|&offset| WalRecord {
                position: Position::at(1, offset),
                next: Position::at(1, offset + 10),
                payload: vec![0; 10],
            })
            .collect()
    }

    fn cut(
        pending: &[WalRecord],
        max: usize,
        caught_up: bool,
        forced: Option<u64>,
    ) -> Option<(usize, CutEnds)> {
        next_cut(
            pending,
            max,
            caught_up,
            forced.map(|offset| Position::at(1, offset)),
        )
        .map(|c| (c.take, c.ends))
    }

    #[test]
    fn a_piece_ends_at_a_chunk_boundary_or_where_the_reader_caught_up() {
        let pending = records(&[16, 26, 36]);
        // Full batches go; the rest waits to know whether more is coming.
        assert_eq!(cut(&pending, 20, false, None), Some((2, CutEnds::No)));
        assert_eq!(cut(&pending, 100, false, None), None);
        assert_eq!(cut(&pending, 100, true, None), Some((3, CutEnds::CaughtUp)));
        let across = records(&[16, CHUNK_BYTES - 10, CHUNK_BYTES]);
        assert_eq!(cut(&across, 100, false, None), Some((2, CutEnds::Boundary)));
    }

    #[test]
    fn a_replayed_piece_ends_at_its_recorded_last_record() {
        let pending = records(&[16, 26, 36, 46]);
        // More records follow, the reader has not caught up, the batch is not full: the piece
        // still ends at the record it ended at before.
        assert_eq!(
            cut(&pending, 100, false, Some(26)),
            Some((2, CutEnds::Boundary))
        );
        // Full batches before it do not end it.
        assert_eq!(cut(&pending, 10, false, Some(36)), Some((1, CutEnds::No)));
        assert_eq!(
            cut(&pending[2..], 10, false, Some(36)),
            Some((1, CutEnds::Boundary))
        );
        // Not read yet: wait for it.
        assert_eq!(cut(&pending[..2], 100, false, Some(36)), None);
    }
}
