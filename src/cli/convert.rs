//! `timebucket store convert --data-dir DIR`: converts an embedded store's readings from the
//! row format of earlier versions into blocks, with a progress bar (`indicatif`, the common
//! choice for terminal progress in Rust; it draws nothing when stderr is not a terminal).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::serve::DEFAULT_DATA_DIR;
use crate::model::Settings;
use crate::store::embedded::EmbeddedStore;
use crate::store::StoreError;

/// `timebucket store` actions.
#[derive(Debug, Args)]
pub struct StoreCommandArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: StoreAction,
}

/// What `timebucket store` does.
#[derive(Debug, Subcommand)]
pub enum StoreAction {
    /// Convert the embedded store's readings from the row format of earlier versions to blocks
    /// (run it with the service stopped; it resumes where it stopped if interrupted).
    Convert(ConvertArgs),
}

/// `timebucket store convert` flags.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The service's data directory (the store is `<dir>/store`).
    #[arg(long, env = "TIMEBUCKET_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// Converts the store of `args`; returns how many readings were converted.
pub fn run(args: &ConvertArgs) -> Result<u64, StoreError> {
    let dir = args.data_dir.join("store");
    let store = EmbeddedStore::open_to_convert(&dir, Settings::default())?;
    let total = store.legacy_rows()?;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} readings ({eta} left)")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message("converting");
    let converted = store.convert(&mut |done| bar.set_position(done))?;
    bar.finish_with_message("converted");
    Ok(converted)
}
