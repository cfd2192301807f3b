//! The first stage of a flush: read the next records from the WAL, decode them and group them
//! into a [`WriteBatch`], while the writer stage is still writing the previous one (and adding
//! the readings it stored to the partial rollups of their piece). A record that cannot be decoded goes to the quarantine, and
//! the batch goes on without it.
//!
//! Batches hold at most about `max_read_bytes` of records; the pieces of `rollup::chunk` may
//! span several of them, so each batch says whether it ends a piece: its rollups, and the WAL
//! confirmation, wait for that batch.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::wal_retry::WalRetry;
use super::FlushError;
use crate::ingest::quarantine::{Header, Item, Quarantine, What};
use crate::ingest::record::decode;
use crate::model::{ReadingId, Settings, TimestampMs};
use crate::rollup::chunk::same_chunk_prefix;
use crate::rollup::{writer_id, Piece};
use crate::store::{SeriesSeen, WriteBatch, WriteBatchBuilder};
use crate::telemetry::Metrics;
use crate::wal::{Position, Wal, WalError, WalReader, WalRecord};

/// Series-bucket entries remembered as written (about 100 bytes each).
const SERIES_SEEN_CAPACITY: usize = 100_000;

/// A flush ready to write.
pub(super) struct Prepared {
    /// The grouped readings.
    pub batch: WriteBatch,
    /// Set on the last batch of a piece: the piece, whose partials are written after this
    /// batch, and only then confirmed.
    pub ends_piece: Option<Piece>,
    /// The WAL position of the batch's first record.
    pub first: Position,
    /// The WAL position after the batch's last record: confirmed once the piece it ends is
    /// stored.
    pub end: Position,
    /// The earliest acceptance time in the batch, for the flush-lag gauge.
    pub oldest: TimestampMs,
}

/// Reads, decodes and groups the WAL in order, one batch ahead of the writer.
pub(super) struct Preparer {
    pub wal: Wal,
    pub settings: Settings,
    /// Give readings ids derived from their WAL position (see `Store::wal_ids`), as the store
    /// answered for this WAL.
    pub wal_ids: bool,
    pub max_read_bytes: usize,
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
    pub async fn run(
        mut self,
        writer: Uuid,
        ready: mpsc::Sender<Prepared>,
    ) -> Result<(), FlushError> {
        let mut reader = self.wal.reader(self.wal.confirmed());
        let mut durable = self.wal.durable_end();
        let mut seen = SeriesSeen::new(SERIES_SEEN_CAPACITY);
        let mut read_failures = 0;
        // Records read but not handed over yet: at most one batch's worth plus one read.
        let mut pending: Vec<WalRecord> = Vec::new();
        // The first record of the piece under way, once a batch of it was handed over.
        let mut piece_start: Option<Position> = None;
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
            while let Some(cut) = next_cut(&pending, self.max_read_bytes, caught_up) {
                // A batch is grouped only once the writer has taken the previous one: one batch
                // being written and one ready, never a third waiting to be queued.
                let Ok(slot) = ready.reserve().await else {
                    return Ok(());
                };
                let rest = pending.split_off(cut.take);
                let batch = std::mem::replace(&mut pending, rest);
                let start = *piece_start.get_or_insert(batch[0].position);
                let last = batch[batch.len() - 1].position;
                let ends_piece = cut.ends_piece.then_some(Piece {
                    writer,
                    segment: start.segment.0,
                    start: start.offset,
                    last: last.offset,
                });
                if ends_piece.is_some() {
                    piece_start = None;
                }
                slot.send(self.prepare(batch, ends_piece, &mut seen).await);
            }
            if caught_up && pending.is_empty() {
                if *self.drain.borrow() {
                    return Ok(());
                }
                tokio::select! {
                    _ = durable.changed() => {}
                    _ = self.drain.changed() => {}
                }
            }
        }
    }

    /// This WAL's rollup writer id, read (or created) off the async workers; a failure is
    /// retried like any WAL I/O failure.
    pub async fn writer_id(&self) -> Result<Uuid, FlushError> {
        let mut failures = 0;
        loop {
            let dir = self.wal.dir().to_path_buf();
            let id = tokio::task::spawn_blocking(move || writer_id::load_or_create(&dir))
                .await
                .expect("rollup writer id task panicked");
            match id {
                Ok(id) => return Ok(id),
                Err(source) => {
                    let error = WalError::Io {
                        path: self.wal.dir().to_path_buf(),
                        source,
                    };
                    self.retry.pause(error, &mut failures, "reading").await?;
                }
            }
        }
    }

    /// Decodes the records of one batch and groups them.
    async fn prepare(
        &self,
        records: Vec<WalRecord>,
        ends_piece: Option<Piece>,
        seen: &mut SeriesSeen,
    ) -> Prepared {
        let first = records[0].position;
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
            ends_piece,
            first,
            end,
            // Only undecodable records: nothing waits.
            oldest: oldest.unwrap_or_else(TimestampMs::now),
        }
    }
}

/// Where the next batch ends.
struct Cut {
    /// Records in the batch.
    take: usize,
    /// Whether the batch ends its piece.
    ends_piece: bool,
}

/// The next batch of `pending`: the records of the first one's chunk, up to `max_bytes` of
/// payload (at least one record). It ends its piece when a record of another chunk follows it,
/// or when it takes every pending record and the reader is `caught_up`. `None` while that is
/// not known yet: the batch would take every pending record and more may be coming.
fn next_cut(pending: &[WalRecord], max_bytes: usize, caught_up: bool) -> Option<Cut> {
    let in_chunk = same_chunk_prefix(pending.iter().map(|r| r.position));
    let mut bytes = 0;
    let full = pending[..in_chunk].iter().position(|r| {
        bytes += r.payload.len();
        bytes >= max_bytes
    });
    match full {
        Some(i) if i + 1 < in_chunk => Some(Cut {
            take: i + 1,
            ends_piece: false,
        }),
        _ if in_chunk > 0 && (in_chunk < pending.len() || caught_up) => Some(Cut {
            take: in_chunk,
            ends_piece: true,
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
