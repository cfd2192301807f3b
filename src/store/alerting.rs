//! What alerting keeps in the store: the state of each rule group and the evaluator lease.
//!
//! A trait of its own beside [`super::Store`] (which stays about readings): [`AlertStore`] is
//! implemented by [`super::cql::alerting::CqlAlertStore`] (tables `alert_groups` and
//! `alert_evaluator_lease` of migration 0002) and by
//! [`super::embedded::alerting::FileAlertStore`] (files under the data directory), and one
//! conformance suite (`tests/it/alerting/store.rs`) runs against both.
//!
//! Contract:
//! - a group's state is opaque bytes (`alerting::state::StoredGroup` as JSON), replaced whole by
//!   each save; a load sees the last completed save, never part of one;
//! - the lease has one holder at a time. `acquire_lease` takes it only if nobody holds it (or the
//!   holder's time ran out), `renew_lease` extends it only for its holder, both for `ttl` from
//!   the moment the store applies them; a holder that stops renewing loses it after `ttl`.
//!   A holder that cannot renew must assume it lost the lease `ttl` after it *sent* its last
//!   successful renewal, which is never later than the store lets it lapse.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use uuid::Uuid;

use super::StoreError;

/// Why the alerting state or the lease could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AlertStoreError {
    /// The CQL cluster failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A state file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl AlertStoreError {
    /// True when trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            AlertStoreError::Store(e) => e.is_retryable(),
            AlertStoreError::Io { .. } => true,
        }
    }
}

/// The alerting state and the evaluator lease.
pub trait AlertStore: Send + Sync + 'static {
    /// The stored state of group `group`, if any.
    fn load_group(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, AlertStoreError>> + Send;

    /// Replaces the stored state of group `group` with `state`.
    fn save_group(
        &self,
        group: &str,
        state: &[u8],
    ) -> impl Future<Output = Result<(), AlertStoreError>> + Send;

    /// Forgets group `group` (it left the rule files).
    fn delete_group(&self, group: &str)
        -> impl Future<Output = Result<(), AlertStoreError>> + Send;

    /// Takes the evaluator lease for `owner` for `ttl` when nobody holds it; true if taken.
    fn acquire_lease(
        &self,
        owner: Uuid,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, AlertStoreError>> + Send;

    /// Extends `owner`'s lease to `ttl` from now; false when `owner` does not hold it.
    fn renew_lease(
        &self,
        owner: Uuid,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, AlertStoreError>> + Send;

    /// Gives the lease up if `owner` holds it, so another replica takes over at once.
    fn release_lease(
        &self,
        owner: Uuid,
    ) -> impl Future<Output = Result<(), AlertStoreError>> + Send;
}
