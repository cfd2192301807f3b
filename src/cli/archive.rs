//! `timebucket archive export|import` flags and their conversion into an archive command
//! ([`crate::archive::open`]). The store flags are `serve`'s (`--cql-nodes`, `--keyspace`, the
//! CQL security flags, `--data-dir`), so an archive command finds the store `serve` uses.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::serve::DEFAULT_DATA_DIR;
use super::store::StoreArgs;
use super::FlagError;
use crate::archive::open::{Command, Target};
use crate::model::{ServiceName, TimestampMs};

/// `timebucket archive` flags.
#[derive(Debug, Clone, Args)]
pub struct ArchiveArgs {
    /// The store to read from or load into.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The service's data directory: without --cql-nodes, the embedded store in
    /// `<data-dir>/store` (no `serve` may hold it meanwhile).
    #[arg(long, env = "TIMEBUCKET_DATA_DIR", default_value = DEFAULT_DATA_DIR, global = true)]
    pub data_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub action: ArchiveAction,
}

/// The archive commands.
#[derive(Debug, Clone, Subcommand)]
pub enum ArchiveAction {
    /// Export whole buckets to Parquet files (one per kind, service and bucket) and a manifest.
    Export(ExportArgs),
    /// Load an archive back into the store (idempotent: readings keep their ids).
    Import(ImportArgs),
}

/// `timebucket archive export` flags.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Start of the range (RFC 3339 or epoch ms): every bucket overlapping [from, to) is
    /// exported whole.
    #[arg(long, value_parser = TimestampMs::parse)]
    pub from: TimestampMs,
    /// End of the range, exclusive (RFC 3339 or epoch ms).
    #[arg(long, value_parser = TimestampMs::parse)]
    pub to: TimestampMs,
    /// Only these services (repeat the flag or separate with commas); default: every service
    /// that sent anything within the retention.
    #[arg(long = "service", value_delimiter = ',')]
    pub services: Vec<String>,
    /// The archive directory (created if needed; a rerun goes on where the last one stopped).
    #[arg(long)]
    pub out: PathBuf,
}

/// `timebucket archive import` flags.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The archive directory (the one with `manifest.json`).
    #[arg(long = "in")]
    pub input: PathBuf,
    /// Only buckets overlapping [from, to) (RFC 3339 or epoch ms); needs --to.
    #[arg(long, value_parser = TimestampMs::parse, requires = "to")]
    pub from: Option<TimestampMs>,
    /// End of the range, exclusive; needs --from.
    #[arg(long, value_parser = TimestampMs::parse, requires = "from")]
    pub to: Option<TimestampMs>,
}

impl ArchiveArgs {
    /// The store and the command, validated.
    pub fn command(&self) -> Result<(Target, Command), FlagError> {
        let nodes = self.store.nodes()?;
        let target = if nodes.is_empty() {
            Target::Embedded(self.data_dir.join("store"))
        } else {
            Target::Cql {
                nodes,
                keyspace: self.store.keyspace.clone(),
                security: self.store.security.security()?,
            }
        };
        let command = match &self.action {
            ArchiveAction::Export(export) => Command::Export {
                from: export.from,
                to: after("--to", export.from, export.to)?,
                services: export
                    .services
                    .iter()
                    .map(|s| {
                        ServiceName::parse(s)
                            .map_err(|p| FlagError::new("--service", format!("`{s}` {p}")))
                    })
                    .collect::<Result<_, _>>()?,
                out: export.out.clone(),
            },
            ArchiveAction::Import(import) => Command::Import {
                dir: import.input.clone(),
                range: match (import.from, import.to) {
                    (Some(from), Some(to)) => Some((from, after("--to", from, to)?)),
                    _ => None,
                },
            },
        };
        Ok((target, command))
    }
}

/// `to`, when it is after `from`.
fn after(flag: &'static str, from: TimestampMs, to: TimestampMs) -> Result<TimestampMs, FlagError> {
    if to <= from {
        return Err(FlagError::new(
            flag,
            format!(
                "must be after --from ({}), got {}",
                from.to_rfc3339(),
                to.to_rfc3339()
            ),
        ));
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command as Sub};

    fn archive(flags: &[&str]) -> ArchiveArgs {
        let argv = ["timebucket", "archive"].iter().chain(flags);
        match Cli::try_parse_from(argv).unwrap().command {
            Sub::Archive(args) => args,
            other => panic!("not archive: {other:?}"),
        }
    }

    #[test]
    fn export_reads_the_store_serve_uses() {
        let args = archive(&[
            "export",
            "--from",
            "2026-11-30T00:00:00Z",
            "--to",
            "2026-11-30T06:00:00Z",
            "--service",
            "a,b",
            "--service",
            "c",
            "--out",
            "arch",
            "--data-dir",
            "d",
        ]);
        let (target, command) = args.command().unwrap();
        assert!(matches!(target, Target::Embedded(dir) if dir == std::path::Path::new("d/store")));
        let Command::Export { services, .. } = command else {
            panic!("not export")
        };
        assert_eq!(
            services.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        let (target, _) = archive(&["import", "--in", "arch", "--cql-nodes", "db:9042"])
            .command()
            .unwrap();
        assert!(matches!(target, Target::Cql { .. }));
    }

    #[test]
    fn a_range_that_ends_before_it_starts_is_refused_by_flag() {
        let args = archive(&["export", "--from", "2000", "--to", "1000", "--out", "arch"]);
        assert_eq!(args.command().unwrap_err().flag, "--to");
        let args = archive(&[
            "export",
            "--from",
            "0",
            "--to",
            "1",
            "--service",
            "",
            "--out",
            "a",
        ]);
        assert_eq!(args.command().unwrap_err().flag, "--service");
    }
}
