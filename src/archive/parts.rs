//! One data file written or read on a blocking thread, fed by (or feeding) the async side through
//! a small bounded channel of pages, so a bucket of any size streams through in bounded memory
//! and no Parquet encoding or file I/O runs on the async runtime.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::schema::{self, BatchBuilder};
use super::ArchiveError;
use crate::model::{ReadingKind, ServiceName, TimestampMs};

/// Rows per record batch handed to the Parquet writer (and read back at a time).
pub const BATCH_ROWS: usize = 8192;
/// zstd level: 3 is zstd's default, most of the gain of higher levels at a fraction of the CPU.
const ZSTD_LEVEL: i32 = 3;

/// What a finished data file holds.
#[derive(Debug, Clone)]
pub struct Written {
    /// Readings written.
    pub rows: u64,
    /// The oldest and newest reading's time (`None` for no rows).
    pub span: Option<(TimestampMs, TimestampMs)>,
    /// The file's size.
    pub bytes: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

/// A file writer that hashes and counts what passes through it.
struct Hashing {
    file: File,
    sha: Sha256,
    bytes: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Writes every page received on `pages` to `path` (created or truncated) as one Parquet file
/// of kind `K`, with `metadata` as its key-value metadata, and syncs it.
pub fn write<K: ReadingKind>(
    path: PathBuf,
    metadata: Vec<(String, String)>,
    mut pages: mpsc::Receiver<Vec<K>>,
) -> Result<Written, ArchiveError> {
    let parquet = |source| ArchiveError::Parquet {
        path: path.clone(),
        source,
    };
    let file = File::create(&path).map_err(|e| ArchiveError::io("creating", &path, e))?;
    let level = ZstdLevel::try_new(ZSTD_LEVEL).map_err(parquet)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_created_by(format!("timebucket {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(
            metadata
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .collect(),
        ))
        .build();
    let sink = Hashing {
        file,
        sha: Sha256::new(),
        bytes: 0,
    };
    let mut writer =
        ArrowWriter::try_new(sink, schema::schema::<K>(), Some(properties)).map_err(parquet)?;
    let mut batch = BatchBuilder::<K>::default();
    let (mut rows, mut span) = (0u64, None::<(TimestampMs, TimestampMs)>);
    while let Some(page) = pages.blocking_recv() {
        for reading in &page {
            let at = reading.timestamp();
            span = Some(span.map_or((at, at), |(lo, hi)| (lo.min(at), hi.max(at))));
            batch.push(reading);
        }
        rows += page.len() as u64;
        if batch.len() >= BATCH_ROWS {
            writer.write(&batch.finish()).map_err(parquet)?;
        }
    }
    if !batch.is_empty() {
        writer.write(&batch.finish()).map_err(parquet)?;
    }
    // Writes the footer and hands the file back.
    let sink = writer.into_inner().map_err(parquet)?;
    sink.file
        .sync_all()
        .map_err(|e| ArchiveError::io("syncing", &path, e))?;
    Ok(Written {
        rows,
        span,
        bytes: sink.bytes,
        sha256: hex(&sink.sha.finalize()),
    })
}

/// The SHA-256 and size of the file at `path`.
pub fn checksum(path: &Path) -> Result<(String, u64), ArchiveError> {
    let mut file = File::open(path).map_err(|e| ArchiveError::io("opening", path, e))?;
    let mut sha = Sha256::new();
    let bytes =
        std::io::copy(&mut file, &mut sha).map_err(|e| ArchiveError::io("reading", path, e))?;
    Ok((hex(&sha.finalize()), bytes))
}

/// Reads the Parquet file at `path` as readings of kind `K` of `service`, sending them on
/// `pages` [`BATCH_ROWS`] at a time; returns how many were read. Stops early (without error)
/// when the receiver is gone.
pub fn read<K: ReadingKind>(
    path: &Path,
    service: &ServiceName,
    pages: mpsc::Sender<Vec<K>>,
) -> Result<u64, ArchiveError> {
    let parquet = |source| ArchiveError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|e| ArchiveError::io("opening", path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(parquet)?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(parquet)?;
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(|e| parquet(e.into()))?;
        let readings =
            schema::readings::<K>(&batch, service).map_err(|source| ArchiveError::Schema {
                path: path.to_path_buf(),
                source,
            })?;
        rows += readings.len() as u64;
        if pages.blocking_send(readings).is_err() {
            break;
        }
    }
    Ok(rows)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
