//! One host sample, read through `sysinfo` (no hand parsing of `/proc`).
//!
//! What each gauge is:
//! - `cpu_percent`: the usage of every core since the previous sample, summed (so up to
//!   100 × cores), as the reading model defines it.
//! - `mem_used_bytes` / `mem_total_bytes`: total minus available memory / installed memory.
//! - `disk_used_bytes` / `disk_total_bytes`: of the mount holding the `--disk` path (the data
//!   mount); used is total minus the space available to unprivileged users.
//! - `available`: true on every sample (the sample itself is the heartbeat); with `--pid`, whether
//!   that process is still alive.
//! - `heap_bytes`: the watched process's resident set (RSS), the figure every OS exposes for
//!   another process; `allocated_bytes` / `freed_bytes`: how much the resident set grew / shrank
//!   since the previous sample. Allocator-level counters of another process are not exposed by
//!   any OS, so these are page-level, not `malloc`-level, figures.
//!
//! Invariant: a sample never fails; what cannot be read is left out of it.

use std::path::{Path, PathBuf};

use sysinfo::{DiskRefreshKind, Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use super::AgentError;

/// Disk figures of one mount, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// Total minus available.
    pub used: u64,
    /// File system size.
    pub total: u64,
}

/// Memory figures of the watched process, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessMemory {
    /// Resident set size.
    pub rss: u64,
    /// Growth of the resident set since the previous sample (`None` on the first one).
    pub allocated: Option<u64>,
    /// Shrinking of the resident set since the previous sample (`None` on the first one).
    pub freed: Option<u64>,
}

/// One host sample (see the module notes for what each value is).
#[derive(Debug, Clone, PartialEq)]
pub struct HostSample {
    /// Usage of every core since the last sample, summed.
    pub cpu_percent: f64,
    /// Memory in use, bytes.
    pub mem_used: u64,
    /// Memory installed, bytes.
    pub mem_total: u64,
    /// The watched mount, if it could be read.
    pub disk: Option<DiskUsage>,
    /// The watched process, while it lives.
    pub process: Option<ProcessMemory>,
    /// The host (or, with a pid, the process) is up.
    pub available: bool,
}

/// Takes samples; keeps what the next sample is relative to (CPU times, last RSS).
#[derive(Debug)]
pub struct Sampler {
    /// CPU times of the previous sample, memory, the watched process.
    system: System,
    /// The mounted file systems, listed once at start.
    disks: Disks,
    /// Mount point of the watched disk.
    mount: Option<PathBuf>,
    /// The watched process.
    pid: Option<Pid>,
    /// Its RSS at the previous sample, for the growth figures.
    last_rss: Option<u64>,
}

impl Sampler {
    /// Checks the process and the disk path, and reads the CPU baseline: the first
    /// [`sample`](Self::sample) should come at least `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL` later.
    pub fn start(pid: Option<u32>, disk_path: &Path) -> Result<Self, AgentError> {
        let mut system = System::new();
        system.refresh_cpu_usage();
        let disks =
            Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage());
        let path = disk_path
            .canonicalize()
            .map_err(|source| AgentError::DiskPath {
                path: disk_path.to_owned(),
                source,
            })?;
        let mount = disks
            .list()
            .iter()
            .map(|d| d.mount_point())
            .filter(|m| path.starts_with(m))
            .max_by_key(|m| m.as_os_str().len())
            .map(Path::to_path_buf);
        if mount.is_none() {
            tracing::warn!(path = %path.display(), "no mounted disk holds this path; disk gauges are left out");
        }
        let mut sampler = Self {
            system,
            disks,
            mount,
            pid: pid.map(Pid::from_u32),
            last_rss: None,
        };
        if let Some(pid) = pid {
            if sampler.process().is_none() {
                return Err(AgentError::NoProcess { pid });
            }
        }
        // The check is not a sample: the first reading carries no growth figures.
        sampler.last_rss = None;
        Ok(sampler)
    }

    /// Reads every gauge.
    pub fn sample(&mut self) -> HostSample {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let cpu_percent = self
            .system
            .cpus()
            .iter()
            .map(|c| f64::from(c.cpu_usage()))
            .sum();
        let process = self.process();
        HostSample {
            cpu_percent,
            mem_used: self.system.used_memory(),
            mem_total: self.system.total_memory(),
            disk: self.disk(),
            available: self.pid.is_none() || process.is_some(),
            process,
        }
    }

    fn disk(&mut self) -> Option<DiskUsage> {
        let mount = self.mount.as_deref()?;
        let disk = self
            .disks
            .list_mut()
            .iter_mut()
            .find(|d| d.mount_point() == mount)?;
        disk.refresh_specifics(DiskRefreshKind::nothing().with_storage());
        let total = disk.total_space();
        Some(DiskUsage {
            used: total.saturating_sub(disk.available_space()),
            total,
        })
    }

    fn process(&mut self) -> Option<ProcessMemory> {
        let pid = self.pid?;
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_memory(),
        );
        let Some(rss) = self.system.process(pid).map(|p| p.memory()) else {
            self.last_rss = None;
            return None;
        };
        let last = self.last_rss.replace(rss);
        Some(ProcessMemory {
            rss,
            allocated: last.map(|last| rss.saturating_sub(last)),
            freed: last.map(|last| last.saturating_sub(rss)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_of_this_process_are_plausible() {
        let mut sampler = Sampler::start(Some(std::process::id()), Path::new(".")).unwrap();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let first = sampler.sample();
        let second = sampler.sample();
        assert!(first.available && second.available);
        assert!(first.mem_used > 0 && first.mem_used <= first.mem_total);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!((0.0..=100.0 * cores + 1.0).contains(&first.cpu_percent));
        let disk = first
            .disk
            .expect("the working directory is on a mounted disk");
        assert!(disk.used <= disk.total && disk.total > 0);
        let (p1, p2) = (first.process.unwrap(), second.process.unwrap());
        assert!(p1.rss > 0 && p1.allocated.is_none() && p1.freed.is_none());
        let (grew, shrank) = (p2.allocated.unwrap(), p2.freed.unwrap());
        assert_eq!(
            p2.rss as i128 - p1.rss as i128,
            grew as i128 - shrank as i128
        );
    }

    #[test]
    fn a_missing_process_or_path_is_refused() {
        let no_pid = u32::MAX - 1;
        assert!(matches!(
            Sampler::start(Some(no_pid), Path::new("/")),
            Err(AgentError::NoProcess { .. })
        ));
        assert!(matches!(
            Sampler::start(None, Path::new("/no/such/dir")),
            Err(AgentError::DiskPath { .. })
        ));
    }
}
