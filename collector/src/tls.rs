//! TLS: on the receivers (`--tls-cert-file`, `--tls-key-file`, and `--tls-client-ca-file` to
//! require client certificates), and to the trace endpoint (`https://` with
//! `--traces-ca-file`, and a client certificate when it asks for one). PEM files, read and
//! checked when the configuration is validated.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A certificate chain and its key, in PEM.
#[derive(Clone, Debug)]
pub struct Identity {
    pub certificate_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// The receivers' TLS settings.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub identity: Identity,
    /// When set, clients must present a certificate signed by one of these CAs.
    pub client_ca_pem: Option<Vec<u8>>,
}

/// TLS to the trace endpoint.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// Trusted roots; the system's when unset.
    pub ca_pem: Option<Vec<u8>>,
    pub identity: Option<Identity>,
}

pub fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read { path: path.to_owned(), message: error.to_string() })
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Config(format!("{what}: {error}")))?;
    if certificates.is_empty() {
        return Err(TlsError::Config(format!("{what}: no PEM certificate found")));
    }
    Ok(certificates)
}

/// The flag names of one listener's TLS settings, for the errors.
#[derive(Clone, Copy, Debug)]
pub struct TlsFlags {
    pub cert: &'static str,
    pub key: &'static str,
    pub client_ca: &'static str,
}

impl ServerTls {
    /// A listener's TLS from its three flags: none set, no TLS; a certificate needs its key and
    /// a key its certificate; client CAs need both.
    pub fn from_flags(
        flags: TlsFlags,
        certificate: Option<&Path>,
        key: Option<&Path>,
        client_ca: Option<&Path>,
    ) -> Result<Option<Self>, crate::args::ArgError> {
        use crate::args::ArgError;
        match (certificate, key) {
            (Some(certificate), Some(key)) => {
                Self::read(certificate, key, client_ca).map(Some).map_err(ArgError::file)
            }
            (Some(_), None) => Err(ArgError::invalid(flags.key, format!("needed with --{}", flags.cert))),
            (None, Some(_)) => Err(ArgError::invalid(flags.cert, format!("needed with --{}", flags.key))),
            (None, None) if client_ca.is_some() => Err(ArgError::invalid(
                flags.client_ca,
                format!("client certificates need TLS: set --{} and --{}", flags.cert, flags.key),
            )),
            (None, None) => Ok(None),
        }
    }

    pub fn read(certificate: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self, TlsError> {
        let tls = Self {
            identity: Identity { certificate_pem: read(certificate)?, key_pem: read(key)? },
            client_ca_pem: client_ca.map(read).transpose()?,
        };
        tls.rustls()?;
        Ok(tls)
    }

    /// For the three listeners: HTTP/2 and HTTP/1.1 by ALPN.
    pub fn rustls(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Config(error.to_string()))?;
        let builder = match &self.client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in certificates(ca, "client CA")? {
                    roots
                        .add(certificate)
                        .map_err(|error| TlsError::Config(format!("client CA: {error}")))?;
                }
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|error| TlsError::Config(format!("client CA: {error}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let chain = certificates(&self.identity.certificate_pem, "certificate")?;
        let key = PrivateKeyDer::from_pem_slice(&self.identity.key_pem)
            .map_err(|error| TlsError::Config(format!("private key: {error}")))?;
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|error| TlsError::Config(format!("certificate and key: {error}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A client configuration that trusts nothing: for an http:// endpoint, where it is never used.
pub fn plain_http_only() -> Result<rustls::ClientConfig, TlsError> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

impl ClientTls {
    /// For the OTLP/HTTP exporter's client: the given CA or the system's roots, and the
    /// client certificate if any.
    pub fn rustls(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_pem {
            Some(ca) => {
                for certificate in certificates(ca, "trace endpoint CA")? {
                    roots
                        .add(certificate)
                        .map_err(|error| TlsError::Config(format!("trace endpoint CA: {error}")))?;
                }
            }
            None => {
                let (added, _ignored) =
                    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                if added == 0 {
                    return Err(TlsError::Config(
                        "no system root certificates; set --traces-ca-file".to_owned(),
                    ));
                }
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Config(error.to_string()))?
            .with_root_certificates(roots);
        match &self.identity {
            None => Ok(builder.with_no_client_auth()),
            Some(identity) => {
                let chain = certificates(&identity.certificate_pem, "client certificate")?;
                let key = PrivateKeyDer::from_pem_slice(&identity.key_pem)
                    .map_err(|error| TlsError::Config(format!("client key: {error}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|error| TlsError::Config(format!("client certificate: {error}")))
            }
        }
    }

    /// For tonic's client channel.
    pub fn grpc(&self) -> tonic::transport::ClientTlsConfig {
        let mut config = tonic::transport::ClientTlsConfig::new();
        config = match &self.ca_pem {
            Some(ca) => config.ca_certificate(tonic::transport::Certificate::from_pem(ca)),
            None => config.with_native_roots(),
        };
        match &self.identity {
            Some(identity) => config
                .identity(tonic::transport::Identity::from_pem(&identity.certificate_pem, &identity.key_pem)),
            None => config,
        }
    }
}
