//! Pieces of the ingest benchmark.

pub mod cpu;
pub mod cql;
pub mod data;
pub mod load;
pub mod options;
pub mod report;
pub mod sections;
pub mod server;
