//! The Prometheus text and OpenMetrics exposition formats → API and host readings: what a
//! scrape reads ([`crate::scrape`] fetches it).
//!
//! - [`parse`]: the body → samples, each with its family's type.
//! - [`api`]: the usual HTTP-server metrics → API readings (deltas of cumulative counters and
//!   histograms, through [`super::cumulative`] and [`super::histogram`]).
//! - [`host`]: node-exporter and process metrics → one host reading per scrape.
//! - [`Converter`]: both, with the per-target state that turns running totals into deltas.
//!
//! **Why the parser is our own.** The crates evaluated, each against the official Python
//! client's own output (Prometheus text and OpenMetrics) and bodies with awkward label values:
//! - `prometheus-parse` 0.2.5 (Apache-2.0, last release Dec 2023): silently drops every sample
//!   whose label values hold `{` or `}` — every route template like `/users/{id}` — splits
//!   values holding `,` or `=` into bogus labels, ignores escapes, and skips malformed lines
//!   without a word, so garbage cannot be told from an empty target.
//! - `openmetrics-parser` 0.5.1 (the most complete: histograms and summaries assembled): rejects
//!   the Python client's OpenMetrics output (a summary without quantiles, which the spec
//!   allows), and is LGPL-3.0, a licence this Apache-2.0 project does not take on for its
//!   statically linked binary.
//! - `nom-openmetrics` 0.3.0 (MIT): has no `histogram` type (it becomes "unknown"), no sample
//!   timestamps or exemplars, and prints to stderr for every `+Inf`.
//! - `prometheus-parser` is a PromQL parser, not an exposition parser; `prom_text_format_parser`
//!   0.1.0 is a single unmaintained release on old dependencies.
//!
//! The text formats are line based and small (about 300 lines here, with a property test that
//! no input panics and label values round-trip), so [`parse`] is hand-written, following the
//! grammar of Prometheus' own `textparse`. Everything after tokenising (families, deltas,
//! histograms) is shared code.

pub mod api;
pub mod host;
pub mod parse;

use crate::model::{InstanceName, Reading, ServiceName, TimestampMs};
use api::{ApiLabels, ApiState};
use host::{HostOptions, HostState};
pub use parse::{parse, Dialect, Exposition, MetricType, ParseError, Sample, Suffix};

/// Who a target's readings are from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The service (the job name, unless a target label `service` says otherwise).
    pub service: ServiceName,
    /// The instance (the target's `host:port`, unless a target label `instance` says otherwise).
    pub instance: InstanceName,
}

/// How a job's expositions are read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MappingOptions {
    /// Which labels carry method, path and code.
    pub api: ApiLabels,
    /// Which filesystem is reported.
    pub host: HostOptions,
}

/// What one exposition gave.
#[derive(Debug, Default)]
pub struct Converted {
    /// API readings (deltas) and the scrape's host reading.
    pub readings: Vec<Reading>,
    /// Samples read.
    pub samples: usize,
    /// Samples that map to nothing (unknown metrics, a family outranked by a better one, labels
    /// that are not a method, path or code).
    pub unmapped: usize,
}

/// The state of one target: the last totals of its series. `Clone`, so a scrape whose
/// readings could not be made durable can be undone (its requests are then counted by the next
/// scrape instead of being lost).
#[derive(Debug, Clone)]
pub struct Converter {
    api: ApiState,
    host: HostState,
}

impl Converter {
    /// A converter remembering at most `max_series` series of each kind (the oldest is
    /// forgotten past that, and primes again when it comes back).
    pub fn new(max_series: usize) -> Self {
        Self {
            api: ApiState::new(max_series),
            host: HostState::new(),
        }
    }

    /// The readings of an exposition scraped at `at`: API deltas since the previous scrape and
    /// one host reading, `available: true`.
    pub fn convert(
        &mut self,
        exposition: &Exposition<'_>,
        at: TimestampMs,
        origin: &Origin,
        options: &MappingOptions,
    ) -> Converted {
        let mut used = vec![false; exposition.samples.len()];
        let mut readings: Vec<Reading> = self
            .api
            .convert(exposition, at, origin, &options.api, &mut used)
            .into_iter()
            .map(Reading::Api)
            .collect();
        let host = self
            .host
            .convert(exposition, at, origin, &options.host, &mut used);
        readings.push(Reading::Host(host));
        Converted {
            readings,
            samples: exposition.samples.len(),
            unmapped: used.iter().filter(|u| !**u).count(),
        }
    }

    /// Forgets series not seen since `cutoff` (they stopped being exposed).
    pub fn forget_idle(&mut self, cutoff: TimestampMs) {
        self.api.forget_idle(cutoff);
        self.host.forget_idle(cutoff);
    }
}
