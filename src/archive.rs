//! The bucket archive: whole buckets of readings exported as Parquet files before retention
//! drops them, loaded back on demand, and readable where they lie by any analytics engine.
//!
//! ```text
//!  <dir>/manifest.json                                   every complete file: rows, times, SHA-256
//!  <dir>/api/service=checkout/bucket=1764489600/part.parquet
//!  <dir>/host/service=checkout/bucket=1764489600/part.parquet
//!        └kind └service (percent-encoded)  └bucket start, epoch seconds
//! ```
//!
//! One file per (kind, service, bucket), read through the store's partition reads (every shard
//! of the bucket, page by page), so it works the same on both backends. Columns are derived from
//! each kind's declaration ([`schema`]); readings keep their ids, so [`import`] writes them back
//! through the store's idempotent write path and a second import changes nothing.
//!
//! Why Parquet through the `parquet` and `arrow` crates: Parquet is the format DuckDB, pyarrow,
//! Spark, Trino and every warehouse read; it is columnar (a query of one column reads that
//! column), dictionary-encodes repeated names and compresses with zstd, so an archive costs a
//! few bytes per reading. The Apache Arrow project's own Rust crates are the reference writer;
//! typed columns, dictionaries, statistics and the footer all come from them (we only build
//! Arrow arrays), with no default features to keep the build small.
//!
//! Invariants (see [`layout`] and [`manifest`]): a data file is written under a temporary name,
//! synced and renamed before the manifest names it; the manifest is replaced atomically after
//! every bucket; one process at a time changes an archive (a lock file); an export never
//! replaces an archived bucket with fewer readings than it holds (a store only loses readings
//! to expiry), and skips one whose count is unchanged. Automatic archiving ([`auto`]) holds
//! the embedded store's retention until a bucket is archived.

pub mod auto;
pub mod export;
pub mod import;
pub mod layout;
pub mod manifest;
pub mod open;
mod parts;
pub mod schema;

use std::path::{Path, PathBuf};

pub use export::{ExportSummary, Exporter};
pub use import::{import, ImportOptions, ImportSummary};
pub use manifest::{FileEntry, Manifest};

use crate::store::StoreError;

/// Why an archive operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing a file of the archive failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A Parquet file could not be written or read.
    #[error("{path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A data file does not hold what its kind declares.
    #[error("{path}: {source}")]
    Schema {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: schema::SchemaError,
    },
    /// The manifest cannot be used.
    #[error("manifest {path}: {problem}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A data file is not the one the manifest lists (changed or damaged since it was written).
    #[error("{path}: {problem}; the file is not the one the manifest lists")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// How it differs.
        problem: String,
    },
    /// Another process holds the archive.
    #[error(
        "the archive in {dir} is in use by another process (an export, or a `serve \
         --archive-dir` archiving there); wait for it or use another directory"
    )]
    ArchiveInUse {
        /// The archive's directory.
        dir: PathBuf,
    },
    /// A running `serve` holds the embedded store.
    #[error(
        "the embedded store at {dir} is in use (a running `timebucket serve` holds it); stop \
         it first, or archive from it with `serve --archive-dir`"
    )]
    StoreInUse {
        /// The store's directory.
        dir: PathBuf,
    },
    /// There is no embedded store where one was expected.
    #[error(
        "no embedded store at {dir} (check --data-dir; `timebucket serve` creates one at its first \
         start)"
    )]
    NoStore {
        /// The directory looked at.
        dir: PathBuf,
    },
}

impl ArchiveError {
    /// An I/O failure while doing `what` to `path`.
    pub fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        ArchiveError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    /// True when trying again later may succeed: the store was unavailable, or a file could
    /// not be written (a full disk, a lost mount). Automatic archiving retries these; the rest
    /// (a damaged archive, a refused value) need an operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            ArchiveError::Store(e) => e.is_retryable(),
            ArchiveError::Io { .. } | ArchiveError::ArchiveInUse { .. } => true,
            ArchiveError::Parquet { source, .. } => {
                matches!(source, parquet::errors::ParquetError::External(_))
            }
            _ => false,
        }
    }
}
