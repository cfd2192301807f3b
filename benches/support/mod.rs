//! What the benchmarks share. Every bench declares it the same way (`mod support;`) and uses the
//! parts it needs, hence `allow(dead_code)`: what one bench leaves unused, another uses.
#![allow(dead_code)]

pub mod cpu;
pub mod cql;
pub mod data;
pub mod disk;
pub mod load;
pub mod options;
/// The TCP fault proxy of the integration tests: one implementation for tests and benches.
#[path = "../../tests/it/proxy.rs"]
pub mod proxy;
pub mod range_reads;
pub mod report;
pub mod sections;
pub mod server;
