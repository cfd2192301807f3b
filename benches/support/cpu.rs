//! Where the CPU went during a phase: the whole machine (from `/proc/stat`, including steal time
//! taken by the hypervisor), the server process, this bench process, the CQL nodes when their
//! pids are known (see [`node_pids`]), and the rest: whatever else runs on the machine.

use std::time::{Duration, Instant};

/// Counters at one instant, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    at: Instant,
    busy: u64,
    steal: u64,
    total: u64,
    server: u64,
    bench: u64,
    node: Option<u64>,
}

/// Average cores used over an interval (2.0 = both cores of a 2-core machine).
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub wall: Duration,
    pub cores: f64,
    pub machine: f64,
    pub steal: f64,
    pub server: f64,
    pub bench: f64,
    /// The CQL nodes together, when their pids are known.
    pub node: Option<f64>,
}

impl Usage {
    /// Everything else: other processes on the machine (and the CQL node if its pid is unknown).
    pub fn other(&self) -> f64 {
        (self.machine - self.server - self.bench - self.node.unwrap_or(0.0)).max(0.0)
    }

    pub fn describe(&self) -> String {
        let node = match self.node {
            Some(n) => format!("CQL node {n:.2}, other processes {:.2}", self.other()),
            None => format!("CQL node and other processes {:.2}", self.other()),
        };
        format!(
            "{:.2} of {:.0} cores busy over {:.1} s (service {:.2}, bench process {:.2}, {node}); steal {:.2}",
            self.machine,
            self.cores,
            self.wall.as_secs_f64(),
            self.server,
            self.bench,
            self.steal
        )
    }
}

fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn machine() -> (u64, u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let get = |i: usize| fields.get(i).copied().unwrap_or(0);
    let total: u64 = (0..8).map(get).sum();
    let idle = get(3) + get(4);
    let steal = get(7);
    (total - idle - steal, steal, total)
}

/// The pids of the CQL nodes the bench writes to, those alive: `TIMEBUCKET_BENCH_CQL_PID`
/// (comma-separated), else the pid files of `scripts/cassandra`: the cluster's nodes
/// (`.cassandra/cluster/node*/cassandra.pid`) when `TIMEBUCKET_BENCH_CQL` names more than one
/// contact point, the single node's (`.cassandra/cassandra.pid`) otherwise.
pub fn node_pids() -> Vec<u32> {
    let home = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".cassandra");
    let listed = std::env::var("TIMEBUCKET_BENCH_CQL_PID").ok().or_else(|| {
        let contact_points = std::env::var("TIMEBUCKET_BENCH_CQL").unwrap_or_default();
        let files: Vec<std::path::PathBuf> = if contact_points.contains(',') {
            let nodes = std::fs::read_dir(home.join("cluster")).ok()?;
            nodes
                .filter_map(|node| Some(node.ok()?.path().join("cassandra.pid")))
                .collect()
        } else {
            vec![home.join("cassandra.pid")]
        };
        let pids: Vec<String> = files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .map(|pid| pid.trim().to_owned())
            .collect();
        Some(pids.join(","))
    });
    listed
        .unwrap_or_default()
        .split(',')
        .filter_map(|pid| pid.trim().parse::<u32>().ok())
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}/stat")).exists())
        .collect()
}

/// The CPU ticks of the CQL nodes, summed; `None` when no pid is known.
fn nodes_ticks(pids: &[u32]) -> Option<u64> {
    (!pids.is_empty()).then(|| pids.iter().map(|pid| process(Some(*pid))).sum())
}

/// Waits `min`, then until the CQL nodes have used less than `idle_cores` together over a
/// second (their memtable flushes and compactions of the previous step are done), for at most
/// `max` in all. Returns how long it waited. Without a known node pid it just waits `min`.
pub async fn settle(min: Duration, max: Duration, idle_cores: f64) -> Duration {
    let started = Instant::now();
    tokio::time::sleep(min).await;
    let pids = node_pids();
    let Some(mut before) = nodes_ticks(&pids) else {
        return started.elapsed();
    };
    let hz = ticks_per_second();
    while started.elapsed() < max {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = nodes_ticks(&pids).unwrap_or(before);
        let used = now.saturating_sub(before) as f64 / hz;
        before = now;
        if used < idle_cores {
            break;
        }
    }
    started.elapsed()
}

/// CPU-seconds (user and system) process `pid` has used so far.
pub fn process_seconds(pid: u32) -> f64 {
    process(Some(pid)) as f64 / ticks_per_second()
}

fn process(pid: Option<u32>) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".into(),
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
}

impl Snapshot {
    /// Counters now; `server` is the pid of the service, if one runs.
    pub fn take(server: Option<u32>) -> Snapshot {
        let (busy, steal, total) = machine();
        Snapshot {
            at: Instant::now(),
            busy,
            steal,
            total,
            server: server.map_or(0, |pid| process(Some(pid))),
            bench: process(None),
            node: nodes_ticks(&node_pids()),
        }
    }

    /// Usage from `self` to `later`.
    pub fn until(&self, later: &Snapshot) -> Usage {
        let wall = later.at - self.at;
        let hz = ticks_per_second();
        let secs = wall.as_secs_f64().max(1e-9);
        let cores_of = |ticks: u64| ticks as f64 / hz / secs;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Usage {
            wall,
            cores,
            // /proc/stat sums every core: the share of all ticks, scaled to cores.
            machine: (later.busy - self.busy) as f64 / (later.total - self.total).max(1) as f64
                * cores,
            steal: (later.steal - self.steal) as f64 / (later.total - self.total).max(1) as f64
                * cores,
            server: cores_of(later.server.saturating_sub(self.server)),
            bench: cores_of(later.bench.saturating_sub(self.bench)),
            node: match (self.node, later.node) {
                (Some(a), Some(b)) => Some(cores_of(b.saturating_sub(a))),
                _ => None,
            },
        }
    }
}
