//! The compose `cluster` profile mirrors what the cluster tests run (tests/it/cluster/): the same
//! `deploy/haproxy.cfg`, given every variable it reads, in front of replicas that listen where
//! it sends them, over three nodes migrated with the tests' replication. No Docker needed: this
//! reads the files (CI also has `docker compose --profile cluster config` check the syntax).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::cluster::harness::REPLICATION;

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `${NAME}` variables of HAProxy's config.
fn config_variables(config: &str) -> BTreeSet<String> {
    config
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// The services of the `cluster` profile, by name.
fn cluster_services(compose: &Value) -> Vec<(&str, &Value)> {
    compose["services"]
        .as_object()
        .expect("docker-compose.yml has services")
        .iter()
        .filter(|(_, s)| {
            s["profiles"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p == "cluster"))
        })
        .map(|(name, s)| (name.as_str(), s))
        .collect()
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

#[test]
fn the_compose_cluster_profile_runs_the_tested_haproxy_config_in_front_of_its_replicas() {
    let compose: Value = serde_saphyr::from_str(&read("docker-compose.yml")).unwrap();
    let services = cluster_services(&compose);
    let names: BTreeSet<&str> = services.iter().map(|(n, _)| *n).collect();
    let nodes: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("scylla-"))
        .collect();
    assert_eq!(nodes, ["scylla-1", "scylla-2", "scylla-3"], "{names:?}");
    let service = |name: &str| {
        services
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no service {name} in the cluster profile: {names:?}"))
            .1
    };

    // The load balancer: the tested file, every variable it reads set.
    let lb = service("lb");
    let volumes: Vec<&str> = lb["volumes"]
        .as_array()
        .expect("lb has volumes")
        .iter()
        .map(|v| text(v, "a volume"))
        .collect();
    assert!(
        volumes.contains(&"./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"),
        "lb must mount deploy/haproxy.cfg, the file the cluster tests run: {volumes:?}"
    );
    let environment = lb["environment"].as_object().expect("lb has environment");
    let set: BTreeSet<String> = environment.keys().cloned().collect();
    let needed = config_variables(&read("deploy/haproxy.cfg"));
    assert!(
        needed.is_subset(&set),
        "deploy/haproxy.cfg reads {needed:?}; the lb service sets {set:?}"
    );

    // Each server line points at a replica of the profile, on the port it listens on.
    let mut replicas = BTreeSet::new();
    for (name, value) in environment {
        if !name.starts_with("TIMEBUCKET_REPLICA_") {
            continue;
        }
        let (host, port) = text(value, name).split_once(':').expect("host:port");
        let replica = service(host);
        let listen = text(
            &replica["environment"]["TIMEBUCKET_LISTEN"],
            "TIMEBUCKET_LISTEN",
        );
        assert!(
            listen.ends_with(&format!(":{port}")),
            "{name}={host}:{port}, but {host} listens on {listen}"
        );
        let nodes = text(
            &replica["environment"]["TIMEBUCKET_CQL_NODES"],
            "TIMEBUCKET_CQL_NODES",
        );
        assert_eq!(nodes, "scylla-1:9042,scylla-2:9042,scylla-3:9042");
        replicas.insert(host);
    }
    assert_eq!(
        replicas.len(),
        2,
        "two replicas behind HAProxy: {replicas:?}"
    );

    // The schema, replicated as the cluster tests replicate it.
    let command: Vec<&str> = service("migrate-cluster")["command"]
        .as_array()
        .expect("migrate-cluster has a command")
        .iter()
        .map(|c| text(c, "a command word"))
        .collect();
    assert_eq!(command, ["migrate", "up", "--replication", REPLICATION]);
}
