//! `timebucket rollup rebuild`: flags, opening the store the way `serve` does (`--cql-nodes`
//! or the embedded store in `--data-dir`), a progress bar and the summary.
//!
//! The progress bar is `indicatif`'s (the crate the issue names, and the usual one): drawn on
//! stderr only when it is a terminal, so scripts and logs get the summary alone.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::serve::DEFAULT_DATA_DIR;
use super::store::StoreArgs;
use super::FlagError;
use crate::model::{ServiceName, TimestampMs};
use crate::rollup::rebuild::{rebuild, RebuildRequest, RebuildSummary};
use crate::store::cql::{CqlStore, SessionConfig};
use crate::store::embedded::EmbeddedStore;
use crate::store::{Store, StoreError};

/// `timebucket rollup` flags.
#[derive(Debug, Args)]
pub struct RollupArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: RollupAction,
}

/// `timebucket rollup` actions.
#[derive(Debug, Subcommand)]
pub enum RollupAction {
    /// Recompute the rollups of past hours from the raw readings still kept.
    Rebuild(RebuildArgs),
}

/// `timebucket rollup rebuild` flags.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The store (as `serve` is given it).
    #[command(flatten)]
    pub store: StoreArgs,
    /// Directory of the embedded store (`<dir>/store`), without --cql-nodes.
    #[arg(long, env = "TIMEBUCKET_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// First instant to rebuild (RFC 3339 or epoch ms; its hour is rebuilt whole).
    #[arg(long)]
    pub from: String,
    /// Last instant to rebuild (RFC 3339 or epoch ms; its hour is rebuilt whole).
    #[arg(long)]
    pub to: String,
    /// Rebuild one service only (default: every service with readings within the retention).
    #[arg(long)]
    pub service: Option<String>,
}

/// Why a rebuild could not run.
#[derive(Debug, thiserror::Error)]
pub enum RollupCliError {
    /// A flag is wrong.
    #[error(transparent)]
    Flag(#[from] FlagError),
    /// There is no embedded store in the data directory.
    #[error("no embedded store at {0} (give --data-dir, or --cql-nodes for a CQL cluster)")]
    NoStore(PathBuf),
    /// A running `serve` holds the embedded store.
    #[error(
        "the embedded store at {0} is in use (a `timebucket serve` holds its lock): stop that \
         service, run the rebuild, then start it again"
    )]
    Locked(PathBuf),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RebuildArgs {
    /// The validated request.
    pub fn request(&self) -> Result<RebuildRequest, FlagError> {
        let time = |flag: &'static str, text: &str| {
            TimestampMs::parse(text).map_err(|problem| FlagError::new(flag, problem))
        };
        let (from, to) = (time("--from", &self.from)?, time("--to", &self.to)?);
        if to < from {
            return Err(FlagError::new("--to", "must not be before --from"));
        }
        let service = self
            .service
            .as_deref()
            .map(|s| ServiceName::parse(s).map_err(|e| FlagError::new("--service", e)))
            .transpose()?;
        Ok(RebuildRequest { from, to, service })
    }
}

/// Runs `rollup rebuild`; the summary to print.
pub async fn run(args: &RebuildArgs) -> Result<String, RollupCliError> {
    let request = args.request()?;
    let nodes = args.store.nodes()?;
    let summary = if nodes.is_empty() {
        let dir = args.data_dir.join("store");
        if !dir.is_dir() {
            return Err(RollupCliError::NoStore(dir));
        }
        let store = EmbeddedStore::open(&dir).map_err(|e| match held(&e) {
            true => RollupCliError::Locked(dir.clone()),
            false => e.into(),
        })?;
        with_progress(Arc::new(store), &request).await?
    } else {
        let security = args.store.security.security()?;
        let store = CqlStore::open_secured(
            &nodes,
            &args.store.keyspace,
            &SessionConfig::default(),
            &security,
        )
        .await?;
        with_progress(Arc::new(store), &request).await?
    };
    Ok(describe(&summary))
}

/// Whether opening failed because another process holds the store (fjall's lock file).
fn held(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable { source, .. }
        if matches!(source.downcast_ref::<fjall::Error>(), Some(fjall::Error::Locked)))
}

async fn with_progress<S: Store>(
    store: Arc<S>,
    request: &RebuildRequest,
) -> Result<RebuildSummary, StoreError> {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} service-hours  {elapsed} (eta {eta})")
            .expect("a valid template"),
    );
    let summary = rebuild(store, request, TimestampMs::now(), |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    summary
}

/// The summary in words.
pub fn describe(s: &RebuildSummary) -> String {
    let mut text = if s.range.from >= s.range.until {
        "nothing to rebuild: no whole hour of the range is both within the retention and \
         before the rollups the flusher writes"
            .to_owned()
    } else {
        format!(
            "rebuilt the rollups of {} service(s), {} hour(s) from {} to {}: {} readings read, \
             {} rows written in {:.1}s",
            s.services,
            s.range.hours().len(),
            s.range.from.to_rfc3339(),
            s.range.until.to_rfc3339(),
            s.readings,
            s.rows,
            s.elapsed.as_secs_f64()
        )
    };
    if s.range.cut_by_retention {
        text.push_str("\nthe range starts before the oldest whole hour of kept raw readings");
    }
    if s.range.cut_by_flusher {
        text.push_str(&format!(
            "\nfrom {} on the rollups are written as readings arrive (nothing to rebuild)",
            s.range.until.to_rfc3339()
        ));
    }
    match s.since_lowered_to {
        Some(since) => text.push_str(&format!(
            "\nqueries read rollups from {} on",
            since.to_rfc3339()
        )),
        None if s.range.from < s.range.until => text.push_str(
            "\nthe range does not reach the hours that already have rollups: queries go on \
             reading it raw until those between are rebuilt too",
        ),
        None => {}
    }
    text.push('\n');
    text
}
