//! The logs' flags: where they are forwarded, and the rules that read them.

use std::path::PathBuf;
use std::sync::Arc;

use crate::args::ArgError;

use super::LogRules;

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Logs")]
#[group(id = "otlp_logs")]
pub struct Args {
    /// OTLP endpoint the received logs are forwarded to (Loki's OTLP endpoint, e.g.
    /// http://loki:3100/otlp, or any OTLP logs receiver); http:// or https://, over OTLP/HTTP
    /// protobuf (`/v1/logs` is added), or grpc:// for OTLP/gRPC. Unset: logs are read for their
    /// metrics and not forwarded.
    #[arg(long, env = "AGENTRACE_LOGS_ENDPOINT", value_name = "URL")]
    pub logs_endpoint: Option<String>,

    /// TOML file of `[[rule]]` tables (name, pattern, metric, and type or model) turning log
    /// lines into metrics, added to the built-in rules for vLLM, llama.cpp and Ollama.
    #[arg(long, env = "AGENTRACE_LOG_RULES", value_name = "PATH")]
    pub log_rules: Option<PathBuf>,
}

/// How logs are forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogsEndpoint {
    /// OTLP/HTTP protobuf to this URL (ending in `/v1/logs`).
    Http(String),
    /// OTLP/gRPC to this `http://` URL.
    Grpc(String),
}

#[derive(Clone, Debug)]
pub struct LogsConfig {
    pub endpoint: Option<LogsEndpoint>,
    pub rules: Arc<LogRules>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Args::default().validate().expect("the built-in rules compile")
    }
}

impl Args {
    pub fn validate(self) -> Result<LogsConfig, ArgError> {
        let rules = Arc::new(LogRules::load(self.log_rules.as_deref())?);
        let endpoint = self.logs_endpoint.as_deref().map(str::trim).map(|url| {
            let url = url.trim_end_matches('/');
            if let Some(rest) = url.strip_prefix("grpc://") {
                Ok(LogsEndpoint::Grpc(format!("http://{rest}")))
            } else if url.starts_with("http://") || url.starts_with("https://") {
                let url = if url.ends_with("/v1/logs") { url.to_owned() } else { format!("{url}/v1/logs") };
                Ok(LogsEndpoint::Http(url))
            } else {
                Err(ArgError::invalid(
                    "logs-endpoint",
                    format!("{url:?} is not an http://, https:// or grpc:// URL"),
                ))
            }
        });
        Ok(LogsConfig { endpoint: endpoint.transpose()?, rules })
    }
}
