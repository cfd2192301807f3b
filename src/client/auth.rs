//! How a client proves itself to the service and checks that it talks to the right one: a
//! token, sent as `Authorization: Bearer <token>` on every request, and, for `https://` URLs,
//! the CA certificates the service's certificate must chain to (the system's by default, or
//! those of a CA file, for a self-signed or private CA).
//!
//! Every client of this module (the capture layer's pusher, the agent's, `timebucket query`)
//! builds its HTTP client through [`ClientAuth::client_builder`], so they read the same
//! settings the same way: `TIMEBUCKET_TOKEN` or `TIMEBUCKET_TOKEN_FILE`, and
//! `TIMEBUCKET_CA_FILE` ([`ClientAuth::from_env`]), or the equivalent flags.
//!
//! Invariant: the token is never in a `Debug` output, and its header is marked sensitive (kept
//! out of the HTTP client's own logs).

use std::path::{Path, PathBuf};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

/// The variable holding the token itself.
pub const TOKEN_ENV: &str = "TIMEBUCKET_TOKEN";
/// The variable naming a file that holds the token.
pub const TOKEN_FILE_ENV: &str = "TIMEBUCKET_TOKEN_FILE";
/// The variable naming a CA file for `https://` URLs.
pub const CA_FILE_ENV: &str = "TIMEBUCKET_CA_FILE";

/// Why the client settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token cannot go into a header (empty, or not visible ASCII).
    #[error("the token is not usable: it must be visible ASCII without spaces (from `timebucket token new`)")]
    BadToken,
    /// The CA file holds no certificate.
    #[error("the CA file {} holds no PEM certificate: {reason}", path.display())]
    Ca {
        /// The file.
        path: PathBuf,
        /// The parser's reason.
        reason: String,
    },
}

/// A client's token and trusted CAs; the default has neither (plain, unauthenticated).
#[derive(Clone, Default)]
pub struct ClientAuth {
    token: Option<String>,
    /// The CA certificates (PEM) and the file they came from.
    ca: Option<(PathBuf, Vec<reqwest::Certificate>)>,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca.as_ref().map(|(path, _)| path))
            .finish()
    }
}

impl ClientAuth {
    /// A token (`token`, else the first line of `token_file`) and the CAs of `ca_file`.
    pub fn new(
        token: Option<&str>,
        token_file: Option<&Path>,
        ca_file: Option<&Path>,
    ) -> Result<Self, AuthError> {
        let token = match (token, token_file) {
            (Some(token), _) => Some(token.trim().to_owned()),
            (None, Some(path)) => Some(read(path)?.lines().next().unwrap_or("").trim().to_owned()),
            (None, None) => None,
        };
        if let Some(token) = &token {
            let usable = !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic());
            if !usable {
                return Err(AuthError::BadToken);
            }
        }
        let ca = match ca_file {
            Some(path) => {
                let pem = read(path)?;
                let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                    .map_err(|e| ca_error(path, e.to_string()))?;
                if certs.is_empty() {
                    return Err(ca_error(path, "none found".into()));
                }
                Some((path.to_owned(), certs))
            }
            None => None,
        };
        Ok(Self { token, ca })
    }

    /// The settings of the environment: `TIMEBUCKET_TOKEN` (or `TIMEBUCKET_TOKEN_FILE`) and
    /// `TIMEBUCKET_CA_FILE`; none when they are unset.
    pub fn from_env() -> Result<Self, AuthError> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let token = var(TOKEN_ENV).map(|v| v.to_string_lossy().into_owned());
        let token_file = var(TOKEN_FILE_ENV).map(PathBuf::from);
        let ca_file = var(CA_FILE_ENV).map(PathBuf::from);
        Self::new(token.as_deref(), token_file.as_deref(), ca_file.as_deref())
    }

    /// True when a token is set.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// An HTTP client builder that sends the token on every request and trusts the CA file's
    /// certificates (only them, when a CA file is given; the system's otherwise).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder();
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .expect("checked to be visible ASCII");
            value.set_sensitive(true);
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value);
            builder = builder.default_headers(headers);
        }
        if let Some((_, certs)) = &self.ca {
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert.clone());
            }
        }
        builder
    }
}

fn read(path: &Path) -> Result<String, AuthError> {
    std::fs::read_to_string(path).map_err(|source| AuthError::Read {
        path: path.to_owned(),
        source,
    })
}

fn ca_error(path: &Path, reason: String) -> AuthError {
    AuthError::Ca {
        path: path.to_owned(),
        reason,
    }
}

/// The scheme check every client makes of a service URL: `http` or `https`.
pub fn check_scheme(url: &reqwest::Url) -> Result<(), String> {
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(format!(
            "must be an http:// or https:// URL, not {other}://"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_flag_or_the_file_and_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "tb_fromfile\n").unwrap();
        let from_file = ClientAuth::new(None, Some(&file), None).unwrap();
        assert_eq!(from_file.token.as_deref(), Some("tb_fromfile"));
        let flag = ClientAuth::new(Some("tb_flag"), Some(&file), None).unwrap();
        assert_eq!(flag.token.as_deref(), Some("tb_flag"));
        assert!(!format!("{flag:?}").contains("tb_flag"));
        for bad in ["", "tb with space", "tb\u{e9}"] {
            assert!(
                matches!(
                    ClientAuth::new(Some(bad), None, None),
                    Err(AuthError::BadToken)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "nothing here").unwrap();
        assert!(matches!(
            ClientAuth::new(None, None, Some(&file)),
            Err(AuthError::Ca { .. })
        ));
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&file, made.cert.pem()).unwrap();
        let auth = ClientAuth::new(None, None, Some(&file)).unwrap();
        auth.client_builder().build().unwrap();
    }
}
