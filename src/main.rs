//! The `timebucket` binary: parses flags and runs one command. Errors end the process with a
//! one-line message and a non-zero exit code: 2 for a flag clap or the config funnel refuses
//! (as clap does), 1 for a failure while running.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use timebucket::cli::token::TokenAction;
use timebucket::cli::{
    Cli, Command, FlagError, LogFormat, MigrateAction, MigrateArgs, RulesAction, ServeArgs,
};
use timebucket::migrate::{self, Described, MigrationState};
use timebucket::server;
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
            eprintln!("error: {}", one_line(&error));
            if error.is::<FlagError>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs go to stderr, coloured only when stderr is a terminal: a file or a log collector gets
/// plain text. A stderr that stops taking writes (a log pipe whose reader went away) loses log
/// lines but never stops the service: tracing-subscriber would otherwise report the failed
/// write with `eprintln!`, which panics on that same broken stderr.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,scylla=warn,fjall=warn,lsm_tree=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false);
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
            let stats = timebucket::agent::run(args.config()?, shutdown_signal()).await?;
            tracing::info!(
                samples = stats.samples,
                delivered = stats.delivered,
                dropped = stats.dropped,
                failed_pushes = stats.failed_pushes,
                "agent stopped"
            );
            Ok(())
        }
        Command::Query(args) => {
            print!("{}", timebucket::query::cli::run(&args).await?);
            Ok(())
        }
        Command::Token(args) => match args.action {
            TokenAction::New(new) => {
                let (token, spec) = new.make()?;
                print!("{}", timebucket::cli::token::new_token_text(&token, &spec));
                Ok(())
            }
        },
        Command::Store(args) => match args.action {
            timebucket::cli::convert::StoreAction::Convert(convert) => {
                let n = timebucket::cli::convert::run(&convert)?;
                println!("converted {n} readings to blocks");
                Ok(())
            }
        },
        Command::Quarantine(args) => {
            print!("{}", timebucket::ingest::quarantine::cli::run(&args)?);
            Ok(())
        }
        Command::Rules(args) => match args.action {
            RulesAction::Check(check) => {
                let (report, passed) = timebucket::alerting::rules::check(&check.files);
                print!("{report}");
                anyhow::ensure!(passed, "the rule files have problems (listed above)");
                Ok(())
            }
        },
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    server::run(config, listener, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives while the service is still starting is not
/// lost (nor does it kill the process with the default action).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |signal: std::io::Result<tokio::signal::unix::Signal>| async move {
                match signal {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {}
                () = wait(terminate) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run_migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let nodes = args.nodes()?;
    let keyspace = &args.store.keyspace;
    let security = args.store.security.security()?;
    match &args.action {
        MigrateAction::Up(up) => {
            let options = up.options(&args.store)?;
            let migrations = migrate::source::load_dir(&args.migrations_dir)?;
            let session = cql::connect_as(&nodes, &security).await?;
            let report = migrate::up(&session, &migrations, &options)
                .await
                .with_context(|| format!("migrate up on keyspace {keyspace}"))?;
            for (version, name) in &report.applied {
                println!("applied {version:04}_{name}");
            }
            if report.applied.is_empty() {
                println!("keyspace {keyspace} is up to date");
            }
            println!("settings: {}", Described(&report.settings));
        }
        MigrateAction::Status => {
            let migrations = migrate::source::load_dir(&args.migrations_dir)?;
            let session = cql::connect_as(&nodes, &security).await?;
            let rows = migrate::status(&session, keyspace, &migrations).await?;
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

/// The error and its causes on one line, each said once: many errors (ours and the CQL
/// driver's) already include their cause in their own message, so a cause whose text is already
/// there is not repeated.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}
