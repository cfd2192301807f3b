//! Foreign formats: conversions at the edge between other systems' metrics and our typed
//! readings. One module per format; what several formats share lives here once:
//!
//! - [`histogram`]: a histogram of request durations (OTLP explicit or exponential buckets, a
//!   Prometheus `_bucket{le}` family) → API readings that keep its distribution and its sum;
//! - [`cumulative`]: cumulative counters and histograms (OTLP cumulative temporality, every
//!   Prometheus counter) → deltas per stream, with resets detected;
//! - [`otlp`]: OTLP metrics requests → API and host readings.
//! - [`exposition`]: the Prometheus text and OpenMetrics formats a scrape reads → API and host
//!   readings.
//!
//! Invariant: a conversion only produces values of the model's validated types; what cannot be
//! represented is reported to the caller (counted, named), never silently dropped.

pub mod cumulative;
pub mod exposition;
pub mod histogram;
pub mod otlp;
