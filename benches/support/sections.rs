//! Each benchmark's section of `BENCHMARKS.md`, between its `<!-- NAME:start -->` and
//! `<!-- NAME:end -->` markers.

use std::path::Path;

/// What a missing `BENCHMARKS.md` starts with.
const HEADER: &str = "# Benchmarks

Figures from the `cargo bench` targets in `benches/`. The machine is small and shared: 2 cores,
with the Cassandra node, the service and the load generator all on it, and other work (builds,
test suites) running at the same time, so absolute numbers move a lot from run to run. That is
why every speed is quoted as a ratio against a baseline measured in the same run, and why a run
records its own parameters, code revision and where the CPU went. A benchmark never fails on a
speed; the ingest benchmark fails only if stored data is wrong (a reading lost or stored twice).

Ingest (a CQL node must be up: `scripts/cassandra start`; about 3-4 minutes):

    CARGO_TARGET_DIR=/tmp/target-bench cargo bench --bench ingest

Each run replaces its own section between its markers (set `BENCH_WRITE_MD=0` to leave this file
alone). The options and what each phase measures are described at the top of
`benches/ingest.rs`; the notes after the ingest section explain its results.

";

/// Replaces the section `name` in `path` with `section`, appending it when the markers are
/// missing and creating the file when it is.
pub fn write_section(path: &Path, name: &str, section: &str) -> std::io::Result<()> {
    let (start_marker, end_marker) = (
        format!("<!-- {name}:start -->"),
        format!("<!-- {name}:end -->"),
    );
    let block = format!("{start_marker}\n{section}{end_marker}\n");
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HEADER.to_owned(),
        Err(e) => return Err(e),
    };
    let updated = match (text.find(&start_marker), text.find(&end_marker)) {
        (Some(start), Some(end)) if end > start => {
            let after = text[end + end_marker.len()..].trim_start_matches('\n');
            let gap = if after.is_empty() { "" } else { "\n" };
            format!("{}{block}{gap}{after}", &text[..start])
        }
        _ => format!("{}\n\n{block}", text.trim_end()),
    };
    std::fs::write(path, updated)
}

/// The code's revision (`git rev-parse --short HEAD`), empty outside a git checkout.
pub fn revision() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The one-minute load average, from `/proc/loadavg`: how busy the shared machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}
