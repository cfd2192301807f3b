//! Access control end to end: tokens and scopes on every endpoint, TLS, limits, the default
//! posture, and tokens kept out of logs.

mod binary;
mod clients;
mod limits;
mod matrix;
mod support;
mod tls;
