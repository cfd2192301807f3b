//! The `timebucket` binary: parses flags and runs one command. Errors end the process with a
//! one-line message and a non-zero exit code.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;

use timebucket::cli::{Cli, Command, LogFormat, MigrateAction, MigrateArgs, ServeArgs};
use timebucket::ingest::FlusherConfig;
use timebucket::migrate::{self, MigrationState, UpOptions};
use timebucket::server::{self, AcceptLimits, ServeConfig};
use timebucket::store::cql;

fn main() -> ExitCode {
    let args = match timebucket::config_file::expand(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse_from(args);
    init_logging(cli.log_format);
    if let Some(path) = &cli.config {
        tracing::info!(config = %path.display(), "settings read from the config file");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,scylla=warn,fjall=warn,lsm_tree=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => run_serve(args).await,
        Command::Migrate(args) => run_migrate(args).await,
        Command::Agent(args) => {
            let stats = timebucket::agent::run(args, shutdown_signal()).await?;
            tracing::info!(?stats, "agent stopped");
            Ok(())
        }
        Command::Query(args) => {
            print!("{}", timebucket::query::cli::run(&args).await?);
            Ok(())
        }
        Command::Quarantine(args) => {
            print!("{}", timebucket::ingest::quarantine::cli::run(&args)?);
            Ok(())
        }
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig {
        settings: args
            .settings
            .settings_request()
            .map_err(anyhow::Error::msg)?,
        cql_nodes: args.store.cql_nodes,
        keyspace: args.store.keyspace,
        data_dir: args.data_dir,
        wal_segment_bytes: args.wal_segment_bytes,
        wal_repair: args.wal_repair,
        accept: AcceptLimits {
            max_body_bytes: args.max_body_bytes,
            max_backlog_bytes: args.max_backlog_bytes,
            max_concurrent: args.max_concurrent_ingest.max(1),
        },
        flusher: FlusherConfig {
            max_read_bytes: args.flush_bytes.max(64 * 1024),
            ..FlusherConfig::default()
        },
        shutdown_deadline: args.shutdown_deadline,
        query: args.query.limits().map_err(anyhow::Error::msg)?,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    server::run(config, listener, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

async fn run_migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let migrations = migrate::source::load_dir(&args.migrations_dir)?;
    if args.store.cql_nodes.is_empty() {
        bail!("migrate needs a CQL cluster: pass --cql-nodes host:port (or set TIMEBUCKET_CQL_NODES); the embedded store needs no migrations");
    }
    let keyspace = args.store.keyspace.clone();
    match args.action {
        MigrateAction::Up(up) => {
            let options = UpOptions {
                keyspace: keyspace.clone(),
                replication: up.replication.clone(),
                settings: up.settings.settings_request().map_err(anyhow::Error::msg)?,
                lock_wait: up.lock_wait,
            };
            let session = cql::connect(&args.store.cql_nodes).await?;
            let report = migrate::up(&session, &migrations, &options)
                .await
                .with_context(|| format!("migrate up on keyspace {keyspace}"))?;
            for (version, name) in &report.applied {
                println!("applied {version:04}_{name}");
            }
            if report.applied.is_empty() {
                println!("keyspace {keyspace} is up to date");
            }
            let s = report.settings;
            println!(
                "settings: bucket width {}s, {} shards, {} latest shards, retention {}s, compaction window {}s",
                s.bucket_width.seconds(),
                s.shards.get(),
                s.latest_shards.get(),
                s.ttl_seconds,
                s.compaction_window_seconds
            );
        }
        MigrateAction::Status => {
            let session = cql::connect(&args.store.cql_nodes).await?;
            let rows = migrate::status(&session, &keyspace, &migrations).await?;
            println!("{:<8} {:<24} {:<12} applied at", "version", "name", "state");
            for row in rows {
                let state = match row.state {
                    MigrationState::Applied => "applied",
                    MigrationState::Pending => "pending",
                    MigrationState::Edited => "EDITED",
                    MigrationState::MissingFile => "NO FILE",
                };
                let at = row.applied_at.map(|t| t.to_rfc3339()).unwrap_or_default();
                println!(
                    "{:<8} {:<24} {:<12} {at}",
                    format!("{:04}", row.version),
                    row.name,
                    state
                );
            }
        }
    }
    Ok(())
}
