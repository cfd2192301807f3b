//! `timebucket migrate up|status` flags and their conversion into [`UpOptions`].

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::store::{SettingsArgs, StoreArgs};
use super::FlagError;
use crate::migrate::{Replication, UpOptions};

/// Default `--migrations-dir`, relative to the working directory (the repository's folder).
pub const DEFAULT_MIGRATIONS_DIR: &str = "migrations";

/// `timebucket migrate ...`
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// `up` or `status`.
    #[command(subcommand)]
    pub action: MigrateAction,
    /// The store to migrate (flags accepted before and after the action).
    #[command(flatten)]
    pub store: StoreArgs,
    /// The folder of `NNNN_name.cql` files.
    #[arg(
        long,
        env = "TIMEBUCKET_MIGRATIONS_DIR",
        default_value = DEFAULT_MIGRATIONS_DIR,
        global = true
    )]
    pub migrations_dir: PathBuf,
}

impl MigrateArgs {
    /// The CQL contact points: migrations exist only for a CQL cluster.
    pub fn nodes(&self) -> Result<Vec<String>, FlagError> {
        let nodes = self.store.nodes()?;
        if nodes.is_empty() {
            return Err(FlagError::new(
                "--cql-nodes",
                "is needed: migrate needs a CQL cluster (pass --cql-nodes host:port or set \
                 TIMEBUCKET_CQL_NODES); the embedded store needs no migrations",
            ));
        }
        Ok(nodes)
    }
}

/// The migrate actions.
#[derive(Debug, Clone, Subcommand)]
pub enum MigrateAction {
    /// Apply the pending migrations, creating the keyspace if needed.
    Up(UpArgs),
    /// List applied and pending migrations.
    Status,
}

/// `timebucket migrate up` flags.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Keyspace replication when this run creates it: `SimpleStrategy:1` for development,
    /// `NetworkTopologyStrategy:dc1=3[,dc2=3]` for production.
    #[arg(long, env = "TIMEBUCKET_REPLICATION", default_value_t = Replication::default())]
    pub replication: Replication,
    /// Deployment settings for a keyspace that has none yet.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// How long to wait for a concurrent `migrate up` to finish.
    #[arg(long, env = "TIMEBUCKET_LOCK_WAIT", default_value_t = UpOptions::DEFAULT_LOCK_WAIT.into())]
    pub lock_wait: humantime::Duration,
}

impl UpArgs {
    /// The options of `up` on the keyspace of `store`.
    pub fn options(&self, store: &StoreArgs) -> Result<UpOptions, FlagError> {
        Ok(UpOptions {
            keyspace: store.keyspace.clone(),
            replication: self.replication.clone(),
            settings: self.settings.request()?,
            lock_wait: self.lock_wait.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn migrate(argv: &[&str]) -> Result<MigrateArgs, String> {
        let argv = ["timebucket"].iter().chain(argv);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Migrate(args) => Ok(args),
            other => panic!("not migrate: {other:?}"),
        }
    }

    #[test]
    fn connection_flags_are_accepted_before_and_after_the_action() {
        for argv in [
            &[
                "migrate",
                "--cql-nodes",
                "db:9042",
                "--keyspace",
                "ks",
                "up",
            ][..],
            &[
                "migrate",
                "up",
                "--cql-nodes",
                "db:9042",
                "--keyspace",
                "ks",
            ],
            &[
                "migrate",
                "--keyspace",
                "ks",
                "up",
                "--cql-nodes",
                "db:9042",
            ],
            &[
                "migrate",
                "--cql-nodes",
                "db:9042",
                "status",
                "--keyspace",
                "ks",
            ],
            &[
                "migrate",
                "status",
                "--cql-nodes",
                "db:9042",
                "--keyspace",
                "ks",
            ],
        ] {
            let args = migrate(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            assert_eq!(args.nodes().unwrap(), ["db:9042"], "{argv:?}");
            assert_eq!(args.store.keyspace.as_str(), "ks", "{argv:?}");
        }
    }

    #[test]
    fn up_defaults_come_from_the_migrate_module() {
        let args = migrate(&["migrate", "up", "--cql-nodes", "db:9042"]).unwrap();
        let MigrateAction::Up(up) = &args.action else {
            panic!("not up")
        };
        let options = up.options(&args.store).unwrap();
        assert_eq!(options.replication, Replication::default());
        assert_eq!(options.lock_wait, UpOptions::DEFAULT_LOCK_WAIT);
    }

    #[test]
    fn migrate_without_a_cluster_names_the_flag() {
        let args = migrate(&["migrate", "status"]).unwrap();
        assert_eq!(args.nodes().unwrap_err().flag, "--cql-nodes");
    }
}
