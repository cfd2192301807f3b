//! Failures of the production shape, for real: a 3-node Cassandra cluster (replication factor 3,
//! `LOCAL_QUORUM`), `timebucket serve` replicas as child processes, HAProxy with
//! `deploy/haproxy.cfg` in front of them. Each test kills or restarts something under steady
//! ingest and then reads the tables back: every acknowledged reading is stored, exactly once
//! (see [`load::Verdict`] for the one exception a client retry allows, and how it is checked).
//!
//! These tests need the local cluster of `scripts/cassandra cluster start`, its addresses in
//! `TIMEBUCKET_TEST_CLUSTER` (as `CASSANDRA_CLUSTER_ADDRESSES` gives them to the script), and
//! HAProxy (`scripts/tools haproxy`); without them they fail saying so. `scripts/cluster-test`
//! starts both, runs only these and stops the cluster; plain `scripts/test` leaves them out
//! unless `TIMEBUCKET_TEST_CLUSTER` is set. They kill nodes, so they
//! take turns ([`exclusive`]), and each starts by bringing back any node a failed test left
//! down.

pub(crate) mod harness;
mod load;
mod nodes;
mod replicas;

/// Held for a whole test: tests that kill nodes cannot share the cluster with other tests.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}
