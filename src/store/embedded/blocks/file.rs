//! One block file: written once (to a temporary name, synced, renamed), then only read.
//!
//! A [`Block`] keeps its index in memory (names, partitions, offsets: a few bytes per series)
//! and its file open, so a block deleted by compaction or retention stays readable by the reads
//! that already hold it; column bytes are read with positioned reads, never kept.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::columns::{self, Names};
use super::{BlockError, HEADER, MAGIC, TRAILER};
use crate::model::{ReadingId, ReadingKind, Seq, ServiceName, TimeBucket, TimestampMs};
use crate::store::{Order, PageRequest, PartitionKey, ReadingKey};

/// What the index says of one partition.
#[derive(Debug, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// The service, as a name number.
    pub service: u32,
    /// The bucket start, epoch seconds.
    pub bucket: i64,
    /// The shard.
    pub seq: Seq,
    /// Rows.
    pub rows: u32,
    /// Oldest and newest row time, epoch ms.
    pub min_ts: i64,
    /// See `min_ts`.
    pub max_ts: i64,
    /// File offset of the first column; the columns follow each other.
    pub offset: u64,
    /// Byte length of each column.
    pub lens: Vec<u32>,
    /// CRC32C of the columns' bytes.
    pub crc: u32,
    /// The text tuples (see `columns`).
    pub tuples: Vec<Vec<u32>>,
}

impl PartitionMeta {
    /// Whether the partition holds a row timed within `from_ms..=to_ms`, by its rows' span.
    pub fn overlaps(&self, from_ms: i64, to_ms: i64) -> bool {
        self.max_ts >= from_ms && self.min_ts <= to_ms
    }
}

/// A block's index.
#[derive(Debug, Serialize, Deserialize)]
pub struct Index {
    /// The kind's tag.
    pub kind: u8,
    /// Oldest row time, epoch ms.
    pub min_ts: i64,
    /// Newest row time, epoch ms.
    pub max_ts: i64,
    /// Every name of the block, once.
    pub names: Vec<String>,
    /// The partitions, sorted by `(service, bucket, seq)`.
    pub partitions: Vec<PartitionMeta>,
}

/// An open block.
#[derive(Debug)]
pub struct Block {
    /// Where it is.
    pub path: PathBuf,
    /// Its index.
    pub index: Index,
    /// Bytes on disk.
    pub bytes: u64,
    file: File,
    /// Partition index by service, then (bucket, shard): looked up by a name borrowed.
    lookup: HashMap<String, HashMap<(i64, Seq), usize>>,
}

/// Writes the block of `partitions` (rows of each sorted by `(timestamp, id)`, none empty) at
/// `path`, durably (see [`Writer`]); returns its size.
pub fn write<K: ReadingKind>(
    path: &Path,
    partitions: &[(PartitionKey, Vec<K>)],
) -> Result<u64, BlockError> {
    let mut writer = Writer::create(path)?;
    for (key, rows) in partitions {
        writer.add(key, rows)?;
    }
    writer.finish::<K>()
}

/// A block being written partition by partition, so that a writer holds one partition's rows
/// at a time, never the block's: each partition's columns go to `<path>.tmp` as they are
/// encoded; [`Writer::finish`] appends the index and the footer, syncs, renames the file to
/// `path` and syncs the directory. A writer dropped unfinished (an error) deletes its file.
pub struct Writer {
    path: PathBuf,
    tmp: PathBuf,
    /// `None` once finished.
    file: Option<std::io::BufWriter<File>>,
    /// Bytes written so far: the next partition's offset.
    at: u64,
    names: Names,
    metas: Vec<PartitionMeta>,
}

impl Writer {
    /// Starts the block at `path`.
    pub fn create(path: &Path) -> Result<Self, BlockError> {
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp)
            .map(std::io::BufWriter::new)
            .map_err(|e| BlockError::io(&tmp, e))?;
        let mut writer = Self {
            path: path.to_path_buf(),
            tmp,
            file: None,
            at: 0,
            names: Names::default(),
            metas: Vec::new(),
        };
        file.write_all(HEADER)
            .map_err(|e| BlockError::io(&writer.tmp, e))?;
        writer.file = Some(file);
        writer.at = HEADER.len() as u64;
        Ok(writer)
    }

    /// Appends one partition (`rows` sorted by `(timestamp, id)`, not empty); partitions come
    /// sorted by `(service, bucket, seq)`.
    pub fn add<K: ReadingKind>(
        &mut self,
        key: &PartitionKey,
        rows: &[K],
    ) -> Result<(), BlockError> {
        let encoded = columns::encode(rows, &mut self.names);
        let offset = self.at;
        let mut lens = Vec::with_capacity(encoded.columns.len());
        let mut crc = 0;
        for column in &encoded.columns {
            lens.push(u32::try_from(column.len()).expect("a column under 4 GiB"));
            crc = crc32c::crc32c_append(crc, column);
            self.write(column)?;
        }
        let times = rows.iter().map(|r| r.timestamp().millis());
        self.metas.push(PartitionMeta {
            service: self.names.intern(key.service.as_str()),
            bucket: key.bucket.epoch_seconds(),
            seq: key.seq,
            rows: rows.len() as u32,
            min_ts: times.clone().min().unwrap_or(0),
            max_ts: times.max().unwrap_or(0),
            offset,
            lens,
            crc,
            tuples: encoded.tuples,
        });
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), BlockError> {
        let file = self
            .file
            .as_mut()
            .expect("an unfinished writer has its file");
        file.write_all(bytes)
            .map_err(|e| BlockError::io(&self.tmp, e))?;
        self.at += bytes.len() as u64;
        Ok(())
    }

    /// Writes the index and the footer, and makes the block durable at its path; returns its
    /// size.
    pub fn finish<K: ReadingKind>(mut self) -> Result<u64, BlockError> {
        let index = Index {
            kind: K::INFO.tag,
            min_ts: self.metas.iter().map(|p| p.min_ts).min().unwrap_or(0),
            max_ts: self.metas.iter().map(|p| p.max_ts).max().unwrap_or(0),
            names: std::mem::take(&mut self.names.list),
            partitions: std::mem::take(&mut self.metas),
        };
        let plain = postcard::to_stdvec(&index).expect("an index serializes");
        let packed = zstd::bulk::compress(&plain, 3).map_err(|e| BlockError::io(&self.tmp, e))?;
        let index_offset = self.at;
        self.write(&packed)?;
        self.write(&index_offset.to_le_bytes())?;
        self.write(&(packed.len() as u64).to_le_bytes())?;
        self.write(&crc32c::crc32c(&packed).to_le_bytes())?;
        self.write(TRAILER)?;
        let file = self.file.take().expect("an unfinished writer has its file");
        let synced = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_data());
        if let Err(error) = synced {
            // A full disk: give back what the half-written file took.
            let _ = fs::remove_file(&self.tmp);
            return Err(BlockError::io(&self.tmp, error));
        }
        fs::rename(&self.tmp, &self.path).map_err(|e| BlockError::io(&self.path, e))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| BlockError::io(dir, e))?;
        }
        Ok(self.at)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Block {
    /// Opens the block at `path`, checking its header, trailer and index.
    pub fn open(path: &Path) -> Result<Self, BlockError> {
        let file = File::open(path).map_err(|e| BlockError::io(path, e))?;
        let bytes = file.metadata().map_err(|e| BlockError::io(path, e))?.len();
        let damaged = |what: &str| BlockError::Damaged(format!("{}: {what}", path.display()));
        let footer = 8 + 8 + 4 + TRAILER.len() as u64;
        if bytes < HEADER.len() as u64 + footer {
            return Err(damaged("too short"));
        }
        let mut head = [0u8; 8];
        file.read_exact_at(&mut head, 0)
            .map_err(|e| BlockError::io(path, e))?;
        let mut tail = vec![0u8; footer as usize];
        file.read_exact_at(&mut tail, bytes - footer)
            .map_err(|e| BlockError::io(path, e))?;
        if head != MAGIC || &tail[20..] != TRAILER {
            return Err(damaged("not a block file"));
        }
        let index_offset = u64::from_le_bytes(tail[0..8].try_into().expect("8 bytes"));
        let index_len = u64::from_le_bytes(tail[8..16].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(tail[16..20].try_into().expect("4 bytes"));
        if index_offset.checked_add(index_len) != Some(bytes - footer) {
            return Err(damaged("the index is out of place"));
        }
        let mut packed = vec![0u8; index_len as usize];
        file.read_exact_at(&mut packed, index_offset)
            .map_err(|e| BlockError::io(path, e))?;
        if crc32c::crc32c(&packed) != crc {
            return Err(damaged("the index checksum does not match"));
        }
        let plain = zstd::stream::decode_all(packed.as_slice())
            .map_err(|e| damaged(&format!("the index: {e}")))?;
        let index: Index =
            postcard::from_bytes(&plain).map_err(|e| damaged(&format!("the index: {e}")))?;
        let mut lookup: HashMap<String, HashMap<(i64, Seq), usize>> = HashMap::new();
        for (i, p) in index.partitions.iter().enumerate() {
            let service = index
                .names
                .get(p.service as usize)
                .ok_or_else(|| damaged("a service name is missing"))?;
            lookup
                .entry(service.clone())
                .or_default()
                .insert((p.bucket, p.seq), i);
        }
        Ok(Self {
            path: path.to_path_buf(),
            index,
            bytes,
            file,
            lookup,
        })
    }

    /// The partition `key`, if the block has rows of it.
    pub fn partition(&self, key: &PartitionKey) -> Option<&PartitionMeta> {
        let at = (key.bucket.epoch_seconds(), key.seq);
        let i = *self.lookup.get(key.service.as_str())?.get(&at)?;
        Some(&self.index.partitions[i])
    }

    /// The key of partition `meta`.
    pub fn key_of(&self, meta: &PartitionMeta) -> Result<PartitionKey, BlockError> {
        let name = self
            .index
            .names
            .get(meta.service as usize)
            .ok_or_else(|| BlockError::Damaged("a service name is missing".into()))?;
        Ok(PartitionKey {
            service: ServiceName::parse(name).map_err(BlockError::Damaged)?,
            bucket: TimeBucket::from_epoch_seconds(meta.bucket),
            seq: meta.seq,
        })
    }

    /// The column bytes of partition `meta`, checked against its checksum.
    pub fn columns(&self, meta: &PartitionMeta) -> Result<Vec<u8>, BlockError> {
        let len: u64 = meta.lens.iter().map(|&l| u64::from(l)).sum();
        let mut bytes = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut bytes, meta.offset)
            .map_err(|e| BlockError::io(&self.path, e))?;
        if crc32c::crc32c(&bytes) != meta.crc {
            return Err(BlockError::Damaged(format!(
                "{}: a partition's checksum does not match",
                self.path.display()
            )));
        }
        Ok(bytes)
    }

    /// Every row of partition `meta` (of `service`, as the caller looked it up) with its time
    /// in `[from, to]`, in key order.
    pub fn rows<K: ReadingKind>(
        &self,
        meta: &PartitionMeta,
        service: &ServiceName,
        from: TimestampMs,
        to: TimestampMs,
    ) -> Result<Vec<K>, BlockError> {
        self.decode(meta, service, |keys| {
            let lo = keys.partition_point(|(t, _)| *t < from);
            let hi = keys.partition_point(|(t, _)| *t <= to);
            (lo..hi).collect()
        })
    }

    /// One page of partition `meta` (see [`PageRequest`]): its rows strictly after the cursor,
    /// in the request's order, at most its limit. Only those rows are decoded.
    pub fn page<K: ReadingKind>(
        &self,
        meta: &PartitionMeta,
        request: &PageRequest,
    ) -> Result<Vec<K>, BlockError> {
        let limit = request.limit as usize;
        let after = request.after;
        self.decode(meta, &request.partition.service, |keys| {
            let key = |&(timestamp, id): &(TimestampMs, ReadingId)| ReadingKey { timestamp, id };
            match request.order {
                Order::Asc => {
                    let lo = keys.partition_point(|k| key(k) <= after);
                    let hi = keys.partition_point(|(t, _)| *t <= request.until);
                    (lo..hi.max(lo)).take(limit).collect()
                }
                Order::Desc => {
                    let lo = keys.partition_point(|(t, _)| *t < request.until);
                    let hi = keys.partition_point(|k| key(k) < after);
                    (lo..hi.max(lo)).rev().take(limit).collect()
                }
            }
        })
    }

    /// The rows of partition `meta` (of `service`) at the positions `select` picks from its
    /// keys (in key order), in the order it gives them.
    fn decode<K: ReadingKind>(
        &self,
        meta: &PartitionMeta,
        service: &ServiceName,
        select: impl FnOnce(&[(TimestampMs, ReadingId)]) -> Vec<usize>,
    ) -> Result<Vec<K>, BlockError> {
        if meta.lens.len() != columns::column_count::<K>() {
            return Err(BlockError::Damaged(format!(
                "{}: a partition has {} columns, its kind {}",
                self.path.display(),
                meta.lens.len(),
                columns::column_count::<K>()
            )));
        }
        let bytes = self.columns(meta)?;
        let split = split(&bytes, &meta.lens);
        let keys = columns::keys(&split)?;
        let positions = select(&keys);
        columns::decode(
            &split,
            &keys,
            &meta.tuples,
            &self.index.names,
            service,
            positions.into_iter(),
        )
    }
}

/// Splits a partition's bytes into its columns.
pub fn split<'a>(bytes: &'a [u8], lens: &[u32]) -> Vec<&'a [u8]> {
    let mut at = 0;
    lens.iter()
        .map(|&len| {
            let column = &bytes[at..at + len as usize];
            at += len as usize;
            column
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reading::sample;
    use crate::model::{ApiReading, Settings};

    #[test]
    fn a_writer_dropped_unfinished_leaves_no_file_and_a_finished_one_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let reading = sample::api();
        let settings = Settings::default();
        let key = PartitionKey {
            service: reading.service.clone(),
            bucket: TimeBucket::containing(reading.timestamp, settings.bucket_width),
            seq: reading.seq(settings.shards),
        };
        let path = dir.path().join("1.blk");
        let mut writer = Writer::create(&path).unwrap();
        writer.add(&key, std::slice::from_ref(&reading)).unwrap();
        drop(writer);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        let mut writer = Writer::create(&path).unwrap();
        writer.add(&key, std::slice::from_ref(&reading)).unwrap();
        let size = writer.finish::<ApiReading>().unwrap();
        let block = Block::open(&path).unwrap();
        assert_eq!(block.bytes, size);
        let meta = block.partition(&key).unwrap();
        let rows: Vec<ApiReading> = block
            .rows(meta, &key.service, reading.timestamp, reading.timestamp)
            .unwrap();
        assert_eq!(rows, vec![reading]);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no .tmp left");
    }
}
