//! Reads the deployment settings that `migrate up` recorded in `timebucket_settings`.

use scylla::client::session::Session;

use super::Keyspace;
use crate::model::Settings;
use crate::store::StoreError;

/// Reads every `(name, value)` row of `<keyspace>.timebucket_settings`.
pub async fn read_pairs(
    session: &Session,
    keyspace: &Keyspace,
) -> Result<Vec<(String, i64)>, StoreError> {
    const WHAT: &str = "reading timebucket_settings";
    let text = format!("SELECT name, value FROM {keyspace}.timebucket_settings");
    let statement = session
        .prepare(text.clone())
        .await
        .map_err(|source| StoreError::prepare(text, source))?;
    let result = session
        .execute_unpaged(&statement, ())
        .await
        .map_err(|source| StoreError::execute(WHAT, source))?;
    let rows = result
        .into_rows_result()
        .map_err(|e| StoreError::decode(WHAT, e))?;
    rows.rows::<(String, i64)>()
        .map_err(|e| StoreError::decode(WHAT, e))?
        .map(|row| row.map_err(|e| StoreError::decode(WHAT, e)))
        .collect()
}

/// Reads and validates the settings; fails if `migrate up` has not recorded them.
pub async fn load(session: &Session, keyspace: &Keyspace) -> Result<Settings, StoreError> {
    let pairs = read_pairs(session, keyspace).await.map_err(|e| match e {
        StoreError::Rejected { .. } => StoreError::Settings {
            store: format!("keyspace `{keyspace}`"),
            reason: "the table timebucket_settings does not exist".into(),
        },
        other => other,
    })?;
    Settings::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), *v))).map_err(|reason| {
        StoreError::Settings {
            store: format!("keyspace `{keyspace}`"),
            reason,
        }
    })
}
