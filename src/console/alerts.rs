//! The alerts page: the firing and pending alerts of the evaluator, read from its
//! [`AlertsView`] (in memory, never waiting on an evaluation; on a replica that does not
//! evaluate, what the evaluator last stored). Without `--rules` the page says alerting is not
//! configured.

use axum::extract::State;
use axum::response::Response;
use maud::{html, Markup};

use super::format;
use super::layout::{page, Frame, Section};
use super::params::service_path;
use super::Console;
use crate::alerting::state::AlertState as EvaluatorState;
use crate::alerting::AlertsView;
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

/// What the page shows of `view`.
pub fn snapshot(view: &AlertsView) -> AlertSnapshot {
    let groups = view.rules();
    if groups.is_empty() {
        return AlertSnapshot::NotConfigured;
    }
    let at = groups
        .iter()
        .filter_map(|g| g.last_evaluation)
        .max()
        .unwrap_or_else(TimestampMs::now);
    let rules = groups.iter().map(|g| g.rules.len()).sum();
    let alerts = view
        .alerts()
        .into_iter()
        .filter_map(|alert| {
            let state = match alert.state {
                EvaluatorState::Firing => AlertState::Firing,
                EvaluatorState::Pending => AlertState::Pending,
                EvaluatorState::Inactive => return None,
            };
            let summary = ["summary", "description"]
                .iter()
                .find_map(|key| alert.annotations.get(*key).cloned())
                .unwrap_or_default();
            Some(Alert {
                rule: alert.rule,
                state,
                service: alert.labels.get("service").cloned(),
                active_since: alert.active_at,
                value: Some(format::compact(alert.value)),
                summary,
                labels: alert.labels.into_iter().collect(),
            })
        })
        .collect();
    AlertSnapshot::Evaluated { at, rules, alerts }
}

/// `GET /alerts`.
pub async fn alerts_page<S: Store>(State(console): State<Console<S>>) -> Response {
    let frame = Frame {
        title: "Alerts".to_owned(),
        section: Section::Alerts,
        crumbs: Vec::new(),
        picker: None,
    };
    let body = render(snapshot(&console.alerts), TimestampMs::now());
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
        let html = render(
            snapshot(&AlertsView::disabled()),
            TimestampMs::from_millis(0),
        )
        .into_string();
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
