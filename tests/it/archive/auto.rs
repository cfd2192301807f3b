//! Automatic archiving (`serve --archive-dir`), on both stores: every complete bucket is exported
//! once, a failure is retried until it passes, `/metrics` counts both; and the embedded store's
//! retention keeps what is not archived yet.

use std::time::Duration;

use timebucket::archive::auto::ArchiveConfig;
use timebucket::model::{ApiReading, HostReading, Reading, TimestampMs};
use timebucket::server::ServeConfig;
use timebucket::store::cql::CqlStore;
use timebucket::store::embedded::EmbeddedStore;
use timebucket::store::{RetentionHold, SeriesSeen, Store, WriteBatch};

use super::{manifest, seed, snapshot, t0, tempdir, write_all, HOUR, HOURS};
use crate::support::{cql_node, embedded_config, migrated_keyspace, serve_config, spawn_with};

#[tokio::test]
async fn serve_archives_every_complete_bucket_retrying_failures_and_counts_them() {
    let data = tempdir();
    let store = EmbeddedStore::open(&data.path().join("store")).unwrap();
    write_all(&store, seed(600, 4)).await;
    let stored = snapshot(&store).await;
    drop(store);
    let config = embedded_config(data.path());
    archives_every_complete_bucket(config, data, stored).await;
}

#[tokio::test]
async fn serve_on_cql_archives_every_complete_bucket_retrying_failures_and_counts_them() {
    let node = cql_node();
    let keyspace = migrated_keyspace().await;
    let store = CqlStore::open(std::slice::from_ref(&node), &keyspace)
        .await
        .unwrap();
    write_all(&store, seed(300, 6)).await;
    let stored = snapshot(&store).await;
    let data = tempdir();
    let config = serve_config(vec![node], keyspace, data.path());
    archives_every_complete_bucket(config, data, stored).await;
}

/// Serves `config` (over a store holding `stored`) with archiving into a fresh directory that
/// fails at first, and waits until every complete bucket is archived.
async fn archives_every_complete_bucket(
    config: ServeConfig,
    data: tempfile::TempDir,
    (api, host): (Vec<ApiReading>, Vec<HostReading>),
) {
    let out = tempdir();
    // A file where the archive needs its `api` directory: every bucket fails until it goes.
    let blocker = out.path().join("api");
    std::fs::write(&blocker, b"in the way").unwrap();
    let config = ServeConfig {
        archive: Some(ArchiveConfig {
            grace: Duration::from_secs(1),
            retry_initial: Duration::from_millis(50),
            retry_max: Duration::from_millis(200),
            poll: Duration::from_millis(50),
            ..ArchiveConfig::in_dir(out.path().to_path_buf())
        }),
        ..config
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = spawn_with(config, data, listener).await;
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let url = format!("{}/metrics", app.url);
    let scrape = || async { reqwest::get(&url).await.unwrap().text().await.unwrap() };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while metric(&scrape().await, "timebucket_archive_failures_total") < 2.0 {
        assert!(std::time::Instant::now() < deadline, "no failure counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(timebucket::archive::Manifest::load(out.path())
        .unwrap()
        .is_none_or(|m| m.archived_until.is_none()));
    std::fs::remove_file(&blocker).unwrap();

    // Every bucket that ended more than the grace ago, from the oldest the retention keeps.
    let current_bucket = TimestampMs::now().millis() / HOUR * HOUR;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let archived = loop {
        let archived = timebucket::archive::Manifest::load(out.path())
            .unwrap()
            .and_then(|m| m.archived_until);
        if archived.is_some_and(|until| until * 1000 >= current_bucket) {
            break archived.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "archived until {archived:?}, not yet {current_bucket}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        archived * 1000 <= TimestampMs::now().millis(),
        "a bucket not yet complete"
    );
    let manifest = manifest(out.path());
    let rows: u64 = manifest.files.iter().map(|f| f.rows).sum();
    assert_eq!(rows as usize, api.len() + host.len());
    assert!(manifest
        .files
        .iter()
        .all(|f| f.bucket * 1000 >= t0() && f.bucket * 1000 < t0() + HOURS * HOUR));

    let metrics = scrape().await;
    let files = metric(&metrics, "timebucket_archive_files_total");
    assert_eq!(files as usize, manifest.files.len());
    assert!(metric(&metrics, "timebucket_archive_failures_total") >= 2.0);
    assert_eq!(metric(&metrics, "timebucket_archive_lag_seconds"), 0.0);
    assert!(metric(&metrics, "timebucket_archive_expiry_margin_seconds") > 6.0 * 86_400.0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn retention_keeps_the_windows_the_archive_has_not_exported() {
    let data = tempdir();
    let dir = data.path().join("store");
    let day = 24 * HOUR;
    let now = TimestampMs::now();
    // At the start of a day, so the hour of old readings lies in one window (windows are
    // whole divisions of a day) whatever the time of day the test runs.
    let old = (now.millis() - 6 * day).div_euclid(day) * day;
    // A hold where the archive stands: before the old readings.
    let hold = RetentionHold::until(TimestampMs::from_millis(old - day));
    let store = EmbeddedStore::open_held(&dir, Default::default(), hold.clone()).unwrap();
    let readings: Vec<Reading> = seed(50, 5)
        .into_iter()
        .map(|r| match r {
            Reading::Api(mut r) => {
                r.timestamp = TimestampMs::from_millis(old + r.timestamp.millis() % HOUR);
                Reading::Api(r)
            }
            other => other,
        })
        .collect();
    let batch = WriteBatch::build(readings, store.settings(), &SeriesSeen::new(0));
    store.write(&batch).await.unwrap();

    // Two days later the old window is past the 7-day retention, but not archived: kept.
    let later = TimestampMs::from_millis(now.millis() + 2 * day);
    assert_eq!(store.drop_expired_windows(later).unwrap(), 0);
    // Once the archive has moved past it, it goes.
    hold.release_until(later);
    assert_eq!(store.drop_expired_windows(later).unwrap(), 1);
}
