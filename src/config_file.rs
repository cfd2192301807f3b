//! `--config timebucket.toml`: every flag can also come from a file.
//!
//! Precedence, highest first: command-line flag, `TIMEBUCKET_*` environment variable, the file,
//! the built-in default. The file is turned into ordinary flags before clap parses anything, so
//! every value is validated by the very same parsers as a flag, and a file can never express
//! something the command line cannot.
//!
//! Layout: top-level keys apply to every command that has that flag (`cql_nodes`, `keyspace`,
//! `data_dir`, ...); a table named after a command (`[serve]`, `[migrate]`) applies to that
//! command only. Keys are flag names with `_` or `-`. Arrays become comma-separated values;
//! `true` sets a switch. See `timebucket.example.toml`.
//!
//! One key is not a flag: `[[token]]` tables hold access tokens (by hash; see
//! [`crate::access::tokens_file`]). A file that has them becomes `serve`'s `--tokens-file`, so
//! they are read, and re-read on reload, from this very file; other commands pass over them.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, Command, CommandFactory};

use crate::access::tokens_file::TOKEN_KEY;
use crate::cli::Cli;

/// The environment variable naming the config file, like `--config`.
pub const CONFIG_ENV: &str = "TIMEBUCKET_CONFIG";

/// Why the config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("config file {} is not valid TOML: {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A key no command knows, or a value of the wrong kind.
    #[error("config file {}: {problem}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// Returns `args` with the settings of the config file (from `--config` or
/// `TIMEBUCKET_CONFIG`) added as flags; `args` unchanged when there is no config file.
pub fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, ConfigFileError> {
    let mut args = args;
    let Some(path) = config_flag(&args).or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
    else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigFileError::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| ConfigFileError::Syntax {
                path: path.clone(),
                reason: e.message().to_owned(),
            })?;
    let root = Cli::command();
    let (chain, insert_at) = subcommand_chain(&root, &args);
    let key_error = |problem: String| ConfigFileError::Key {
        path: path.clone(),
        problem,
    };
    let mut extra = Vec::new();
    for (key, value) in &table {
        // `[[token]]` tables (a client's `token = "..."` is an ordinary flag).
        if key == TOKEN_KEY && value.is_array() {
            if let Some(arg) = find_arg(&chain, "tokens_file") {
                let file = toml::Value::String(path.to_string_lossy().into_owned());
                push_flag(&mut extra, &args, arg, "tokens_file", &file).map_err(key_error)?;
            }
            continue;
        }
        match value {
            toml::Value::Table(section) => {
                let Some(at) = chain.iter().position(|c| c.get_name() == key) else {
                    if root.find_subcommand(key).is_none() {
                        return Err(key_error(format!("[{key}] is not a timebucket command")));
                    }
                    continue;
                };
                // The section's command and the commands named after it (`[migrate]` holds
                // `up`'s flags too); a flag of a command not run now is left out.
                for (name, value) in section {
                    if let Some(arg) = find_arg(&chain[at..], name) {
                        push_flag(&mut extra, &args, arg, name, value).map_err(key_error)?;
                    } else if !known_anywhere(chain[at], name) {
                        return Err(key_error(format!(
                            "`{name}` in [{key}] is not a flag of `{key}`"
                        )));
                    }
                }
            }
            _ => {
                if let Some(arg) = find_arg(&chain, key) {
                    push_flag(&mut extra, &args, arg, key, value).map_err(key_error)?;
                } else if !known_anywhere(&root, key) {
                    return Err(key_error(format!(
                        "`{key}` is not a flag of any timebucket command"
                    )));
                }
            }
        }
    }
    let tail = args.split_off(insert_at);
    args.extend(extra);
    args.extend(tail);
    Ok(args)
}

/// The path given with `--config PATH` / `--config=PATH`, if any. The flag stays in `args`:
/// clap declares it too, for `--help` and for the log line naming the file.
fn config_flag(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().filter_map(|a| a.to_str());
    let mut path = None;
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            path = iter.next().map(PathBuf::from);
        } else if let Some(value) = arg.strip_prefix("--config=") {
            path = Some(PathBuf::from(value));
        }
    }
    path
}

/// The commands named on the command line, outermost first, and the index just after the last
/// one (where file flags are inserted).
fn subcommand_chain<'a>(root: &'a Command, args: &[OsString]) -> (Vec<&'a Command>, usize) {
    let mut chain = vec![root];
    let mut insert_at = 1.min(args.len());
    for (i, arg) in args.iter().enumerate().skip(1) {
        let Some(name) = arg.to_str() else { continue };
        let current = *chain.last().expect("root is always there");
        if let Some(sub) = current.find_subcommand(name) {
            chain.push(sub);
            insert_at = i + 1;
        }
    }
    (chain, insert_at)
}

fn normalise(name: &str) -> String {
    name.replace('_', "-")
}

fn find_arg<'a>(chain: &[&'a Command], key: &str) -> Option<&'a Arg> {
    let long = normalise(key);
    chain
        .iter()
        .rev()
        .flat_map(|c| c.get_arguments())
        .find(|a| a.get_long() == Some(long.as_str()))
}

fn known_anywhere(command: &Command, key: &str) -> bool {
    let long = normalise(key);
    command
        .get_arguments()
        .any(|a| a.get_long() == Some(long.as_str()))
        || command.get_subcommands().any(|c| known_anywhere(c, key))
}

/// Adds `--flag value` unless the command line or the flag's environment variable sets it.
fn push_flag(
    extra: &mut Vec<OsString>,
    args: &[OsString],
    arg: &Arg,
    key: &str,
    value: &toml::Value,
) -> Result<(), String> {
    let long = format!("--{}", normalise(key));
    let on_command_line = args
        .iter()
        .filter_map(|a| a.to_str())
        .any(|a| a == long || a.starts_with(&format!("{long}=")));
    let in_env = arg
        .get_env()
        .is_some_and(|env| std::env::var_os(env).is_some());
    if on_command_line || in_env {
        return Ok(());
    }
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(true) => {
            extra.push(long.into());
            return Ok(());
        }
        toml::Value::Boolean(false) => return Ok(()),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s.clone()),
                other => Ok(other.to_string()),
            })
            .collect::<Result<Vec<_>, String>>()?
            .join(","),
        other => return Err(format!("`{key}` cannot be {}", other.type_str())),
    };
    extra.push(long.into());
    extra.push(text.into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Command as Sub;

    fn parse_with(file: &str, argv: &[&str]) -> Result<Cli, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timebucket.toml");
        std::fs::write(&path, file).unwrap();
        let mut args: Vec<OsString> = argv.iter().map(OsString::from).collect();
        args.push("--config".into());
        args.push(path.into());
        let expanded = expand(args).map_err(|e| e.to_string())?;
        Cli::try_parse_from(expanded).map_err(|e| e.to_string())
    }

    #[test]
    fn file_values_fill_flags_and_the_command_line_wins() {
        let file = "keyspace = \"from_file\"\ncql_nodes = [\"10.0.0.1:9042\", \"10.0.0.2:9042\"]\n\n[serve]\nlisten = \"127.0.0.1:9999\"\nwal_repair = true\n";
        let cli = parse_with(file, &["timebucket", "serve", "--listen", "127.0.0.1:7777"]).unwrap();
        let Sub::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(serve.listen.to_string(), "127.0.0.1:7777");
        assert_eq!(serve.store.keyspace.as_str(), "from_file");
        assert_eq!(serve.store.cql_nodes, ["10.0.0.1:9042", "10.0.0.2:9042"]);
        assert!(serve.wal_repair);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(parse_with("lisen = \"x\"", &["timebucket", "serve"])
            .unwrap_err()
            .contains("`lisen`"));
        assert!(
            parse_with("[serve]\nreplication = \"x\"", &["timebucket", "serve"])
                .unwrap_err()
                .contains("not a flag of `serve`")
        );
        assert!(parse_with("[serve]\nlisten = \"nowhere\"", &["timebucket", "serve"]).is_err());
        assert!(parse_with("not toml [", &["timebucket", "serve"])
            .unwrap_err()
            .contains("not valid TOML"));
    }

    #[test]
    fn file_values_are_validated_by_the_same_funnel_as_flags() {
        let cli = parse_with(
            "[serve]\nmax_concurrent_ingest = 0\n",
            &["timebucket", "serve"],
        )
        .unwrap();
        let Sub::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(
            serve.config().unwrap_err().to_string(),
            "--max-concurrent-ingest must be at least 1, got 0"
        );
    }

    #[test]
    fn top_level_connection_keys_reach_migrate_actions() {
        let file = "cql_nodes = [\"10.0.0.1:9042\"]\nkeyspace = \"from_file\"\n";
        for argv in [
            &["timebucket", "migrate", "up"][..],
            &["timebucket", "migrate", "status"],
        ] {
            let cli = parse_with(file, argv).unwrap();
            let Sub::Migrate(migrate) = cli.command else {
                panic!("not migrate")
            };
            assert_eq!(migrate.nodes().unwrap(), ["10.0.0.1:9042"], "{argv:?}");
            assert_eq!(migrate.store.keyspace.as_str(), "from_file", "{argv:?}");
        }
    }

    #[test]
    fn the_example_file_works_for_every_command_with_every_key_set() {
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/timebucket.example.toml"
        ))
        .unwrap();
        // Every commented-out `# key = value` line turned on.
        let every_key: String = shipped
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if rest.split(' ').nth(1) == Some("=") => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        for file in [&shipped, &every_key] {
            for argv in [
                &["timebucket", "serve"][..],
                &["timebucket", "migrate", "up"],
                &["timebucket", "migrate", "status"],
                &[
                    "timebucket",
                    "rollup",
                    "rebuild",
                    "--from",
                    "0",
                    "--to",
                    "1",
                ],
                &[
                    "timebucket",
                    "agent",
                    "--service",
                    "s",
                    "--push",
                    "http://c:8080",
                ],
            ] {
                let cli = parse_with(file, argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
                let valid = match &cli.command {
                    Sub::Serve(serve) => serve.config().map(drop),
                    Sub::Migrate(migrate) => match &migrate.action {
                        crate::cli::MigrateAction::Up(up) => up.options(&migrate.store).map(drop),
                        crate::cli::MigrateAction::Status => Ok(()),
                    },
                    Sub::Agent(agent) => agent.config().map(drop),
                    Sub::Rollup(rollup) => match &rollup.action {
                        crate::cli::rollup::RollupAction::Rebuild(rebuild) => {
                            rebuild.request().map(drop)
                        }
                    },
                    Sub::Query(_)
                    | Sub::Rules(_)
                    | Sub::Token(_)
                    | Sub::Quarantine(_)
                    | Sub::Store(_)
                    | Sub::Archive(_) => Ok(()),
                };
                valid.unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            }
        }
    }

    #[test]
    fn a_section_holds_the_flags_of_its_subcommands() {
        let file = "[migrate]\nreplication = \"NetworkTopologyStrategy:dc1=3\"\n";
        let cli = parse_with(file, &["timebucket", "migrate", "up"]).unwrap();
        let Sub::Migrate(migrate) = cli.command else {
            panic!("not migrate")
        };
        let crate::cli::MigrateAction::Up(up) = migrate.action else {
            panic!("not up")
        };
        assert_eq!(up.replication.to_string(), "NetworkTopologyStrategy:dc1=3");
        // `status` has no --replication: the key is for another action, not an error.
        parse_with(file, &["timebucket", "migrate", "status"]).unwrap();
        assert!(parse_with(
            "[migrate]\nlisten = \"x\"\n",
            &["timebucket", "migrate", "up"]
        )
        .unwrap_err()
        .contains("not a flag of `migrate`"));
    }

    #[test]
    fn token_tables_make_the_file_the_tokens_file_of_serve_only() {
        let file = "[[token]]\nname = \"a\"\nscope = \"read\"\nhash = \"sha256:x\"\n";
        let cli = parse_with(file, &["timebucket", "serve"]).unwrap();
        let Sub::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        let path = serve.access.tokens_file.expect("the config file");
        assert!(path.ends_with("timebucket.toml"), "{path:?}");
        parse_with(file, &["timebucket", "migrate", "status"]).unwrap();
        parse_with(file, &["timebucket", "query", "targets"]).unwrap();
    }

    #[test]
    fn other_commands_sections_are_ignored() {
        let file = "[migrate]\nmigrations_dir = \"/x\"\n[serve]\nlisten = \"127.0.0.1:1234\"\n";
        let cli = parse_with(file, &["timebucket", "serve"]).unwrap();
        let Sub::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(serve.listen.port(), 1234);
    }
}
