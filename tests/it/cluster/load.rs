//! Steady ingest for the cluster tests, and the check of what it left in the tables.
//!
//! Every reading carries a path no other reading has, so the tables can be compared with what
//! each request was answered. Writers post small batches at a modest pace (the cluster, the
//! services and the writers share two cores) until stopped; they can be paused, so a test can
//! look at a quiet system.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use timebucket::capture::push::{encode, PushError, Pusher, RetryPolicy};

use crate::support::StoredApi;

/// Readings per request.
const BATCH: usize = 25;
/// Pause between one writer's requests.
const PACE: Duration = Duration::from_millis(40);

/// How the writers talk to the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// One attempt per request, every answer recorded (tests that look at each answer).
    Plain,
    /// The capture layer's and the agent's client: retries on connection errors, 5xx, 429 and
    /// 503 (honouring `Retry-After`) until the batch is accepted.
    Retrying,
}

/// What the writers saw.
#[derive(Debug, Default)]
pub struct Log {
    /// Paths of readings whose request was answered 202.
    pub acked: Vec<String>,
    /// Paths of readings whose request was refused for certain (429 / 503: nothing accepted).
    pub refused: Vec<String>,
    /// Paths of readings of a request with an attempt whose outcome is unknown (the connection
    /// broke, or the load balancer answered 502 / 504 after sending it): that attempt may have
    /// been stored, so a retry may store the reading twice.
    pub ambiguous: HashSet<String>,
    /// Answers by status, every attempt.
    pub statuses: BTreeMap<u16, usize>,
    /// Attempts that got no HTTP answer.
    pub transport_errors: usize,
    /// Failed attempts the retrying client retried.
    pub retried: usize,
    /// `Retry-After` was missing from a 503 (plain client).
    pub retry_after_missing: usize,
}

/// Writers posting to one URL until stopped.
pub struct Load {
    /// What they saw so far.
    pub log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `writers` writers posting readings of `service` to `url` (`http://host:port`).
    pub fn start(url: &str, service: &str, writers: usize, client: Client) -> Load {
        let log = Arc::new(Mutex::new(Log::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let pause = Arc::new(AtomicBool::new(false));
        let writers = (0..writers)
            .map(|w| {
                let writer = Writer {
                    url: url.to_owned(),
                    service: service.to_owned(),
                    id: w,
                    client,
                    log: log.clone(),
                    stop: stop.clone(),
                    pause: pause.clone(),
                };
                tokio::spawn(writer.run())
            })
            .collect();
        Load {
            log,
            stop,
            pause,
            writers,
        }
    }

    /// Readings acknowledged so far.
    pub fn acked(&self) -> usize {
        self.log.lock().unwrap().acked.len()
    }

    /// Answers with `status` so far.
    pub fn answers(&self, status: u16) -> usize {
        self.log
            .lock()
            .unwrap()
            .statuses
            .get(&status)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `more` readings more than now are acknowledged, failing after `within`.
    pub async fn until_acked(&self, more: usize, within: Duration, what: &str) {
        let target = self.acked() + more;
        let what = format!("{what}: {more} more readings acknowledged");
        super::harness::eventually(within, &what, || async { self.acked() >= target }).await;
    }

    /// Stops sending new requests (requests in progress finish) and waits until they did.
    pub async fn pause(&self) {
        self.pause.store(true, Ordering::SeqCst);
        // A writer checks the flag before each request; the longest request in flight is a
        // retrying client's backoff plus one attempt.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    /// Sends again after [`Load::pause`].
    pub fn resume(&self) {
        self.pause.store(false, Ordering::SeqCst);
    }

    /// Stops the writers (each finishes its request in progress) and returns what they saw.
    pub async fn stop(self) -> Log {
        self.stop.store(true, Ordering::SeqCst);
        for writer in self.writers {
            writer.await.expect("a writer panicked");
        }
        Arc::try_unwrap(self.log)
            .expect("writers are done")
            .into_inner()
            .unwrap()
    }
}

struct Writer {
    url: String,
    service: String,
    id: usize,
    client: Client,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    pause: Arc<AtomicBool>,
}

impl Writer {
    async fn run(self) {
        let plain = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let pusher = Pusher::new(&self.url, Duration::from_secs(30)).unwrap();
        let policy = RetryPolicy {
            attempts: 1000,
            initial: Duration::from_millis(50),
            max: Duration::from_secs(1),
        };
        let mut batch = 0usize;
        while !self.stop.load(Ordering::SeqCst) {
            if self.pause.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let paths: Vec<String> = (0..BATCH)
                .map(|i| format!("/w{}/b{batch}/r{i}", self.id))
                .collect();
            batch += 1;
            let at = chrono::Utc::now().timestamp_millis();
            let readings: Vec<_> = paths
                .iter()
                .map(|p| {
                    json!({"service": self.service, "instance": format!("w{}", self.id),
                           "method": "POST", "path": p, "code": 202, "duration_ms": 1.5,
                           "timestamp": at})
                })
                .collect();
            let body = json!({ "api": readings });
            match self.client {
                Client::Plain => self.post_once(&plain, &body, paths).await,
                Client::Retrying => self.push(&pusher, &policy, &body, paths).await,
            }
            tokio::time::sleep(PACE).await;
        }
    }

    async fn post_once(
        &self,
        client: &reqwest::Client,
        body: &serde_json::Value,
        paths: Vec<String>,
    ) {
        let sent = client
            .post(format!("{}/v1/metrics", self.url))
            .json(body)
            .send()
            .await;
        let mut log = self.log.lock().unwrap();
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                *log.statuses.entry(status).or_default() += 1;
                match status {
                    202 => log.acked.extend(paths),
                    429 | 503 => {
                        if !response.headers().contains_key("retry-after") {
                            log.retry_after_missing += 1;
                        }
                        log.refused.extend(paths);
                    }
                    _ => log.ambiguous.extend(paths),
                }
            }
            Err(_) => {
                log.transport_errors += 1;
                log.ambiguous.extend(paths);
            }
        }
    }

    async fn push(
        &self,
        pusher: &Pusher,
        policy: &RetryPolicy,
        body: &serde_json::Value,
        paths: Vec<String>,
    ) {
        let encoded = encode(body).unwrap();
        let mut failures = Vec::new();
        let outcome = pusher
            .send_with_retry(encoded, policy, |error| failures.push(classify(error)))
            .await;
        let mut log = self.log.lock().unwrap();
        log.retried += failures.len();
        for failure in &failures {
            match failure {
                Failure::Status(status) => *log.statuses.entry(*status).or_default() += 1,
                Failure::Transport => log.transport_errors += 1,
            }
        }
        if failures.iter().any(Failure::ambiguous) {
            log.ambiguous.extend(paths.iter().cloned());
        }
        match outcome {
            Ok(()) => {
                *log.statuses.entry(202).or_default() += 1;
                log.acked.extend(paths);
            }
            Err(error) => panic!("a retrying client gave up: {error}"),
        }
    }
}

/// A failed attempt of the retrying client.
enum Failure {
    Status(u16),
    Transport,
}

impl Failure {
    /// Whether the attempt may have been accepted although it failed: a broken connection, or
    /// a load balancer's 502 / 504 after it sent the request on. A 429 / 503 accepted nothing.
    fn ambiguous(&self) -> bool {
        match self {
            Failure::Transport => true,
            Failure::Status(status) => !matches!(status, 429 | 503),
        }
    }
}

fn classify(error: &PushError) -> Failure {
    match error {
        PushError::Busy { status, .. }
        | PushError::Server { status, .. }
        | PushError::Refused { status, .. } => Failure::Status(*status),
        _ => Failure::Transport,
    }
}

/// What the tables hold, compared with what the writers were told.
#[derive(Debug)]
pub struct Verdict {
    /// Acknowledged readings not stored.
    pub lost: Vec<String>,
    /// Readings stored more than once although every attempt of their request had a clear
    /// outcome: the service's own fault.
    pub duplicated: Vec<(String, usize)>,
    /// Readings stored twice after a retry of an attempt whose outcome was unknown (see
    /// [`Log::ambiguous`]): at-least-once delivery, the documented price of a client retry.
    pub retried_twice: usize,
    /// Readings refused for certain that are stored anyway.
    pub refused_but_stored: Vec<String>,
    /// Stored readings of this service no writer sent.
    pub unknown: Vec<String>,
}

impl Verdict {
    /// Compares the readings of `service` in `stored` with `log`.
    pub fn of(log: &Log, stored: &[StoredApi], service: &str) -> Verdict {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for row in stored.iter().filter(|r| r.service_name == service) {
            *counts.entry(row.path.as_str()).or_default() += 1;
        }
        let sent: HashSet<&str> = log
            .acked
            .iter()
            .chain(&log.refused)
            .chain(&log.ambiguous)
            .map(String::as_str)
            .collect();
        let mut duplicated = Vec::new();
        let mut retried_twice = 0;
        for (path, n) in &counts {
            if *n > 1 {
                if log.ambiguous.contains(*path) {
                    retried_twice += 1;
                } else {
                    duplicated.push((path.to_string(), *n));
                }
            }
        }
        Verdict {
            lost: log
                .acked
                .iter()
                .filter(|p| !counts.contains_key(p.as_str()))
                .cloned()
                .collect(),
            duplicated,
            retried_twice,
            refused_but_stored: log
                .refused
                .iter()
                .filter(|p| counts.contains_key(p.as_str()))
                .cloned()
                .collect(),
            unknown: counts
                .keys()
                .filter(|p| !sent.contains(*p))
                .map(|p| p.to_string())
                .collect(),
        }
    }

    /// Fails the test unless every acknowledged reading is stored, nothing is stored twice
    /// but what a retry after an unknown outcome explains, and nothing refused or unknown is.
    pub fn assert_exact(&self, acked: usize) {
        assert!(
            self.lost.is_empty(),
            "{} of {acked} acknowledged readings were lost, e.g. {:?}",
            self.lost.len(),
            &self.lost[..self.lost.len().min(3)]
        );
        assert!(
            self.duplicated.is_empty(),
            "readings stored more than once: {:?}",
            &self.duplicated[..self.duplicated.len().min(5)]
        );
        assert!(
            self.refused_but_stored.is_empty(),
            "readings refused with 429/503 were stored: {:?}",
            &self.refused_but_stored[..self.refused_but_stored.len().min(3)]
        );
        assert!(
            self.unknown.is_empty(),
            "stored readings nobody sent: {:?}",
            &self.unknown[..self.unknown.len().min(3)]
        );
    }
}
