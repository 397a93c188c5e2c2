//! Configuration: flags, `AGENTRACE_*` environment variables and an optional TOML file, in that
//! order of precedence, then the defaults. Each stage owns its arguments (`receive::Args`,
//! `export::Args`, …) and checks them; this module gathers them under one command line and
//! layers the file beneath it. Everything is validated before any listener is bound; an error
//! names the flag, or the file and line it came from.
//!
//! The file is layered generically: each of its keys is the long name of a flag, and is given
//! to clap as that flag when neither the command line nor the environment sets it. So a file
//! value is parsed and checked exactly as the flag is, and a new flag needs nothing here.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use toml::de::{DeTable, DeValue};

use crate::args::{self, ArgError};
use crate::cost::{self, PriceTable};
use crate::derive::{self, GraphConfig};
use crate::enrich::{self, Enricher};
use crate::export::prometheus::{self, EndpointConfig};
use crate::export::{self, ExportConfig};
use crate::gpu::{self, GpuConfig};
use crate::logs::{self, LogsConfig};
use crate::metrics::{self, SeriesLimits};
use crate::probe::{self, Target};
use crate::receive::{self, ReceiveConfig};
use crate::serve::{self, ConnectionConfig};
use crate::view::{self, ViewConfig};

pub const DEFAULT_METRICS_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9101);
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: f64 = 10.0;

/// The options as given: every field optional, so that flags, environment and file can be
/// layered, then validated into a [`Config`].
#[derive(Debug, Default, Parser)]
#[command(
    name = "agentrace-collector",
    version,
    about = "Receives OTLP traces from LLM and agent instrumentation, serves RED, token, agent-graph and span metrics with exemplars, and forwards the traces."
)]
pub struct Options {
    /// TOML configuration file: `flag-name = value` for any flag below; flags and environment
    /// override it.
    #[arg(long, env = "AGENTRACE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Listen address of /metrics, /healthz and /readyz [default: 127.0.0.1:9101].
    #[arg(long, env = "AGENTRACE_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Seconds the shutdown may take to drain the queues [default: 10].
    #[arg(long, env = "AGENTRACE_SHUTDOWN_TIMEOUT_SECS", value_name = "SECS")]
    pub shutdown_timeout_secs: Option<f64>,

    /// Which tier this collector is: `all` does everything on one machine; `node` (on every GPU
    /// node) samples the GPUs, adds their figures to spans and forwards them to the gateways,
    /// deriving no span metrics; `gateway` receives from the nodes, attributes and derives,
    /// and forwards to the trace store, sampling no GPU [default: all].
    #[arg(long, env = "AGENTRACE_ROLE", value_name = "ROLE")]
    pub role: Option<Role>,

    #[command(flatten)]
    pub receive: receive::Args,
    #[command(flatten)]
    pub series: metrics::Args,
    #[command(flatten)]
    pub graph: derive::Args,
    #[command(flatten)]
    pub prices: cost::Args,
    #[command(flatten)]
    pub forwarded: enrich::Args,
    #[command(flatten)]
    pub gpu: gpu::Args,
    #[command(flatten)]
    pub export: export::Args,
    #[command(flatten)]
    pub connections: serve::Args,
    #[command(flatten)]
    pub metrics_endpoint: prometheus::Args,
    #[command(flatten)]
    pub view: view::Args,
    #[command(flatten)]
    pub probes: probe::Args,
    #[command(flatten)]
    pub logs: logs::Args,
}

/// A collector's tier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Everything, in one process.
    #[default]
    All,
    /// GPU sampling and span enrichment, forwarding by trace id; no span metrics.
    Node,
    /// Attribution, span metrics and the agent graph; no GPU sampling.
    Gateway,
}

impl Role {
    /// Whether this tier derives metrics from spans.
    pub fn derives(self) -> bool {
        self != Self::Node
    }
}

/// The validated configuration, one part per stage.
#[derive(Clone, Debug)]
pub struct Config {
    pub role: Role,
    pub receive: ReceiveConfig,
    pub connections: ConnectionConfig,
    pub metrics_addr: SocketAddr,
    pub metrics_endpoint: EndpointConfig,
    pub series: SeriesLimits,
    pub graph: GraphConfig,
    pub export: Option<ExportConfig>,
    pub prices: Arc<PriceTable>,
    pub gpu: GpuConfig,
    pub enricher: Enricher,
    /// `None` with `--view off`.
    pub view: Option<ViewConfig>,
    /// `--probe-config`'s targets.
    pub probes: Vec<Target>,
    pub logs: LogsConfig,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Help, version, or a flag clap refused: clap prints it.
    #[error(transparent)]
    Usage(#[from] clap::Error),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Arg(#[from] ArgError),
}

/// One key of the configuration file, as the flag it stands for.
struct FileFlag {
    long: String,
    value: String,
    /// Where the value starts in the file.
    offset: usize,
}

impl Options {
    /// Parses the command line (`argv`, program name first) and the environment, then layers
    /// the configuration file they name, if any, beneath them.
    pub fn load<I, T>(argv: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
        let matches = Self::command().try_get_matches_from(&argv)?;
        let options = Self::from_arg_matches(&matches)?;
        let Some(path) = options.config.clone() else {
            return Ok(options);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        let file_error = |offset: usize, message: String| ConfigError::File {
            path: path.clone(),
            message: format!("{}: {message}", args::line_and_column(&text, offset)),
        };
        let flags = file_flags(&text).map_err(|(offset, message)| file_error(offset, message))?;
        let mut layered = vec![argv.first().cloned().unwrap_or_default()];
        for flag in &flags {
            let given = matches.value_source(&flag.long.replace('-', "_"));
            if !matches!(given, Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
                layered.push(format!("--{}={}", flag.long, flag.value).into());
            }
        }
        layered.extend(argv.into_iter().skip(1));
        Self::try_parse_from(layered).map_err(|error| {
            let Some(flag) = flags.iter().find(|flag| names_flag(&error, &flag.long)) else {
                return ConfigError::Usage(error);
            };
            file_error(flag.offset, first_line(&error.to_string()))
        })
    }

    /// Applies the defaults and checks every value.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let queue_dir = self.export.queue_dir.clone();
        let shutdown_timeout = args::seconds(
            "shutdown-timeout-secs",
            self.shutdown_timeout_secs.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT_SECS),
        )?;
        let receive = self.receive.validate()?;
        let probes = self.probes.validate()?;
        if !probes.is_empty() && receive.tls.is_some() {
            return Err(ArgError::invalid(
                "probe-config",
                "the probes send their spans to this collector's OTLP/gRPC receiver over loopback, \
                 which is set to TLS; run the probes in a collector without receiver TLS",
            )
            .into());
        }
        let memory_limit = receive.memory_limit_bytes;
        let series = self.series.validate()?;
        let graph = GraphConfig { spec_names: series.names.spec(), ..self.graph.validate(memory_limit)? };
        let role = self.role.unwrap_or_default();
        let export = self.export.validate()?;
        if role == Role::Node && export.is_none() {
            return Err(ArgError::invalid(
                "role",
                "the node tier forwards every span to the gateways: set --traces-endpoint",
            )
            .into());
        }
        let mut gpu = self.gpu.validate()?;
        // The gateways see spans from every node; the GPUs they could sample are not those.
        gpu.enabled &= role != Role::Gateway;
        Ok(Config {
            role,
            connections: self.connections.validate(memory_limit)?,
            receive,
            metrics_addr: self.metrics_addr.unwrap_or(DEFAULT_METRICS_ADDR),
            metrics_endpoint: self.metrics_endpoint.validate()?,
            series,
            graph,
            export,
            prices: Arc::new(self.prices.validate()?),
            gpu,
            enricher: match role {
                Role::Node => self.forwarded.validate(queue_dir.as_deref())?.keeping_error_texts(),
                Role::All | Role::Gateway => self.forwarded.validate(queue_dir.as_deref())?,
            },
            view: self.view.validate()?,
            probes,
            logs: self.logs.validate()?,
            shutdown_timeout,
        })
    }
}

/// The file's keys as flags, checked against the command's flags. Errors carry the offset of
/// what is wrong.
fn file_flags(text: &str) -> Result<Vec<FileFlag>, (usize, String)> {
    let table = DeTable::parse(text).map_err(|error| {
        let offset = error.span().map_or(0, |span| span.start);
        (offset, error.message().trim().to_owned())
    })?;
    let command = Options::command();
    let known =
        |long: &str| command.get_arguments().any(|arg| arg.get_long() == Some(long) && long != "config");
    let mut flags = Vec::new();
    for (key, value) in table.get_ref() {
        let long = key.get_ref().to_string();
        if !known(&long) {
            return Err((key.span().start, format!("unknown key `{long}`")));
        }
        let offset = value.span().start;
        let text =
            flag_value(value.get_ref()).ok_or_else(|| (offset, format!("`{long}` takes a single value")))?;
        flags.push(FileFlag { long, value: text, offset });
    }
    Ok(flags)
}

/// A TOML value as a flag's text; arrays become comma-separated lists.
fn flag_value(value: &DeValue<'_>) -> Option<String> {
    Some(match value {
        DeValue::String(text) => text.to_string(),
        DeValue::Integer(number) => i128::from_str_radix(number.as_str(), number.radix()).ok()?.to_string(),
        DeValue::Float(number) => number.as_str().to_owned(),
        DeValue::Boolean(flag) => flag.to_string(),
        DeValue::Array(items) => {
            items.iter().map(|item| flag_value(item.get_ref())).collect::<Option<Vec<_>>>()?.join(",")
        }
        DeValue::Datetime(_) | DeValue::Table(_) => return None,
    })
}

/// Whether clap's error is about the flag `--long`.
fn names_flag(error: &clap::Error, long: &str) -> bool {
    let named = error.get(clap::error::ContextKind::InvalidArg).map(ToString::to_string);
    named.is_some_and(|named| named.split([' ', '=', '<']).next() == Some(&format!("--{long}")))
}

/// clap adds a blank line and a `--help` hint; the first line says it all.
pub fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

#[cfg(test)]
mod tests;
