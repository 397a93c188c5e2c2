//! Configuration: flags, `AGENTRACE_*` environment variables and an optional TOML file, in
//! that order of precedence, then the defaults. Everything is validated here, before any
//! listener is bound; an error names the flag (or the file and line) it came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::cost::{PriceError, PriceTable};
use crate::derive::GraphConfig;
use crate::gpu::GpuConfig;
use crate::metrics::SeriesLimits;
use crate::redact::Redactor;
use crate::tls::{ClientTls, Identity, ServerTls, TlsError};

/// The options as given: every field optional so that flags, environment and file can be
/// layered. The same struct is the TOML file's schema (keys spelled like the flags).
#[derive(Debug, Default, Parser, Deserialize)]
#[command(
    name = "agentrace-collector",
    version,
    about = "Receives OTLP traces from LLM and agent instrumentation, serves RED, token, agent-graph and span metrics with exemplars, and forwards the traces."
)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Options {
    /// TOML configuration file; flags and environment override it.
    #[arg(long, env = "AGENTRACE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// OTLP/gRPC listen address.
    #[arg(long, env = "AGENTRACE_OTLP_GRPC_ADDR", value_name = "ADDR")]
    pub otlp_grpc_addr: Option<SocketAddr>,

    /// OTLP/HTTP listen address.
    #[arg(long, env = "AGENTRACE_OTLP_HTTP_ADDR", value_name = "ADDR")]
    pub otlp_http_addr: Option<SocketAddr>,

    /// Listen address of /metrics, /healthz and /readyz.
    #[arg(long, env = "AGENTRACE_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// OTLP/gRPC endpoint that traces are forwarded to (Tempo, another collector). Unset: traces
    /// are not forwarded.
    #[arg(long, env = "AGENTRACE_TRACES_ENDPOINT", value_name = "URL")]
    pub traces_endpoint: Option<String>,

    /// Largest request body accepted, in bytes, after decompression.
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

    /// File holding a bearer token that every OTLP request must present
    /// (`Authorization: Bearer <token>`); without it the receivers are open.
    #[arg(long, env = "AGENTRACE_AUTH_TOKEN_FILE", value_name = "PATH")]
    pub auth_token_file: Option<PathBuf>,

    /// Resident memory the collector stays under, e.g. `512MiB`: above 80 % of it the
    /// receivers refuse (retryably) until usage falls. Unset: no limit.
    #[arg(long, env = "AGENTRACE_MEMORY_LIMIT", value_name = "SIZE")]
    pub memory_limit: Option<String>,

    /// Requests waiting between the receivers and the pipeline, holding at most 128 spans per
    /// request of capacity. When full, receivers answer with a retryable refusal.
    #[arg(long, env = "AGENTRACE_QUEUE_CAPACITY", value_name = "REQUESTS")]
    pub queue_capacity: Option<usize>,

    /// Most series per metric; further label sets go to the overflow series.
    #[arg(long, env = "AGENTRACE_MAX_SERIES_PER_METRIC", value_name = "N")]
    pub max_series_per_metric: Option<usize>,

    /// Seconds without an update after which a derived series is dropped.
    #[arg(long, env = "AGENTRACE_SERIES_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    pub series_idle_timeout_secs: Option<u64>,

    /// Seconds a trace stays open for agent-graph pairing after its last span.
    #[arg(long, env = "AGENTRACE_GRAPH_WAIT_SECS", value_name = "SECS")]
    pub graph_wait_secs: Option<f64>,

    /// Most traces held open for agent-graph pairing.
    #[arg(long, env = "AGENTRACE_GRAPH_MAX_TRACES", value_name = "N")]
    pub graph_max_traces: Option<usize>,

    /// Most spans per export request to the trace endpoint.
    #[arg(long, env = "AGENTRACE_EXPORT_BATCH_SPANS", value_name = "N")]
    pub export_batch_spans: Option<usize>,

    /// Seconds one export attempt may take.
    #[arg(long, env = "AGENTRACE_EXPORT_TIMEOUT_SECS", value_name = "SECS")]
    pub export_timeout_secs: Option<f64>,

    /// Seconds before the first retry of a failed export; later ones double, up to 30 s.
    #[arg(long, env = "AGENTRACE_EXPORT_FIRST_BACKOFF_SECS", value_name = "SECS")]
    pub export_first_backoff_secs: Option<f64>,

    /// Seconds a batch is retried before it is dropped (and counted).
    #[arg(long, env = "AGENTRACE_EXPORT_MAX_RETRY_SECS", value_name = "SECS")]
    pub export_max_retry_secs: Option<f64>,

    /// TOML price table (USD per million tokens per model) that overrides and extends the
    /// built-in prices.
    #[arg(long, env = "AGENTRACE_PRICE_FILE", value_name = "PATH")]
    pub price_file: Option<PathBuf>,

    /// Forward prompt and completion content (`gen_ai.input.messages` and the like). By
    /// default it is dropped before spans leave the collector.
    #[arg(long, env = "AGENTRACE_KEEP_CONTENT", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub keep_content: Option<bool>,

    /// Attribute keys to drop from forwarded spans (comma-separated; `prefix.` matches a prefix).
    #[arg(long, env = "AGENTRACE_REDACT_ATTRIBUTES", value_delimiter = ',', value_name = "KEYS")]
    pub redact_attributes: Option<Vec<String>>,

    /// Attribute keys whose values are replaced by their SHA-256 in forwarded spans.
    #[arg(long, env = "AGENTRACE_HASH_ATTRIBUTES", value_delimiter = ',', value_name = "KEYS")]
    pub hash_attributes: Option<Vec<String>>,

    /// GPU sampling through NVML: `on` or `off`.
    #[arg(long, env = "AGENTRACE_GPU", value_name = "on|off")]
    pub gpu: Option<String>,

    /// NVML library to load (default: the system's libnvidia-ml.so).
    #[arg(long, env = "AGENTRACE_NVML_LIB", value_name = "PATH")]
    pub nvml_lib: Option<PathBuf>,

    /// Seconds between GPU samples.
    #[arg(long, env = "AGENTRACE_GPU_SAMPLE_INTERVAL", value_name = "SECS")]
    pub gpu_sample_interval: Option<f64>,

    /// Seconds of GPU samples kept for enriching spans; older spans are forwarded without.
    #[arg(long, env = "AGENTRACE_GPU_HISTORY_SECS", value_name = "SECS")]
    pub gpu_history_secs: Option<f64>,

    /// Where the process table is read, for container ids of GPU processes.
    #[arg(long, env = "AGENTRACE_PROC_ROOT", value_name = "PATH")]
    pub proc_root: Option<PathBuf>,

    /// Directory of the persistent export queue: requests are acknowledged once written
    /// there, survive restarts (and kill -9), and wait there while the trace endpoint is down.
    /// Needs --traces-endpoint. Unset: the export queue is in memory.
    #[arg(long, env = "AGENTRACE_QUEUE_DIR", value_name = "PATH")]
    pub queue_dir: Option<PathBuf>,

    /// Disk budget of the persistent queue, e.g. `1GiB`; past it the oldest requests are
    /// dropped and counted.
    #[arg(long, env = "AGENTRACE_QUEUE_MAX_BYTES", value_name = "SIZE")]
    pub queue_max_bytes: Option<String>,

    /// fsync each write to the persistent queue before acknowledging (default true).
    #[arg(long, env = "AGENTRACE_QUEUE_FSYNC", value_name = "BOOL")]
    pub queue_fsync: Option<bool>,

    /// Seconds the shutdown may take to drain the queues.
    #[arg(long, env = "AGENTRACE_SHUTDOWN_TIMEOUT_SECS", value_name = "SECS")]
    pub shutdown_timeout_secs: Option<f64>,
}

/// Receivers' settings.
#[derive(Clone, Debug)]
pub struct ReceiveArgs {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub max_request_bytes: usize,
    pub queue_capacity: usize,
    pub auth_token: Option<Arc<str>>,
    pub memory_limit_bytes: Option<u64>,
    pub tls: Option<ServerTls>,
}

/// Trace forwarding settings.
#[derive(Clone, Debug)]
pub struct ExportArgs {
    pub endpoint: String,
    pub batch_spans: usize,
    pub timeout: Duration,
    pub first_backoff: Duration,
    pub max_retry: Duration,
    /// Set for an https:// endpoint.
    pub tls: Option<ClientTls>,
    /// Set when the export queue is on disk.
    pub persistent: Option<PersistentQueue>,
    pub protocol: ExportProtocol,
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

/// The validated configuration, one part per stage.
#[derive(Clone, Debug)]
pub struct Config {
    pub receive: ReceiveArgs,
    pub metrics_addr: SocketAddr,
    pub series: SeriesLimits,
    pub graph: GraphConfig,
    pub export: Option<ExportArgs>,
    pub prices: Arc<PriceTable>,
    pub gpu: GpuConfig,
    pub redactor: Redactor,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for --{flag}: {reason}")]
    Invalid { flag: &'static str, reason: String },
    #[error(transparent)]
    Prices(#[from] PriceError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl Options {
    /// Layers the file (if any) under the flags and environment.
    pub fn with_file(self) -> Result<Self, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let file = Self::from_file(&path)?;
        Ok(self.over(file))
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            message: one_line_toml_error(&text, &error),
        })
    }

    /// `self` wins where set.
    fn over(self, lower: Self) -> Self {
        Self {
            config: self.config,
            otlp_grpc_addr: self.otlp_grpc_addr.or(lower.otlp_grpc_addr),
            otlp_http_addr: self.otlp_http_addr.or(lower.otlp_http_addr),
            metrics_addr: self.metrics_addr.or(lower.metrics_addr),
            traces_endpoint: self.traces_endpoint.or(lower.traces_endpoint),
            max_request_bytes: self.max_request_bytes.or(lower.max_request_bytes),
            auth_token_file: self.auth_token_file.or(lower.auth_token_file),
            tls_cert_file: self.tls_cert_file.or(lower.tls_cert_file),
            tls_key_file: self.tls_key_file.or(lower.tls_key_file),
            tls_client_ca_file: self.tls_client_ca_file.or(lower.tls_client_ca_file),
            traces_ca_file: self.traces_ca_file.or(lower.traces_ca_file),
            traces_protocol: self.traces_protocol.or(lower.traces_protocol),
            traces_client_cert_file: self.traces_client_cert_file.or(lower.traces_client_cert_file),
            traces_client_key_file: self.traces_client_key_file.or(lower.traces_client_key_file),
            memory_limit: self.memory_limit.or(lower.memory_limit),
            queue_capacity: self.queue_capacity.or(lower.queue_capacity),
            max_series_per_metric: self.max_series_per_metric.or(lower.max_series_per_metric),
            series_idle_timeout_secs: self.series_idle_timeout_secs.or(lower.series_idle_timeout_secs),
            graph_wait_secs: self.graph_wait_secs.or(lower.graph_wait_secs),
            graph_max_traces: self.graph_max_traces.or(lower.graph_max_traces),
            export_batch_spans: self.export_batch_spans.or(lower.export_batch_spans),
            export_timeout_secs: self.export_timeout_secs.or(lower.export_timeout_secs),
            export_max_retry_secs: self.export_max_retry_secs.or(lower.export_max_retry_secs),
            export_first_backoff_secs: self.export_first_backoff_secs.or(lower.export_first_backoff_secs),
            shutdown_timeout_secs: self.shutdown_timeout_secs.or(lower.shutdown_timeout_secs),
            price_file: self.price_file.or(lower.price_file),
            gpu: self.gpu.or(lower.gpu),
            queue_dir: self.queue_dir.or(lower.queue_dir),
            queue_max_bytes: self.queue_max_bytes.or(lower.queue_max_bytes),
            queue_fsync: self.queue_fsync.or(lower.queue_fsync),
            keep_content: self.keep_content.or(lower.keep_content),
            redact_attributes: self.redact_attributes.or(lower.redact_attributes),
            hash_attributes: self.hash_attributes.or(lower.hash_attributes),
            nvml_lib: self.nvml_lib.or(lower.nvml_lib),
            gpu_sample_interval: self.gpu_sample_interval.or(lower.gpu_sample_interval),
            gpu_history_secs: self.gpu_history_secs.or(lower.gpu_history_secs),
            proc_root: self.proc_root.or(lower.proc_root),
        }
    }

    /// Applies the defaults and checks every value.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let receive = ReceiveArgs {
            grpc_addr: self.otlp_grpc_addr.unwrap_or(loopback(4317)),
            http_addr: self.otlp_http_addr.unwrap_or(loopback(4318)),
            max_request_bytes: positive(
                "max-request-bytes",
                self.max_request_bytes.unwrap_or(16 * 1024 * 1024),
            )?,
            queue_capacity: positive("queue-capacity", self.queue_capacity.unwrap_or(256))?,
            tls: match (&self.tls_cert_file, &self.tls_key_file) {
                (None, None) => {
                    if self.tls_client_ca_file.is_some() {
                        return Err(ConfigError::Invalid {
                            flag: "tls-client-ca-file",
                            reason: "client certificates need TLS: set --tls-cert-file and --tls-key-file"
                                .to_owned(),
                        });
                    }
                    None
                }
                (Some(certificate), Some(key)) => {
                    Some(ServerTls::read(certificate, key, self.tls_client_ca_file.as_deref())?)
                }
                (Some(_), None) => {
                    return Err(ConfigError::Invalid {
                        flag: "tls-key-file",
                        reason: "needed with --tls-cert-file".to_owned(),
                    })
                }
                (None, Some(_)) => {
                    return Err(ConfigError::Invalid {
                        flag: "tls-cert-file",
                        reason: "needed with --tls-key-file".to_owned(),
                    })
                }
            },
            memory_limit_bytes: match &self.memory_limit {
                None => None,
                Some(text) => {
                    Some(crate::memory::parse_size(text).filter(|bytes| *bytes > 0).ok_or_else(|| {
                        ConfigError::Invalid {
                            flag: "memory-limit",
                            reason: format!("{text:?} is not a size such as 512MiB"),
                        }
                    })?)
                }
            },
            auth_token: match &self.auth_token_file {
                None => None,
                Some(path) => Some(read_token(path)?),
            },
        };
        let series = SeriesLimits {
            max_series_per_metric: positive(
                "max-series-per-metric",
                self.max_series_per_metric.unwrap_or(2000),
            )?,
            idle_timeout_secs: positive(
                "series-idle-timeout-secs",
                self.series_idle_timeout_secs.unwrap_or(900),
            )? as f64,
        };
        let graph = GraphConfig {
            wait_secs: seconds("graph-wait-secs", self.graph_wait_secs.unwrap_or(10.0))?.as_secs_f64(),
            max_traces: positive("graph-max-traces", self.graph_max_traces.unwrap_or(50_000))?,
            ..GraphConfig::default()
        };
        let persistent = match self.queue_dir {
            None => None,
            Some(dir) => {
                if self.traces_endpoint.is_none() {
                    return Err(ConfigError::Invalid {
                        flag: "queue-dir",
                        reason: "the persistent queue holds traces to forward: set --traces-endpoint"
                            .to_owned(),
                    });
                }
                let max_bytes = match &self.queue_max_bytes {
                    None => 1 << 30,
                    Some(text) => {
                        crate::memory::parse_size(text).filter(|bytes| *bytes > 0).ok_or_else(|| {
                            ConfigError::Invalid {
                                flag: "queue-max-bytes",
                                reason: format!("{text:?} is not a size such as 1GiB"),
                            }
                        })?
                    }
                };
                Some(PersistentQueue { dir, max_bytes, fsync: self.queue_fsync.unwrap_or(true) })
            }
        };
        let protocol = match self.traces_protocol.as_deref().map(str::trim) {
            None | Some("grpc") => ExportProtocol::Grpc,
            Some("http/protobuf") => ExportProtocol::HttpProtobuf,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    flag: "traces-protocol",
                    reason: format!("{other:?} is neither grpc nor http/protobuf"),
                })
            }
        };
        let export = match self.traces_endpoint {
            None => None,
            Some(endpoint) => Some(ExportArgs {
                persistent,
                protocol,
                tls: match endpoint.starts_with("https://") {
                    false => None,
                    true => Some(ClientTls {
                        ca_pem: self.traces_ca_file.as_deref().map(crate::tls::read).transpose()?,
                        identity: match (&self.traces_client_cert_file, &self.traces_client_key_file) {
                            (Some(certificate), Some(key)) => Some(Identity {
                                certificate_pem: crate::tls::read(certificate)?,
                                key_pem: crate::tls::read(key)?,
                            }),
                            (None, None) => None,
                            _ => {
                                return Err(ConfigError::Invalid {
                                    flag: "traces-client-cert-file",
                                    reason: "set both --traces-client-cert-file and --traces-client-key-file"
                                        .to_owned(),
                                })
                            }
                        },
                    }),
                },
                endpoint: match protocol {
                    ExportProtocol::Grpc => endpoint_url(endpoint)?,
                    ExportProtocol::HttpProtobuf => {
                        agentrace_semconv::otlp::http_traces_url(&endpoint_url(endpoint)?)
                    }
                },
                batch_spans: positive("export-batch-spans", self.export_batch_spans.unwrap_or(8192))?,
                timeout: seconds("export-timeout-secs", self.export_timeout_secs.unwrap_or(10.0))?,
                first_backoff: seconds(
                    "export-first-backoff-secs",
                    self.export_first_backoff_secs.unwrap_or(0.5),
                )?,
                max_retry: seconds("export-max-retry-secs", self.export_max_retry_secs.unwrap_or(300.0))?,
            }),
        };
        let prices = match &self.price_file {
            Some(path) => PriceTable::with_file(path)?,
            None => PriceTable::built_in(),
        };
        let gpu_defaults = GpuConfig::default();
        let gpu = GpuConfig {
            enabled: match self.gpu.as_deref().map(str::trim) {
                None | Some("on") => true,
                Some("off") => false,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        flag: "gpu",
                        reason: format!("{other:?} is neither on nor off"),
                    })
                }
            },
            library: self.nvml_lib,
            interval: match self.gpu_sample_interval {
                Some(secs) => seconds("gpu-sample-interval", secs)?,
                None => gpu_defaults.interval,
            },
            history: match self.gpu_history_secs {
                Some(secs) => seconds("gpu-history-secs", secs)?,
                None => gpu_defaults.history,
            },
            proc_root: self.proc_root.unwrap_or(gpu_defaults.proc_root),
        };
        let keys = |keys: Option<Vec<String>>| -> Vec<String> {
            keys.unwrap_or_default()
                .into_iter()
                .map(|key| key.trim().to_owned())
                .filter(|key| !key.is_empty())
                .collect()
        };
        let redactor = Redactor::new(
            self.keep_content.unwrap_or(false),
            keys(self.redact_attributes),
            keys(self.hash_attributes),
        );
        Ok(Config {
            receive,
            gpu,
            redactor,
            prices: Arc::new(prices),
            metrics_addr: self.metrics_addr.unwrap_or(loopback(9101)),
            series,
            graph,
            export,
            shutdown_timeout: seconds("shutdown-timeout-secs", self.shutdown_timeout_secs.unwrap_or(10.0))?,
        })
    }
}

fn read_token(path: &Path) -> Result<Arc<str>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ConfigError::Invalid {
            flag: "auth-token-file",
            reason: format!("{} is empty", path.display()),
        });
    }
    Ok(Arc::from(token))
}

fn positive<T: PartialOrd + Default + std::fmt::Display>(
    flag: &'static str,
    value: T,
) -> Result<T, ConfigError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid { flag, reason: format!("{value} is not above zero") })
    }
}

fn seconds(flag: &'static str, value: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(value).ok().filter(|duration| !duration.is_zero()).ok_or_else(|| {
        ConfigError::Invalid { flag, reason: format!("{value} is not a positive number of seconds") }
    })
}

fn endpoint_url(endpoint: String) -> Result<String, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { flag: "traces-endpoint", reason };
    let uri: http::Uri = endpoint.parse().map_err(|error| invalid(format!("{endpoint:?}: {error}")))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http") | Some("https"), Some(_)) => Ok(endpoint),
        _ => Err(invalid(format!("{endpoint:?} is not an http:// or https:// URL with a host"))),
    }
}

/// toml's messages span several lines with a source excerpt; keep line, column and reason.
pub(crate) fn one_line_toml_error(text: &str, error: &toml::de::Error) -> String {
    let reason = error.message().trim().to_owned();
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rfind('\n').map_or(before.len(), |newline| before.len() - newline - 1) + 1;
            format!("line {line}, column {column}: {reason}")
        }
        None => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let options =
            Options::try_parse_from(std::iter::once("agentrace-collector").chain(args.iter().copied()))
                .map_err(|error| error.to_string())?;
        options.with_file().and_then(Options::validate).map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_bind_loopback_and_forward_nothing() {
        let config = parse(&[]).expect("defaults are valid");
        assert_eq!(config.receive.grpc_addr.to_string(), "127.0.0.1:4317");
        assert_eq!(config.receive.http_addr.to_string(), "127.0.0.1:4318");
        assert_eq!(config.metrics_addr.to_string(), "127.0.0.1:9101");
        assert!(config.export.is_none());
    }

    #[test]
    fn flags_override_the_file() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(
            &mut file,
            b"otlp-grpc-addr = \"0.0.0.0:14317\"\nmetrics-addr = \"127.0.0.1:19101\"\ntraces-endpoint = \"http://tempo:4317\"\n",
        )
        .expect("write");
        let path = file.path().to_str().expect("utf-8 path");
        let config = parse(&["--config", path, "--metrics-addr", "127.0.0.1:29101"]).expect("valid");
        assert_eq!(config.receive.grpc_addr.to_string(), "0.0.0.0:14317");
        assert_eq!(config.metrics_addr.to_string(), "127.0.0.1:29101");
        assert_eq!(config.export.expect("export").endpoint, "http://tempo:4317");
    }

    #[test]
    fn bad_values_name_their_flag_or_file_line() {
        let error = parse(&["--otlp-grpc-addr", "nowhere"]).expect_err("invalid");
        assert!(error.contains("--otlp-grpc-addr"), "{error}");
        let error = parse(&["--traces-endpoint", "tempo:4317"]).expect_err("invalid");
        assert!(error.contains("--traces-endpoint"), "{error}");
        let error = parse(&["--queue-capacity", "0"]).expect_err("invalid");
        assert!(error.contains("--queue-capacity"), "{error}");
        let error = parse(&["--gpu", "maybe"]).expect_err("invalid");
        assert!(error.contains("--gpu"), "{error}");
        assert!(!parse(&["--gpu", "off"]).expect("valid").gpu.enabled);

        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, b"metrics-addr = \"127.0.0.1:1\"\nqueue-capacty = 3\n")
            .expect("write");
        let path = file.path().to_str().expect("utf-8 path");
        let error = parse(&["--config", path]).expect_err("unknown key");
        assert!(error.contains(path) && error.contains("line 2"), "{error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }
}
