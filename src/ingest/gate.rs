//! The gate every batch passes after it is parsed and before it reaches the WAL: the hook
//! through which access control ([`crate::access`]) refuses readings for services a token may
//! not write, and applies its per-token limits.
//!
//! All or nothing, like every other check of a body: a refused batch leaves no reading behind.
//! Ingest knows nothing of tokens: it asks a [`Gate`] and maps its [`Refusal`] to an answer.

use std::sync::Arc;
use std::time::Duration;

use super::accept::BodyFormat;
use super::parse::FieldProblem;
use crate::model::Reading;

/// Decides whether a parsed batch may be appended.
pub trait Gate: Send + Sync + 'static {
    /// Checks `readings`, all or nothing. `Ok` means the batch is counted against the caller's
    /// limits and goes on to the WAL.
    fn admit(&self, readings: &[Reading]) -> Result<(), Refusal>;
}

/// The gate of a service without access control, and of readings timebucket fetched itself
/// (scrapes): lets everything through.
#[derive(Debug, Clone, Copy, Default)]
pub struct Open;

impl Gate for Open {
    fn admit(&self, _readings: &[Reading]) -> Result<(), Refusal> {
        Ok(())
    }
}

/// A shared gate, as handlers pass it down.
pub type SharedGate = Arc<dyn Gate>;

/// An open gate, shared.
pub fn open() -> SharedGate {
    Arc::new(Open)
}

/// Why a gate refused a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Readings the caller may not write (403).
    Forbidden {
        /// One sentence for the answer.
        message: String,
        /// The refused readings: their position in the batch and what is wrong.
        readings: Vec<(usize, String)>,
    },
    /// The caller is over one of its limits (429).
    Limited {
        /// One sentence for the answer, naming the limit.
        message: String,
        /// The limit's name, as in the tokens file.
        limit: &'static str,
        /// When trying again may pass.
        retry_after: Duration,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Forbidden { message, .. } | Refusal::Limited { message, .. } => {
                f.write_str(message)
            }
        }
    }
}

/// The refused readings of `readings` (parsed from `body` in `format`) as field problems, with
/// the index a client sees: the position within its kind's list for a JSON body, the line
/// number (from 0) for NDJSON. Every non-blank NDJSON line of an accepted body is one reading,
/// in order, and a JSON body lists its `api` readings before its `host` ones.
pub fn locate(
    refused: &[(usize, String)],
    readings: &[Reading],
    format: BodyFormat,
    body: &[u8],
) -> Vec<FieldProblem> {
    let lines: Vec<usize> = match format {
        BodyFormat::NdJson => body
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(number, _)| number)
            .collect(),
        BodyFormat::Json => Vec::new(),
    };
    refused
        .iter()
        .map(|(at, problem)| {
            let kind = readings.get(*at).map(kind_of);
            let index = match format {
                BodyFormat::NdJson => lines.get(*at).copied().unwrap_or(*at),
                BodyFormat::Json => readings[..*at.min(&readings.len())]
                    .iter()
                    .filter(|r| Some(kind_of(r)) == kind)
                    .count(),
            };
            FieldProblem {
                index,
                kind,
                field: "service".into(),
                problem: problem.clone(),
            }
        })
        .collect()
}

fn kind_of(reading: &Reading) -> &'static str {
    match reading {
        Reading::Api(_) => "api",
        Reading::Host(_) => "host",
    }
}
