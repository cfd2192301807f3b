//! Alerting end to end: the example rules against seeded incidents at a real Alertmanager and a
//! webhook, state across restarts and reloads, two replicas on one CQL cluster with the leader
//! killed, and the alert store's conformance on both backends.

mod examples;
mod lease;
mod restart;
mod store;
mod support;
