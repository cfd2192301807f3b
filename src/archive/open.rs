//! `timebucket archive export|import`: the store opened as `serve` opens it, then the work.
//!
//! The embedded store is opened only when it exists (an export must not create an empty one)
//! and no `serve` holds it (fjall's lock says so; the error says what to do), with retention
//! held whole: opening a store runs an expiry pass, and an archive tool must never be what
//! deletes the data it came to save.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::{import, ArchiveError, Exporter, ImportOptions};
use crate::model::{ServiceName, Settings, TimestampMs};
use crate::store::cql::{CqlSecurity, CqlStore, Keyspace, SessionConfig};
use crate::store::embedded::EmbeddedStore;
use crate::store::{RetentionHold, Store, StoreError};

/// Where the readings are.
#[derive(Debug, Clone)]
pub enum Target {
    /// The embedded store in this directory (`<data-dir>/store`).
    Embedded(PathBuf),
    /// A CQL keyspace.
    Cql {
        /// Contact points.
        nodes: Vec<String>,
        /// The keyspace.
        keyspace: Keyspace,
        /// Credentials and TLS.
        security: CqlSecurity,
    },
}

/// One archive command, validated.
#[derive(Debug, Clone)]
pub enum Command {
    /// Export buckets overlapping `[from, to)` of `services` (all when empty) into `out`.
    Export {
        /// Start of the range.
        from: TimestampMs,
        /// End of the range (exclusive).
        to: TimestampMs,
        /// Services; every known one when empty.
        services: Vec<ServiceName>,
        /// The archive directory.
        out: PathBuf,
    },
    /// Import the archive in `dir`, the buckets overlapping `range` (all when `None`).
    Import {
        /// The archive directory.
        dir: PathBuf,
        /// The range.
        range: Option<(TimestampMs, TimestampMs)>,
    },
}

/// Opens the embedded store in `dir` for an archive command.
pub fn open_embedded(dir: &Path) -> Result<EmbeddedStore, ArchiveError> {
    if !dir.join("lock").exists() {
        return Err(ArchiveError::NoStore {
            dir: dir.to_path_buf(),
        });
    }
    // The settings are read back from the store; `first` only applies to a new one.
    EmbeddedStore::open_held(dir, Settings::default(), RetentionHold::keep_all()).map_err(|e| {
        if held_by_another_process(&e) {
            ArchiveError::StoreInUse {
                dir: dir.to_path_buf(),
            }
        } else {
            e.into()
        }
    })
}

/// fjall refuses to open a database another process (or handle) holds: its own error type,
/// not a message to match.
fn held_by_another_process(error: &StoreError) -> bool {
    std::error::Error::source(error)
        .and_then(|cause| cause.downcast_ref::<fjall::Error>())
        .is_some_and(|e| matches!(e, fjall::Error::Locked))
}

/// Runs `command` against `target`; returns the summary line to print.
pub async fn run(target: Target, command: Command) -> Result<String, ArchiveError> {
    match target {
        Target::Embedded(dir) => {
            let store = Arc::new(open_embedded(&dir)?);
            run_on(store, command, false).await
        }
        Target::Cql {
            nodes,
            keyspace,
            security,
        } => {
            let session = SessionConfig::default();
            let store = CqlStore::open_secured(&nodes, &keyspace, &session, &security).await?;
            run_on(Arc::new(store), command, true).await
        }
    }
}

/// A progress bar on stderr when it is a terminal, none otherwise (logs and pipes get only the
/// summary).
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {msg}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

async fn run_on<S: Store>(
    store: Arc<S>,
    command: Command,
    cql: bool,
) -> Result<String, ArchiveError> {
    match command {
        Command::Export {
            from,
            to,
            services,
            out,
        } => {
            let mut exporter = Exporter::open(store, &out)?.with_progress(progress_bar());
            let summary = exporter.export_range(from, to, &services).await?;
            Ok(format!("{summary} (in {})", out.display()))
        }
        Command::Import { dir, range } => {
            let options = ImportOptions {
                range,
                past_retention: cql,
            };
            let summary = import(store, &dir, options, progress_bar()).await?;
            Ok(summary.to_string())
        }
    }
}
