//! Deployment settings on `serve`: recorded by the embedded store's first start, checked against
//! what is recorded afterwards and against a CQL keyspace's settings.

use std::time::Duration;

use timebucket::migrate::SettingsRequest;
use timebucket::server::{ServeConfig, ServeError};
use timebucket::store::embedded::EmbeddedStore;
use timebucket::store::Store;

use crate::support::{cql_node, fresh_keyspace, migrated_keyspace, serve_config};

/// Runs the service until it is up (or fails to start), then stops it.
async fn start_and_stop(config: ServeConfig) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/healthz", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(timebucket::server::run(config, listener, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if task.is_finished() {
            return task.await.unwrap();
        }
        if client.get(&url).send().await.is_ok() {
            let _ = stop.send(());
            return task.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the service neither started nor failed within 5 s");
}

fn embedded(dir: &std::path::Path, settings: SettingsRequest) -> ServeConfig {
    ServeConfig {
        settings,
        ..serve_config(Vec::new(), fresh_keyspace(), dir)
    }
}

#[tokio::test]
async fn the_embedded_store_records_the_first_settings_and_refuses_other_ones() {
    let dir = tempfile::tempdir().unwrap();
    let first = SettingsRequest {
        bucket_width_seconds: Some(1800),
        shards: Some(2),
        compaction_window_seconds: Some(4 * 3600),
        ..Default::default()
    };
    start_and_stop(embedded(dir.path(), first)).await.unwrap();
    let recorded = *EmbeddedStore::open(&dir.path().join("store"))
        .unwrap()
        .settings();
    assert_eq!(recorded.bucket_width.seconds(), 1800);
    assert_eq!(recorded.shards.get(), 2);
    assert_eq!(recorded.compaction_window_seconds, 4 * 3600);

    let other = SettingsRequest {
        shards: Some(8),
        ..Default::default()
    };
    let refused = start_and_stop(embedded(dir.path(), other))
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("shard_count is recorded as 2")
            && message.contains("embedded store")
            && message.contains("asked for 8"),
        "{message}"
    );

    // Leaving the flags out, or repeating the recorded values, starts the same store.
    start_and_stop(embedded(dir.path(), SettingsRequest::default()))
        .await
        .unwrap();
    start_and_stop(embedded(dir.path(), first)).await.unwrap();
}

#[tokio::test]
async fn invalid_settings_are_refused_before_anything_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let invalid = SettingsRequest {
        bucket_width_seconds: Some(3600),
        compaction_window_seconds: Some(5400),
        ..Default::default()
    };
    let refused = start_and_stop(embedded(dir.path(), invalid))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("invalid settings"),
        "{refused}"
    );
    start_and_stop(embedded(dir.path(), SettingsRequest::default()))
        .await
        .unwrap();
}

#[tokio::test]
async fn serving_a_keyspace_with_other_settings_is_refused() {
    let keyspace = migrated_keyspace().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ServeConfig {
        settings: SettingsRequest {
            shards: Some(8),
            ..Default::default()
        },
        ..serve_config(vec![cql_node()], keyspace.clone(), dir.path())
    };
    let message = start_and_stop(config).await.unwrap_err().to_string();
    assert!(
        message.contains(&format!("keyspace {keyspace}"))
            && message.contains("shard_count is recorded as 4")
            && message.contains("migrate up"),
        "{message}"
    );
}
