//! Targets from `static_configs` and `file_sd_configs`.
//!
//! A file_sd file is Prometheus' own format: a JSON (`.json`) or YAML (`.yml`, `.yaml`) list of
//! `{targets: [...], labels: {...}}`. Files are re-read when their modification time or size
//! changes (checked every [`super::FILE_SD_POLL`]) and at their `refresh_interval`. A file that
//! cannot be read or parsed keeps the targets it gave last (as Prometheus does), and the
//! problem is logged; a file that disappears takes its targets with it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::config::{check_address, Job, TargetGroup};
use crate::foreign::exposition::Origin;
use crate::model::{InstanceName, ServiceName};

/// One target to scrape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Its job.
    pub job: Arc<Job>,
    /// `host:port`.
    pub address: String,
    /// What is fetched.
    pub url: String,
    /// Labels of its group.
    pub labels: BTreeMap<String, String>,
    /// Service and instance of its readings.
    pub origin: Origin,
}

impl Target {
    /// The identity of a target: its job and URL.
    pub fn key(&self) -> (String, String) {
        (self.job.name.clone(), self.url.clone())
    }
}

/// What a file gave when it was last read.
#[derive(Debug)]
struct FileEntry {
    stamp: Stamp,
    read_at: Instant,
    groups: Vec<TargetGroup>,
}

/// Modification time and size: a change in either means the file is read again.
type Stamp = (Option<SystemTime>, u64);

/// The jobs and what their files last said.
#[derive(Debug)]
pub struct Discovery {
    jobs: Vec<Arc<Job>>,
    files: HashMap<PathBuf, FileEntry>,
}

impl Discovery {
    /// Discovery for `jobs`; nothing is read until [`refresh`](Self::refresh).
    pub fn new(jobs: Vec<Job>) -> Self {
        Self {
            jobs: jobs.into_iter().map(Arc::new).collect(),
            files: HashMap::new(),
        }
    }

    /// Re-reads target files that changed, appeared or are due; true when any target file's
    /// content may have changed.
    pub fn refresh(&mut self) -> bool {
        let mut changed = false;
        let mut seen = HashSet::new();
        for job in &self.jobs {
            for sd in &job.file_sd {
                for path in sd.patterns.iter().flat_map(|p| matching(p)) {
                    if !seen.insert(path.clone()) {
                        continue;
                    }
                    let stamp = stamp_of(&path);
                    let due = self
                        .files
                        .get(&path)
                        .is_none_or(|e| e.stamp != stamp || e.read_at.elapsed() >= sd.refresh);
                    if !due {
                        continue;
                    }
                    let previous = self.files.get(&path).map(|e| e.groups.clone());
                    let groups = match read_groups(&path) {
                        Ok(groups) => groups,
                        Err(problem) => {
                            tracing::warn!(file = %path.display(), %problem, "target file not read; keeping its previous targets");
                            previous.clone().unwrap_or_default()
                        }
                    };
                    changed |= previous.as_ref() != Some(&groups);
                    let entry = FileEntry {
                        stamp,
                        read_at: Instant::now(),
                        groups,
                    };
                    self.files.insert(path, entry);
                }
            }
        }
        let before = self.files.len();
        self.files.retain(|path, _| seen.contains(path));
        changed | (self.files.len() != before)
    }

    /// Every target of every job, in job order, without duplicates.
    pub fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        let mut keys = HashSet::new();
        for job in &self.jobs {
            let mut groups: Vec<&TargetGroup> = job.static_groups.iter().collect();
            for sd in &job.file_sd {
                let mut paths: Vec<PathBuf> =
                    sd.patterns.iter().flat_map(|p| matching(p)).collect();
                paths.sort();
                groups.extend(
                    paths
                        .iter()
                        .filter_map(|p| self.files.get(p))
                        .flat_map(|e| e.groups.iter()),
                );
            }
            for group in groups {
                for address in &group.targets {
                    match target(job, address, &group.labels) {
                        Ok(t) => {
                            if keys.insert(t.key()) {
                                out.push(t);
                            }
                        }
                        Err(problem) => {
                            tracing::warn!(job = %job.name, %address, %problem, "target skipped")
                        }
                    }
                }
            }
        }
        out
    }
}

fn target(
    job: &Arc<Job>,
    address: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Target, String> {
    check_address(address)?;
    let service = labels
        .get("service")
        .map_or(job.name.as_str(), String::as_str);
    let instance = labels.get("instance").map_or(address, String::as_str);
    let origin = Origin {
        service: ServiceName::parse(service).map_err(|p| format!("label service: {p}"))?,
        instance: InstanceName::parse(instance).map_err(|p| format!("label instance: {p}"))?,
    };
    Ok(Target {
        job: job.clone(),
        address: address.to_owned(),
        url: format!("http://{address}{}", job.metrics_path),
        labels: labels.clone(),
        origin,
    })
}

/// The files a pattern names now: itself, or the matches of a wildcard.
fn matching(pattern: &Path) -> Vec<PathBuf> {
    let text = pattern.to_string_lossy();
    if !text.contains(['*', '?', '[']) {
        return vec![pattern.to_owned()];
    }
    match glob::glob(&text) {
        Ok(paths) => paths.filter_map(Result::ok).collect(),
        Err(error) => {
            tracing::warn!(pattern = %text, %error, "bad target file pattern");
            Vec::new()
        }
    }
}

fn stamp_of(path: &Path) -> Stamp {
    std::fs::metadata(path).map_or((None, 0), |m| (m.modified().ok(), m.len()))
}

/// The target groups of one file.
fn read_groups(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match extension {
        "json" => serde_json::from_str(&text).map_err(|e| e.to_string()),
        "yml" | "yaml" => {
            serde_saphyr::from_str(&text).map_err(|e| e.without_snippet().to_string())
        }
        _ => Err("a target file must end in .json, .yml or .yaml".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::config;

    fn addresses(d: &Discovery) -> Vec<(String, String, String)> {
        d.targets()
            .into_iter()
            .map(|t| {
                (
                    t.url,
                    t.origin.service.to_string(),
                    t.origin.instance.to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn target_files_are_read_followed_and_kept_when_broken() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['s:1']\n        labels: {instance: pod-s}\n    file_sd_configs:\n      - files: ['sd/*.json', 'sd/extra.yml']\n";
        let jobs = config::parse(yaml, &dir.path().join("scrape.yml")).unwrap();
        std::fs::create_dir(dir.path().join("sd")).unwrap();
        let file = dir.path().join("sd/a.json");
        std::fs::write(
            &file,
            r#"[{"targets": ["a:1", "s:1"], "labels": {"service": "other"}}]"#,
        )
        .unwrap();
        let mut d = Discovery::new(jobs);
        assert!(d.refresh());
        let want = |rows: &[(&str, &str, &str)]| -> Vec<(String, String, String)> {
            rows.iter()
                .map(|(u, s, i)| {
                    (
                        format!("http://{u}/metrics"),
                        (*s).to_owned(),
                        (*i).to_owned(),
                    )
                })
                .collect()
        };
        // The static s:1 comes first; the file's s:1 is the same target and is not repeated.
        assert_eq!(
            addresses(&d),
            want(&[("s:1", "app", "pod-s"), ("a:1", "other", "a:1")])
        );
        assert!(!d.refresh(), "nothing changed");
        std::fs::write(dir.path().join("sd/extra.yml"), "- targets: ['b:2']\n").unwrap();
        assert!(d.refresh());
        assert_eq!(addresses(&d).len(), 3);
        // A broken file keeps what it gave last.
        std::fs::write(&file, "[{\"targets\": [").unwrap();
        d.refresh();
        assert_eq!(addresses(&d).len(), 3);
        // A removed file takes its targets with it.
        std::fs::remove_file(&file).unwrap();
        assert!(d.refresh());
        assert_eq!(
            addresses(&d),
            want(&[("s:1", "app", "pod-s"), ("b:2", "app", "b:2")])
        );
    }
}
