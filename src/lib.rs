//! timebucket: accepts metrics over HTTP, makes them durable in a write-ahead log, and writes
//! them in batches to time-bucketed CQL tables (ScyllaDB / Cassandra) built for range queries.
//!
//! Modules, one concern each:
//! - [`model`]: validated readings, names, buckets, shards and deployment settings.
//! - [`migrate`]: the CQL schema migrations and the settings they record.
//! - [`store`]: the storage backends.
//! - [`wal`]: the write-ahead log, the durability boundary and the flush queue.
//! - [`ingest`]: request bodies → WAL → store.
//! - [`query`]: time-range reads fanned out over buckets and shards, stats, and the `query` CLI.
//! - [`promql`]: a PromQL engine over the readings (virtual Prometheus metric families).
//! - [`api`]: the HTTP routes.
//! - [`access`]: tokens, scopes, the `Host` allowlist, TLS and per-token limits in front of them.
//! - [`console`]: the web console at `/`, pages over the query layer.
//! - [`server`]: `serve`, wiring it all together.
//! - [`telemetry`]: the service's own metrics.
//! - [`cli`], [`config_file`]: command-line flags, and the same settings from a TOML file.
//! - [`client`]: the client side of the HTTP API: the ingest wire format, pushing, the
//!   agent's outbox and the query client.
//! - [`foreign`]: conversions from other systems' formats (OTLP, Prometheus) into readings.
//! - [`capture`]: record an app's requests (tower layer, feature `client`) and push readings to
//!   a collector.
//! - [`agent`]: `timebucket agent`, the host agent pushing CPU, memory, disk and heartbeat readings.
//! - [`scrape`]: pull: scraping Prometheus / OpenMetrics endpoints into readings.
//! - [`reload`]: the reload hub (SIGHUP, `POST /-/reload`) that config-driven subsystems join.
//! - [`alerting`]: Prometheus-format alerting rules evaluated over the readings, alerts kept in
//!   the store and sent to Alertmanager and webhooks, one evaluator among replicas.

pub mod access;
pub mod agent;
pub mod alerting;
pub mod api;
pub mod archive;
pub mod capture;
pub mod cli;
pub mod client;
pub mod config_file;
pub mod console;
pub mod foreign;
pub mod ingest;
pub mod migrate;
pub mod model;
pub mod promql;
pub mod query;
pub mod reload;
pub mod rollup;
pub mod scrape;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod wal;
