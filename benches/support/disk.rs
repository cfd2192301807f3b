//! What a keyspace occupies on the nodes of `scripts/cassandra` (the single node, or each node
//! of its cluster) once its memtables are flushed and its tables compacted: the figures the
//! sizing in docs/scaling.md starts from.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// The keyspace on disk, summed over the nodes.
pub struct Footprint {
    /// Nodes measured (each holds one replica when the replication factor equals them).
    pub nodes: usize,
    /// Every table of the keyspace, bytes (apparent file sizes, snapshots excluded).
    pub keyspace_bytes: u64,
    /// `metric_readings` alone, bytes.
    pub readings_bytes: u64,
    /// `metric_readings`: compressed / uncompressed, as the nodes report it (mean over nodes).
    pub compression_ratio: f64,
    /// `metric_readings`: mean and largest partition, uncompressed bytes (largest over nodes).
    pub partition_mean_bytes: u64,
    pub partition_max_bytes: u64,
    /// `metric_readings`: partitions on one node.
    pub partitions: u64,
    /// CPU-seconds the nodes spent flushing and compacting, when the caller measured it.
    pub compaction_cpu_seconds: Option<f64>,
}

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Flushes and compacts `keyspace` on every node (`nodes` of them: a cluster when more than
/// one) and measures it; `None` when the nodes' data folders are not this checkout's (a node
/// started elsewhere cannot be measured through `scripts/cassandra`).
pub fn measure(keyspace: &str, nodes: usize) -> anyhow::Result<Option<Footprint>> {
    let data_dirs: Vec<PathBuf> = if nodes > 1 {
        (1..=nodes)
            .map(|n| repository().join(format!(".cassandra/cluster/node{n}/data/data")))
            .collect()
    } else {
        vec![repository().join(".cassandra/data/data")]
    };
    if !data_dirs.iter().all(|d| d.join(keyspace).is_dir()) {
        return Ok(None);
    }
    let mut footprint = Footprint {
        nodes,
        keyspace_bytes: 0,
        readings_bytes: 0,
        compression_ratio: 0.0,
        partition_mean_bytes: 0,
        partition_max_bytes: 0,
        partitions: 0,
        compaction_cpu_seconds: None,
    };
    for (i, dir) in data_dirs.iter().enumerate() {
        let node = (nodes > 1).then_some(i + 1);
        nodetool(node, &["flush", keyspace])?;
        nodetool(node, &["compact", keyspace])?;
        let stats = nodetool(
            node,
            &["tablestats", &format!("{keyspace}.metric_readings")],
        )?;
        footprint.keyspace_bytes += du(&dir.join(keyspace))?;
        let readings = std::fs::read_dir(dir.join(keyspace))?
            .filter_map(Result::ok)
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("metric_readings-")
            })
            .context("no metric_readings folder")?;
        footprint.readings_bytes += du(&readings.path())?;
        footprint.compression_ratio += stat(&stats, "SSTable Compression Ratio")? / nodes as f64;
        footprint.partition_mean_bytes = footprint
            .partition_mean_bytes
            .max(stat(&stats, "Compacted partition mean bytes")? as u64);
        footprint.partition_max_bytes = footprint
            .partition_max_bytes
            .max(stat(&stats, "Compacted partition maximum bytes")? as u64);
        footprint.partitions = stat(&stats, "Number of partitions (estimate)")? as u64;
    }
    Ok(Some(footprint))
}

/// `scripts/cassandra [cluster] nodetool [N] ARGS`: its output.
fn nodetool(node: Option<usize>, args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new(repository().join("scripts/cassandra"));
    match node {
        Some(n) => command.args(["cluster", "nodetool", &n.to_string()]),
        None => command.arg("nodetool"),
    };
    let output = command.args(args).output()?;
    if !output.status.success() {
        bail!(
            "nodetool {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A `name: value` line of `nodetool tablestats`.
fn stat(text: &str, name: &str) -> anyhow::Result<f64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no `{name}` in nodetool tablestats"))
}

/// Bytes of the files under `path` (apparent sizes; snapshots and backups excluded).
pub fn du(path: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let meta = entry.metadata()?;
        if meta.is_dir() {
            if name == "snapshots" || name == "backups" {
                continue;
            }
            total += du(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}
