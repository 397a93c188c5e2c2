//! The registry's flags: how many series a metric may have and how long an idle one lives.

use crate::args::{self, ArgError};

pub const DEFAULT_MAX_SERIES_PER_METRIC: usize = 2000;
pub const DEFAULT_SERIES_IDLE_TIMEOUT_SECS: u64 = 900;

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Metric series")]
#[group(id = "metric_series")]
pub struct Args {
    /// Most series per metric; further label sets go to the overflow series [default: 2000].
    #[arg(long, env = "AGENTRACE_MAX_SERIES_PER_METRIC", value_name = "N")]
    pub max_series_per_metric: Option<usize>,

    /// Seconds without an update after which a derived series is dropped [default: 900].
    #[arg(long, env = "AGENTRACE_SERIES_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    pub series_idle_timeout_secs: Option<u64>,

    /// Which names the GenAI metrics are served under: agentrace's (`llm_*`, `agent_*`), the
    /// OpenTelemetry GenAI conventions' (`gen_ai_client_inference_duration_seconds`, …, as the
    /// OpenTelemetry Collector's Prometheus exporter names them) in their place, or both
    /// [default: agentrace].
    #[arg(long, env = "AGENTRACE_METRIC_NAMES", value_name = "NAMES", value_enum)]
    pub metric_names: Option<MetricNames>,
}

/// `--metric-names`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricNames {
    #[default]
    Agentrace,
    Otel,
    Both,
}

impl MetricNames {
    /// Whether families of this naming are served.
    pub fn serves(self, naming: super::Naming) -> bool {
        match naming {
            super::Naming::Always => true,
            super::Naming::Own => self != Self::Otel,
            super::Naming::Spec => self != Self::Agentrace,
        }
    }

    /// Whether the GenAI conventions' series are derived at all.
    pub fn spec(self) -> bool {
        self != Self::Agentrace
    }
}

impl Args {
    pub fn validate(self) -> Result<SeriesLimits, ArgError> {
        Ok(SeriesLimits {
            max_series_per_metric: args::positive(
                "max-series-per-metric",
                self.max_series_per_metric.unwrap_or(DEFAULT_MAX_SERIES_PER_METRIC),
            )?,
            idle_timeout_secs: args::positive(
                "series-idle-timeout-secs",
                self.series_idle_timeout_secs.unwrap_or(DEFAULT_SERIES_IDLE_TIMEOUT_SECS),
            )? as f64,
            names: self.metric_names.unwrap_or_default(),
        })
    }
}

/// Limits that keep the registry bounded whatever the input.
#[derive(Clone, Copy, Debug)]
pub struct SeriesLimits {
    pub max_series_per_metric: usize,
    /// Seconds without an update after which a derived series is removed.
    pub idle_timeout_secs: f64,
    pub names: MetricNames,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        Self {
            max_series_per_metric: DEFAULT_MAX_SERIES_PER_METRIC,
            idle_timeout_secs: DEFAULT_SERIES_IDLE_TIMEOUT_SECS as f64,
            names: MetricNames::Agentrace,
        }
    }
}
