//! Schema migrations: `timebucket migrate up` and `timebucket migrate status`.
//!
//! Invariants:
//! - Migrations are the numbered files of `migrations/`, applied in version order, each once.
//!   Applied versions are recorded with the file's checksum in `schema_migrations`; an applied
//!   file that has since been edited is refused, never re-applied.
//! - Only one `up` works at a time: it holds a lightweight-transaction lease in
//!   `schema_migration_lock` (with a TTL, so a crashed holder cannot block forever). A second
//!   concurrent `up` waits, then finds nothing left to do.
//! - Every DDL statement is `IF NOT EXISTS` and followed by a wait for schema agreement, so a
//!   migration interrupted half way can simply be run again.
//! - Deployment settings (bucket width, shards, TTL, window) are recorded on the first `up` and
//!   can never change afterwards: readers and writers take them from the database.
//! - A migration may have a data step, run after its DDL and before it is recorded (0004 copies
//!   the per-code rollups: `store::cql::copy_per_code_rollups`); it is idempotent like the DDL.

pub mod lock;
pub mod replication;
pub mod runner;
pub mod settings;
pub mod source;

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use replication::Replication;
pub use runner::{status, up, MigrationState, MigrationStatus, UpOptions, UpReport};
pub use settings::{Described, SettingsRequest};
pub use source::Migration;

use crate::store::StoreError;

/// Why a migration command failed.
#[derive(Debug, Error)]
pub enum MigrateError {
    /// The migrations folder (or a file in it) cannot be read.
    #[error("cannot read migrations from {}: {source}", path.display())]
    MigrationsDir {
        /// The folder or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `.cql` file is not named `NNNN_name.cql`.
    #[error("migration file {} must be named NNNN_name.cql", path.display())]
    BadFileName {
        /// The file.
        path: PathBuf,
    },
    /// Two files share a version number.
    #[error("two migration files have version {version:04}")]
    DuplicateVersion {
        /// The version.
        version: i32,
    },
    /// A migration file cannot be rendered.
    #[error("migration {version:04}_{name} cannot be used: {reason}")]
    BadMigration {
        /// Its version.
        version: i32,
        /// Its name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// An applied migration's file changed since it was applied.
    #[error("migration {version:04}_{name} was edited after it was applied (recorded checksum {recorded}, file now {found}); restore the file and add a new migration instead")]
    Edited {
        /// Its version.
        version: i32,
        /// Its name.
        name: String,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of the file now.
        found: String,
    },
    /// The keyspace has a migration this folder does not.
    #[error("migration {version:04}_{name} is applied in the keyspace but missing from the migrations folder; is this an older timebucket?")]
    MissingFile {
        /// Its version.
        version: i32,
        /// Its recorded name.
        name: String,
    },
    /// A settings flag disagrees with what the keyspace recorded.
    #[error("setting {name} is recorded as {recorded} in this keyspace and cannot change (asked for {requested}); settings are fixed at the first `migrate up`")]
    SettingsConflict {
        /// The setting.
        name: &'static str,
        /// The recorded value.
        recorded: i64,
        /// The requested value.
        requested: i64,
    },
    /// The requested settings are inconsistent.
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    /// Another `migrate up` held the lock for too long.
    #[error("another `migrate up` ({owner}) still holds the migration lock after {waited:?}; it expires by itself {lease_secs}s after it was taken")]
    LockTimeout {
        /// The holder's id.
        owner: String,
        /// How long we waited.
        waited: Duration,
        /// The lease length.
        lease_secs: u32,
    },
    /// The cluster failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
