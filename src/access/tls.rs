//! TLS for the HTTP listeners (`--tls-cert`, `--tls-key`): rustls with the ring provider, PEM
//! files, and a certificate that a reload (SIGHUP, `POST /-/reload`) replaces without a restart.
//!
//! The certificate lives behind a resolver that every handshake asks, so a reload swaps it for
//! new connections and leaves open ones alone. A reload that cannot read the files, or whose key
//! does not belong to the certificate, is refused and the running certificate stays.
//!
//! Why ring and an explicit provider: the CQL driver's TLS brings rustls' other provider too,
//! and with two compiled in, rustls cannot choose one by itself.

use std::path::{Path, PathBuf};

/// The error of a PEM file that cannot be read.
fn pem(path: &Path) -> impl Fn(rustls_pki_types::pem::Error) -> TlsError + '_ {
    move |source| TlsError::Pem {
        path: path.to_owned(),
        source,
    }
}
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate chain and key files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read or parsed.
    #[error("cannot read {}: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// rustls refuses the key, or the key does not belong to the certificate.
    #[error("the key {} cannot serve the certificate {}: {source}", key.display(), cert.display())]
    Key {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
}

/// The crypto provider of every TLS config here (see the module note).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server setup whose certificate can be reloaded.
#[derive(Debug, Clone)]
pub struct ServerTls {
    files: TlsFiles,
    current: Arc<Current>,
}

#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

impl ServerTls {
    /// Reads `files`.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let key = certified_key(files)?;
        Ok(Self {
            files: files.clone(),
            current: Arc::new(Current(RwLock::new(Arc::new(key)))),
        })
    }

    /// An acceptor for connections speaking `protocols` (ALPN: `http/1.1`, or `h2` for gRPC).
    pub fn acceptor(&self, protocols: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.current.clone());
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// Re-reads the files; the running certificate stays when they are refused.
    pub fn reload(&self) -> Result<String, TlsError> {
        let key = certified_key(&self.files)?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        Ok(format!("certificate {}", self.files.cert.display()))
    }
}

fn certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(pem(&files.cert))?
        .collect::<Result<_, _>>()
        .map_err(pem(&files.cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key_error = |source| TlsError::Key {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(pem(&files.key))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(key_error)?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(key_error)?;
    Ok(certified)
}
