//! The reload hub: one place that SIGHUP and `POST /-/reload` trigger, and that every subsystem
//! with a config file subscribes to.
//!
//! How a subsystem subscribes (the scraper does this in `server.rs`; alert rules can do the
//! same): give the hub a name and a function that re-reads its config and applies it, or
//! refuses it and keeps the running one:
//!
//! ```no_run
//! # use timebucket::reload::ReloadHub;
//! # async fn demo(hub: ReloadHub) {
//! hub.subscribe("rules", || async {
//!     // re-read the rules file; Err keeps the old rules and is reported to the caller
//!     Ok::<String, Box<dyn std::error::Error + Send + Sync>>("12 rules".to_owned())
//! });
//! let outcomes = hub.reload().await; // what SIGHUP and POST /-/reload do
//! # }
//! ```
//!
//! Invariants: reloads never overlap (a second trigger waits for the first), subscribers are
//! reloaded in the order they subscribed, and one subscriber failing does not stop the others.
//! A reload only re-reads configuration: it never touches the WAL, so no accepted data is lost.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// What a subscriber's reload gives: a one-line summary, or why the new config was refused.
pub type ReloadResult = Result<String, Box<dyn std::error::Error + Send + Sync>>;

type ReloadFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ReloadResult> + Send>> + Send + Sync>;

/// The outcome of one subscriber's reload.
#[derive(Debug)]
pub struct ReloadOutcome {
    /// The name it subscribed with.
    pub name: &'static str,
    /// Its summary, or the problem (the running config was kept).
    pub result: Result<String, String>,
}

#[derive(Default)]
struct Inner {
    subscribers: Mutex<Vec<(&'static str, ReloadFn)>>,
    /// Held for a whole reload, so two never interleave.
    running: tokio::sync::Mutex<()>,
}

/// The hub; cheap to clone, every clone is the same hub.
#[derive(Clone, Default)]
pub struct ReloadHub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ReloadHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.names();
        f.debug_struct("ReloadHub")
            .field("subscribers", &names)
            .finish()
    }
}

impl ReloadHub {
    /// A hub without subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `reload`, run on every trigger under `name`.
    pub fn subscribe<F, Fut>(&self, name: &'static str, reload: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ReloadResult> + Send + 'static,
    {
        let reload: ReloadFn = Arc::new(move || Box::pin(reload()));
        self.inner
            .subscribers
            .lock()
            .expect("reload subscribers lock")
            .push((name, reload));
    }

    /// The names of the subscribers, in order.
    pub fn names(&self) -> Vec<&'static str> {
        let subscribers = self
            .inner
            .subscribers
            .lock()
            .expect("reload subscribers lock");
        subscribers.iter().map(|(name, _)| *name).collect()
    }

    /// Reloads every subscriber, one after the other; logs and returns each outcome.
    pub async fn reload(&self) -> Vec<ReloadOutcome> {
        let _running = self.inner.running.lock().await;
        let subscribers = self
            .inner
            .subscribers
            .lock()
            .expect("reload subscribers lock")
            .clone();
        let mut outcomes = Vec::with_capacity(subscribers.len());
        for (name, reload) in subscribers {
            let result = reload().await.map_err(|e| e.to_string());
            match &result {
                Ok(summary) => tracing::info!(subsystem = name, "reloaded: {summary}"),
                Err(problem) => {
                    tracing::error!(subsystem = name, %problem, "reload refused; the running configuration stays")
                }
            }
            outcomes.push(ReloadOutcome { name, result });
        }
        outcomes
    }

    /// Reloads on every SIGHUP until the returned task is aborted (Unix; elsewhere it ends at
    /// once).
    pub fn reload_on_sighup(&self) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                    tracing::warn!("cannot listen for SIGHUP; reload with POST /-/reload");
                    return;
                };
                while hangups.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading");
                    hub.reload().await;
                }
            }
            #[cfg(not(unix))]
            drop(hub);
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn every_subscriber_reloads_in_order_and_a_failure_stops_no_other() {
        let hub = ReloadHub::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        hub.subscribe("bad", || async { Err("line 3: unknown key `x`".into()) });
        hub.subscribe("good", move || {
            let seen = seen.clone();
            async move { Ok(format!("call {}", seen.fetch_add(1, Ordering::SeqCst) + 1)) }
        });
        let outcomes = hub.reload().await;
        assert_eq!(hub.names(), ["bad", "good"]);
        assert_eq!(
            outcomes[0].result,
            Err("line 3: unknown key `x`".to_owned())
        );
        assert_eq!(outcomes[1].result, Ok("call 1".to_owned()));
        let (a, b) = tokio::join!(hub.reload(), hub.reload());
        assert_eq!((a.len(), b.len()), (2, 2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
