//! Alerting: Prometheus-format rule files evaluated by the PromQL engine, alerts kept in the
//! store, delivered to Alertmanager and webhooks, with exactly one evaluator among replicas.
//!
//! ```text
//!  --rules *.yml ──rules::load──► groups ──► one task per group (group.rs), on its slots:
//!                                              Engine::instant(expr, slot) → state::RuleState
//!                                              │ save: AlertStore (CQL table / files)
//!                                              │ notify: Alertmanager API v2, webhooks
//!  lease.rs: AlertStore lease (LWT + TTL) ─► Leadership: only its holder evaluates and notifies;
//!                                            the others re-read the stored state at each slot
//!  view.rs: AlertsView ─► /api/v1/alerts, /api/v1/rules, the console
//! ```
//!
//! Invariants:
//! - the evaluator alone writes state and notifies; a replica that becomes it first re-reads the
//!   stored state, so `for` countdowns, firing alerts and what the webhooks were told carry over
//!   a restart or a leader change;
//! - a reload (SIGHUP, `POST /-/reload`) that fails validation changes nothing; one that
//!   succeeds keeps the state of every rule whose group, name, expression and labels are
//!   unchanged ([`rules::AlertRule::identity`]);
//! - nothing here waits on a receiver: notification queues are bounded and drop, counted.

pub mod clock;
pub mod group;
pub mod lease;
pub mod notify;
pub mod rules;
pub mod state;
pub mod template;
pub mod view;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::promql::source::queries::QueriesSource;
use crate::promql::Engine;
use crate::store::alerting::AlertStore;
use crate::store::Store;
use crate::telemetry::Metrics;
use clock::Clock;
use group::{GroupState, GroupTask, Shared};
use lease::LeaseKeeper;
pub use notify::{NotifyConfig, RetryPolicy};
pub use rules::RulesError;
pub use view::{AlertInfo, AlertsView, GroupInfo, RuleInfo};

/// What `serve` is told about alerting.
#[derive(Clone)]
pub struct AlertingConfig {
    /// `--rules`: files and globs; empty: alerting is off.
    pub rule_files: Vec<String>,
    /// The interval of a group that names none.
    pub default_interval: Duration,
    /// How often a firing alert is resent to Alertmanager.
    pub resend_delay: Duration,
    /// How long the evaluator lease lasts unrenewed (whole seconds).
    pub lease_ttl: Duration,
    /// Base URL of this service in links (`generatorURL`, `$externalURL`); `None`: the
    /// listener's address.
    pub external_url: Option<String>,
    /// Receivers.
    pub notify: NotifyConfig,
    /// Where the embedded store's alert state files live (`<data-dir>/alerting`).
    pub state_dir: PathBuf,
    /// The evaluation clock (the wall clock but in tests).
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AlertingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertingConfig")
            .field("rule_files", &self.rule_files)
            .field("default_interval", &self.default_interval)
            .field("resend_delay", &self.resend_delay)
            .field("lease_ttl", &self.lease_ttl)
            .field("external_url", &self.external_url)
            .field("notify", &self.notify)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl AlertingConfig {
    /// Default `default_interval`: Prometheus' `evaluation_interval`.
    pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(60);
    /// Default `resend_delay`: Prometheus' `--rules.alert.resend-delay`.
    pub const DEFAULT_RESEND_DELAY: Duration = Duration::from_secs(60);
    /// Default `lease_ttl`: a dead evaluator is replaced within about 20 s.
    pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);

    /// Alerting off, every default, state files in `state_dir`.
    pub fn off(state_dir: PathBuf) -> Self {
        Self {
            rule_files: Vec::new(),
            default_interval: Self::DEFAULT_EVALUATION_INTERVAL,
            resend_delay: Self::DEFAULT_RESEND_DELAY,
            lease_ttl: Self::DEFAULT_LEASE_TTL,
            external_url: None,
            notify: NotifyConfig::default(),
            state_dir,
            clock: Arc::new(clock::SystemClock),
        }
    }

    /// True when rule files are configured.
    pub fn enabled(&self) -> bool {
        !self.rule_files.is_empty()
    }
}

/// A running group.
struct Running {
    state: Arc<Mutex<GroupState>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The running alerting: its groups, the lease and the receivers.
pub struct Alerting<S, A> {
    shared: Arc<Shared<S, A>>,
    rule_files: Vec<String>,
    default_interval: Duration,
    running: tokio::sync::Mutex<Vec<Running>>,
    lease: tokio::sync::Mutex<Option<LeaseKeeper>>,
    view: AlertsView,
}

impl<S: Store, A: AlertStore> Alerting<S, A> {
    /// Loads the rule files and starts competing for the lease, evaluating, notifying.
    /// `external_url` is the configured one or the listener's.
    pub async fn start(
        config: &AlertingConfig,
        external_url: String,
        engine: Engine<QueriesSource<S>>,
        store: Arc<A>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, RulesError> {
        let groups = rules::load(&config.rule_files, config.default_interval)?;
        let (lease, leadership) =
            LeaseKeeper::start(store.clone(), config.lease_ttl, metrics.clone());
        let shared = Arc::new(Shared {
            engine,
            store,
            leadership,
            clock: config.clock.clone(),
            notifier: notify::Notifier::start(&config.notify, metrics.clone()),
            resend_delay: config.resend_delay,
            external_url,
            metrics,
        });
        let alerting = Self {
            shared,
            rule_files: config.rule_files.clone(),
            default_interval: config.default_interval,
            running: tokio::sync::Mutex::new(Vec::new()),
            lease: tokio::sync::Mutex::new(Some(lease)),
            view: AlertsView::default(),
        };
        let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
        tracing::info!(groups = groups.len(), rules, "alerting rules loaded");
        alerting.replace(groups).await;
        Ok(alerting)
    }

    /// What `/api/v1/alerts`, `/api/v1/rules` and the console read.
    pub fn view(&self) -> AlertsView {
        self.view.clone()
    }

    /// Re-reads the rule files; on success the new groups run (keeping the state of unchanged
    /// rules) and a summary is returned; on failure the running rules stay.
    pub async fn reload(&self) -> Result<String, RulesError> {
        let groups = rules::load(&self.rule_files, self.default_interval)?;
        let summary = format!(
            "{} groups, {} rules",
            groups.len(),
            groups.iter().map(|g| g.rules.len()).sum::<usize>()
        );
        self.replace(groups).await;
        Ok(summary)
    }

    /// Stops the running groups and starts `groups`, carrying state over by group name and
    /// rule identity; the stored state of groups that are gone is deleted.
    async fn replace(&self, groups: Vec<rules::RuleGroup>) {
        let mut running = self.running.lock().await;
        let old: Vec<Arc<Mutex<GroupState>>> = stop_all(&mut running).await;
        let lock = |s: &Arc<Mutex<GroupState>>| {
            let guard = s.lock().unwrap_or_else(|e| e.into_inner());
            (guard.group.name.clone(), s.clone())
        };
        let old: Vec<(String, Arc<Mutex<GroupState>>)> = old.iter().map(lock).collect();
        for (name, _) in &old {
            if !groups.iter().any(|g| &g.name == name) && self.shared.leadership.is_leader() {
                if let Err(error) = self.shared.store.delete_group(name).await {
                    tracing::warn!(group = %name, %error, "cannot delete the state of a removed group");
                }
            }
        }
        for group in groups {
            let group = Arc::new(group);
            let state = match old.iter().find(|(name, _)| name == &group.name) {
                Some((_, previous)) => {
                    let previous = previous.lock().unwrap_or_else(|e| e.into_inner());
                    GroupState::carried(group, &previous)
                }
                None => GroupState::new(group),
            };
            let state = Arc::new(Mutex::new(state));
            let (stop, stopped) = watch::channel(false);
            let task = GroupTask {
                state: state.clone(),
                shared: self.shared.clone(),
                stop: stopped,
            };
            let first = task.first_slot();
            let task = tokio::spawn(task.run(first));
            running.push(Running { state, stop, task });
        }
        self.view
            .set_groups(running.iter().map(|r| r.state.clone()).collect());
    }

    /// Stops evaluating and notifying; gives the lease up.
    pub async fn stop(&self) {
        stop_all(&mut *self.running.lock().await).await;
        if let Some(lease) = self.lease.lock().await.take() {
            lease.stop().await;
        }
        self.shared.notifier.stop();
    }
}

/// Stops every group task (an evaluation in progress finishes first); their states.
async fn stop_all(running: &mut Vec<Running>) -> Vec<Arc<Mutex<GroupState>>> {
    let mut states = Vec::new();
    for r in running.drain(..) {
        r.stop.send_replace(true);
        if let Err(error) = r.task.await {
            tracing::error!(%error, "a rule group task failed");
        }
        states.push(r.state);
    }
    states
}
