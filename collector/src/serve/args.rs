//! The connection layer's flags: timeouts, caps and the in-flight body budget, shared by the
//! three listeners.

use std::time::Duration;

use crate::args::{self, ArgError};

pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: f64 = 10.0;
pub const DEFAULT_IDLE_TIMEOUT_SECS: f64 = 90.0;
pub const DEFAULT_BODY_TIMEOUT_SECS: f64 = 10.0;
pub const DEFAULT_MIN_BODY_RATE: &str = "1KiB";
pub const DEFAULT_KEEPALIVE_INTERVAL_SECS: f64 = 30.0;
pub const DEFAULT_KEEPALIVE_TIMEOUT_SECS: f64 = 10.0;
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: u32 = 32;
/// Connections of the metrics listener: Prometheus needs one or two.
pub const METRICS_MAX_CONNECTIONS: usize = 64;
/// In-flight request bytes without `--memory-limit`.
pub const DEFAULT_INFLIGHT_BYTES: u64 = 256 << 20;
/// With `--memory-limit`, request bodies may hold this share of it while they arrive.
const INFLIGHT_SHARE_OF_MEMORY_LIMIT: u64 = 4;

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Connections")]
#[group(id = "connections")]
pub struct Args {
    /// Seconds an HTTP/1 request head, and a TLS handshake, may take from its first byte
    /// [default: 10].
    #[arg(long, env = "AGENTRACE_HEADER_READ_TIMEOUT_SECS", value_name = "SECS")]
    pub header_read_timeout_secs: Option<f64>,

    /// Seconds a connection may stay open with no request in flight [default: 90].
    #[arg(long, env = "AGENTRACE_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    pub idle_timeout_secs: Option<f64>,

    /// A request body must bring --min-body-rate × this many bytes in every window of this
    /// many seconds, or its connection is closed [default: 10].
    #[arg(long, env = "AGENTRACE_BODY_TIMEOUT_SECS", value_name = "SECS")]
    pub body_timeout_secs: Option<f64>,

    /// Slowest body transfer kept, per second, e.g. `1KiB` [default: 1KiB].
    #[arg(long, env = "AGENTRACE_MIN_BODY_RATE", value_name = "SIZE")]
    pub min_body_rate: Option<String>,

    /// Seconds between HTTP/2 keep-alive pings to a client [default: 30].
    #[arg(long, env = "AGENTRACE_KEEPALIVE_INTERVAL_SECS", value_name = "SECS")]
    pub keepalive_interval_secs: Option<f64>,

    /// Seconds a keep-alive ping may go unanswered before the connection is closed
    /// [default: 10].
    #[arg(long, env = "AGENTRACE_KEEPALIVE_TIMEOUT_SECS", value_name = "SECS")]
    pub keepalive_timeout_secs: Option<f64>,

    /// Most connections per OTLP listener; at the cap the oldest idle one is closed for a new
    /// one [default: a third of the open-file limit, less 256, at least 16].
    #[arg(long, env = "AGENTRACE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Most concurrent requests (HTTP/2 streams) per connection [default: 32].
    #[arg(long, env = "AGENTRACE_MAX_STREAMS_PER_CONNECTION", value_name = "N")]
    pub max_streams_per_connection: Option<u32>,

    /// Request bytes that may be arriving at once, all connections together; a request that
    /// does not fit is refused at once, retryably [default: a quarter of --memory-limit, or
    /// 256MiB without one].
    #[arg(long, env = "AGENTRACE_MAX_INFLIGHT_BYTES", value_name = "SIZE")]
    pub max_inflight_bytes: Option<String>,
}

/// The validated limits of one listener's connections.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    pub body_window: Duration,
    /// Bytes per second a body must average over each window.
    pub min_body_rate: u64,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    pub max_connections: usize,
    pub max_streams: u32,
}

/// The connection settings of the collector: limits per listener and the shared budget.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionConfig {
    pub otlp: Limits,
    pub metrics: Limits,
    pub max_inflight_bytes: u64,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Args::default().validate(None).expect("the defaults are valid")
    }
}

impl Args {
    /// `memory_limit_bytes` sizes the in-flight budget when no flag does.
    pub fn validate(self, memory_limit_bytes: Option<u64>) -> Result<ConnectionConfig, ArgError> {
        let seconds = |flag, value: Option<f64>, default| args::seconds(flag, value.unwrap_or(default));
        let min_body_rate = self.min_body_rate.as_deref().unwrap_or(DEFAULT_MIN_BODY_RATE);
        let otlp = Limits {
            header_read: seconds(
                "header-read-timeout-secs",
                self.header_read_timeout_secs,
                DEFAULT_HEADER_READ_TIMEOUT_SECS,
            )?,
            idle: seconds("idle-timeout-secs", self.idle_timeout_secs, DEFAULT_IDLE_TIMEOUT_SECS)?,
            body_window: seconds("body-timeout-secs", self.body_timeout_secs, DEFAULT_BODY_TIMEOUT_SECS)?,
            min_body_rate: args::size("min-body-rate", min_body_rate, "1KiB")?,
            keepalive_interval: seconds(
                "keepalive-interval-secs",
                self.keepalive_interval_secs,
                DEFAULT_KEEPALIVE_INTERVAL_SECS,
            )?,
            keepalive_timeout: seconds(
                "keepalive-timeout-secs",
                self.keepalive_timeout_secs,
                DEFAULT_KEEPALIVE_TIMEOUT_SECS,
            )?,
            max_connections: args::positive(
                "max-connections",
                self.max_connections.unwrap_or_else(default_max_connections),
            )?,
            max_streams: args::positive(
                "max-streams-per-connection",
                self.max_streams_per_connection.unwrap_or(DEFAULT_MAX_STREAMS_PER_CONNECTION),
            )?,
        };
        let max_inflight_bytes = match (&self.max_inflight_bytes, memory_limit_bytes) {
            (Some(text), _) => args::size("max-inflight-bytes", text, "64MiB")?,
            (None, Some(limit)) => limit / INFLIGHT_SHARE_OF_MEMORY_LIMIT,
            (None, None) => DEFAULT_INFLIGHT_BYTES,
        };
        Ok(ConnectionConfig {
            otlp,
            metrics: Limits { max_connections: METRICS_MAX_CONNECTIONS, ..otlp },
            max_inflight_bytes,
        })
    }
}

/// Sockets left for each OTLP listener: a third of the open files the process may have, less
/// what the queues, exporters and metrics listener need, so that a flood on the OTLP ports
/// cannot take the descriptors `/metrics` needs.
fn default_max_connections() -> usize {
    const RESERVED: u64 = 256;
    const LEAST: u64 = 16;
    let open_files = open_file_limit().unwrap_or(65_536);
    (open_files.saturating_sub(RESERVED) / 3).max(LEAST) as usize
}

/// Raises the soft open-file limit to the hard one (as Go's runtime and nginx do) and returns
/// it; a collector holding many client connections should not stop at the shell's 1024.
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum) {
        if current < maximum {
            let raised = Rlimit { current: Some(maximum), maximum: Some(maximum) };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                return Some(maximum);
            }
        }
    }
    open_file_limit()
}

/// The soft open-file limit; `None` when unlimited.
fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}
