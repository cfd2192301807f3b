//! Numbers with units, as the console shows them: `12.5 ms`, `1.2k/s`, `734 MiB`, `5.23%`.
//!
//! Every figure on a page goes through one of these functions, so a unit is never forgotten and
//! the same quantity reads the same everywhere. Figures keep about three significant digits:
//! enough to compare, few enough to scan a column. Times are UTC (the server renders them and
//! does not know the reader's zone; the page says so).

use chrono::{DateTime, Utc};

use crate::model::TimestampMs;

/// The 5xx share from which a figure is shown in red.
pub const HOT_ERROR_SHARE: f64 = 0.05;

/// `value` with at most `significant` significant digits and at most two decimals, trailing
/// zeros dropped (`12.50` → `12.5`, `3.0` → `3`).
fn significant(value: f64, significant: i32) -> String {
    if value == 0.0 || !value.is_finite() {
        return "0".to_owned();
    }
    let magnitude = value.abs().log10().floor() as i32 + 1;
    let decimals = (significant - magnitude).clamp(0, 2) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A count or rate in compact form: `0.35`, `12.5`, `999`, `1.2k`, `12.3k`, `123k`, `4.5M`;
/// `<0.01` for a tiny non-zero value (one request in a week must not read as none).
pub fn compact(value: f64) -> String {
    if value > 0.0 && value < 0.005 {
        return "<0.01".to_owned();
    }
    const UNITS: [(f64, &str); 3] = [(1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (scale, suffix) in UNITS {
        // 999,950 would round to "1000k": it is already "1M".
        if value.abs() >= scale * 0.99995 {
            let scaled = value / scale;
            let decimals = if scaled.abs() >= 99.95 { 0 } else { 1 };
            let text = format!("{scaled:.decimals$}");
            let text = text.strip_suffix(".0").unwrap_or(&text);
            return format!("{text}{suffix}");
        }
    }
    significant(value, 3)
}

/// Requests per second: `1.2k/s`, `0.35/s`.
pub fn rate(per_second: f64) -> String {
    format!("{}/s", compact(per_second))
}

/// A whole count with thousands separators: `12,345`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A share (0.0–1.0) as a percentage: `0%`, `0.52%`, `12.3%`, `100%`; below 0.01% but above
/// zero, `<0.01%` (a few errors must not read as none).
pub fn percent(share: f64) -> String {
    let pct = share * 100.0;
    if pct > 0.0 && pct < 0.005 {
        return "<0.01%".to_owned();
    }
    format!("{}%", significant(pct, 3))
}

/// A duration in milliseconds: `850 µs`, `3.25 ms`, `12.5 ms`, `1.25 s`, `2.5 min`, `1.5 h`.
pub fn duration_ms(ms: f64) -> String {
    if ms > 0.0 && ms < 1.0 {
        format!("{} µs", significant(ms * 1000.0, 3))
    } else if ms < 1000.0 {
        format!("{} ms", significant(ms, 3))
    } else if ms < 60_000.0 {
        format!("{} s", significant(ms / 1000.0, 3))
    } else if ms < 3_600_000.0 {
        format!("{} min", significant(ms / 60_000.0, 3))
    } else {
        format!("{} h", significant(ms / 3_600_000.0, 3))
    }
}

/// A size in bytes, binary units: `512 B`, `12.5 KiB`, `734 MiB`, `1.5 GiB`.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n;
    let mut unit = 0;
    while value.abs() >= 1023.5 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{} {}", significant(value, 3), UNITS[unit])
}

/// A CPU usage in percent of one core (the agent sums cores): `37.5%`.
pub fn cpu_percent(pct: f64) -> String {
    format!("{}%", significant(pct, 3))
}

fn datetime(at: TimestampMs) -> DateTime<Utc> {
    at.to_datetime()
}

/// A full instant: `2026-11-25 22:04:00 UTC`.
pub fn instant(at: TimestampMs) -> String {
    datetime(at).format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An instant with milliseconds, for raw readings, as its date and its time of day:
/// (`2026-11-25`, `22:04:00.137`).
pub fn date_and_time_ms(at: TimestampMs) -> (String, String) {
    let t = datetime(at);
    (
        t.format("%Y-%m-%d").to_string(),
        t.format("%H:%M:%S%.3f").to_string(),
    )
}

/// The value of an `<input type="datetime-local">` for `at` (UTC): `2026-11-25T22:04`.
pub fn datetime_local(at: TimestampMs) -> String {
    datetime(at).format("%Y-%m-%dT%H:%M").to_string()
}

/// A chart's time label: `22:04` within a day, `Nov 25 22:04` for longer spans, `Nov 25` for
/// day ticks.
pub fn tick(at: TimestampMs, span_ms: i64, tick_ms: i64) -> String {
    let t = datetime(at);
    if tick_ms >= 86_400_000 {
        t.format("%b %d").to_string()
    } else if span_ms > 86_400_000 {
        t.format("%b %d %H:%M").to_string()
    } else {
        t.format("%H:%M").to_string()
    }
}

/// How long ago `at` was, seen from `now`: `12 s ago`, `5 min ago`, `3 h ago`, `2 d ago`.
pub fn ago(at: TimestampMs, now: TimestampMs) -> String {
    let s = (now.millis() - at.millis()).max(0) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_counts_are_compact() {
        let cases = [
            (0.0, "0/s"),
            (0.000_01, "<0.01/s"),
            (0.03333, "0.03/s"),
            (0.35, "0.35/s"),
            (12.5, "12.5/s"),
            (999.0, "999/s"),
            (1234.0, "1.2k/s"),
            (12_345.0, "12.3k/s"),
            (123_456.0, "123k/s"),
            (999_990.0, "1M/s"),
            (4_500_000.0, "4.5M/s"),
        ];
        for (value, want) in cases {
            assert_eq!(rate(value), want, "{value}");
        }
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(12_345_678), "12,345,678");
    }

    #[test]
    fn durations_pick_their_unit() {
        let cases = [
            (0.0, "0 ms"),
            (0.85, "850 µs"),
            (3.25, "3.25 ms"),
            (12.5, "12.5 ms"),
            (12.54, "12.5 ms"),
            (245.0, "245 ms"),
            (1250.0, "1.25 s"),
            (150_000.0, "2.5 min"),
            (5_400_000.0, "1.5 h"),
        ];
        for (value, want) in cases {
            assert_eq!(duration_ms(value), want, "{value}");
        }
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(12.5 * 1024.0), "12.5 KiB");
        assert_eq!(bytes(769_654_784.0), "734 MiB");
        assert_eq!(bytes(1.5 * 1024.0 * 1024.0 * 1024.0), "1.5 GiB");
        assert_eq!(bytes(1023.9), "1 KiB");
    }

    #[test]
    fn percentages_never_hide_a_few_errors() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.000_01), "<0.01%");
        assert_eq!(percent(0.0052), "0.52%");
        assert_eq!(percent(0.123), "12.3%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(cpu_percent(37.5), "37.5%");
    }

    #[test]
    fn times_are_utc() {
        let at = TimestampMs::parse("2026-11-25T22:04:00.137Z").unwrap();
        assert_eq!(instant(at), "2026-11-25 22:04:00 UTC");
        assert_eq!(
            date_and_time_ms(at),
            ("2026-11-25".to_owned(), "22:04:00.137".to_owned())
        );
        assert_eq!(datetime_local(at), "2026-11-25T22:04");
        assert_eq!(tick(at, 3_600_000, 600_000), "22:04");
        assert_eq!(tick(at, 7 * 86_400_000, 86_400_000), "Nov 25");
        let later = TimestampMs::from_millis(at.millis() + 300_000);
        assert_eq!(ago(at, later), "5 min ago");
    }
}
