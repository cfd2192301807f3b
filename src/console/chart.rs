//! Charts drawn by our own code: inline SVG for the lines, HTML for the labels.
//!
//! ```text
//!  ┌ figure.chart ──────────────────────────────┐
//!  │ title · legend                 readout     │
//!  │ 2.5k ┌ div.plot ─────────────────────────┐ │   y labels: HTML, placed at `bottom: N%`
//!  │      │ svg (viewBox 1000×300, stretched) │ │   lines: one <path> per series, gaps as
//!  │ 1.2k │  gridlines, lines, hit columns    │ │   new sub-paths; non-scaling strokes
//!  │    0 └───────────────────────────────────┘ │   hit columns: one <rect> per step, its
//!  │        22:00     22:15     22:30           │   <title> the step's figures
//!  └────────────────────────────────────────────┘   x labels: HTML, placed at `left: N%`
//! ```
//!
//! The SVG stretches to its box (`preserveAspectRatio="none"`) so a chart fills any width from
//! a phone to 1280 px, while its text stays HTML at the page's font size (SVG text would shrink
//! with a narrow chart). Strokes use `vector-effect: non-scaling-stroke`, so stretching never
//! thickens them. A chart is an image to assistive technology (`role="img"` with a summary);
//! the tables beside it carry the same figures as text.
//!
//! Values are aligned to the page's chart steps: `None` is a gap (no reading in that step).

use std::fmt::Write as _;

use maud::{html, Markup};

use super::format;
use crate::model::TimestampMs;

/// Width and height of the SVG's coordinate system (stretched to the box).
const W: f64 = 1000.0;
const H: f64 = 300.0;

/// Time-label intervals, ms: the smallest giving at most [`MAX_TICKS`] labels is used.
const TICK_MS: [i64; 16] = [
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    172_800_000,
];
const MAX_TICKS: i64 = 6;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend text.
    pub label: &'static str,
    /// CSS class giving its colour (`s1`, `s2`, `s3`, `bad`, `warn`).
    pub class: &'static str,
    /// One value per chart step; `None` is a gap.
    pub values: Vec<Option<f64>>,
}

/// A line chart over the chart steps of a page.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    /// Heading.
    pub title: &'a str,
    /// Element id (tests and links find the chart by it).
    pub id: &'a str,
    /// Formats a value with its unit.
    pub format: fn(f64) -> String,
    /// The smallest top of the y axis (so a flat zero line sits at the bottom, not the middle).
    pub min_top: f64,
    /// The start of every step, ms, oldest first.
    pub steps: &'a [i64],
    /// Step width, ms.
    pub step_ms: i64,
    /// The lines.
    pub lines: Vec<Line>,
}

/// `v` rounded up to 1, 2, 2.5 or 5 × a power of ten, and how many gridline intervals divide
/// it evenly.
fn nice_top(v: f64) -> (f64, u32) {
    let exp = 10f64.powf(v.log10().floor());
    let f = v / exp;
    let (nice, intervals) = [(1.0, 4), (2.0, 4), (2.5, 5), (5.0, 5), (10.0, 4)]
        .into_iter()
        .find(|(nice, _)| f <= nice * 1.000_001)
        .unwrap_or((10.0, 4));
    (nice * exp, intervals)
}

fn tick_interval(span_ms: i64) -> i64 {
    TICK_MS
        .into_iter()
        .find(|tick| span_ms / tick <= MAX_TICKS)
        .unwrap_or(*TICK_MS.last().expect("ticks"))
}

impl Chart<'_> {
    fn domain(&self) -> (i64, i64) {
        let first = self.steps.first().copied().unwrap_or(0);
        let last = self.steps.last().copied().unwrap_or(first);
        (first, last + self.step_ms)
    }

    fn x(&self, t: i64) -> f64 {
        let (start, end) = self.domain();
        (t - start) as f64 / (end - start).max(1) as f64 * W
    }

    /// The SVG path of one line: a sub-path per run of values without gaps.
    fn path(&self, values: &[Option<f64>], top: f64) -> String {
        let mut d = String::new();
        let mut drawing = false;
        for (t, value) in self.steps.iter().zip(values) {
            match value {
                Some(v) => {
                    let x = self.x(t + self.step_ms / 2);
                    let y = H - (v / top).clamp(0.0, 1.0) * H;
                    let _ = write!(d, "{}{x:.1} {y:.1}", if drawing { " L" } else { " M" });
                    if !drawing {
                        // A lone point still shows: a zero-length segment with round caps.
                        let _ = write!(d, " l0 0");
                    }
                    drawing = true;
                }
                None => drawing = false,
            }
        }
        d
    }

    fn step_title(&self, i: usize, t: i64) -> String {
        let mut text = format::instant(TimestampMs::from_millis(t));
        for line in &self.lines {
            let value = match line.values.get(i).copied().flatten() {
                Some(v) => (self.format)(v),
                None => "no data".to_owned(),
            };
            let _ = write!(text, " · {} {value}", line.label);
        }
        text
    }

    /// The chart's markup.
    pub fn render(&self) -> Markup {
        let max = self
            .lines
            .iter()
            .flat_map(|l| l.values.iter().flatten())
            .fold(0.0f64, |a, &b| a.max(b));
        let (top, intervals) = nice_top(max.max(self.min_top));
        let empty = self
            .lines
            .iter()
            .all(|l| l.values.iter().all(Option::is_none));
        let (start, end) = self.domain();
        let tick = tick_interval(end - start);
        let first_tick = start.div_euclid(tick) * tick + tick;
        let ticks: Vec<i64> = (0..)
            .map(|i| first_tick + i * tick)
            .take_while(|t| *t < end)
            .collect();
        let column = W * self.step_ms as f64 / (end - start).max(1) as f64;
        let summary = format!(
            "{}: {} over {} steps, axis up to {}",
            self.title,
            self.lines
                .iter()
                .map(|l| l.label)
                .collect::<Vec<_>>()
                .join(", "),
            self.steps.len(),
            (self.format)(top)
        );
        html! {
            figure.chart id=(self.id) {
                figcaption {
                    h3 { (self.title) }
                    ul.legend {
                        @for line in &self.lines {
                            li { span class={"swatch " (line.class)} {} (line.label) }
                        }
                    }
                    output.readout aria-live="polite" {}
                }
                div.plot role="img" aria-label=(summary) {
                    @for k in 0..=intervals {
                        @let share = f64::from(k) / f64::from(intervals);
                        span.ylabel style=(format!("bottom: {:.2}%", share * 100.0)) {
                            ((self.format)(top * share))
                        }
                    }
                    svg viewBox=(format!("0 0 {W} {H}")) preserveAspectRatio="none" aria-hidden="true" {
                        @for k in 0..=intervals {
                            @let y = H - H * f64::from(k) / f64::from(intervals);
                            line.grid x1="0" x2=(W) y1=(format!("{y:.1}")) y2=(format!("{y:.1}")) {}
                        }
                        @for line in &self.lines {
                            path class={"line " (line.class)} d=(self.path(&line.values, top)) {}
                        }
                        @for (i, t) in self.steps.iter().enumerate() {
                            rect.hit x=(format!("{:.1}", self.x(*t))) y="0"
                                width=(format!("{column:.1}")) height=(H) data-t=(t) {
                                title { (self.step_title(i, *t)) }
                            }
                        }
                    }
                    @for t in &ticks {
                        span.xlabel style=(format!("left: {:.2}%", self.x(*t) / W * 100.0)) {
                            (format::tick(TimestampMs::from_millis(*t), end - start, tick))
                        }
                    }
                    @if empty {
                        p.nodata { "No readings in this range" }
                    }
                }
            }
        }
    }
}

/// A small rate trend for a table cell: an area under the values, no axes.
pub fn sparkline(values: &[f64], label: &str) -> Markup {
    let top = values.iter().fold(0.0f64, |a, &b| a.max(b));
    let n = values.len().max(2) - 1;
    let mut d = String::from("M0 24");
    for (i, v) in values.iter().enumerate() {
        let x = i as f64 / n as f64 * 100.0;
        let y = if top > 0.0 {
            24.0 - v / top * 22.0
        } else {
            24.0
        };
        let _ = write!(d, " L{x:.2} {y:.2}");
    }
    let _ = write!(d, " L100 24 Z");
    html! {
        svg.spark viewBox="0 0 100 24" preserveAspectRatio="none" role="img" aria-label=(label) {
            path d=(d) {}
        }
    }
}

/// One step of an availability strip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Beat {
    /// Heard, and every sample that said so said available (or none said).
    Up,
    /// Heard, but some samples said unavailable: the share that said available.
    Partly(f64),
    /// Heard, and every sample said unavailable.
    Down,
    /// Not heard: no heartbeat, so not known to be up.
    Silent,
    /// Not heard yet in the step still running (it is not a gap until the step is over).
    Waiting,
}

impl Beat {
    fn class(self) -> &'static str {
        match self {
            Beat::Up => "up",
            Beat::Partly(_) => "part",
            Beat::Down | Beat::Silent => "down",
            Beat::Waiting => "wait",
        }
    }

    fn describe(self) -> String {
        match self {
            Beat::Up => "up".to_owned(),
            Beat::Partly(share) => format!("available {}", format::percent(share)),
            Beat::Down => "unavailable".to_owned(),
            Beat::Silent => "silent (no heartbeat)".to_owned(),
            Beat::Waiting => "in progress, not heard yet".to_owned(),
        }
    }
}

/// Green / amber / red cells, one per step; silence is red, the running step grey until heard.
pub fn strip(steps: &[i64], beats: &[Beat], instance: &str) -> Markup {
    let up = beats.iter().filter(|b| **b == Beat::Up).count();
    let label = format!(
        "Availability of {instance}: up in {up} of {} steps",
        beats.len()
    );
    html! {
        div.strip role="img" aria-label=(label) {
            @for (t, beat) in steps.iter().zip(beats) {
                span class=(beat.class()) data-t=(t)
                    title=(format!("{}: {}", format::instant(TimestampMs::from_millis(*t)), beat.describe())) {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round_numbers() {
        assert_eq!(nice_top(0.7), (1.0, 4));
        assert_eq!(nice_top(1.3), (2.0, 4));
        assert_eq!(nice_top(2.2), (2.5, 5));
        assert_eq!(nice_top(430.0), (500.0, 5));
        assert_eq!(nice_top(5.0), (5.0, 5));
        assert_eq!(tick_interval(3_600_000), 600_000);
        assert_eq!(tick_interval(15 * 60_000), 300_000);
    }

    #[test]
    fn gaps_start_new_sub_paths() {
        let steps = [0, 1000, 2000, 3000];
        let chart = Chart {
            title: "t",
            id: "t",
            format: format::compact,
            min_top: 1.0,
            steps: &steps,
            step_ms: 1000,
            lines: vec![],
        };
        let d = chart.path(&[Some(1.0), Some(0.5), None, Some(0.0)], 1.0);
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches(" L").count(), 1, "{d}");
    }
}
