//! `timebucket serve` flags and their conversion into a [`ServeConfig`].
//!
//! Each group of flags sits next to the config it feeds, and its defaults are that config's
//! constants. Cross-checks between flags live in [`ServeArgs::config`]: a WAL segment must hold
//! the largest body as one record.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::access::AccessArgs;
use super::alerting::AlertingArgs;
use super::store::{ConsistencyArgs, SettingsArgs, StoreArgs};
use super::{at_least, FlagError};
use crate::archive::auto::ArchiveConfig;
use crate::ingest::quarantine::Quarantine;
use crate::ingest::{AcceptLimits, FlusherConfig};
use crate::promql::EngineConfig;
use crate::query::QueryLimits;
use crate::rollup::compactor;
use crate::scrape::{Replica, ScrapeSettings};
use crate::server::{HttpLimits, OtlpListen, ServeConfig, StoreTarget};
use crate::store::cql::deferred::SettingsCache;
use crate::wal::{WalConfig, DEFAULT_MAX_RECORD_BYTES, DEFAULT_SEGMENT_BYTES};

/// Default `--listen`: loopback only, so a first start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default `--data-dir`, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./data";

/// `timebucket serve` flags.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The store to write to.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Consistency levels of the CQL store's reads and writes.
    #[command(flatten)]
    pub consistency: ConsistencyArgs,
    /// Deployment settings: recorded by the first start of the embedded store; with
    /// `--cql-nodes` (where `migrate up` records them) they are only checked.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// HTTP address to listen on.
    #[arg(long, env = "TIMEBUCKET_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Directory of the WAL (`<dir>/wal`) and of the embedded store (`<dir>/store`).
    #[arg(long, env = "TIMEBUCKET_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Size of one WAL segment file, bytes; it must hold a body of --max-body-bytes.
    #[arg(long, env = "TIMEBUCKET_WAL_SEGMENT_BYTES", default_value_t = DEFAULT_SEGMENT_BYTES)]
    pub wal_segment_bytes: u64,
    /// Start even if the WAL is corrupt: drop the damaged records, keep the rest, report the loss.
    #[arg(long, env = "TIMEBUCKET_WAL_REPAIR")]
    pub wal_repair: bool,
    /// Largest request body after decompression, bytes.
    #[arg(long, env = "TIMEBUCKET_MAX_BODY_BYTES", default_value_t = AcceptLimits::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// WAL backlog (accepted, not yet stored) past which ingest answers 503, bytes.
    #[arg(long, env = "TIMEBUCKET_MAX_BACKLOG_BYTES", default_value_t = AcceptLimits::DEFAULT_MAX_BACKLOG_BYTES)]
    pub max_backlog_bytes: u64,
    /// Request bodies read and decoded at once (at least 1); more wait briefly, then get 429.
    #[arg(long, env = "TIMEBUCKET_MAX_CONCURRENT_INGEST", default_value_t = AcceptLimits::DEFAULT_MAX_CONCURRENT)]
    pub max_concurrent_ingest: usize,
    /// Longest time a request body may take to arrive once it may be read (408 after it).
    #[arg(long, env = "TIMEBUCKET_BODY_READ_TIMEOUT", default_value_t = AcceptLimits::DEFAULT_BODY_READ_TIMEOUT.into())]
    pub body_read_timeout: humantime::Duration,
    /// Longest wait for a request's headers, from the connection's start or the previous
    /// answer; the connection is closed after it. (Longer than the agent's 10 s interval, so
    /// its kept-alive connection is reused rather than closed as it sends.)
    #[arg(long, env = "TIMEBUCKET_HEADER_READ_TIMEOUT", default_value_t = HttpLimits::DEFAULT_HEADER_READ_TIMEOUT.into())]
    pub header_read_timeout: humantime::Duration,
    /// Most HTTP connections open at once; at the cap a new one closes the oldest idle one.
    /// Keep it well under the open-file limit (the WAL and the store need descriptors too).
    #[arg(long, env = "TIMEBUCKET_MAX_CONNECTIONS", default_value_t = HttpLimits::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Most WAL bytes the flusher reads and writes to the store in one go (at least 64 KiB).
    #[arg(long, env = "TIMEBUCKET_FLUSH_BYTES", default_value_t = FlusherConfig::DEFAULT_MAX_READ_BYTES)]
    pub flush_bytes: usize,
    /// A flush to the store running longer than this makes /readyz report it as stalled.
    #[arg(long, env = "TIMEBUCKET_FLUSH_STALL_TIMEOUT", default_value_t = ServeConfig::DEFAULT_FLUSH_STALL_TIMEOUT.into())]
    pub flush_stall_timeout: humantime::Duration,
    /// Time between two runs of the rollup compactor (each merges the partials of closed
    /// slots into one row per series).
    #[arg(long, env = "TIMEBUCKET_ROLLUP_COMPACTION_INTERVAL", default_value_t = compactor::INTERVAL.into())]
    pub rollup_compaction_interval: humantime::Duration,
    /// How long shutdown waits for the flusher to write the WAL to the store.
    #[arg(long, env = "TIMEBUCKET_SHUTDOWN_DEADLINE", default_value_t = ServeConfig::DEFAULT_SHUTDOWN_DEADLINE.into())]
    pub shutdown_deadline: humantime::Duration,
    /// Limits of the query endpoints.
    #[command(flatten)]
    pub query: QueryLimitArgs,
    /// Limits and lookback of the Prometheus query API.
    #[command(flatten)]
    pub promql: PromqlArgs,
    /// OTLP/HTTP metrics receiver address (`POST /v1/metrics`; conventionally
    /// 127.0.0.1:4318); off when unset.
    #[arg(long, env = "TIMEBUCKET_OTLP_HTTP_LISTEN")]
    pub otlp_http_listen: Option<SocketAddr>,
    /// OTLP/gRPC metrics receiver address (conventionally 127.0.0.1:4317); off when unset.
    #[arg(long, env = "TIMEBUCKET_OTLP_GRPC_LISTEN")]
    pub otlp_grpc_listen: Option<SocketAddr>,
    /// A Prometheus-style scrape config (YAML `scrape_configs`): endpoints to pull readings from.
    #[arg(long, env = "TIMEBUCKET_SCRAPE_CONFIG")]
    pub scrape_config: Option<PathBuf>,
    /// This replica's index (0-based) among --replica-count replicas sharing the scrape targets.
    #[arg(long, env = "TIMEBUCKET_REPLICA_INDEX", default_value_t = 0)]
    pub replica_index: u32,
    /// How many replicas share the scrape targets; each target is scraped by exactly one.
    #[arg(long, env = "TIMEBUCKET_REPLICA_COUNT", default_value_t = 1)]
    pub replica_count: u32,
    /// Alerting: rule files, receivers, the evaluator lease.
    #[command(flatten)]
    pub alerting: AlertingArgs,
    /// Access control: tokens, allowed `Host` names, TLS.
    #[command(flatten)]
    pub access: AccessArgs,
    /// Archive every complete bucket into this directory as Parquet (off when unset); the
    /// embedded store keeps what is not archived yet past its retention.
    #[arg(long, env = "TIMEBUCKET_ARCHIVE_DIR")]
    pub archive_dir: Option<PathBuf>,
    /// How long after its end a bucket is archived (readings arriving later are not in it).
    #[arg(long, env = "TIMEBUCKET_ARCHIVE_GRACE", default_value_t = ArchiveConfig::DEFAULT_GRACE.into())]
    pub archive_grace: humantime::Duration,
}

impl ServeArgs {
    /// The validated configuration, or the first flag that is wrong.
    pub fn config(&self) -> Result<ServeConfig, FlagError> {
        let accept = AcceptLimits {
            max_body_bytes: at_least("--max-body-bytes", self.max_body_bytes, 1)?,
            max_backlog_bytes: at_least("--max-backlog-bytes", self.max_backlog_bytes, 1)?,
            max_concurrent: at_least("--max-concurrent-ingest", self.max_concurrent_ingest, 1)?,
            body_read_timeout: positive("--body-read-timeout", self.body_read_timeout)?,
        };
        let http = HttpLimits {
            header_read_timeout: positive("--header-read-timeout", self.header_read_timeout)?,
            max_connections: at_least("--max-connections", self.max_connections, 1)?,
        };
        let flusher = FlusherConfig {
            max_read_bytes: at_least(
                "--flush-bytes",
                self.flush_bytes,
                FlusherConfig::MIN_MAX_READ_BYTES,
            )?,
            ..FlusherConfig::default()
        };
        let nodes = self.store.nodes()?;
        let store = if nodes.is_empty() {
            StoreTarget::Embedded {
                dir: self.data_dir.join("store"),
            }
        } else {
            StoreTarget::Cql {
                nodes,
                keyspace: self.store.keyspace.clone(),
            }
        };
        Ok(ServeConfig {
            store,
            cql_session: self.consistency.config(),
            wal: self.wal(accept.max_body_bytes)?,
            accept,
            flusher,
            shutdown_deadline: self.shutdown_deadline.into(),
            rollup_compaction_interval: positive(
                "--rollup-compaction-interval",
                self.rollup_compaction_interval,
            )?,
            flush_stall_timeout: positive("--flush-stall-timeout", self.flush_stall_timeout)?,
            http,
            query: self.query.limits()?,
            promql: self.promql.config()?,
            otlp: OtlpListen {
                http: self.otlp_http_listen,
                grpc: self.otlp_grpc_listen,
            },
            scrape: ScrapeSettings {
                config_file: self.scrape_config.clone(),
                replica: self.replica()?,
            },
            settings: self.settings.request()?,
            alerting: self.alerting.config(&self.data_dir)?,
            access: self.access.config()?,
            cql: self.store.security.security()?,
            quarantine: Quarantine::in_data_dir(&self.data_dir),
            settings_cache: SettingsCache::in_data_dir(&self.data_dir),
            archive: self.archive()?,
        })
    }

    /// Automatic archiving, when `--archive-dir` is set.
    fn archive(&self) -> Result<Option<ArchiveConfig>, FlagError> {
        let grace = positive("--archive-grace", self.archive_grace)?;
        Ok(self.archive_dir.clone().map(|dir| ArchiveConfig {
            grace,
            ..ArchiveConfig::in_dir(dir)
        }))
    }

    /// This replica's share of the scrape targets.
    fn replica(&self) -> Result<Replica, FlagError> {
        let count = at_least("--replica-count", self.replica_count, 1)?;
        if self.replica_index >= count {
            return Err(FlagError::new(
                "--replica-index",
                format!(
                    "must be below --replica-count ({count}), got {}",
                    self.replica_index
                ),
            ));
        }
        Ok(Replica::new(self.replica_index, count).expect("checked above"))
    }

    /// The WAL in `<data-dir>/wal`. One request body becomes one WAL record (its readings,
    /// encoded more compactly than the JSON they came in), so a segment must hold a record of
    /// `max_body_bytes`, within the WAL's own record limit.
    fn wal(&self, max_body_bytes: usize) -> Result<WalConfig, FlagError> {
        let body = max_body_bytes as u64;
        if body > u64::from(DEFAULT_MAX_RECORD_BYTES) {
            return Err(FlagError::new(
                "--max-body-bytes",
                format!(
                    "must be at most {DEFAULT_MAX_RECORD_BYTES} (the largest WAL record), got {body}"
                ),
            ));
        }
        let fits = WalConfig::largest_record_in(self.wal_segment_bytes);
        if fits < body {
            return Err(FlagError::new(
                "--wal-segment-bytes",
                format!(
                    "must hold one body of --max-body-bytes ({body}) plus the WAL's headers, got {}",
                    self.wal_segment_bytes
                ),
            ));
        }
        let config = WalConfig {
            segment_bytes: self.wal_segment_bytes,
            max_record_bytes: u32::try_from(fits.min(u64::from(DEFAULT_MAX_RECORD_BYTES)))
                .expect("at most DEFAULT_MAX_RECORD_BYTES"),
            repair: self.wal_repair,
            count_readings: crate::ingest::record::reading_count,
            ..WalConfig::new(self.data_dir.join("wal"))
        };
        config
            .validate()
            .map_err(|e| FlagError::new("--wal-segment-bytes", e.to_string()))?;
        Ok(config)
    }
}

/// A duration flag that must be more than zero.
fn positive(flag: &'static str, value: humantime::Duration) -> Result<Duration, FlagError> {
    let value = Duration::from(value);
    if value.is_zero() {
        return Err(FlagError::new(flag, "must be more than zero, got 0s"));
    }
    Ok(value)
}

/// `timebucket serve` flags for queries.
#[derive(Debug, Clone, Args)]
pub struct QueryLimitArgs {
    /// Longest time range one query may cover (at least 1s).
    #[arg(long, env = "TIMEBUCKET_QUERY_MAX_RANGE", default_value_t = QueryLimits::DEFAULT_MAX_RANGE.into())]
    pub query_max_range: humantime::Duration,
    /// Largest `limit` (entries per page) of GET /v1/readings, /v1/series and /v1/latest.
    #[arg(long, env = "TIMEBUCKET_QUERY_MAX_LIMIT", default_value_t = QueryLimits::DEFAULT_MAX_LIMIT)]
    pub query_max_limit: u32,
    /// Most points (groups × steps) in one stats answer.
    #[arg(long, env = "TIMEBUCKET_QUERY_MAX_POINTS", default_value_t = QueryLimits::DEFAULT_MAX_POINTS)]
    pub query_max_points: usize,
    /// Most rows one query may read from the store.
    #[arg(long, env = "TIMEBUCKET_QUERY_MAX_SCAN_ROWS", default_value_t = QueryLimits::DEFAULT_MAX_SCAN_ROWS)]
    pub query_max_scan_rows: u64,
    /// Partition reads in flight at once for one query.
    #[arg(long, env = "TIMEBUCKET_QUERY_CONCURRENCY", default_value_t = QueryLimits::DEFAULT_CONCURRENCY)]
    pub query_concurrency: usize,
    /// Longest run of one /v1 query request; past it the answer is 503 naming this flag.
    #[arg(long, env = "TIMEBUCKET_QUERY_REQUEST_TIMEOUT", default_value_t = QueryLimits::DEFAULT_REQUEST_TIMEOUT.into())]
    pub query_request_timeout: humantime::Duration,
}

impl QueryLimitArgs {
    /// The validated limits: each at least 1, the range at least a second.
    pub fn limits(&self) -> Result<QueryLimits, FlagError> {
        let range = std::time::Duration::from(self.query_max_range);
        let max_range_ms = i64::try_from(range.as_millis())
            .map_err(|_| FlagError::new("--query-max-range", "is too long"))?;
        Ok(QueryLimits {
            max_range_ms: at_least("--query-max-range", max_range_ms, 1000).map_err(|_| {
                FlagError::new(
                    "--query-max-range",
                    format!("must be at least 1s, got {}", self.query_max_range),
                )
            })?,
            max_limit: at_least("--query-max-limit", self.query_max_limit, 1)?,
            max_points: at_least("--query-max-points", self.query_max_points, 1)?,
            max_scan_rows: at_least("--query-max-scan-rows", self.query_max_scan_rows, 1)?,
            concurrency: at_least("--query-concurrency", self.query_concurrency, 1)?,
            request_timeout: positive("--query-request-timeout", self.query_request_timeout)?,
            ..QueryLimits::default()
        })
    }
}

/// `timebucket serve` flags of the Prometheus query API.
#[derive(Debug, Clone, Args)]
pub struct PromqlArgs {
    /// How far back a PromQL instant selector looks for the latest sample (at least 1ms).
    #[arg(long, env = "TIMEBUCKET_QUERY_LOOKBACK", default_value_t = EngineConfig::DEFAULT_LOOKBACK.into())]
    pub query_lookback: humantime::Duration,
    /// Most points per series in one PromQL range query ((end - start) / step + 1).
    #[arg(long, env = "TIMEBUCKET_QUERY_MAX_STEPS", default_value_t = EngineConfig::DEFAULT_MAX_STEPS)]
    pub query_max_steps: usize,
    /// Most series one PromQL selector or intermediate result may hold.
    #[arg(long, env = "TIMEBUCKET_QUERY_MAX_SERIES", default_value_t = EngineConfig::DEFAULT_MAX_SERIES)]
    pub query_max_series: usize,
    /// Most samples one PromQL query may load and compute (about 16 bytes each).
    #[arg(long, env = "TIMEBUCKET_QUERY_MAX_SAMPLES", default_value_t = EngineConfig::DEFAULT_MAX_SAMPLES)]
    pub query_max_samples: usize,
    /// Longest run of one PromQL query (a request's `timeout` may only shorten it).
    #[arg(long, env = "TIMEBUCKET_QUERY_TIMEOUT", default_value_t = EngineConfig::DEFAULT_TIMEOUT.into())]
    pub query_timeout: humantime::Duration,
}

impl PromqlArgs {
    /// The validated engine settings: every limit at least 1, lookback and timeout at least 1 ms.
    pub fn config(&self) -> Result<EngineConfig, FlagError> {
        let millis = |flag: &'static str, d: humantime::Duration| {
            let ms = i64::try_from(Duration::from(d).as_millis())
                .map_err(|_| FlagError::new(flag, "is too long"))?;
            at_least(flag, ms, 1)
                .map_err(|_| FlagError::new(flag, format!("must be at least 1ms, got {d}")))
        };
        millis("--query-timeout", self.query_timeout)?;
        Ok(EngineConfig {
            lookback_ms: millis("--query-lookback", self.query_lookback)?,
            max_steps: at_least("--query-max-steps", self.query_max_steps, 1)?,
            max_series: at_least("--query-max-series", self.query_max_series, 1)?,
            max_samples: at_least("--query-max-samples", self.query_max_samples, 1)?,
            timeout: self.query_timeout.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::alerting::{AlertingConfig, NotifyConfig};
    use crate::cli::{Cli, Command};
    use crate::store::cql::SessionConfig;

    fn serve(flags: &[&str]) -> ServeArgs {
        let argv = ["timebucket", "serve"].iter().chain(flags);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => args,
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn the_defaults_are_the_owners_defaults() {
        let config = serve(&[]).config().unwrap();
        assert_eq!(config.accept, AcceptLimits::default());
        assert_eq!(
            config.flusher.max_read_bytes,
            FlusherConfig::default().max_read_bytes
        );
        assert_eq!(config.query, QueryLimits::default());
        assert_eq!(config.http, HttpLimits::default());
        assert_eq!(config.promql, EngineConfig::default());
        assert_eq!(
            config.shutdown_deadline,
            ServeConfig::DEFAULT_SHUTDOWN_DEADLINE
        );
        assert_eq!(
            config.flush_stall_timeout,
            ServeConfig::DEFAULT_FLUSH_STALL_TIMEOUT
        );
        assert_eq!(config.wal.segment_bytes, DEFAULT_SEGMENT_BYTES);
        assert_eq!(config.wal.max_record_bytes, DEFAULT_MAX_RECORD_BYTES);
        assert_eq!(config.wal.dir, PathBuf::from(DEFAULT_DATA_DIR).join("wal"));
        assert!(matches!(config.store, StoreTarget::Embedded { .. }));
        assert_eq!(config.archive, None);
        assert_eq!(config.cql_session, SessionConfig::default());
        let alerting = &config.alerting;
        assert!(!alerting.enabled());
        assert_eq!(
            alerting.default_interval,
            AlertingConfig::DEFAULT_EVALUATION_INTERVAL
        );
        assert_eq!(alerting.resend_delay, AlertingConfig::DEFAULT_RESEND_DELAY);
        assert_eq!(alerting.lease_ttl, AlertingConfig::DEFAULT_LEASE_TTL);
        assert_eq!(alerting.notify, NotifyConfig::default());
        assert_eq!(
            alerting.state_dir,
            PathBuf::from(DEFAULT_DATA_DIR).join("alerting")
        );
    }

    #[test]
    fn rule_files_and_receivers_repeat_or_take_commas() {
        let config = serve(&[
            "--rules",
            "a.yml",
            "rules/*.yml",
            "--rules",
            "c.yml,d.yml",
            "--alertmanager-url",
            "http://am1:9093",
            "--alertmanager-url",
            "http://am2:9093",
            "--alert-webhook",
            "http://hooks:8080/alert",
        ])
        .config()
        .unwrap();
        let alerting = config.alerting;
        assert_eq!(
            alerting.rule_files,
            ["a.yml", "rules/*.yml", "c.yml", "d.yml"]
        );
        assert_eq!(
            alerting.notify.alertmanagers,
            ["http://am1:9093", "http://am2:9093"]
        );
        assert_eq!(alerting.notify.webhooks, ["http://hooks:8080/alert"]);
    }

    #[test]
    fn bad_values_are_refused_by_flag_never_clamped() {
        let cases: &[(&[&str], &str)] = &[
            (&["--max-concurrent-ingest", "0"], "--max-concurrent-ingest"),
            (&["--body-read-timeout", "0s"], "--body-read-timeout"),
            (&["--header-read-timeout", "0s"], "--header-read-timeout"),
            (&["--max-connections", "0"], "--max-connections"),
            (&["--max-body-bytes", "0"], "--max-body-bytes"),
            (&["--max-body-bytes", "40000000"], "--max-body-bytes"),
            (&["--max-backlog-bytes", "0"], "--max-backlog-bytes"),
            (&["--flush-bytes", "1024"], "--flush-bytes"),
            (&["--wal-segment-bytes", "1048576"], "--wal-segment-bytes"),
            (&["--query-concurrency", "0"], "--query-concurrency"),
            (
                &["--query-request-timeout", "0s"],
                "--query-request-timeout",
            ),
            (&["--flush-stall-timeout", "0s"], "--flush-stall-timeout"),
            (&["--query-max-series", "0"], "--query-max-series"),
            (&["--replica-count", "0"], "--replica-count"),
            (
                &["--replica-index", "2", "--replica-count", "2"],
                "--replica-index",
            ),
            (&["--query-lookback", "0s"], "--query-lookback"),
            (&["--query-max-range", "10ms"], "--query-max-range"),
            (&["--retention", "1500ms"], "--retention"),
            (&["--cql-nodes", "db"], "--cql-nodes"),
            (&["--alert-lease-ttl", "1500ms"], "--alert-lease-ttl"),
            (&["--alert-lease-ttl", "0s"], "--alert-lease-ttl"),
            (
                &["--alertmanager-url", "https://am:9093"],
                "--alertmanager-url",
            ),
            (&["--alert-webhook", "hooks:8080/x"], "--alert-webhook"),
            (&["--alert-queue-capacity", "0"], "--alert-queue-capacity"),
            (
                &["--rule-evaluation-interval", "0s"],
                "--rule-evaluation-interval",
            ),
            (&["--alert-resend-delay", "0s"], "--alert-resend-delay"),
            (&["--alert-notify-timeout", "0s"], "--alert-notify-timeout"),
            (&["--external-url", "tb.example"], "--external-url"),
            (&["--archive-grace", "0s"], "--archive-grace"),
        ];
        for (flags, flag) in cases {
            let error = serve(flags).config().unwrap_err();
            assert_eq!(error.flag, *flag, "{flags:?}: {error}");
            assert!(error.to_string().starts_with(flag), "{error}");
        }
        assert_eq!(
            serve(&["--max-concurrent-ingest", "0"])
                .config()
                .unwrap_err()
                .to_string(),
            "--max-concurrent-ingest must be at least 1, got 0"
        );
    }

    #[test]
    fn the_largest_wal_record_follows_the_segment_size() {
        let config = serve(&["--wal-segment-bytes", "262144", "--max-body-bytes", "65536"])
            .config()
            .unwrap();
        assert_eq!(
            u64::from(config.wal.max_record_bytes),
            WalConfig::largest_record_in(262_144)
        );
        config.wal.validate().unwrap();
    }

    #[test]
    fn cql_nodes_choose_the_cql_store() {
        let config = serve(&[
            "--cql-nodes",
            "10.0.0.1:9042,10.0.0.2:9042",
            "--keyspace",
            "ks",
        ])
        .config()
        .unwrap();
        match config.store {
            StoreTarget::Cql { nodes, keyspace } => {
                assert_eq!(nodes, ["10.0.0.1:9042", "10.0.0.2:9042"]);
                assert_eq!(keyspace.as_str(), "ks");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn consistency_levels_that_break_a_promise_are_refused_by_flag() {
        for (flag, level) in [
            ("--write-consistency", "ANY"),
            ("--write-consistency", "QUROUM"),
            ("--read-consistency", "EACH_QUORUM"),
            ("--read-consistency", "LOCAL_SERIAL"),
        ] {
            let argv = ["timebucket", "serve", flag, level];
            let error = Cli::try_parse_from(argv).unwrap_err().to_string();
            assert!(
                error.contains(&format!("invalid value '{level}' for '{flag}")),
                "{error}"
            );
        }
    }

    #[test]
    fn consistency_levels_are_read_by_their_cql_names() {
        use scylla::statement::Consistency;
        let config = serve(&[
            "--write-consistency",
            "quorum",
            "--read-consistency",
            "LOCAL_ONE",
        ])
        .config()
        .unwrap();
        assert_eq!(config.cql_session.write_consistency, Consistency::Quorum);
        assert_eq!(config.cql_session.read_consistency, Consistency::LocalOne);
    }
}
