//! The migration lease: one row in `schema_migration_lock`, taken with a lightweight
//! transaction and given a TTL so that a crashed holder frees it by itself.

use std::time::{Duration, Instant};

use scylla::client::session::Session;
use scylla::response::query_result::QueryResult;
use scylla::value::{CqlValue, Row};
use uuid::Uuid;

use super::MigrateError;
use crate::store::cql::Keyspace;
use crate::store::StoreError;

/// How long a lease lasts if its holder never releases it, seconds.
pub const LEASE_SECS: u32 = 300;
/// How often a waiting `up` tries again.
const RETRY_EVERY: Duration = Duration::from_millis(250);

/// A held lease; release it with [`MigrationLock::release`].
#[derive(Debug)]
pub struct MigrationLock {
    owner: Uuid,
    keyspace: Keyspace,
}

impl MigrationLock {
    /// Takes the lease of `keyspace`, waiting up to `wait` for another holder to release it.
    pub async fn acquire(
        session: &Session,
        keyspace: &Keyspace,
        wait: Duration,
    ) -> Result<Self, MigrateError> {
        let owner = Uuid::new_v4();
        let statement = format!(
            "INSERT INTO {keyspace}.schema_migration_lock (name, owner, acquired_at) \
             VALUES ('migrate', ?, toTimestamp(now())) IF NOT EXISTS USING TTL {LEASE_SECS}"
        );
        let prepared = session
            .prepare(statement.clone())
            .await
            .map_err(|source| StoreError::prepare(statement, source))?;
        let start = Instant::now();
        loop {
            let result = session
                .execute_unpaged(&prepared, (owner,))
                .await
                .map_err(|source| StoreError::execute("taking the migration lock", source))?;
            let (applied, holder) = lwt_outcome(result, "taking the migration lock")?;
            if applied {
                tracing::debug!(%owner, "migration lock taken");
                return Ok(Self {
                    owner,
                    keyspace: keyspace.clone(),
                });
            }
            if start.elapsed() >= wait {
                return Err(MigrateError::LockTimeout {
                    owner: holder
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| "unknown".into()),
                    waited: start.elapsed(),
                    lease_secs: LEASE_SECS,
                });
            }
            tracing::info!(
                holder = %holder.map_or_else(|| "unknown".to_owned(), |h| h.to_string()),
                "another migrate holds the lock; waiting"
            );
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }

    /// Gives the lease back. A failure is only logged: the TTL frees the lease anyway.
    pub async fn release(self, session: &Session) {
        let statement = format!(
            "DELETE FROM {}.schema_migration_lock WHERE name = 'migrate' IF owner = ?",
            self.keyspace
        );
        let outcome = match session.prepare(statement).await {
            Ok(prepared) => session
                .execute_unpaged(&prepared, (self.owner,))
                .await
                .map(drop),
            Err(error) => Err(error.into()),
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, lease_secs = LEASE_SECS, "could not release the migration lock; it expires by itself");
        }
    }
}

/// Reads a lightweight transaction's answer: whether it applied and, if not, the `owner` column
/// of the row that stopped it.
fn lwt_outcome(
    result: QueryResult,
    what: &'static str,
) -> Result<(bool, Option<Uuid>), StoreError> {
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::decode(what, e))?;
    let owner_index = rows.column_specs().get_by_name("owner").map(|(i, _)| i);
    let row: Row = rows.first_row().map_err(|e| StoreError::decode(what, e))?;
    let applied = matches!(row.columns.first(), Some(Some(CqlValue::Boolean(true))));
    let owner = owner_index
        .and_then(|i| row.columns.get(i).cloned().flatten())
        .and_then(|value| value.as_uuid());
    Ok((applied, owner))
}
