//! `timebucket serve`'s alerting flags, and `timebucket rules check`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{at_least, FlagError};
use crate::alerting::clock::SystemClock;
use crate::alerting::{AlertingConfig, NotifyConfig, RetryPolicy};

/// `timebucket serve` flags of alerting.
#[derive(Debug, Clone, Args)]
pub struct AlertingArgs {
    /// Prometheus-format alerting rule files; globs allowed (`rules/*.yml`); repeat the flag or
    /// separate with commas. Alerting is off without them.
    #[arg(long = "rules", env = "TIMEBUCKET_RULES", value_name = "FILE", value_delimiter = ',', num_args = 1..)]
    pub rules: Vec<String>,
    /// An Alertmanager to send alerts to (its API v2), e.g. http://127.0.0.1:9093; repeatable.
    #[arg(
        long,
        env = "TIMEBUCKET_ALERTMANAGER_URL",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub alertmanager_url: Vec<String>,
    /// A webhook to post firing and resolved alerts to (Alertmanager's webhook payload);
    /// repeatable.
    #[arg(
        long,
        env = "TIMEBUCKET_ALERT_WEBHOOK",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub alert_webhook: Vec<String>,
    /// Evaluation interval of a rule group that sets no `interval`.
    #[arg(long, env = "TIMEBUCKET_RULE_EVALUATION_INTERVAL", default_value_t = AlertingConfig::DEFAULT_EVALUATION_INTERVAL.into())]
    pub rule_evaluation_interval: humantime::Duration,
    /// How often a firing alert is sent to Alertmanager again (Prometheus' resend delay).
    #[arg(long, env = "TIMEBUCKET_ALERT_RESEND_DELAY", default_value_t = AlertingConfig::DEFAULT_RESEND_DELAY.into())]
    pub alert_resend_delay: humantime::Duration,
    /// How long the rule evaluator's lease lasts unrenewed, whole seconds: with replicas on
    /// one CQL cluster, another takes over within about 4/3 of it when the evaluator dies.
    #[arg(long, env = "TIMEBUCKET_ALERT_LEASE_TTL", default_value_t = AlertingConfig::DEFAULT_LEASE_TTL.into())]
    pub alert_lease_ttl: humantime::Duration,
    /// Alerts (Alertmanager) or messages (each webhook) that may wait; the oldest are dropped
    /// and counted past it.
    #[arg(long, env = "TIMEBUCKET_ALERT_QUEUE_CAPACITY", default_value_t = NotifyConfig::DEFAULT_QUEUE_CAPACITY)]
    pub alert_queue_capacity: usize,
    /// Longest one request to an Alertmanager or webhook may take.
    #[arg(long, env = "TIMEBUCKET_ALERT_NOTIFY_TIMEOUT", default_value_t = NotifyConfig::DEFAULT_TIMEOUT.into())]
    pub alert_notify_timeout: humantime::Duration,
    /// This service's URL as people reach it, for links in alerts (`generatorURL`,
    /// `$externalURL`) [default: http://<listen address>].
    #[arg(long, env = "TIMEBUCKET_EXTERNAL_URL", value_name = "URL")]
    pub external_url: Option<String>,
}

/// An `http://` URL with a host (this build has no TLS client).
fn http_url(flag: &'static str, url: &str) -> Result<String, FlagError> {
    match url.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(url.to_owned()),
        _ if url.starts_with("https://") => Err(FlagError::new(
            flag,
            format!("must be an http:// URL (this build has no TLS client; use a TLS-terminating proxy), got {url}"),
        )),
        _ => Err(FlagError::new(flag, format!("must be an http:// URL, got {url:?}"))),
    }
}

fn positive(flag: &'static str, value: humantime::Duration) -> Result<Duration, FlagError> {
    let value = Duration::from(value);
    if value.is_zero() {
        return Err(FlagError::new(flag, "must be more than zero, got 0s"));
    }
    Ok(value)
}

impl AlertingArgs {
    /// The validated alerting config; state files under `data_dir`.
    pub fn config(&self, data_dir: &Path) -> Result<AlertingConfig, FlagError> {
        let lease_ttl = Duration::from(self.alert_lease_ttl);
        if lease_ttl < Duration::from_secs(1) || lease_ttl.subsec_nanos() != 0 {
            return Err(FlagError::new(
                "--alert-lease-ttl",
                format!(
                    "must be whole seconds, at least 1s (a CQL TTL), got {}",
                    self.alert_lease_ttl
                ),
            ));
        }
        let external_url = match &self.external_url {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.clone())
            }
            Some(url) => {
                return Err(FlagError::new(
                    "--external-url",
                    format!("must be an http:// or https:// URL, got {url:?}"),
                ))
            }
            None => None,
        };
        if let Some(empty) = self.rules.iter().find(|r| r.trim().is_empty()) {
            return Err(FlagError::new(
                "--rules",
                format!("must name files, got {empty:?}"),
            ));
        }
        Ok(AlertingConfig {
            rule_files: self.rules.clone(),
            default_interval: positive(
                "--rule-evaluation-interval",
                self.rule_evaluation_interval,
            )?,
            resend_delay: positive("--alert-resend-delay", self.alert_resend_delay)?,
            lease_ttl,
            external_url,
            notify: NotifyConfig {
                alertmanagers: self
                    .alertmanager_url
                    .iter()
                    .map(|u| http_url("--alertmanager-url", u))
                    .collect::<Result<_, _>>()?,
                webhooks: self
                    .alert_webhook
                    .iter()
                    .map(|u| http_url("--alert-webhook", u))
                    .collect::<Result<_, _>>()?,
                queue_capacity: at_least("--alert-queue-capacity", self.alert_queue_capacity, 1)?,
                timeout: positive("--alert-notify-timeout", self.alert_notify_timeout)?,
                retry: RetryPolicy::default(),
            },
            state_dir: data_dir.join("alerting"),
            clock: Arc::new(SystemClock),
        })
    }
}

/// `timebucket rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: RulesAction,
}

/// `timebucket rules` actions.
#[derive(Debug, Subcommand)]
pub enum RulesAction {
    /// Validate rule files as `serve --rules` would load them (like `promtool check rules`):
    /// every problem with file, line, group and rule; exit status 1 if any.
    Check(CheckArgs),
}

/// `timebucket rules check FILE...`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Rule files; globs allowed.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
}
