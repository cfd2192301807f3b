//! `timebucket quarantine list|show`: what the flusher set aside, read straight from the data
//! directory (the service need not run).
//!
//! `show --ndjson` prints only the readings, as an NDJSON body for `POST /v1/metrics`, so an
//! item can be sent again once its cause is fixed. The collector gives them new ids, so readings
//! of a batch that reached the store in part before it was refused are then stored twice.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Quarantine, QuarantineError};
use crate::client::wire;
use crate::ingest::record;
use crate::query::cli::table::render;

/// `timebucket quarantine` flags.
#[derive(Debug, Args)]
pub struct QuarantineArgs {
    /// The service's data directory; its quarantine is `<data-dir>/quarantine`.
    #[arg(
        long,
        env = "TIMEBUCKET_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub action: QuarantineAction,
}

/// The quarantine commands.
#[derive(Debug, Subcommand)]
pub enum QuarantineAction {
    /// Every item, oldest first: file, what, when, WAL position, readings, reason.
    List,
    /// One item: its header, then its readings as NDJSON in the ingest format.
    Show {
        /// The file name, as `list` prints it.
        file: String,
        /// Print only the readings: a body for `POST /v1/metrics`.
        #[arg(long)]
        ndjson: bool,
    },
}

/// Runs one quarantine command; returns the text to print.
pub fn run(args: &QuarantineArgs) -> Result<String, QuarantineError> {
    let quarantine = Quarantine::in_data_dir(&args.data_dir);
    match &args.action {
        QuarantineAction::List => {
            let rows: Vec<Vec<String>> = quarantine
                .list()?
                .into_iter()
                .map(|(file, h)| {
                    let readings = h.readings.map_or("-".into(), |n| n.to_string());
                    let what = format!("{:?}", h.what).to_lowercase();
                    vec![file, what, h.at, h.wal, readings, h.reason]
                })
                .collect();
            if rows.is_empty() {
                return Ok(format!("{} is empty\n", quarantine.dir().display()));
            }
            let headers = ["FILE", "WHAT", "AT", "WAL", "READINGS", "REASON"];
            Ok(render(&headers, &rows))
        }
        QuarantineAction::Show { file, ndjson } => {
            let (header, payload) = quarantine.read(file)?;
            let readings = record::decode(&payload).map(|accepted| accepted.readings);
            let body = match (&readings, ndjson) {
                (Ok(readings), _) => String::from_utf8_lossy(&wire::ndjson(readings)).into_owned(),
                (Err(error), true) => {
                    return Err(QuarantineError::NotAnItem {
                        path: quarantine.dir().join(file),
                        reason: format!("its payload cannot be decoded: {error}"),
                    })
                }
                (Err(error), false) => {
                    format!(
                        "({} bytes that cannot be decoded: {error})\n",
                        payload.len()
                    )
                }
            };
            if *ndjson {
                return Ok(body);
            }
            let header = serde_json::to_string_pretty(&header).unwrap_or_default();
            Ok(format!("{header}\n{body}"))
        }
    }
}
