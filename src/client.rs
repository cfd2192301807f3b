//! The client side of timebucket, in one place: what talks to a running service over HTTP.
//!
//! - [`wire`]: the ingest body format, written from the kind declarations the service reads it
//!   with (`ingest::parse`); a round-trip test holds the two together.
//! - [`push`]: delivering bodies to `POST /v1/metrics` (gzip, retries with backoff and jitter),
//!   used by the capture pipeline (`capture`) and the host agent (`agent`).
//! - [`outbox`]: a bounded backlog of readings delivered until the collector has them (the
//!   host agent's).
//! - [`query`]: the HTTP client of the query endpoints, behind `timebucket query`.
//! - [`auth`]: the token and trusted CAs every one of them sends and checks with.
//!
//! Imports point down: this module uses the model and the answer types, and nothing here is
//! used by the service's own request handling.

pub mod auth;
pub mod outbox;
pub mod push;
pub mod query;
pub mod wire;
