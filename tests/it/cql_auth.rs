//! A CQL node with `PasswordAuthenticator`: `migrate` and `serve` get in with `--cql-username`
//! and `--cql-password-file`, and nothing gets in without them; over TLS (`--cql-tls`,
//! `--cql-ca-file`) they get in only when the node's certificate chains to a CA they trust.
//!
//! The shared development node runs without authentication (and must stay as it is), so these
//! tests need a node of their own: `scripts/cql-auth-test` starts a throwaway one (superuser
//! `cassandra` / `cassandra`; its CQL port takes plain text and TLS, with a certificate for
//! 127.0.0.1 signed by a CA of its own), sets `TIMEBUCKET_TEST_CQL_AUTH` and
//! `TIMEBUCKET_TEST_CQL_TLS_CA` (that CA's PEM) and runs them; `scripts/test` skips them unless
//! `TIMEBUCKET_TEST_CQL_AUTH` is set.

mod tls;

use std::time::Duration;

use serde_json::json;
use timebucket::store::cql::security::Credentials;
use timebucket::store::cql::{self, CqlSecurity};

use crate::support::{serve_config, spawn_with, timebucket_command};

/// The node with `PasswordAuthenticator`; a missing one fails the test saying how to start it.
fn auth_node() -> String {
    std::env::var("TIMEBUCKET_TEST_CQL_AUTH").unwrap_or_else(|_| {
        panic!(
            "TIMEBUCKET_TEST_CQL_AUTH is not set: these tests need a CQL node with \
             PasswordAuthenticator. Run scripts/cql-auth-test (it starts a throwaway node and \
             runs them)"
        )
    })
}

/// A password file holding `password`, and the security settings of user `cassandra` with it.
fn login(dir: &std::path::Path, password: &str) -> (std::path::PathBuf, CqlSecurity) {
    let file = dir.join("cql-password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    let credentials = Credentials::from_file("cassandra".into(), &file).unwrap();
    let security = CqlSecurity {
        credentials: Some(credentials),
        tls: None,
    };
    (file, security)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_serve_log_in_and_nothing_gets_in_without_the_password() {
    let node = auth_node();
    let nodes = [node.clone()];
    let dir = tempfile::tempdir().unwrap();
    let (password_file, security) = login(dir.path(), "cassandra");
    let elsewhere = dir.path().join("wrong");
    std::fs::create_dir(&elsewhere).unwrap();
    let (_, wrong) = login(&elsewhere, "not-the-password");

    let refused = cql::connect(&nodes).await.unwrap_err().to_string();
    assert!(refused.to_lowercase().contains("auth"), "{refused}");
    let refused = cql::connect_as(&nodes, &wrong)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.to_lowercase().contains("auth"), "{refused}");
    let session = cql::connect_as(&nodes, &security).await.unwrap();

    let keyspace = format!(
        "tb_auth_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let migrate = |with_password: bool| {
        let mut command = timebucket_command();
        command.args([
            "migrate",
            "up",
            "--cql-nodes",
            &node,
            "--keyspace",
            &keyspace,
        ]);
        command.env(
            "TIMEBUCKET_MIGRATIONS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
        );
        if with_password {
            command.args(["--cql-username", "cassandra", "--cql-password-file"]);
            command.arg(&password_file);
        }
        command.output().unwrap()
    };
    let without = migrate(false);
    assert_eq!(without.status.code(), Some(1));
    let said = String::from_utf8_lossy(&without.stderr).to_lowercase();
    assert!(said.contains("auth"), "{said}");
    let with = migrate(true);
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );

    let mut config = serve_config(nodes.to_vec(), keyspace.parse().unwrap(), dir.path());
    config.cql = security;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = spawn_with(config, tempfile::tempdir().unwrap(), listener).await;
    let client = reqwest::Client::new();
    let body = json!({"host": [{"service": "authed", "instance": "i-1", "available": true}]});
    let posted = client
        .post(format!("{}/v1/metrics", app.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let latest = client
            .get(format!("{}/v1/latest?service=authed", app.url))
            .send()
            .await
            .unwrap();
        if latest.status() == 200 {
            let text = latest.text().await.unwrap();
            if text.contains("\"authed\"") {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never stored through the login"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await.unwrap();
    session
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
        .await
        .unwrap();
}
