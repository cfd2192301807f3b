//! Replicas behind HAProxy (`deploy/haproxy.cfg`): one killed under load, then all restarted in
//! turn. Clients are the capture layer's retrying pusher.

use std::time::Duration;

use serde_json::json;

use super::exclusive;
use super::harness::{eventually, Cluster, Haproxy, Replica};
use super::load::{Client, Load, Verdict};
use crate::support::stored_api_readings;

const WAIT: Duration = Duration::from_secs(90);
const ACCEPTED: &str = "timebucket_readings_accepted_total";

/// Posts large bodies straight to `replica` until its WAL backlog is over `bytes`, so that it
/// dies with readings it accepted but has not stored yet; returns their paths (all answered
/// 202).
async fn put_behind(replica: &Replica, service: &str, bytes: f64) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut acked = Vec::new();
    for burst in 0..200 {
        let paths: Vec<String> = (0..2_000).map(|i| format!("/burst/{burst}/r{i}")).collect();
        let at = chrono::Utc::now().timestamp_millis();
        let readings: Vec<_> = paths
            .iter()
            .map(|p| {
                json!({"service": service, "instance": "burst", "method": "PUT", "path": p,
                       "code": 200, "duration_ms": 3, "timestamp": at})
            })
            .collect();
        let response = client
            .post(format!("{}/v1/metrics", replica.url()))
            .json(&json!({ "api": readings }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "a burst body was refused");
        acked.extend(paths);
        if replica.metric("timebucket_wal_backlog_bytes").await > bytes {
            return acked;
        }
    }
    panic!(
        "replica {} kept up with 200 bursts: no backlog to kill it with",
        replica.address
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_behind_haproxy_loses_nothing_and_drains_its_wal_when_restarted() {
    let _turn = exclusive().await;
    let cluster = Cluster::up().await;
    let keyspace = cluster.keyspace().await;
    let session = cluster.session().await;
    let mut one = Replica::start(&cluster, &keyspace, &[]).await;
    let two = Replica::start(&cluster, &keyspace, &[]).await;
    let mut lb = Haproxy::start([&one, &two]).await;
    let service = "replica-killed";
    let load = Load::start(&lb.url, service, 4, Client::Retrying);
    load.until_acked(1_000, WAIT, "before the kill").await;
    for replica in [&one, &two] {
        assert!(
            replica.metric(ACCEPTED).await > 0.0,
            "HAProxy sent nothing to {}",
            replica.address
        );
    }

    let burst = put_behind(&one, service, 256.0 * 1024.0).await;
    one.kill().await;
    // The clients carry on through replica 2 (retrying what was in flight on replica 1).
    load.until_acked(1_000, WAIT, "with replica 1 killed").await;
    lb.wait_status("replica1", "DOWN").await;

    // Restarted outside the pool, with no traffic of its own, it stores what its WAL held.
    lb.admin("set server replicas/replica1 state maint").await;
    lb.wait_status("replica1", "MAINT").await;
    one.launch().await;
    one.drained(WAIT).await;
    let replayed = one.metric("timebucket_readings_flushed_total").await;
    assert!(
        replayed > 0.0,
        "replica 1 flushed nothing after its restart"
    );
    assert_eq!(one.metric(ACCEPTED).await, 0.0);
    lb.admin("set server replicas/replica1 state ready").await;
    lb.wait_status("replica1", "UP").await;
    eventually(WAIT, "replica 1 takes traffic again", || async {
        one.metric(ACCEPTED).await > 0.0
    })
    .await;
    load.until_acked(500, WAIT, "with replica 1 back").await;
    let mut log = load.stop().await;
    log.acked.extend(burst);
    one.drained(WAIT).await;
    two.drained(WAIT).await;
    assert!(lb.running(), "HAProxy stopped");

    let stored = stored_api_readings(&session, &keyspace).await;
    let verdict = Verdict::of(&log, &stored, service);
    verdict.assert_exact(log.acked.len());
    eprintln!(
        "replica killed: {} readings acknowledged, all stored; {replayed} replayed from the \
         killed replica's WAL; {} failed attempts retried ({} without an answer, answers \
         {:?}), {} readings stored twice by retries of attempts whose outcome was unknown",
        log.acked.len(),
        log.retried,
        log.transport_errors,
        log.statuses,
        verdict.retried_twice
    );
    cluster.drop_keyspace(&session, &keyspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_haproxy_loses_nothing_and_fails_no_request() {
    let _turn = exclusive().await;
    let cluster = Cluster::up().await;
    let keyspace = cluster.keyspace().await;
    let session = cluster.session().await;
    let mut replicas = [
        Replica::start(&cluster, &keyspace, &[]).await,
        Replica::start(&cluster, &keyspace, &[]).await,
    ];
    let mut lb = Haproxy::start([&replicas[0], &replicas[1]]).await;
    let service = "rolling-restart";
    let load = Load::start(&lb.url, service, 4, Client::Retrying);
    load.until_acked(1_000, WAIT, "before the restarts").await;

    // The procedure the README gives: drain, stop, start, put back; one replica at a time.
    for (i, replica) in replicas.iter_mut().enumerate() {
        let server = format!("replica{}", i + 1);
        lb.admin(&format!("set server replicas/{server} state drain"))
            .await;
        lb.wait_status(&server, "DRAIN").await;
        eventually(
            WAIT,
            "no request in progress on the drained replica",
            || async { lb.stat(&server, "scur").await == "0" },
        )
        .await;
        replica.terminate().await;
        replica.launch().await;
        eventually(
            WAIT,
            "the restarted replica is ready for ingest",
            || async { replica.get("/readyz/ingest").await.0 == 200 },
        )
        .await;
        lb.admin(&format!("set server replicas/{server} state ready"))
            .await;
        lb.wait_status(&server, "UP").await;
        load.until_acked(500, WAIT, &format!("after {server} restarted"))
            .await;
    }
    let log = load.stop().await;
    for replica in &replicas {
        replica.drained(WAIT).await;
    }
    assert!(lb.running(), "HAProxy stopped");

    assert_eq!(
        log.retried, 0,
        "a client had to retry during the rolling restart: {:?}, {} without an answer",
        log.statuses, log.transport_errors
    );
    let stored = stored_api_readings(&session, &keyspace).await;
    let verdict = Verdict::of(&log, &stored, service);
    verdict.assert_exact(log.acked.len());
    assert_eq!(verdict.retried_twice, 0);
    eprintln!(
        "rolling restart: {} readings acknowledged, each stored once, no request failed",
        log.acked.len()
    );
    cluster.drop_keyspace(&session, &keyspace).await;
}
