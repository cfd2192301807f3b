//! Applies and lists migrations against a cluster. See the module note of [`crate::migrate`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use scylla::client::session::Session;

use super::lock::MigrationLock;
use super::{MigrateError, Migration, Replication, SettingsRequest};
use crate::model::Settings;
use crate::model::TimestampMs;
use crate::store::cql::{copy_per_code_rollups, settings as stored_settings, Keyspace};
use crate::store::StoreError;

/// The migration that moves rollups to one row per endpoint: its tables are followed by a data
/// step, the copy of the per-code rows (`store::cql::copy_per_code_rollups`).
const PER_ENDPOINT_ROLLUPS: i32 = 4;

/// What `up` needs besides the session and the migration files.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The keyspace to create (if needed) and migrate.
    pub keyspace: Keyspace,
    /// Replication for a keyspace created by this run; an existing keyspace is left as it is.
    pub replication: Replication,
    /// Settings flags, checked against (or recorded as) the keyspace's settings.
    pub settings: SettingsRequest,
    /// How long to wait for another `up` to release the lock.
    pub lock_wait: Duration,
}

impl UpOptions {
    /// Default `lock_wait`: two minutes.
    pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(120);
}

/// What `up` did.
#[derive(Debug)]
pub struct UpReport {
    /// The migrations this run applied, in order.
    pub applied: Vec<(i32, String)>,
    /// The keyspace's settings (recorded now or before).
    pub settings: Settings,
}

/// The state of one migration in a keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationState {
    /// Applied, and the file is unchanged.
    Applied,
    /// Not applied yet.
    Pending,
    /// Applied, but the file changed since.
    Edited,
    /// Applied, but no file has its version.
    MissingFile,
}

/// One row of `migrate status`.
#[derive(Debug, Clone)]
pub struct MigrationStatus {
    /// The version number.
    pub version: i32,
    /// The name (from the file, or as recorded when the file is missing).
    pub name: String,
    /// Applied, pending, edited or missing.
    pub state: MigrationState,
    /// When it was applied.
    pub applied_at: Option<DateTime<Utc>>,
}

/// A row of `schema_migrations`.
#[derive(Debug, Clone)]
struct AppliedRecord {
    version: i32,
    name: String,
    checksum: String,
    applied_at: DateTime<Utc>,
}

/// Applies every pending migration of `migrations` to the keyspace, creating it if needed.
pub async fn up(
    session: &Session,
    migrations: &[Migration],
    options: &UpOptions,
) -> Result<UpReport, MigrateError> {
    bootstrap(session, &options.keyspace, &options.replication).await?;
    let lock = MigrationLock::acquire(session, &options.keyspace, options.lock_wait).await?;
    let outcome = apply_pending(session, &options.keyspace, migrations, &options.settings).await;
    lock.release(session).await;
    outcome
}

/// Lists every migration, file or record, with its state. Reads only; creates nothing.
pub async fn status(
    session: &Session,
    keyspace: &Keyspace,
    migrations: &[Migration],
) -> Result<Vec<MigrationStatus>, MigrateError> {
    let applied = if table_exists(session, keyspace, "schema_migrations").await? {
        read_applied(session, &format!("{keyspace}.schema_migrations")).await?
    } else {
        Vec::new()
    };
    let mut rows: Vec<MigrationStatus> = migrations
        .iter()
        .map(|m| {
            let record = applied.iter().find(|r| r.version == m.version);
            let state = match record {
                None => MigrationState::Pending,
                Some(r) if r.checksum == m.checksum => MigrationState::Applied,
                Some(_) => MigrationState::Edited,
            };
            MigrationStatus {
                version: m.version,
                name: m.name.clone(),
                state,
                applied_at: record.map(|r| r.applied_at),
            }
        })
        .collect();
    for record in &applied {
        if !migrations.iter().any(|m| m.version == record.version) {
            rows.push(MigrationStatus {
                version: record.version,
                name: record.name.clone(),
                state: MigrationState::MissingFile,
                applied_at: Some(record.applied_at),
            });
        }
    }
    rows.sort_by_key(|r| r.version);
    Ok(rows)
}

/// Creates the keyspace and the bookkeeping tables. Every statement is `IF NOT EXISTS`, so
/// concurrent runs agree. The session never `USE`s the keyspace: every statement names its
/// tables with it (Cassandra warns about `USE` with prepared statements, whose unqualified
/// names are ambiguous).
async fn bootstrap(
    session: &Session,
    keyspace: &Keyspace,
    replication: &Replication,
) -> Result<(), MigrateError> {
    let statements = [
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {}",
            replication.to_cql()
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations \
             (version int PRIMARY KEY, name text, checksum text, applied_at timestamp)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.schema_migration_lock \
             (name text PRIMARY KEY, owner uuid, acquired_at timestamp)"
        ),
        format!("CREATE TABLE IF NOT EXISTS {keyspace}.timebucket_settings (name text PRIMARY KEY, value bigint)"),
    ];
    for statement in statements {
        run_ddl(session, &statement).await?;
    }
    Ok(())
}

async fn apply_pending(
    session: &Session,
    keyspace: &Keyspace,
    migrations: &[Migration],
    request: &SettingsRequest,
) -> Result<UpReport, MigrateError> {
    let settings = settle_settings(session, keyspace, request).await?;
    let applied = read_applied(session, &format!("{keyspace}.schema_migrations")).await?;
    for record in &applied {
        match migrations.iter().find(|m| m.version == record.version) {
            None => {
                return Err(MigrateError::MissingFile {
                    version: record.version,
                    name: record.name.clone(),
                })
            }
            Some(m) if m.checksum != record.checksum => {
                return Err(MigrateError::Edited {
                    version: m.version,
                    name: m.name.clone(),
                    recorded: record.checksum.clone(),
                    found: m.checksum.clone(),
                })
            }
            Some(_) => {}
        }
    }
    let record_statement = format!(
        "INSERT INTO {keyspace}.schema_migrations (version, name, checksum, applied_at) \
         VALUES (?, ?, ?, ?)"
    );
    let record = session
        .prepare(record_statement.as_str())
        .await
        .map_err(|source| StoreError::prepare(record_statement, source))?;
    let mut done = Vec::new();
    for migration in migrations
        .iter()
        .filter(|m| !applied.iter().any(|r| r.version == m.version))
    {
        tracing::info!(version = migration.version, name = %migration.name, "applying migration");
        for statement in migration.statements(&settings, keyspace)? {
            run_ddl(session, &statement).await?;
        }
        if migration.version == PER_ENDPOINT_ROLLUPS {
            let copied =
                copy_per_code_rollups(session, keyspace, &settings, TimestampMs::now()).await?;
            tracing::info!(
                rows = copied.rows,
                stored = copied.stored,
                coverage = copied.coverage,
                "copied the per-code rollups into the per-endpoint tables"
            );
        }
        session
            .execute_unpaged(
                &record,
                (
                    migration.version,
                    &migration.name,
                    &migration.checksum,
                    Utc::now(),
                ),
            )
            .await
            .map_err(|source| StoreError::execute("recording an applied migration", source))?;
        done.push((migration.version, migration.name.clone()));
    }
    Ok(UpReport {
        applied: done,
        settings,
    })
}

/// Records the requested settings in a fresh keyspace, or checks them against the record.
async fn settle_settings(
    session: &Session,
    keyspace: &Keyspace,
    request: &SettingsRequest,
) -> Result<Settings, MigrateError> {
    let pairs = stored_settings::read_pairs(session, keyspace).await?;
    if !pairs.is_empty() {
        let recorded = Settings::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), *v))).map_err(
            |reason| StoreError::Settings {
                store: format!("keyspace `{keyspace}`"),
                reason,
            },
        )?;
        request.check_against(&recorded)?;
        return Ok(recorded);
    }
    let settings = request.resolve_fresh()?;
    let insert = format!(
        "INSERT INTO {keyspace}.timebucket_settings (name, value) VALUES (?, ?) IF NOT EXISTS"
    );
    let prepared = session
        .prepare(insert.as_str())
        .await
        .map_err(|source| StoreError::prepare(insert, source))?;
    for (name, value) in settings.to_pairs() {
        session
            .execute_unpaged(&prepared, (name, value))
            .await
            .map_err(|source| StoreError::execute("recording settings", source))?;
    }
    tracing::info!(settings = %super::Described(&settings), "recorded deployment settings");
    Ok(settings)
}

/// Runs one DDL statement, then waits until every node agrees on the schema.
async fn run_ddl(session: &Session, statement: &str) -> Result<(), MigrateError> {
    session
        .query_unpaged(statement, ())
        .await
        .map_err(|source| StoreError::execute("a schema change", source))?;
    session
        .await_schema_agreement()
        .await
        .map_err(|source| StoreError::execute("waiting for schema agreement", source))?;
    Ok(())
}

async fn table_exists(
    session: &Session,
    keyspace: &Keyspace,
    table: &str,
) -> Result<bool, MigrateError> {
    const WHAT: &str = "reading system_schema.tables";
    let result = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
            (keyspace.as_str(), table),
        )
        .await
        .map_err(|source| StoreError::execute(WHAT, source))?;
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::decode(WHAT, e))?;
    Ok(rows.rows_num() > 0)
}

async fn read_applied(session: &Session, table: &str) -> Result<Vec<AppliedRecord>, MigrateError> {
    const WHAT: &str = "reading schema_migrations";
    let result = session
        .query_unpaged(
            format!("SELECT version, name, checksum, applied_at FROM {table}"),
            (),
        )
        .await
        .map_err(|source| StoreError::execute(WHAT, source))?;
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::decode(WHAT, e))?;
    let typed = rows
        .rows::<(i32, String, String, DateTime<Utc>)>()
        .map_err(|e| StoreError::decode(WHAT, e))?;
    let mut records = Vec::new();
    for row in typed {
        let (version, name, checksum, applied_at) = row.map_err(|e| StoreError::decode(WHAT, e))?;
        records.push(AppliedRecord {
            version,
            name,
            checksum,
            applied_at,
        });
    }
    Ok(records)
}
