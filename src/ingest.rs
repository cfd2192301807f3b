//! Ingest: from a request body to readings in the store.
//!
//! ```text
//!  POST /v1/metrics ──parse──► readings (ids fixed) ──encode──► WAL append + fsync ──► 202
//!                                                                   │
//!                       store ◄── WriteBatch ◄── decode ◄── flusher reads the WAL in order
//!                                                                   │
//!                                            confirm ──► segments deleted once fully stored
//! ```
//!
//! Invariants: a 202 is sent only after the readings' WAL record is synced; the flusher reads
//! from the WAL (not from memory), so a backlog costs disk, not RAM; a WAL position is
//! confirmed only after every reading before it is in the store, or, for what the store refuses
//! for good or what cannot be decoded, durably set aside in the [`quarantine`].

pub mod accept;
pub mod fields;
pub mod flusher;
pub mod gate;
pub mod lenient;
pub mod members;
pub mod parse;
pub mod problems;
pub mod quarantine;
pub mod record;
pub mod rules;

pub use accept::{AcceptConfig, AcceptError, AcceptLimits, Acceptor, BodyFormat};
pub use flusher::{Flusher, FlusherConfig};
pub use parse::{parse_json, parse_ndjson, FieldProblem, ParseError, Window};
pub use problems::Problems;
