//! Log rules: regular expressions over a log record's body, each turning a matching line into
//! one metric update. This is how "Loading weights took 5.21 seconds" becomes
//! `llm_model_load_time_seconds` and a CUDA out-of-memory line `llm_log_errors_total{type="oom"}`
//! for servers that emit logs but no spans.
//!
//! A rule writes one of a fixed set of families ([`Action`]); its labels come only from the
//! service and from captures named `model` or `type` (a capture of any other name is refused),
//! and its value from the capture `value`. The regex engine is the `regex` crate's, which runs
//! in time linear in the text and never backtracks; bodies are cut to [`MAX_BODY`] bytes and
//! all rules are tried at once through one `RegexSet`, so a record costs time bounded by its
//! cut length whatever the rules. A rule file that cannot be used is refused at start with the
//! file, line and reason. The rules for vLLM, llama.cpp's server and Ollama (`builtin.toml`)
//! are always on; `--log-rules` adds more.

use std::sync::Arc;

use agentrace_semconv::metric;
use agentrace_semconv::ErrorType;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;
use smallvec::smallvec;

use crate::args::{self, ArgError};
use crate::metrics::{Label, Observation};

/// The most of a body the rules read.
pub const MAX_BODY: usize = 16 * 1024;
/// The most rules in all.
const MAX_RULES: usize = 512;
/// The most memory one compiled pattern may take.
const MAX_PATTERN_BYTES: usize = 1 << 20;
const CAPTURES: [&str; 3] = ["value", "model", "type"];

/// The rules shipped for vLLM, llama.cpp's server and Ollama.
const BUILTIN: &str = include_str!("builtin.toml");

/// What a rule's match does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Sets `llm_model_load_time_seconds{service,model}` to the capture `value` (seconds).
    LoadTime,
    /// Adds one to `llm_log_errors_total{service,type}`.
    Error,
    /// Adds one (or the capture `value`) to `llm_log_events_total{service,rule}`.
    Event,
    /// Sets `llm_log_value{service,rule}` to the capture `value`.
    Value,
    /// Observes the capture `value` in `llm_log_seconds{service,rule}`.
    Seconds,
}

impl Action {
    fn of(metric_name: &str) -> Option<Self> {
        Some(match metric_name {
            metric::LLM_MODEL_LOAD_TIME_SECONDS => Self::LoadTime,
            metric::LLM_LOG_ERRORS_TOTAL => Self::Error,
            metric::LLM_LOG_EVENTS_TOTAL => Self::Event,
            metric::LLM_LOG_VALUE => Self::Value,
            metric::LLM_LOG_SECONDS => Self::Seconds,
            _ => return None,
        })
    }

    fn needs_value(self) -> bool {
        matches!(self, Self::LoadTime | Self::Value | Self::Seconds)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<toml::Spanned<RuleTable>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleTable {
    name: String,
    pattern: String,
    metric: String,
    /// The error type of an `llm_log_errors_total` rule, when no capture gives it.
    r#type: Option<String>,
    /// The model label of an `llm_model_load_time_seconds` rule, when no capture gives it.
    model: Option<String>,
}

#[derive(Debug)]
struct Rule {
    name: Arc<str>,
    regex: Regex,
    action: Action,
    error_type: Option<ErrorType>,
    model: Option<Arc<str>>,
}

/// Compiled rules.
#[derive(Debug)]
pub struct LogRules {
    rules: Vec<Rule>,
    set: RegexSet,
}

/// What applying the rules to one record did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// A rule counted the record in `llm_log_errors_total`.
    pub counted_error: bool,
    pub matched: usize,
}

fn check(table: RuleTable) -> Result<Rule, String> {
    if table.name.is_empty()
        || !table.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!("name {:?}: lowercase letters, digits and _ only", table.name));
    }
    let action = Action::of(&table.metric).ok_or_else(|| {
        format!(
            "metric {:?} is not one rules write: {}, {}, {}, {} or {}",
            table.metric,
            metric::LLM_MODEL_LOAD_TIME_SECONDS,
            metric::LLM_LOG_ERRORS_TOTAL,
            metric::LLM_LOG_EVENTS_TOTAL,
            metric::LLM_LOG_VALUE,
            metric::LLM_LOG_SECONDS
        )
    })?;
    let regex = RegexBuilder::new(&table.pattern).size_limit(MAX_PATTERN_BYTES).build().map_err(|error| {
        format!("pattern: {}", error.to_string().lines().last().unwrap_or_default().trim())
    })?;
    let names: Vec<&str> = regex.capture_names().flatten().collect();
    if let Some(other) = names.iter().find(|name| !CAPTURES.contains(name)) {
        return Err(format!(
            "capture {other:?} is not value, model or type; use (?:…) for a group that only groups"
        ));
    }
    if action.needs_value() && !names.contains(&"value") {
        return Err(format!("{} needs a capture named value", table.metric));
    }
    let error_type = match table.r#type.as_deref() {
        Some(kind) => {
            Some(ErrorType::classify(kind).ok_or_else(|| format!("type {kind:?} is not an error type"))?)
        }
        None if action == Action::Error && !names.contains(&"type") => {
            return Err("an llm_log_errors_total rule needs type = \"…\" or a capture named type".into());
        }
        None => None,
    };
    Ok(Rule { name: Arc::from(table.name), regex, action, error_type, model: table.model.map(Arc::from) })
}

impl LogRules {
    /// The shipped rules, then those of `path` when given.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ArgError> {
        let mut tables = parse_tables(BUILTIN)
            .map_err(|reason| ArgError::invalid("log-rules", format!("built-in rules: {reason}")))?;
        if let Some(path) = path {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ArgError::Read { path: path.to_owned(), source })?;
            let more = parse_tables(&text)
                .map_err(|reason| ArgError::invalid("log-rules", format!("{}: {reason}", path.display())))?;
            tables.extend(more);
        }
        Self::compile(tables).map_err(|reason| ArgError::invalid("log-rules", reason))
    }

    /// The shipped rules alone, compiled once.
    pub fn builtin() -> &'static Self {
        static BUILTIN_RULES: std::sync::LazyLock<LogRules> = std::sync::LazyLock::new(|| {
            LogRules::compile(parse_tables(BUILTIN).expect("the built-in rules parse")).expect("and compile")
        });
        &BUILTIN_RULES
    }

    /// The rules of one file's text (for tests and the fuzzer).
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::compile(parse_tables(text)?)
    }

    fn compile(rules: Vec<Rule>) -> Result<Self, String> {
        if rules.len() > MAX_RULES {
            return Err(format!("{} rules; at most {MAX_RULES}", rules.len()));
        }
        for (index, rule) in rules.iter().enumerate() {
            if rules[..index].iter().any(|earlier| earlier.name == rule.name) {
                return Err(format!("a second rule named {:?}", rule.name));
            }
        }
        let set = RegexSetBuilder::new(rules.iter().map(|rule| rule.regex.as_str()))
            .size_limit(MAX_PATTERN_BYTES * 8)
            .build()
            .map_err(|error| format!("the rules together: {error}"))?;
        Ok(Self { rules, set })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Applies every rule matching `body` (cut to [`MAX_BODY`]) to `out`, under `service`.
    pub fn apply<'a>(&self, service: &'a str, body: &str, out: &mut Vec<Observation<'a>>) -> Applied {
        let body = cut(body);
        let mut applied = Applied::default();
        for index in self.set.matches(body).iter() {
            let rule = &self.rules[index];
            let Some(captures) = rule.regex.captures(body) else { continue };
            let text = |name: &str| captures.name(name).map(|found| found.as_str());
            let value =
                text("value").and_then(|value| value.parse::<f64>().ok()).filter(|value| value.is_finite());
            if rule.action.needs_value() && value.is_none() {
                continue;
            }
            let service = Label::Borrowed(service);
            let named = Label::Shared(rule.name.clone());
            let observation = match rule.action {
                Action::LoadTime => {
                    let model = text("model")
                        .map(Arc::from)
                        .or_else(|| rule.model.clone())
                        .unwrap_or_else(|| Arc::from(""));
                    Observation::new(
                        metric::LLM_MODEL_LOAD_TIME_SECONDS,
                        smallvec![service, Label::Shared(model)],
                        value.unwrap_or_default(),
                        None,
                    )
                }
                Action::Error => {
                    if applied.counted_error {
                        continue;
                    }
                    let kind = text("type")
                        .and_then(ErrorType::classify)
                        .or(rule.error_type)
                        .unwrap_or(ErrorType::Other);
                    applied.counted_error = true;
                    Observation::new(
                        metric::LLM_LOG_ERRORS_TOTAL,
                        smallvec![service, Label::Borrowed(kind.as_str())],
                        1.0,
                        None,
                    )
                }
                Action::Event => Observation::new(
                    metric::LLM_LOG_EVENTS_TOTAL,
                    smallvec![service, named],
                    value.unwrap_or(1.0),
                    None,
                ),
                Action::Value => Observation::new(
                    metric::LLM_LOG_VALUE,
                    smallvec![service, named],
                    value.unwrap_or_default(),
                    None,
                ),
                Action::Seconds => Observation::new(
                    metric::LLM_LOG_SECONDS,
                    smallvec![service, named],
                    value.unwrap_or_default(),
                    None,
                ),
            };
            out.push(observation);
            applied.matched += 1;
        }
        applied
    }
}

/// `body` cut to at most [`MAX_BODY`] bytes, on a character boundary.
fn cut(body: &str) -> &str {
    let mut end = body.len().min(MAX_BODY);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    &body[..end]
}

/// A file's rules, each checked; the error names the line.
fn parse_tables(text: &str) -> Result<Vec<Rule>, String> {
    let file: File = toml::from_str(text).map_err(|error| args::one_line_toml_error(text, &error))?;
    file.rule
        .into_iter()
        .map(|table| {
            let at = args::line_and_column(text, table.span().start);
            check(table.into_inner()).map_err(|reason| format!("{at}: {reason}"))
        })
        .collect()
}
