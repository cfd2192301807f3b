//! The flags of every client of a running service (`agent`, `query`): its token and, for
//! `https://` URLs, the CA certificates it trusts. See [`crate::client::auth`].

use std::path::PathBuf;

use clap::Args;

use super::FlagError;
use crate::client::auth::ClientAuth;

/// A client's token and trusted CAs.
#[derive(Debug, Clone, Args)]
pub struct ClientAuthArgs {
    /// The token (`timebucket token new`). Prefer TIMEBUCKET_TOKEN or --token-file: a flag
    /// shows in the process list.
    #[arg(long, env = "TIMEBUCKET_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// A file whose first line is the token.
    #[arg(long, env = "TIMEBUCKET_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
    /// CA certificates (PEM) the service's certificate must chain to, for https:// URLs
    /// (instead of the system's).
    #[arg(long, env = "TIMEBUCKET_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
}

impl ClientAuthArgs {
    /// The validated settings; reads the token and CA files.
    pub fn auth(&self) -> Result<ClientAuth, FlagError> {
        let flag = match (&self.ca_file, &self.token) {
            (Some(_), _) => "--ca-file",
            (None, Some(_)) => "--token",
            (None, None) => "--token-file",
        };
        ClientAuth::new(
            self.token.as_deref(),
            self.token_file.as_deref(),
            self.ca_file.as_deref(),
        )
        .map_err(|e| FlagError::new(flag, format!("is unusable: {e}")))
    }
}
