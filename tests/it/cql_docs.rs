//! Every query file in `cql/` runs against a migrated keyspace, so the documentation cannot rot.

use std::path::Path;

use crate::support::{migrated_keyspace, session};

#[tokio::test]
async fn every_documented_query_runs() {
    let session = session().await;
    let keyspace = migrated_keyspace().await;
    session
        .use_keyspace(keyspace.as_str(), false)
        .await
        .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cql");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("cql") {
            continue;
        }
        let text: String = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        for statement in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            session
                .query_unpaged(statement, ())
                .await
                .unwrap_or_else(|e| panic!("{}: {e}\n{statement}", path.display()));
            ran += 1;
        }
    }
    assert!(
        ran >= 4,
        "only {ran} documented queries found in {}",
        dir.display()
    );
}
