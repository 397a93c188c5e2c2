//! The live view's flags: whether it runs, how much the recent-trace store holds, and where
//! its links lead.

use crate::args::{self, ArgError};

use super::store::StoreLimits;

pub const DEFAULT_VIEW_TRACES: usize = 2000;
pub const DEFAULT_VIEW_MAX_BYTES: &str = "64MiB";
pub const DEFAULT_VIEW_SLOW_SECS: f64 = 10.0;
pub const DEFAULT_PROMETHEUS_URL: &str = "http://localhost:9090";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    #[default]
    On,
    Off,
}

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Live view")]
#[group(id = "live_view")]
pub struct Args {
    /// The live view at / on the metrics address, its JSON API under /api/v1/ and the
    /// recent-trace store behind them; `off` removes all three [default: on].
    #[arg(long, env = "AGENTRACE_VIEW", value_name = "on|off")]
    pub view: Option<Switch>,

    /// Most traces the view's store holds; failed and slow ones are kept preferentially
    /// [default: 2000].
    #[arg(long, env = "AGENTRACE_VIEW_TRACES", value_name = "N")]
    pub view_traces: Option<usize>,

    /// Most memory the view's store takes, whichever bound is reached first [default: 64MiB].
    #[arg(long, env = "AGENTRACE_VIEW_MAX_BYTES", value_name = "SIZE")]
    pub view_max_bytes: Option<String>,

    /// A trace lasting at least this long is kept as a slow one [default: 10].
    #[arg(long, env = "AGENTRACE_VIEW_SLOW_SECS", value_name = "SECS")]
    pub view_slow_secs: Option<f64>,

    /// Where a trace opens in the production stack: a URL with `{trace_id}` in it (a Grafana
    /// Explore link), or Tempo's address, to which `/api/traces/<id>` is added. Unset: no link.
    #[arg(long, env = "AGENTRACE_TEMPO_URL", value_name = "URL")]
    pub tempo_url: Option<String>,

    /// The Prometheus that scrapes this collector: each figure of the view links to its query
    /// there [default: http://localhost:9090].
    #[arg(long, env = "AGENTRACE_PROMETHEUS_URL", value_name = "URL")]
    pub prometheus_url: Option<String>,
}

/// The view's settings; `None` in [`crate::Config`] when it is off.
#[derive(Clone, Debug)]
pub struct ViewConfig {
    pub store: StoreLimits,
    pub tempo_url: Option<String>,
    pub prometheus_url: String,
}

impl Default for ViewConfig {
    fn default() -> Self {
        Args::default().validate().expect("the defaults are valid").expect("on by default")
    }
}

fn url(flag: &'static str, value: &str) -> Result<String, ArgError> {
    let value = value.trim().trim_end_matches('/');
    let scheme = value.split_once("://").map(|(scheme, _)| scheme);
    if !matches!(scheme, Some("http" | "https")) || value.len() <= "https://".len() {
        return Err(ArgError::invalid(flag, format!("{value:?} is not an http:// or https:// URL")));
    }
    Ok(value.to_owned())
}

impl Args {
    pub fn validate(self) -> Result<Option<ViewConfig>, ArgError> {
        if self.view == Some(Switch::Off) {
            return Ok(None);
        }
        let max_traces = args::positive("view-traces", self.view_traces.unwrap_or(DEFAULT_VIEW_TRACES))?;
        let max_bytes = self.view_max_bytes.as_deref().unwrap_or(DEFAULT_VIEW_MAX_BYTES);
        let max_bytes = args::size("view-max-bytes", max_bytes, DEFAULT_VIEW_MAX_BYTES)? as usize;
        let slow = args::seconds("view-slow-secs", self.view_slow_secs.unwrap_or(DEFAULT_VIEW_SLOW_SECS))?;
        let slow_nanos = u64::try_from(slow.as_nanos()).unwrap_or(u64::MAX);
        Ok(Some(ViewConfig {
            store: StoreLimits { max_traces, max_bytes, slow_nanos },
            tempo_url: self.tempo_url.as_deref().map(|value| url("tempo-url", value)).transpose()?,
            prometheus_url: url(
                "prometheus-url",
                self.prometheus_url.as_deref().unwrap_or(DEFAULT_PROMETHEUS_URL),
            )?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_means_no_view_and_bad_values_name_their_flag() {
        let off = Args { view: Some(Switch::Off), ..Args::default() };
        assert!(off.validate().expect("valid").is_none());
        let zero = Args { view_traces: Some(0), ..Args::default() };
        assert!(zero.validate().expect_err("refused").to_string().contains("--view-traces"));
        let ftp = Args { tempo_url: Some("ftp://tempo".into()), ..Args::default() };
        assert!(ftp.validate().expect_err("refused").to_string().contains("--tempo-url"));
        let config = ViewConfig::default();
        assert_eq!(config.store.max_traces, DEFAULT_VIEW_TRACES);
        assert_eq!(config.store.max_bytes, 64 << 20);
        assert_eq!(config.prometheus_url, DEFAULT_PROMETHEUS_URL);
    }
}
