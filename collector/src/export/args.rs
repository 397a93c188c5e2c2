//! Trace forwarding's flags and their validated settings.

use std::path::PathBuf;
use std::time::Duration;

use crate::args::{self, ArgError};
use crate::tls::{self, ClientTls, Identity};

pub const DEFAULT_BATCH_SPANS: usize = 8192;
pub const DEFAULT_CONCURRENCY: usize = 4;
pub const DEFAULT_TIMEOUT_SECS: f64 = 10.0;
pub const DEFAULT_FIRST_BACKOFF_SECS: f64 = 0.5;
pub const DEFAULT_MAX_RETRY_SECS: f64 = 300.0;
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 1 << 30;

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Trace forwarding")]
#[group(id = "trace_forwarding")]
pub struct Args {
    /// OTLP/gRPC endpoint that traces are forwarded to (Tempo, another collector). Unset: traces
    /// are not forwarded.
    #[arg(long, env = "AGENTRACE_TRACES_ENDPOINT", value_name = "URL")]
    pub traces_endpoint: Option<String>,

    /// Protocol to the trace endpoint: `grpc` or `http/protobuf` (then the endpoint is the
    /// OTLP/HTTP base URL; `/v1/traces` is added when it has no path).
    #[arg(long, env = "AGENTRACE_TRACES_PROTOCOL", value_name = "PROTOCOL")]
    pub traces_protocol: Option<String>,

    /// PEM CA certificates trusted for an https:// trace endpoint (default: the system's).
    #[arg(long, env = "AGENTRACE_TRACES_CA_FILE", value_name = "PATH")]
    pub traces_ca_file: Option<PathBuf>,

    /// PEM client certificate presented to an https:// trace endpoint; needs
    /// --traces-client-key-file.
    #[arg(long, env = "AGENTRACE_TRACES_CLIENT_CERT_FILE", value_name = "PATH")]
    pub traces_client_cert_file: Option<PathBuf>,

    /// PEM private key for --traces-client-cert-file.
    #[arg(long, env = "AGENTRACE_TRACES_CLIENT_KEY_FILE", value_name = "PATH")]
    pub traces_client_key_file: Option<PathBuf>,

    /// Most spans per export request to the trace endpoint [default: 8192].
    #[arg(long, env = "AGENTRACE_EXPORT_BATCH_SPANS", value_name = "N")]
    pub export_batch_spans: Option<usize>,

    /// Batches in flight to the trace endpoint at once, each retried and split on its own
    /// [default: 4].
    #[arg(long, env = "AGENTRACE_EXPORT_CONCURRENCY", value_name = "N")]
    pub export_concurrency: Option<usize>,

    /// Seconds one export attempt may take [default: 10].
    #[arg(long, env = "AGENTRACE_EXPORT_TIMEOUT_SECS", value_name = "SECS")]
    pub export_timeout_secs: Option<f64>,

    /// Seconds before the first retry of a failed export; later ones double, up to 30 s
    /// [default: 0.5].
    #[arg(long, env = "AGENTRACE_EXPORT_FIRST_BACKOFF_SECS", value_name = "SECS")]
    pub export_first_backoff_secs: Option<f64>,

    /// Seconds a batch is retried before it is dropped (and counted) [default: 300]. With
    /// --queue-dir a batch waits on disk instead.
    #[arg(long, env = "AGENTRACE_EXPORT_MAX_RETRY_SECS", value_name = "SECS")]
    pub export_max_retry_secs: Option<f64>,

    /// Directory of the persistent export queue: requests are acknowledged once written
    /// there, survive restarts (and kill -9), and wait there while the trace endpoint is down.
    /// Needs --traces-endpoint. Unset: the export queue is in memory.
    #[arg(long, env = "AGENTRACE_QUEUE_DIR", value_name = "PATH")]
    pub queue_dir: Option<PathBuf>,

    /// Disk budget of the persistent queue, e.g. `1GiB`; past it the oldest requests are
    /// dropped and counted [default: 1GiB].
    #[arg(long, env = "AGENTRACE_QUEUE_MAX_BYTES", value_name = "SIZE")]
    pub queue_max_bytes: Option<String>,

    /// fsync each write to the persistent queue before acknowledging [default: true].
    #[arg(long, env = "AGENTRACE_QUEUE_FSYNC", value_name = "BOOL")]
    pub queue_fsync: Option<bool>,
}

/// Trace forwarding settings.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    pub endpoint: String,
    pub protocol: ExportProtocol,
    /// Set for an https:// endpoint.
    pub tls: Option<ClientTls>,
    pub batch_spans: usize,
    /// Batches in flight at once.
    pub concurrency: usize,
    pub timeout: Duration,
    pub first_backoff: Duration,
    /// How long a batch is retried before it is dropped; `None` with the persistent queue,
    /// where a batch waits for the endpoint as long as the disk budget allows.
    pub max_retry: Option<Duration>,
    /// Set when the export queue is on disk.
    pub persistent: Option<PersistentQueue>,
}

/// How traces are forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportProtocol {
    Grpc,
    HttpProtobuf,
}

/// The persistent export queue's settings.
#[derive(Clone, Debug)]
pub struct PersistentQueue {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub fsync: bool,
}

impl Args {
    /// `None` when traces are not forwarded.
    pub fn validate(self) -> Result<Option<ExportConfig>, ArgError> {
        let Some(endpoint) = self.traces_endpoint.clone() else {
            if self.queue_dir.is_some() {
                return Err(ArgError::invalid(
                    "queue-dir",
                    "the persistent queue holds traces to forward: set --traces-endpoint",
                ));
            }
            return Ok(None);
        };
        let protocol = match self.traces_protocol.as_deref().map(str::trim) {
            None | Some("grpc") => ExportProtocol::Grpc,
            Some("http/protobuf") => ExportProtocol::HttpProtobuf,
            Some(other) => {
                return Err(ArgError::invalid(
                    "traces-protocol",
                    format!("{other:?} is neither grpc nor http/protobuf"),
                ))
            }
        };
        let tls = endpoint.starts_with("https://").then(|| self.client_tls()).transpose()?;
        let endpoint = match protocol {
            ExportProtocol::Grpc => endpoint_url(endpoint)?,
            ExportProtocol::HttpProtobuf => {
                agentrace_semconv::otlp::http_traces_url(&endpoint_url(endpoint)?)
            }
        };
        Ok(Some(ExportConfig {
            endpoint,
            protocol,
            tls,
            batch_spans: args::positive(
                "export-batch-spans",
                self.export_batch_spans.unwrap_or(DEFAULT_BATCH_SPANS),
            )?,
            concurrency: args::positive(
                "export-concurrency",
                self.export_concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            )?,
            timeout: args::seconds(
                "export-timeout-secs",
                self.export_timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS),
            )?,
            first_backoff: args::seconds(
                "export-first-backoff-secs",
                self.export_first_backoff_secs.unwrap_or(DEFAULT_FIRST_BACKOFF_SECS),
            )?,
            max_retry: Some(args::seconds(
                "export-max-retry-secs",
                self.export_max_retry_secs.unwrap_or(DEFAULT_MAX_RETRY_SECS),
            )?)
            .filter(|_| self.queue_dir.is_none()),
            persistent: self.persistent_queue()?,
        }))
    }

    fn client_tls(&self) -> Result<ClientTls, ArgError> {
        let identity = match (&self.traces_client_cert_file, &self.traces_client_key_file) {
            (Some(certificate), Some(key)) => Some(Identity {
                certificate_pem: tls::read(certificate).map_err(ArgError::file)?,
                key_pem: tls::read(key).map_err(ArgError::file)?,
            }),
            (None, None) => None,
            _ => {
                return Err(ArgError::invalid(
                    "traces-client-cert-file",
                    "set both --traces-client-cert-file and --traces-client-key-file",
                ))
            }
        };
        let ca_pem = self.traces_ca_file.as_deref().map(tls::read).transpose().map_err(ArgError::file)?;
        Ok(ClientTls { ca_pem, identity })
    }

    fn persistent_queue(&self) -> Result<Option<PersistentQueue>, ArgError> {
        let Some(dir) = self.queue_dir.clone() else { return Ok(None) };
        let max_bytes = match &self.queue_max_bytes {
            None => DEFAULT_QUEUE_MAX_BYTES,
            Some(text) => args::size("queue-max-bytes", text, "1GiB")?,
        };
        Ok(Some(PersistentQueue { dir, max_bytes, fsync: self.queue_fsync.unwrap_or(true) }))
    }
}

fn endpoint_url(endpoint: String) -> Result<String, ArgError> {
    let invalid = |reason: String| ArgError::invalid("traces-endpoint", reason);
    let uri: http::Uri = endpoint.parse().map_err(|error| invalid(format!("{endpoint:?}: {error}")))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http") | Some("https"), Some(_)) => Ok(endpoint),
        _ => Err(invalid(format!("{endpoint:?} is not an http:// or https:// URL with a host"))),
    }
}
