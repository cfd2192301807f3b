//! The alerts page and the seam it reads through: [`AlertSource`].
//!
//! timebucket has no alert evaluator yet. The page asks an [`AlertSource`] for a snapshot of
//! what is firing and pending; until an evaluator implements it, the console is built with
//! [`NotConfigured`] and the page says that alerting is not configured. Wiring an evaluator is
//! one call: `Console::new(queries).with_alerts(Arc::new(evaluator_handle))`, where the handle
//! returns its current state from [`AlertSource::snapshot`] (cheap and non-blocking: the
//! evaluator keeps its state in memory between evaluations; the page never triggers one).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{html, Markup};

use super::format;
use super::layout::{page, Frame, Section};
use super::params::service_path;
use super::Console;
use crate::model::TimestampMs;
use crate::store::Store;

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    /// The condition holds and has held for the rule's `for` duration.
    Firing,
    /// The condition holds, not yet for long enough.
    Pending,
}

/// One active alert, as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The rule's name.
    pub rule: String,
    /// Firing or pending.
    pub state: AlertState,
    /// The service it is about, when it is about one (linked to its page).
    pub service: Option<String>,
    /// Since when the condition has held.
    pub active_since: TimestampMs,
    /// The value that crossed the threshold, already formatted with its unit (`7.5%`).
    pub value: Option<String>,
    /// One human sentence: what is wrong.
    pub summary: String,
    /// The alert's labels, sorted.
    pub labels: Vec<(String, String)>,
}

/// What the alerting subsystem says right now.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertSnapshot {
    /// No evaluator is configured.
    NotConfigured,
    /// The evaluator's state after its last evaluation.
    Evaluated {
        /// When the rules were last evaluated.
        at: TimestampMs,
        /// How many rules are loaded.
        rules: usize,
        /// Firing and pending alerts.
        alerts: Vec<Alert>,
    },
}

/// The alerting subsystem, as the console sees it.
pub trait AlertSource: Send + Sync + 'static {
    /// The current alerts. Called on every page view: must not block on I/O.
    fn snapshot(&self) -> AlertSnapshot;
}

/// The source used until an evaluator exists: alerting is not configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotConfigured;

impl AlertSource for NotConfigured {
    fn snapshot(&self) -> AlertSnapshot {
        AlertSnapshot::NotConfigured
    }
}

/// The default source, shared.
pub fn not_configured() -> Arc<dyn AlertSource> {
    Arc::new(NotConfigured)
}

/// `GET /alerts`.
pub async fn alerts_page<S: Store>(State(console): State<Console<S>>) -> Response {
    let frame = Frame {
        title: "Alerts".to_owned(),
        section: Section::Alerts,
        crumbs: Vec::new(),
        picker: None,
    };
    let body = render(console.alerts.snapshot(), TimestampMs::now());
    super::html_response(page(&frame, body))
}

/// The page's content for `snapshot`, seen at `now`.
fn render(snapshot: AlertSnapshot, now: TimestampMs) -> Markup {
    match snapshot {
        AlertSnapshot::NotConfigured => html! {
            h1 { "Alerts" }
            div.notice #alerts-not-configured {
                h2 { "Alerting is not configured" }
                p {
                    "timebucket is not evaluating any alert rules, so nothing can fire or be "
                    "pending. Once alert rules are set up, the alerts that fire or are pending "
                    "show here, with the service each is about."
                }
            }
        },
        AlertSnapshot::Evaluated {
            at,
            rules,
            mut alerts,
        } => {
            alerts.sort_by(|a, b| (a.state, &a.rule).cmp(&(b.state, &b.rule)));
            let firing = alerts
                .iter()
                .filter(|a| a.state == AlertState::Firing)
                .count();
            html! {
                h1 { "Alerts" }
                p.sub {
                    (firing) " firing, " (alerts.len() - firing) " pending, of " (rules)
                    " rules · evaluated " (format::ago(at, now))
                }
                @if alerts.is_empty() {
                    div.empty { "Nothing is firing or pending." }
                } @else {
                    div.table-wrap {
                        table #alerts {
                            thead { tr {
                                th scope="col" { "State" } th scope="col" { "Rule" }
                                th scope="col" { "Service" } th scope="col" { "Value" }
                                th scope="col" { "Active since" } th scope="col" { "Summary" }
                            } }
                            tbody {
                                @for alert in &alerts {
                                    tr {
                                        td { @match alert.state {
                                            AlertState::Firing => span.status { span.dot.down {} "Firing" },
                                            AlertState::Pending => span.status { span.dot.part {} "Pending" },
                                        } }
                                        td { (alert.rule) }
                                        td { @if let Some(service) = &alert.service {
                                            a href=(service_path(service)) { (service) }
                                        } }
                                        td.num { (alert.value.as_deref().unwrap_or("")) }
                                        td { (format::instant(alert.active_since)) }
                                        td.wrap {
                                            (alert.summary)
                                            @for (name, value) in &alert.labels {
                                                " " code { (name) "=" (value) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_evaluator_the_page_says_alerting_is_not_configured() {
        let html = render(NotConfigured.snapshot(), TimestampMs::from_millis(0)).into_string();
        assert!(html.contains("Alerting is not configured"), "{html}");
    }

    #[test]
    fn alerts_are_listed_firing_first_and_their_text_is_escaped() {
        let alert = |rule: &str, state| Alert {
            rule: rule.to_owned(),
            state,
            service: Some("<b>shop</b>".to_owned()),
            active_since: TimestampMs::from_millis(0),
            value: Some("7.5%".to_owned()),
            summary: "<script>alert(1)</script> errors".to_owned(),
            labels: vec![("severity".to_owned(), "page".to_owned())],
        };
        let snapshot = AlertSnapshot::Evaluated {
            at: TimestampMs::from_millis(60_000),
            rules: 3,
            alerts: vec![
                alert("b-pending", AlertState::Pending),
                alert("a-firing", AlertState::Firing),
            ],
        };
        let html = render(snapshot, TimestampMs::from_millis(120_000)).into_string();
        assert!(
            html.contains("1 firing, 1 pending, of 3 rules · evaluated 1 min ago"),
            "{html}"
        );
        assert!(html.find("a-firing") < html.find("b-pending"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; errors"));
        assert!(!html.contains("<script>alert"));
        assert!(
            html.contains("href=\"/services/%3Cb%3Eshop%3C%2Fb%3E\""),
            "{html}"
        );
        assert!(html.contains("severity=page"));
    }
}
