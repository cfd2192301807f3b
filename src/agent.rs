//! `timebucket agent`: the host agent. Every `--interval` it samples CPU, memory, the data disk
//! and (with `--pid`) a process's memory, and pushes a host reading to a collector.
//!
//! Every reading carries `available`, so each sample is also a heartbeat: an instance whose
//! readings stop is unavailable by its silence, and a watched process that is gone reports
//! `available: false` explicitly.
//!
//! The agent is part of the default build (not behind the `client` feature of the request
//! layer): it needs only `sysinfo` and the HTTP client, and a `timebucket agent` that exists in
//! some builds and not in others would be a trap on hosts.
//!
//! Tasks: the sampler ([`sample`], on a blocking thread since `sysinfo` reads files) and the
//! delivery (`client::outbox`), joined by a bounded backlog, so a slow collector never delays a
//! heartbeat.

pub mod sample;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::client::auth::ClientAuth;
use crate::client::outbox::{self, Backlog};
use crate::client::push::{PushError, Pusher, RetryPolicy};
use crate::model::{HostGauges, HostReading, InstanceName, ReadingId, ServiceName, TimestampMs};
use sample::{HostSample, Sampler};

/// Shortest interval: `sysinfo` needs this long between two CPU readings.
pub const MIN_INTERVAL: Duration = sysinfo::MINIMUM_CPU_UPDATE_INTERVAL;
/// Bound on one push.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping agent keeps trying to deliver its backlog.
const FINAL_PUSH_DEADLINE: Duration = Duration::from_secs(5);

/// What the agent runs with (from `timebucket agent`'s flags, [`crate::cli::AgentArgs`]).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The service this host runs: the service name of its readings.
    pub service: ServiceName,
    /// The instance name of the readings; the host name when `None`.
    pub instance: Option<InstanceName>,
    /// The collector to push to: `http://host:port` or `https://host:port`.
    pub push: String,
    /// Time between samples, at least [`MIN_INTERVAL`].
    pub interval: Duration,
    /// A process to watch.
    pub pid: Option<u32>,
    /// A path on the disk to report: the mount holding it is measured.
    pub disk: PathBuf,
    /// The token it pushes with, and the CAs of an https:// collector.
    pub auth: ClientAuth,
}

impl AgentConfig {
    /// Default `interval`: a heartbeat every ten seconds.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
    /// Default `disk`: the root file system.
    pub const DEFAULT_DISK: &'static str = "/";
}

/// Why the agent cannot run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No `--instance` and no host name to use instead.
    #[error("the host name is unknown or not a valid instance name; pass --instance")]
    Instance,
    /// `--pid` names no running process.
    #[error("no process with pid {pid}")]
    NoProcess {
        /// The pid given.
        pid: u32,
    },
    /// `--disk` names no readable path.
    #[error("--disk {}: {source}", path.display())]
    DiskPath {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: std::io::Error,
    },
    /// `--push` is unusable.
    #[error(transparent)]
    Push(#[from] PushError),
    /// The sampling thread panicked.
    #[error("the sampling thread failed: {0}")]
    Sampler(#[from] tokio::task::JoinError),
}

/// What the agent did, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Samples taken.
    pub samples: u64,
    /// Readings the collector accepted.
    pub delivered: u64,
    /// Readings lost (backlog full, refused, or unsent when the agent stopped).
    pub dropped: u64,
    /// Push attempts that failed.
    pub failed_pushes: u64,
}

/// Runs the agent until `shutdown` resolves, then delivers what it can within a few seconds.
pub async fn run(
    args: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<AgentStats, AgentError> {
    let instance = match args.instance {
        Some(instance) => instance,
        None => sysinfo::System::host_name()
            .and_then(|h| InstanceName::parse(&h).ok())
            .ok_or(AgentError::Instance)?,
    };
    let pusher = Pusher::with_auth(&args.push, PUSH_TIMEOUT, &args.auth)?;
    let (pid, disk) = (args.pid, args.disk.clone());
    let mut sampler = tokio::task::spawn_blocking(move || Sampler::start(pid, &disk)).await??;
    tracing::info!(url = %pusher.url(), service = %args.service, %instance, interval = %humantime::format_duration(args.interval), "agent started");

    let backlog = Arc::new(Backlog::<HostReading>::default());
    let retry = RetryPolicy {
        attempts: u32::MAX,
        initial: Duration::from_secs(1),
        max: Duration::from_secs(30),
    };
    let mut delivery = tokio::spawn(outbox::run(backlog.clone(), pusher, retry));
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + MIN_INTERVAL, args.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = ticks.tick() => {
                let (back, sample) = tokio::task::spawn_blocking(move || {
                    let sample = sampler.sample();
                    (sampler, sample)
                })
                .await?;
                sampler = back;
                backlog.counters.samples.fetch_add(1, Ordering::Relaxed);
                backlog.push(reading(&args.service, &instance, TimestampMs::now(), sample));
            }
        }
    }
    backlog.close();
    if tokio::time::timeout(FINAL_PUSH_DEADLINE, &mut delivery)
        .await
        .is_err()
    {
        delivery.abort();
        let unsent = backlog.len() as u64;
        backlog
            .counters
            .dropped
            .fetch_add(unsent, Ordering::Relaxed);
        tracing::warn!(
            unsent,
            "agent stopped with readings the collector did not take"
        );
    }
    let c = &backlog.counters;
    let get = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    Ok(AgentStats {
        samples: get(&c.samples),
        delivered: get(&c.delivered),
        dropped: get(&c.dropped),
        failed_pushes: get(&c.failed_pushes),
    })
}

/// The reading of one sample (its id is the collector's to fix; this one is never sent).
fn reading(
    service: &ServiceName,
    instance: &InstanceName,
    at: TimestampMs,
    s: HostSample,
) -> HostReading {
    let bytes = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    HostReading {
        id: ReadingId::new(),
        service: service.clone(),
        instance: instance.clone(),
        timestamp: at,
        gauges: HostGauges {
            cpu_percent: Some(s.cpu_percent),
            mem_used_bytes: Some(bytes(s.mem_used)),
            mem_total_bytes: Some(bytes(s.mem_total)),
            disk_used_bytes: s.disk.map(|d| bytes(d.used)),
            disk_total_bytes: s.disk.map(|d| bytes(d.total)),
            available: Some(s.available),
            heap_bytes: s.process.map(|p| bytes(p.rss)),
            allocated_bytes: s.process.and_then(|p| p.allocated).map(bytes),
            freed_bytes: s.process.and_then(|p| p.freed).map(bytes),
        },
    }
}
