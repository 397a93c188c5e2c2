//! `agentrace-collector slo generate slo.toml`: service-level objectives in, Prometheus
//! recording rules and multi-window, multi-burn-rate alerts out, as the Google SRE workbook
//! builds them. Three kinds of objective, each over the calls of a service and model:
//!
//! - `time_to_first_token`: `target` of the calls see their first token within `threshold_seconds`;
//! - `latency`: `target` of the calls end within `threshold_seconds`;
//! - `error_ratio`: at most `max_error_ratio` of the calls fail.
//!
//! A threshold must be a boundary of the histogram's buckets, since a bucket count is what says
//! how many calls were under it; any other is refused with the nearest boundaries.
//!
//! For each objective: the ratio of bad calls over 5m, 30m, 1h, 2h, 6h, 1d and 3d, then a page
//! when 2 % of a 30-day budget burns in an hour (14.4×, over 1h and 5m) or 5 % in six hours
//! (6×, over 6h and 30m), and a ticket when 10 % burns in a day (3×, over 1d and 2h) or 10 % in
//! three days (1×, over 3d and 6h).

mod rules;

use std::path::Path;

use serde::Deserialize;

use agentrace_semconv::{buckets, metric};

#[derive(Debug, thiserror::Error)]
pub enum SloError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SloFile {
    #[serde(rename = "objective", default)]
    objectives: Vec<Objective>,
}

/// One objective as written in the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    pub name: String,
    pub kind: Kind,
    pub service: Option<String>,
    pub model: Option<String>,
    /// For `time_to_first_token` and `latency`.
    pub threshold_seconds: Option<f64>,
    /// For `time_to_first_token` and `latency`: the share of calls within the threshold.
    pub target: Option<f64>,
    /// For `error_ratio`.
    pub max_error_ratio: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    TimeToFirstToken,
    Latency,
    ErrorRatio,
}

/// The histogram an objective of `kind` counts, and its buckets.
fn histogram(kind: Kind) -> Option<(&'static str, &'static [f64])> {
    match kind {
        Kind::TimeToFirstToken => {
            Some((metric::LLM_TIME_TO_FIRST_TOKEN_SECONDS, buckets::TIME_TO_FIRST_TOKEN_SECONDS))
        }
        Kind::Latency => Some((metric::LLM_INFERENCE_LATENCY_SECONDS, buckets::LLM_DURATION_SECONDS)),
        Kind::ErrorRatio => None,
    }
}

/// An objective checked: its error budget (the share of calls that may be bad).
#[derive(Clone, Debug)]
pub struct Checked {
    pub objective: Objective,
    pub budget: f64,
}

/// `agentrace-collector slo generate FILE`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "agentrace-collector slo",
    about = "Turns service-level objectives into Prometheus recording rules and burn-rate alerts."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Prints the rules for the objectives in FILE (TOML, `[[objective]]` tables).
    Generate { file: std::path::PathBuf },
}

/// Reads and checks `path`, and renders the rules file.
pub fn generate(path: &Path) -> Result<String, SloError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| SloError::Read { path: shown.clone(), source })?;
    let invalid = |message: String| SloError::Invalid { path: shown.clone(), message };
    let file: SloFile =
        toml::from_str(&text).map_err(|error| invalid(crate::args::one_line_toml_error(&text, &error)))?;
    if file.objectives.is_empty() {
        return Err(invalid("no [[objective]]".to_owned()));
    }
    let mut checked = Vec::new();
    for objective in file.objectives {
        if checked.iter().any(|seen: &Checked| seen.objective.name == objective.name) {
            return Err(invalid(format!("objective \"{}\" is defined twice", objective.name)));
        }
        checked.push(check(objective).map_err(invalid)?);
    }
    Ok(rules::render(&checked))
}

fn check(objective: Objective) -> Result<Checked, String> {
    let name = &objective.name;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("objective name \"{name}\": letters, digits, '_' and '-' only"));
    }
    for value in [&objective.service, &objective.model].into_iter().flatten() {
        if value.contains(['"', '\\', '\n']) {
            return Err(format!(
                "objective \"{name}\": a service or model may not hold quotes, backslashes or newlines"
            ));
        }
    }
    let budget = match histogram(objective.kind) {
        Some((family, bounds)) => {
            let threshold = objective
                .threshold_seconds
                .ok_or_else(|| format!("objective \"{name}\": threshold_seconds is required"))?;
            if !bounds.contains(&threshold) {
                return Err(not_a_boundary(name, family, threshold, bounds));
            }
            let target =
                objective.target.ok_or_else(|| format!("objective \"{name}\": target is required"))?;
            if !(target > 0.0 && target < 1.0) {
                return Err(format!("objective \"{name}\": target must be between 0 and 1, not {target}"));
            }
            1.0 - target
        }
        None => match objective.max_error_ratio {
            Some(ratio) if ratio > 0.0 && ratio < 1.0 => ratio,
            Some(ratio) => {
                return Err(format!(
                    "objective \"{name}\": max_error_ratio must be between 0 and 1, not {ratio}"
                ))
            }
            None => return Err(format!("objective \"{name}\": max_error_ratio is required")),
        },
    };
    Ok(Checked { objective, budget })
}

fn not_a_boundary(name: &str, family: &str, threshold: f64, bounds: &[f64]) -> String {
    let below = bounds.iter().rev().find(|bound| **bound < threshold);
    let above = bounds.iter().find(|bound| **bound > threshold);
    let nearest = match (below, above) {
        (Some(below), Some(above)) => format!("the nearest are {below} and {above}"),
        (Some(bound), None) | (None, Some(bound)) => format!("the nearest is {bound}"),
        (None, None) => String::new(),
    };
    format!(
        "objective \"{name}\": threshold_seconds {threshold} is not a bucket boundary of {family}, so no bucket counts the calls under it; {nearest}"
    )
}

#[cfg(test)]
mod tests;
