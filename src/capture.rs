//! Capture at the source: record every request an app serves and push the readings to a
//! timebucket collector's `POST /v1/metrics`, without ever slowing the app.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use axum::{routing::get, Router};
//! # use timebucket::capture::{Capture, CaptureConfig};
//! # async fn user() -> &'static str { "user" }
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let capture = Capture::start(CaptureConfig::new("checkout", "pod-7", "http://collector:8080")?)?;
//! let app: Router = Router::new().route("/users/{id}", get(user)).layer(capture.layer()); // feature `client`
//! // ... axum::serve(listener, app) ...
//! let stats = capture.shutdown(Duration::from_secs(5)).await; // pushes what is left
//! # Ok(())
//! # }
//! ```
//!
//! Pieces: [`layer`] (the tower middleware, feature `client`) times each request and hands it to a
//! [`Recorder`]; the pipeline's tasks normalise paths ([`normalise`]), aggregate or batch
//! (`aggregate`) into API readings and push them in the ingest wire format (`client::push`,
//! `client::wire`), and/or count them in a Prometheus endpoint ([`exposition`]) for a collector
//! that scrapes instead ([`CaptureConfig::scrape_only`]).
//!
//! Invariants: the request path does a bounded, lock-free `try_send` and nothing else: no lock, no
//! I/O, no waiting; when anything downstream is slow or down, requests are dropped and counted
//! ([`CaptureStats`]), never waited for. Paths are route templates or normalised, so series stay
//! few whatever the URLs.
//!
//! Why only the layer is behind `client`: everything else here uses dependencies the binary has
//! anyway, and pushing is shared with the host agent (`timebucket agent`, part of the default
//! build); the feature keeps the tower glue (and its `tower`, `pin-project-lite` dependencies) out
//! of the service build.

mod aggregate;
pub mod exposition;
#[cfg(feature = "client")]
pub mod layer;
pub mod normalise;
mod pipeline;
pub mod recorder;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use crate::client::auth::{AuthError, ClientAuth};
pub use crate::client::push::{self, PushError, Pusher, RetryPolicy};
use crate::model::{InstanceName, ServiceName};
use aggregate::Source;
pub use exposition::MetricsEndpoint;
#[cfg(feature = "client")]
pub use layer::{CaptureLayer, CaptureService};
pub use normalise::PathNormaliser;
use recorder::Counters;
pub use recorder::{CaptureStats, Recorder, RequestRecord, RoutePath};

/// What is sent for the requests of an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Per `(method, path, code)` per interval: count, mean and max duration, as two readings (the
    /// slowest request alone, the others with their mean), so that all three stay exact.
    #[default]
    Aggregate,
    /// One reading per request, in batches of at most `max_batch`.
    Raw,
}

/// Why capture cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The service or instance name is invalid.
    #[error("{field}: {problem}")]
    Name {
        /// `service` or `instance`.
        field: &'static str,
        /// Why.
        problem: String,
    },
    /// A setting is out of range.
    #[error("capture setting {name}: {problem}")]
    Setting {
        /// The field of [`CaptureConfig`].
        name: &'static str,
        /// Why.
        problem: &'static str,
    },
    /// The push URL or HTTP client is unusable.
    #[error(transparent)]
    Push(#[from] PushError),
    /// The token or CA file (from `TIMEBUCKET_TOKEN`, `TIMEBUCKET_TOKEN_FILE`,
    /// `TIMEBUCKET_CA_FILE`) is unusable.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// [`Capture::start`] was called outside a tokio runtime.
    #[error("capture must start inside a tokio runtime")]
    NoRuntime,
}

/// How to capture. Build with [`CaptureConfig::new`], then adjust the public fields.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// The service name of every reading.
    pub service: ServiceName,
    /// The instance name of every reading (pod, host, `ip:port`).
    pub instance: InstanceName,
    /// The collector: `http://host:port` (or a full ingest URL); empty: nothing is pushed
    /// (scrape only, see [`CaptureConfig::scrape_only`]).
    pub push_url: String,
    /// Also count requests in a Prometheus endpoint ([`Capture::metrics_endpoint`]).
    pub expose_metrics: bool,
    /// Aggregate (default) or raw readings.
    pub mode: Mode,
    /// How often readings are pushed, and the aggregation interval (default 10 s).
    pub interval: Duration,
    /// Records the request path may queue before dropping (default 8192).
    pub buffer: usize,
    /// Most `(method, path, code)` series per interval; more are dropped (default 10 000).
    pub max_series: usize,
    /// Most readings per POST (default 5000).
    pub max_batch: usize,
    /// Batches waiting for the sender; more are dropped (default 16).
    pub max_pending_batches: usize,
    /// Retries of one batch.
    pub retry: RetryPolicy,
    /// Bound on one POST attempt (default 10 s).
    pub timeout: Duration,
    /// Turns raw paths (no route template) into templates.
    pub normaliser: PathNormaliser,
    /// How often drops are logged (default 60 s).
    pub report_every: Duration,
    /// The token pushes carry and the CAs of an https:// collector (default: from
    /// `TIMEBUCKET_TOKEN` or `TIMEBUCKET_TOKEN_FILE`, and `TIMEBUCKET_CA_FILE`).
    pub auth: ClientAuth,
}

impl CaptureConfig {
    /// Defaults for `service` / `instance` pushing to `push_url`, with the token and CA file of
    /// the environment ([`ClientAuth::from_env`]); names are validated here.
    pub fn new(service: &str, instance: &str, push_url: &str) -> Result<Self, CaptureError> {
        let name = |field| move |problem| CaptureError::Name { field, problem };
        Ok(Self {
            service: ServiceName::parse(service).map_err(name("service"))?,
            instance: InstanceName::parse(instance).map_err(name("instance"))?,
            push_url: push_url.to_owned(),
            expose_metrics: false,
            mode: Mode::Aggregate,
            interval: Duration::from_secs(10),
            buffer: 8192,
            max_series: 10_000,
            max_batch: 5000,
            max_pending_batches: 16,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(10),
            normaliser: PathNormaliser::builtin(),
            report_every: Duration::from_secs(60),
            auth: ClientAuth::from_env()?,
        })
    }

    /// Defaults for an app that is scraped instead of pushing: nothing is pushed, and
    /// [`Capture::metrics_endpoint`] serves the requests in the Prometheus format.
    pub fn scrape_only(service: &str, instance: &str) -> Result<Self, CaptureError> {
        Ok(Self {
            push_url: String::new(),
            expose_metrics: true,
            ..Self::new(service, instance, "")?
        })
    }

    fn check(&self) -> Result<(), CaptureError> {
        if self.push_url.is_empty() && !self.expose_metrics {
            return Err(CaptureError::Setting {
                name: "push_url",
                problem: "is empty and expose_metrics is off: the requests would go nowhere",
            });
        }
        let setting = |name, problem| Err(CaptureError::Setting { name, problem });
        let positive = [
            ("interval", self.interval.is_zero()),
            ("timeout", self.timeout.is_zero()),
            ("report_every", self.report_every.is_zero()),
            ("buffer", self.buffer == 0),
            ("max_series", self.max_series == 0),
            ("max_batch", self.max_batch == 0),
            ("max_pending_batches", self.max_pending_batches == 0),
            ("retry.attempts", self.retry.attempts == 0),
        ];
        match positive.into_iter().find(|(_, zero)| *zero) {
            Some((name, _)) => setting(name, "must be more than zero"),
            None => Ok(()),
        }
    }
}

/// A running capture pipeline: the source of [`Recorder`]s and layers, and its two tasks.
///
/// Call [`shutdown`](Self::shutdown) to flush and stop. Dropped without it, the pipeline detaches:
/// it runs while any layer or recorder lives, then pushes what it holds and ends.
#[derive(Debug)]
pub struct Capture {
    recorder: Recorder,
    counters: Arc<Counters>,
    stop: oneshot::Sender<()>,
    collector: JoinHandle<()>,
    sender: JoinHandle<()>,
    endpoint: Option<MetricsEndpoint>,
}

impl Capture {
    /// Validates `config` and starts the pipeline's tasks on the current tokio runtime.
    pub fn start(config: CaptureConfig) -> Result<Self, CaptureError> {
        config.check()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| CaptureError::NoRuntime)?;
        let push = !config.push_url.is_empty();
        let pusher = if push {
            Some(Pusher::with_auth(
                &config.push_url,
                config.timeout,
                &config.auth,
            )?)
        } else {
            None
        };
        let endpoint = config.expose_metrics.then(MetricsEndpoint::new);
        let counters = Arc::new(Counters::default());
        let (buffer_tx, buffer_rx) = std::sync::mpsc::sync_channel(config.buffer);
        let (queue_tx, queue_rx) = mpsc::channel(config.max_pending_batches);
        let (stop, stopped) = oneshot::channel();
        let source = Source {
            service: config.service.clone(),
            instance: config.instance.clone(),
            normaliser: config.normaliser.clone(),
        };
        let settings = pipeline::CollectSettings {
            mode: config.mode,
            interval: config.interval,
            max_series: config.max_series,
            max_batch: config.max_batch,
            report_every: config.report_every,
            exposition: endpoint.clone(),
        };
        let collector = runtime.spawn(pipeline::collect(
            buffer_rx,
            source,
            settings,
            counters.clone(),
            queue_tx,
            stopped,
            push,
        ));
        let sender = match pusher {
            Some(pusher) => runtime.spawn(pipeline::send(
                queue_rx,
                pusher,
                config.retry,
                counters.clone(),
            )),
            None => runtime.spawn(async {}),
        };
        Ok(Self {
            recorder: Recorder::new(buffer_tx, counters.clone()),
            counters,
            stop,
            collector,
            sender,
            endpoint,
        })
    }

    /// The Prometheus endpoint of the captured requests, when `expose_metrics` is on: serve
    /// [`MetricsEndpoint::router`] (or [`MetricsEndpoint::render`]) at `/metrics`.
    pub fn metrics_endpoint(&self) -> Option<MetricsEndpoint> {
        self.endpoint.clone()
    }

    /// A handle for recording requests by hand (frameworks without tower).
    pub fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }

    /// The tower layer recording every request of the service it wraps.
    #[cfg(feature = "client")]
    pub fn layer(&self) -> CaptureLayer {
        CaptureLayer::new(self.recorder())
    }

    /// The counters so far.
    pub fn stats(&self) -> CaptureStats {
        self.counters.snapshot()
    }

    /// Stops recording, pushes what is buffered and aggregated, and waits at most `deadline` for
    /// the pushes; whatever is still unsent then is counted dropped. Returns the final counters.
    pub async fn shutdown(self, deadline: Duration) -> CaptureStats {
        let _ = self.stop.send(());
        let _ = self.collector.await;
        let mut sender = self.sender;
        if tokio::time::timeout(deadline, &mut sender).await.is_err() {
            sender.abort();
            let _ = sender.await;
            let unsent = self
                .counters
                .in_flight
                .swap(0, std::sync::atomic::Ordering::Relaxed);
            Counters::add(&self.counters.dropped_unsent, unsent);
        }
        self.counters.snapshot()
    }
}
