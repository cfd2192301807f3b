//! Pull: scrape Prometheus text / OpenMetrics endpoints into API and host readings.
//!
//! ```text
//!  --scrape-config ──► jobs ──► targets (static + file_sd, files polled every FILE_SD_POLL)
//!                                  │ rendezvous hash: keep the targets this replica owns
//!                                  ▼
//!            one task per target: every interval, on its own slot (stable per-target offset)
//!              has_room? ─no─► skipped, counted
//!              GET (timeout) ─► parse ─► convert (deltas per series) ─► Acceptor::accept_readings
//!              failure ─► host reading `available: false`           (WAL + fsync, like a POST)
//! ```
//!
//! Invariants:
//! - scraped readings take the same road as pushed ones: the same rules, a synced WAL record,
//!   the flusher; while ingest is refusing (backlog over its limit) scrapes are skipped and
//!   counted, never buffered;
//! - a target's state (the last totals of its series) lives in its task: a reload that leaves a
//!   target's scrape unchanged keeps the task and so its state; a changed or new target starts
//!   afresh (its first scrape primes);
//! - with `N` replicas, each target is scraped by exactly one of them ([`shard`]).
//!
//! The config is re-read on [`Scraper::reload`] (SIGHUP or `POST /-/reload`, through
//! [`crate::reload`]); a config that does not validate is refused and the running one kept.

pub mod config;
pub mod discovery;
pub mod shard;
pub mod status;
mod target;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::ingest::Acceptor;
use crate::telemetry::Metrics;
pub use config::ConfigError;
use discovery::{Discovery, Target};
pub use shard::Replica;
use status::{DroppedTarget, ReplicaInfo, TargetInfo, TargetsAnswer};
pub use target::{ScrapeError, MAX_BODY_BYTES};

/// How often target files are checked for changes.
pub const FILE_SD_POLL: Duration = Duration::from_secs(1);

/// What `serve` is told about scraping.
#[derive(Debug, Clone, Default)]
pub struct ScrapeSettings {
    /// `--scrape-config`; no scraping without it.
    pub config_file: Option<PathBuf>,
    /// `--replica-index` / `--replica-count`.
    pub replica: Replica,
}

/// A running target.
struct Running {
    target: Target,
    task: JoinHandle<()>,
    status: Arc<Mutex<TargetInfo>>,
}

/// The targets and their tasks.
struct State {
    discovery: Discovery,
    running: HashMap<(String, String), Running>,
    dropped: Vec<DroppedTarget>,
}

/// The statuses of the active targets (in job, URL order) and the targets of other replicas.
type Table = (Vec<Arc<Mutex<TargetInfo>>>, Vec<DroppedTarget>);

struct Inner {
    config_file: PathBuf,
    replica: Replica,
    shared: target::Shared,
    state: tokio::sync::Mutex<State>,
    /// What `/v1/targets` shows, replaced whole at each change.
    table: Mutex<Table>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

/// The scrape subsystem: its targets, their tasks and the file watcher. Cheap to clone.
#[derive(Clone)]
pub struct Scraper {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Scraper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraper")
            .field("config_file", &self.inner.config_file)
            .finish_non_exhaustive()
    }
}

impl Scraper {
    /// Loads the config and starts scraping; `None` without `--scrape-config`.
    pub async fn start(
        settings: &ScrapeSettings,
        acceptor: Acceptor,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Scraper>, ConfigError> {
        let Some(path) = &settings.config_file else {
            return Ok(None);
        };
        let jobs = config::load(path)?;
        let client = reqwest::Client::builder()
            // Names the replica, so a target's owner can be seen from its side.
            .user_agent(format!(
                "timebucket/{} (replica {} of {})",
                env!("CARGO_PKG_VERSION"),
                settings.replica.index,
                settings.replica.count
            ))
            .build()
            .map_err(|e| ConfigError::Syntax {
                path: path.clone(),
                reason: format!("cannot set up the HTTP client: {e}"),
            })?;
        let scraper = Scraper {
            inner: Arc::new(Inner {
                config_file: path.clone(),
                replica: settings.replica,
                shared: target::Shared {
                    client,
                    acceptor,
                    metrics,
                },
                state: tokio::sync::Mutex::new(State {
                    discovery: Discovery::new(Vec::new()),
                    running: HashMap::new(),
                    dropped: Vec::new(),
                }),
                table: Mutex::new((Vec::new(), Vec::new())),
                watcher: Mutex::new(None),
            }),
        };
        let summary = scraper.apply(jobs).await;
        tracing::info!(config = %path.display(), replica = settings.replica.index,
            replicas = settings.replica.count, "scraping: {summary}");
        let watcher = tokio::spawn(watch_files(Arc::downgrade(&scraper.inner)));
        *scraper.inner.watcher.lock().expect("watcher lock") = Some(watcher);
        Ok(Some(scraper))
    }

    /// Re-reads the config file and applies it; on error the running config stays.
    pub async fn reload(&self) -> Result<String, ConfigError> {
        let jobs = config::load(&self.inner.config_file)?;
        Ok(self.apply(jobs).await)
    }

    /// Every target with its last scrape.
    pub fn targets(&self) -> TargetsAnswer {
        let (active, dropped) = self.inner.table.lock().expect("table lock").clone();
        TargetsAnswer {
            replica: ReplicaInfo {
                index: self.inner.replica.index,
                count: self.inner.replica.count,
            },
            active_targets: active
                .iter()
                .map(|s| s.lock().expect("target status lock").clone())
                .collect(),
            dropped_targets: dropped,
        }
    }

    /// Stops every scrape and the file watcher.
    pub async fn stop(&self) {
        if let Some(watcher) = self.inner.watcher.lock().expect("watcher lock").take() {
            watcher.abort();
        }
        let mut state = self.inner.state.lock().await;
        for (_, running) in state.running.drain() {
            running.task.abort();
        }
    }

    /// Replaces the jobs, reads their target files and reconciles the running targets.
    async fn apply(&self, jobs: Vec<config::Job>) -> String {
        let job_count = jobs.len();
        let mut state = self.inner.state.lock().await;
        state.discovery = Discovery::new(jobs);
        state.discovery.refresh();
        let (started, stopped) = self.reconcile(&mut state);
        format!(
            "{job_count} jobs, {} targets here ({started} started, {stopped} stopped), {} on other replicas",
            state.running.len(),
            state.dropped.len()
        )
    }

    /// Starts, keeps or stops target tasks to match the discovered targets; returns how many
    /// were started and stopped.
    fn reconcile(&self, state: &mut State) -> (usize, usize) {
        let replica = self.inner.replica;
        let mut next = HashMap::new();
        let mut dropped = Vec::new();
        let mut started = 0;
        for target in state.discovery.targets() {
            let key = target.key();
            let owner = Replica::owner_of(replica.count, &key.0, &key.1);
            if owner != replica.index {
                dropped.push(DroppedTarget {
                    job: key.0,
                    url: key.1,
                    replica: owner,
                });
                continue;
            }
            let kept = state.running.remove(&key).and_then(|old| {
                if same_scrape(&old.target, &target) {
                    Some(old)
                } else {
                    old.task.abort();
                    None
                }
            });
            let running = kept.unwrap_or_else(|| {
                started += 1;
                self.spawn(target)
            });
            next.insert(key, running);
        }
        let stopped = state.running.len();
        for (_, old) in state.running.drain() {
            old.task.abort();
        }
        state.running = next;
        state.dropped = dropped;
        let mut active: Vec<_> = state.running.iter().collect();
        active.sort_by(|a, b| a.0.cmp(b.0));
        *self.inner.table.lock().expect("table lock") = (
            active.iter().map(|(_, r)| r.status.clone()).collect(),
            state.dropped.clone(),
        );
        (started, stopped)
    }

    fn spawn(&self, target: Target) -> Running {
        let status = Arc::new(Mutex::new(TargetInfo {
            job: target.job.name.clone(),
            url: target.url.clone(),
            service: target.origin.service.to_string(),
            instance: target.origin.instance.to_string(),
            labels: target.labels.clone(),
            scrape_interval_seconds: target.job.interval.as_secs_f64(),
            scrape_timeout_seconds: target.job.timeout.as_secs_f64(),
            ..TargetInfo::default()
        }));
        let task = tokio::spawn(target::run(
            target.clone(),
            self.inner.shared.clone(),
            status.clone(),
        ));
        Running {
            target,
            task,
            status,
        }
    }
}

/// True when two targets are scraped and read the same way (so the running task, and its
/// series state, can stay).
fn same_scrape(a: &Target, b: &Target) -> bool {
    a.url == b.url
        && a.labels == b.labels
        && a.origin == b.origin
        && a.job.interval == b.job.interval
        && a.job.timeout == b.job.timeout
        && a.job.mapping == b.job.mapping
}

/// Re-reads target files when they change, until the scraper is gone.
async fn watch_files(inner: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(FILE_SD_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let scraper = Scraper { inner };
        let mut state = scraper.inner.state.lock().await;
        if state.discovery.refresh() {
            let (started, stopped) = scraper.reconcile(&mut state);
            tracing::info!(
                started,
                stopped,
                targets = state.running.len(),
                "target files changed"
            );
        }
    }
}
