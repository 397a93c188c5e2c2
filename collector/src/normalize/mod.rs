//! Normalize: one OTLP span (with its resource's service and its instrumentation scope) in, one
//! [`CanonicalSpan`] out.
//!
//! The GenAI fields come from the dialect tables in `agentrace-semconv`, corrected by the
//! rules of the span's framework, found by its instrumentation scope (`frameworks.rs` there:
//! units, wrappers that are not agents, usage records that are not model calls, agents named
//! only in a span name or a JSON attribute). This module adds what the tables cannot say: the
//! names read out of the span name when no attribute gives them (`invoke_agent planner` in the
//! GenAI conventions, the whole name in the others), a model named `provider/model`, the error
//! type from `error.type`, exception events and the span status, and the identifiers derive
//! needs. Next stop: `derive`.

mod protocols;
mod sampling;

use std::borrow::Cow;

use crate::wire::{any_value, InstrumentationScope, KeyValue, Resource};
use crate::wire::{span, status, Span, Text};
use agentrace_semconv::dialect::frameworks::{self, Framework, Rule};
use agentrace_semconv::dialect::{canonical_operation, indexed_evaluations, AttrValue, SpanNames};
use agentrace_semconv::metric::invalid;
use agentrace_semconv::{attr, Attribute, ErrorType, FieldReader, GenAiFields, SpanClass};

/// Service name used when a resource names none, as the OTel SDKs do.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Everything derive needs to know about one span, borrowed from the decoded request.
#[derive(Clone, Debug, PartialEq)]
pub struct CanonicalSpan<'a> {
    pub service: &'a str,
    pub name: &'a str,
    pub kind: span::SpanKind,
    pub status: status::StatusCode,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub class: SpanClass,
    pub fields: GenAiFields<'a>,
    /// Set when the span failed: the normalised reason.
    pub error: Option<ErrorType>,
    /// How many spans this one stands for: its sampling adjusted count, 1 when unsampled.
    pub weight: f64,
    /// `(evaluation name, score)` from `gen_ai.evaluation.result` events and OpenInference
    /// evaluation attributes.
    pub evaluations: Vec<(&'a str, f64)>,
    /// `(guardrail, decision)` of its `gen_ai.guardrail.result` events.
    pub guardrails: Vec<(&'a str, Cow<'a, str>)>,
    /// An A2A call's remote agent: the callee of the graph edge from the calling agent.
    pub remote_agent: Option<&'a str>,
    /// A tool call's arguments, hashed (when the instrumentation captured them): repeats of
    /// the same call show a loop. Never leaves the collector.
    pub arguments_hash: Option<u64>,
    /// The first span of the same trace this one links to (an inference server's span linked
    /// to the application's call rather than under it).
    pub linked_span_id: Option<[u8; 8]>,
    /// Why figures of the span were not kept (`agentrace_spans_invalid_total{reason}`).
    pub invalid: Vec<&'static str>,
    /// False when the span's times cannot be true (a duration over a day, an end in the
    /// future): its durations are not recorded.
    pub timing_valid: bool,
}

impl CanonicalSpan<'_> {
    /// NaN when the span's times cannot be true: the registry records finite values only, so
    /// none of its durations is recorded (and the span is counted invalid once, here).
    pub fn duration_seconds(&self) -> f64 {
        if !self.timing_valid {
            return f64::NAN;
        }
        self.end_unix_nano.saturating_sub(self.start_unix_nano) as f64 / 1e9
    }

    pub fn end_seconds(&self) -> f64 {
        self.end_unix_nano as f64 / 1e9
    }

    pub fn failed(&self) -> bool {
        self.error.is_some()
    }
}

/// Reads spans into their canonical view. Built once; cheap to share.
#[derive(Debug, Default)]
pub struct Normalizer {
    reader: FieldReader,
    /// Keyed at random per process: tool-argument hashes compare calls inside the collector
    /// and mean nothing outside it.
    arguments: std::hash::RandomState,
}

/// The framework rules for the spans of an instrumentation scope, if its framework has any.
pub fn framework_of(scope: Option<&InstrumentationScope>) -> Option<&'static Framework> {
    scope.and_then(|scope| frameworks::framework(scope.name.text()))
}

/// The service name of a resource.
pub fn service_name(resource: Option<&Resource>) -> &str {
    resource
        .and_then(|resource| string_attribute(&resource.attributes, attr::SERVICE_NAME))
        .unwrap_or(UNKNOWN_SERVICE)
}

impl Normalizer {
    /// `None` for a span whose ids are not of the OTLP lengths; the receivers reject those
    /// before they are queued, so here it only guards the invariant.
    /// `now` (Unix seconds) bounds how far in the future a span may end.
    pub fn normalize<'a>(
        &self,
        service: &'a str,
        framework: Option<&Framework>,
        span: &'a Span,
        now: f64,
    ) -> Option<CanonicalSpan<'a>> {
        let trace_id: [u8; 16] = span.trace_id.as_ref().try_into().ok()?;
        let span_id: [u8; 8] = span.span_id.as_ref().try_into().ok()?;
        let parent_span_id = match span.parent_span_id.len() {
            0 => None,
            _ => Some(span.parent_span_id.as_ref().try_into().ok()?),
        };
        let attributes = || span.attributes.iter();
        let mut fields = self.reader.read(attributes());
        let mut class = fields.class.unwrap_or_else(|| infer_class(&fields, span.kind()));
        if let Some(framework) = framework {
            class = apply_framework(framework, span, class, &mut fields);
        }
        let remote_agent = protocols::apply(span, &mut class, &mut fields);
        fill_names(class, span.name.text(), &mut fields);
        strip_provider_prefix(&mut fields);
        fields.operation = canonical_operation(class, fields.operation);
        if fields.time_to_first_token.is_none() {
            fields.time_to_first_token = self.first_token_from_events(span);
        }
        let mut invalid = Vec::new();
        let timing_valid = plausible_times(span, now, &mut invalid);
        plausible_figures(&mut fields, span, &mut invalid);
        let weight = fields
            .adjusted_count
            .and_then(sampling::from_adjusted_count)
            .or_else(|| sampling::from_tracestate(span.trace_state.text()))
            .unwrap_or(1.0);
        if weight > sampling::MAX_WEIGHT {
            invalid.push(invalid::WEIGHT_CLAMPED);
        }
        let status = span.status.as_ref().map_or(status::StatusCode::Unset, |status| status.code());
        let error = error_type(span, status, fields.error_type);
        let mut evaluations = evaluation_events(span);
        evaluations.extend(indexed_evaluations(attributes()));
        Some(CanonicalSpan {
            service,
            name: span.name.text(),
            kind: span.kind(),
            status,
            trace_id,
            span_id,
            parent_span_id,
            start_unix_nano: span.start_time_unix_nano,
            end_unix_nano: span.end_time_unix_nano,
            class,
            fields,
            error,
            weight: weight.min(sampling::MAX_WEIGHT),
            evaluations,
            guardrails: protocols::guardrail_results(span),
            remote_agent,
            arguments_hash: (class == SpanClass::Tool).then(|| self.arguments_hash(span)).flatten(),
            linked_span_id: span
                .links
                .iter()
                .find(|link| link.trace_id == span.trace_id)
                .and_then(|link| link.span_id.as_ref().try_into().ok()),
            invalid,
            timing_valid,
        })
    }

    /// The hash of a tool call's arguments, from whichever dialect captured them.
    fn arguments_hash(&self, span: &Span) -> Option<u64> {
        use std::hash::BuildHasher;
        let arguments =
            attr::TOOL_ARGUMENTS_KEYS.iter().find_map(|key| string_attribute(&span.attributes, key))?;
        Some(self.arguments.hash_one(arguments))
    }

    /// Time to first token from a first-token span event (OpenInference, OpenLLMetry).
    fn first_token_from_events(&self, span: &Span) -> Option<f64> {
        let first = span
            .events
            .iter()
            .filter(|event| self.reader.is_first_token_event(event.name.text()))
            .map(|event| event.time_unix_nano)
            .min()?;
        (first >= span.start_time_unix_nano).then(|| (first - span.start_time_unix_nano) as f64 / 1e9)
    }
}

/// `gen_ai.evaluation.result` events: name and numeric score.
fn evaluation_events(span: &Span) -> Vec<(&str, f64)> {
    span.events
        .iter()
        .filter(|event| event.name == attr::GEN_AI_EVALUATION_RESULT_EVENT)
        .filter_map(|event| {
            let name = string_attribute(&event.attributes, attr::GEN_AI_EVALUATION_NAME)?;
            let score =
                event.attributes.iter().find(|kv| kv.key == attr::GEN_AI_EVALUATION_SCORE_VALUE).and_then(
                    |kv| match attr_value(kv) {
                        AttrValue::Double(score) if score.is_finite() => Some(score),
                        AttrValue::Int(score) => Some(score as f64),
                        _ => None,
                    },
                )?;
            Some((name, score))
        })
        .collect()
}

/// Most tokens one call may count; more is a broken counter, not a call.
const MAX_TOKENS_PER_CALL: u64 = 100_000_000;
/// The longest a span may last.
const MAX_DURATION_NANOS: u64 = 86_400 * 1_000_000_000;
/// How far past the collector's clock a span may end (the sender's clock may run ahead).
const MAX_CLOCK_SKEW_SECS: f64 = 300.0;

/// Whether the span's times can be true: it lasts at most a day and does not end more than
/// the clock skew after `now`.
fn plausible_times(span: &Span, now: f64, invalid: &mut Vec<&'static str>) -> bool {
    let duration = span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano);
    if duration > MAX_DURATION_NANOS {
        invalid.push(invalid::DURATION_OVER_A_DAY);
        return false;
    }
    if span.end_time_unix_nano as f64 / 1e9 > now + MAX_CLOCK_SKEW_SECS {
        invalid.push(invalid::FUTURE_TIMESTAMP);
        return false;
    }
    true
}

/// Drops token counts past the ceiling and a time to first token past the span's end, each
/// counted.
fn plausible_figures(fields: &mut GenAiFields<'_>, span: &Span, invalid: &mut Vec<&'static str>) {
    let counts = [
        &mut fields.input_tokens,
        &mut fields.output_tokens,
        &mut fields.cached_input_tokens,
        &mut fields.reasoning_tokens,
        &mut fields.cache_write_tokens,
    ]
    .into_iter()
    .chain(&mut fields.modality_input_tokens)
    .chain(&mut fields.modality_output_tokens);
    let mut over = false;
    for count in counts {
        if count.is_some_and(|tokens| tokens > MAX_TOKENS_PER_CALL) {
            *count = None;
            over = true;
        }
    }
    if over {
        invalid.push(invalid::TOKENS_OVER_CEILING);
    }
    let seconds = span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) as f64 / 1e9;
    if fields.time_to_first_token.is_some_and(|first| first > seconds) {
        fields.time_to_first_token = None;
        invalid.push(invalid::FIRST_TOKEN_AFTER_END);
    }
}

/// No class attribute: a call (a CLIENT or SERVER span) that names a model and counts tokens
/// is an LLM call. An internal span with a model and tokens is a record of a call (a usage
/// record, an agent's running total), not one.
fn infer_class(fields: &GenAiFields<'_>, kind: span::SpanKind) -> SpanClass {
    let counts_tokens = fields.input_tokens.is_some() || fields.output_tokens.is_some();
    let is_call = matches!(kind, span::SpanKind::Client | span::SpanKind::Server);
    if fields.model.is_some() && counts_tokens && is_call {
        SpanClass::Llm
    } else {
        SpanClass::Other
    }
}

/// Applies a framework's rules to what the tables read; returns the span's class.
fn apply_framework<'a>(
    framework: &Framework,
    span: &'a Span,
    mut class: SpanClass,
    fields: &mut GenAiFields<'a>,
) -> SpanClass {
    let name = span.name.text();
    for rule in framework.rules {
        match *rule {
            Rule::FirstTokenMilliseconds(key) => {
                let milliseconds = number_attribute(&span.attributes, key);
                if milliseconds.is_some() && fields.time_to_first_token == milliseconds {
                    fields.time_to_first_token = milliseconds.map(|milliseconds| milliseconds / 1000.0);
                }
            }
            Rule::NotProvider(value) if fields.provider == Some(value) => fields.provider = None,
            Rule::AgentNameSuffix(suffix) if class == SpanClass::Agent && fields.agent.is_none() => {
                fields.agent = name.strip_suffix(suffix).filter(|agent| !agent.is_empty());
            }
            Rule::NotAnAgent(wrapper)
                if class == SpanClass::Agent
                    && fields.agent.is_none()
                    && fields.name.is_none()
                    && name == wrapper =>
            {
                class = SpanClass::Other;
            }
            Rule::UsageRecord { key, value } if string_attribute(&span.attributes, key) == Some(value) => {
                class = SpanClass::Other;
            }
            Rule::AgentInJson { attribute, key } => {
                let agent =
                    string_attribute(&span.attributes, attribute).and_then(|json| json_string(json, key));
                if fields.agent.is_none() {
                    fields.agent = agent;
                }
                if class == SpanClass::Step && agent == Some(name) {
                    class = SpanClass::Agent;
                }
            }
            _ => {}
        }
    }
    class
}

/// The first string value of `key` in a JSON object, when it has no escapes (a name
/// with escapes is left unread rather than copied).
fn json_string<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let quoted_key = format!("\"{key}\"");
    let after_key = &json[json.find(&quoted_key)? + quoted_key.len()..];
    let value = after_key.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let end = value.find(['"', '\\'])?;
    (value.as_bytes()[end] == b'"' && end > 0).then(|| &value[..end])
}

/// `openai/gpt-4o` (LiteLLM's `provider/model` form) is `gpt-4o` when the provider is `openai`.
fn strip_provider_prefix(fields: &mut GenAiFields<'_>) {
    let (Some(provider), Some(model)) = (fields.provider, fields.model) else { return };
    if let Some(bare) = model.strip_prefix(provider).and_then(|rest| rest.strip_prefix('/')) {
        fields.model = Some(bare).filter(|bare| !bare.is_empty()).or(Some(model));
    }
}

/// Fills the agent, tool, step or model name when no dedicated attribute gave it: from the
/// dialect's generic entity name, else from the span name. GenAI span names are
/// `{operation} {target}` (`chat gpt-4o`, `invoke_agent planner`), so the target is the part
/// after the space; other dialects name agents, tools and steps by the whole span name
/// (`Step 1`, `coordinator.task 0.execute`).
fn fill_names<'a>(class: SpanClass, span_name: &'a str, fields: &mut GenAiFields<'a>) {
    let target = match fields.span_names {
        SpanNames::OperationTarget => {
            span_name.split_once(' ').map(|(_, rest)| rest.trim()).filter(|rest| !rest.is_empty())
        }
        SpanNames::Whole => None,
    };
    let entity = fields.name;
    let (slot, whole_name) = match class {
        SpanClass::Agent => (&mut fields.agent, true),
        SpanClass::Tool => (&mut fields.tool, true),
        SpanClass::Step => (&mut fields.step, true),
        SpanClass::Llm | SpanClass::Embedding | SpanClass::ModelLoad => (&mut fields.model, false),
        SpanClass::Other => return,
    };
    if slot.is_some() {
        return;
    }
    let whole = (whole_name && !span_name.is_empty()).then_some(span_name);
    *slot = entity.or(target).or(whole);
}

/// A span failed when its status is ERROR or it carries `error.type`. The type comes from the
/// most specific of `error.type`, exception events and the status message.
fn error_type(span: &Span, status: status::StatusCode, declared: Option<&str>) -> Option<ErrorType> {
    if status != status::StatusCode::Error && declared.is_none() {
        return None;
    }
    let exception_texts =
        span.events.iter().filter(|event| event.name == attr::EXCEPTION_EVENT).flat_map(|event| {
            [attr::EXCEPTION_TYPE, attr::EXCEPTION_MESSAGE]
                .into_iter()
                .filter_map(|key| string_attribute(&event.attributes, key))
        });
    let status_message = span.status.as_ref().map(|status| status.message.text());
    let texts: Vec<&str> = declared.into_iter().chain(exception_texts).chain(status_message).collect();
    Some(ErrorType::classify_all(texts.iter().copied()).unwrap_or(ErrorType::Other))
}

/// A numeric attribute (an int or a double) as a float.
pub fn number_attribute(attributes: &[KeyValue], key: &str) -> Option<f64> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match attr_value(kv) {
        AttrValue::Double(number) => Some(number),
        AttrValue::Int(number) => Some(number as f64),
        _ => None,
    })
}

pub fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match attr_value(kv) {
        AttrValue::Str(text) => Some(text),
        _ => None,
    })
}

/// Keys are compared as bytes; only the values of keys that matter are read.
impl<'a> Attribute<'a> for &'a KeyValue {
    fn key(&self) -> &[u8] {
        &self.key
    }

    fn value(&self) -> AttrValue<'a> {
        attr_value(self)
    }
}

fn attr_value(kv: &KeyValue) -> AttrValue<'_> {
    match kv.value.as_ref().and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => AttrValue::Str(text.text()),
        Some(any_value::Value::IntValue(number)) => AttrValue::Int(*number),
        Some(any_value::Value::DoubleValue(number)) => AttrValue::Double(*number),
        Some(any_value::Value::BoolValue(flag)) => AttrValue::Bool(*flag),
        _ => AttrValue::Other,
    }
}

#[cfg(test)]
mod protocol_tests;
#[cfg(test)]
pub(crate) mod tests;
