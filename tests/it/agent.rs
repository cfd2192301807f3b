//! `timebucket agent` (run in-process) pushing to a real `timebucket serve` on the CQL node under
//! test; what it stores is checked against `/proc`.

use std::path::PathBuf;
use std::time::Duration;

use scylla::client::session::Session;
use timebucket::agent::{self, AgentConfig, AgentStats};
use timebucket::model::{InstanceName, ServiceName};
use timebucket::store::cql::Keyspace;

use crate::proxy::Proxy;
use crate::support::{session, spawn_app, AppOptions};

const WAIT: Duration = Duration::from_secs(30);
const INTERVAL: Duration = Duration::from_millis(300);

/// One row of `host_readings`.
#[derive(Debug, Clone, scylla::DeserializeRow)]
struct StoredHost {
    instance: String,
    timestamp: chrono::DateTime<chrono::Utc>,
    cpu_percent: Option<f64>,
    mem_used_bytes: Option<i64>,
    mem_total_bytes: Option<i64>,
    disk_used_bytes: Option<i64>,
    disk_total_bytes: Option<i64>,
    available: Option<bool>,
    heap_bytes: Option<i64>,
    allocated_bytes: Option<i64>,
    freed_bytes: Option<i64>,
}

/// Every host reading in `keyspace`, oldest first.
async fn host_readings(session: &Session, keyspace: &Keyspace) -> Vec<StoredHost> {
    use futures::TryStreamExt;
    let text = format!(
        "SELECT instance, timestamp, cpu_percent, mem_used_bytes, mem_total_bytes, disk_used_bytes, \
         disk_total_bytes, available, heap_bytes, allocated_bytes, freed_bytes FROM {keyspace}.host_readings"
    );
    let prepared = session.prepare(text).await.unwrap();
    let mut rows: Vec<StoredHost> = session
        .execute_iter(prepared, ())
        .await
        .unwrap()
        .rows_stream::<StoredHost>()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    rows.sort_by_key(|r| r.timestamp);
    rows
}

/// Polls until `n` host readings are stored.
async fn eventually_host_readings(keyspace: &Keyspace, n: usize) -> Vec<StoredHost> {
    let session = session().await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let rows = host_readings(&session, keyspace).await;
        if rows.len() >= n || std::time::Instant::now() > deadline {
            assert_eq!(rows.len(), n, "host readings stored");
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn args(push: String, pid: u32) -> AgentConfig {
    AgentConfig {
        service: ServiceName::parse("hosts").unwrap(),
        instance: Some(InstanceName::parse("agent-test").unwrap()),
        push,
        interval: INTERVAL,
        pid: Some(pid),
        disk: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        auth: Default::default(),
    }
}

/// Runs the agent for `run_for`, then stops it.
async fn run_agent(args: AgentConfig, run_for: Duration) -> AgentStats {
    agent::run(args, tokio::time::sleep(run_for)).await.unwrap()
}

/// A `/proc/meminfo` or `/proc/self/status` field, bytes.
fn proc_kib(file: &str, field: &str) -> i64 {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: i64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn the_agent_pushes_plausible_host_readings() {
    let collector = spawn_app(AppOptions::default()).await;
    let stats = run_agent(
        args(collector.url.clone(), std::process::id()),
        Duration::from_millis(1600),
    )
    .await;
    assert!(stats.samples >= 4, "{stats:?}");
    assert_eq!(
        (stats.delivered, stats.dropped),
        (stats.samples, 0),
        "{stats:?}"
    );
    let rows = eventually_host_readings(&collector.keyspace, stats.samples as usize).await;

    let mem_total = proc_kib("/proc/meminfo", "MemTotal:");
    let mem_used = mem_total - proc_kib("/proc/meminfo", "MemAvailable:");
    let rss = proc_kib("/proc/self/status", "VmRSS:");
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    for r in &rows {
        assert_eq!(
            (r.instance.as_str(), r.available),
            ("agent-test", Some(true))
        );
        assert_eq!(
            r.mem_total_bytes,
            Some(mem_total),
            "MemTotal of /proc/meminfo"
        );
        let used = r.mem_used_bytes.unwrap();
        assert!(
            (used - mem_used).abs() < mem_total / 10,
            "used {used} vs /proc {mem_used}"
        );
        assert!(
            (0.0..=100.0 * cores + 1.0).contains(&r.cpu_percent.unwrap()),
            "{r:?}"
        );
        let (disk_used, disk_total) = (r.disk_used_bytes.unwrap(), r.disk_total_bytes.unwrap());
        assert!(
            disk_total > 0 && (0..=disk_total).contains(&disk_used),
            "{r:?}"
        );
        let heap = r.heap_bytes.unwrap();
        assert!(
            heap > rss / 4 && heap < rss * 4,
            "heap (RSS) {heap} vs /proc VmRSS {rss}"
        );
    }
    assert!(rows[0].allocated_bytes.is_none() && rows[0].freed_bytes.is_none());
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let grew = b.allocated_bytes.unwrap() - b.freed_bytes.unwrap();
        assert_eq!(
            b.heap_bytes.unwrap() - a.heap_bytes.unwrap(),
            grew,
            "RSS change = allocated - freed"
        );
        let gap = b.timestamp - a.timestamp;
        assert!(
            gap >= chrono::Duration::milliseconds(200),
            "samples {gap} apart"
        );
    }
}

#[tokio::test]
async fn a_gone_process_is_unavailable_and_a_stopped_agent_is_silent() {
    let collector = spawn_app(AppOptions::default()).await;
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let agent = tokio::spawn(run_agent(
        args(collector.url.clone(), child.id()),
        Duration::from_millis(2000),
    ));
    tokio::time::sleep(Duration::from_millis(900)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let stats = agent.await.unwrap();
    let stopped = chrono::Utc::now();
    let rows = eventually_host_readings(&collector.keyspace, stats.delivered as usize).await;

    let alive: Vec<_> = rows.iter().map(|r| r.available == Some(true)).collect();
    let first_gone = alive
        .iter()
        .position(|a| !a)
        .expect("a reading after the kill");
    assert!(first_gone >= 1, "readings before the kill: {alive:?}");
    assert!(
        alive[first_gone..].iter().all(|a| !a),
        "once gone, always gone: {alive:?}"
    );
    for r in &rows[first_gone..] {
        assert!(
            r.heap_bytes.is_none() && r.mem_total_bytes.is_some(),
            "{r:?}"
        );
    }

    tokio::time::sleep(INTERVAL * 3).await;
    let later = host_readings(&session().await, &collector.keyspace).await;
    assert_eq!(
        later.len(),
        rows.len(),
        "nothing arrives once the agent stops"
    );
    assert!(later.last().unwrap().timestamp <= stopped);
}

#[tokio::test]
async fn readings_taken_while_the_collector_is_down_arrive_later() {
    let collector = spawn_app(AppOptions::default()).await;
    let address = collector.url.trim_start_matches("http://").to_owned();
    let proxy = Proxy::start(address).await;
    proxy.cut();
    let agent = tokio::spawn(run_agent(
        args(format!("http://{}", proxy.addr), std::process::id()),
        Duration::from_millis(2500),
    ));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    proxy.restore();
    let stats = agent.await.unwrap();
    assert!(stats.failed_pushes >= 1, "{stats:?}");
    assert_eq!(
        (stats.delivered, stats.dropped),
        (stats.samples, 0),
        "{stats:?}"
    );
    let rows = eventually_host_readings(&collector.keyspace, stats.samples as usize).await;
    for pair in rows.windows(2) {
        let gap = pair[1].timestamp - pair[0].timestamp;
        assert!(
            gap < chrono::Duration::milliseconds(1000),
            "no hole in the heartbeat: {gap}"
        );
    }
}

#[tokio::test]
async fn a_missing_push_shows_as_a_step_without_heartbeat_in_host_stats() {
    let collector = spawn_app(AppOptions::default()).await;
    let now = || chrono::Utc::now().timestamp_millis();
    let mut args = args(collector.url.clone(), std::process::id());
    args.interval = Duration::from_millis(250);
    let from = now();
    let before = run_agent(args.clone(), Duration::from_millis(1200)).await;
    let silent_from = now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let silent_to = now();
    let after = run_agent(args, Duration::from_millis(1200)).await;
    let to = now();
    eventually_host_readings(
        &collector.keyspace,
        (before.delivered + after.delivered) as usize,
    )
    .await;

    let url = format!(
        "{}/v1/stats/host?service=hosts&from={from}&to={to}&step=1s",
        collector.url
    );
    let answer: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let instances = answer["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{answer}");
    assert_eq!(instances[0]["instance"], "agent-test");
    let points: Vec<(i64, u64, f64)> = instances[0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let t = chrono::DateTime::parse_from_rfc3339(p["t"].as_str().unwrap()).unwrap();
            let availability = p["availability"].as_f64().unwrap_or(0.0);
            (
                t.timestamp_millis(),
                p["samples"].as_u64().unwrap(),
                availability,
            )
        })
        .collect();
    let heard = |t: i64| {
        points
            .iter()
            .any(|(at, samples, _)| *at == t && *samples > 0)
    };
    let silent_steps: Vec<i64> = (silent_from / 1000 + 1..silent_to / 1000)
        .map(|s| s * 1000)
        .filter(|t| t + 1000 <= silent_to)
        .collect();
    assert!(!silent_steps.is_empty(), "the pause covers a whole step");
    for t in &silent_steps {
        assert!(
            !heard(*t),
            "no heartbeat in the step at {t} while the agent was stopped: {answer}"
        );
        assert!(
            points.iter().any(|(at, samples, availability)| at == t
                && *samples == 0
                && *availability == 0.0),
            "the silent step at {t} is reported unavailable: {answer}"
        );
    }
    assert!(
        points.iter().any(|p| p.0 < silent_from && p.1 > 0),
        "heard before: {answer}"
    );
    assert!(
        points.iter().any(|p| p.0 >= silent_to - 1000 && p.1 > 0),
        "heard after: {answer}"
    );
    for (t, samples, availability) in &points {
        if *samples > 0 {
            assert_eq!(
                *availability, 1.0,
                "step {t}: the agent says available when it speaks"
            );
        }
    }
}
