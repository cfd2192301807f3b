//! Command-line flags, and the one funnel from flags to the configs the rest of the crate trusts.
//!
//! Two layers, as ripgrep has them. The clap structs of this module and its children parse each
//! flag's *syntax* (a number, a duration, an address), whether it came from the command line, a
//! `TIMEBUCKET_*` variable or the config file ([`crate::config_file`] turns the file into flags
//! before clap runs). Then each command's `config()` turns its flags into the validated config
//! of the module that runs it ([`crate::server::ServeConfig`], [`crate::migrate::UpOptions`],
//! [`crate::agent::AgentConfig`]), refusing a bad value with a [`FlagError`] that names the
//! flag. Nothing is clamped, and every default is the constant of the module that owns the
//! setting (`AcceptLimits::DEFAULT_MAX_BODY_BYTES`, `FlusherConfig::DEFAULT_MAX_READ_BYTES`,
//! ...), used as the flag's default: it is written once.
//!
//! Adding a flag to `serve`: a field on [`serve::ServeArgs`] (`long`, `env = "TIMEBUCKET_..."`,
//! the owner's `DEFAULT_...` as its default, the doc comment as its help) and its line in
//! `ServeArgs::config`, next to it. The config file and `--help` learn it by themselves.
//!
//! `timebucket query`'s flags describe one request to a running service, which checks them; they
//! live with that client, in [`crate::query::cli`].

pub mod access;
pub mod agent;
pub mod alerting;
pub mod archive;
pub mod client;
pub mod convert;
pub mod cql;
pub mod migrate;
pub mod rollup;
pub mod serve;
pub mod store;
pub mod token;

use std::fmt::Display;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use agent::AgentArgs;
pub use alerting::{AlertingArgs, RulesAction, RulesArgs};
pub use migrate::{MigrateAction, MigrateArgs, UpArgs};
pub use serve::{QueryLimitArgs, ServeArgs};
pub use store::{SettingsArgs, StoreArgs};

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
    /// Human-readable lines (coloured only when stderr is a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
// One value per process, parsed once at start: `serve`'s many flags make its variant the
// largest by far, and boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the ingest and query HTTP service.
    Serve(ServeArgs),
    /// Apply or list the CQL migrations (CQL clusters only; the embedded store needs none).
    Migrate(MigrateArgs),
    /// Push this host's CPU, memory, disk and heartbeat (and a process's memory) to a collector.
    Agent(AgentArgs),
    /// Ask a running service: readings, series, latest, stats, host-stats, targets, alerts, rules.
    Query(crate::query::cli::QueryArgs),
    /// List or show what the flusher set aside (batches the store refused, undecodable records).
    Quarantine(crate::ingest::quarantine::cli::QuarantineArgs),
    /// Check alerting rule files.
    Rules(RulesArgs),
    /// Rollups: `rollup rebuild` recomputes those of past hours from the raw readings.
    Rollup(rollup::RollupArgs),
    /// Make access tokens (`token new`).
    Token(token::TokenArgs),
    /// Export whole buckets to Parquet files, or load them back (`archive export|import`).
    Archive(archive::ArchiveArgs),
    /// Maintain the embedded store (`store convert`: readings of earlier versions to blocks).
    Store(convert::StoreCommandArgs),
}

/// A flag value a command cannot run with. Displayed as `--flag problem`, e.g.
/// `--max-concurrent-ingest must be at least 1, got 0`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {problem}")]
pub struct FlagError {
    /// The flag as it is typed: `--max-concurrent-ingest`.
    pub flag: &'static str,
    /// What is wrong, with the value given.
    pub problem: String,
}

impl FlagError {
    /// A problem with `flag`.
    pub fn new(flag: &'static str, problem: impl Into<String>) -> Self {
        Self {
            flag,
            problem: problem.into(),
        }
    }
}

/// `value`, or an error naming `flag` when it is below `min`.
fn at_least<T: PartialOrd + Display>(flag: &'static str, value: T, min: T) -> Result<T, FlagError> {
    if value < min {
        return Err(FlagError::new(
            flag,
            format!("must be at least {min}, got {value}"),
        ));
    }
    Ok(value)
}
