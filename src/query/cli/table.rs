//! Answers as aligned text tables for a terminal.

use crate::alerting::view::{AlertsAnswer, RulesAnswer};
use crate::query::answer::{
    GaugeStats, HostStatsAnswer, LatestAnswer, ReadingsAnswer, SeriesAnswer, StatsAnswer,
};
use crate::scrape::status::TargetsAnswer;

/// Columns padded to their widest cell, two spaces apart; numbers right-aligned.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..headers.len())
        .map(|i| {
            !rows.is_empty()
                && rows.iter().all(|r| {
                    r.get(i)
                        .is_some_and(|c| c == "-" || c.trim_end_matches('%').parse::<f64>().is_ok())
                })
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if numeric[i] {
                    format!("{cell:>w$}", w = widths[i])
                } else {
                    format!("{cell:<w$}", w = widths[i])
                }
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(headers.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n") + "\n"
}

fn ms(value: f64) -> String {
    format!("{value:.2}")
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn gauge(g: Option<GaugeStats>) -> String {
    g.map_or_else(|| "-".to_owned(), |g| format!("{:.1}/{:.1}", g.mean, g.max))
}

/// A byte gauge in MiB.
fn mib(g: Option<GaugeStats>) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    g.map_or_else(
        || "-".to_owned(),
        |g| format!("{:.1}/{:.1}", g.mean / MIB, g.max / MIB),
    )
}

/// `/v1/readings`.
pub fn readings(answer: &ReadingsAnswer) -> String {
    let rows: Vec<Vec<String>> = answer
        .readings
        .iter()
        .map(|r| {
            vec![
                r.timestamp.clone(),
                r.instance.clone(),
                r.method.clone(),
                r.path.clone(),
                r.code.to_string(),
                ms(r.duration_ms),
                r.count.to_string(),
            ]
        })
        .collect();
    let headers = [
        "TIME",
        "INSTANCE",
        "METHOD",
        "PATH",
        "CODE",
        "DURATION_MS",
        "COUNT",
    ];
    let mut out = render(&headers, &rows);
    out += &format!("{} readings", rows.len());
    match &answer.next_cursor {
        Some(cursor) => out += &format!("; more with --cursor {cursor}\n"),
        None => out += "\n",
    }
    out
}

/// `/v1/series`.
pub fn series(answer: &SeriesAnswer) -> String {
    let mut rows = Vec::new();
    for instance in &answer.instances {
        if instance.methods.is_empty() {
            rows.push(vec![
                instance.instance.clone(),
                "-".into(),
                "(host only)".into(),
            ]);
        }
        for m in &instance.methods {
            rows.push(vec![
                instance.instance.clone(),
                m.method.clone(),
                m.path.clone(),
            ]);
        }
    }
    render(&["INSTANCE", "METHOD", "PATH"], &rows)
}

/// `/v1/latest`.
pub fn latest(answer: &LatestAnswer) -> String {
    let api: Vec<Vec<String>> = answer
        .api
        .iter()
        .map(|r| {
            vec![
                r.service.clone(),
                r.instance.clone(),
                r.method.clone(),
                r.path.clone(),
                r.code.to_string(),
                ms(r.duration_ms),
                r.count.to_string(),
                r.timestamp.clone(),
            ]
        })
        .collect();
    let host: Vec<Vec<String>> = answer
        .host
        .iter()
        .map(|h| {
            vec![
                h.service.clone(),
                h.instance.clone(),
                or_dash(h.cpu_percent.map(|c| format!("{c:.1}"))),
                or_dash(h.mem_used_bytes),
                or_dash(h.mem_total_bytes),
                or_dash(h.disk_used_bytes),
                or_dash(h.heap_bytes),
                or_dash(h.available),
                h.timestamp.clone(),
            ]
        })
        .collect();
    let api_headers = [
        "SERVICE",
        "INSTANCE",
        "METHOD",
        "PATH",
        "CODE",
        "DURATION_MS",
        "COUNT",
        "TIME",
    ];
    let host_headers = [
        "SERVICE",
        "INSTANCE",
        "CPU%",
        "MEM_USED",
        "MEM_TOTAL",
        "DISK_USED",
        "HEAP",
        "AVAILABLE",
        "TIME",
    ];
    format!(
        "API\n{}\nHOST\n{}",
        render(&api_headers, &api),
        render(&host_headers, &host)
    )
}

/// `/v1/stats`.
pub fn stats(answer: &StatsAnswer) -> String {
    let mut rows = Vec::new();
    for group in &answer.groups {
        let k = &group.key;
        let key: Vec<String> = [
            k.instance.clone(),
            k.method.clone(),
            k.path.clone(),
            k.code.map(|c| c.to_string()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let key = if key.is_empty() {
            "(all)".to_owned()
        } else {
            key.join(" ")
        };
        for p in &group.points {
            rows.push(vec![
                p.t.clone(),
                key.clone(),
                p.count.to_string(),
                format!("{:.3}", p.rate),
                percent(p.error_rate),
                percent(p.client_error_rate),
                ms(p.mean_ms),
                ms(p.p50_ms),
                ms(p.p90_ms),
                ms(p.p99_ms),
                ms(p.max_ms),
            ]);
        }
    }
    let headers = [
        "T", "GROUP", "COUNT", "RATE/S", "5XX", "4XX", "MEAN_MS", "P50_MS", "P90_MS", "P99_MS",
        "MAX_MS",
    ];
    render(&headers, &rows)
}

/// `/v1/stats/host`: gauges as mean/max.
pub fn host_stats(answer: &HostStatsAnswer) -> String {
    let mut rows = Vec::new();
    for series in &answer.instances {
        for p in &series.points {
            rows.push(vec![
                p.t.clone(),
                series.instance.clone(),
                p.samples.to_string(),
                or_dash(p.availability.map(percent)),
                gauge(p.cpu_percent),
                mib(p.mem_used_bytes),
                mib(p.disk_used_bytes),
                mib(p.heap_bytes),
            ]);
        }
    }
    let headers = [
        "T",
        "INSTANCE",
        "SAMPLES",
        "AVAILABLE",
        "CPU% mean/max",
        "MEM_USED mean/max",
        "DISK_USED mean/max",
        "HEAP mean/max",
    ];
    render(&headers, &rows)
}

/// `/v1/targets`: one row per target this replica scrapes, then the count of the others.
pub fn targets(answer: &TargetsAnswer) -> String {
    let rows: Vec<Vec<String>> = answer
        .active_targets
        .iter()
        .map(|t| {
            vec![
                t.job.clone(),
                t.url.clone(),
                format!("{:?}", t.health).to_lowercase(),
                or_dash(t.last_scrape.clone()),
                or_dash(
                    t.last_scrape_duration_seconds
                        .map(|d| format!("{:.3}", d * 1000.0)),
                ),
                t.last_samples_read.to_string(),
                t.last_readings_produced.to_string(),
                or_dash(t.last_error.clone()),
            ]
        })
        .collect();
    let headers = [
        "JOB",
        "URL",
        "HEALTH",
        "LAST_SCRAPE",
        "MS",
        "SAMPLES",
        "READINGS",
        "ERROR",
    ];
    let mut out = render(&headers, &rows);
    let replica = answer.replica;
    out += &format!(
        "{} targets here (replica {} of {}), {} on other replicas\n",
        rows.len(),
        replica.index,
        replica.count,
        answer.dropped_targets.len()
    );
    out
}

/// `/api/v1/alerts`: firing first, the labels other than `alertname` as `k=v`.
pub fn alerts(answer: &AlertsAnswer) -> String {
    let rows: Vec<Vec<String>> = answer
        .alerts
        .iter()
        .map(|a| {
            let labels: Vec<String> = a
                .labels
                .iter()
                .filter(|(k, _)| k.as_str() != "alertname")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            vec![
                a.state.to_uppercase(),
                a.labels.get("alertname").cloned().unwrap_or_default(),
                labels.join(","),
                a.active_at.clone(),
                a.value.clone(),
                a.annotations
                    .get("summary")
                    .cloned()
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut out = render(
        &[
            "STATE",
            "ALERT",
            "LABELS",
            "ACTIVE_SINCE",
            "VALUE",
            "SUMMARY",
        ],
        &rows,
    );
    let firing = answer.alerts.iter().filter(|a| a.state == "firing").count();
    out += &format!(
        "{firing} firing, {} pending\n",
        answer.alerts.len() - firing
    );
    out
}

/// `/api/v1/rules`: one line per rule.
pub fn rules(answer: &RulesAnswer) -> String {
    let rows: Vec<Vec<String>> = answer
        .groups
        .iter()
        .flat_map(|g| {
            g.rules.iter().map(|r| {
                vec![
                    g.name.clone(),
                    r.name.clone(),
                    r.state.clone(),
                    r.health.clone(),
                    r.alerts.as_ref().map_or(0, Vec::len).to_string(),
                    r.last_evaluation.clone(),
                    format!("{:.3}", r.evaluation_time * 1000.0),
                    if r.last_error.is_empty() {
                        "-".to_owned()
                    } else {
                        r.last_error.clone()
                    },
                ]
            })
        })
        .collect();
    let headers = [
        "GROUP",
        "RULE",
        "STATE",
        "HEALTH",
        "ALERTS",
        "LAST_EVALUATION",
        "MS",
        "ERROR",
    ];
    let mut out = render(&headers, &rows);
    out += &format!("{} rules in {} groups\n", rows.len(), answer.groups.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_numbers_go_right() {
        let rows = vec![
            vec!["a".to_owned(), "1".to_owned()],
            vec!["long".to_owned(), "100".to_owned()],
        ];
        assert_eq!(
            render(&["NAME", "N"], &rows),
            "NAME    N\na       1\nlong  100\n"
        );
    }
}
