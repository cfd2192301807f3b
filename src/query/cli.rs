//! `timebucket query readings|series|latest|stats|host-stats|targets|alerts|rules`: the query endpoints of a running
//! service from the command line, printed as a table (or, with `--json`, the answer as is).
//!
//! The flags become a query string for the HTTP client in `client::query`; every check happens
//! in the service, whose 400 answers are printed with the parameter at fault.

pub(crate) mod table;

use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Deserialize;

use super::answer::{HostStatsAnswer, LatestAnswer, ReadingsAnswer, SeriesAnswer, StatsAnswer};
use crate::alerting::view::{AlertsAnswer, RulesAnswer};
use crate::client::query::{decode, Pairs, QueryClient};
use crate::model::TimestampMs;
use crate::scrape::status::TargetsAnswer;

pub use crate::client::query::QueryCliError;

/// `timebucket query` flags.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Base URL of the timebucket service.
    #[arg(
        long,
        env = "TIMEBUCKET_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Print the service's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// The token it asks with, and the CAs of an https:// service.
    #[command(flatten)]
    pub auth: crate::cli::client::ClientAuthArgs,
    /// What to ask.
    #[command(subcommand)]
    pub what: QueryCommand,
}

/// The queries.
#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// Raw API readings of a service in a time range, oldest first.
    Readings(ReadingsArgs),
    /// The instances and API methods (method + path) of a service in a time range.
    Series(RangeArgs),
    /// The latest reading of every API series and every instance (of one service, or all).
    Latest(LatestArgs),
    /// API stats per step: count, rate, error rates, duration mean / p50 / p90 / p99 / max.
    Stats(StatsArgs),
    /// Host gauges per instance and step: mean / max of each gauge, availability.
    HostStats(HostStatsArgs),
    /// The scrape targets and their last scrape (`GET /v1/targets`).
    Targets,
    /// The firing and pending alerts (`GET /api/v1/alerts`).
    Alerts,
    /// The alerting rules, their state and health (`GET /api/v1/rules`).
    Rules,
}

/// The `data` of a Prometheus API answer.
#[derive(Deserialize)]
struct PromAnswer<T> {
    data: T,
}

/// A service and a time range.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// The service.
    #[arg(long)]
    pub service: String,
    /// Start of the range, RFC 3339 or epoch ms [default: --last before --to].
    #[arg(long)]
    pub from: Option<String>,
    /// End of the range, RFC 3339 or epoch ms [default: now].
    #[arg(long)]
    pub to: Option<String>,
    /// Length of the range when --from is not given.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub last: Duration,
}

/// Filters on API readings.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only this instance.
    #[arg(long)]
    pub instance: Option<String>,
    /// Only this method.
    #[arg(long)]
    pub method: Option<String>,
    /// Only this path.
    #[arg(long)]
    pub path: Option<String>,
    /// Only this status code.
    #[arg(long)]
    pub code: Option<u16>,
}

/// `timebucket query readings`.
#[derive(Debug, Args)]
pub struct ReadingsArgs {
    /// Service and range.
    #[command(flatten)]
    pub range: RangeArgs,
    /// Filters.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Readings per page.
    #[arg(long)]
    pub limit: Option<u32>,
    /// `asc` (oldest first) or `desc`.
    #[arg(long)]
    pub order: Option<String>,
    /// Continue after a previous page (its `next_cursor`).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Follow the cursors and print every page.
    #[arg(long)]
    pub all: bool,
}

/// `timebucket query latest`.
#[derive(Debug, Args)]
pub struct LatestArgs {
    /// Only this service.
    #[arg(long)]
    pub service: Option<String>,
}

/// `timebucket query stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Service and range.
    #[command(flatten)]
    pub range: RangeArgs,
    /// Width of a point (60s, 5m, 1h).
    #[arg(long, default_value = "1m")]
    pub step: String,
    /// Group by any of instance, method, path, code (comma-separated).
    #[arg(long)]
    pub group_by: Option<String>,
    /// Filters.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `timebucket query host-stats`.
#[derive(Debug, Args)]
pub struct HostStatsArgs {
    /// Service and range.
    #[command(flatten)]
    pub range: RangeArgs,
    /// Width of a point (60s, 5m, 1h).
    #[arg(long, default_value = "1m")]
    pub step: String,
    /// Only this instance.
    #[arg(long)]
    pub instance: Option<String>,
}

impl RangeArgs {
    fn pairs(&self) -> Result<Pairs, QueryCliError> {
        let to = match &self.to {
            Some(to) => to.clone(),
            None => TimestampMs::now().millis().to_string(),
        };
        let from = match &self.from {
            Some(from) => from.clone(),
            None => {
                let end = TimestampMs::parse(&to)
                    .map_err(|e| QueryCliError::Args(format!("--to {e}")))?;
                let last = i64::try_from(self.last.as_millis()).unwrap_or(i64::MAX);
                end.millis().saturating_sub(last).to_string()
            }
        };
        Ok(vec![
            ("service", self.service.clone()),
            ("from", from),
            ("to", to),
        ])
    }
}

impl FilterArgs {
    fn extend(&self, pairs: &mut Pairs) {
        let fields = [
            ("instance", self.instance.clone()),
            ("method", self.method.clone()),
            ("path", self.path.clone()),
            ("code", self.code.map(|c| c.to_string())),
        ];
        pairs.extend(fields.into_iter().filter_map(|(n, v)| Some((n, v?))));
    }
}

/// Runs one query; returns the text to print.
pub async fn run(args: &QueryArgs) -> Result<String, QueryCliError> {
    let auth = args
        .auth
        .auth()
        .map_err(|e| QueryCliError::Args(e.to_string()))?;
    let client = QueryClient::new(&args.url, &auth)?;
    let (path, mut pairs) = match &args.what {
        QueryCommand::Readings(r) => ("/v1/readings", r.range.pairs()?),
        QueryCommand::Series(r) => ("/v1/series", r.pairs()?),
        QueryCommand::Latest(l) => (
            "/v1/latest",
            l.service.iter().map(|s| ("service", s.clone())).collect(),
        ),
        QueryCommand::Stats(s) => ("/v1/stats", s.range.pairs()?),
        QueryCommand::HostStats(h) => ("/v1/stats/host", h.range.pairs()?),
        QueryCommand::Targets => ("/v1/targets", Vec::new()),
        QueryCommand::Alerts => ("/api/v1/alerts", Vec::new()),
        QueryCommand::Rules => ("/api/v1/rules", Vec::new()),
    };
    let url = client.url(path);
    let print = |body: &str| -> Result<String, QueryCliError> {
        if args.json {
            return Ok(body.to_owned());
        }
        Ok(match &args.what {
            QueryCommand::Readings(_) => table::readings(&decode::<ReadingsAnswer>(&url, body)?),
            QueryCommand::Series(_) => table::series(&decode::<SeriesAnswer>(&url, body)?),
            QueryCommand::Latest(_) => table::latest(&decode::<LatestAnswer>(&url, body)?),
            QueryCommand::Stats(_) => table::stats(&decode::<StatsAnswer>(&url, body)?),
            QueryCommand::HostStats(_) => {
                table::host_stats(&decode::<HostStatsAnswer>(&url, body)?)
            }
            QueryCommand::Targets => table::targets(&decode::<TargetsAnswer>(&url, body)?),
            QueryCommand::Alerts => {
                table::alerts(&decode::<PromAnswer<AlertsAnswer>>(&url, body)?.data)
            }
            QueryCommand::Rules => {
                table::rules(&decode::<PromAnswer<RulesAnswer>>(&url, body)?.data)
            }
        })
    };
    match &args.what {
        QueryCommand::Readings(r) => {
            r.filter.extend(&mut pairs);
            pairs.extend(r.limit.map(|l| ("limit", l.to_string())));
            pairs.extend(r.order.clone().map(|o| ("order", o)));
            let mut cursor = r.cursor.clone();
            let mut out = Vec::new();
            loop {
                let mut page_pairs = pairs.clone();
                page_pairs.extend(cursor.take().map(|c| ("cursor", c)));
                let body = client.get(&url, &page_pairs).await?;
                out.push(print(&body)?);
                let next = decode::<ReadingsAnswer>(&url, &body)?.next_cursor;
                match next {
                    Some(next) if r.all => cursor = Some(next),
                    _ => break,
                }
            }
            return Ok(out.join("\n"));
        }
        QueryCommand::Stats(s) => {
            pairs.push(("step", s.step.clone()));
            pairs.extend(s.group_by.clone().map(|g| ("group_by", g)));
            s.filter.extend(&mut pairs);
        }
        QueryCommand::HostStats(h) => {
            pairs.push(("step", h.step.clone()));
            pairs.extend(h.instance.clone().map(|i| ("instance", i)));
        }
        QueryCommand::Series(_) => {
            let mut pages = Pages::new(&client, &url, &pairs);
            let mut all: Option<SeriesAnswer> = None;
            while let Some(body) = pages.next().await? {
                let page: SeriesAnswer = decode(&url, &body)?;
                pages.cursor = page.next_cursor.clone();
                match &mut all {
                    None => all = Some(page),
                    Some(all) => merge_series(all, page),
                }
            }
            let all = all.expect("at least one page");
            return Ok(if args.json {
                serde_json::to_string(&all).expect("answers serialize")
            } else {
                table::series(&all)
            });
        }
        QueryCommand::Latest(_) => {
            let mut pages = Pages::new(&client, &url, &pairs);
            let mut all: Option<LatestAnswer> = None;
            while let Some(body) = pages.next().await? {
                let page: LatestAnswer = decode(&url, &body)?;
                pages.cursor = page.next_cursor.clone();
                match &mut all {
                    None => all = Some(page),
                    Some(all) => {
                        all.api.extend(page.api);
                        all.host.extend(page.host);
                        all.next_cursor = page.next_cursor;
                    }
                }
            }
            let all = all.expect("at least one page");
            return Ok(if args.json {
                serde_json::to_string(&all).expect("answers serialize")
            } else {
                table::latest(&all)
            });
        }
        QueryCommand::Targets | QueryCommand::Alerts | QueryCommand::Rules => {}
    }
    print(&client.get(&url, &pairs).await?)
}

/// Every page of a cursor-paged answer: `next` returns the first page, then one more for each
/// `cursor` set from the previous page, then `None`.
struct Pages<'a> {
    client: &'a QueryClient,
    url: &'a str,
    pairs: &'a [(&'static str, String)],
    cursor: Option<String>,
    first: bool,
}

impl<'a> Pages<'a> {
    fn new(client: &'a QueryClient, url: &'a str, pairs: &'a [(&'static str, String)]) -> Self {
        Self {
            client,
            url,
            pairs,
            cursor: None,
            first: true,
        }
    }

    async fn next(&mut self) -> Result<Option<String>, QueryCliError> {
        if !std::mem::take(&mut self.first) && self.cursor.is_none() {
            return Ok(None);
        }
        let mut pairs = self.pairs.to_vec();
        pairs.extend(self.cursor.take().map(|c| ("cursor", c)));
        self.client.get(self.url, &pairs).await.map(Some)
    }
}

/// Appends `page` to `all`; an instance cut at the page boundary continues where it stopped.
fn merge_series(all: &mut SeriesAnswer, page: SeriesAnswer) {
    let mut instances = page.instances.into_iter();
    if let (Some(last), Some(first)) = (all.instances.last_mut(), instances.as_slice().first()) {
        if last.instance == first.instance {
            let first = instances.next().expect("looked at above");
            last.methods.extend(first.methods);
        }
    }
    all.instances.extend(instances);
    all.next_cursor = page.next_cursor;
}
