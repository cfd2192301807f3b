//! Integration tests: one binary, run against a real CQL node (`TIMEBUCKET_TEST_CQL`).
//!
//! Every test works in a keyspace of its own, so the tests run in parallel without sharing state.

mod agent;
mod capture;
mod conformance;
mod console;
mod cql_docs;
mod crash;
mod ingest;
mod migrate;
mod proxy;
mod query;
mod settings;
mod support;
