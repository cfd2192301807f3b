//! Command-line flags (clap), each also read from a `TIMEBUCKET_*` environment variable.
//!
//! Raw flags are parsed here into typed values (keyspace, replication, durations); the commands
//! in `main.rs` turn them into the configs the rest of the crate trusts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::migrate::{Replication, SettingsRequest};
use crate::store::cql::Keyspace;

/// timebucket: metrics ingest and query service on ScyllaDB / Cassandra.
#[derive(Debug, Parser)]
#[command(name = "timebucket", version, about)]
pub struct Cli {
    /// A TOML file with any of these flags (see timebucket.example.toml); flags and
    /// TIMEBUCKET_* variables override it.
    #[arg(long, env = "TIMEBUCKET_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, env = "TIMEBUCKET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the ingest and query HTTP service.
    Serve(ServeArgs),
    /// Apply or list the CQL migrations (CQL clusters only; the embedded store needs none).
    Migrate(MigrateArgs),
    /// Push this host's CPU, memory, disk and heartbeat (and a process's memory) to a collector.
    Agent(crate::agent::AgentArgs),
    /// Ask a running service: readings, series, latest, stats, host-stats.
    Query(crate::query::cli::QueryArgs),
    /// List or show what the flusher set aside (batches the store refused, undecodable records).
    Quarantine(crate::ingest::quarantine::cli::QuarantineArgs),
}

/// Flags shared by every command that talks to the store.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Comma-separated `host:port` contact points of the CQL cluster.
    #[arg(long, env = "TIMEBUCKET_CQL_NODES", value_delimiter = ',')]
    pub cql_nodes: Vec<String>,
    /// The CQL keyspace.
    #[arg(long, env = "TIMEBUCKET_KEYSPACE", default_value = "timebucket")]
    pub keyspace: Keyspace,
}

/// `timebucket serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The store to write to.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Deployment settings: recorded by the first start of the embedded store; with
    /// `--cql-nodes` (where `migrate up` records them) they are only checked.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// HTTP address to listen on.
    #[arg(long, env = "TIMEBUCKET_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the WAL segments (and of the embedded store).
    #[arg(long, env = "TIMEBUCKET_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Size of one WAL segment file, bytes.
    #[arg(long, env = "TIMEBUCKET_WAL_SEGMENT_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub wal_segment_bytes: u64,
    /// Start even if the WAL is corrupt: truncate it at the damage (records after it are lost).
    #[arg(long, env = "TIMEBUCKET_WAL_REPAIR")]
    pub wal_repair: bool,
    /// Largest request body after decompression, bytes.
    #[arg(long, env = "TIMEBUCKET_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// WAL backlog (accepted, not yet stored) past which ingest answers 503, bytes.
    #[arg(long, env = "TIMEBUCKET_MAX_BACKLOG_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub max_backlog_bytes: u64,
    /// Request bodies decoded at once; more wait briefly, then get 429.
    #[arg(long, env = "TIMEBUCKET_MAX_CONCURRENT_INGEST", default_value_t = 8)]
    pub max_concurrent_ingest: usize,
    /// Most WAL bytes the flusher reads and writes to the store in one go.
    #[arg(long, env = "TIMEBUCKET_FLUSH_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub flush_bytes: usize,
    /// How long shutdown waits for the flusher to write the WAL to the store.
    #[arg(long, env = "TIMEBUCKET_SHUTDOWN_DEADLINE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_deadline: Duration,
    /// Limits of the query endpoints.
    #[command(flatten)]
    pub query: crate::query::QueryLimitArgs,
}

/// `timebucket migrate ...`
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// `up` or `status`.
    #[command(subcommand)]
    pub action: MigrateAction,
    /// The store to migrate.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The folder of `NNNN_name.cql` files.
    #[arg(
        long,
        env = "TIMEBUCKET_MIGRATIONS_DIR",
        default_value = "migrations",
        global = true
    )]
    pub migrations_dir: PathBuf,
}

/// The migrate actions.
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply the pending migrations, creating the keyspace if needed.
    Up(UpArgs),
    /// List applied and pending migrations.
    Status,
}

/// The deployment settings (bucket width, shards, retention, compaction window). They are fixed
/// when a store is created — by `migrate up` for a CQL keyspace, by the first `serve` for the
/// embedded store — and afterwards must match what is recorded, or be left out.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Width of a time bucket (default 1h): most queries should touch two buckets.
    #[arg(long, env = "TIMEBUCKET_BUCKET_WIDTH", value_parser = humantime::parse_duration)]
    pub bucket_width: Option<Duration>,
    /// Shards per service bucket (default 4), against hot partitions.
    #[arg(long, env = "TIMEBUCKET_SHARDS")]
    pub shards: Option<u16>,
    /// Partitions of the latest-readings tables (default 16).
    #[arg(long, env = "TIMEBUCKET_LATEST_SHARDS")]
    pub latest_shards: Option<u16>,
    /// Retention: the TTL of readings (default 7d).
    #[arg(long, env = "TIMEBUCKET_RETENTION", value_parser = humantime::parse_duration)]
    pub retention: Option<Duration>,
    /// TimeWindowCompactionStrategy window (default 6h): whole hours, a multiple of the bucket.
    #[arg(long, env = "TIMEBUCKET_COMPACTION_WINDOW", value_parser = humantime::parse_duration)]
    pub compaction_window: Option<Duration>,
}

impl SettingsArgs {
    /// The settings flags as a request; durations must be whole seconds that fit in 32 bits.
    pub fn settings_request(&self) -> Result<SettingsRequest, String> {
        let seconds = |name: &str, d: Option<Duration>| -> Result<Option<u32>, String> {
            d.map(|d| {
                if d.subsec_nanos() != 0 {
                    return Err(format!("--{name} must be whole seconds"));
                }
                u32::try_from(d.as_secs()).map_err(|_| format!("--{name} is too long"))
            })
            .transpose()
        };
        Ok(SettingsRequest {
            bucket_width_seconds: seconds("bucket-width", self.bucket_width)?,
            shards: self.shards,
            latest_shards: self.latest_shards,
            ttl_seconds: seconds("retention", self.retention)?,
            compaction_window_seconds: seconds("compaction-window", self.compaction_window)?,
        })
    }
}

/// `timebucket migrate up` flags.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Keyspace replication when this run creates it: `SimpleStrategy:1` for development,
    /// `NetworkTopologyStrategy:dc1=3[,dc2=3]` for production.
    #[arg(
        long,
        env = "TIMEBUCKET_REPLICATION",
        default_value = "SimpleStrategy:1"
    )]
    pub replication: Replication,
    /// Deployment settings for a keyspace that has none yet.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// How long to wait for a concurrent `migrate up` to finish.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub lock_wait: Duration,
}
