//! timebucket: accepts metrics over HTTP, makes them durable in a write-ahead log, and writes
//! them in batches to time-bucketed CQL tables (ScyllaDB / Cassandra) built for range queries.
//!
//! Modules, one concern each:
//! - [`model`]: validated readings, names, buckets, shards and deployment settings.
//! - [`migrate`]: the CQL schema migrations and the settings they record.
//! - [`store`]: the storage backends.
//! - [`cli`]: command-line flags.

pub mod cli;
pub mod migrate;
pub mod model;
pub mod store;
