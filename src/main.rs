//! The `timebucket` binary: parses flags and runs one command. Errors end the process with a
//! one-line message and a non-zero exit code: 2 for a flag clap or the config funnel refuses
//! (as clap does), 1 for a failure while running.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use timebucket::cli::rollup::{RollupAction, RollupCliError};
use timebucket::cli::token::TokenAction;
use timebucket::cli::{
    Cli, Command, FlagError, LogFormat, MigrateAction, MigrateArgs, RulesAction, ServeArgs,
};
use timebucket::migrate::{self, Described, MigrationState};
use timebucket::server;
use timebucket::store::cql;

fn main() -> ExitCode {
    tune_malloc();
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
        Command::Archive(args) => {
            let (target, command) = args.command()?;
            println!("{}", timebucket::archive::open::run(target, command).await?);
            Ok(())
        }
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
        Command::Rollup(args) => match args.action {
            RollupAction::Rebuild(rebuild) => {
                match timebucket::cli::rollup::run(&rebuild).await {
                    Ok(summary) => print!("{summary}"),
                    // A wrong flag stays a FlagError: exit status 2.
                    Err(RollupCliError::Flag(flag)) => return Err(flag.into()),
                    Err(other) => return Err(other.into()),
                }
                Ok(())
            }
        },
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
    spawn_malloc_trimmer();
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

/// glibc's malloc tuned for a long-running service with large, short-lived buffers (request
/// bodies, the flusher's batches of tens of thousands of readings):
/// - at most two arenas: glibc gives each thread that allocates under contention its own (up to
///   8 per core) and hands little of a freed arena back to the system; with the threads of a
///   running service (tokio's workers, fjall's flush and compaction workers, the WAL and flusher
///   threads) that held the embedded store's service at 330 MiB after a million readings,
///   against about 190 MiB with two;
/// - blocks of [`MMAP_THRESHOLD`] and more always from `mmap`, returned to the system when
///   freed: glibc otherwise raises that threshold (up to 32 MiB) each time such a block is
///   freed, after which the flusher's multi-megabyte batches come from the arenas and stay there
///   (peak RSS 299 → 227 MiB at 5 M readings with a fixed 128 KiB).
///
/// Measured in BENCHMARKS.md, "Embedded store at scale" (jemalloc and mimalloc measured higher
/// peaks there). Called before any thread starts; a `MALLOC_ARENA_MAX` or
/// `MALLOC_MMAP_THRESHOLD_` set in the environment is left to decide.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator tuning; no thread has started yet.
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            }
        }
    }
}

/// The smallest block glibc takes from `mmap` (see [`tune_malloc`]). Above a request's
/// buffers: a body of a thousand readings (150 KiB of JSON), its 200 KiB of parsed readings and
/// its WAL record are reused from the arenas instead of being mapped, faulted in page by page
/// and unmapped for every request. With 128 KiB they were not, and the service spent 8% of its
/// CPU on page faults; 512 KiB cut its CPU per reading end to end by 8% and raised the rate of
/// acceptance alone by 10% (BENCHMARKS.md, "Rollups at ingest"), with the same peak RSS in the
/// embedded store's scale bench. The flusher's batches (megabytes) are still mapped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 512 * 1024;

/// How often `serve` hands glibc's free memory back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A thread that calls `malloc_trim(0)` every [`MALLOC_TRIM_INTERVAL`]. glibc gives freed
/// memory back to the system only from the top of an arena, and the service's long-lived blocks
/// (memtable entries, interned names) sit among the short-lived ones of requests and flushes, so
/// the free space between them stays resident: 35-50 MiB at any moment of the embedded store's
/// bench, against 115-160 MiB in use. `malloc_trim` releases every whole free page
/// (`MADV_DONTNEED`) in every arena; each call takes a few milliseconds under the arena's lock.
fn spawn_malloc_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let trimmer = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(|| loop {
                std::thread::sleep(MALLOC_TRIM_INTERVAL);
                // SAFETY: malloc_trim only releases free memory, under the allocator's locks.
                unsafe {
                    libc::malloc_trim(0);
                }
            });
        if let Err(error) = trimmer {
            tracing::warn!(%error, "cannot start the malloc trimmer: freed memory stays resident longer");
        }
    }
}
