//! `migrate up` / `migrate status` against the real node.

use std::process::Command;

use scylla::client::session::Session;
use timebucket::migrate::{self, MigrateError, MigrationState, SettingsRequest};
use timebucket::model::Settings;
use timebucket::store::cql::{settings as stored_settings, Keyspace};

use crate::support::{
    cql_node, fresh_keyspace, migrated_keyspace, migrations_dir, session, up_options,
};

fn states(rows: &[migrate::MigrationStatus]) -> Vec<(i32, MigrationState)> {
    rows.iter().map(|r| (r.version, r.state.clone())).collect()
}

#[tokio::test]
async fn up_applies_everything_once_and_status_follows() {
    let session = session().await;
    let keyspace = fresh_keyspace();
    let migrations = migrate::source::load_dir(&migrations_dir()).unwrap();

    let before = migrate::status(&session, &keyspace, &migrations)
        .await
        .unwrap();
    assert!(before.iter().all(|r| r.state == MigrationState::Pending));
    assert_eq!(before.len(), migrations.len());

    let first = migrate::up(&session, &migrations, &up_options(&keyspace))
        .await
        .unwrap();
    let versions: Vec<i32> = first.applied.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        versions,
        migrations.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    assert_eq!(first.settings, Settings::default());

    let after = migrate::status(&session, &keyspace, &migrations)
        .await
        .unwrap();
    assert!(after
        .iter()
        .all(|r| r.state == MigrationState::Applied && r.applied_at.is_some()));

    let second = migrate::up(&session, &migrations, &up_options(&keyspace))
        .await
        .unwrap();
    assert!(
        second.applied.is_empty(),
        "a second up changed something: {:?}",
        second.applied
    );
    assert_eq!(
        stored_settings::load(&session, &keyspace).await.unwrap(),
        Settings::default()
    );
}

#[tokio::test]
async fn concurrent_ups_both_succeed_and_apply_each_migration_once() {
    let keyspace = fresh_keyspace();
    let migrations = migrate::source::load_dir(&migrations_dir()).unwrap();
    let (a, b) = (session().await, session().await);
    let options = up_options(&keyspace);
    let (first, second) = tokio::join!(
        migrate::up(&a, &migrations, &options),
        migrate::up(&b, &migrations, &options)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    let mut all: Vec<i32> = first
        .applied
        .iter()
        .chain(&second.applied)
        .map(|(v, _)| *v)
        .collect();
    all.sort();
    assert_eq!(
        all,
        migrations.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    let rows = migrate::status(&a, &keyspace, &migrations).await.unwrap();
    assert!(rows.iter().all(|r| r.state == MigrationState::Applied));
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused() {
    let session = session().await;
    let keyspace = fresh_keyspace();
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(migrations_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let migrations = migrate::source::load_dir(dir.path()).unwrap();
    migrate::up(&session, &migrations, &up_options(&keyspace))
        .await
        .unwrap();

    let first = &migrations[0];
    let file = dir
        .path()
        .join(format!("{:04}_{}.cql", first.version, first.name));
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\n-- an innocent-looking edit\n");
    std::fs::write(&file, text).unwrap();
    let edited = migrate::source::load_dir(dir.path()).unwrap();

    let error = migrate::up(&session, &edited, &up_options(&keyspace))
        .await
        .unwrap_err();
    assert!(
        matches!(error, MigrateError::Edited { version, .. } if version == first.version),
        "{error}"
    );
    let rows = migrate::status(&session, &keyspace, &edited).await.unwrap();
    assert_eq!(states(&rows)[0], (first.version, MigrationState::Edited));
}

#[tokio::test]
async fn recorded_settings_cannot_change() {
    let session = session().await;
    let keyspace = fresh_keyspace();
    let migrations = migrate::source::load_dir(&migrations_dir()).unwrap();
    let mut options = up_options(&keyspace);
    options.settings = SettingsRequest {
        bucket_width_seconds: Some(1800),
        shards: Some(2),
        ..Default::default()
    };
    let report = migrate::up(&session, &migrations, &options).await.unwrap();
    assert_eq!(report.settings.bucket_width.seconds(), 1800);
    assert_eq!(report.settings.shards.get(), 2);

    options.settings.shards = Some(8);
    let error = migrate::up(&session, &migrations, &options)
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        MigrateError::SettingsConflict {
            name: "shard_count",
            recorded: 2,
            requested: 8
        }
    ));

    let loaded = stored_settings::load(&session, &keyspace).await.unwrap();
    assert_eq!(loaded.bucket_width.seconds(), 1800);
}

async fn table_options(
    session: &Session,
    keyspace: &Keyspace,
    table: &str,
) -> (
    std::collections::HashMap<String, String>,
    i32,
    std::collections::HashMap<String, String>,
) {
    let result = session
        .query_unpaged(
            "SELECT compaction, default_time_to_live, compression FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
            (keyspace.as_str(), table),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    result.single_row().unwrap()
}

async fn partition_key(session: &Session, keyspace: &Keyspace, table: &str) -> Vec<String> {
    let result = session
        .query_unpaged(
            "SELECT column_name, kind, position FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?",
            (keyspace.as_str(), table),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let mut keys: Vec<(i32, String)> = result
        .rows::<(String, String, i32)>()
        .unwrap()
        .map(Result::unwrap)
        .filter(|(_, kind, _)| kind == "partition_key")
        .map(|(name, _, position)| (position, name))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, name)| name).collect()
}

#[tokio::test]
async fn the_schema_has_the_intended_keys_compaction_and_ttl() {
    let session = session().await;
    let keyspace = migrated_keyspace().await;
    let settings = Settings::default();
    for table in ["metric_readings", "host_readings", "series_by_bucket"] {
        let (compaction, ttl, compression) = table_options(&session, &keyspace, table).await;
        assert!(
            compaction["class"].ends_with("TimeWindowCompactionStrategy"),
            "{table}: {compaction:?}"
        );
        assert_eq!(compaction["compaction_window_unit"], "HOURS");
        assert_eq!(
            compaction["compaction_window_size"],
            settings.compaction_window_hours().to_string()
        );
        assert_eq!(ttl as u32, settings.ttl_seconds, "{table}");
        assert!(
            compression.values().any(|v| v.contains("LZ4")),
            "{table}: compression {compression:?}"
        );
    }
    for table in ["latest_api_readings", "latest_host_readings"] {
        let (compaction, _, _) = table_options(&session, &keyspace, table).await;
        assert!(
            compaction["class"].ends_with("LeveledCompactionStrategy"),
            "{table}: {compaction:?}"
        );
        assert_eq!(partition_key(&session, &keyspace, table).await, ["shard"]);
    }
    for table in ["metric_readings", "host_readings"] {
        assert_eq!(
            partition_key(&session, &keyspace, table).await,
            ["service_name", "time_bucket", "seq"]
        );
    }
    assert_eq!(
        partition_key(&session, &keyspace, "series_by_bucket").await,
        ["service_name", "time_bucket"]
    );
}

#[tokio::test]
async fn the_classic_query_of_the_contract_runs() {
    let session = session().await;
    let keyspace = migrated_keyspace().await;
    session
        .use_keyspace(keyspace.as_str(), false)
        .await
        .unwrap();
    let insert = session
        .prepare(
            "INSERT INTO metric_readings (service_name, time_bucket, seq, timestamp, reading_id, instance, method, path, code, duration_ms, count) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .await
        .unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2014-09-27T18:30:00Z")
        .unwrap()
        .to_utc();
    let id = uuid::Uuid::new_v4();
    session
        .execute_unpaged(
            &insert,
            (
                "checkout",
                1_411_840_800i64,
                0i32,
                at,
                id,
                "i-1",
                "GET",
                "/cart",
                200i32,
                12.5f64,
                1i32,
            ),
        )
        .await
        .unwrap();
    let rows = session
        .query_unpaged(
            "SELECT reading_id FROM metric_readings \
             WHERE service_name = 'checkout' AND time_bucket IN (1411840800, 1411844400) AND seq IN (0) \
             AND timestamp >= '2014-09-27T18:15:00Z' AND timestamp <= '2014-09-27T19:15:00Z'",
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let ids: Vec<uuid::Uuid> = rows
        .rows::<(uuid::Uuid,)>()
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(ids, [id]);
}

/// Runs the real binary; returns (exit success, stderr).
fn timebucket(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_timebucket"))
        .args(args)
        .env_remove("TIMEBUCKET_CQL_NODES")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_one_line_error(args: &[&str], expected: &str) {
    let (ok, stderr) = timebucket(args);
    assert!(!ok, "{args:?} succeeded");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
    assert!(errors[0].contains(expected), "{args:?}: {stderr}");
}

#[test]
fn bad_input_gives_a_one_line_error_and_a_failure_exit() {
    let node = cql_node();
    let migrations = migrations_dir();
    let migrations = migrations.to_str().unwrap();
    assert_one_line_error(
        &[
            "migrate",
            "--cql-nodes",
            "127.0.0.1:1",
            "--migrations-dir",
            migrations,
            "status",
        ],
        "connecting to the CQL cluster at 127.0.0.1:1: the store is unavailable",
    );
    assert_one_line_error(
        &[
            "migrate",
            "--cql-nodes",
            &node,
            "--migrations-dir",
            migrations,
            "up",
            "--replication",
            "SimpleStrategy:zero",
        ],
        "replication factor 'zero'",
    );
    assert_one_line_error(
        &[
            "migrate",
            "--cql-nodes",
            &node,
            "--migrations-dir",
            "/nonexistent/migrations",
            "up",
        ],
        "cannot read migrations from /nonexistent/migrations",
    );
    assert_one_line_error(
        &["migrate", "--migrations-dir", migrations, "status"],
        "needs a CQL cluster",
    );
    assert_one_line_error(
        &[
            "migrate",
            "--cql-nodes",
            &node,
            "--keyspace",
            "Bad-Name",
            "status",
        ],
        "keyspace 'Bad-Name'",
    );
}

#[test]
fn the_binary_migrates_and_reports_status() {
    let node = cql_node();
    let keyspace = fresh_keyspace();
    let migrations = migrations_dir();
    let run = |action: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_timebucket"))
            .args([
                "migrate",
                "--cql-nodes",
                &node,
                "--keyspace",
                keyspace.as_str(),
            ])
            .args(["--migrations-dir", migrations.to_str().unwrap(), action])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(run("status").contains("pending"));
    assert!(run("up").contains("applied 0001_readings"));
    let status = run("status");
    assert!(
        status.contains("applied") && !status.contains("pending"),
        "{status}"
    );
    assert!(run("up").contains("up to date"));
}
