//! The first stage of a flush: read the next records from the WAL, decode them and group them
//! into a [`WriteBatch`] with its partial rollups, while the writer stage is still writing the
//! previous one. A record that cannot be decoded goes to the quarantine, and the batch goes on
//! without it. Batches are cut where `rollup::chunk` allows, so replays rewrite rollups
//! instead of adding to them.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::wal_retry::WalRetry;
use super::FlushError;
use crate::ingest::quarantine::{Header, Item, Quarantine, What};
use crate::ingest::record::decode;
use crate::model::{Reading, ReadingId, Settings, TimestampMs};
use crate::rollup::chunk::same_chunk_prefix;
use crate::rollup::{self, writer_id, Piece};
use crate::store::{SeriesSeen, WriteBatch};
use crate::telemetry::Metrics;
use crate::wal::{Position, Wal, WalError, WalReader, WalRecord};

/// Series-bucket entries remembered as written (about 100 bytes each).
const SERIES_SEEN_CAPACITY: usize = 100_000;

/// A flush ready to write.
pub(super) struct Prepared {
    /// The grouped readings.
    pub batch: WriteBatch,
    /// The WAL position of the batch's first record.
    pub first: Position,
    /// The WAL position after the batch's last record: confirmed once the batch is stored.
    pub end: Position,
    /// The earliest acceptance time in the batch, for the flush-lag gauge.
    pub oldest: TimestampMs,
}

/// Reads, decodes and groups the WAL in order, one batch ahead of the writer.
pub(super) struct Preparer {
    pub wal: Wal,
    pub settings: Settings,
    /// Give readings ids derived from their WAL position (see `Store::wal_ids`).
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
    pub async fn run(mut self, ready: mpsc::Sender<Prepared>) -> Result<(), FlushError> {
        let writer = self.writer_id().await?;
        let mut reader = self.wal.reader(self.wal.confirmed());
        let mut durable = self.wal.durable_end();
        let mut seen = SeriesSeen::new(SERIES_SEEN_CAPACITY);
        let mut read_failures = 0;
        // Records read but not handed over yet: at most one chunk's worth plus one read.
        let mut pending: Vec<WalRecord> = Vec::new();
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
            // Hand over every whole chunk, and the last one only once the reader found no more
            // durable records: a piece ends at a chunk boundary or at the durable end (see
            // `rollup::chunk`), never where a read happened to stop.
            loop {
                let take = same_chunk_prefix(pending.iter().map(|r| r.position));
                if take == 0 || (take == pending.len() && !caught_up) {
                    break;
                }
                let rest = pending.split_off(take);
                let piece = std::mem::replace(&mut pending, rest);
                let Some(prepared) = self.prepare(piece, writer, &mut seen).await else {
                    continue;
                };
                if ready.send(prepared).await.is_err() {
                    return Ok(());
                }
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
    async fn writer_id(&self) -> Result<Uuid, FlushError> {
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

    /// Decodes the records of one piece and groups them with their partial rollups; `None`
    /// when no record could be decoded.
    async fn prepare(
        &self,
        piece: Vec<WalRecord>,
        writer: Uuid,
        seen: &mut SeriesSeen,
    ) -> Option<Prepared> {
        let first = piece.first()?.position;
        let last = piece.last()?.position;
        let end = piece.last()?.next;
        let mut readings: Vec<Reading> = Vec::new();
        let mut oldest: Option<TimestampMs> = None;
        for record in piece {
            match decode(&record.payload) {
                Ok(accepted) => {
                    oldest = Some(oldest.map_or(accepted.at, |o| o.min(accepted.at)));
                    let (segment, offset) = (record.position.segment.0, record.position.offset);
                    let wal_ids = self.wal_ids;
                    readings.extend(accepted.readings.into_iter().enumerate().map(
                        |(index, mut reading)| {
                            // Ids follow from the WAL position: the same on every replay.
                            if wal_ids {
                                let index = u32::try_from(index).unwrap_or(u32::MAX);
                                reading.set_id(ReadingId::from_wal(segment, offset, index));
                            }
                            reading
                        },
                    ));
                }
                Err(error) => self.set_aside(record, &error.to_string()).await,
            }
        }
        let rollups = rollup::partials(
            &readings,
            Piece {
                writer,
                segment: first.segment.0,
                start: first.offset,
                last: last.offset,
            },
        );
        let mut batch = WriteBatch::build(readings, &self.settings, seen);
        batch.rollups = rollups;
        seen.remember(&batch.series);
        Some(Prepared {
            batch,
            first,
            end,
            // Only undecodable records: nothing waits.
            oldest: oldest.unwrap_or_else(TimestampMs::now),
        })
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
