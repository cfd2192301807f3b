//! The time range of a page and how it is written in the URL, so a link shows the same thing to
//! whoever opens it.
//!
//! A range is either a preset ending now (`?range=1h`: 15m, 1h, 6h, 24h, 7d) or a custom
//! `[from, to]` (`?from=…&to=…`, RFC 3339, epoch milliseconds or the `2026-11-25T22:04` of a
//! date-time input, read as UTC). A preset link moves with the clock; a custom one is fixed
//! (the "link to this range" freezes a preset into one). `refresh` (`10s` … `5m`) reloads the
//! page. Every page derives its chart step from the range, so a URL fixes the whole picture.
//!
//! Invariant: a [`PageRange`] has `from <= to`; whether the span is within the service's
//! `--query-max-range` is for the query layer to say, in the same words as for `/v1/stats`.

use chrono::NaiveDateTime;

use super::params::Params;
use crate::model::TimestampMs;

/// The preset ranges of the picker, ending now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The last 15 minutes.
    M15,
    /// The last hour (the default).
    H1,
    /// The last 6 hours.
    H6,
    /// The last day.
    H24,
    /// The last week (the default retention).
    D7,
}

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Chart steps a custom range may get, ms: the smallest giving at most [`MAX_STEPS`] steps.
const NICE_STEPS_MS: [i64; 17] = [
    SECOND,
    5 * SECOND,
    10 * SECOND,
    15 * SECOND,
    30 * SECOND,
    MINUTE,
    2 * MINUTE,
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    2 * HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
];
/// Most chart steps over a range: enough detail for a 1280 px chart, few enough that host
/// stats of a hundred instances stay within the default 10,000 points.
const MAX_STEPS: i64 = 100;

impl Preset {
    /// Every preset, in picker order.
    pub const ALL: [Preset; 5] = [Preset::M15, Preset::H1, Preset::H6, Preset::H24, Preset::D7];

    /// The URL value: `15m`, `1h`, `6h`, `24h`, `7d`.
    pub fn key(self) -> &'static str {
        match self {
            Preset::M15 => "15m",
            Preset::H1 => "1h",
            Preset::H6 => "6h",
            Preset::H24 => "24h",
            Preset::D7 => "7d",
        }
    }

    /// The picker's text.
    pub fn title(self) -> &'static str {
        match self {
            Preset::M15 => "Last 15 minutes",
            Preset::H1 => "Last hour",
            Preset::H6 => "Last 6 hours",
            Preset::H24 => "Last 24 hours",
            Preset::D7 => "Last 7 days",
        }
    }

    fn parse(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.key() == key)
    }

    fn span_ms(self) -> i64 {
        match self {
            Preset::M15 => 15 * MINUTE,
            Preset::H1 => HOUR,
            Preset::H6 => 6 * HOUR,
            Preset::H24 => DAY,
            Preset::D7 => 7 * DAY,
        }
    }

    /// 60 to 96 steps per preset.
    fn step_ms(self) -> i64 {
        match self {
            Preset::M15 => 15 * SECOND,
            Preset::H1 => MINUTE,
            Preset::H6 => 5 * MINUTE,
            Preset::H24 => 15 * MINUTE,
            Preset::D7 => 2 * HOUR,
        }
    }
}

/// The auto-refresh choices, seconds (`None`: off, the default).
pub const REFRESH_CHOICES: [(Option<u32>, &str); 5] = [
    (None, "off"),
    (Some(10), "10s"),
    (Some(30), "30s"),
    (Some(60), "1m"),
    (Some(300), "5m"),
];

/// How the range was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// A preset ending at the time of the request.
    Last(Preset),
    /// A fixed range.
    Custom,
}

/// The resolved range of one page view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    /// How it was asked for.
    pub window: Window,
    /// Oldest instant, inclusive.
    pub from: TimestampMs,
    /// Newest instant, inclusive.
    pub to: TimestampMs,
    /// The chart step, ms.
    pub step_ms: i64,
    /// Auto-refresh period, seconds.
    pub refresh: Option<u32>,
}

/// Reads a custom bound: RFC 3339, epoch ms, or a date-time input's value (UTC).
fn parse_instant(text: &str) -> Result<TimestampMs, String> {
    if let Ok(at) = TimestampMs::parse(text) {
        return Ok(at);
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|t| TimestampMs::from_millis(t.and_utc().timestamp_millis()))
        .ok_or_else(|| {
            format!(
                "must be a date and time like 2026-11-25T22:04 (UTC), RFC 3339 or epoch \
                 milliseconds; got `{text}`"
            )
        })
}

impl PageRange {
    /// The range `params` ask for, presets resolved against `now`; each problem is
    /// `(parameter, problem)`.
    pub fn from_params(params: &Params, now: TimestampMs) -> Result<Self, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let refresh = match params.get("refresh") {
            None => None,
            Some(text) => match REFRESH_CHOICES.iter().find(|(_, key)| *key == text) {
                Some((seconds, _)) => *seconds,
                None => {
                    problems.push((
                        "refresh".to_owned(),
                        format!("must be one of off, 10s, 30s, 1m, 5m; got `{text}`"),
                    ));
                    None
                }
            },
        };
        let preset = match params.get("range") {
            Some("custom") => None,
            Some(key) => match Preset::parse(key) {
                Some(preset) => Some(preset),
                None => {
                    problems.push((
                        "range".to_owned(),
                        format!("must be one of 15m, 1h, 6h, 24h, 7d or custom; got `{key}`"),
                    ));
                    return Err(problems);
                }
            },
            // No preset and no bounds: the last hour.
            None if params.get("from").is_none() && params.get("to").is_none() => Some(Preset::H1),
            None => None,
        };
        let range = match preset {
            Some(preset) => Some(Self {
                window: Window::Last(preset),
                from: TimestampMs::from_millis(now.millis() - preset.span_ms()),
                to: now,
                step_ms: preset.step_ms(),
                refresh,
            }),
            None => {
                let mut bound = |name: &str| match params.get(name).map(parse_instant) {
                    Some(Ok(at)) => Some(at),
                    Some(Err(problem)) => {
                        problems.push((name.to_owned(), problem));
                        None
                    }
                    None => {
                        problems.push((name.to_owned(), "is required for a custom range".into()));
                        None
                    }
                };
                let (from, to) = (bound("from"), bound("to"));
                match (from, to) {
                    (Some(from), Some(to)) if from > to => {
                        problems.push(("from".to_owned(), "must not be after `to`".to_owned()));
                        None
                    }
                    (Some(from), Some(to)) => Some(Self {
                        window: Window::Custom,
                        from,
                        to,
                        step_ms: custom_step_ms(to.millis() - from.millis()),
                        refresh,
                    }),
                    _ => None,
                }
            }
        };
        match range {
            Some(range) if problems.is_empty() => Ok(range),
            _ => Err(problems),
        }
    }

    /// `to - from`, ms (at least 1, so rates never divide by zero).
    pub fn span_ms(&self) -> i64 {
        (self.to.millis() - self.from.millis()).max(1)
    }

    /// The chart step as a query-layer `step` (`60000ms`).
    pub fn step_param(&self) -> String {
        format!("{}ms", self.step_ms)
    }

    /// A `step` whose single step holds all of `[from, to]`: steps are aligned to the epoch,
    /// so one longer than `to` since the epoch starts at 0 and ends after `to`. The stats of
    /// that one step are the totals of the range (exact counts, and percentiles of the whole
    /// range rather than of one step); its `rate` is per that long step, so per-second rates
    /// over the range are `count / span`.
    pub fn whole_range_step_param(&self) -> String {
        format!("{}ms", self.to.millis().max(SECOND) + 1)
    }

    /// The start of every chart step overlapping the range, oldest first.
    pub fn step_starts(&self) -> impl Iterator<Item = i64> {
        let step = self.step_ms;
        let first = self.from.millis().div_euclid(step) * step;
        let last = self.to.millis().div_euclid(step) * step;
        (0..)
            .map(move |i| first + i * step)
            .take_while(move |t| *t <= last)
    }

    /// The URL parameters that reproduce this range: a preset stays a preset.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut out = match self.window {
            Window::Last(preset) => vec![("range", preset.key().to_owned())],
            Window::Custom => self.frozen_bounds(),
        };
        if let Some(refresh) = self.refresh_key() {
            out.push(("refresh", refresh.to_owned()));
        }
        out
    }

    /// The parameters of exactly this `[from, to]`, a preset frozen into a custom range.
    pub fn frozen_bounds(&self) -> Vec<(&'static str, String)> {
        vec![
            ("from", self.from.to_rfc3339()),
            ("to", self.to.to_rfc3339()),
        ]
    }

    /// The `refresh` value, when on.
    pub fn refresh_key(&self) -> Option<&'static str> {
        let seconds = self.refresh?;
        REFRESH_CHOICES
            .iter()
            .find(|(s, _)| *s == Some(seconds))
            .map(|(_, key)| *key)
    }
}

fn custom_step_ms(span_ms: i64) -> i64 {
    NICE_STEPS_MS
        .into_iter()
        .find(|step| span_ms / step < MAX_STEPS)
        .unwrap_or(DAY * ((span_ms + DAY * MAX_STEPS - 1) / (DAY * MAX_STEPS)).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, &str)]) -> Params {
        Params::new(
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    const NOW: i64 = 1_764_108_000_000;

    fn resolve(list: &[(&str, &str)]) -> Result<PageRange, Vec<(String, String)>> {
        PageRange::from_params(&params(list), TimestampMs::from_millis(NOW))
    }

    #[test]
    fn presets_end_now_and_the_default_is_the_last_hour() {
        let range = resolve(&[]).unwrap();
        assert_eq!(range.window, Window::Last(Preset::H1));
        assert_eq!((range.from.millis(), range.to.millis()), (NOW - HOUR, NOW));
        assert_eq!(range.params(), [("range", "1h".to_owned())]);
        let week = resolve(&[("range", "7d"), ("refresh", "30s")]).unwrap();
        assert_eq!(week.step_ms, 2 * HOUR);
        assert_eq!(
            week.params(),
            [("range", "7d".to_owned()), ("refresh", "30s".to_owned())]
        );
        // A preset wins over the bounds a form also sent.
        let preset = resolve(&[("range", "15m"), ("from", "1"), ("to", "2")]).unwrap();
        assert_eq!(preset.window, Window::Last(Preset::M15));
    }

    #[test]
    fn custom_ranges_read_every_time_format_as_utc() {
        let range = resolve(&[
            ("range", "custom"),
            ("from", "2025-11-25T20:00"),
            ("to", "2025-11-25T22:00:00Z"),
        ])
        .unwrap();
        assert_eq!(range.window, Window::Custom);
        assert_eq!(range.span_ms(), 2 * HOUR);
        assert_eq!(range.step_ms, 2 * MINUTE);
        assert_eq!(
            range.params()[0],
            ("from", "2025-11-25T20:00:00.000Z".to_owned())
        );
        let by_millis = resolve(&[("from", "1000"), ("to", "61000")]).unwrap();
        assert_eq!(by_millis.step_ms, SECOND);
        assert_eq!(by_millis.step_starts().count(), 61);
    }

    #[test]
    fn problems_name_their_parameter() {
        let fields = |list: &[(&str, &str)]| -> Vec<String> {
            resolve(list)
                .unwrap_err()
                .into_iter()
                .map(|p| p.0)
                .collect()
        };
        assert_eq!(fields(&[("range", "2h")]), ["range"]);
        assert_eq!(fields(&[("range", "custom"), ("to", "5")]), ["from"]);
        assert_eq!(fields(&[("from", "yesterday"), ("to", "5")]), ["from"]);
        assert_eq!(fields(&[("from", "9"), ("to", "5")]), ["from"]);
        assert_eq!(fields(&[("refresh", "1s")]), ["refresh"]);
    }

    #[test]
    fn the_whole_range_step_holds_the_range_in_one_step() {
        let range = resolve(&[("from", "1764100000000"), ("to", "1764108000000")]).unwrap();
        let step: i64 = range
            .whole_range_step_param()
            .trim_end_matches("ms")
            .parse()
            .unwrap();
        assert_eq!(range.from.millis().div_euclid(step), 0);
        assert_eq!(range.to.millis().div_euclid(step), 0);
    }
}
