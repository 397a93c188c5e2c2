//! The price table behind `llm_cost_usd_total` and the `agentrace.cost.usd` span attribute:
//! US dollars per million input, output, cache-read and cache-write input tokens, per model.
//! Reasoning tokens are output tokens: they are in the output count and priced with it, once. Built-in list
//! prices (`prices/default.toml`) can be overridden or extended by a TOML file of the same
//! shape; unknown models cost 0, as self-hosted ones do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::args::ArgError;

const BUILT_IN: &str = include_str!("../prices/default.toml");
const TOKENS_PER_PRICE_UNIT: f64 = 1_000_000.0;

/// Prices of one model, in USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[serde(deserialize_with = "non_negative")]
    pub input: f64,
    #[serde(deserialize_with = "non_negative")]
    pub output: f64,
    /// Input tokens read from the provider's prompt cache; the input price when missing.
    #[serde(default, deserialize_with = "non_negative_option")]
    pub cached_input: Option<f64>,
    /// Input tokens written to the provider's prompt cache; the input price when missing.
    #[serde(default, deserialize_with = "non_negative_option")]
    pub cache_write: Option<f64>,
}

/// What an hour of one GPU costs, for self-hosted models.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuPrice {
    #[serde(deserialize_with = "non_negative")]
    pub hour: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    /// The day the built-in prices were checked against the providers' lists.
    #[serde(default)]
    #[allow(dead_code)]
    checked: Option<String>,
    #[serde(default)]
    models: BTreeMap<String, Price>,
    /// By GPU name as NVML reports it (`NVIDIA H200`).
    #[serde(default)]
    gpus: BTreeMap<String, GpuPrice>,
}

fn non_negative<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let price = f64::deserialize(deserializer)?;
    if price.is_finite() && price >= 0.0 {
        Ok(price)
    } else {
        Err(serde::de::Error::custom(format!("a price must be a non-negative number, not {price}")))
    }
}

fn non_negative_option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    non_negative(deserializer).map(Some)
}

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("cannot read price file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("price file {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Token counts of one call, as the GenAI conventions count them: `input` includes the tokens
/// read from and written to the cache, `output` includes reasoning tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    /// Part of `input` that the provider served from its cache.
    pub cached_input: u64,
    /// Part of `input` that the provider wrote to its cache.
    pub cache_write: u64,
}

impl Usage {
    /// A call's usage, when it reported any token counts.
    pub fn of(fields: &agentrace_semconv::GenAiFields<'_>) -> Option<Self> {
        if fields.input_tokens.is_none() && fields.output_tokens.is_none() {
            return None;
        }
        Some(Self {
            input: fields.input_tokens.unwrap_or(0),
            output: fields.output_tokens.unwrap_or(0),
            cached_input: fields.cached_input_tokens.unwrap_or(0),
            cache_write: fields.cache_write_tokens.unwrap_or(0),
        })
    }
}

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Cost")]
#[group(id = "cost")]
pub struct Args {
    /// TOML price table (USD per million tokens per model) that overrides and extends the
    /// built-in prices.
    #[arg(long, env = "AGENTRACE_PRICE_FILE", value_name = "PATH")]
    pub price_file: Option<PathBuf>,

    /// US dollars an hour of a GPU costs, for GPUs the price file does not list: the GPU
    /// time of self-hosted models is priced with it (`llm_gpu_cost_usd_total`).
    #[arg(long, env = "AGENTRACE_GPU_HOUR_PRICE", value_name = "USD")]
    pub gpu_hour_price: Option<f64>,
}

impl Args {
    pub fn validate(self) -> Result<PriceTable, ArgError> {
        let mut table = match &self.price_file {
            Some(path) => PriceTable::with_file(path).map_err(ArgError::file)?,
            None => PriceTable::built_in(),
        };
        if let Some(price) = self.gpu_hour_price {
            if !(price.is_finite() && price >= 0.0) {
                return Err(ArgError::invalid(
                    "gpu-hour-price",
                    format!("a non-negative number, not {price}"),
                ));
            }
            table.gpu_hour_default = Some(price);
        }
        Ok(table)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceTable {
    /// Lowercased model name → price. Looked up for every LLM span: hashed, not searched.
    models: foldhash::HashMap<String, Price>,
    /// Lowercased GPU name → USD an hour.
    gpus: BTreeMap<String, f64>,
    /// USD an hour for GPUs not listed.
    gpu_hour_default: Option<f64>,
}

impl PriceTable {
    /// The built-in table.
    pub fn built_in() -> Self {
        // The built-in file is checked by a test; an error here would be a build defect, and
        // costing nothing is the safe answer to it.
        Self::parse(BUILT_IN, Path::new("built-in prices")).unwrap_or_default()
    }

    /// The built-in table with `path`'s entries added or replaced.
    pub fn with_file(path: &Path) -> Result<Self, PriceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PriceError::Read { path: path.to_owned(), source })?;
        let overrides = Self::parse(&text, path)?;
        let mut table = Self::built_in();
        table.models.extend(overrides.models);
        table.gpus.extend(overrides.gpus);
        Ok(table)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, PriceError> {
        let file: PriceFile = toml::from_str(text).map_err(|error| PriceError::Parse {
            path: path.to_owned(),
            message: crate::args::one_line_toml_error(text, &error),
        })?;
        let models = file.models.into_iter().map(|(model, price)| (model.to_lowercase(), price)).collect();
        let gpus = file.gpus.into_iter().map(|(gpu, price)| (gpu.to_lowercase(), price.hour)).collect();
        Ok(Self { models, gpus, gpu_hour_default: None })
    }

    /// The price of `model`: its own entry, or the longest entry it extends with `-…`.
    pub fn price(&self, model: &str) -> Option<&Price> {
        // Lowercase ASCII is its own lowercase: no copy for the usual model name.
        let lowered;
        let model = if model.bytes().all(|byte| byte.is_ascii() && !byte.is_ascii_uppercase()) {
            model
        } else {
            lowered = model.to_lowercase();
            lowered.as_str()
        };
        if let Some(price) = self.models.get(model) {
            return Some(price);
        }
        // The longest listed name the model extends with a `-` suffix (a dated or tagged
        // version): the model cut at each `-`, from the right, until one is listed.
        model.rmatch_indices('-').find_map(|(at, _)| self.models.get(&model[..at]))
    }

    /// Cost of one call in USD; 0 for a model without a price. (Derive prices a call through
    /// a [`PriceMemo`].)
    #[cfg(test)]
    pub fn cost(&self, model: &str, usage: Usage) -> f64 {
        self.price(model).map_or(0.0, |price| price.cost(usage))
    }
}

impl Price {
    /// Cost of one call at this price, in USD.
    ///
    /// Cache reads and writes are parts of the input count, as the GenAI conventions ask. A
    /// span whose cache counts add up to more than its input count reports them apart from it,
    /// as Anthropic's API does: its input count is then the uncached part alone.
    pub fn cost(&self, usage: Usage) -> f64 {
        let cached = usage.cached_input.saturating_add(usage.cache_write);
        let uncached = usage.input.checked_sub(cached).unwrap_or(usage.input);
        let read_price = self.cached_input.unwrap_or(self.input);
        let write_price = self.cache_write.unwrap_or(self.input);
        (uncached as f64 * self.input
            + usage.cached_input as f64 * read_price
            + usage.cache_write as f64 * write_price
            + usage.output as f64 * self.output)
            / TOKENS_PER_PRICE_UNIT
    }

    /// What the call's cache reads saved against the input price, in USD.
    pub fn cache_savings(&self, usage: Usage) -> f64 {
        let read_price = self.cached_input.unwrap_or(self.input);
        usage.cached_input as f64 * (self.input - read_price).max(0.0) / TOKENS_PER_PRICE_UNIT
    }
}

/// The models a processing worker has priced, with what [`PriceTable::price`] found for each.
/// A model the table lacks takes one lookup per `-` in its name, on every call it makes
/// (self-hosted models are such); remembered, it takes one. Bounded: emptied when full, and
/// names longer than any model's are not kept (a span's model is whatever the sender wrote).
#[derive(Debug, Default)]
pub struct PriceMemo {
    found: foldhash::HashMap<Box<str>, Option<Price>>,
}

/// The models a [`PriceMemo`] holds at most.
const MEMO_MODELS: usize = 1024;

/// The longest model name a [`PriceMemo`] keeps, in bytes.
const MEMO_NAME_BYTES: usize = 128;

impl PriceMemo {
    /// `model`'s price in `table`, which must be the table of every earlier call.
    pub fn price(&mut self, table: &PriceTable, model: &str) -> Option<Price> {
        if let Some(found) = self.found.get(model) {
            return *found;
        }
        let found = table.price(model).copied();
        if model.len() <= MEMO_NAME_BYTES {
            if self.found.len() >= MEMO_MODELS {
                self.found.clear();
            }
            self.found.insert(model.into(), found);
        }
        found
    }
}

impl PriceTable {
    /// What cache reads saved against the input price, in USD.
    #[cfg(test)]
    pub fn cache_savings(&self, model: &str, usage: Usage) -> f64 {
        self.price(model).map_or(0.0, |price| price.cache_savings(usage))
    }

    /// USD an hour of the GPU named `name`, when it has a price.
    pub fn gpu_hour(&self, name: &str) -> Option<f64> {
        self.gpus.get(&name.to_lowercase()).copied().or(self.gpu_hour_default)
    }

    /// What a span's GPU time costs: each GPU's busy seconds at its hourly price; `None` when no
    /// GPU it ran on has a price.
    pub fn gpu_cost(&self, gpu_seconds_by_name: &[(String, f64)]) -> Option<f64> {
        let mut priced = false;
        let mut cost = 0.0;
        for (name, seconds) in gpu_seconds_by_name {
            if let Some(hour) = self.gpu_hour(name) {
                priced = true;
                cost += seconds * hour / 3600.0;
            }
        }
        priced.then_some(cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_parses_and_has_the_common_models() {
        let table = PriceTable::parse(BUILT_IN, Path::new("built-in")).expect("built-in prices parse");
        for model in ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "gemini-1.5-pro"] {
            assert!(table.price(model).is_some(), "{model}");
        }
        assert_eq!(PriceTable::built_in(), table);
    }

    #[test]
    fn cost_is_computed_per_million_tokens_with_cached_input() {
        let table = PriceTable::built_in();
        // gpt-4o: 2.50 in, 10.00 out, 1.25 cached. 1000 in (400 cached), 200 out:
        // 600 × 2.50 + 400 × 1.25 + 200 × 10.00 = 1500 + 500 + 2000 = 4000 → 0.004 USD.
        let usage = Usage { input: 1000, output: 200, cached_input: 400, cache_write: 0 };
        assert!((table.cost("gpt-4o", usage) - 0.004).abs() < 1e-12);
        // A dated version uses its base entry; gpt-4o-mini is not gpt-4o.
        assert!((table.cost("gpt-4o-2024-08-06", usage) - 0.004).abs() < 1e-12);
        let mini = table.price("gpt-4o-mini-2024-07-18").expect("gpt-4o-mini");
        assert_eq!(mini.input, 0.15);
        assert_eq!(table.cost("llama-3.1-8b-instruct", usage), 0.0, "self-hosted costs nothing");
        assert_eq!(table.price("gpt-4omni"), None, "a prefix must end at a dash");
    }

    #[test]
    fn a_memo_answers_as_the_table_does_past_its_bound() {
        let table = PriceTable::built_in();
        let mut memo = PriceMemo::default();
        let models = ["gpt-4o", "GPT-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "llama-3.1-8b-instruct", ""];
        // Each model twice (the second answer from the memo), then past the bound with names no
        // table lists, then again.
        for model in models.iter().chain(&models) {
            assert_eq!(memo.price(&table, model), table.price(model).copied(), "{model}");
        }
        for index in 0..MEMO_MODELS + 10 {
            assert_eq!(memo.price(&table, &format!("model-{index}")), None);
        }
        assert!(memo.found.len() <= MEMO_MODELS, "{} models held", memo.found.len());
        let long = format!("gpt-4o-{}", "x".repeat(MEMO_NAME_BYTES));
        assert_eq!(memo.price(&table, &long), table.price("gpt-4o").copied(), "a long name is priced");
        assert!(!memo.found.contains_key(long.as_str()), "and not kept");
        for model in models {
            assert_eq!(memo.price(&table, model), table.price(model).copied(), "{model}");
        }
        let usage = Usage { input: 1000, output: 200, cached_input: 400, cache_write: 0 };
        let price = memo.price(&table, "gpt-4o").expect("gpt-4o");
        assert_eq!(price.cost(usage), table.cost("gpt-4o", usage));
        assert_eq!(price.cache_savings(usage), table.cache_savings("gpt-4o", usage));
    }

    #[test]
    fn a_model_takes_the_longest_listed_name_it_extends_at_a_dash_in_any_case() {
        let table = PriceTable::built_in();
        // The rule stated plainly: every listed name the lowercased model extends with `-…`,
        // the longest of them.
        let by_scan = |model: &str| {
            let model = model.to_lowercase();
            table.models.get(&model).or_else(|| {
                table
                    .models
                    .iter()
                    .filter(|(name, _)| {
                        model.strip_prefix(name.as_str()).is_some_and(|rest| rest.starts_with('-'))
                    })
                    .max_by_key(|(name, _)| name.len())
                    .map(|(_, price)| price)
            })
        };
        let mut models: Vec<String> = table.models.keys().cloned().collect();
        for name in table.models.keys() {
            models.extend([
                format!("{name}-2024-08-06"),
                format!("{name}--x"),
                name.to_uppercase(),
                format!("{}-Preview", name.to_uppercase()),
                format!("{name}x"),
                format!("x{name}"),
            ]);
        }
        models.extend(["", "-", "unknown-model", "ǅ-gpt-4o", "GPT-4O-İ"].map(str::to_owned));
        for model in &models {
            assert_eq!(table.price(model), by_scan(model), "{model}");
        }
        assert!(table.price("GPT-4o-2024-08-06").is_some(), "any case, any date");
    }

    #[test]
    fn cache_writes_are_priced_apart_and_reasoning_is_not_added_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("prices.toml");
        let prices = "[models.m]\ninput = 3.0\noutput = 15.0\ncached_input = 0.3\ncache_write = 3.75\n";
        std::fs::write(&path, prices).expect("write");
        let table = PriceTable::with_file(&path).expect("valid file");
        // 1000 input of which 600 read and 200 written, 50 output of which 20 reasoning:
        // 200 × 3 + 600 × 0.3 + 200 × 3.75 + 50 × 15 = 600 + 180 + 750 + 750 = 2280 → 0.00228.
        let usage = Usage { input: 1000, output: 50, cached_input: 600, cache_write: 200 };
        assert!((table.cost("m", usage) - 0.00228).abs() < 1e-15);
        // The same call as Anthropic reports it: input 200 apart from the cache counts.
        let apart = Usage { input: 200, ..usage };
        assert!((table.cost("m", apart) - 0.00228).abs() < 1e-15);
    }

    #[test]
    fn gpu_time_and_cache_savings_are_priced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("prices.toml");
        std::fs::write(&path, "[gpus.\"NVIDIA H200\"]\nhour = 3.6\n").expect("write");
        let mut table = PriceTable::with_file(&path).expect("valid file");
        let by_name = [("NVIDIA H200".to_owned(), 2.0), ("NVIDIA L4".to_owned(), 10.0)];
        assert_eq!(table.gpu_cost(&by_name), Some(2.0 * 3.6 / 3600.0), "an unpriced GPU costs nothing");
        assert_eq!(table.gpu_cost(&by_name[1..]), None);
        table.gpu_hour_default = Some(0.72);
        assert_eq!(table.gpu_cost(&by_name), Some(2.0 * 3.6 / 3600.0 + 10.0 * 0.72 / 3600.0));
        // gpt-4o: 2.50 in, 1.25 cached: 400 cached tokens saved 400 × 1.25 per million.
        let usage = Usage { input: 1000, output: 10, cached_input: 400, cache_write: 0 };
        assert!((table.cache_savings("gpt-4o", usage) - 0.0005).abs() < 1e-15);
        assert_eq!(table.cache_savings("llama-self-hosted", usage), 0.0);
    }

    #[test]
    fn a_file_overrides_and_extends_the_built_in_prices() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("prices.toml");
        std::fs::write(&path, "[models.\"GPT-4o\"]\ninput = 1.0\noutput = 2.0\n\n[models.\"my-llama\"]\ninput = 0.05\noutput = 0.05\n").expect("write");
        let table = PriceTable::with_file(&path).expect("valid file");
        assert_eq!(table.price("gpt-4o").map(|price| price.input), Some(1.0));
        assert_eq!(table.price("my-llama").map(|price| price.output), Some(0.05));
        assert!(table.price("claude-3-5-haiku").is_some(), "built-in entries stay");
        let usage = Usage { input: 1000, output: 0, cached_input: 1000, cache_write: 0 };
        assert!((table.cost("gpt-4o", usage) - 0.001).abs() < 1e-12, "no cached price: input price");
    }

    #[test]
    fn a_bad_file_names_the_file_and_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("prices.toml");
        std::fs::write(&path, "[models.\"a\"]\ninput = 1.0\noutput = -3.0\n").expect("write");
        let error = PriceTable::with_file(&path).expect_err("negative price").to_string();
        assert!(
            error.contains("prices.toml") && error.contains("line 3") && error.contains("non-negative"),
            "{error}"
        );
        std::fs::write(&path, "[models.\"a\"]\ninput = 1.0\nouptut = 3.0\n").expect("write");
        let error = PriceTable::with_file(&path).expect_err("unknown key").to_string();
        assert!(error.contains("line 3") && !error.contains('\n'), "{error}");
    }
}
