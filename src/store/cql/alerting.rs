//! [`AlertStore`] on Scylla / Cassandra: the tables `alert_groups` and `alert_evaluator_lease`
//! of `migrations/0002_alerting.cql`, every statement prepared once.
//!
//! The lease is one row taken with a lightweight transaction (`INSERT ... IF NOT EXISTS USING
//! TTL`) and renewed with another (`UPDATE ... USING TTL ... IF owner = ?`): Paxos makes the
//! two replicas that race for it agree on one winner, and the TTL frees it when its holder
//! dies without a word. Its owner column outlives the INSERT's row marker because every renew
//! rewrites it with a fresh TTL, so `IF NOT EXISTS` keeps seeing the row while it is renewed.
//! Saves are plain writes, one row per group replaced whole, at the session's consistency or,
//! given [`CqlAlertStore::with_write_profile`], at the store's write consistency like readings.

use std::sync::Arc;
use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfileHandle;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use uuid::Uuid;

use super::Keyspace;
use crate::model::TimestampMs;
use crate::store::alerting::{AlertStore, AlertStoreError};
use crate::store::StoreError;

/// The name of the rule evaluator's lease row.
const LEASE_NAME: &str = "rule-evaluator";

/// The alerting tables of one keyspace.
#[derive(Clone)]
pub struct CqlAlertStore {
    session: Arc<Session>,
    load: PreparedStatement,
    save: PreparedStatement,
    delete: PreparedStatement,
    acquire: PreparedStatement,
    renew: PreparedStatement,
    release: PreparedStatement,
}

impl std::fmt::Debug for CqlAlertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CqlAlertStore").finish_non_exhaustive()
    }
}

impl CqlAlertStore {
    /// Prepares the statements on `session` for `keyspace` (migration 0002 must have run).
    pub async fn open(session: Arc<Session>, keyspace: &Keyspace) -> Result<Self, StoreError> {
        let prepare = |text: String| {
            let session = session.clone();
            async move {
                session
                    .prepare(text.clone())
                    .await
                    .map_err(|source| StoreError::prepare(text, source))
            }
        };
        Ok(Self {
            load: prepare(format!(
                "SELECT state FROM {keyspace}.alert_groups WHERE group_name = ?"
            ))
            .await?,
            save: prepare(format!(
                "INSERT INTO {keyspace}.alert_groups (group_name, state, saved_at) VALUES (?, ?, ?)"
            ))
            .await?,
            delete: prepare(format!(
                "DELETE FROM {keyspace}.alert_groups WHERE group_name = ?"
            ))
            .await?,
            acquire: prepare(format!(
                "INSERT INTO {keyspace}.alert_evaluator_lease (name, owner, renewed_at) \
                 VALUES (?, ?, toTimestamp(now())) IF NOT EXISTS USING TTL ?"
            ))
            .await?,
            renew: prepare(format!(
                "UPDATE {keyspace}.alert_evaluator_lease USING TTL ? \
                 SET owner = ?, renewed_at = toTimestamp(now()) WHERE name = ? IF owner = ?"
            ))
            .await?,
            release: prepare(format!(
                "DELETE FROM {keyspace}.alert_evaluator_lease WHERE name = ? IF owner = ?"
            ))
            .await?,
            session,
        })
    }

    /// Saves and deletes run with `profile` from now on (the session's default profile is the
    /// read profile; `serve` passes [`super::CqlStore::write_profile`]).
    pub fn with_write_profile(mut self, profile: ExecutionProfileHandle) -> Self {
        self.save
            .set_execution_profile_handle(Some(profile.clone()));
        self.delete.set_execution_profile_handle(Some(profile));
        self
    }

    /// Runs a lightweight transaction; whether it applied (its first column).
    async fn lwt(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
        what: &'static str,
    ) -> Result<bool, AlertStoreError> {
        let result = self
            .session
            .execute_unpaged(statement, values)
            .await
            .map_err(|source| StoreError::execute(what, source))?;
        let rows = result
            .into_rows_result()
            .map_err(|e| StoreError::decode(what, e))?;
        let row: scylla::value::Row = rows.first_row().map_err(|e| StoreError::decode(what, e))?;
        Ok(matches!(
            row.columns.first(),
            Some(Some(scylla::value::CqlValue::Boolean(true)))
        ))
    }
}

/// A TTL in whole seconds, at least one (CQL's unit).
fn ttl_seconds(ttl: Duration) -> i32 {
    i32::try_from(ttl.as_secs().max(1)).unwrap_or(i32::MAX)
}

impl AlertStore for CqlAlertStore {
    async fn load_group(&self, group: &str) -> Result<Option<Vec<u8>>, AlertStoreError> {
        const WHAT: &str = "reading an alert group's state";
        let result = self
            .session
            .execute_unpaged(&self.load, (group,))
            .await
            .map_err(|source| StoreError::execute(WHAT, source))?;
        let rows = result
            .into_rows_result()
            .map_err(|e| StoreError::decode(WHAT, e))?;
        let row = rows
            .maybe_first_row::<(Option<Vec<u8>>,)>()
            .map_err(|e| StoreError::decode(WHAT, e))?;
        Ok(row.and_then(|(state,)| state))
    }

    async fn save_group(&self, group: &str, state: &[u8]) -> Result<(), AlertStoreError> {
        let now = CqlTimestamp(TimestampMs::now().millis());
        self.session
            .execute_unpaged(&self.save, (group, state, now))
            .await
            .map_err(|source| StoreError::execute("saving an alert group's state", source))?;
        Ok(())
    }

    async fn delete_group(&self, group: &str) -> Result<(), AlertStoreError> {
        self.session
            .execute_unpaged(&self.delete, (group,))
            .await
            .map_err(|source| StoreError::execute("deleting an alert group's state", source))?;
        Ok(())
    }

    async fn acquire_lease(&self, owner: Uuid, ttl: Duration) -> Result<bool, AlertStoreError> {
        self.lwt(
            &self.acquire,
            (LEASE_NAME, owner, ttl_seconds(ttl)),
            "taking the rule evaluator lease",
        )
        .await
    }

    async fn renew_lease(&self, owner: Uuid, ttl: Duration) -> Result<bool, AlertStoreError> {
        self.lwt(
            &self.renew,
            (ttl_seconds(ttl), owner, LEASE_NAME, owner),
            "renewing the rule evaluator lease",
        )
        .await
    }

    async fn release_lease(&self, owner: Uuid) -> Result<(), AlertStoreError> {
        self.lwt(
            &self.release,
            (LEASE_NAME, owner),
            "releasing the rule evaluator lease",
        )
        .await
        .map(drop)
    }
}
