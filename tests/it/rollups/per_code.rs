//! Migration 0004's data step on the real node: per-code rollup rows (as versions before it
//! wrote them into 0003's tables) come out of the per-endpoint tables unchanged, the coverage
//! follows them, and a rerun changes nothing.

use timebucket::migrate;
use timebucket::model::{ServiceName, Settings, TimestampMs};
use timebucket::rollup::{partials, Piece, Resolution, RollupRequest, RollupRow};
use timebucket::store::cql::{copy_per_code_rollups, rollup_coverage_name, CqlStore};
use timebucket::store::Store;

use super::{old_hours, records, HOUR};
use crate::support::{cql_node, fresh_keyspace, migrations_dir, session, up_options};

/// A row as compared: its key and aggregate, printed (the aggregate has no order).
fn key(row: &RollupRow) -> String {
    format!(
        "{:?} {} {:?} {:?} {:?}",
        row.resolution,
        row.slot.millis(),
        row.series,
        row.piece,
        row.agg
    )
}

#[tokio::test]
async fn migration_0004_copies_per_code_rollups_and_their_coverage_into_per_endpoint_rows() {
    let session = session().await;
    let keyspace = fresh_keyspace();
    let migrations = migrate::source::load_dir(&migrations_dir()).unwrap();
    let before: Vec<_> = migrations
        .iter()
        .filter(|m| m.version < 4)
        .cloned()
        .collect();
    migrate::up(&session, &before, &up_options(&keyspace))
        .await
        .unwrap();

    // What a version before 0004 wrote: each piece's partials, one row per status code.
    let base = old_hours();
    let service = ServiceName::parse("percode").unwrap();
    let mut rows: Vec<RollupRow> = Vec::new();
    for (i, record) in records(21, "percode", base, 60).iter().enumerate() {
        let piece = Piece {
            writer: uuid::Uuid::from_u128(9),
            segment: 1,
            start: i as u64 * 100,
            last: i as u64 * 100 + 50,
        };
        rows.extend(partials(record, piece, TimestampMs::from_millis(0)));
    }
    let codes_per_endpoint = rows.iter().any(|a| {
        rows.iter()
            .any(|b| a.series.same_endpoint(&b.series) && a.series != b.series && a.slot == b.slot)
    });
    assert!(
        codes_per_endpoint,
        "the data must give endpoints several codes"
    );
    for (resolution, table) in [
        (Resolution::Minute, "rollups_1m"),
        (Resolution::Hour, "rollups_1h"),
    ] {
        let insert = format!(
            "INSERT INTO {keyspace}.{table} (service_name, kind, time_bucket, slot, instance, \
             method, path, code, writer, segment, piece_start, piece_last, agg) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let insert = session.prepare(insert).await.unwrap();
        for row in rows.iter().filter(|r| r.resolution == resolution) {
            let s = &row.series;
            let values = (
                row.service.as_str(),
                row.agg.kind() as i32,
                resolution.partition_of(row.slot),
                scylla::value::CqlTimestamp(row.slot.millis()),
                s.instance.as_str(),
                s.method.as_ref().map_or("", |m| m.as_str()),
                s.path.as_ref().map_or("", |p| p.as_str()),
                s.code.map_or(0, |c| i32::from(c.get())),
                row.piece.writer,
                row.piece.segment as i64,
                row.piece.start as i64,
                row.piece.last as i64,
                row.agg.to_bytes(),
            );
            session.execute_unpaged(&insert, values).await.unwrap();
        }
    }
    let record = format!("INSERT INTO {keyspace}.timebucket_settings (name, value) VALUES (?, ?)");
    let record = session.prepare(record).await.unwrap();
    for (name, value) in [
        ("rollups_written_since_ms", base - HOUR),
        ("rollups_since_ms", base - HOUR),
        ("rollups_since_ms/percode", base - 3 * HOUR),
    ] {
        session
            .execute_unpaged(&record, (name, value))
            .await
            .unwrap();
    }

    let applied = migrate::up(&session, &migrations, &up_options(&keyspace))
        .await
        .unwrap();
    assert_eq!(
        applied.applied.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [4]
    );
    // A rerun of the copy (as after a crash half way) rewrites the same rows.
    let again = copy_per_code_rollups(
        &session,
        &keyspace,
        &Settings::default(),
        TimestampMs::now(),
    )
    .await
    .unwrap();
    assert_eq!(again.rows, rows.len() as u64);
    assert!(again.stored < again.rows, "codes share rows: {again:?}");
    assert_eq!(again.coverage, 3);

    let store = CqlStore::open(&[cql_node()], &keyspace).await.unwrap();
    assert_eq!(store.rollups_written_since().millis(), base - HOUR);
    assert_eq!(
        store.rollups_since(&service).await.unwrap().millis(),
        base - 3 * HOUR
    );
    let mut requests: Vec<RollupRequest> = rows
        .iter()
        .map(|row| RollupRequest {
            service: service.clone(),
            kind: row.agg.kind(),
            resolution: row.resolution,
            partition: row.resolution.partition_of(row.slot),
            from: TimestampMs::from_millis(i64::MIN),
            to: TimestampMs::from_millis(i64::MAX),
        })
        .collect();
    requests.sort_by_key(|r| (r.kind, r.resolution, r.partition));
    requests.dedup_by_key(|r| (r.kind, r.resolution, r.partition));
    let mut read = Vec::new();
    for request in &requests {
        read.extend(store.read_rollups(request).await.unwrap());
    }
    let (mut expected, mut got): (Vec<String>, Vec<String>) = (
        rows.iter().map(key).collect(),
        read.iter().map(key).collect(),
    );
    expected.sort();
    got.sort();
    assert_eq!(got, expected);

    let names = format!("SELECT name FROM {keyspace}.timebucket_settings");
    let names: Vec<String> = session
        .query_unpaged(names, ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(String,)>()
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert!(names.contains(&rollup_coverage_name("rollups_since_ms/percode")));
}
