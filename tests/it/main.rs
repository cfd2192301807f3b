//! Integration tests: one binary, run against a real CQL node (`TIMEBUCKET_TEST_CQL`).
//!
//! Every test works in a keyspace of its own, so the tests run in parallel without sharing state.

mod access;
mod agent;
mod alerting;
mod archive;
mod bodies;
mod capture;
mod cli;
mod cluster;
mod conformance;
mod console;
mod cql_auth;
mod cql_docs;
mod crash;
mod deploy;
mod edge;
mod fixtures;
mod full_disk;
mod ingest;
mod migrate;
mod otlp;
mod outage;
mod promql;
mod proxy;
mod query;
mod readme;
mod rollups;
mod scrape;
mod settings;
mod stall;
mod support;
mod upkeep;
mod wal_faults;
mod wal_repair;
