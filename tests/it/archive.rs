//! The bucket archive (`timebucket archive export|import`, `serve --archive-dir`), run as the user
//! types it: export → wipe (a fresh store) → import gives back every reading and the same
//! `/v1/readings` pages, on both stores; a rerun skips what is archived; pyarrow and DuckDB read
//! the files with the numbers of `/v1/stats`.

mod auto;
mod readers;

use std::path::Path;

use serde_json::Value;
use timebucket::archive::Manifest;
use timebucket::model::{
    ApiPath, ApiReading, HostGauges, HostReading, HttpMethod, InstanceName, Reading, ReadingId,
    ReadingKind, ServiceName, StatusCode, TimeBucket, TimestampMs,
};
use timebucket::store::cql::CqlStore;
use timebucket::store::embedded::EmbeddedStore;
use timebucket::store::{
    Order, PageRequest, PartitionKey, ReadingKey, SeriesSeen, Store, WriteBatch,
};

use crate::support::{
    cql_node, migrated_keyspace, serve_config, spawn_embedded_app, spawn_with, timebucket_command,
    TestApp,
};

const HOUR: i64 = 3_600_000;
/// Hours of readings in the seed.
const HOURS: i64 = 3;
/// The services of the seed: one whose name must be percent-encoded in a path.
const SERVICES: [&str; 2] = ["shop", "pay/ments=1"];

/// The seed's start: a bucket start six hours ago, well within the retention.
fn t0() -> i64 {
    static START: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| {
        let now = chrono::Utc::now().timestamp_millis();
        (now / HOUR - 6) * HOUR
    });
    *START
}

/// API and host readings of both services over [t0, t0 + HOURS): random names, durations and
/// summaries, and readings on the first and last millisecond of every bucket.
fn seed(n: usize, rng_seed: u64) -> Vec<Reading> {
    let mut rng = fastrand::Rng::with_seed(rng_seed);
    let span = HOURS * HOUR;
    let mut at = |i: usize| match i % 50 {
        0 => t0() + rng.i64(0..HOURS) * HOUR,
        1 => t0() + rng.i64(1..=HOURS) * HOUR - 1,
        _ => t0() + rng.i64(0..span),
    };
    let mut readings: Vec<Reading> = (0..n)
        .map(|i| {
            let mut rng = fastrand::Rng::with_seed(rng_seed ^ i as u64);
            Reading::Api(ApiReading {
                id: ReadingId::new(),
                service: ServiceName::parse(SERVICES[usize::from(i % 5 == 0)]).unwrap(),
                instance: InstanceName::parse(["i-1", "i-2", "i-3"][i % 3]).unwrap(),
                method: HttpMethod::parse(["GET", "POST"][rng.usize(0..2)]).unwrap(),
                path: ApiPath::parse(["/cart", "/pay", "/users/{id}"][rng.usize(0..3)]).unwrap(),
                code: StatusCode::parse([200, 201, 404, 503][rng.usize(0..4)]).unwrap(),
                duration_ms: (rng.f64() * 6.0).exp() * 0.5,
                count: if rng.u8(0..3) == 0 {
                    rng.u32(2..=20)
                } else {
                    1
                },
                timestamp: TimestampMs::from_millis(at(i)),
            })
        })
        .collect();
    for (i, instance) in ["i-1", "h-9"].into_iter().enumerate() {
        for step in 0..HOURS * 6 {
            readings.push(Reading::Host(HostReading {
                id: ReadingId::new(),
                service: ServiceName::parse("shop").unwrap(),
                instance: InstanceName::parse(instance).unwrap(),
                timestamp: TimestampMs::from_millis(t0() + step * 600_000 + i as i64),
                gauges: HostGauges {
                    cpu_percent: Some(step as f64),
                    mem_used_bytes: Some(1 << 20),
                    available: (step % 4 != 0).then_some(true),
                    ..HostGauges::default()
                },
            }));
        }
    }
    readings
}

/// Writes `readings` straight through the store, as the flusher would.
async fn write_all<S: Store>(store: &S, readings: Vec<Reading>) {
    for chunk in readings.chunks(500) {
        let batch = WriteBatch::build(chunk.to_vec(), store.settings(), &SeriesSeen::new(0));
        store.write(&batch).await.unwrap();
    }
}

/// Every reading of kind `K` of the seed's services and hours, read partition by partition,
/// sorted by id.
async fn stored<S: Store, K: ReadingKind>(store: &S) -> Vec<K> {
    let settings = *store.settings();
    let mut all = Vec::new();
    for service in SERVICES {
        for hour in 0..HOURS {
            let bucket = TimeBucket::from_epoch_seconds((t0() + hour * HOUR) / 1000);
            for seq in settings.shards.all() {
                let mut request = PageRequest {
                    partition: PartitionKey {
                        service: ServiceName::parse(service).unwrap(),
                        bucket,
                        seq,
                    },
                    after: ReadingKey::before_all_at(TimestampMs::from_millis(t0() + hour * HOUR)),
                    until: TimestampMs::from_millis(t0() + (hour + 1) * HOUR - 1),
                    order: Order::Asc,
                    limit: 1000,
                };
                loop {
                    let page: Vec<K> = store.read_page(&request).await.unwrap();
                    let Some(last) = page.last().map(ReadingKey::of) else {
                        break;
                    };
                    all.extend(page);
                    request = request.next_after(last);
                }
            }
        }
    }
    all.sort_by_key(|r| r.id());
    all
}

/// Every API and host reading of the seed's range in `store`.
async fn snapshot<S: Store>(store: &S) -> (Vec<ApiReading>, Vec<HostReading>) {
    (stored(store).await, stored(store).await)
}

/// `timebucket archive ARGS...`; its stdout, after checking it succeeded.
fn archive(args: &[&str]) -> String {
    let output = timebucket_command()
        .arg("archive")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "archive {args:?}: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

/// `--from` and `--to` of the seed's hours.
fn seed_range() -> [String; 4] {
    [
        "--from".into(),
        TimestampMs::from_millis(t0()).to_rfc3339(),
        "--to".into(),
        TimestampMs::from_millis(t0() + HOURS * HOUR).to_rfc3339(),
    ]
}

/// Every `/v1/readings` page of every seed service, following the cursors.
async fn pages(app: &TestApp) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut pages = Vec::new();
    for service in SERVICES {
        let mut cursor: Option<String> = None;
        loop {
            let mut params = vec![
                ("service", service.to_owned()),
                ("from", t0().to_string()),
                ("to", (t0() + HOURS * HOUR - 1).to_string()),
                ("limit", "700".to_owned()),
            ];
            params.extend(cursor.take().map(|c| ("cursor", c)));
            let body: Value = client
                .get(format!("{}/v1/readings", app.url))
                .query(&params)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(body["readings"].is_array(), "{body}");
            cursor = body["next_cursor"].as_str().map(str::to_owned);
            pages.push(body);
            if cursor.is_none() {
                break;
            }
        }
    }
    pages
}

/// `(step, path, requests)` of `/v1/stats` by path over the seed's hours, one service, from
/// `source`.
async fn counts(app: &TestApp, source: &str) -> Vec<(String, u64)> {
    let body: Value = reqwest::Client::new()
        .get(format!("{}/v1/stats", app.url))
        .query(&[
            ("service", SERVICES[0]),
            ("from", &t0().to_string()),
            ("to", &(t0() + HOURS * HOUR).to_string()),
            ("step", "1h"),
            ("group_by", "path"),
            ("source", source),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let groups = body["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    let mut counts: Vec<(String, u64)> = groups
        .iter()
        .flat_map(|g| {
            let path = g["key"]["path"].to_string();
            g["points"].as_array().into_iter().flatten().map(move |p| {
                (
                    format!("{} {path}", p["t"]),
                    p["count"].as_u64().unwrap_or(0),
                )
            })
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    counts.sort();
    counts
}

fn manifest(dir: &Path) -> Manifest {
    Manifest::load(dir).unwrap().expect("a manifest")
}

#[tokio::test]
async fn embedded_export_wipe_import_restores_every_reading_and_every_page() {
    let (a, b, out) = (tempdir(), tempdir(), tempdir());
    let out_dir = out.path().to_str().unwrap();
    let store = EmbeddedStore::open(&a.path().join("store")).unwrap();
    write_all(&store, seed(1500, 1)).await;
    let before = snapshot(&store).await;
    assert_eq!(before.0.len(), 1500);
    drop(store);

    let a_dir = a.path().to_str().unwrap();
    let range = seed_range();
    let mut export = vec!["export", "--data-dir", a_dir, "--out", out_dir];
    export.extend(range.iter().map(String::as_str));
    let first = archive(&export);
    let files = (2 * HOURS + HOURS) as u64; // api of both services, host of shop
    assert!(
        first.starts_with(&format!(
            "exported {files} bucket files (0 already archived"
        )),
        "{first}"
    );
    let written = manifest(out.path());
    assert_eq!(written.files.len() as u64, files);
    let rows: u64 = written.files.iter().map(|f| f.rows).sum();
    assert_eq!(rows as usize, before.0.len() + before.1.len());
    assert!(written
        .files
        .iter()
        .any(|f| f.path.starts_with("api/service=pay%2Fments%3D1/bucket=")));

    // A rerun skips everything; a late reading makes its one bucket go again.
    let again = archive(&export);
    assert!(
        again.starts_with(&format!(
            "exported 0 bucket files ({files} already archived"
        )),
        "{again}"
    );
    assert_eq!(manifest(out.path()), written);
    let store = EmbeddedStore::open(&a.path().join("store")).unwrap();
    let late = seed(1, 99);
    write_all(&store, late[..1].to_vec()).await;
    let before = snapshot(&store).await;
    drop(store);
    let late_run = archive(&export);
    assert!(
        late_run.starts_with(&format!(
            "exported 1 bucket files ({} already archived",
            files - 1
        )),
        "{late_run}"
    );

    // The wipe: a fresh store elsewhere, filled by two imports (the second changes nothing).
    drop(EmbeddedStore::open(&b.path().join("store")).unwrap());
    let b_dir = b.path().to_str().unwrap();
    // First the first hour alone: its API files of both services and its host file.
    let first_hour = [
        "--from".to_owned(),
        t0().to_string(),
        "--to".to_owned(),
        (t0() + HOUR).to_string(),
    ];
    let mut partial = vec!["import", "--data-dir", b_dir, "--in", out_dir];
    partial.extend(first_hour.iter().map(String::as_str));
    let hour = archive(&partial);
    assert!(hour.starts_with("imported 3 bucket files: "), "{hour}");
    let import = ["import", "--data-dir", b_dir, "--in", out_dir];
    let total = before.0.len() + before.1.len();
    let imported = archive(&import);
    assert_eq!(
        imported.trim(),
        format!("imported {files} bucket files: {total} readings")
    );
    archive(&import);
    let store = EmbeddedStore::open(&b.path().join("store")).unwrap();
    assert!(snapshot(&store).await == before, "the import differs");
    drop(store);

    let original = spawn_embedded_app(a).await;
    let restored = spawn_embedded_app(b).await;
    let (want, got) = (pages(&original).await, pages(&restored).await);
    assert!(want.len() > 2, "{} pages", want.len());
    assert!(want == got, "the restored store's pages differ");
    // The import brought the rollups along (the fresh store has them from its start): both
    // sources count the same requests, and a second import did not count them twice.
    let (raw, rollup) = (
        counts(&restored, "raw").await,
        counts(&restored, "rollup").await,
    );
    assert!(raw.iter().any(|(_, n)| *n > 0), "{raw:?}");
    assert_eq!(
        rollup, raw,
        "stats from the imported rollups differ from the raw readings"
    );
    original.stop().await.unwrap();
    restored.stop().await.unwrap();
}

#[tokio::test]
async fn cql_export_wipe_import_restores_every_reading_and_every_page() {
    let node = cql_node();
    let (ks_a, ks_b) = (migrated_keyspace().await, migrated_keyspace().await);
    let out = tempdir();
    let out_dir = out.path().to_str().unwrap();
    let store = CqlStore::open(std::slice::from_ref(&node), &ks_a)
        .await
        .unwrap();
    write_all(&store, seed(800, 2)).await;
    let before = snapshot(&store).await;

    let range = seed_range();
    let (ks_a_name, ks_b_name) = (ks_a.to_string(), ks_b.to_string());
    let mut export = vec![
        "export",
        "--cql-nodes",
        &node,
        "--keyspace",
        &ks_a_name,
        "--out",
        out_dir,
    ];
    export.extend(range.iter().map(String::as_str));
    let first = archive(&export);
    assert!(
        first.starts_with("exported 9 bucket files (0 already"),
        "{first}"
    );
    let again = archive(&export);
    assert!(
        again.starts_with("exported 0 bucket files (9 already"),
        "{again}"
    );

    let import = [
        "import",
        "--cql-nodes",
        &node,
        "--keyspace",
        &ks_b_name,
        "--in",
        out_dir,
    ];
    archive(&import);
    archive(&import);
    let restored_store = CqlStore::open(std::slice::from_ref(&node), &ks_b)
        .await
        .unwrap();
    assert!(
        snapshot(&restored_store).await == before,
        "the import differs"
    );

    let original = cql_app(&node, ks_a).await;
    let restored = cql_app(&node, ks_b).await;
    assert!(pages(&original).await == pages(&restored).await);
    original.stop().await.unwrap();
    restored.stop().await.unwrap();
}

#[tokio::test]
async fn export_refuses_an_embedded_store_a_running_serve_holds() {
    let data = tempdir();
    let data_dir = data.path().to_str().unwrap().to_owned();
    let app = spawn_embedded_app(data).await;
    let out = tempdir();
    let output = timebucket_command()
        .args(["archive", "export", "--data-dir", &data_dir, "--out"])
        .arg(out.path())
        .args(seed_range())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is in use (a running `timebucket serve` holds it)"),
        "{stderr}"
    );
    app.stop().await.unwrap();
}

async fn cql_app(node: &str, keyspace: timebucket::store::cql::Keyspace) -> TestApp {
    let data = tempdir();
    let config = serve_config(vec![node.to_owned()], keyspace, data.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_with(config, data, listener).await
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn services_already_in_the_archive_are_exported_even_once_the_store_forgot_them() {
    let (data, out) = (tempdir(), tempdir());
    let store = EmbeddedStore::open(&data.path().join("store")).unwrap();
    write_all(&store, seed(20, 7)).await;
    // An archive that has a service the store has no latest row of (silent past the retention).
    let mut archived = Manifest::new(3600);
    archived.put(timebucket::archive::FileEntry {
        kind: "api".into(),
        service: "gone".into(),
        bucket: 0,
        bucket_start: TimestampMs::from_millis(0).to_rfc3339(),
        path: "api/service=gone/bucket=0/part.parquet".into(),
        rows: 1,
        first_timestamp: TimestampMs::from_millis(0).to_rfc3339(),
        last_timestamp: TimestampMs::from_millis(0).to_rfc3339(),
        bytes: 1,
        sha256: String::new(),
    });
    archived.save(out.path()).unwrap();
    let exporter =
        timebucket::archive::Exporter::open(std::sync::Arc::new(store), out.path()).unwrap();
    let services: Vec<String> = exporter
        .services()
        .await
        .unwrap()
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    assert_eq!(services, ["gone", "pay/ments=1", "shop"]);
}
