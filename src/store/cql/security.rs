//! How timebucket proves itself to the CQL cluster and protects the connection: a user name and
//! password (`PasswordAuthenticator`), and TLS to the nodes (client-to-node encryption).
//!
//! TLS uses rustls with the ring provider; the nodes' certificates are checked against a CA
//! file (`--cql-ca-file`) or the system's roots (`--cql-tls` alone). The driver connects to the
//! addresses the cluster reports and checks each certificate against that IP address, so a
//! node's certificate must name its IP (a `subjectAltName` of type IP).
//!
//! A session that cannot be opened because of TLS ([`tls_failure`], found by the error's type,
//! not its text) is reported as such, with the flag to look at: the driver's own message only
//! ends in rustls' reason (`invalid peer certificate: UnknownIssuer`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{ConnectionError, ConnectionPoolError, MetadataError, NewSessionError};

/// The credentials and TLS settings of the CQL connections; the default is neither.
#[derive(Debug, Clone, Default)]
pub struct CqlSecurity {
    /// User name and password for `PasswordAuthenticator`.
    pub credentials: Option<Credentials>,
    /// TLS to every node.
    pub tls: Option<Arc<ClientConfig>>,
}

/// A CQL user and its password.
#[derive(Clone)]
pub struct Credentials {
    /// The user.
    pub username: String,
    /// The password (never in `Debug` output or logs).
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why the CQL security settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The password file is empty.
    #[error("the password file {} is empty", path.display())]
    EmptyPassword {
        /// The file.
        path: PathBuf,
    },
    /// The CA file holds no usable certificate.
    #[error("the CA file {} holds no usable PEM certificate{}", path.display(), reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Ca {
        /// The file.
        path: PathBuf,
        /// The parser's reason, if any.
        reason: Option<String>,
    },
    /// The system's roots cannot be loaded.
    #[error("cannot load the system's CA certificates (give --cql-ca-file): {0}")]
    SystemRoots(String),
}

impl Credentials {
    /// `username` with the password in `file` (its first line; a trailing newline is not part of
    /// it).
    pub fn from_file(username: String, file: &Path) -> Result<Self, SecurityError> {
        let text = std::fs::read_to_string(file).map_err(|source| SecurityError::Read {
            path: file.to_owned(),
            source,
        })?;
        let password = text.lines().next().unwrap_or("").to_owned();
        if password.is_empty() {
            return Err(SecurityError::EmptyPassword {
                path: file.to_owned(),
            });
        }
        Ok(Self { username, password })
    }
}

/// A TLS client config trusting the CA certificates in `ca_file`, or the system's roots.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, SecurityError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca = |reason: Option<String>| SecurityError::Ca {
                path: path.to_owned(),
                reason,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca(Some(e.to_string())))?
                .collect::<Result<_, _>>()
                .map_err(|e| ca(Some(e.to_string())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ca(None));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let reasons: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(SecurityError::SystemRoots(reasons.join("; ")));
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    let config = ClientConfig::builder_with_provider(crate::access::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// rustls' reason, if a session could not be opened because TLS with the node failed (the
/// driver keeps the last connection's error, an I/O error wrapping rustls' one).
pub fn tls_failure(error: &NewSessionError) -> Option<&rustls::Error> {
    let NewSessionError::MetadataError(MetadataError::ConnectionPoolError(
        ConnectionPoolError::Broken {
            last_connection_error: ConnectionError::IoError(io),
        },
    )) = error
    else {
        return None;
    };
    io.get_ref()?.downcast_ref::<rustls::Error>()
}

/// What to tell the operator about a failed TLS connection to the nodes: which flag decides
/// trust, or that the node may not speak TLS.
pub fn tls_advice(reason: &rustls::Error) -> String {
    match reason {
        rustls::Error::InvalidCertificate(_) => format!(
            "TLS: the node's certificate is refused ({reason}); --cql-ca-file must name the CA \
             that signed it (without it, the system's CAs are used), and the certificate must \
             name the node's IP address"
        ),
        _ => format!(
            "the TLS handshake with the node failed ({reason}), as when the node takes no \
             TLS on this port (its client_encryption_options)"
        ),
    }
}

impl CqlSecurity {
    /// `builder` with these credentials and TLS.
    pub fn apply(&self, builder: SessionBuilder) -> SessionBuilder {
        let builder = match &self.credentials {
            Some(c) => builder.user(c.username.clone(), c.password.clone()),
            None => builder,
        };
        match &self.tls {
            Some(tls) => builder.tls_context(Some(tls.clone())),
            None => builder,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_line_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret pass\n").unwrap();
        let credentials = Credentials::from_file("tb".into(), &file).unwrap();
        assert_eq!(credentials.password, "s3cret pass");
        assert!(!format!("{credentials:?}").contains("s3cret"));
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(
            Credentials::from_file("tb".into(), &file),
            Err(SecurityError::EmptyPassword { .. })
        ));
    }

    #[test]
    fn a_tls_failure_is_found_under_the_drivers_error() {
        let refused = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, refused.clone());
        let error = NewSessionError::MetadataError(MetadataError::ConnectionPoolError(
            ConnectionPoolError::Broken {
                last_connection_error: ConnectionError::IoError(Arc::new(io)),
            },
        ));
        assert_eq!(tls_failure(&error), Some(&refused));
        assert!(tls_advice(&refused).contains("--cql-ca-file"));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = NewSessionError::MetadataError(MetadataError::ConnectionPoolError(
            ConnectionPoolError::Broken {
                last_connection_error: ConnectionError::IoError(Arc::new(plain)),
            },
        ));
        assert_eq!(tls_failure(&error), None);
        assert_eq!(tls_failure(&NewSessionError::EmptyKnownNodesList), None);
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate\n").unwrap();
        assert!(matches!(
            tls_config(Some(&file)),
            Err(SecurityError::Ca { .. })
        ));
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        std::fs::write(&file, cert.cert.pem()).unwrap();
        tls_config(Some(&file)).unwrap();
    }
}
