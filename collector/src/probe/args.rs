//! The probes' flag: the file that lists the targets.

use std::path::PathBuf;

use crate::args::ArgError;

use super::config::{self, Target};

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Synthetic probes")]
#[group(id = "synthetic_probes")]
pub struct Args {
    /// TOML file of `[[target]]` tables: OpenAI-compatible Chat Completions endpoints to probe
    /// with a real (streaming) request every interval; each probe is a span of service
    /// `agentrace-probe` and sets the `llm_probe_*` gauges. Unset: no probes.
    #[arg(long, env = "AGENTRACE_PROBE_CONFIG", value_name = "PATH")]
    pub probe_config: Option<PathBuf>,
}

impl Args {
    pub fn validate(self) -> Result<Vec<Target>, ArgError> {
        self.probe_config.as_deref().map(config::load).transpose().map(Option::unwrap_or_default)
    }
}
