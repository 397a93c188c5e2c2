//! The receivers' flags and their validated settings.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::args::{self, ArgError};
use crate::auth::BearerToken;
use crate::tls::{ServerTls, TlsFlags};

pub const DEFAULT_GRPC_ADDR: SocketAddr = loopback(4317);
pub const DEFAULT_HTTP_ADDR: SocketAddr = loopback(4318);
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// Requests each worker's ingest queue holds by default, at least.
pub const DEFAULT_QUEUE_CAPACITY: usize = 256;
/// Requests the ingest queues hold by default in all, at least: a single worker's queue is this
/// deep (a burst of about 0.3 s of a core's W1 work), several workers' share it.
pub const DEFAULT_QUEUE_IN_ALL: usize = 512;

const fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), port)
}

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Receivers")]
#[group(id = "receivers")]
pub struct Args {
    /// OTLP/gRPC listen address [default: 127.0.0.1:4317].
    #[arg(long, env = "AGENTRACE_OTLP_GRPC_ADDR", value_name = "ADDR")]
    pub otlp_grpc_addr: Option<SocketAddr>,

    /// OTLP/HTTP listen address [default: 127.0.0.1:4318].
    #[arg(long, env = "AGENTRACE_OTLP_HTTP_ADDR", value_name = "ADDR")]
    pub otlp_http_addr: Option<SocketAddr>,

    /// Largest request body accepted, in bytes, after decompression [default: 16 MiB].
    #[arg(long, env = "AGENTRACE_MAX_REQUEST_BYTES", value_name = "BYTES")]
    pub max_request_bytes: Option<usize>,

    /// PEM certificate (chain) for TLS on the OTLP receivers; needs --tls-key-file.
    #[arg(long, env = "AGENTRACE_TLS_CERT_FILE", value_name = "PATH")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key for --tls-cert-file.
    #[arg(long, env = "AGENTRACE_TLS_KEY_FILE", value_name = "PATH")]
    pub tls_key_file: Option<PathBuf>,

    /// PEM CA certificates; when set, clients must present a certificate they signed (mTLS).
    #[arg(long, env = "AGENTRACE_TLS_CLIENT_CA_FILE", value_name = "PATH")]
    pub tls_client_ca_file: Option<PathBuf>,

    /// File holding a bearer token that every OTLP request must present
    /// (`Authorization: Bearer <token>`); without it the receivers are open.
    #[arg(long, env = "AGENTRACE_AUTH_TOKEN_FILE", value_name = "PATH")]
    pub auth_token_file: Option<PathBuf>,

    /// Resident memory the collector stays under, e.g. `512MiB`: above 80 % of it the
    /// receivers refuse (retryably) until usage falls. Unset: no limit.
    #[arg(long, env = "AGENTRACE_MEMORY_LIMIT", value_name = "SIZE")]
    pub memory_limit: Option<String>,

    /// Requests waiting between the receivers and each worker, holding at most 128 spans per
    /// request of capacity. When full, receivers answer with a retryable refusal [default: 512
    /// over all workers' queues, 256 each at least].
    #[arg(long, env = "AGENTRACE_QUEUE_CAPACITY", value_name = "REQUESTS")]
    pub queue_capacity: Option<usize>,

    /// Processing threads. The receivers send each one the spans of its traces (by trace id),
    /// each with its own ingest queue of --queue-capacity requests and its share of the agent
    /// graph's bounds [default: the cores this process may use].
    #[arg(long, env = "AGENTRACE_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
}

/// The receivers' settings.
#[derive(Clone, Debug)]
pub struct ReceiveConfig {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub max_request_bytes: usize,
    pub queue_capacity: usize,
    pub workers: usize,
    pub auth_token: Option<BearerToken>,
    /// The token itself, for the collector's own probes, which send to these receivers.
    pub auth_secret: Option<std::sync::Arc<str>>,
    pub memory_limit_bytes: Option<u64>,
    pub tls: Option<ServerTls>,
}

/// Each worker's queue when `--queue-capacity` is not given.
fn default_queue_capacity(workers: usize) -> usize {
    DEFAULT_QUEUE_CAPACITY.max(DEFAULT_QUEUE_IN_ALL.div_ceil(workers))
}

/// The cores this process may run on (its CPU affinity and cgroup quota taken into account).
fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl Args {
    pub fn validate(self) -> Result<ReceiveConfig, ArgError> {
        let workers = args::positive("workers", self.workers.unwrap_or_else(available_cores))?;
        let secret = self
            .auth_token_file
            .as_deref()
            .map(|path| args::read_secret("auth-token-file", path))
            .transpose()?;
        Ok(ReceiveConfig {
            grpc_addr: self.otlp_grpc_addr.unwrap_or(DEFAULT_GRPC_ADDR),
            http_addr: self.otlp_http_addr.unwrap_or(DEFAULT_HTTP_ADDR),
            max_request_bytes: args::positive(
                "max-request-bytes",
                self.max_request_bytes.unwrap_or(DEFAULT_MAX_REQUEST_BYTES),
            )?,
            queue_capacity: args::positive(
                "queue-capacity",
                self.queue_capacity.unwrap_or(default_queue_capacity(workers)),
            )?,
            workers,
            memory_limit_bytes: self
                .memory_limit
                .as_deref()
                .map(|text| args::size("memory-limit", text, "512MiB"))
                .transpose()?,
            auth_token: secret.as_deref().map(BearerToken::new),
            auth_secret: secret,
            tls: self.tls()?,
        })
    }

    fn tls(&self) -> Result<Option<ServerTls>, ArgError> {
        let flags = TlsFlags { cert: "tls-cert-file", key: "tls-key-file", client_ca: "tls-client-ca-file" };
        let (certificate, key) = (self.tls_cert_file.as_deref(), self.tls_key_file.as_deref());
        ServerTls::from_flags(flags, certificate, key, self.tls_client_ca_file.as_deref())
    }
}
