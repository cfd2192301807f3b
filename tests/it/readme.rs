//! The README cannot drift from the CLI: every `timebucket` command line shown in `README.md`
//! and `cql/README.md` runs against the real binary.
//!
//! Each command (found by [`extract`]) must first *parse*: its words plus `--help` exit 0, so
//! every subcommand and flag exists and every value is accepted. Then it *runs* in a sandbox,
//! by subcommand:
//!
//! | subcommand | how it runs | passes when |
//! | --- | --- | --- |
//! | `migrate` | against the test node (`TIMEBUCKET_TEST_CQL`), on a fresh keyspace | it exits 0 |
//! | `serve` | in a temp working directory, listening on a free port | `/healthz` answers, then SIGTERM ends it with 0 |
//! | `query` | against a service the test runs, seeded with every `--service` the README names | it exits 0 |
//! | `agent` | pushing to that service | it starts, delivers, and SIGTERM ends it with 0 |
//! | `rules` | in a temp working directory | it exits 0 |
//! | `token` | in a temp working directory | it exits 0 |
//! | `archive` | in a temp working directory holding an empty embedded store (and, for `import`, an empty archive) | it exits 0 |
//! | `rollup` | in a temp working directory holding a new embedded store in `./data` | it exits 0 |
//!
//! A command the README shows failing (`error: ...` under it in a console block) must fail with
//! that first line instead. A command in an inline code span may name a command without its
//! required arguments (`timebucket agent`, a table's synopsis): then the parse check is all.
//!
//! The sandbox sets `TIMEBUCKET_KEYSPACE`, `TIMEBUCKET_MIGRATIONS_DIR`, `TIMEBUCKET_LISTEN`,
//! `TIMEBUCKET_URL` (and, for `migrate`, `TIMEBUCKET_CQL_NODES`); flags in the README override
//! them, as they would for a user. Documented placeholders are replaced ([`PLACEHOLDERS`]);
//! any other `$...` in a command fails the test, naming the line.
//!
//! A command may name a file the README shows whole in a fenced block marked `file=NAME`
//! (```` ```yaml file=scrape.yml ````): every such file is written into the command's working
//! directory first, and so is a copy of the repository's `examples/` folder (`--rules
//! examples/rules.yml`).
//!
//! Adding a command to the README needs nothing here, unless it is a new subcommand (the test
//! then fails asking for a runner) or uses a new placeholder.

mod extract;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use extract::DocCommand;
use serde_json::{json, Value};
use timebucket::store::cql::Keyspace;

use crate::support::{
    cql_node, fresh_keyspace, migrated_keyspace, spawn_app, timebucket_command, AppOptions,
};

/// The documents whose commands are checked, relative to the repository.
const DOCUMENTS: [&str; 2] = ["README.md", "cql/README.md"];

/// Placeholders a document may use, and what the test puts in their place.
pub const PLACEHOLDERS: &str = "HOST:9042 or 127.0.0.1:9042 (a CQL contact point) → the test node; \
     URL, http://127.0.0.1:8080 or http://localhost:8080 (the service) → the service the test runs; \
     --listen ADDRESS → a free port; S (a service name) → checkout; \
     \"$(pgrep ...)\" (a pid) → the test's own pid";

/// The service name `S` stands for.
const SERVICE: &str = "checkout";
/// How long one command may take to finish, or to start for `serve` and `agent`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// The files the documents show whole (`file=NAME` blocks), which their commands may name.
fn documented_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    DOCUMENTS
        .iter()
        .flat_map(|file| extract::files(&std::fs::read_to_string(root.join(file)).unwrap()))
        .collect()
}

/// Every command of the documents.
fn documented_commands() -> Vec<DocCommand> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for file in DOCUMENTS {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        all.extend(extract::commands(file, &text));
    }
    all
}

/// The commands of one subcommand, each distinct command line once.
fn commands_of(subcommand: &str) -> Vec<DocCommand> {
    let mut seen = BTreeSet::new();
    documented_commands()
        .into_iter()
        .filter(|c| c.subcommand() == Some(subcommand))
        .filter(|c| seen.insert((c.args.clone(), c.expected_error.clone(), c.inline)))
        .collect()
}

/// What the placeholders stand for in one test.
struct Sandbox {
    /// `host:port` of the CQL node.
    node: String,
    /// Base URL of the service queries and agents talk to.
    url: String,
    /// The keyspace every command uses (unless it names its own).
    keyspace: Keyspace,
}

impl Sandbox {
    /// The command's words with the placeholders replaced.
    fn resolve(&self, command: &DocCommand) -> Result<Vec<String>, String> {
        let mut words = Vec::new();
        let mut after_listen = false;
        for word in &command.args {
            let word = if after_listen {
                "127.0.0.1:0".to_owned()
            } else if word.starts_with("--listen=") {
                "--listen=127.0.0.1:0".to_owned()
            } else if word == "S" {
                SERVICE.to_owned()
            } else if word == "URL" {
                self.url.clone()
            } else if word.starts_with("$(pgrep ") {
                std::process::id().to_string()
            } else {
                word.replace("HOST:9042", &self.node)
                    .replace("127.0.0.1:9042", &self.node)
                    .replace("http://127.0.0.1:8080", &self.url)
                    .replace("http://localhost:8080", &self.url)
            };
            after_listen = word == "--listen";
            if word.contains('$') {
                return Err(format!(
                    "{}: `{word}` is not a placeholder this test knows ({PLACEHOLDERS})",
                    command.at()
                ));
            }
            words.push(word);
        }
        Ok(words)
    }

    /// The binary with the sandbox's environment, in `cwd`, where the documents' files are
    /// written first.
    fn command(&self, args: &[String], cwd: &Path) -> Command {
        for (name, content) in documented_files() {
            std::fs::write(cwd.join(name), content).unwrap();
        }
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        std::fs::create_dir_all(cwd.join("examples")).unwrap();
        for entry in std::fs::read_dir(&examples).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), cwd.join("examples").join(entry.file_name())).unwrap();
        }
        let mut command = timebucket_command();
        command
            .args(args)
            .current_dir(cwd)
            .env("TIMEBUCKET_LOG_FORMAT", "json")
            .env("TIMEBUCKET_KEYSPACE", self.keyspace.as_str())
            .env(
                "TIMEBUCKET_MIGRATIONS_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"),
            )
            .env("TIMEBUCKET_LISTEN", "127.0.0.1:0")
            .env("TIMEBUCKET_URL", &self.url)
            .stdin(Stdio::null());
        command
    }
}

/// How a finished command ended.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// Exit 2 with clap's answer to a command that only names a command or sums it up: its
    /// help, or the list of required arguments left out.
    fn is_partial(&self) -> bool {
        self.code == Some(2)
            && (self
                .stderr
                .contains("the following required arguments were not provided")
                || self
                    .stderr
                    .contains("requires a subcommand but one was not provided")
                || (!self.stderr.contains("error:") && self.stderr.contains("Usage:")))
    }
}

/// Whether `outcome` is what the document shows for `command`.
fn judge(command: &DocCommand, outcome: &Outcome) -> Result<(), String> {
    if let Some(expected) = &command.expected_error {
        let first = outcome.stderr.lines().next().unwrap_or_default();
        if outcome.code != Some(0) && first == expected {
            return Ok(());
        }
        return Err(format!(
            "{}: the document shows it failing with `{expected}`; it exited {:?} with:\n{}{}",
            command.at(),
            outcome.code,
            outcome.stdout,
            outcome.stderr
        ));
    }
    if outcome.code == Some(0) || (command.inline && outcome.is_partial()) {
        return Ok(());
    }
    Err(format!(
        "{}: exited {:?}:\n{}{}",
        command.at(),
        outcome.code,
        outcome.stdout,
        outcome.stderr
    ))
}

/// A started command whose output goes to files (no pipe to fill up).
struct Running {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    fn start(mut command: Command, dir: &Path) -> Running {
        let stdout = dir.join("stdout");
        let stderr = dir.join("stderr");
        let child = command
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Running {
            child,
            stdout,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The fields of the first JSON log line whose message is `message`, once logged.
    fn logged(&self, message: &str) -> Option<Value> {
        self.stderr()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .map(|line| line["fields"].clone())
            .find(|fields| fields["message"] == message)
    }

    /// Waits until it exits (killing it after [`COMMAND_TIMEOUT`]).
    fn finish(mut self) -> Outcome {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Outcome {
            code: status.and_then(|s| s.code()),
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: match status {
                Some(_) => self.stderr(),
                None => format!("(killed after {COMMAND_TIMEOUT:?})\n{}", self.stderr()),
            },
        }
    }

    /// Sends SIGTERM, as an operator stopping it would.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Polls until `message` is logged; `Err` with the outcome when the process ends first.
    fn wait_for_log(self, message: &str) -> Result<(Running, Value), Outcome> {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut running = self;
        loop {
            if let Some(fields) = running.logged(message) {
                return Ok((running, fields));
            }
            if running.child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                return Err(running.finish());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `command` to its end in a fresh working directory.
fn run_to_end(sandbox: &Sandbox, command: &DocCommand) -> Result<(), String> {
    let args = sandbox.resolve(command)?;
    let dir = tempfile::tempdir().unwrap();
    let outcome = Running::start(sandbox.command(&args, dir.path()), dir.path()).finish();
    judge(command, &outcome)
}

/// Fails with every message in `failures`, one README line each.
fn assert_no_failures(what: &str, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} README command(s) {what}:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_readme_command_parses_and_has_a_runner() {
    let commands = documented_commands();
    let sandbox = Sandbox {
        node: "127.0.0.1:9042".into(),
        url: "http://127.0.0.1:8080".into(),
        keyspace: "timebucket".parse().unwrap(),
    };
    let mut failures = Vec::new();
    let mut kinds = BTreeSet::new();
    for command in &commands {
        match command.subcommand() {
            Some(
                kind @ ("migrate" | "serve" | "query" | "agent" | "rules" | "quarantine" | "token"
                | "archive" | "rollup" | "store"),
            ) => {
                kinds.insert(kind);
            }
            other => failures.push(format!(
                "{}: the README drift test has no runner for `{}`: add one to tests/it/readme.rs",
                command.at(),
                other.unwrap_or("(no subcommand)")
            )),
        }
        let mut args = match sandbox.resolve(command) {
            Ok(args) => args,
            Err(problem) => {
                failures.push(problem);
                continue;
            }
        };
        args.push("--help".into());
        let dir = tempfile::tempdir().unwrap();
        let outcome = Running::start(sandbox.command(&args, dir.path()), dir.path()).finish();
        if outcome.code != Some(0) {
            failures.push(format!(
                "{}: does not parse:\n{}",
                command.at(),
                outcome.stderr
            ));
        }
    }
    assert_no_failures("do not parse", failures);
    assert_eq!(
        kinds,
        BTreeSet::from([
            "agent",
            "archive",
            "migrate",
            "quarantine",
            "query",
            "rollup",
            "rules",
            "serve",
            "store",
            "token"
        ]),
        "the README should show every subcommand; found {} commands",
        commands.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_migrate_commands_run() {
    let sandbox = Sandbox {
        node: cql_node(),
        url: "http://127.0.0.1:9".into(),
        keyspace: fresh_keyspace(),
    };
    let failures: Vec<String> = commands_of("migrate")
        .iter()
        .filter_map(|command| {
            let args = match sandbox.resolve(command) {
                Ok(args) => args,
                Err(problem) => return Some(problem),
            };
            let dir = tempfile::tempdir().unwrap();
            let mut process = sandbox.command(&args, dir.path());
            process.env("TIMEBUCKET_CQL_NODES", &sandbox.node);
            let outcome = Running::start(process, dir.path()).finish();
            judge(command, &outcome).err()
        })
        .collect();
    assert_no_failures("fail", failures);
}

#[test]
fn readme_rules_commands_run() {
    run_every_offline("rules", "timebucket rules check", |_, _| {});
}

#[test]
fn readme_store_commands_run() {
    // On a fresh data directory: nothing to convert, and the store is created.
    run_every_offline("store", "timebucket store convert", |_, _| {});
}

#[test]
fn readme_token_commands_run() {
    run_every_offline("token", "timebucket token new", |_, _| {});
}

#[test]
fn readme_rollup_commands_run() {
    run_every_offline("rollup", "timebucket rollup rebuild", |_, dir| {
        // The embedded store in the default data directory, as a first `serve` leaves it.
        timebucket::store::embedded::EmbeddedStore::open(&dir.join("data").join("store")).unwrap();
    });
}

#[test]
fn readme_quarantine_commands_run() {
    run_every_offline("quarantine", "timebucket quarantine", |args, dir| {
        // The files the command names, set aside as the flusher would.
        for name in args.iter().filter(|a| a.ends_with(".quarantine")) {
            set_aside_a_batch(&dir.join("data"), name);
        }
    });
}

#[test]
fn readme_archive_commands_run() {
    run_every_offline("archive", "timebucket archive", |args, dir| {
        // The embedded store `serve` would have made in ./data, and for `import` an archive
        // (`--in DIR`) with its manifest.
        drop(timebucket::store::embedded::EmbeddedStore::open(&dir.join("data/store")).unwrap());
        if let Some(at) = args.iter().position(|a| a == "--in") {
            let archive = dir.join(&args[at + 1]);
            std::fs::create_dir_all(&archive).unwrap();
            timebucket::archive::Manifest::new(3600)
                .save(&archive)
                .unwrap();
        }
    });
}

/// Runs every README command of `subcommand` (the README must show at least one, `shown`) to
/// its end, with no server or node to talk to; `prepare` sets up its working directory first.
fn run_every_offline(subcommand: &str, shown: &str, prepare: impl Fn(&[String], &Path)) {
    let sandbox = Sandbox {
        node: "127.0.0.1:9".into(),
        url: "http://127.0.0.1:9".into(),
        keyspace: "timebucket".parse().unwrap(),
    };
    let commands = commands_of(subcommand);
    assert!(!commands.is_empty(), "the README shows `{shown}`");
    let failures: Vec<String> = commands
        .iter()
        .filter_map(|command| {
            let args = match sandbox.resolve(command) {
                Ok(args) => args,
                Err(problem) => return Some(problem),
            };
            let dir = tempfile::tempdir().unwrap();
            prepare(&args, dir.path());
            let outcome = Running::start(sandbox.command(&args, dir.path()), dir.path()).finish();
            judge(command, &outcome).err()
        })
        .collect();
    assert_no_failures("fail", failures);
}

/// A quarantined batch of one reading in `<data_dir>/quarantine/<name>`.
fn set_aside_a_batch(data_dir: &Path, name: &str) {
    use timebucket::ingest::quarantine::{Header, Item, Quarantine, What};
    use timebucket::ingest::record::{encode, Accepted};
    use timebucket::model::{
        HostGauges, HostReading, InstanceName, Reading, ReadingId, ServiceName, TimestampMs,
    };
    use timebucket::wal::{Position, SegmentId};
    let reading = Reading::Host(HostReading {
        id: ReadingId::new(),
        service: ServiceName::parse(SERVICE).unwrap(),
        instance: InstanceName::parse("vm-1").unwrap(),
        timestamp: TimestampMs::now(),
        gauges: HostGauges {
            available: Some(true),
            ..HostGauges::default()
        },
    });
    let quarantine = Quarantine::in_data_dir(data_dir);
    let item = Item {
        header: Header {
            what: What::Batch,
            at: TimestampMs::now().to_rfc3339(),
            wal: "3:24 to 3:300".into(),
            readings: Some(1),
            reason: "the store refused it".into(),
        },
        payload: encode(&Accepted {
            at: TimestampMs::now(),
            readings: vec![reading],
        }),
        position: Position {
            segment: SegmentId(3),
            offset: 24,
        },
    };
    let written = quarantine.put(&item).unwrap();
    std::fs::rename(written, quarantine.dir().join(name)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_serve_commands_run() {
    let sandbox = Sandbox {
        node: cql_node(),
        url: "http://127.0.0.1:9".into(),
        keyspace: migrated_keyspace().await,
    };
    let mut failures = Vec::new();
    for command in commands_of("serve") {
        if let Err(problem) = serve_once(&sandbox, &command).await {
            failures.push(problem);
        }
    }
    assert_no_failures("fail", failures);
}

/// Starts a `serve` command, checks it answers, stops it.
async fn serve_once(sandbox: &Sandbox, command: &DocCommand) -> Result<(), String> {
    let args = sandbox.resolve(command)?;
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(sandbox.command(&args, dir.path()), dir.path());
    let (running, fields) = match running.wait_for_log("listening") {
        Ok(started) => started,
        Err(outcome) => return judge(command, &outcome),
    };
    let address = fields["address"].as_str().unwrap_or_default().to_owned();
    let health = reqwest::get(format!("http://{address}/healthz")).await;
    running.terminate();
    let outcome = running.finish();
    match health {
        Ok(answer) if answer.status().is_success() => {}
        other => {
            return Err(format!(
                "{}: /healthz at {address} answered {other:?}",
                command.at()
            ))
        }
    }
    judge(command, &outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_query_and_agent_commands_run() {
    let app = spawn_app(AppOptions::default()).await;
    let queries = commands_of("query");
    let agents = commands_of("agent");
    let sandbox = Sandbox {
        node: cql_node(),
        url: app.url.clone(),
        keyspace: app.keyspace.clone(),
    };
    let mut services = BTreeSet::from([SERVICE.to_owned()]);
    for command in queries.iter().chain(&agents) {
        let args = sandbox.resolve(command).unwrap_or_default();
        if let Some(at) = args.iter().position(|a| a == "--service") {
            services.extend(args.get(at + 1).cloned());
        }
    }
    seed(&app.url, &services).await;

    let mut failures = Vec::new();
    for command in &queries {
        if let Err(problem) = run_to_end(&sandbox, command) {
            failures.push(problem);
        }
    }
    for command in &agents {
        if let Err(problem) = agent_once(&sandbox, command) {
            failures.push(problem);
        }
    }
    assert_no_failures("fail", failures);
}

/// One API and one host reading of each service, a minute old, stored before queries run.
async fn seed(url: &str, services: &BTreeSet<String>) {
    let client = reqwest::Client::new();
    let at = timebucket::model::TimestampMs::now().millis() - 60_000;
    let body = json!({
        "api": services.iter().map(|s| json!({
            "service": s, "instance": format!("{s}-1"), "method": "GET", "path": "/cart",
            "code": 200, "duration_ms": 12.5, "timestamp": at,
        })).collect::<Vec<_>>(),
        "host": services.iter().map(|s| json!({
            "service": s, "instance": format!("{s}-1"), "cpu_percent": 37.5,
            "available": true, "timestamp": at,
        })).collect::<Vec<_>>(),
    });
    let answer = client
        .post(format!("{url}/v1/metrics"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    for service in services {
        loop {
            let latest: Value = client
                .get(format!("{url}/v1/latest?service={service}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let stored = |kind: &str| latest[kind].as_array().is_some_and(|a| !a.is_empty());
            if stored("api") && stored("host") {
                break;
            }
            assert!(Instant::now() < deadline, "{service} not stored: {latest}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Starts an `agent` command, lets it push, stops it: it must have delivered.
fn agent_once(sandbox: &Sandbox, command: &DocCommand) -> Result<(), String> {
    let args = sandbox.resolve(command)?;
    let dir = tempfile::tempdir().unwrap();
    // `--disk ./data` and the like: the path the README points at exists.
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let running = Running::start(sandbox.command(&args, dir.path()), dir.path());
    let running = match running.wait_for_log("agent started") {
        Ok((running, _)) => running,
        Err(outcome) => return judge(command, &outcome),
    };
    // The first sample is taken shortly after the start, and pushed at once.
    std::thread::sleep(Duration::from_millis(1500));
    running.terminate();
    let outcome = running.finish();
    judge(command, &outcome)?;
    let stopped = outcome
        .stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|line| line["fields"].clone())
        .find(|fields| fields["message"] == "agent stopped");
    match stopped {
        Some(fields) if fields["delivered"].as_u64() >= Some(1) => Ok(()),
        other => Err(format!(
            "{}: delivered nothing to {} ({other:?}):\n{}",
            command.at(),
            sandbox.url,
            outcome.stderr
        )),
    }
}
