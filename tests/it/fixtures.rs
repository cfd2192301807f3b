//! The fixtures themselves: a test's keyspace is gone once the test is over.

use crate::support::{migrated_keyspace, session};

async fn keyspace_exists(name: &str) -> bool {
    session()
        .await
        .query_unpaged(
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (name,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows_num()
        > 0
}

#[tokio::test]
async fn a_test_keyspace_is_dropped_when_its_test_ends() {
    // A test stands for another: its own thread and runtime, as libtest gives each test.
    let keyspace = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let keyspace = runtime.block_on(migrated_keyspace());
        let existed = runtime.block_on(keyspace_exists(keyspace.as_str()));
        assert!(existed, "{keyspace} was not created");
        keyspace
    })
    .join()
    .unwrap();
    assert!(
        !keyspace_exists(keyspace.as_str()).await,
        "{keyspace} outlived its test"
    );
}
