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
pub const DEFAULT_RESOLVE_SECS: f64 = 5.0;

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Trace forwarding")]
#[group(id = "trace_forwarding")]
pub struct Args {
    /// OTLP/gRPC endpoint that traces are forwarded to (Tempo, another collector). Several,
    /// comma-separated, or `dns:///<name>:<port>` (every A/AAAA record of the name, such as a
    /// headless Service's, re-resolved every --traces-resolve-secs; `dns://<server>/…` asks
    /// that DNS server): each trace then goes whole to one of them, by --traces-routing. Unset:
    /// traces are not forwarded.
    #[arg(long, env = "AGENTRACE_TRACES_ENDPOINT", value_name = "URL")]
    pub traces_endpoint: Option<String>,

    /// How spans are shared among several trace endpoints: `trace-id` (consistent hashing of
    /// the trace id, so that every span of a trace, from whichever node, reaches the same
    /// endpoint; when the set changes, about 1/N of the traces move) [default: trace-id].
    #[arg(long, env = "AGENTRACE_TRACES_ROUTING", value_name = "ROUTING")]
    pub traces_routing: Option<String>,

    /// Seconds between lookups of a `dns:///` trace endpoint's name [default: 5].
    #[arg(long, env = "AGENTRACE_TRACES_RESOLVE_SECS", value_name = "SECS")]
    pub traces_resolve_secs: Option<f64>,

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
    /// Set when traces are routed by trace id over several endpoints; `endpoint` is then each
    /// one's in turn.
    pub routing: Option<Routing>,
}

/// Several trace endpoints, each trace sent whole to one of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Routing {
    pub endpoints: Endpoints,
}

/// Where the trace endpoints come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Endpoints {
    /// A fixed list of URLs.
    Listed(Vec<String>),
    /// Every address a name resolves to, looked up again and again.
    Resolved(DnsName),
}

/// A `dns://[server]/name:port` endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsName {
    /// The DNS server to ask; `None`: the system's resolver configuration.
    pub server: Option<std::net::SocketAddr>,
    pub host: String,
    pub port: u16,
    pub every: Duration,
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
        let routing = self.routing(&endpoint, protocol)?;
        let endpoint = match &routing {
            Some(Routing { endpoints: Endpoints::Listed(urls) }) => urls[0].clone(),
            Some(Routing { endpoints: Endpoints::Resolved(_) }) => String::from("http://unresolved"),
            None => endpoint_url(endpoint.trim().to_owned(), protocol)?,
        };
        let tls = endpoint.starts_with("https://").then(|| self.client_tls()).transpose()?;
        Ok(Some(ExportConfig {
            endpoint,
            protocol,
            tls,
            routing,
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

impl Args {
    /// `None` for one endpoint that is not a `dns:` name.
    fn routing(&self, endpoint: &str, protocol: ExportProtocol) -> Result<Option<Routing>, ArgError> {
        let listed: Vec<&str> = endpoint.split(',').map(str::trim).filter(|url| !url.is_empty()).collect();
        let routed = listed.len() > 1 || listed.iter().any(|url| url.starts_with("dns:"));
        match self.traces_routing.as_deref().map(str::trim) {
            None | Some("trace-id") => {}
            Some(other) => {
                return Err(ArgError::invalid(
                    "traces-routing",
                    format!("{other:?} is not a routing; the one there is: trace-id"),
                ))
            }
        }
        if !routed {
            return Ok(None);
        }
        let endpoints = match listed.as_slice() {
            [name] => {
                if protocol != ExportProtocol::Grpc {
                    return Err(ArgError::invalid("traces-endpoint", "a dns: endpoint is reached over grpc"));
                }
                let every = args::seconds(
                    "traces-resolve-secs",
                    self.traces_resolve_secs.unwrap_or(DEFAULT_RESOLVE_SECS),
                )?;
                Endpoints::Resolved(dns_name(name, every)?)
            }
            urls => Endpoints::Listed(
                urls.iter().map(|url| endpoint_url((*url).to_owned(), protocol)).collect::<Result<_, _>>()?,
            ),
        };
        Ok(Some(Routing { endpoints }))
    }
}

/// Parses `dns:///name:port` and `dns://server[:port]/name:port`.
fn dns_name(text: &str, every: Duration) -> Result<DnsName, ArgError> {
    let invalid = || {
        ArgError::invalid(
            "traces-endpoint",
            format!("{text:?} is not dns:///<name>:<port> or dns://<server>/<name>:<port>"),
        )
    };
    let rest = text.strip_prefix("dns://").ok_or_else(invalid)?;
    let (server, target) = rest.split_once('/').ok_or_else(invalid)?;
    let server = match server {
        "" => None,
        server => Some(
            server
                .parse::<std::net::SocketAddr>()
                .or_else(|_| server.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
                .map_err(|_| invalid())?,
        ),
    };
    let (host, port) = target.rsplit_once(':').ok_or_else(invalid)?;
    let port = port.parse().map_err(|_| invalid())?;
    if host.is_empty() || host.contains('/') {
        return Err(invalid());
    }
    Ok(DnsName { server, host: host.to_owned(), port, every })
}

/// A checked endpoint URL; for OTLP/HTTP, with `/v1/traces` added when it has no path.
fn endpoint_url(endpoint: String, protocol: ExportProtocol) -> Result<String, ArgError> {
    let invalid = |reason: String| ArgError::invalid("traces-endpoint", reason);
    let uri: http::Uri = endpoint.parse().map_err(|error| invalid(format!("{endpoint:?}: {error}")))?;
    match (uri.scheme_str(), uri.authority(), protocol) {
        (Some("http") | Some("https"), Some(_), ExportProtocol::Grpc) => Ok(endpoint),
        (Some("http") | Some("https"), Some(_), ExportProtocol::HttpProtobuf) => {
            Ok(agentrace_semconv::otlp::http_traces_url(&endpoint))
        }
        _ => Err(invalid(format!("{endpoint:?} is not an http:// or https:// URL with a host"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(endpoint: &str) -> Result<Option<Routing>, ArgError> {
        let args = Args { traces_endpoint: Some(endpoint.to_owned()), ..Default::default() };
        args.validate().map(|config| config.and_then(|config| config.routing))
    }

    #[test]
    fn one_endpoint_is_not_routed_and_several_or_a_name_are() {
        assert_eq!(routing("http://tempo:4317").expect("valid"), None);
        let listed = routing("http://a:4317, http://b:4317").expect("valid").expect("routed");
        assert_eq!(listed.endpoints, Endpoints::Listed(vec!["http://a:4317".into(), "http://b:4317".into()]));
        let Some(Routing { endpoints: Endpoints::Resolved(name) }) =
            routing("dns:///gateway.agentrace.svc:4317").expect("valid")
        else {
            panic!("a dns name is resolved");
        };
        assert_eq!((name.server, name.host.as_str(), name.port), (None, "gateway.agentrace.svc", 4317));
        let Some(Routing { endpoints: Endpoints::Resolved(name) }) =
            routing("dns://127.0.0.1:5353/gateways:4317").expect("valid")
        else {
            panic!("a dns name is resolved");
        };
        assert_eq!(name.server, Some("127.0.0.1:5353".parse().expect("address")));
    }

    #[test]
    fn malformed_names_and_routings_are_refused_with_the_flag() {
        for bad in ["dns:///gateway", "dns:///:4317", "dns://not-an-ip/g:4317", "http://a:4317,ftp://b"] {
            let error = routing(bad).expect_err(bad).to_string();
            assert!(error.starts_with("invalid value for --traces-endpoint"), "{error}");
        }
        let args = Args {
            traces_endpoint: Some("http://a:4317".into()),
            traces_routing: Some("round-robin".into()),
            ..Default::default()
        };
        assert!(args.validate().expect_err("unknown routing").to_string().contains("--traces-routing"));
    }
}
