//! Readers nobody here wrote: pyarrow reads every file of an export (rows, column types, the
//! Hive partitions), and DuckDB SQL over the archive gives, per bucket and path, the request
//! count of `/v1/stats` exactly and its p99 within the documented ±1%.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use timebucket::archive::open::{run, Command, Target};
use timebucket::model::{ServiceName, TimestampMs};
use timebucket::store::embedded::EmbeddedStore;

use super::{manifest, seed, t0, tempdir, write_all, HOUR, HOURS};
use crate::support::{spawn_embedded_app, tools_python};

#[tokio::test]
async fn pyarrow_and_duckdb_read_the_archive_with_the_numbers_of_the_api() {
    let python = tools_python("pyarrow and duckdb, the archive's readers");
    let (data, out) = (tempdir(), tempdir());
    let store_dir = data.path().join("store");
    let store = EmbeddedStore::open(&store_dir).unwrap();
    write_all(&store, seed(1200, 3)).await;
    drop(store);
    let export = Command::Export {
        from: TimestampMs::from_millis(t0()),
        to: TimestampMs::from_millis(t0() + HOURS * HOUR),
        services: vec![ServiceName::parse("shop").unwrap()],
        out: out.path().to_path_buf(),
    };
    run(Target::Embedded(store_dir), export).await.unwrap();
    let manifest = manifest(out.path());
    assert_eq!(
        manifest.files.len() as i64,
        2 * HOURS,
        "api and host of shop"
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/archive/read.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(out.path())
        .arg("shop")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "read.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_slice(&output.stdout).unwrap();

    // pyarrow: every file whole, typed as declared, self-describing.
    let files = read["files"].as_array().unwrap();
    assert_eq!(files.len(), manifest.files.len());
    for (file, entry) in files.iter().zip(&manifest.files) {
        assert_eq!(file["path"], entry.path.as_str());
        assert_eq!(file["rows"], entry.rows, "{}", entry.path);
        assert_eq!(file["metadata"]["timebucket.kind"], entry.kind.as_str());
        assert_eq!(file["metadata"]["timebucket.service"], "shop");
        assert_eq!(
            file["metadata"]["timebucket.bucket"],
            entry.bucket.to_string()
        );
        let types = &file["types"];
        assert_eq!(types["id"], "extension<arrow.uuid>", "{types}");
        assert_eq!(types["timestamp"], "timestamp[ms, tz=UTC]", "{types}");
        assert_eq!(
            types["instance"], "dictionary<values=string, indices=int32, ordered=0>",
            "{types}"
        );
        if entry.kind == "api" {
            assert_eq!(types["code"], "int32");
            assert_eq!(types["duration_ms"], "double");
            assert_eq!(types["count"], "int32");
        } else {
            assert_eq!(types["cpu_percent"], "double");
            assert_eq!(types["mem_used_bytes"], "int64");
            assert_eq!(types["available"], "bool");
        }
    }
    let api_rows: u64 = manifest
        .files
        .iter()
        .filter(|f| f.kind == "api")
        .map(|f| f.rows)
        .sum();
    assert_eq!(read["hive_rows"], api_rows);
    let duck_types = &read["duckdb_types"];
    assert_eq!(duck_types["id"], "UUID", "{duck_types}");
    assert_eq!(duck_types["timestamp"], "TIMESTAMP WITH TIME ZONE");
    assert_eq!(duck_types["bucket"], "BIGINT");

    // DuckDB against /v1/stats, bucket by bucket (1 h steps are the buckets) and path by path.
    let app = spawn_embedded_app(data).await;
    let stats: Value = reqwest::Client::new()
        .get(format!("{}/v1/stats", app.url))
        .query(&[
            ("service", "shop".to_owned()),
            ("from", t0().to_string()),
            ("to", (t0() + HOURS * HOUR - 1).to_string()),
            ("step", "1h".to_owned()),
            ("group_by", "path".to_owned()),
            // The seed went straight into the store, without the flusher's partial rollups.
            ("source", "raw".to_owned()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut api: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
    for group in stats["groups"].as_array().expect("groups") {
        let path = group["key"]["path"].as_str().unwrap().to_owned();
        for point in group["points"].as_array().unwrap() {
            let t = point["t"].as_str().unwrap().to_owned();
            let p99 = point["p99_ms"].as_f64().unwrap();
            api.insert((t, path.clone()), (point["count"].as_u64().unwrap(), p99));
        }
    }
    let duck = read["stats"].as_array().unwrap();
    assert_eq!(duck.len(), api.len(), "DuckDB {duck:?}\nAPI {api:?}");
    for row in duck {
        let t = TimestampMs::from_millis(row["bucket"].as_i64().unwrap() * 1000).to_rfc3339();
        let path = row["path"].as_str().unwrap().to_owned();
        let (count, p99) = api[&(t.clone(), path.clone())];
        assert_eq!(row["count"].as_u64(), Some(count), "{t} {path}");
        let exact = row["p99"].as_f64().unwrap();
        assert!(
            (p99 - exact).abs() <= 0.01 * exact,
            "{t} {path}: /v1/stats p99 {p99}, DuckDB's exact p99 {exact}"
        );
    }
    app.stop().await.unwrap();
}
