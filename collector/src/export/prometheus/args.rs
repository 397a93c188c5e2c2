//! The metrics endpoint's flags: who may scrape it, over what, and how big a page may get.

use std::path::PathBuf;

use crate::args::{self, ArgError};
use crate::auth::BearerToken;
use crate::tls::{ServerTls, TlsFlags};

pub const DEFAULT_METRICS_MAX_BYTES: &str = "64MiB";

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Metrics endpoint")]
#[group(id = "metrics_endpoint")]
pub struct Args {
    /// File holding a bearer token that every scrape of /metrics must present (Prometheus:
    /// `authorization: {credentials_file: …}`); /healthz and /readyz stay open. Unset: open.
    #[arg(long, env = "AGENTRACE_METRICS_AUTH_TOKEN_FILE", value_name = "PATH")]
    pub metrics_auth_token_file: Option<PathBuf>,

    /// PEM certificate (chain) for TLS on the metrics port; needs --metrics-tls-key-file.
    #[arg(long, env = "AGENTRACE_METRICS_TLS_CERT_FILE", value_name = "PATH")]
    pub metrics_tls_cert_file: Option<PathBuf>,

    /// PEM private key for --metrics-tls-cert-file.
    #[arg(long, env = "AGENTRACE_METRICS_TLS_KEY_FILE", value_name = "PATH")]
    pub metrics_tls_key_file: Option<PathBuf>,

    /// PEM CA certificates; when set, scrapers must present a certificate they signed.
    #[arg(long, env = "AGENTRACE_METRICS_TLS_CLIENT_CA_FILE", value_name = "PATH")]
    pub metrics_tls_client_ca_file: Option<PathBuf>,

    /// Largest /metrics page; a bigger one is cut at a metric boundary, logged and counted in
    /// agentrace_scrape_truncated_total [default: 64MiB].
    #[arg(long, env = "AGENTRACE_METRICS_MAX_BYTES", value_name = "SIZE")]
    pub metrics_max_bytes: Option<String>,
}

/// The metrics endpoint's settings.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    pub token: Option<BearerToken>,
    pub tls: Option<ServerTls>,
    pub max_bytes: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Args::default().validate().expect("the defaults are valid")
    }
}

impl Args {
    pub fn validate(self) -> Result<EndpointConfig, ArgError> {
        let max_bytes = self.metrics_max_bytes.as_deref().unwrap_or(DEFAULT_METRICS_MAX_BYTES);
        let token = self
            .metrics_auth_token_file
            .as_deref()
            .map(|path| {
                args::read_secret("metrics-auth-token-file", path).map(|secret| BearerToken::new(&secret))
            })
            .transpose()?;
        let flags = TlsFlags {
            cert: "metrics-tls-cert-file",
            key: "metrics-tls-key-file",
            client_ca: "metrics-tls-client-ca-file",
        };
        let (certificate, key) =
            (self.metrics_tls_cert_file.as_deref(), self.metrics_tls_key_file.as_deref());
        let tls = ServerTls::from_flags(flags, certificate, key, self.metrics_tls_client_ca_file.as_deref())?;
        Ok(EndpointConfig {
            token,
            tls,
            max_bytes: args::size("metrics-max-bytes", max_bytes, "64MiB")? as usize,
        })
    }
}
