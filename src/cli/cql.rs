//! The flags of the CQL connection's security, shared by `serve` and `migrate`: a user for
//! `PasswordAuthenticator` (its password read from a file, so it shows in no process list) and
//! TLS to the nodes.

use std::path::PathBuf;

use clap::Args;

use super::FlagError;
use crate::store::cql::security::{self, Credentials};
use crate::store::cql::CqlSecurity;

/// Credentials and TLS for the CQL cluster. `global`, like the contact points.
#[derive(Debug, Clone, Args)]
pub struct CqlSecurityArgs {
    /// CQL user (the cluster's PasswordAuthenticator); needs --cql-password-file.
    #[arg(long, env = "TIMEBUCKET_CQL_USERNAME", global = true)]
    pub cql_username: Option<String>,
    /// A file whose first line is the CQL user's password.
    #[arg(long, env = "TIMEBUCKET_CQL_PASSWORD_FILE", global = true)]
    pub cql_password_file: Option<PathBuf>,
    /// TLS to the CQL nodes, checked against the system's CA certificates (or --cql-ca-file).
    #[arg(long, env = "TIMEBUCKET_CQL_TLS", global = true)]
    pub cql_tls: bool,
    /// CA certificates (PEM) the CQL nodes' certificates must chain to; turns TLS on.
    #[arg(long, env = "TIMEBUCKET_CQL_CA_FILE", global = true)]
    pub cql_ca_file: Option<PathBuf>,
}

impl CqlSecurityArgs {
    /// The validated settings; reads the password and CA files.
    pub fn security(&self) -> Result<CqlSecurity, FlagError> {
        let credentials = match (&self.cql_username, &self.cql_password_file) {
            (Some(user), Some(file)) => Some(
                Credentials::from_file(user.clone(), file)
                    .map_err(|e| FlagError::new("--cql-password-file", e.to_string()))?,
            ),
            (None, None) => None,
            (Some(_), None) => {
                return Err(FlagError::new(
                    "--cql-username",
                    "needs --cql-password-file",
                ))
            }
            (None, Some(_)) => {
                return Err(FlagError::new(
                    "--cql-password-file",
                    "needs --cql-username",
                ))
            }
        };
        let tls = match (self.cql_tls, &self.cql_ca_file) {
            (false, None) => None,
            (_, ca_file) => Some(
                security::tls_config(ca_file.as_deref())
                    .map_err(|e| FlagError::new("--cql-ca-file", e.to_string()))?,
            ),
        };
        Ok(CqlSecurity { credentials, tls })
    }
}
