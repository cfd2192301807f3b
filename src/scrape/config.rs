//! `--scrape-config FILE`: a subset of Prometheus' own `scrape_configs` YAML, so a user pastes
//! what they have, plus one `timebucket:` block per job for what only we need.
//!
//! ```yaml
//! global:                      # optional defaults, as in Prometheus
//!   scrape_interval: 15s
//!   scrape_timeout: 10s
//! scrape_configs:
//!   - job_name: checkout       # the readings' service (a target label `service` overrides it)
//!     scrape_interval: 15s     # default: global, else 1m
//!     scrape_timeout: 5s       # default: global, else 10s; never more than the interval
//!     metrics_path: /metrics
//!     scheme: http             # https is refused (no TLS client in this build)
//!     static_configs:
//!       - targets: ["10.0.0.7:8080"]
//!         labels: {instance: checkout-1}
//!     file_sd_configs:         # Prometheus target files (JSON or YAML), re-read when they change
//!       - files: ["targets/*.json"]
//!     timebucket:              # optional: which labels carry method, path, code; the disk
//!       path_labels: [route, handler]
//!       mountpoint: /
//! ```
//!
//! Parsing goes through serde with `deny_unknown_fields` on every table, so a key we do not know
//! (a typo, or a Prometheus feature this subset lacks, like `relabel_configs`) is an error that
//! names it, never silently ignored. YAML by `serde-saphyr`: a pure-Rust, maintained
//! deserializer built on `saphyr-parser` (`serde_yaml` is archived, its forks are thin), with
//! errors that carry the line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::foreign::exposition::api::ApiLabels;
use crate::foreign::exposition::host::HostOptions;
use crate::foreign::exposition::MappingOptions;

/// Prometheus' default scrape interval.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Prometheus' default scrape timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Prometheus' default file_sd refresh interval.
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// Why a scrape config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read scrape config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not YAML, or a key we do not know, or a value of the wrong kind.
    #[error("scrape config {}: {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and the line).
        reason: String,
    },
    /// A value that parses but cannot be used.
    #[error("scrape config {}: job {job:?}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The job at fault.
        job: String,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    global: Global,
    #[serde(default)]
    scrape_configs: Vec<RawJob>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Global {
    scrape_interval: Option<String>,
    scrape_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    job_name: String,
    scrape_interval: Option<String>,
    scrape_timeout: Option<String>,
    #[serde(default = "default_path")]
    metrics_path: String,
    #[serde(default = "default_scheme")]
    scheme: String,
    #[serde(default)]
    static_configs: Vec<TargetGroup>,
    #[serde(default)]
    file_sd_configs: Vec<RawFileSd>,
    #[serde(default)]
    timebucket: Extension,
}

fn default_path() -> String {
    "/metrics".to_owned()
}

fn default_scheme() -> String {
    "http".to_owned()
}

/// Targets sharing labels: a `static_configs` entry, or an entry of a file_sd file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels of every target in the group.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileSd {
    files: Vec<String>,
    refresh_interval: Option<String>,
}

/// The `timebucket:` block of a job.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Extension {
    method_labels: Option<Vec<String>>,
    path_labels: Option<Vec<String>>,
    code_labels: Option<Vec<String>>,
    mountpoint: Option<String>,
}

/// A `file_sd_configs` entry: file patterns (relative to the config file) and how often they
/// are re-read even when unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileSd {
    /// Paths; the last element may hold `*` wildcards.
    pub patterns: Vec<PathBuf>,
    /// Re-read period.
    pub refresh: Duration,
}

/// A validated job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Job {
    /// `job_name`.
    pub name: String,
    /// Time between two scrapes of a target.
    pub interval: Duration,
    /// Most time one scrape may take (at most `interval`).
    pub timeout: Duration,
    /// `metrics_path`.
    pub metrics_path: String,
    /// Static target groups.
    pub static_groups: Vec<TargetGroup>,
    /// Target files.
    pub file_sd: Vec<FileSd>,
    /// How expositions are read.
    pub mapping: MappingOptions,
}

/// Reads and validates a scrape config file.
pub fn load(path: &Path) -> Result<Vec<Job>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Validates the text of a scrape config read from `path` (relative file_sd paths are
/// resolved against its folder).
pub fn parse(text: &str, path: &Path) -> Result<Vec<Job>, ConfigError> {
    let file: File = serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        // One line ("line 3 column 5: unknown field `x`, expected one of ..."), as every
        // start error is; the parser's own rendering adds a multi-line source snippet.
        reason: e.without_snippet().to_string(),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let global_interval = duration(file.global.scrape_interval.as_deref(), "global")
        .map_err(|problem| invalid(path, "global", problem))?;
    let global_timeout = duration(file.global.scrape_timeout.as_deref(), "global")
        .map_err(|problem| invalid(path, "global", problem))?;
    let mut jobs: Vec<Job> = Vec::new();
    for raw in file.scrape_configs {
        let name = raw.job_name.clone();
        let job = validate(raw, global_interval, global_timeout, base)
            .map_err(|problem| invalid(path, &name, problem))?;
        if jobs.iter().any(|j| j.name == job.name) {
            return Err(invalid(path, &name, "job_name is used twice".into()));
        }
        jobs.push(job);
    }
    Ok(jobs)
}

fn invalid(path: &Path, job: &str, problem: String) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        job: job.to_owned(),
        problem,
    }
}

fn duration(text: Option<&str>, key: &str) -> Result<Option<Duration>, String> {
    text.map(|t| {
        humantime::parse_duration(t)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("{key}: `{t}` is not a duration like 15s, 1m or 500ms"))
    })
    .transpose()
}

fn validate(
    raw: RawJob,
    global_interval: Option<Duration>,
    global_timeout: Option<Duration>,
    base: &Path,
) -> Result<Job, String> {
    if crate::model::ServiceName::parse(&raw.job_name).is_err() {
        return Err(
            "job_name must be a valid service name (1-128 bytes, no control characters)".into(),
        );
    }
    let interval = duration(raw.scrape_interval.as_deref(), "scrape_interval")?
        .or(global_interval)
        .unwrap_or(DEFAULT_INTERVAL);
    let timeout = match duration(raw.scrape_timeout.as_deref(), "scrape_timeout")? {
        Some(t) if t > interval => {
            return Err(format!(
                "scrape_timeout ({t:?}) must not be longer than scrape_interval ({interval:?})"
            ))
        }
        Some(t) => t,
        None => global_timeout.unwrap_or(DEFAULT_TIMEOUT).min(interval),
    };
    match raw.scheme.as_str() {
        "http" => {}
        "https" => return Err("scheme https is not supported by this build (no TLS client); scrape over http or through a TLS-terminating proxy".into()),
        other => return Err(format!("scheme must be http, got `{other}`")),
    }
    if !raw.metrics_path.starts_with('/') {
        return Err(format!(
            "metrics_path must start with '/', got `{}`",
            raw.metrics_path
        ));
    }
    for group in &raw.static_configs {
        for target in &group.targets {
            check_address(target)?;
        }
    }
    let mut file_sd = Vec::new();
    for sd in raw.file_sd_configs {
        let refresh = duration(sd.refresh_interval.as_deref(), "refresh_interval")?
            .unwrap_or(DEFAULT_REFRESH);
        if sd.files.is_empty() {
            return Err("file_sd_configs needs at least one file".into());
        }
        let patterns = sd.files.iter().map(|f| base.join(f)).collect();
        file_sd.push(FileSd { patterns, refresh });
    }
    let defaults = ApiLabels::default();
    let ext = raw.timebucket;
    let mapping = MappingOptions {
        api: ApiLabels {
            method: non_empty(ext.method_labels, defaults.method, "method_labels")?,
            path: non_empty(ext.path_labels, defaults.path, "path_labels")?,
            code: non_empty(ext.code_labels, defaults.code, "code_labels")?,
        },
        host: HostOptions {
            mountpoint: ext
                .mountpoint
                .unwrap_or_else(|| HostOptions::default().mountpoint),
        },
    };
    Ok(Job {
        name: raw.job_name,
        interval,
        timeout,
        metrics_path: raw.metrics_path,
        static_groups: raw.static_configs,
        file_sd,
        mapping,
    })
}

fn non_empty(
    given: Option<Vec<String>>,
    default: Vec<String>,
    key: &str,
) -> Result<Vec<String>, String> {
    match given {
        Some(list) if list.is_empty() => Err(format!("timebucket.{key} must not be empty")),
        Some(list) => Ok(list),
        None => Ok(default),
    }
}

/// A target address: `host:port`, no scheme or path.
pub fn check_address(target: &str) -> Result<(), String> {
    let ok = !target.is_empty()
        && !target.contains("://")
        && !target.contains('/')
        && !target.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!("target `{target}` must be host:port"))
    }
}

#[cfg(test)]
mod tests;
