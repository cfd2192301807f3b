//! The query bench's results as a markdown section, kept in BENCHMARKS.md between markers.

use std::process::Command;
use std::time::Duration;

use scylla::client::session::Session;

use super::cpu::Spent;

/// The figures of one range.
pub struct RangeResult {
    pub label: &'static str,
    pub partitions: usize,
    pub rows: usize,
    pub rounds: usize,
    /// p50 and p99 of the baseline, the fan-out and stats.
    pub p50: [Duration; 3],
    pub p99: [Duration; 3],
    /// CPU of the node and the client while each reader ran.
    pub cpu: [Spent; 3],
}

/// The nearest-rank quantile of `samples`.
fn quantile(samples: &mut [Duration], per_mille: usize) -> Duration {
    samples.sort();
    let rank = (samples.len() * per_mille).div_ceil(1000).max(1);
    samples[rank - 1]
}

impl RangeResult {
    pub fn new(
        label: &'static str,
        partitions: usize,
        rows: usize,
        mut samples: [Vec<Duration>; 3],
        cpu: [Spent; 3],
    ) -> Self {
        let rounds = samples[0].len();
        let p50 = [0, 1, 2].map(|i| quantile(&mut samples[i], 500));
        let p99 = [0, 1, 2].map(|i| quantile(&mut samples[i], 990));
        Self {
            label,
            partitions,
            rows,
            rounds,
            p50,
            p99,
            cpu,
        }
    }

    pub fn speedup(&self) -> (f64, f64) {
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        (
            ratio(self.p50[0], self.p50[1]),
            ratio(self.p99[0], self.p99[1]),
        )
    }

    pub fn line(&self) -> String {
        let (p50, p99) = self.speedup();
        format!(
            "{}: {} rows in {} partitions; baseline p50 {:.1?} p99 {:.1?} ({}); fan-out p50 {:.1?} p99 {:.1?} ({p50:.2}x / {p99:.2}x; {}); stats p50 {:.1?} p99 {:.1?} ({})",
            self.label, self.rows, self.partitions, self.p50[0], self.p99[0], self.cpu[0].describe(),
            self.p50[1], self.p99[1], self.cpu[1].describe(), self.p50[2], self.p99[2], self.cpu[2].describe()
        )
    }
}

/// Everything the section reports.
pub struct Run {
    pub readings: usize,
    pub instances: usize,
    pub paths: usize,
    pub seeding: Duration,
    pub results: Vec<RangeResult>,
    pub cassandra: String,
    pub page_rows: u32,
    pub concurrency: usize,
    /// `/proc/loadavg`'s one-minute figure when the run started.
    pub load: String,
}

/// The one-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores ({model}), shared with the CQL node")
}

/// The node's version, for the record.
pub async fn cassandra_version(session: &Session) -> String {
    let answer = session
        .query_unpaged("SELECT release_version FROM system.local", ())
        .await;
    answer
        .ok()
        .and_then(|r| r.into_rows_result().ok())
        .and_then(|r| r.single_row::<(String,)>().ok())
        .map_or_else(|| "unknown".into(), |(v,)| v)
}

/// The markdown section.
pub fn section(run: &Run) -> String {
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&[
        "status",
        "--porcelain",
        "--",
        "src",
        "benches",
        "Cargo.toml",
    ])
    .is_some_and(|s| !s.is_empty());
    let code = if dirty {
        format!("{head} plus uncommitted changes (working tree)")
    } else {
        head
    };
    let mut out = String::new();
    out += "## Query benchmark — latest run\n\n";
    out += &format!(
        "- date: {}\n- command: `CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench query`\n- code: {code}\n- machine: {}\n- store: Cassandra {}, single node on the same machine, RF 1; default settings (1 h buckets, 4 shards)\n- data: {} API readings of one service over 24 h ({} instances × {} paths × 6 methods, one in ten a summary), seeded in {:.1} s\n- reads: every reading of the range; pages of {} rows; fan-out with at most {} partition reads in flight\n- load average (1 min) when the run started: {}\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        run.cassandra,
        run.readings,
        run.instances,
        run.paths,
        run.seeding.as_secs_f64(),
        run.page_rows,
        run.concurrency,
        run.load,
    );
    out += "| range | partitions | readings | rounds | baseline p50 / p99 | fan-out p50 / p99 | speed-up p50 / p99 | stats (1 m step) p50 / p99 | stats speed-up p50 | cores busy (node + client) baseline / fan-out | target ≥ 1.5x (fan-out p50) |\n";
    out += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    for r in &run.results {
        let (p50, p99) = r.speedup();
        let verdict = if p50 >= 1.5 { "PASS" } else { "FAIL" };
        let stats = r.p50[0].as_secs_f64() / r.p50[2].as_secs_f64();
        out += &format!(
            "| {} | {} | {} | {} | {} / {} | {} / {} | **{p50:.2}x** / {p99:.2}x | {} / {} | {stats:.2}x | {:.2} / {:.2} | {verdict} |\n",
            r.label,
            r.partitions,
            r.rows,
            r.rounds,
            ms(r.p50[0]),
            ms(r.p99[0]),
            ms(r.p50[1]),
            ms(r.p99[1]),
            ms(r.p50[2]),
            ms(r.p99[2]),
            r.cpu[0].cores(),
            r.cpu[1].cores(),
        );
    }
    out += "\nBaseline: one plain paged query per partition (`timestamp >= ? AND timestamp <= ?`), partitions one after another, rows decoded into owned values. Fan-out: the planner and ordered merge behind `/v1/readings` (keyset pages, rows validated into readings, merged by `(timestamp, reading_id)`). Stats: `/v1/stats` in process over the same rows (unordered fan-out, per-minute aggregation and percentile sketches). Every read is checked to return exactly the seeded readings. With few rounds, p99 is close to the maximum.\n\n";
    out += "Cores busy: CPU time of the CQL node and of the bench process while each reader ran, per second of reading (sampled from `/proc`, 10 ms ticks). The node does most of the work even for one sequential query (its network, read and GC threads overlap), so the sequential baseline already keeps more than one core busy, and the fan-out brings the machine close to all of its cores: on this 2-core machine a full read is CPU-bound, and the speed-up is limited by the cores the baseline leaves idle, not by round trips. Other processes running on the shared machine at the same time lower every figure and add to p99.\n";
    out
}
