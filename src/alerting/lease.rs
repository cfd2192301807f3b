//! Exactly one evaluator among the replicas that share a store: whoever holds the lease of
//! [`AlertStore`] evaluates the rules and notifies; the others show the state it stores.
//!
//! ```text
//!  every ttl/3:  holder? ── renew(owner, ttl) ── applied ──► valid until (sent + ttl)
//!                  │              └── refused / failed past validity ──► follower
//!                  └─ no ── acquire(owner, ttl) ── applied ──► leader (log, metric)
//! ```
//!
//! Invariants:
//! - a replica believes it leads only until `ttl` after it *sent* its last successful renewal;
//!   the store lets the lease lapse `ttl` after *applying* it, which is later, so two replicas
//!   never both believe they lead (given clocks that run at the same rate);
//! - a leader that dies (kill -9) is replaced once its lease lapses: within `ttl + ttl/3`;
//! - a leader that stops cleanly releases the lease, so another takes over at its next try.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::store::alerting::AlertStore;
use crate::telemetry::Metrics;

/// Whether this replica is the evaluator now.
#[derive(Debug, Clone)]
pub struct Leadership {
    until: watch::Receiver<Option<Instant>>,
}

impl Leadership {
    /// True while this replica holds an unexpired lease.
    pub fn is_leader(&self) -> bool {
        self.until
            .borrow()
            .is_some_and(|until| until > Instant::now())
    }

    /// A leadership that always leads (a single process that owns its store).
    pub fn always() -> Self {
        let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
        let (tx, until) = watch::channel(Some(far));
        // The sender's value stays readable after it is dropped.
        drop(tx);
        Self { until }
    }
}

/// The task that takes and renews the lease.
pub struct LeaseKeeper {
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl LeaseKeeper {
    /// Starts competing for the lease of `store`, lasting `ttl` (whole seconds, at least one).
    pub fn start<A: AlertStore>(
        store: Arc<A>,
        ttl: Duration,
        metrics: Arc<Metrics>,
    ) -> (Self, Leadership) {
        let (until_tx, until) = watch::channel(None);
        let (stop, mut stopped) = watch::channel(false);
        let owner = Uuid::new_v4();
        let task = tokio::spawn(async move {
            let every = ttl / 3;
            loop {
                let held = until_tx.borrow().is_some_and(|u| u > Instant::now());
                let sent = Instant::now();
                let outcome = if held {
                    store.renew_lease(owner, ttl).await
                } else {
                    store.acquire_lease(owner, ttl).await
                };
                let next = match outcome {
                    Ok(true) => Some(sent + ttl),
                    Ok(false) => None,
                    Err(error) => {
                        tracing::warn!(%error, "the rule evaluator lease could not be checked");
                        // Keep what we had: it lapses by itself at its time.
                        *until_tx.borrow()
                    }
                };
                if next.is_some() != held {
                    if next.is_some() {
                        tracing::info!(%owner, "this replica now evaluates the alerting rules");
                    } else {
                        tracing::warn!(%owner, "this replica no longer evaluates the alerting rules");
                    }
                    metrics.alerting.lease_changes.inc();
                }
                metrics.alerting.leader.set(i64::from(next.is_some()));
                until_tx.send_replace(next);
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => break,
                }
            }
            if until_tx.borrow().is_some() {
                if let Err(error) = store.release_lease(owner).await {
                    tracing::warn!(%error, "could not release the rule evaluator lease; it lapses by itself");
                }
                until_tx.send_replace(None);
                metrics.alerting.leader.set(0);
            }
        });
        (Self { task, stop }, Leadership { until })
    }

    /// Stops competing; a held lease is released so another replica takes over at once.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the lease task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::alerting::FileAlertStore;

    #[tokio::test]
    async fn one_replica_leads_and_the_other_takes_over_when_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileAlertStore::new(dir.path()));
        let metrics = Arc::new(Metrics::new());
        let ttl = Duration::from_secs(1);
        let (first, first_leads) = LeaseKeeper::start(store.clone(), ttl, metrics.clone());
        let wait = |l: Leadership| async move {
            for _ in 0..100 {
                if l.is_leader() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("never became the leader");
        };
        wait(first_leads.clone()).await;
        let (second, second_leads) = LeaseKeeper::start(store.clone(), ttl, metrics.clone());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!second_leads.is_leader());
        first.stop().await;
        assert!(!first_leads.is_leader());
        wait(second_leads.clone()).await;
        second.stop().await;
        assert!(Leadership::always().is_leader());
    }
}
