//! The alert store's contract, one suite run against both implementations: the CQL tables of
//! migration 0002 and the state files beside the embedded store.

use std::sync::Arc;
use std::time::Duration;

use scylla::statement::Consistency;
use timebucket::store::alerting::AlertStore;
use timebucket::store::cql::alerting::CqlAlertStore;
use timebucket::store::cql::{CqlStore, SessionConfig};
use timebucket::store::embedded::alerting::FileAlertStore;
use uuid::Uuid;

use crate::support::{cql_node, migrated_keyspace, session};

async fn conformance<A: AlertStore>(store: A) {
    // Group state: absent, saved, replaced whole, deleted; groups are independent.
    assert_eq!(store.load_group("api").await.unwrap(), None);
    store.save_group("api", b"{\"v\":1}").await.unwrap();
    store.save_group("hosts", b"other").await.unwrap();
    store.save_group("api", b"{\"v\":2}").await.unwrap();
    assert_eq!(
        store.load_group("api").await.unwrap().as_deref(),
        Some(&b"{\"v\":2}"[..])
    );
    assert_eq!(
        store.load_group("hosts").await.unwrap().as_deref(),
        Some(&b"other"[..])
    );
    store.delete_group("api").await.unwrap();
    store.delete_group("never-there").await.unwrap();
    assert_eq!(store.load_group("api").await.unwrap(), None);
    let odd = "groupe «spéciale» / ../x";
    store.save_group(odd, b"ok").await.unwrap();
    assert_eq!(
        store.load_group(odd).await.unwrap().as_deref(),
        Some(&b"ok"[..])
    );

    // The lease: one holder; only it renews; released, another takes it; unrenewed, it lapses.
    // Two seconds, not one: CQL counts a TTL from the start of the current second, so a
    // one-second lease can lapse a few milliseconds after it was taken, before its renewal.
    let ttl = Duration::from_secs(2);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    assert!(store.acquire_lease(a, ttl).await.unwrap());
    assert!(!store.acquire_lease(b, ttl).await.unwrap());
    assert!(store.renew_lease(a, ttl).await.unwrap());
    assert!(!store.renew_lease(b, ttl).await.unwrap());
    store.release_lease(b).await.unwrap();
    assert!(
        !store.acquire_lease(b, ttl).await.unwrap(),
        "released by one that did not hold it"
    );
    store.release_lease(a).await.unwrap();
    assert!(store.acquire_lease(b, ttl).await.unwrap());
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    assert!(!store.renew_lease(b, ttl).await.unwrap(), "lapsed");
    assert!(store
        .acquire_lease(a, Duration::from_secs(30))
        .await
        .unwrap());
    store.release_lease(a).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cql_alert_store_keeps_the_contract() {
    let keyspace = migrated_keyspace().await;
    let store = CqlAlertStore::open(Arc::new(session().await), &keyspace)
        .await
        .unwrap();
    conformance(store).await;
}

/// As `serve` opens it: on the readings store's session, saving with its write profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cql_alert_store_on_the_readings_session_keeps_the_contract() {
    let keyspace = migrated_keyspace().await;
    let config = SessionConfig {
        write_consistency: Consistency::All,
        read_consistency: Consistency::One,
    };
    let readings = CqlStore::open_with(&[cql_node()], &keyspace, &config)
        .await
        .unwrap();
    let store = CqlAlertStore::open(readings.session().clone(), &keyspace)
        .await
        .unwrap()
        .with_write_profile(readings.write_profile().clone());
    conformance(store).await;
}

#[tokio::test]
async fn the_file_alert_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    conformance(FileAlertStore::new(dir.path().join("alerting"))).await;
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("alerting"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
