//! Which source serves which part of a stats query: rollups for the whole slots they hold,
//! raw readings for the edges.
//!
//! A level of rollups can serve a query only if its slot divides the step (a slot then lies in
//! one step). The range `[from, to]` is covered greedily, coarsest level first: the whole hours
//! inside it from hourly rollups, the whole minutes left at either side from minute rollups,
//! and the sub-minute edges from raw readings. Rollups are written when their WAL piece ends
//! (`ingest::flusher`): a second after the readings once the flusher keeps up, up to a piece
//! (64 MiB of WAL) later under a backlog, always before the flushed count includes them. No
//! freshness edge is read raw, so until then an answer from rollups lacks the newest readings
//! that a raw one has; once they are counted as flushed, both agree.
//!
//! Rollups are complete only from the store's recorded *since* on (`rollup::coverage`): the
//! part of the range before it is read raw, whatever the source.

use serde::{Deserialize, Serialize};

use super::params::{Step, TimeRange};
use crate::model::TimestampMs;
use crate::rollup::Resolution;

/// `?source=`: what a stats query may read.
///
/// The default is `auto`: rollups where the step allows and the store records them complete,
/// raw readings elsewhere; the answer is the same (counts exact) either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Source {
    /// Raw readings only.
    Raw,
    /// Rollups wherever they can serve, raw readings for the edges and before the rollups'
    /// start; refused when the step is not a whole number of minutes.
    Rollup,
    /// As `rollup` when the step allows, else raw (the default).
    #[default]
    Auto,
}

impl Source {
    /// Parses `raw`, `rollup` or `auto`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "raw" => Ok(Source::Raw),
            "rollup" => Ok(Source::Rollup),
            "auto" => Ok(Source::Auto),
            _ => Err(format!("must be `raw`, `rollup` or `auto`, got `{text}`")),
        }
    }

    /// Checks `step` against this source: `rollup` needs a step of whole minutes.
    pub fn check(self, step: Step) -> Result<(), String> {
        if self == Source::Rollup && usable(step).is_empty() {
            return Err(format!(
                "with source=rollup the step must be a whole number of minutes, got {} ms",
                step.millis()
            ));
        }
        Ok(())
    }
}

/// What serves one part of the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Raw readings.
    Raw,
    /// Rollups of this level.
    Rollup(Resolution),
}

impl Level {
    /// `raw`, `1m` or `1h`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Raw => "raw",
            Level::Rollup(r) => r.name(),
        }
    }
}

/// One part of the range: `[from, to]`, inclusive, served by `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The source.
    pub level: Level,
    /// The inclusive range.
    pub range: TimeRange,
}

/// What an answer says about its sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceUsed {
    /// `raw` when only raw readings were read, else `rollup`.
    pub used: String,
    /// Every level read, coarsest first (`1h`, `1m`, `raw`).
    pub levels: Vec<String>,
    /// From when the store holds complete rollups of the service (RFC 3339); absent when the
    /// query read raw readings only by request or has none recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollups_since: Option<String>,
}

impl SourceUsed {
    /// The summary of a plan made with rollups complete from `since`.
    pub fn of(spans: &[Span], since: Option<TimestampMs>) -> Self {
        let read: Vec<Level> = spans.iter().map(|s| s.level).collect();
        Self::of_levels(&read, since)
    }

    /// The summary of reads of `read` levels, with rollups complete from `since`.
    pub fn of_levels(read: &[Level], since: Option<TimestampMs>) -> Self {
        let mut levels: Vec<Level> = Vec::new();
        for level in [
            Level::Rollup(Resolution::Hour),
            Level::Rollup(Resolution::Minute),
            Level::Raw,
        ] {
            if read.contains(&level) {
                levels.push(level);
            }
        }
        let rollup = levels.iter().any(|l| *l != Level::Raw);
        Self {
            used: if rollup { "rollup" } else { "raw" }.into(),
            levels: levels.iter().map(|l| l.name().to_owned()).collect(),
            rollups_since: since
                .filter(|s| s.millis() != i64::MAX)
                .map(TimestampMs::to_rfc3339),
        }
    }
}

/// The levels whose slot divides `step`, coarsest first.
fn usable(step: Step) -> Vec<Resolution> {
    let mut levels: Vec<Resolution> = Resolution::ALL
        .into_iter()
        .filter(|r| step.millis() % r.step_ms() == 0)
        .collect();
    levels.reverse();
    levels
}

/// The spans serving `range` at `step` from `source`, in time order, with rollups complete
/// from `since` on (raw readings before it).
pub fn plan(range: TimeRange, step: Step, source: Source, since: TimestampMs) -> Vec<Span> {
    let levels = match source {
        Source::Raw => Vec::new(),
        Source::Rollup | Source::Auto => usable(step),
    };
    let (from, until) = (range.from.millis(), range.to.millis() + 1);
    let split = since.millis().clamp(from, until);
    let mut spans = Vec::new();
    cover(from, split, &[], &mut spans);
    cover(split, until, &levels, &mut spans);
    spans
}

/// Covers `[from, until)` with the first of `levels` where it holds whole slots, the rest with
/// finer levels, and raw readings at the bottom.
fn cover(from: i64, until: i64, levels: &[Resolution], out: &mut Vec<Span>) {
    if from >= until {
        return;
    }
    let Some((&level, finer)) = levels.split_first() else {
        out.push(span(Level::Raw, from, until));
        return;
    };
    let step = level.step_ms();
    let first = from.div_euclid(step) * step + if from % step == 0 { 0 } else { step };
    let last = until.div_euclid(step) * step;
    if first >= last {
        return cover(from, until, finer, out);
    }
    cover(from, first, finer, out);
    out.push(span(Level::Rollup(level), first, last));
    cover(last, until, finer, out);
}

fn span(level: Level, from: i64, until: i64) -> Span {
    Span {
        level,
        range: TimeRange {
            from: TimestampMs::from_millis(from),
            to: TimestampMs::from_millis(until - 1),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    const H: i64 = 3_600_000;
    const ALWAYS: TimestampMs = TimestampMs::from_millis(i64::MIN);

    fn range(from: i64, to: i64) -> TimeRange {
        TimeRange {
            from: TimestampMs::from_millis(from),
            to: TimestampMs::from_millis(to),
        }
    }

    fn shape(spans: &[Span]) -> Vec<(&'static str, i64, i64)> {
        spans
            .iter()
            .map(|s| (s.level.name(), s.range.from.millis(), s.range.to.millis()))
            .collect()
    }

    #[test]
    fn hours_then_minutes_then_raw_edges() {
        let spans = plan(
            range(10 * H - M - 500, 13 * H + 2 * M + 7),
            Step::parse("1h").unwrap(),
            Source::Auto,
            ALWAYS,
        );
        assert_eq!(
            shape(&spans),
            [
                ("raw", 10 * H - M - 500, 10 * H - M - 1),
                ("1m", 10 * H - M, 10 * H - 1),
                ("1h", 10 * H, 13 * H - 1),
                ("1m", 13 * H, 13 * H + 2 * M - 1),
                ("raw", 13 * H + 2 * M, 13 * H + 2 * M + 7),
            ]
        );
        assert_eq!(SourceUsed::of(&spans, None).levels, ["1h", "1m", "raw"]);
    }

    #[test]
    fn a_step_that_is_not_whole_minutes_reads_raw_and_refuses_rollup() {
        let step = Step::parse("90s").unwrap();
        let spans = plan(range(0, 10 * H), step, Source::Auto, ALWAYS);
        assert_eq!(shape(&spans), [("raw", 0, 10 * H)]);
        assert!(Source::Rollup.check(step).is_err());
        // A 5-minute step uses minutes only: an hour slot would straddle no step, but 1h does
        // not divide 5m.
        let spans = plan(
            range(0, 2 * H - 1),
            Step::parse("5m").unwrap(),
            Source::Auto,
            ALWAYS,
        );
        assert_eq!(shape(&spans), [("1m", 0, 2 * H - 1)]);
        let spans = plan(
            range(0, 2 * H - 1),
            Step::parse("5m").unwrap(),
            Source::Raw,
            ALWAYS,
        );
        assert_eq!(SourceUsed::of(&spans, None).used, "raw");
    }

    #[test]
    fn before_the_rollups_start_the_range_is_read_raw() {
        let step = Step::parse("1h").unwrap();
        let since = TimestampMs::from_millis(12 * H);
        let spans = plan(range(10 * H - 5, 14 * H + 5), step, Source::Auto, since);
        assert_eq!(
            shape(&spans),
            [
                ("raw", 10 * H - 5, 12 * H - 1),
                ("1h", 12 * H, 14 * H - 1),
                ("raw", 14 * H, 14 * H + 5),
            ]
        );
        // Wholly before: raw; wholly after: rollups.
        let spans = plan(range(0, 2 * H - 1), step, Source::Rollup, since);
        assert_eq!(shape(&spans), [("raw", 0, 2 * H - 1)]);
        let spans = plan(range(20 * H, 22 * H - 1), step, Source::Auto, since);
        assert_eq!(shape(&spans), [("1h", 20 * H, 22 * H - 1)]);
        // Never recorded: raw.
        let never = TimestampMs::from_millis(i64::MAX);
        let spans = plan(range(20 * H, 22 * H - 1), step, Source::Auto, never);
        assert_eq!(SourceUsed::of(&spans, Some(never)).rollups_since, None);
        assert_eq!(shape(&spans), [("raw", 20 * H, 22 * H - 1)]);
    }
}
