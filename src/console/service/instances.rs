//! The service page's instances: every instance of the series index over the range (those that
//! send only API readings too), its latest host gauges from `/v1/latest`, and an availability
//! strip of `/v1/stats/host` per chart step (red where it was silent).

use std::collections::{BTreeMap, HashMap};

use maud::{html, Markup};

use crate::console::chart::{strip, Beat};
use crate::console::format;
use crate::console::status;
use crate::model::TimestampMs;
use crate::query::answer::{HostReadingOut, HostStatsAnswer, LatestAnswer, SeriesAnswer};

/// One instance's line.
struct InstanceRow<'a> {
    name: &'a str,
    /// One beat per chart step; `None` when the instance sent no host readings in the range.
    beats: Option<Vec<Beat>>,
    latest: Option<&'a HostReadingOut>,
}

/// The instances of a service.
pub struct Instances<'a> {
    rows: Vec<InstanceRow<'a>>,
    now: TimestampMs,
}

impl<'a> Instances<'a> {
    /// Joins the three answers by instance name.
    pub fn new(
        series: &'a SeriesAnswer,
        host: &'a HostStatsAnswer,
        latest: &'a LatestAnswer,
        steps: &[i64],
        step_ms: i64,
    ) -> Self {
        let now = TimestampMs::now();
        let latest: HashMap<&str, &HostReadingOut> = latest
            .host
            .iter()
            .map(|r| (r.instance.as_str(), r))
            .collect();
        let mut rows: BTreeMap<&str, InstanceRow> = BTreeMap::new();
        for name in series.instances.iter().map(|i| i.instance.as_str()) {
            rows.insert(
                name,
                InstanceRow {
                    name,
                    beats: None,
                    latest: latest.get(name).copied(),
                },
            );
        }
        for series in &host.instances {
            let name = series.instance.as_str();
            rows.entry(name)
                .or_insert(InstanceRow {
                    name,
                    beats: None,
                    latest: latest.get(name).copied(),
                })
                .beats = Some(status::beats(series, steps, step_ms, now));
        }
        Self {
            rows: rows.into_values().collect(),
            now,
        }
    }

    /// How many instances there are.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    fn gauge(used: Option<i64>, total: Option<i64>, key: &str) -> Markup {
        match (used, total) {
            (Some(used), Some(total)) if total > 0 => {
                let share = used as f64 / total as f64;
                html! {
                    td data-col=(key) data-value=(used) data-total=(total) {
                        span.bar.hot[share >= 0.9] {
                            span style=(format!("width: {:.1}%", (share * 100.0).clamp(0.0, 100.0))) {}
                        }
                        (format::bytes(used as f64)) " / " (format::bytes(total as f64))
                    }
                }
            }
            (Some(used), _) => html! {
                td data-col=(key) data-value=(used) { (format::bytes(used as f64)) }
            },
            _ => html! { td.muted { "–" } },
        }
    }

    fn row(&self, r: &InstanceRow, steps: &[i64]) -> Markup {
        let up = r.beats.as_deref().map(status::is_up);
        let latest = r.latest;
        html! {
            tr data-instance=(r.name) data-up=[up] {
                td.name { (r.name) }
                td {
                    @match up {
                        Some(true) => span.status { span.dot.up {} "Up" },
                        Some(false) => span.status { span.dot.down {} "Down" },
                        None => span.muted title="No host readings in this range: no heartbeat to judge by" { "API only" },
                    }
                }
                td {
                    @if let Some(beats) = &r.beats {
                        (strip(steps, beats, r.name))
                    }
                }
                @match latest.and_then(|l| l.cpu_percent) {
                    Some(cpu) => td.num data-col="cpu" data-value=(cpu) { (format::cpu_percent(cpu)) },
                    None => td.num.muted { "–" },
                }
                (Self::gauge(latest.and_then(|l| l.mem_used_bytes), latest.and_then(|l| l.mem_total_bytes), "mem"))
                (Self::gauge(latest.and_then(|l| l.disk_used_bytes), latest.and_then(|l| l.disk_total_bytes), "disk"))
                td.muted {
                    @if let Some(at) = latest.and_then(|l| TimestampMs::parse(&l.timestamp).ok()) {
                        time datetime=(at.to_rfc3339()) title=(format::instant(at)) { (format::ago(at, self.now)) }
                    } @else {
                        "–"
                    }
                }
            }
        }
    }

    /// The section.
    pub fn render(&self, steps: &[i64]) -> Markup {
        html! {
            section #instances aria-labelledby="instances-title" {
                h2 #instances-title { "Instances" }
                @if self.rows.is_empty() {
                    div.empty { "No instance reported in this range." }
                } @else {
                    div.table-wrap {
                        table #instances-table {
                            thead { tr {
                                th scope="col" { "Instance" }
                                th scope="col" { "Status" }
                                th scope="col" { "Availability over the range" }
                                th.num scope="col" { "CPU" }
                                th scope="col" { "Memory" }
                                th scope="col" { "Disk" }
                                th scope="col" { "Last host reading" }
                            } }
                            tbody { @for r in &self.rows { (self.row(r, steps)) } }
                        }
                    }
                    p.key {
                        span { "up" }
                        span.part { "partly available" }
                        span.down { "unavailable or silent (no heartbeat)" }
                        " · gauges are each instance's latest host reading"
                    }
                }
            }
        }
    }
}
