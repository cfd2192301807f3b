//! Every query file in `cql/` runs in `cqlsh`, as the documentation tells a user to type it, against
//! a migrated keyspace, so the documentation cannot rot.
//!
//! `scripts/cassandra cql` is the real cqlsh (installed by the script into `.cassandra/cqlsh` at
//! first use), pointed at the node under test.

use std::path::Path;
use std::process::Command;

use crate::support::{cql_node, migrated_keyspace};

#[tokio::test]
async fn every_documented_query_runs() {
    let keyspace = migrated_keyspace().await;
    let node = cql_node();
    let (host, port) = node
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("TIMEBUCKET_TEST_CQL={node} is not host:port"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(root.join("cql"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().and_then(|e| e.to_str()) == Some("cql"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "only {} query files in cql/", files.len());
    for path in files {
        let output = Command::new(root.join("scripts/cassandra"))
            .args(["cql", "-k", keyspace.as_str(), "-f"])
            .arg(&path)
            .env("CASSANDRA_HOST", host)
            .env("CASSANDRA_PORT", port)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cqlsh -f {}: {}\n{}{}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
