//! Cassandra nodes failing under steady ingest: one node (quorum holds), then two (it does not).

use std::time::Duration;

use serde_json::Value;

use super::exclusive;
use super::harness::{eventually, Cluster, Replica};
use super::load::{Client, Load, Verdict};
use crate::support::stored_api_readings;

const WAIT: Duration = Duration::from_secs(90);

fn problems(answer: &Value, key: &str) -> Vec<String> {
    answer[key]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|p| p.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_ingest_loses_nothing_and_queries_keep_answering() {
    let _turn = exclusive().await;
    let cluster = Cluster::up().await;
    let keyspace = cluster.keyspace().await;
    let session = cluster.session().await;
    let replica = Replica::start(&cluster, &keyspace, &[]).await;
    let service = "node-killed";
    let load = Load::start(&replica.url(), service, 4, Client::Plain);
    load.until_acked(1_000, WAIT, "before the kill").await;

    // Node 1: the seed, the first contact point, likely the driver's control connection.
    cluster.kill(1).await;
    load.until_acked(1_000, WAIT, "with node 1 down").await;
    // Two replicas of three make a quorum: what was accepted reaches the store meanwhile...
    load.pause().await;
    replica.drained(WAIT).await;
    // ...queries answer, and the service says it is ready.
    let now = chrono::Utc::now().timestamp_millis();
    let readings = format!(
        "/v1/readings?service={service}&from={}&to={}&limit=100",
        now - 600_000,
        now + 60_000
    );
    let (status, answer) = replica.get(&readings).await;
    assert_eq!(status, 200, "/v1/readings with node 1 down: {answer}");
    assert_eq!(answer["readings"].as_array().map(Vec::len), Some(100));
    let (status, answer) = replica.get(&format!("/v1/latest?service={service}")).await;
    assert_eq!(status, 200, "/v1/latest with node 1 down: {answer}");
    assert!(!answer["api"].as_array().unwrap().is_empty(), "{answer}");
    eventually(WAIT, "/readyz answers 200 with node 1 down", || async {
        replica.get("/readyz").await.0 == 200
    })
    .await;
    load.resume();

    cluster.restart(1).await;
    load.until_acked(1_000, WAIT, "after node 1 is back").await;
    let log = load.stop().await;
    replica.drained(WAIT).await;

    assert_eq!(
        (
            log.statuses.keys().copied().collect::<Vec<_>>(),
            log.transport_errors
        ),
        (vec![202], 0),
        "every ingest request was to be answered 202: {:?}, {} without an answer",
        log.statuses,
        log.transport_errors
    );
    let stored = stored_api_readings(&session, &keyspace).await;
    let verdict = Verdict::of(&log, &stored, service);
    verdict.assert_exact(log.acked.len());
    assert_eq!(verdict.retried_twice, 0);
    eprintln!(
        "node killed: {} readings acknowledged, each stored once",
        log.acked.len()
    );
    cluster.drop_keyspace(&session, &keyspace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_down_fill_the_wal_then_ingest_refuses_and_it_all_drains_when_they_return() {
    let _turn = exclusive().await;
    let cluster = Cluster::up().await;
    let keyspace = cluster.keyspace().await;
    let session = cluster.session().await;
    const LIMIT: u64 = 2 << 20;
    let limit = LIMIT.to_string();
    let replica = Replica::start(&cluster, &keyspace, &["--max-backlog-bytes", &limit]).await;
    let service = "two-nodes-down";
    let load = Load::start(&replica.url(), service, 4, Client::Plain);
    load.until_acked(500, WAIT, "before the kill").await;
    load.pause().await;
    replica.drained(WAIT).await;

    cluster.kill(2).await;
    cluster.kill(3).await;
    load.resume();
    // One replica of three: no quorum. The flusher's writes fail, and /readyz says so...
    eventually(WAIT, "/readyz reports the failing flush", || async {
        let (status, answer) = replica.get("/readyz").await;
        status == 503
            && problems(&answer, "problems")
                .iter()
                .any(|p| p.starts_with("the last flush to the store failed"))
    })
    .await;
    load.pause().await;
    let backlog = replica.metric("timebucket_wal_backlog_bytes").await;
    assert!(
        backlog < LIMIT as f64,
        "the backlog ({backlog} bytes) passed its limit before the failed flush was noticed; \
         raise LIMIT for this machine"
    );
    // ...while ingest still accepts into the WAL: the load balancer's check stays green.
    let (status, answer) = replica.get("/readyz/ingest").await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        problems(&answer, "degraded")
            .iter()
            .any(|p| p.starts_with("the last flush to the store failed")),
        "{answer}"
    );
    assert_eq!(load.answers(503), 0, "503 before the backlog limit");
    load.resume();

    // Past the backlog limit: 503 with Retry-After, and both readiness checks say why.
    eventually(Duration::from_secs(180), "ingest answers 503", || async {
        load.answers(503) > 0
    })
    .await;
    let backlog = replica.metric("timebucket_wal_backlog_bytes").await;
    assert!(
        backlog >= LIMIT as f64,
        "503 at a backlog of {backlog} bytes, under the limit of {LIMIT}"
    );
    let (status, answer) = replica.get("/readyz").await;
    assert_eq!(status, 503);
    let reasons = problems(&answer, "problems");
    for expected in [
        "the last flush to the store failed; readings wait in the WAL",
        "the WAL backlog is over its limit; ingest answers 503",
    ] {
        assert!(reasons.iter().any(|r| r == expected), "{answer}");
    }
    let (status, answer) = replica.get("/readyz/ingest").await;
    assert_eq!(status, 503, "{answer}");
    assert!(problems(&answer, "problems")
        .iter()
        .any(|r| r == "the WAL backlog is over its limit; ingest answers 503"));

    // The nodes come back: the backlog drains, ingest accepts again.
    let refused = load.answers(503);
    tokio::join!(cluster.restart(2), cluster.restart(3));
    load.until_acked(500, Duration::from_secs(180), "after the nodes are back")
        .await;
    let log = load.stop().await;
    replica.drained(WAIT).await;
    eventually(WAIT, "/readyz answers 200 again", || async {
        replica.get("/readyz").await.0 == 200
    })
    .await;

    assert!(
        log.statuses.keys().all(|s| [202, 503].contains(s)) && log.transport_errors == 0,
        "answers other than 202 and 503: {:?}, {} without an answer",
        log.statuses,
        log.transport_errors
    );
    assert_eq!(log.retry_after_missing, 0, "a 503 without Retry-After");
    let stored = stored_api_readings(&session, &keyspace).await;
    let verdict = Verdict::of(&log, &stored, service);
    verdict.assert_exact(log.acked.len());
    eprintln!(
        "two nodes down: {} readings acknowledged and stored once; {} requests ({} readings) \
         refused with 503 and not stored, {refused} of them before the nodes were restarted",
        log.acked.len(),
        log.statuses.get(&503).copied().unwrap_or(0),
        log.refused.len()
    );
    cluster.drop_keyspace(&session, &keyspace).await;
}
