//! The real binary's command line: flag positions, bad values refused by name, plain logs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::support::{cql_node, fresh_keyspace, migrated_keyspace, timebucket_command};

/// Runs the binary to completion; returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let output = timebucket_command().args(args).output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn migrate_takes_the_connection_flags_after_the_action_too() {
    let keyspace = migrated_keyspace().await;
    let node = cql_node();
    let migrations = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    for (action, expected) in [("up", "is up to date"), ("status", "0001")] {
        let (code, stdout, stderr) = run(&[
            "migrate",
            action,
            "--cql-nodes",
            &node,
            "--keyspace",
            keyspace.as_str(),
            "--migrations-dir",
            migrations,
        ]);
        assert_eq!(code, Some(0), "migrate {action}: {stderr}");
        assert!(stdout.contains(expected), "migrate {action}: {stdout}");
    }
}

#[test]
fn an_error_says_each_of_its_causes_once() {
    let (code, _, stderr) = run(&["migrate", "status", "--cql-nodes", "127.0.0.1:1"]);
    assert_eq!(code, Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"));
    assert!(
        error.contains("connecting to the CQL cluster at 127.0.0.1:1: the store is unavailable"),
        "{error}"
    );
    assert_eq!(
        error.matches("Connection refused").count(),
        1,
        "the cause is repeated: {error}"
    );
}

#[test]
fn a_bad_value_is_refused_naming_its_flag_whatever_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let flag = [
        "serve",
        "--data-dir",
        data_dir,
        "--max-concurrent-ingest",
        "0",
    ];
    let (code, _, stderr) = run(&flag);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "error: --max-concurrent-ingest must be at least 1, got 0"
    );

    let output = timebucket_command()
        .args(["serve", "--data-dir", data_dir])
        .env("TIMEBUCKET_FLUSH_BYTES", "1024")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: --flush-bytes must be at least"),
        "{stderr}"
    );

    let config = dir.path().join("timebucket.toml");
    std::fs::write(&config, "[serve]\nquery_concurrency = 0\n").unwrap();
    let (code, _, stderr) = run(&[
        "--config",
        config.to_str().unwrap(),
        "serve",
        "--data-dir",
        data_dir,
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("error: --query-concurrency must be at least 1"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("wal").exists(),
        "nothing may start on a refused value"
    );
}

/// `timebucket serve` on the embedded store in `dir`, on a free port, with stderr in a pipe;
/// returns it with the log lines up to "listening" and the rest of stderr.
fn serve_piped(
    dir: &std::path::Path,
) -> (
    Child,
    Vec<String>,
    std::io::Lines<BufReader<std::process::ChildStderr>>,
) {
    let mut child = timebucket_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut lines = Vec::new();
    for line in stderr.by_ref() {
        let line = line.unwrap();
        let listening = line.contains("listening");
        lines.push(line);
        if listening {
            return (child, lines, stderr);
        }
    }
    let status = child.wait().unwrap();
    panic!(
        "the service ended ({status}) before listening:\n{}",
        lines.join("\n")
    );
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn logs_are_plain_text_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut lines, rest) = serve_piped(dir.path());
    terminate(&child);
    lines.extend(rest.map(Result::unwrap));
    let status = child.wait().unwrap();
    let logs = lines.join("\n");
    assert!(status.success(), "{status}:\n{logs}");
    assert!(!logs.contains('\u{1b}'), "colour codes in a pipe:\n{logs}");
    assert!(
        logs.contains("settings=bucket width 1h, 4 shards"),
        "settings not logged as plain values:\n{logs}"
    );
    assert!(
        !logs.contains("Settings {"),
        "a Debug dump in the logs:\n{logs}"
    );
}

#[test]
fn a_log_reader_that_goes_away_does_not_stop_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _, rest) = serve_piped(dir.path());
    drop(rest);
    // Shutting down logs into the broken pipe; the service must still stop cleanly.
    terminate(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn migrate_up_draws_no_warning_from_the_node() {
    let keyspace = fresh_keyspace();
    let (code, _, stderr) = run(&[
        "migrate",
        "up",
        "--cql-nodes",
        &cql_node(),
        "--keyspace",
        keyspace.as_str(),
        "--migrations-dir",
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    // Cassandra answers a prepared statement after `USE <keyspace>` with a warning the driver
    // logs; every statement of a migration names its keyspace instead.
    assert!(!stderr.contains("WARN"), "{stderr}");
}
