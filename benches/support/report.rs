//! The results as markdown tables, printed and kept in BENCHMARKS.md between markers.

use std::fmt::Write as _;
use std::time::Duration;

use super::cpu::Usage;
use super::disk::Footprint;

const RSS_LIMIT: u64 = 256 * 1024 * 1024;
const ACCEPT_TARGET: f64 = 250_000.0;
const RATIO_TARGET: f64 = 0.8;

/// Every figure of one run of the bench.
pub struct Report {
    /// The section's heading.
    pub title: String,
    pub date: String,
    pub command: String,
    pub revision: String,
    pub machine: String,
    pub cassandra: String,
    pub parameters: Vec<(String, String)>,
    /// Baseline trials and end-to-end rounds, in the order they ran.
    pub timeline: Vec<Step>,
    pub rounds: Vec<Round>,
    /// Phase 3, when it ran (it needs a single node to cut).
    pub accept: Option<Acceptance>,
    /// The last round's keyspace on disk, when the nodes could be measured.
    pub disk: Option<Footprint>,
}

/// Phase 3: acceptance into the WAL with the store cut, then the drain once it is back.
pub struct Acceptance {
    pub posting: Posting,
    pub backlog_bytes: u64,
    pub batch: usize,
    /// After the store came back: for how long the backlog drained, how much, peak RSS.
    pub drain: Duration,
    pub drained: u64,
    pub drain_peak_rss: u64,
}

/// What a [`Step`] measured.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A baseline configuration tried in phase 1, only to choose the one the rounds repeat.
    Selection,
    /// The chosen baseline configuration, run right after an end-to-end round.
    Paired,
    /// An end-to-end round.
    EndToEnd,
}

/// Every baseline trial, phase 1's and the rounds'.
pub const PAIRED_OR_SELECTION: [StepKind; 2] = [StepKind::Selection, StepKind::Paired];

/// The step of one of `kinds` with the best rate.
pub fn best_step<'a>(timeline: &'a [Step], kinds: &[StepKind]) -> Option<&'a Step> {
    timeline
        .iter()
        .filter(|s| kinds.contains(&s.kind))
        .max_by(|a, b| a.rate.total_cmp(&b.rate))
}

/// One baseline trial or end-to-end round: rows (readings) stored per second.
pub struct Step {
    pub label: String,
    pub kind: StepKind,
    pub rate: f64,
    pub elapsed: Duration,
    pub cpu: Usage,
}

/// Posting to the real binary.
pub struct Posting {
    pub readings: u64,
    pub posting: Duration,
    pub accepted_rate: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max_latency: Duration,
    pub busy: u64,
    pub backlog_refusals: u64,
    pub peak_rss: u64,
    pub max_sampled_rss: u64,
    pub max_backlog: u64,
    pub cpu: Usage,
}

/// One end-to-end round.
pub struct Round {
    pub posting: Posting,
    pub stored_rate: f64,
    pub stored_after: Duration,
    pub flushes: u64,
    pub flush_mean: Duration,
    /// WAL pieces the flusher ended (each writes its partial rollup rows and latest rows).
    pub pieces: u64,
    /// Partials (minute and hour; one per series, code and slot) those pieces wrote: the CQL
    /// store writes the codes of one endpoint as one row.
    pub partial_rows: u64,
    pub warnings: usize,
    pub verified: u64,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// `1234567.8` → `1,234,568`.
pub fn rate(r: f64) -> String {
    let digits = (r.round() as u64).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "**MISS**"
    }
}

fn cpu(u: &Usage) -> String {
    match u.node {
        Some(node) => format!(
            "{:.2} = service {:.2} + bench {:.2} + Cassandra {:.2} + other {:.2} (steal {:.2})",
            u.machine,
            u.server,
            u.bench,
            node,
            u.other(),
            u.steal
        ),
        None => format!(
            "{:.2} = service {:.2} + bench {:.2} + Cassandra and other {:.2} (steal {:.2})",
            u.machine,
            u.server,
            u.bench,
            u.other(),
            u.steal
        ),
    }
}

impl Report {
    /// The best baseline trial of the rounds (each run right after its end-to-end round): as
    /// many samples as there are rounds, in the same conditions. The selection trials of phase 1
    /// are left out: the best of them is the best of more samples than the rounds get, picked
    /// for being the best, so it is a high draw from the node's run-to-run noise.
    pub fn baseline(&self) -> &Step {
        best_step(&self.timeline, &[StepKind::Paired]).expect("at least one round")
    }

    /// The best baseline trial of the whole run, phase 1's included: how runs before the
    /// paired comparison were judged.
    pub fn best_of_all_trials(&self) -> &Step {
        best_step(&self.timeline, &PAIRED_OR_SELECTION).expect("at least one baseline trial")
    }

    /// The end-to-end round with the best stored rate.
    pub fn best_round(&self) -> &Round {
        self.rounds
            .iter()
            .max_by(|a, b| a.stored_rate.total_cmp(&b.stored_rate))
            .expect("at least one round")
    }

    pub fn ratio(&self) -> f64 {
        self.best_round().stored_rate / self.baseline().rate
    }

    pub fn peak_rss(&self) -> u64 {
        self.rounds
            .iter()
            .flat_map(|r| [r.posting.peak_rss, r.posting.max_sampled_rss])
            .chain(self.accept.iter().flat_map(|a| {
                [
                    a.posting.peak_rss,
                    a.posting.max_sampled_rss,
                    a.drain_peak_rss,
                ]
            }))
            .max()
            .unwrap_or(0)
    }

    fn largest_backlog(&self) -> u64 {
        self.rounds
            .iter()
            .map(|r| r.posting.max_backlog)
            .chain(
                self.accept
                    .iter()
                    .flat_map(|a| [a.backlog_bytes, a.posting.max_backlog]),
            )
            .max()
            .unwrap_or(0)
    }

    /// The last round's keyspace on disk.
    fn disk_markdown(&self, md: &mut String) {
        let Some(d) = &self.disk else {
            return;
        };
        let readings = self.best_round().verified.max(1) as f64;
        let per_replica = |bytes: u64| bytes as f64 / d.nodes as f64 / readings;
        let _ = writeln!(
            md,
            "\n### On disk, the last round's keyspace after `nodetool flush` + `nodetool compact` on each of {} node(s)\n\n| figure | value |\n| --- | --- |",
            d.nodes
        );
        let _ = writeln!(
            md,
            "| whole keyspace (every table), bytes per reading per replica | **{:.1}** ({} on all nodes) |",
            per_replica(d.keyspace_bytes),
            mib(d.keyspace_bytes)
        );
        let _ = writeln!(
            md,
            "| `metric_readings` alone, bytes per reading per replica | {:.1} |",
            per_replica(d.readings_bytes)
        );
        let _ = writeln!(
            md,
            "| `metric_readings` compression ratio (compressed / raw) | {:.2} |",
            d.compression_ratio
        );
        if let Some(cpu) = d.compaction_cpu_seconds {
            let _ = writeln!(
                md,
                "| Cassandra CPU for the flush and the major compaction, CPU-seconds per 1M readings (all nodes) | {:.1} |",
                cpu / readings * 1e6
            );
        }
        let _ = writeln!(
            md,
            "| `metric_readings` partitions per node; mean / largest partition, raw | {} ; {} / {} |",
            d.partitions,
            mib(d.partition_mean_bytes),
            mib(d.partition_max_bytes)
        );
    }

    /// The markdown section (without the markers).
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "## {} — latest run\n", self.title);
        let _ = writeln!(md, "- date: {}", self.date);
        let _ = writeln!(md, "- command: `{}`", self.command);
        let _ = writeln!(md, "- code: {}", self.revision);
        let _ = writeln!(md, "- machine: {}", self.machine);
        let _ = writeln!(md, "- store: {}", self.cassandra);
        let params: Vec<String> = self
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(md, "- parameters: {}\n", params.join(", "));

        let baseline = self.baseline();
        let best = self.best_round();
        let ratio = self.ratio();
        let _ = writeln!(md, "### Targets\n");
        let _ = writeln!(md, "| target | measured | verdict |");
        let _ = writeln!(md, "| --- | --- | --- |");
        let _ = writeln!(
            md,
            "| end-to-end stored rate ≥ 80% of the driver baseline (best round / best baseline trial of the rounds) | {} / {} readings/s = **{:.2}** | {} |",
            rate(best.stored_rate),
            rate(baseline.rate),
            ratio,
            verdict(ratio >= RATIO_TARGET)
        );
        let all = self.best_of_all_trials();
        let _ = writeln!(
            md,
            "| for comparison: best round / best baseline trial of the whole run, phase 1's selection trials included | {} / {} readings/s = {:.2} | — |",
            rate(best.stored_rate),
            rate(all.rate),
            best.stored_rate / all.rate
        );
        if let Some(a) = &self.accept {
            let _ = writeln!(
                md,
                "| acceptance into the WAL ≥ 250,000 readings/s with 1000-reading batches (phase 3) | **{}** readings/s | {} |",
                rate(a.posting.accepted_rate),
                if a.batch == 1000 {
                    verdict(a.posting.accepted_rate >= ACCEPT_TARGET)
                } else {
                    "n/a (BATCH ≠ 1000)"
                }
            );
        }
        let _ = writeln!(
            md,
            "| RSS < 256 MiB at any backlog (peak over every server process) | **{}** (largest WAL backlog: {}) | {} |",
            mib(self.peak_rss()),
            mib(self.largest_backlog()),
            verdict(self.peak_rss() < RSS_LIMIT)
        );

        let _ = writeln!(
            md,
            "\n### Baseline trials and end-to-end rounds, in the order they ran\n"
        );
        let _ = writeln!(
            md,
            "Baseline `RxF`: R rows per unlogged single-partition batch, F batches in flight. CPU in cores \
             (of {:.0}) over the step: the service process, this bench process (driver or HTTP load), \
             the Cassandra node(s), and other processes (other people's builds and tests on the shared machine).\n",
            baseline.cpu.cores
        );
        let _ = writeln!(
            md,
            "| step | stored rows/s | time | CPU, cores | CPU-seconds per 1M rows: service / Cassandra |"
        );
        let _ = writeln!(md, "| --- | --- | --- | --- | --- |");
        for step in &self.timeline {
            let per_million = |cores: f64| {
                cores * step.cpu.wall.as_secs_f64() / (step.rate * step.elapsed.as_secs_f64()) * 1e6
            };
            let node = step
                .cpu
                .node
                .map_or_else(|| "?".to_owned(), |n| format!("{:.1}", per_million(n)));
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} s | {} | {:.1} / {node} |",
                step.label,
                rate(step.rate),
                step.elapsed.as_secs_f64(),
                cpu(&step.cpu),
                per_million(step.cpu.server)
            );
        }

        let _ = writeln!(md, "\n### End-to-end rounds (phase 2)\n");
        let mut header = String::from("| figure |");
        let mut rule = String::from("| --- |");
        for i in 1..=self.rounds.len() {
            let _ = write!(header, " round {i} |");
            rule.push_str(" --- |");
        }
        let _ = writeln!(md, "{header}\n{rule}");
        let row = |md: &mut String, name: &str, f: &dyn Fn(&Round) -> String| {
            let cells: Vec<String> = self.rounds.iter().map(f).collect();
            let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
        };
        row(
            &mut md,
            "stored readings/s (first post → all stored)",
            &|r| {
                format!(
                    "**{}** ({:.1} s)",
                    rate(r.stored_rate),
                    r.stored_after.as_secs_f64()
                )
            },
        );
        row(&mut md, "accepted readings/s while posting", &|r| {
            format!(
                "{} ({:.1} s)",
                rate(r.posting.accepted_rate),
                r.posting.posting.as_secs_f64()
            )
        });
        row(&mut md, "ack latency p50 / p99 / max", &|r| {
            format!(
                "{} / {} / {}",
                ms(r.posting.p50),
                ms(r.posting.p99),
                ms(r.posting.max_latency)
            )
        });
        row(&mut md, "answers 429 / 503 (retried)", &|r| {
            format!("{} / {}", r.posting.busy, r.posting.backlog_refusals)
        });
        row(&mut md, "CPU while posting, cores", &|r| {
            cpu(&r.posting.cpu)
        });
        row(&mut md, "flushes / mean flush / readings per flush", &|r| {
            format!(
                "{} / {} / {}",
                r.flushes,
                ms(r.flush_mean),
                rate(r.posting.readings as f64 / r.flushes.max(1) as f64)
            )
        });
        row(
            &mut md,
            "rollup pieces / partials written, per 1,000 readings (one per series, code and slot; a CQL row holds an endpoint's codes)",
            &|r| {
                format!(
                    "{} / {} ({:.1})",
                    r.pieces,
                    rate(r.partial_rows as f64),
                    r.partial_rows as f64 * 1000.0 / r.posting.readings.max(1) as f64
                )
            },
        );
        row(&mut md, "largest WAL backlog sampled", &|r| {
            mib(r.posting.max_backlog)
        });
        row(&mut md, "service peak RSS (VmHWM)", &|r| {
            mib(r.posting.peak_rss.max(r.posting.max_sampled_rss))
        });
        row(&mut md, "WARN/ERROR lines in the service log", &|r| {
            r.warnings.to_string()
        });
        row(&mut md, "metric_readings check", &|r| {
            format!(
                "{} rows, each posted reading exactly once",
                rate(r.verified as f64)
            )
        });

        self.disk_markdown(&mut md);
        let Some(a) = &self.accept else {
            let _ = writeln!(
                md,
                "\n### Acceptance only, store cut (phase 3)\n\nNot run: the proxy that cuts the store \
                 stands in front of one node, and the driver reaches a cluster's other nodes directly. \
                 Acceptance into the WAL does not involve the store: see the single-node section."
            );
            return md;
        };
        let drain = (a.drain, a.drained, a.drain_peak_rss);
        let a = &a.posting;
        let _ = writeln!(
            md,
            "\n### Acceptance only, store cut (phase 3)\n\n| figure | value |\n| --- | --- |"
        );
        let _ = writeln!(
            md,
            "| accepted readings/s | **{}** ({} readings in {:.1} s) |",
            rate(a.accepted_rate),
            rate(a.readings as f64),
            a.posting.as_secs_f64()
        );
        let _ = writeln!(
            md,
            "| ack latency p50 / p99 / max | {} / {} / {} |",
            ms(a.p50),
            ms(a.p99),
            ms(a.max_latency)
        );
        let _ = writeln!(
            md,
            "| answers 429 / 503 (retried) | {} / {} |",
            a.busy, a.backlog_refusals
        );
        let _ = writeln!(md, "| CPU while posting, cores | {} |", cpu(&a.cpu));
        let _ = writeln!(
            md,
            "| WAL backlog at the end | {} |",
            mib(self.accept.as_ref().map_or(0, |a| a.backlog_bytes))
        );
        let _ = writeln!(
            md,
            "| service peak RSS while accepting | {} |",
            mib(a.peak_rss.max(a.max_sampled_rss))
        );
        let _ = writeln!(
            md,
            "| then the store restored: readings drained in {} s / peak RSS | {} / {} |",
            drain.0.as_secs(),
            rate(drain.1 as f64),
            mib(drain.2)
        );
        md
    }
}
