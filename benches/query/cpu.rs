//! CPU time of the CQL node and of this bench process, from `/proc/<pid>/stat`: where a read's
//! time goes on a machine the node shares with the client.

use std::time::Duration;

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// `utime + stime` of `pid` ("self" for this process), in ticks.
fn ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The pid of the CQL node: `TIMEBUCKET_BENCH_CQL_PID`, else `scripts/cassandra`'s pid file.
pub fn node_pid() -> Option<String> {
    std::env::var("TIMEBUCKET_BENCH_CQL_PID").ok().or_else(|| {
        let file =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".cassandra/cassandra.pid");
        std::fs::read_to_string(file)
            .ok()
            .map(|p| p.trim().to_owned())
    })
}

/// CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    node: Option<u64>,
    bench: Option<u64>,
}

impl Sample {
    pub fn now(node_pid: Option<&str>) -> Self {
        Self {
            node: node_pid.and_then(ticks),
            bench: ticks("self"),
        }
    }
}

/// CPU seconds spent by the node and by the bench between samples, summed over reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spent {
    pub node: Option<f64>,
    pub bench: f64,
    pub wall: Duration,
}

impl Spent {
    pub fn add(&mut self, before: Sample, after: Sample, wall: Duration) {
        let seconds =
            |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?) as f64 / TICKS_PER_SECOND);
        if let Some(node) = seconds(before.node, after.node) {
            self.node = Some(self.node.unwrap_or(0.0) + node);
        }
        self.bench += seconds(before.bench, after.bench).unwrap_or(0.0);
        self.wall += wall;
    }

    /// Cores busy on average (node + client) while reading.
    pub fn cores(&self) -> f64 {
        (self.node.unwrap_or(0.0) + self.bench) / self.wall.as_secs_f64().max(1e-9)
    }

    /// "node 1.62 + client 0.31 cores" over the reads.
    pub fn describe(&self) -> String {
        let wall = self.wall.as_secs_f64().max(1e-9);
        match self.node {
            Some(node) => format!(
                "node {:.2} + client {:.2} cores",
                node / wall,
                self.bench / wall
            ),
            None => format!("client {:.2} cores", self.bench / wall),
        }
    }
}
