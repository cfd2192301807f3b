//! What the running service does by itself to keep the embedded store small (issue 10, item 18):
//! it moves readings out of fjall's journal into compressed tables, and its rollup compactor
//! merges the partials of closed slots, without any call from outside.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use timebucket::model::TimestampMs;

use crate::support::{embedded_config, metric, seed, spawn_with};

const MINUTE: i64 = 60_000;
const WAIT: Duration = Duration::from_secs(60);

fn reading(i: usize, at: i64) -> Value {
    json!({"service": "upkeep", "instance": format!("i-{}", i % 7), "method": "GET",
           "path": format!("/p/{}", i % 13), "code": 200, "duration_ms": (i % 500) as f64,
           "count": 1, "timestamp": at})
}

/// The requests of every point of `/v1/stats` by path over the three minutes from `base`, read
/// from `source`.
async fn request_counts(url: &str, base: i64, source: &str) -> Vec<u64> {
    let from = TimestampMs::from_millis(base).to_rfc3339();
    let to = TimestampMs::from_millis(base + 3 * MINUTE - 1).to_rfc3339();
    let answer: Value = reqwest::Client::new()
        .get(format!("{url}/v1/stats"))
        .query(&[
            ("service", "upkeep"),
            ("from", from.as_str()),
            ("to", to.as_str()),
            ("step", "1m"),
            ("group_by", "path"),
            ("source", source),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["points"].as_array().unwrap())
        .map(|p| p["count"].as_u64().unwrap())
        .collect()
}

fn bytes_under(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => bytes_under(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Readings go to block files; fjall keeps the small rows, and the largest of those are the
/// rollup partials. 160 000 readings of 1 000 series spread over six hours make about 115 000
/// partial rows (~15 MB): with fjall's default 64 MiB memtables they all stayed in its
/// uncompressed journal and no table was ever written; capped memtables move them to tables.
#[tokio::test]
async fn the_running_service_moves_rows_from_the_journal_into_tables() {
    let data_dir = tempfile::tempdir().unwrap();
    let store_dir = data_dir.path().join("store");
    let config = embedded_config(data_dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = spawn_with(config, data_dir, listener).await;
    let six_hours_ago = TimestampMs::now().millis() - 360 * MINUTE;
    let readings: Vec<Value> = (0..160_000)
        .map(|i| {
            json!({"service": "upkeep", "instance": format!("i-{}", i % 10), "method": "GET",
                   "path": format!("/p/{}", (i / 10) % 100), "code": 200,
                   "duration_ms": (i % 500) as f64, "count": 1,
                   "timestamp": six_hours_ago + i as i64 * 135})
        })
        .collect();
    seed(&app, readings, Vec::new()).await;
    let tables = bytes_under(&store_dir.join("keyspaces"));
    let blocks = bytes_under(&store_dir.join("blocks"));
    assert!(
        tables > 1 << 20,
        "tables hold {tables} bytes (blocks {blocks}) after 160 000 readings in 115 000 rollup \
         cells"
    );
    assert!(blocks > 160_000, "the readings' blocks hold {blocks} bytes");
    app.stop().await.unwrap();
}

/// Partials of several pieces (the flusher catches up between posts, which ends a piece) in
/// minutes that closed 20 minutes ago: the compactor, run every 200 ms, merges them, and
/// `/v1/stats` from rollups still counts what raw readings count.
#[tokio::test]
async fn the_running_service_compacts_rollups_on_its_own() {
    let data_dir = tempfile::tempdir().unwrap();
    let config = timebucket::server::ServeConfig {
        rollup_compaction_interval: Duration::from_millis(200),
        ..embedded_config(data_dir.path())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = spawn_with(config, data_dir, listener).await;
    let base = TimestampMs::now().millis().div_euclid(MINUTE) * MINUTE - 25 * MINUTE;
    for piece in 0..3 {
        let readings: Vec<Value> = (0..300)
            .map(|i| reading(i, base + (i as i64 % 3) * MINUTE + piece * 1_000))
            .collect();
        seed(&app, readings, Vec::new()).await;
    }
    let deadline = Instant::now() + WAIT;
    let compacted = loop {
        let rows = metric(&app.url, "timebucket_rollup_compacted_rows_total").await;
        if let Some(rows) = rows.filter(|&r| r > 0.0) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "the compactor merged nothing: {:?} runs",
            metric(&app.url, "timebucket_rollup_compactions_total").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let deleted = metric(&app.url, "timebucket_rollup_deleted_rows_total")
        .await
        .unwrap();
    assert!(
        deleted > compacted,
        "{compacted} rows written, {deleted} deleted"
    );
    let raw = request_counts(&app.url, base, "raw").await;
    assert_eq!(raw.iter().sum::<u64>(), 900);
    assert_eq!(request_counts(&app.url, base, "rollup").await, raw);
    app.stop().await.unwrap();
}
