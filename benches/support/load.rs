//! The HTTP load generator: `clients` concurrent posters sharing a queue of pre-serialized
//! bodies, each timing its requests from send to the 202.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;

/// What a load run saw.
pub struct LoadOutcome {
    pub started: Instant,
    /// When the last 202 arrived.
    pub finished: Instant,
    /// Readings acknowledged with 202.
    pub accepted: u64,
    /// Latency of every 202, from sending the request to the answer.
    pub latencies: Vec<Duration>,
    /// Answers 429 (busy) and 503 (backlog), each retried after a short pause.
    pub busy: u64,
    pub backlog: u64,
    /// Requests whose connection broke before an answer (e.g. a 503 sent before the body was
    /// read), each retried after a short pause. Such a request may have been accepted: a run
    /// with any must compare what it stored with `accepted` by `>=`, not `==`.
    pub dropped: u64,
}

impl LoadOutcome {
    pub fn elapsed(&self) -> Duration {
        self.finished - self.started
    }

    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed().as_secs_f64()
    }

    /// The `q` quantile (0..=1) of the ack latencies.
    pub fn quantile(&self, q: f64) -> Duration {
        quantile(&self.latencies, q)
    }
}

pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Posts `posts` bodies (cycling through `bodies`, `per_body` readings each) to
/// `{url}/v1/metrics` from `clients` concurrent connections. 429 and 503 are retried; anything
/// else but 202 fails the run.
pub async fn post_all(
    url: &str,
    bodies: Arc<Vec<Bytes>>,
    per_body: usize,
    posts: usize,
    clients: usize,
) -> anyhow::Result<LoadOutcome> {
    let source: BodySource = Arc::new(move |i| bodies[i % bodies.len()].clone());
    post_from(url, source, per_body, posts, clients).await
}

/// Body number `i` of a run.
pub type BodySource = Arc<dyn Fn(usize) -> Bytes + Send + Sync>;

/// [`post_all`] with bodies made on demand (by the posting client, while it is timed).
pub async fn post_from(
    url: &str,
    bodies: BodySource,
    per_body: usize,
    posts: usize,
    clients: usize,
) -> anyhow::Result<LoadOutcome> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .tcp_nodelay(true)
        .build()?;
    let endpoint = format!("{url}/v1/metrics");
    let next = Arc::new(AtomicUsize::new(0));
    // Warm one connection per client so connection setup is not timed.
    for _ in 0..clients {
        client.get(format!("{url}/healthz")).send().await?;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, endpoint, bodies, next) = (
            client.clone(),
            endpoint.clone(),
            bodies.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut accepted, mut busy, mut backlog, mut dropped) = (0u64, 0u64, 0u64, 0u64);
            let mut last = Instant::now();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= posts {
                    break;
                }
                let body = bodies(i);
                loop {
                    let sent = Instant::now();
                    let answer = match client
                        .post(&endpoint)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                    {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            response.text().await.map(|text| (status, text))
                        }
                        Err(e) => Err(e),
                    };
                    let Ok((status, text)) = answer else {
                        dropped += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    match status {
                        202 => {
                            let answered = Instant::now();
                            latencies.push(answered - sent);
                            last = answered;
                            let n: serde_json::Value = serde_json::from_str(&text)?;
                            let n = n["accepted"].as_u64().unwrap_or(0);
                            if n != per_body as u64 {
                                bail!("202 accepted {n} readings, posted {per_body}: {text}");
                            }
                            accepted += n;
                            break;
                        }
                        429 => busy += 1,
                        503 => backlog += 1,
                        other => bail!("POST /v1/metrics answered {other}: {text}"),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Ok::<_, anyhow::Error>((latencies, accepted, busy, backlog, dropped, last))
        }));
    }
    let mut outcome = LoadOutcome {
        started,
        finished: started,
        accepted: 0,
        latencies: Vec::with_capacity(posts),
        busy: 0,
        backlog: 0,
        dropped: 0,
    };
    for task in tasks {
        let (latencies, accepted, busy, backlog, dropped, last) = task.await??;
        outcome.dropped += dropped;
        outcome.latencies.extend(latencies);
        outcome.accepted += accepted;
        outcome.busy += busy;
        outcome.backlog += backlog;
        outcome.finished = outcome.finished.max(last);
    }
    Ok(outcome)
}
