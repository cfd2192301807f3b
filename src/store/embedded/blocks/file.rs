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
use crate::model::{ReadingKind, Seq, ServiceName, TimeBucket, TimestampMs};
use crate::store::PartitionKey;

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
    lookup: HashMap<(String, i64, Seq), usize>,
}

/// Writes the block of `partitions` (rows of each sorted by `(timestamp, id)`, none empty) at
/// `path`, durably: written to `<path>.tmp`, synced, renamed, directory synced.
pub fn write<K: ReadingKind>(
    path: &Path,
    partitions: &[(PartitionKey, Vec<K>)],
) -> Result<u64, BlockError> {
    let mut names = Names::default();
    let mut body: Vec<u8> = HEADER.to_vec();
    let mut metas = Vec::with_capacity(partitions.len());
    for (key, rows) in partitions {
        let encoded = columns::encode(rows, &mut names);
        let offset = body.len() as u64;
        let mut lens = Vec::with_capacity(encoded.columns.len());
        for column in &encoded.columns {
            lens.push(u32::try_from(column.len()).expect("a column under 4 GiB"));
            body.extend_from_slice(column);
        }
        metas.push(PartitionMeta {
            service: names.intern(key.service.as_str()),
            bucket: key.bucket.epoch_seconds(),
            seq: key.seq,
            rows: rows.len() as u32,
            min_ts: rows
                .iter()
                .map(|r| r.timestamp().millis())
                .min()
                .unwrap_or(0),
            max_ts: rows
                .iter()
                .map(|r| r.timestamp().millis())
                .max()
                .unwrap_or(0),
            offset,
            lens,
            crc: crc32c::crc32c(&body[offset as usize..]),
            tuples: encoded.tuples,
        });
    }
    let index = Index {
        kind: K::INFO.tag,
        min_ts: metas.iter().map(|p| p.min_ts).min().unwrap_or(0),
        max_ts: metas.iter().map(|p| p.max_ts).max().unwrap_or(0),
        names: names.list,
        partitions: metas,
    };
    let plain = postcard::to_stdvec(&index).expect("an index serializes");
    let packed = zstd::bulk::compress(&plain, 3).map_err(|e| BlockError::io(path, e))?;
    let index_offset = body.len() as u64;
    body.extend_from_slice(&packed);
    body.extend_from_slice(&index_offset.to_le_bytes());
    body.extend_from_slice(&(packed.len() as u64).to_le_bytes());
    body.extend_from_slice(&crc32c::crc32c(&packed).to_le_bytes());
    body.extend_from_slice(TRAILER);
    let tmp = path.with_extension("tmp");
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(&body)?;
        file.sync_data()
    });
    if let Err(error) = written {
        // A full disk: give back what the half-written file took.
        let _ = fs::remove_file(&tmp);
        return Err(BlockError::io(&tmp, error));
    }
    fs::rename(&tmp, path).map_err(|e| BlockError::io(path, e))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BlockError::io(dir, e))?;
    }
    Ok(body.len() as u64)
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
        let mut lookup = HashMap::with_capacity(index.partitions.len());
        for (i, p) in index.partitions.iter().enumerate() {
            let service = index
                .names
                .get(p.service as usize)
                .ok_or_else(|| damaged("a service name is missing"))?;
            lookup.insert((service.clone(), p.bucket, p.seq), i);
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
        let at = (
            key.service.as_str().to_owned(),
            key.bucket.epoch_seconds(),
            key.seq,
        );
        self.lookup.get(&at).map(|&i| &self.index.partitions[i])
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

    /// Every row of partition `meta` with its time in `[from, to]`, in key order.
    pub fn rows<K: ReadingKind>(
        &self,
        meta: &PartitionMeta,
        from: TimestampMs,
        to: TimestampMs,
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
        let service = self.key_of(meta)?.service;
        let lo = keys.partition_point(|(t, _)| *t < from);
        let hi = keys.partition_point(|(t, _)| *t <= to);
        columns::decode(
            &split,
            &keys,
            &meta.tuples,
            &self.index.names,
            &service,
            lo..hi,
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
